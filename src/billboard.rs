//! Billboards: `BillboardComponent` (Core (0, 2)) ↔ [`Billboard`].
//!
//! A billboard entity turns to the camera: its world rotation is replaced, every frame, by one
//! that makes its local +Z axis point back at the viewer ([`Billboard::FaceCamera`]: the camera's
//! own orientation, so the entity's XY plane is the screen's; [`Billboard::YAxisOnly`]: only
//! around the world's up axis, the entity stays upright). Its `Transform`'s rotation is ignored,
//! as the spec says; its translation and scale are kept, and its children follow.
//!
//! The rotation is applied to [`GlobalTransform`] right after Bevy's transform propagation, so
//! the `Transform` (what is mirrored) is never touched, and visibility, rendering and picking see
//! the turned entity in the same frame.
//!
//! Which camera: the one marked [`BillboardCamera`] if there is one, else the active 3D camera
//! with the highest `order` (what is drawn last, on top). One `GlobalTransform` per entity means
//! one orientation per frame: with several 3D cameras active at once, billboards face the chosen
//! one.
//!
//! Spec: `spec/core/components/billboard.jaw`.

use bevy::camera::visibility::VisibilitySystems;
use bevy::prelude::*;
use bevy::transform::TransformSystems;

use crate::codec::{BillboardComponent, BillboardMode};
use crate::mirror::{EntityIds, EntityResolver, MirrorAppExt, MirrorComponent, MirrorError};

/// The entity always faces the camera (Core `BillboardComponent`). See the
/// [module documentation](self).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Billboard {
    /// Fully face the camera: the entity takes the camera's orientation.
    #[default]
    FaceCamera,
    /// Turn only around the world's up (+Y) axis, towards the camera.
    YAxisOnly,
}

impl MirrorComponent for Billboard {
    type Wire = BillboardComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 2;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<BillboardComponent> {
        Some(BillboardComponent::new(match self {
            Billboard::FaceCamera => BillboardMode::FaceCamera,
            Billboard::YAxisOnly => BillboardMode::YAxisOnly,
        }))
    }
    fn from_wire(w: BillboardComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        // Decoding refused modes outside the enum.
        Ok(match w.mode() {
            BillboardMode::FaceCamera => Billboard::FaceCamera,
            BillboardMode::YAxisOnly => Billboard::YAxisOnly,
        })
    }
}

/// Marks the camera billboards face (see the [module documentation](self)).
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct BillboardCamera;

/// Mirrors [`Billboard`] and turns billboards to the camera every frame. Added by
/// [`NoodlesPlugin`](crate::NoodlesPlugin).
pub struct BillboardPlugin;

impl Plugin for BillboardPlugin {
    fn build(&self, app: &mut App) {
        app.mirror_component::<Billboard>().add_systems(
            PostUpdate,
            face_camera
                .after(TransformSystems::Propagate)
                .before(VisibilitySystems::CheckVisibility),
        );
    }
}

/// The world rotation a billboard of `mode` takes for a camera at `camera`.
pub fn billboard_rotation(mode: Billboard, camera: &GlobalTransform, at: Vec3) -> Quat {
    let (_, cam_rotation, cam_position) = camera.to_scale_rotation_translation();
    match mode {
        Billboard::FaceCamera => cam_rotation,
        Billboard::YAxisOnly => {
            // Towards the viewer along the camera's back axis, flattened onto the ground plane;
            // straight above or below, towards the camera's position instead.
            let back = cam_rotation * Vec3::Z;
            let mut d = Vec3::new(back.x, 0.0, back.z);
            if d.length_squared() < 1e-8 {
                d = Vec3::new(cam_position.x - at.x, 0.0, cam_position.z - at.z);
            }
            if d.length_squared() < 1e-8 {
                Quat::IDENTITY
            } else {
                Quat::from_rotation_y(d.x.atan2(d.z))
            }
        }
    }
}

fn turned(global: &GlobalTransform, mode: Billboard, camera: &GlobalTransform) -> GlobalTransform {
    let (scale, _, translation) = global.to_scale_rotation_translation();
    GlobalTransform::from(Transform {
        translation,
        rotation: billboard_rotation(mode, camera, translation),
        scale,
    })
}

/// What turning an entity (or following a turned parent) touches. Cameras are not turned.
type Turnable<'a> = (
    &'a mut GlobalTransform,
    Option<&'a Transform>,
    Option<&'a Billboard>,
);

type CameraOf<'a> = (
    &'a Camera,
    &'a GlobalTransform,
    Has<BillboardCamera>,
    Has<Camera3d>,
);

fn face_camera(
    cameras: Query<CameraOf, Without<Billboard>>,
    billboards: Query<(Entity, &Billboard)>,
    children: Query<&Children>,
    mut globals: Query<Turnable, Without<Camera>>,
) {
    if billboards.is_empty() {
        return;
    }
    let chosen = cameras
        .iter()
        .filter(|(c, _, marked, is3d)| *marked || (c.is_active && *is3d))
        .max_by_key(|(c, _, marked, _)| (*marked, c.order))
        .map(|(_, g, ..)| *g);
    let Some(camera) = chosen else {
        return;
    };
    for (e, mode) in &billboards {
        let Ok((mut global, ..)) = globals.get_mut(e) else {
            continue;
        };
        *global = turned(&global, *mode, &camera);
        let parent = *global;
        follow(e, parent, &camera, &children, &mut globals);
    }
}

/// Recompute the descendants of a turned entity (turning nested billboards too).
fn follow(
    e: Entity,
    parent: GlobalTransform,
    camera: &GlobalTransform,
    children: &Query<&Children>,
    globals: &mut Query<Turnable, Without<Camera>>,
) {
    let Ok(kids) = children.get(e) else {
        return;
    };
    for &child in kids {
        let Ok((mut global, local, mode)) = globals.get_mut(child) else {
            continue;
        };
        let mut g = parent.mul_transform(local.copied().unwrap_or_default());
        if let Some(mode) = mode {
            g = turned(&g, *mode, camera);
        }
        *global = g;
        follow(child, g, camera, children, globals);
    }
}
