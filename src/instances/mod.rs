//! Instanced geometry: `InstanceComponent` (Core (0, 4)) ↔ [`Instances`], drawn on the GPU.
//!
//! An entity with a mesh, a material and [`Instances`] is drawn once per [`Instance`] of its
//! [`InstanceSet`] asset, in the entity's local space (the entity's transform applies on top of
//! each instance's), in one draw call, without an entity per instance. Each instance has a
//! translation, a rotation, a scale, and a texture transform (`uv * scale + translation`) for
//! its material's textures.
//!
//! - **Upstream**: a shared entity with [`Instances`] gets an [`InstanceView`] (its wire form):
//!   the set is exported once as a Buffer asset of `FullFloatInstance`s (whatever the number of
//!   entities using it), sent again as a new buffer when the Bevy asset changes, and deleted when
//!   no shared entity uses it.
//! - **Downstream**: a received [`InstanceView`] becomes [`Instances`] once its buffer has
//!   arrived: both layouts (`FullFloatInstance` and the quantized `ReducedInstance`) are decoded
//!   into one [`InstanceSet`] asset, which the render world uploads once to a GPU buffer (and
//!   again only when it changes). A view whose length disagrees with the count, a view outside
//!   its buffer or a value that is not finite is refused: logged, counted in
//!   [`AssetStats`], the entity keeps no [`Instances`], the link and the rest of the world go
//!   on. Memory: 64 bytes per instance, at most 2.7 times what was received.
//! - **Drawing** (feature `render`): see [`render`]. The entity's own mesh draw is turned off
//!   (the plugin gives it `RenderLayers::none()` while it has [`Instances`]), so the mesh
//!   appears once per instance and not also at the entity itself.
//!
//! Spec: `spec/core/components/instance.jaw`.

use std::collections::{HashMap, HashSet};

use bevy::camera::visibility::RenderLayers;
use bevy::ecs::lifecycle::HookContext;
use bevy::ecs::world::DeferredWorld;
use bevy::prelude::*;

use crate::assets::export::AssetExport;
use crate::assets::skin::BufferSlice;
use crate::assets::sync::{
    AssetImport, AssetStats, BufferArrived, buffer_body, buffer_of, delete_buffer,
};
use crate::assets::users::{Users, buffer_readers, modified};
use crate::assets::{OobServer, asset_type};
use crate::codec::{
    AssetID, BufferAssetID, BufferView, InstanceComponent, InstanceType, Vec2 as WVec2,
    Vec3 as WVec3,
};
use crate::mirror::{
    AssetRefusal, EntityIds, EntityResolver, MirrorAppExt, MirrorComponent, MirrorError, Mirrored,
    Outgoing, RefusalReason, Refused, Shared, SharedId, send_tick,
};
use crate::schedule::NoodlesSystems;

pub use noodles2::assets::Instance;

#[cfg(feature = "render")]
pub mod render;

/// Instances of one mesh: an asset, so many entities can share one set and the GPU buffer is
/// uploaded once per set (and again when the asset changes).
#[derive(Asset, TypePath, Debug, Clone, Default, PartialEq)]
pub struct InstanceSet {
    /// The instances, in the entity's local space.
    pub instances: Vec<Instance>,
}

impl InstanceSet {
    /// A set of one instance per transform (texture transform identity).
    pub fn from_transforms(transforms: impl IntoIterator<Item = Transform>) -> Self {
        InstanceSet {
            instances: transforms
                .into_iter()
                .map(instance_from_transform)
                .collect(),
        }
    }
}

/// An [`Instance`] placed, turned and scaled like `t`, showing its whole texture.
pub fn instance_from_transform(t: Transform) -> Instance {
    Instance {
        position: t.translation.extend(0.0).to_array(),
        rotation: t.rotation.to_array(),
        texture: [0.0, 0.0, 1.0, 1.0],
        scale: t.scale.extend(0.0).to_array(),
    }
}

/// Draw this entity's mesh and material once per instance of the set (see the
/// [module documentation](self)). While present, the entity has `RenderLayers::none()`, so
/// Bevy's own mesh pipeline does not also draw it.
#[derive(Component, Debug, Clone, PartialEq, Default)]
#[component(on_add = hide_from_mesh_pipeline, on_remove = show_to_mesh_pipeline)]
pub struct Instances(pub Handle<InstanceSet>);

fn hide_from_mesh_pipeline(mut world: DeferredWorld, ctx: HookContext) {
    world
        .commands()
        .entity(ctx.entity)
        .insert(RenderLayers::none());
}

fn show_to_mesh_pipeline(mut world: DeferredWorld, ctx: HookContext) {
    if let Ok(mut e) = world.commands().get_entity(ctx.entity) {
        e.try_remove::<RenderLayers>();
    }
}

/// How the instances of an [`InstanceView`] are laid out in their buffer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum InstanceLayout {
    /// `FullFloatInstance`: 64 bytes, four `f32` vectors.
    #[default]
    FullFloat,
    /// `ReducedInstance`: 24 bytes, positions quantized over `[min, max]`, the uniform scale
    /// over `[scale.x, scale.y]`, rotations and texture transforms normalized to `[-1, 1]`.
    Reduced {
        /// `quant_bb_min`.
        min: Vec3,
        /// `quant_bb_max`.
        max: Vec3,
        /// `quant_scale`.
        scale: Vec2,
    },
}

/// The NOODLES2 `InstanceComponent` (Core component 4) of an entity: where its instances are.
/// The plugin derives it from [`Instances`] on the Upstream and turns it into [`Instances`] on
/// the Downstream; apps normally do not touch it.
#[derive(Component, Debug, Clone, Copy, PartialEq, Default)]
pub struct InstanceView {
    /// The slice of a Buffer asset holding the instances.
    pub view: BufferSlice,
    /// How many instances (the view is exactly `count × stride` bytes).
    pub count: u32,
    /// Their layout.
    pub layout: InstanceLayout,
}

impl InstanceView {
    /// The wire form.
    pub fn to_component(&self) -> InstanceComponent {
        let (ty, min, max, scale) = match self.layout {
            InstanceLayout::FullFloat => {
                (InstanceType::FullFloat, Vec3::ZERO, Vec3::ZERO, Vec2::ZERO)
            }
            InstanceLayout::Reduced { min, max, scale } => (InstanceType::Reduced, min, max, scale),
        };
        let s = self.view;
        InstanceComponent::new(
            BufferView::new(
                s.offset,
                s.length,
                BufferAssetID::new(AssetID::new(s.buffer)),
            ),
            self.count,
            ty,
            WVec3::new(min.x, min.y, min.z),
            WVec3::new(max.x, max.y, max.z),
            WVec2::new(scale.x, scale.y),
        )
    }
}

impl MirrorComponent for InstanceView {
    type Wire = InstanceComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 4;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<InstanceComponent> {
        Some(self.to_component())
    }
    fn from_wire(w: InstanceComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        let v = |v: &WVec3| Vec3::new(v.x.get(), v.y.get(), v.z.get());
        let view = BufferSlice {
            buffer: w.view.asset_id.id.id.get(),
            offset: w.view.offset.get(),
            length: w.view.length.get(),
        };
        Ok(InstanceView {
            view,
            count: w.instance_count.get(),
            // Decoding refused layouts outside the enum.
            layout: match w.instance_type() {
                InstanceType::FullFloat => InstanceLayout::FullFloat,
                InstanceType::Reduced => InstanceLayout::Reduced {
                    min: v(&w.quant_bb_min),
                    max: v(&w.quant_bb_max),
                    scale: Vec2::new(w.quant_scale.x.get(), w.quant_scale.y.get()),
                },
            },
        })
    }
}

/// Mirrors instanced geometry both ways and (with `render`) draws it. Added by
/// [`NoodlesPlugin`](crate::NoodlesPlugin).
pub struct InstancesPlugin;

impl Plugin for InstancesPlugin {
    fn build(&self, app: &mut App) {
        crate::schedule::configure(app);
        if !app.world().contains_resource::<AssetServer>() {
            // Without Bevy's assets there is no `InstanceSet`: instances stay raw data.
            debug!("no AssetPlugin in this app: instances are kept raw, not mirrored");
            return;
        }
        app.init_asset::<InstanceSet>()
            .init_resource::<InstanceExport>()
            .init_resource::<InstanceImport>()
            .mirror_component::<InstanceView>()
            .add_observer(
                |remove: On<Remove, Shared>, mut export: ResMut<InstanceExport>| {
                    export.forget(remove.entity);
                },
            )
            // Shared instances that went: their removal goes out.
            .add_observer(
                |remove: On<Remove, Instances>,
                 mut export: ResMut<InstanceExport>,
                 shared: Query<(), With<Shared>>,
                 mut commands: Commands| {
                    export.forget(remove.entity);
                    if shared.contains(remove.entity)
                        && let Ok(mut e) = commands.get_entity(remove.entity)
                    {
                        e.try_remove::<InstanceView>();
                    }
                },
            )
            .add_systems(
                PostUpdate,
                (note_modified_sets, export_instances.run_if(send_tick))
                    .chain()
                    .in_set(NoodlesSystems::ExportAssets),
            )
            .add_systems(
                PreUpdate,
                apply_instances
                    .in_set(NoodlesSystems::ImportAssets)
                    .after(crate::assets::sync::import_assets),
            );
        #[cfg(feature = "render")]
        app.add_plugins(render::InstancedRenderPlugin);
    }
}

/// What the Upstream exported for instances: one buffer per [`InstanceSet`], kept while a shared
/// entity uses it. Kept up to date from changes and removals.
#[derive(Resource, Default)]
pub struct InstanceExport {
    exported: HashMap<AssetId<InstanceSet>, u64>,
    users: Users<AssetId<InstanceSet>>,
    unused: Vec<AssetId<InstanceSet>>,
    waiting: HashSet<Entity>,
    modified: HashSet<AssetId<InstanceSet>>,
}

impl InstanceExport {
    fn forget(&mut self, e: Entity) {
        if let Some(set) = self.users.remove(e) {
            self.unused.push(set);
        }
        self.waiting.remove(&e);
    }
}

fn note_modified_sets(
    mut events: MessageReader<AssetEvent<InstanceSet>>,
    mut export: ResMut<InstanceExport>,
) {
    export.modified.extend(modified(&mut events));
}

/// Upstream, on send ticks: derive [`InstanceView`] from shared [`Instances`] that changed (or
/// waited for their set), export their sets, delete the buffers no entity uses any more.
#[expect(clippy::too_many_arguments, reason = "one system exports instances")]
#[expect(clippy::type_complexity, reason = "change-detection filters")]
fn export_instances(
    mut state: ResMut<InstanceExport>,
    mut export: ResMut<AssetExport>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    sets: Res<Assets<InstanceSet>>,
    changed: Query<
        Entity,
        (
            With<Shared>,
            Or<(Changed<Instances>, Added<SharedId>)>,
            With<Instances>,
        ),
    >,
    mut users: Query<(&Instances, Option<&mut InstanceView>), With<SharedId>>,
    oob: Option<Res<OobServer>>,
    mut commands: Commands,
) {
    let oob = oob.as_deref();
    let state = &mut *state;
    let mut todo: HashSet<Entity> = std::mem::take(&mut state.waiting);
    todo.extend(changed.iter());
    for id in std::mem::take(&mut state.modified) {
        if let Some(buffer) = state.exported.remove(&id) {
            delete_buffer(&mut out, oob, buffer);
            todo.extend(state.users.users_of(&id));
        }
    }
    for e in todo {
        let Ok((instances, view)) = users.get_mut(e) else {
            continue;
        };
        let id = instances.0.id();
        let Some(set) = sets.get(id) else {
            state.waiting.insert(e);
            continue;
        };
        let Ok(count) = u32::try_from(set.instances.len()) else {
            warn!("instances of entity {e}: more than 2^32 instances; not shared");
            continue;
        };
        let length = u64::from(count) * noodles2::assets::FULL_FLOAT_BYTES;
        let buffer = match state.exported.get(&id) {
            Some(&b) => b,
            None => {
                let b = export.allocate();
                let bytes = noodles2::assets::encode_full_float(&set.instances);
                let Some(body) = buffer_body(bytes, b, oob) else {
                    continue;
                };
                out.modify_asset((0, asset_type::BUFFER, b), body);
                stats.exported += 1;
                state.exported.insert(id, b);
                b
            }
        };
        if let Some(old) = state.users.set(e, id) {
            state.unused.push(old);
        }
        let new = InstanceView {
            view: BufferSlice {
                buffer,
                offset: 0,
                length,
            },
            count,
            layout: InstanceLayout::FullFloat,
        };
        match view {
            Some(mut v) => {
                v.set_if_neq(new);
            }
            None => {
                commands.entity(e).try_insert(new);
            }
        }
    }
    for id in std::mem::take(&mut state.unused) {
        if !state.users.is_used(&id)
            && let Some(buffer) = state.exported.remove(&id)
        {
            delete_buffer(&mut out, oob, buffer);
        }
    }
}

/// Downstream: instance views waiting for their buffer.
#[derive(Resource, Default)]
pub struct InstanceImport {
    pending: HashSet<Entity>,
}

/// Downstream: turn received [`InstanceView`]s into [`Instances`].
#[expect(
    clippy::too_many_arguments,
    reason = "reads views, buffers and their news"
)]
fn apply_instances(
    mut state: ResMut<InstanceImport>,
    import: Res<AssetImport>,
    mut sets: ResMut<Assets<InstanceSet>>,
    mut stats: ResMut<AssetStats>,
    changed: Query<Entity, (Changed<InstanceView>, With<Mirrored>)>,
    views: Query<(Entity, &InstanceView, &Mirrored, Option<&Instances>)>,
    mut arrived: MessageReader<BufferArrived>,
    mut removed: RemovedComponents<InstanceView>,
    mut commands: Commands,
) {
    for e in removed.read() {
        state.pending.remove(&e);
        if !views.contains(e)
            && let Ok(mut em) = commands.get_entity(e)
        {
            em.try_remove::<Instances>();
        }
    }
    // Also the views whose buffer got new bytes (replaced under the same id).
    let work = buffer_readers(
        &mut state.pending,
        changed.iter(),
        &mut arrived,
        views.iter().map(|(e, v, m, _)| (e, m.link, v.view.buffer)),
    );
    for e in work {
        let Ok((_, view, mirrored, current)) = views.get(e) else {
            continue;
        };
        let wire = view.to_component();
        let decoded = match buffer_of(&import, mirrored.link, &wire.view) {
            Ok(Some(buffer)) => {
                noodles2::assets::decode_instances(&wire, &buffer).map_err(|e| e.to_string())
            }
            Ok(None) => {
                state.pending.insert(e);
                continue;
            }
            Err(reason) => Err(reason),
        };
        match decoded {
            Ok(instances) => {
                let set = InstanceSet { instances };
                match current {
                    // The same asset, new content: the render world uploads it again.
                    Some(Instances(h)) => {
                        let _ = sets.insert(h.id(), set);
                    }
                    None => {
                        commands.entity(e).try_insert(Instances(sets.add(set)));
                    }
                }
            }
            Err(reason) => {
                stats.refuse(AssetRefusal {
                    link: mirrored.link,
                    what: Refused::Instances {
                        entity: mirrored.id,
                    },
                    reason: RefusalReason::Invalid(reason),
                });
                commands.entity(e).try_remove::<Instances>();
            }
        }
    }
}
