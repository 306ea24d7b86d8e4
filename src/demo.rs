//! The built-in demo scene: what `examples/host.rs` shares, what the viewer shows with no
//! argument, and what the tests mirror.
//!
//! A named root with `entities` named children moving on circles, one light of each kind, a
//! hidden entity, and (when the app has mesh and image assets) a lit ground, several meshes, a
//! textured cube and a small hierarchy, a glass and a clear-coated sphere, a billboard sign with
//! text on it, labels, a belt of 3,000 instanced cubes, a skinned arm that waves and a blob
//! whose morph target swells (clips played on every node), and a sky that lights the scene, with
//! materials when the app has Bevy's renderer (feature `render`), so a screenshot shows at once
//! whether mirroring works.
//!
//! It also exposes a [`Global`] parameter panel ([`crate::parameters`]):
//! a title, a "motion" modes switch (orbit, with its "speed" range, or paused), a "spheres"
//! range (how many movers are shown), a "color" select (the movers' color) and a "reset" button
//! that calls the demo's [`DEMO_RESET`] endpoint. Downstreams change them by proposal; the demo
//! makes each accepted state valid and writes corrections back ([`DemoParams`]). At their
//! defaults the scene looks as it always did.
//!
//! Every object is selectable ([`CanSelect`]). The textured cube may be moved on the ground
//! (within ±4 units), turned about its vertical axis and scaled (0.5 to 2 on each axis); the green
//! torus may be lifted (0.3 to 3 units) and turned freely, and activating it (a double click in
//! the viewer) calls [`DEMO_TURN`], which turns it by 45°. The demo holds accepted moves to those
//! limits ([`hold_to_affordances`]) whatever a Downstream proposed.

use std::f32::consts::TAU;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::asset::RenderAssetUsages;
use bevy::image::{Image, ImageSampler};
use bevy::prelude::*;
use wgpu_types::{Extent3d, TextureDimension, TextureFormat};

use bevy::mesh::morph::{MeshMorphWeights, MorphAttributes};
use bevy::mesh::skinning::{SkinnedMesh, SkinnedMeshInverseBindposes};

use crate::animation::{
    AnimSampler, ClipChannel, ClipTarget, Interpolation, LoopMode, NoodlesAnimator, NoodlesClip,
    Sampler, Target, ValueType,
};
use crate::codec::Any;
use crate::interaction::{
    Activate, AxisLimit, AxisLimits, CanRotate, CanScale, CanSelect, CanTranslate, Interactive,
    constrain,
};
use crate::link::ListenError;
use crate::mirror::{Global, Shared};
use crate::net::{ListenerReady, NoodlesListener};
use crate::parameters::{
    ButtonKind, ContainerKind, LabelKind, ModeKind, ModeOption, ParamDefinition, ParamState,
    ParamValue, Parameter, ParameterRoot, RangeKind, SelectKind, SelectOption,
    parameter_permissions,
};
use crate::plugin::NoodlesPlugin;
use crate::rpc::{RpcAppExt, RpcCall, RpcEndpoint, RpcResult};
use crate::text::Text3d;

/// Spawns and animates the demo scene.
#[derive(Debug, Clone)]
pub struct DemoScenePlugin {
    /// Number of moving children of the root (default 100).
    pub entities: usize,
}

impl Default for DemoScenePlugin {
    fn default() -> Self {
        DemoScenePlugin { entities: 100 }
    }
}

/// A moving child of the demo root.
#[derive(Component, Debug, Clone, Copy)]
pub struct DemoMover {
    /// The mover's number; sets its starting phase.
    pub index: usize,
    /// Radius of its circle around the root.
    pub radius: f32,
    /// Angular speed in radians per second.
    pub speed: f32,
    /// Base height above the root.
    pub height: f32,
}

/// The demo's root entity.
#[derive(Component, Debug)]
pub struct DemoRoot;

#[derive(Resource, Clone, Copy)]
struct DemoCount(usize);

impl Plugin for DemoScenePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(DemoCount(self.entities))
            .insert_resource(DemoParams::defaults(self.entities))
            .init_resource::<DemoClock>()
            .add_rpc_handler(DEMO_RESET, reset_demo_params)
            .add_rpc_handler(DEMO_TURN, turn_torus)
            .add_systems(Startup, (spawn_demo, spawn_demo_parameters))
            .add_systems(
                Update,
                (apply_demo_params, show_demo_params, animate_demo).chain(),
            )
            .add_systems(Update, hold_to_affordances);
        #[cfg(feature = "render")]
        app.add_systems(Update, paint_demo.after(show_demo_params));
    }
}

/// How a demo object looks. With Bevy's renderer (feature `render`) it becomes a
/// `StandardMaterial` (one per distinct look); a headless build shares the meshes without
/// materials.
#[derive(Component, Debug, Clone, PartialEq)]
pub struct DemoLook {
    /// Base color.
    pub color: Color,
    /// Base color texture.
    pub texture: Option<Handle<Image>>,
    /// Metallic factor.
    pub metallic: f32,
    /// Perceptual roughness.
    pub roughness: f32,
    /// Emitted light.
    pub emissive: LinearRgba,
    /// Specular transmission (glass), with a thickness of half a unit.
    pub transmission: f32,
    /// Clearcoat amount, with a smooth coat.
    pub clearcoat: f32,
}

impl DemoLook {
    fn color(color: Color) -> Self {
        DemoLook {
            color,
            texture: None,
            metallic: 0.0,
            roughness: 0.5,
            emissive: LinearRgba::BLACK,
            transmission: 0.0,
            clearcoat: 0.0,
        }
    }
}

/// Give every new or changed [`DemoLook`] its material (objects that look the same share one).
#[cfg(feature = "render")]
fn paint_demo(
    mut commands: Commands,
    new: Query<(Entity, &DemoLook), Changed<DemoLook>>,
    materials: Option<ResMut<Assets<StandardMaterial>>>,
    mut made: Local<Vec<(DemoLook, Handle<StandardMaterial>)>>,
) {
    let Some(mut materials) = materials else {
        return;
    };
    for (e, look) in &new {
        let handle = match made.iter().find(|(l, _)| l == look) {
            Some((_, h)) => h.clone(),
            None => {
                let h = materials.add(StandardMaterial {
                    base_color: look.color,
                    base_color_texture: look.texture.clone(),
                    metallic: look.metallic,
                    perceptual_roughness: look.roughness,
                    emissive: look.emissive,
                    specular_transmission: look.transmission,
                    thickness: if look.transmission > 0.0 { 0.5 } else { 0.0 },
                    clearcoat: look.clearcoat,
                    clearcoat_perceptual_roughness: 0.1,
                    ..default()
                });
                made.push((look.clone(), h.clone()));
                h
            }
        };
        commands.entity(e).insert(MeshMaterial3d(handle));
    }
}

/// The demo sky's brightness (cd/m² per unit of its texels).
pub const SKY_INTENSITY: f32 = 700.0;

/// A 64×32 equirectangular sky: deep blue above, pale at the horizon, dark earth below (sRGB).
pub fn sky_image() -> Image {
    let (w, h) = (64u32, 32u32);
    let mut data = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        let v = (y as f32 + 0.5) / h as f32; // 0 at the zenith, 1 at the nadir
        let [r, g, b] = if v < 0.5 {
            let t = v / 0.5;
            [30.0 + t * 170.0, 80.0 + t * 140.0, 180.0 + t * 60.0]
        } else {
            let t = (v - 0.5) / 0.5;
            [90.0 - t * 50.0, 80.0 - t * 45.0, 70.0 - t * 40.0]
        };
        for _ in 0..w {
            data.extend_from_slice(&[r as u8, g as u8, b as u8, 255]);
        }
    }
    Image::new(
        Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

/// A shared demo object: a mesh with a look, placed under `parent`.
fn object(
    name: &'static str,
    mesh: Handle<Mesh>,
    look: DemoLook,
    transform: Transform,
    parent: Entity,
) -> impl Bundle {
    (
        Name::new(name),
        Mesh3d(mesh),
        look,
        transform,
        ChildOf(parent),
        CanSelect,
        Shared,
    )
}

/// A 64×64 checkerboard in two colors (sRGB).
pub fn checker_image() -> Image {
    let (w, h) = (64u32, 64u32);
    let mut data = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let on = ((x / 8) + (y / 8)) % 2 == 0;
            data.extend_from_slice(if on {
                &[240, 200, 40, 255]
            } else {
                &[30, 60, 160, 255]
            });
        }
    }
    let mut img = Image::new(
        Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    );
    img.sampler = ImageSampler::nearest();
    img
}

/// The asset collections the demo fills, each present only if the app has it.
#[derive(bevy::ecs::system::SystemParam)]
struct DemoAssets<'w> {
    meshes: Option<ResMut<'w, Assets<Mesh>>>,
    images: Option<ResMut<'w, Assets<Image>>>,
    instance_sets: Option<ResMut<'w, Assets<crate::instances::InstanceSet>>>,
    bindposes: Option<ResMut<'w, Assets<SkinnedMeshInverseBindposes>>>,
    clips: Option<ResMut<'w, Assets<NoodlesClip>>>,
    samplers: Option<ResMut<'w, Assets<AnimSampler>>>,
}

fn spawn_demo(mut commands: Commands, count: Res<DemoCount>, assets: DemoAssets) {
    let DemoAssets {
        meshes,
        images,
        instance_sets,
        bindposes,
        clips,
        samplers,
    } = assets;
    let root = commands
        .spawn((
            Name::new("demo root"),
            Transform::default(),
            Visibility::default(),
            DemoRoot,
            Shared,
        ))
        .id();

    // Meshes, when the app has the asset types (their looks become materials with `render`).
    let mut mover_look: Option<(Handle<Mesh>, Vec<DemoLook>)> = None;
    if let (Some(mut meshes), Some(mut images)) = (meshes, images) {
        let ground = meshes.add(Plane3d::default().mesh().size(12.0, 12.0));
        commands.spawn(object(
            "ground",
            ground,
            DemoLook {
                roughness: 0.9,
                ..DemoLook::color(Color::srgb(0.35, 0.38, 0.42))
            },
            Transform::default(),
            root,
        ));

        let checker = images.add(checker_image());
        let cube = meshes.add(Cuboid::new(1.5, 1.5, 1.5));
        let pedestal = commands
            .spawn(object(
                "textured cube",
                cube,
                DemoLook {
                    texture: Some(checker.clone()),
                    roughness: 0.6,
                    ..DemoLook::color(Color::WHITE)
                },
                Transform::from_xyz(0.0, 0.75, 0.0),
                root,
            ))
            .insert((
                Interactive,
                CanTranslate(AxisLimits {
                    x: AxisLimit::range(-4.0, 4.0),
                    y: AxisLimit::locked(0.75),
                    z: AxisLimit::range(-4.0, 4.0),
                }),
                CanRotate(AxisLimits {
                    x: AxisLimit::locked(0.0),
                    y: AxisLimit::FREE,
                    z: AxisLimit::locked(0.0),
                }),
                CanScale(AxisLimits::splat(AxisLimit::range(0.5, 2.0))),
            ))
            .id();
        let sphere = meshes.add(Sphere::new(0.45).mesh().uv(32, 16));
        commands.spawn(object(
            "red sphere",
            sphere.clone(),
            DemoLook {
                metallic: 0.2,
                roughness: 0.4,
                ..DemoLook::color(Color::srgb(0.9, 0.1, 0.1))
            },
            Transform::from_xyz(0.0, 1.3, 0.0),
            pedestal,
        ));
        let torus = meshes.add(Torus::new(0.3, 0.6));
        let turn = commands
            .spawn((Name::new(DEMO_TURN), RpcEndpoint::new(DEMO_TURN), Shared))
            .id();
        commands.spawn((
            object(
                "green torus",
                torus,
                DemoLook::color(Color::srgb(0.1, 0.8, 0.2)),
                Transform::from_xyz(-3.5, 0.6, 2.0),
                root,
            ),
            Interactive,
            CanTranslate(AxisLimits {
                x: AxisLimit::locked(-3.5),
                y: AxisLimit::range(0.3, 3.0),
                z: AxisLimit::locked(2.0),
            }),
            CanRotate(AxisLimits::FREE),
            Activate(vec![turn]),
            DemoTorus,
        ));
        let cyl = meshes.add(Cylinder::new(0.4, 1.6));
        commands.spawn(object(
            "glowing pillar",
            cyl,
            DemoLook {
                emissive: LinearRgba::rgb(0.2, 0.6, 2.0),
                ..DemoLook::color(Color::WHITE)
            },
            Transform::from_xyz(3.5, 0.8, -2.0),
            root,
        ));

        // Extended materials: glass (transmission, thickness) and a clear-coated metal.
        commands.spawn(object(
            "glass sphere",
            sphere.clone(),
            DemoLook {
                transmission: 0.9,
                roughness: 0.05,
                ..DemoLook::color(Color::srgb(0.8, 0.95, 1.0))
            },
            Transform::from_xyz(-1.8, 0.5, 2.8),
            root,
        ));
        commands.spawn(object(
            "clearcoat sphere",
            sphere.clone(),
            DemoLook {
                clearcoat: 1.0,
                metallic: 0.8,
                roughness: 0.6,
                ..DemoLook::color(Color::srgb(0.7, 0.05, 0.3))
            },
            Transform::from_xyz(2.2, 0.5, 2.2),
            root,
        ));
        // A sign that always faces the viewer, turning around the up axis only.
        let sign = commands
            .spawn((
                object(
                    "billboard sign",
                    meshes.add(Rectangle::new(2.4, 0.6)),
                    DemoLook {
                        emissive: LinearRgba::rgb(1.5, 1.2, 0.2),
                        ..DemoLook::color(Color::srgb(1.0, 0.85, 0.2))
                    },
                    Transform::from_xyz(0.0, 3.2, 0.0),
                    root,
                ),
                crate::billboard::Billboard::YAxisOnly,
            ))
            .id();
        // Words in the scene: a title on the sign, labels that turn to the viewer.
        commands.spawn((
            Name::new("sign text"),
            Text3d {
                text: "bevy_noodles2".into(),
                color: Color::srgb(0.1, 0.05, 0.3),
                height: 0.3,
            },
            // Just in front of the sign, which turns it with itself.
            Transform::from_xyz(0.0, 0.0, 0.02),
            ChildOf(sign),
            Shared,
        ));
        for (text, at) in [
            ("glass", Vec3::new(-1.8, 1.25, 2.8)),
            ("clearcoat", Vec3::new(2.2, 1.25, 2.2)),
        ] {
            commands.spawn((
                Name::new(format!("{text} label")),
                Text3d {
                    text: text.into(),
                    color: Color::WHITE,
                    height: 0.4,
                },
                Transform::from_translation(at),
                crate::billboard::Billboard::FaceCamera,
                ChildOf(root),
                Shared,
            ));
        }
        // A belt of small cubes around the ground: one entity, DEMO_INSTANCES instances drawn
        // on the GPU, each showing its own part of the checker texture.
        if let Some(mut sets) = instance_sets {
            let set = sets.add(demo_belt(DEMO_INSTANCES));
            commands.spawn((
                object(
                    "instanced belt",
                    meshes.add(Cuboid::new(0.16, 0.16, 0.16)),
                    DemoLook {
                        texture: Some(checker),
                        roughness: 0.5,
                        ..DemoLook::color(Color::WHITE)
                    },
                    Transform::default(),
                    root,
                ),
                crate::instances::Instances(set),
            ));
        }
        // Animation (clips played on every node at the authority's time): a skinned arm that
        // waves and a blob whose morph target swells and shrinks.
        if let (Some(mut bindposes), Some(mut clips), Some(mut samplers)) =
            (bindposes, clips, samplers)
        {
            let mut animated = DemoAnimated {
                commands: &mut commands,
                meshes: &mut meshes,
                clips: &mut clips,
                samplers: &mut samplers,
                root,
            };
            animated.waving_arm(&mut bindposes, Vec3::new(-4.6, 0.0, 4.4));
            animated.breathing_blob(Vec3::new(4.6, 0.7, -4.4));
        }
        // A sky that lights the scene (and is shown: the `Skybox`).
        if let Ok(cube) = crate::assets::environment::equirect_to_cubemap(&sky_image()) {
            let cube = images.add(cube);
            commands.spawn((
                Name::new("sky"),
                bevy::light::GeneratedEnvironmentMapLight {
                    environment_map: cube.clone(),
                    intensity: SKY_INTENSITY,
                    ..default()
                },
                bevy::light::Skybox {
                    image: Some(cube),
                    brightness: SKY_INTENSITY,
                    ..default()
                },
                crate::mirror::Global,
                Transform::default(),
                ChildOf(root),
                Shared,
            ));
        }

        let palette = mover_palette();
        mover_look = Some((
            meshes.add(
                Sphere::new(0.12)
                    .mesh()
                    .ico(2)
                    .unwrap_or_else(|_| Sphere::new(0.12).mesh().uv(12, 8)),
            ),
            palette.into_iter().map(DemoLook::color).collect(),
        ));
    }

    for i in 0..count.0 {
        let m = DemoMover {
            index: i,
            radius: 2.0 + (i % 7) as f32 * 0.5,
            speed: 0.3 + (i % 5) as f32 * 0.1,
            height: 0.3 + (i % 4) as f32 * 0.5,
        };
        let mut e = commands.spawn((
            Name::new(format!("mover {i}")),
            m,
            Transform::from_translation(mover_position(&m, 0.0)),
            ChildOf(root),
            Shared,
        ));
        if let Some((mesh, looks)) = &mover_look {
            e.insert((Mesh3d(mesh.clone()), looks[i % looks.len()].clone()));
        }
    }

    commands.spawn((
        Name::new("sun"),
        DirectionalLight {
            illuminance: 4000.0,
            shadow_maps_enabled: true,
            ..default()
        },
        Transform::from_xyz(4.0, 8.0, 4.0).looking_at(Vec3::ZERO, Vec3::Y),
        ChildOf(root),
        Shared,
    ));
    commands.spawn((
        Name::new("warm point light"),
        PointLight {
            color: Color::srgb(1.0, 0.8, 0.6),
            intensity: 200_000.0,
            range: 20.0,
            ..default()
        },
        Transform::from_xyz(-3.0, 3.0, 3.0),
        ChildOf(root),
        Shared,
    ));
    commands.spawn((
        Name::new("blue spot light"),
        SpotLight {
            color: Color::srgb(0.4, 0.6, 1.0),
            intensity: 300_000.0,
            range: 25.0,
            inner_angle: 0.3,
            outer_angle: 0.6,
            ..default()
        },
        Transform::from_xyz(3.0, 5.0, 3.0).looking_at(Vec3::ZERO, Vec3::Y),
        ChildOf(root),
        Shared,
    ));
    commands.spawn((
        Name::new("hidden marker"),
        Transform::from_xyz(0.0, 5.0, 0.0),
        Visibility::Hidden,
        ChildOf(root),
        Shared,
    ));
}

/// Spawns the demo's animated objects.
struct DemoAnimated<'a, 'w, 's> {
    commands: &'a mut Commands<'w, 's>,
    meshes: &'a mut Assets<Mesh>,
    clips: &'a mut Assets<NoodlesClip>,
    samplers: &'a mut Assets<AnimSampler>,
    root: Entity,
}

/// Height of a segment of the demo's skinned arm.
const ARM_SEGMENT: f32 = 0.8;

impl DemoAnimated<'_, '_, '_> {
    /// A sampler, added (the keys are the demo's own, so they are valid).
    fn sampler(
        &mut self,
        value_type: ValueType,
        times: Vec<f32>,
        values: Vec<f32>,
    ) -> Handle<AnimSampler> {
        let sampler = Sampler::new(Interpolation::Linear, value_type, times, values)
            .expect("the demo's keys are well formed");
        self.samplers.add(AnimSampler(sampler))
    }

    /// A skinned column of three joints (a chain of shared entities under it) whose upper two
    /// joints bend back and forth: `Skin`, `AnimationAsset`, `AnimSamplerAsset` (one sampler
    /// shared by two channels) and `AnimatorComponent` on the wire.
    fn waving_arm(&mut self, bindposes: &mut Assets<SkinnedMeshInverseBindposes>, at: Vec3) {
        let arm = self
            .commands
            .spawn(object(
                "skinned arm",
                self.meshes.add(arm_mesh()),
                DemoLook {
                    roughness: 0.4,
                    ..DemoLook::color(Color::srgb(0.95, 0.45, 0.3))
                },
                Transform::from_translation(at),
                self.root,
            ))
            .id();
        // Joints: a chain under the arm, one segment apart; each inverse bind matrix undoes
        // its joint's place in the arm.
        let mut joints = Vec::new();
        let mut parent = arm;
        for j in 0..3 {
            let y = if j == 0 { 0.0 } else { ARM_SEGMENT };
            parent = self
                .commands
                .spawn((
                    Name::new(format!("arm joint {j}")),
                    Transform::from_xyz(0.0, y, 0.0),
                    ChildOf(parent),
                    Shared,
                ))
                .id();
            joints.push(parent);
        }
        let inverse: Vec<Mat4> = (0..3)
            .map(|j| Mat4::from_translation(Vec3::new(0.0, -(j as f32) * ARM_SEGMENT, 0.0)))
            .collect();
        self.commands.entity(arm).insert(SkinnedMesh {
            inverse_bindposes: bindposes.add(SkinnedMeshInverseBindposes::from(inverse)),
            joints: joints.clone(),
        });
        // Bend around z, then back (ping-pong); both upper joints play the same keys.
        let bend = |a: f32| Quat::from_rotation_z(a).to_array();
        let keys = self.sampler(
            ValueType::Rotation,
            vec![0.0, 1.6],
            [bend(-0.55), bend(0.55)].concat(),
        );
        let channels = joints[1..]
            .iter()
            .map(|&j| ClipChannel {
                sampler: keys.clone(),
                target: ClipTarget::Entity(j, Target::Rotation),
            })
            .collect();
        self.play_back_and_forth(arm, 1.6, channels);
    }

    /// A sphere with one morph target (six lobes pushed out) whose weight swells and shrinks:
    /// a mesh with morph targets, `MorphWeightsComponent` and a clip on morph weight 0.
    fn breathing_blob(&mut self, at: Vec3) {
        let blob = self
            .commands
            .spawn((
                object(
                    "morphing blob",
                    self.meshes.add(blob_mesh()),
                    DemoLook {
                        roughness: 0.3,
                        ..DemoLook::color(Color::srgb(0.85, 0.2, 0.75))
                    },
                    Transform::from_translation(at),
                    self.root,
                ),
                MeshMorphWeights::Value { weights: vec![0.0] },
            ))
            .id();
        let keys = self.sampler(ValueType::Float, vec![0.0, 1.2], vec![0.0, 1.0]);
        let channel = ClipChannel {
            sampler: keys,
            target: ClipTarget::Entity(blob, Target::MorphWeight(0)),
        };
        self.play_back_and_forth(blob, 1.2, vec![channel]);
    }

    /// `entity` plays a clip of `channels` forwards and backwards, from authority time 0.
    fn play_back_and_forth(&mut self, entity: Entity, duration: f64, channels: Vec<ClipChannel>) {
        let clip = self.clips.add(NoodlesClip { duration, channels });
        self.commands
            .entity(entity)
            .insert(NoodlesAnimator::playing(clip, 0.0).with_loop_mode(LoopMode::PingPong));
    }
}

/// The arm's column: 2.4 high from its base, each vertex bound to the two joints nearest its
/// height.
fn arm_mesh() -> Mesh {
    let mesh = Cylinder::new(0.2, 3.0 * ARM_SEGMENT)
        .mesh()
        .resolution(16)
        .segments(12)
        .anchor(bevy::mesh::CylinderAnchor::Bottom)
        .build();
    let heights: Vec<f32> = match mesh.attribute(Mesh::ATTRIBUTE_POSITION) {
        Some(bevy::mesh::VertexAttributeValues::Float32x3(p)) => p.iter().map(|p| p[1]).collect(),
        _ => Vec::new(),
    };
    let (mut index, mut weight) = (Vec::new(), Vec::new());
    for y in heights {
        // Halfway up a segment a vertex follows its joint alone; between the middles of two
        // segments it blends from one joint to the next.
        let f = y / ARM_SEGMENT - 0.5;
        let j = f.floor().clamp(0.0, 1.0);
        let t = (f - j).clamp(0.0, 1.0);
        index.push([j as u16, j as u16 + 1, 0, 0]);
        weight.push([1.0 - t, t, 0.0, 0.0]);
    }
    mesh.with_inserted_attribute(
        Mesh::ATTRIBUTE_JOINT_INDEX,
        bevy::mesh::VertexAttributeValues::Uint16x4(index),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_JOINT_WEIGHT, weight)
}

/// The blob: a sphere whose one morph target pushes six lobes around its equator outwards.
fn blob_mesh() -> Mesh {
    let mesh = Sphere::new(0.5).mesh().uv(32, 16);
    let targets = match mesh.attribute(Mesh::ATTRIBUTE_POSITION) {
        Some(bevy::mesh::VertexAttributeValues::Float32x3(p)) => p
            .iter()
            .map(|p| {
                let n = Vec3::from(*p).normalize_or_zero();
                let lobes = (6.0 * n.z.atan2(n.x)).sin().max(0.0) * (1.0 - n.y * n.y);
                MorphAttributes::new(n * 0.35 * lobes, Vec3::ZERO, Vec3::ZERO)
            })
            .collect(),
        _ => Vec::new(),
    };
    mesh.with_morph_targets(targets)
}

/// Instances in the demo's belt.
pub const DEMO_INSTANCES: usize = 3000;

/// The demo's belt of `n` small cubes: a ring just outside the ground, each cube turned and
/// sized its own way, showing a quarter of the checker texture from its own offset.
pub fn demo_belt(n: usize) -> crate::instances::InstanceSet {
    // A small deterministic generator, so the picture is the same on every run.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32
    };
    let instances = (0..n)
        .map(|i| {
            let a = i as f32 / n as f32 * TAU + next() * 0.05;
            let r = 7.2 + next() * 1.6;
            let y = 0.2 + next() * 1.2;
            let t = Transform::from_xyz(a.cos() * r, y, a.sin() * r)
                .with_rotation(Quat::from_euler(
                    EulerRot::XYZ,
                    next() * TAU,
                    next() * TAU,
                    next() * TAU,
                ))
                .with_scale(Vec3::splat(0.6 + next() * 0.9));
            let mut inst = crate::instances::instance_from_transform(t);
            inst.texture = [
                (next() * 4.0).floor() / 4.0,
                (next() * 4.0).floor() / 4.0,
                0.25,
                0.25,
            ];
            inst
        })
        .collect();
    crate::instances::InstanceSet { instances }
}

/// The movers' colors: mover `i` has color `i % 3` under the default [`DemoParams::color`].
fn mover_palette() -> [Color; 3] {
    [
        Color::srgb(0.95, 0.55, 0.1),
        Color::srgb(0.6, 0.2, 0.9),
        Color::srgb(0.1, 0.7, 0.9),
    ]
}

/// The demo's "color" options: id and label. Id 0 (the default) is the mixed palette; the
/// others paint every mover the same.
pub const DEMO_COLORS: [(i32, &str); 5] = [
    (0, "mixed"),
    (1, "orange"),
    (2, "violet"),
    (3, "cyan"),
    (4, "white"),
];

/// The color of mover `index` under color option `color` (see [`DEMO_COLORS`]).
pub fn mover_color(color: i32, index: usize) -> Color {
    let palette = mover_palette();
    match color {
        1..=3 => palette[color as usize - 1],
        4 => Color::WHITE,
        _ => palette[index % palette.len()],
    }
}

/// The name of the demo's reset endpoint: it puts every demo parameter back to its default.
pub const DEMO_RESET: &str = "demo.reset";

/// What the in-process demo host lets Downstreams propose: parameter states and `Transform`s
/// (moves of the movable objects, held to their limits by [`hold_to_affordances`]).
pub fn demo_permissions() -> crate::net::LinkPermissions {
    let mut p = parameter_permissions();
    if let crate::net::Grant::Only(set) = &mut p.propose_components {
        set.insert((0, 20));
    }
    p
}

/// The endpoint that turns the green torus by 45° (its `Activate` target).
pub const DEMO_TURN: &str = "demo.turn";

/// The green torus (turned by [`DEMO_TURN`]).
#[derive(Component, Debug)]
struct DemoTorus;

fn turn_torus(In(_): In<RpcCall>, mut torus: Query<&mut Transform, With<DemoTorus>>) -> RpcResult {
    for mut t in &mut torus {
        t.rotate_y(std::f32::consts::FRAC_PI_4);
    }
    Ok(Any::Void)
}

/// Holds the demo's movable objects to their affordances: a `Transform` that changed (by an
/// accepted proposal: nothing else moves them) is limited by [`constrain`] from the last one
/// allowed, so a Downstream that ignores the limits gets its move clamped, and the corrected
/// pose is what every Downstream sees.
#[expect(clippy::type_complexity, reason = "a query")]
pub fn hold_to_affordances(
    mut moved: Query<
        (
            Entity,
            &mut Transform,
            Option<&CanTranslate>,
            Option<&CanRotate>,
            Option<&CanScale>,
        ),
        (
            Changed<Transform>,
            Or<(With<CanTranslate>, With<CanRotate>, With<CanScale>)>,
            With<Shared>,
        ),
    >,
    mut allowed: Local<std::collections::HashMap<Entity, Transform>>,
) {
    for (e, mut t, translate, rotate, scale) in &mut moved {
        let held = match allowed.get(&e) {
            Some(last) => constrain(last, &t, translate, rotate, scale),
            None => *t,
        };
        if held != *t {
            *t = held;
        }
        allowed.insert(e, held);
    }
}

/// The "motion" modes: orbit (id 0, the default) shows the "speed" range; paused (id 1) stops
/// the movers.
pub const DEMO_MOTION_ORBIT: i32 = 0;
/// See [`DEMO_MOTION_ORBIT`].
pub const DEMO_MOTION_PAUSED: i32 = 1;

/// Largest "speed" factor.
pub const DEMO_MAX_SPEED: f64 = 4.0;

/// The demo's parameter values (Upstream): what its parameters last accepted.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct DemoParams {
    /// Movers' speed factor, 0 to [`DEMO_MAX_SPEED`] in steps of 0.1 (default 1).
    pub speed: f64,
    /// How many movers are shown, 0 to all of them (default all); the others are hidden.
    pub spheres: i64,
    /// The movers' color option (see [`DEMO_COLORS`]; default 0, the mixed palette).
    pub color: i32,
    /// The "motion" mode: [`DEMO_MOTION_ORBIT`] or [`DEMO_MOTION_PAUSED`].
    pub motion: i32,
}

impl DemoParams {
    /// The defaults, with `movers` movers: the scene as it looks without parameters.
    pub fn defaults(movers: usize) -> Self {
        DemoParams {
            speed: 1.0,
            spheres: movers as i64,
            color: 0,
            motion: DEMO_MOTION_ORBIT,
        }
    }

    /// The state parameter `which` shows for these values.
    pub fn state_of(&self, which: DemoParam) -> ParamState {
        match which {
            DemoParam::Speed => ParamState::Range(ParamValue::Float(self.speed)),
            DemoParam::Spheres => ParamState::Range(ParamValue::Int(self.spheres)),
            DemoParam::Color => ParamState::Select(self.color),
            DemoParam::Motion => ParamState::Modes(self.motion),
        }
    }

    /// Take a valid state of parameter `which`.
    fn set(&mut self, which: DemoParam, state: &ParamState) {
        match (which, state) {
            (DemoParam::Speed, ParamState::Range(v)) => self.speed = v.as_f64(),
            (DemoParam::Spheres, ParamState::Range(v)) => self.spheres = v.as_i64(),
            (DemoParam::Color, ParamState::Select(id)) => self.color = *id,
            (DemoParam::Motion, ParamState::Modes(id)) => self.motion = *id,
            _ => {}
        }
    }
}

/// Which demo parameter an entity is (on the demo's parameter entities).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoParam {
    /// The movers' speed factor.
    Speed,
    /// How many movers are shown.
    Spheres,
    /// The movers' color.
    Color,
    /// Orbit or paused.
    Motion,
}

/// The movers' own clock: advances at the "speed" factor, stands still while paused.
#[derive(Resource, Debug, Default)]
struct DemoClock(f32);

/// The demo's parameter panel (see the [module documentation](self)).
fn spawn_demo_parameters(mut commands: Commands, count: Res<DemoCount>, params: Res<DemoParams>) {
    let reset = commands
        .spawn((Name::new(DEMO_RESET), RpcEndpoint::new(DEMO_RESET), Shared))
        .id();
    let mut param = |label: &str, definition: ParamDefinition, state: ParamState| {
        commands
            .spawn((
                Name::new(format!("parameter: {label}")),
                Parameter::new(label),
                definition,
                state,
                Shared,
            ))
            .id()
    };
    let title = param(
        "",
        ParamDefinition::Label {
            text: "bevy_noodles2 demo".into(),
            kind: LabelKind::Title,
        },
        ParamState::Label,
    );
    let speed = param(
        "speed",
        ParamDefinition::Range {
            min: ParamValue::Float(0.0),
            max: ParamValue::Float(DEMO_MAX_SPEED),
            step: Some(ParamValue::Float(0.1)),
            unit: "×".into(),
            kind: RangeKind::Slider,
        },
        params.state_of(DemoParam::Speed),
    );
    let motion = param(
        "motion",
        ParamDefinition::Modes {
            none_allowed: false,
            options: vec![
                ModeOption {
                    label: "orbit".into(),
                    id: DEMO_MOTION_ORBIT,
                    icon: "media.play".into(),
                    children: vec![speed],
                },
                ModeOption {
                    label: "paused".into(),
                    id: DEMO_MOTION_PAUSED,
                    icon: "media.pause".into(),
                    children: Vec::new(),
                },
            ],
            kind: ModeKind::Exclusive,
        },
        params.state_of(DemoParam::Motion),
    );
    let spheres = param(
        "spheres",
        ParamDefinition::Range {
            min: ParamValue::Int(0),
            max: ParamValue::Int(count.0 as i64),
            step: Some(ParamValue::Int(1)),
            unit: String::new(),
            kind: RangeKind::Step,
        },
        params.state_of(DemoParam::Spheres),
    );
    let color = param(
        "color",
        ParamDefinition::Select {
            none_allowed: false,
            options: DEMO_COLORS
                .iter()
                .map(|(id, label)| SelectOption::new(*id, *label))
                .collect(),
            kind: SelectKind::Dropdown,
        },
        params.state_of(DemoParam::Color),
    );
    let reset_button = param(
        "reset",
        ParamDefinition::Button {
            target: reset,
            payload: Vec::<Any>::new(),
            kind: ButtonKind::Destructive,
        },
        ParamState::Button,
    );
    commands.entity(speed).insert(DemoParam::Speed);
    commands.entity(motion).insert(DemoParam::Motion);
    commands.entity(spheres).insert(DemoParam::Spheres);
    commands.entity(color).insert(DemoParam::Color);
    commands.spawn((
        Name::new("demo parameters"),
        Parameter::new("demo"),
        ParamDefinition::Container {
            kind: ContainerKind::Section,
            children: vec![title, motion, spheres, color, reset_button],
        },
        ParamState::Container,
        ParameterRoot,
        Global,
        Shared,
    ));
}

/// Make every changed demo parameter state valid (a proposal may have set anything of the
/// right type): numbers are clamped and snapped, an unknown option keeps the previous value.
/// A state that had to change is written back, so every Downstream sees the valid one.
fn apply_demo_params(
    mut params: ResMut<DemoParams>,
    mut changed: Query<(&DemoParam, &ParamDefinition, &mut ParamState), Changed<ParamState>>,
) {
    for (which, definition, mut state) in &mut changed {
        let valid = match definition.correct_state(&state) {
            Ok(s) => s,
            Err(e) => {
                warn!("demo parameter {which:?}: {e}; keeping the previous value");
                params.state_of(*which)
            }
        };
        if *state != valid {
            *state = valid.clone();
        }
        if params.state_of(*which) != valid {
            params.set(*which, &valid);
        }
    }
}

/// The reset endpoint's handler: every demo parameter back to its default.
fn reset_demo_params(
    In(_): In<RpcCall>,
    count: Res<DemoCount>,
    mut params: ResMut<DemoParams>,
    mut states: Query<(Entity, &DemoParam, Option<&mut ParamState>)>,
    mut commands: Commands,
) -> RpcResult {
    *params = DemoParams::defaults(count.0);
    for (e, which, state) in &mut states {
        let want = params.state_of(*which);
        match state {
            Some(mut s) if *s != want => *s = want,
            Some(_) => {}
            None => {
                commands.entity(e).insert(want);
            }
        }
    }
    Ok(Any::Void)
}

/// Show the parameters' values: movers past "spheres" are hidden, all take the "color".
fn show_demo_params(
    params: Res<DemoParams>,
    mut movers: Query<(
        Entity,
        &DemoMover,
        Option<&mut Visibility>,
        Option<&mut DemoLook>,
    )>,
    mut commands: Commands,
) {
    if !params.is_changed() {
        return;
    }
    for (e, m, visibility, look) in &mut movers {
        let want = if (m.index as i64) < params.spheres {
            Visibility::Inherited
        } else {
            Visibility::Hidden
        };
        match visibility {
            Some(mut v) if *v != want => *v = want,
            Some(_) => {}
            None if want == Visibility::Hidden => {
                commands.entity(e).insert(want);
            }
            None => {}
        }
        if let Some(mut look) = look {
            let color = mover_color(params.color, m.index);
            if look.color != color {
                look.color = color;
            }
        }
    }
}

/// Where a mover is at time `t` seconds.
pub fn mover_position(m: &DemoMover, t: f32) -> Vec3 {
    let phase = m.index as f32 / 17.0 * TAU;
    let a = phase + t * m.speed;
    Vec3::new(
        a.cos() * m.radius,
        m.height + (t * 1.3 + phase).sin() * 0.2,
        a.sin() * m.radius,
    )
}

/// Move the movers along their circles, on the demo's clock (which runs at the "speed" factor
/// and stands still while paused; at the defaults it is the app's elapsed time).
fn animate_demo(
    time: Res<Time>,
    params: Res<DemoParams>,
    mut clock: ResMut<DemoClock>,
    mut q: Query<(&DemoMover, &mut Transform)>,
) {
    if params.motion != DEMO_MOTION_PAUSED {
        clock.0 += time.delta_secs() * params.speed as f32;
    }
    let t = clock.0;
    for (m, mut tr) in &mut q {
        let at = mover_position(m, t);
        if tr.translation != at {
            tr.translation = at;
        }
    }
}

/// The demo scene hosted by a headless Upstream app on a thread of its own: the viewer's
/// built-in scene, and the render test's. Dropping it stops the app and joins the thread.
pub struct DemoHost {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why a [`DemoHost`] did not start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DemoHostError {
    /// The host's thread could not be spawned.
    #[error("cannot start the demo host thread: {0}")]
    Thread(String),
    /// The host could not listen.
    #[error("the demo host could not listen: {0}")]
    Listen(ListenError),
    /// The host did not report listening in time.
    #[error("the demo host did not start within 30 s")]
    Timeout,
}

impl DemoHost {
    /// Starts the host listening on a free loopback port, and waits (up to 30 s) until it
    /// accepts connections.
    pub fn spawn(
        session_name: impl Into<String>,
        scene: DemoScenePlugin,
    ) -> Result<DemoHost, DemoHostError> {
        let session_name = session_name.into();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Result<String, ListenError>>();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("demo host".into())
            .spawn(move || {
                let mut app = App::new();
                // About 60 frames a second, until the host is dropped.
                app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(
                    Duration::from_secs_f64(1.0 / 60.0),
                )))
                .add_plugins(AssetPlugin::default())
                .init_asset::<Mesh>()
                .init_asset::<Image>()
                .init_asset::<SkinnedMeshInverseBindposes>();
                #[cfg(feature = "render")]
                app.init_asset::<StandardMaterial>();
                app.add_plugins(NoodlesPlugin {
                    session_name,
                    ..default()
                })
                .add_plugins(scene)
                .add_systems(Startup, |mut commands: Commands| {
                    // Downstreams may edit the demo's parameters and move its movable objects.
                    commands
                        .spawn(NoodlesListener::new("ws://127.0.0.1:0").grant(demo_permissions()));
                })
                .add_systems(Update, move |mut ready: MessageReader<ListenerReady>| {
                    for r in ready.read() {
                        let _ = tx.send(r.result.clone().map(|a| format!("ws://{a}")));
                    }
                })
                .add_systems(Update, move |mut exit: MessageWriter<AppExit>| {
                    if stopped.load(Ordering::Relaxed) {
                        exit.write(AppExit::Success);
                    }
                });
                app.run();
            })
            .map_err(|e| DemoHostError::Thread(e.to_string()))?;
        // Built before waiting, so that returning an error below stops and joins the thread.
        let mut host = DemoHost {
            url: String::new(),
            stop,
            thread: Some(thread),
        };
        host.url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(url)) => url,
            Ok(Err(e)) => return Err(DemoHostError::Listen(e)),
            Err(_) => return Err(DemoHostError::Timeout),
        };
        Ok(host)
    }

    /// `ws://127.0.0.1:PORT`, where the host listens.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for DemoHost {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
