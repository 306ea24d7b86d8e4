//! Drawing [`Instances`] on the GPU: one draw call per instanced entity and view, every
//! instance from one vertex buffer.
//!
//! Why a pipeline of our own: Bevy 0.19 batches and instances meshes automatically only when
//! each instance is an entity of its own (100,000 instances would be 100,000 entities, with
//! their transforms, visibility and extraction every frame). This follows Bevy's
//! `custom_shader_instancing` example instead: the [`InstanceSet`] asset is uploaded once, as a
//! vertex buffer with one [`Instance`](super::Instance) per instance (and again only when the
//! asset changes, through Bevy's render assets), and a pipeline specialized from Bevy's
//! `MeshPipeline` (so it follows the view's MSAA, HDR, tonemapping and the mesh's vertex layout)
//! draws the mesh once per instance.
//!
//! What of the material is drawn: base color (factor × texture, with each instance's texture
//! transform), emissive, metallic, perceptual roughness and reflectance, lit by the view's
//! lights and environment through Bevy's own PBR lighting functions; a material with
//! `AlphaMode::Blend` is alpha blended. Not drawn for instances: the other textures (normal,
//! metallic-roughness, occlusion, ...), transmission and clearcoat, shadows cast by instances,
//! and per-instance frustum culling (an instanced entity is drawn in every 3D view where it is
//! visible by its `Visibility`).

use bevy::core_pipeline::core_3d::{Transparent3d, TransparentSortingInfo3d};
use bevy::ecs::system::{SystemParamItem, lifetimeless::*};
use bevy::mesh::{MeshVertexBufferLayoutRef, VertexBufferLayout};
use bevy::pbr::{
    MeshPipeline, MeshPipelineKey, MeshPipelineSystems, SetMeshViewBindGroup,
    SetMeshViewBindingArrayBindGroup, ViewKeyCache,
};
use bevy::prelude::*;
use bevy::render::{
    Extract, ExtractSchedule, Render, RenderApp, RenderStartup, RenderSystems,
    mesh::{RenderMesh, RenderMeshBufferInfo, allocator::MeshAllocator},
    render_asset::{PrepareAssetError, RenderAsset, RenderAssetPlugin, RenderAssets},
    render_phase::{
        AddRenderCommand, DrawFunctions, PhaseItem, PhaseItemExtraIndex, RenderCommand,
        RenderCommandResult, SetItemPipeline, TrackedRenderPass, ViewSortedRenderPhases,
    },
    render_resource::{binding_types::*, *},
    renderer::RenderDevice,
    sync_world::{MainEntity, RenderEntity, SyncToRenderWorld},
    texture::{FallbackImage, GpuImage},
    view::ExtractedView,
};
use bevy::shader::ShaderDefVal;
use zerocopy::{Immutable, IntoBytes};

use super::{InstanceSet, Instances};

/// Shader locations of the instance attributes (Bevy's mesh pipeline uses 0 to 7).
const FIRST_INSTANCE_LOCATION: u32 = 8;

/// Draws [`Instances`]; added by [`InstancesPlugin`](super::InstancesPlugin) with `render`.
pub struct InstancedRenderPlugin;

impl Plugin for InstancedRenderPlugin {
    fn build(&self, app: &mut App) {
        bevy::asset::embedded_asset!(app, "instancing.wgsl");
        app.register_required_components::<Instances, SyncToRenderWorld>()
            .add_plugins(RenderAssetPlugin::<GpuInstances>::default());
        let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
            return;
        };
        render_app
            .add_render_command::<Transparent3d, DrawInstanced>()
            .init_resource::<SpecializedMeshPipelines<InstancedPipeline>>()
            .add_systems(RenderStartup, init_pipeline.after(MeshPipelineSystems))
            .add_systems(ExtractSchedule, extract_instanced)
            .add_systems(
                Render,
                (
                    queue_instanced.in_set(RenderSystems::QueueMeshes),
                    prepare_instanced.in_set(RenderSystems::PrepareBindGroups),
                ),
            );
    }
}

/// An [`InstanceSet`] on the GPU: its vertex buffer.
pub struct GpuInstances {
    buffer: Buffer,
    count: u32,
}

impl RenderAsset for GpuInstances {
    type SourceAsset = InstanceSet;
    type Param = SRes<RenderDevice>;

    fn byte_len(set: &InstanceSet) -> Option<usize> {
        Some(std::mem::size_of_val(set.instances.as_slice()))
    }

    fn prepare_asset(
        set: InstanceSet,
        _: AssetId<InstanceSet>,
        device: &mut SystemParamItem<Self::Param>,
        _: Option<&Self>,
    ) -> Result<Self, PrepareAssetError<InstanceSet>> {
        // A vertex buffer cannot be empty; an empty set draws nothing.
        let one = [super::Instance::default()];
        let data = if set.instances.is_empty() {
            &one[..]
        } else {
            &set.instances[..]
        };
        let buffer = device.create_buffer_with_data(&BufferInitDescriptor {
            label: Some("noodles instances"),
            contents: data.as_bytes(),
            usage: BufferUsages::VERTEX,
        });
        Ok(GpuInstances {
            buffer,
            count: u32::try_from(set.instances.len()).unwrap_or(u32::MAX),
        })
    }
}

/// One instanced entity in the render world: what its draw needs, extracted every frame.
#[derive(Component, Clone)]
struct ExtractedInstanced {
    set: AssetId<InstanceSet>,
    mesh: AssetId<Mesh>,
    uniform: DrawUniform,
    texture: Option<AssetId<Image>>,
    blend: bool,
}

/// Group 2, binding 0 of `instancing.wgsl` (`InstancedDraw`), laid out as WGSL lays out a
/// uniform struct: matrices as columns, 176 bytes.
#[derive(Clone, Copy, Debug, IntoBytes, Immutable)]
#[repr(C)]
struct DrawUniform {
    world_from_local: [f32; 16],
    /// The inverse transpose of `world_from_local`'s upper 3×3, as three `vec4` columns (and a
    /// fourth unused one).
    normal_from_local: [f32; 16],
    base_color: [f32; 4],
    emissive: [f32; 4],
    metallic: f32,
    perceptual_roughness: f32,
    reflectance: f32,
    /// Bit 0: sample the base color texture.
    flags: u32,
}

impl DrawUniform {
    fn new(world: Mat4, m: &StandardMaterial) -> Self {
        let normal = Mat4::from_mat3(Mat3::from_mat4(world).inverse().transpose());
        DrawUniform {
            world_from_local: world.to_cols_array(),
            normal_from_local: normal.to_cols_array(),
            base_color: LinearRgba::from(m.base_color).to_f32_array(),
            emissive: m.emissive.to_f32_array(),
            metallic: m.metallic,
            perceptual_roughness: m.perceptual_roughness,
            reflectance: m.reflectance,
            flags: u32::from(m.base_color_texture.is_some()),
        }
    }
}

/// Render entities given an [`ExtractedInstanced`] last frame (to take it away when the main
/// entity stops being instanced or visible).
#[derive(Default)]
struct Extracted(Vec<Entity>);

#[expect(clippy::type_complexity, reason = "one query of what a draw needs")]
fn extract_instanced(
    mut commands: Commands,
    materials: Extract<Option<Res<Assets<StandardMaterial>>>>,
    query: Extract<
        Query<(
            RenderEntity,
            &Instances,
            &Mesh3d,
            Option<&MeshMaterial3d<StandardMaterial>>,
            &GlobalTransform,
            &InheritedVisibility,
        )>,
    >,
    mut previous: Local<Extracted>,
) {
    let mut now = Vec::new();
    for (re, instances, mesh, material, transform, visible) in &query {
        if !visible.get() {
            continue;
        }
        // No material (or not loaded yet): Bevy's default one.
        let default = StandardMaterial::default();
        let material = material
            .and_then(|m| materials.as_ref().and_then(|ms| ms.get(&m.0)))
            .unwrap_or(&default);
        commands.entity(re).insert(ExtractedInstanced {
            set: instances.0.id(),
            mesh: mesh.0.id(),
            uniform: DrawUniform::new(transform.to_matrix(), material),
            texture: material.base_color_texture.as_ref().map(|h| h.id()),
            blend: matches!(material.alpha_mode, AlphaMode::Blend),
        });
        now.push(re);
    }
    now.sort_unstable();
    for re in previous.0.drain(..) {
        if now.binary_search(&re).is_err()
            && let Ok(mut e) = commands.get_entity(re)
        {
            e.try_remove::<(ExtractedInstanced, InstancedBindGroup)>();
        }
    }
    previous.0 = now;
}

/// The pipeline: Bevy's mesh pipeline with this module's shader, an instance vertex buffer,
/// and this draw's material and transform as bind group 2.
#[derive(Resource)]
struct InstancedPipeline {
    shader: Handle<Shader>,
    mesh_pipeline: MeshPipeline,
    layout: BindGroupLayoutDescriptor,
}

fn init_pipeline(
    mut commands: Commands,
    asset_server: Res<AssetServer>,
    mesh_pipeline: Res<MeshPipeline>,
) {
    let layout = BindGroupLayoutDescriptor::new(
        "noodles instanced draw",
        &BindGroupLayoutEntries::sequential(
            ShaderStages::VERTEX_FRAGMENT,
            (
                uniform_buffer_sized(false, None),
                texture_2d(TextureSampleType::Float { filterable: true }),
                sampler(SamplerBindingType::Filtering),
            ),
        ),
    );
    commands.insert_resource(InstancedPipeline {
        shader: bevy::asset::load_embedded_asset!(asset_server.as_ref(), "instancing.wgsl"),
        mesh_pipeline: mesh_pipeline.clone(),
        layout,
    });
}

impl SpecializedMeshPipeline for InstancedPipeline {
    type Key = MeshPipelineKey;

    fn specialize(
        &self,
        key: Self::Key,
        layout: &MeshVertexBufferLayoutRef,
    ) -> Result<RenderPipelineDescriptor, SpecializedMeshPipelineError> {
        let mut d = self.mesh_pipeline.specialize(key, layout)?;
        // Groups 0 and 1 are the view's; group 2 is ours instead of the mesh uniforms.
        d.layout.truncate(2);
        d.layout.push(self.layout.clone());
        // Bevy's PBR functions import the standard material's bindings (unused here).
        let material_group = ShaderDefVal::UInt("MATERIAL_BIND_GROUP".into(), 3);
        d.vertex.shader = self.shader.clone();
        d.vertex.shader_defs.push(material_group.clone());
        d.vertex.buffers.push(VertexBufferLayout {
            array_stride: std::mem::size_of::<super::Instance>() as u64,
            step_mode: VertexStepMode::Instance,
            attributes: (0..4)
                .map(|i| VertexAttribute {
                    format: VertexFormat::Float32x4,
                    offset: u64::from(i) * VertexFormat::Float32x4.size(),
                    shader_location: FIRST_INSTANCE_LOCATION + i,
                })
                .collect(),
        });
        if let Some(f) = d.fragment.as_mut() {
            f.shader = self.shader.clone();
            f.shader_defs.push(material_group);
        }
        Ok(d)
    }
}

/// This frame's bind group of an instanced entity.
#[derive(Component)]
struct InstancedBindGroup(BindGroup);

fn prepare_instanced(
    mut commands: Commands,
    query: Query<(Entity, &ExtractedInstanced)>,
    device: Res<RenderDevice>,
    pipeline: Res<InstancedPipeline>,
    pipeline_cache: Res<PipelineCache>,
    images: Res<RenderAssets<GpuImage>>,
    fallback: Res<FallbackImage>,
) {
    let layout = pipeline_cache.get_bind_group_layout(&pipeline.layout);
    for (entity, draw) in &query {
        let uniform = device.create_buffer_with_data(&BufferInitDescriptor {
            label: Some("noodles instanced draw"),
            contents: draw.uniform.as_bytes(),
            usage: BufferUsages::UNIFORM,
        });
        let image = draw
            .texture
            .and_then(|id| images.get(id))
            .unwrap_or(&fallback.d2);
        let bind_group = device.create_bind_group(
            "noodles instanced draw",
            &layout,
            &BindGroupEntries::sequential((
                uniform.as_entire_binding(),
                &image.texture_view,
                &image.sampler,
            )),
        );
        commands
            .entity(entity)
            .insert(InstancedBindGroup(bind_group));
    }
}

#[expect(clippy::too_many_arguments, reason = "what queueing a mesh draw reads")]
fn queue_instanced(
    draw_functions: Res<DrawFunctions<Transparent3d>>,
    pipeline: Res<InstancedPipeline>,
    mut pipelines: ResMut<SpecializedMeshPipelines<InstancedPipeline>>,
    pipeline_cache: Res<PipelineCache>,
    meshes: Res<RenderAssets<RenderMesh>>,
    instanced: Query<(Entity, &MainEntity, &ExtractedInstanced)>,
    mut phases: ResMut<ViewSortedRenderPhases<Transparent3d>>,
    views: Query<&ExtractedView>,
    view_key_cache: Res<ViewKeyCache>,
) {
    let draw = draw_functions.read().id::<DrawInstanced>();
    for view in &views {
        let Some(phase) = phases.get_mut(&view.retained_view_entity) else {
            continue;
        };
        let Some(&view_key) = view_key_cache.get(&view.retained_view_entity) else {
            continue;
        };
        let rangefinder = view.rangefinder3d();
        for (entity, main_entity, extracted) in &instanced {
            let Some(mesh) = meshes.get(extracted.mesh) else {
                continue;
            };
            let mut key = view_key
                | MeshPipelineKey::from_primitive_topology_and_strip_index(
                    mesh.primitive_topology(),
                    mesh.index_format(),
                );
            if extracted.blend {
                key |= MeshPipelineKey::BLEND_ALPHA;
            }
            let pipeline_id =
                match pipelines.specialize(&pipeline_cache, &pipeline, key, &mesh.layout) {
                    Ok(id) => id,
                    Err(e) => {
                        error!("instanced mesh: cannot specialize its pipeline: {e}");
                        continue;
                    }
                };
            let center = Mat4::from_cols_array(&extracted.uniform.world_from_local)
                .transform_point3(mesh.aabb_center);
            phase.add_transient(Transparent3d {
                sorting_info: TransparentSortingInfo3d::Sorted {
                    mesh_center: center,
                    depth_bias: 0.0,
                },
                entity: (entity, *main_entity),
                pipeline: pipeline_id,
                draw_function: draw,
                distance: rangefinder.distance(&center),
                batch_range: 0..1,
                extra_index: PhaseItemExtraIndex::None,
                indexed: mesh.indexed(),
            });
        }
    }
}

type DrawInstanced = (
    SetItemPipeline,
    SetMeshViewBindGroup<0>,
    SetMeshViewBindingArrayBindGroup<1>,
    SetInstancedBindGroup<2>,
    DrawInstancedMesh,
);

struct SetInstancedBindGroup<const I: usize>;

impl<P: PhaseItem, const I: usize> RenderCommand<P> for SetInstancedBindGroup<I> {
    type Param = ();
    type ViewQuery = ();
    type ItemQuery = Read<InstancedBindGroup>;

    fn render<'w>(
        _: &P,
        _: (),
        bind_group: Option<&'w InstancedBindGroup>,
        _: (),
        pass: &mut TrackedRenderPass<'w>,
    ) -> RenderCommandResult {
        let Some(bind_group) = bind_group else {
            return RenderCommandResult::Skip;
        };
        pass.set_bind_group(I, &bind_group.0, &[]);
        RenderCommandResult::Success
    }
}

struct DrawInstancedMesh;

impl<P: PhaseItem> RenderCommand<P> for DrawInstancedMesh {
    type Param = (
        SRes<RenderAssets<RenderMesh>>,
        SRes<RenderAssets<GpuInstances>>,
        SRes<MeshAllocator>,
    );
    type ViewQuery = ();
    type ItemQuery = Read<ExtractedInstanced>;

    fn render<'w>(
        _: &P,
        _: (),
        extracted: Option<&'w ExtractedInstanced>,
        (meshes, sets, allocator): SystemParamItem<'w, '_, Self::Param>,
        pass: &mut TrackedRenderPass<'w>,
    ) -> RenderCommandResult {
        let allocator = allocator.into_inner();
        let Some(extracted) = extracted else {
            return RenderCommandResult::Skip;
        };
        let (Some(mesh), Some(set)) = (
            meshes.into_inner().get(extracted.mesh),
            sets.into_inner().get(extracted.set),
        ) else {
            return RenderCommandResult::Skip;
        };
        if set.count == 0 {
            return RenderCommandResult::Skip;
        }
        let Some(vertices) = allocator.mesh_vertex_slice(&extracted.mesh) else {
            return RenderCommandResult::Skip;
        };
        pass.set_vertex_buffer(0, vertices.buffer.slice(..));
        pass.set_vertex_buffer(1, set.buffer.slice(..));
        match &mesh.buffer_info {
            RenderMeshBufferInfo::Indexed {
                index_format,
                count,
            } => {
                let Some(indices) = allocator.mesh_index_slice(&extracted.mesh) else {
                    return RenderCommandResult::Skip;
                };
                pass.set_index_buffer(indices.buffer.slice(..), *index_format);
                pass.draw_indexed(
                    indices.range.start..(indices.range.start + count),
                    vertices.range.start as i32,
                    0..set.count,
                );
            }
            RenderMeshBufferInfo::NonIndexed => {
                pass.draw(vertices.range, 0..set.count);
            }
        }
        RenderCommandResult::Success
    }
}
