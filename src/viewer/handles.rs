//! Transform handles that obey the Upstream: one handle per free axis of the selected entity's
//! [`CanTranslate`], [`CanRotate`] or [`CanScale`] (by [`HandleMode`]), a translucent ghost
//! while dragging, one proposal on release, the ghost gone when the answer comes.
//!
//! Dragging is read from Bevy picking's `Pointer<DragStart>`, `Pointer<Drag>` and
//! `Pointer<DragEnd>` on an [`AxisHandle`]. The pointer's motion since the drag started is
//! projected on the axis as the camera shows it (one local unit of the axis spans as many
//! pixels as it does on screen); rotation turns 0.01 rad per pixel. Without a camera to project
//! with, 100 pixels (right or up) are one unit.

use bevy::light::NotShadowCaster;
use bevy::picking::Pickable;
use bevy::picking::events::{Drag, DragEnd, DragStart, Out, Over, Pointer};
use bevy::picking::pointer::PointerButton;
use bevy::prelude::*;

use super::{PointerCapture, Selection, ViewerLog};
use crate::interaction::{AxisLimits, CanRotate, CanScale, CanTranslate, constrain};
use crate::mirror::Mirrored;
use crate::net::LinkClosed;
use crate::proposals::{Proposal, ProposalReply, Proposals};

/// Which handles a selected entity shows (keys W, E, R; buttons in the inspector).
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum HandleMode {
    /// Arrows along the free translation axes.
    #[default]
    Translate,
    /// Rings around the free rotation axes.
    Rotate,
    /// Boxes on the free scale axes.
    Scale,
}

/// A handle: dragging it moves the selected entity along (or around) `axis` (0 x, 1 y, 2 z).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxisHandle {
    /// 0, 1 or 2.
    pub axis: usize,
    /// What dragging it does.
    pub mode: HandleMode,
}

/// The root of the handles, placed on the selected entity every frame.
#[derive(Component, Debug)]
struct HandleRoot {
    target: Entity,
    mode: HandleMode,
    free: BVec3,
}

/// A translucent copy of an entity at the pose being dragged or proposed.
#[derive(Component, Debug, Clone, Copy)]
pub struct Ghost {
    /// The entity it shows.
    pub of: Entity,
}

/// The drag in progress.
#[derive(Resource, Debug, Default)]
struct ActiveDrag(Option<DragState>);

#[derive(Debug, Clone, Copy)]
struct DragState {
    target: Entity,
    handle: AxisHandle,
    camera: Entity,
    /// The entity's `Transform` when the drag started.
    start: Transform,
    /// The pose limited to what the Upstream allows.
    wanted: Transform,
    ghost: Entity,
}

/// A proposal sent from a drag, waiting for its answer; its ghost shows the proposed pose.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PendingEdit {
    /// The link the proposal went to.
    pub link: Entity,
    /// The proposal's transaction id.
    pub transaction_id: u32,
    /// The entity moved.
    pub entity: Entity,
    /// Its ghost.
    pub ghost: Entity,
    /// The proposed `Transform`.
    pub pose: Transform,
}

/// Drag proposals waiting for their answer.
#[derive(Resource, Debug, Default)]
pub struct PendingEdits(pub Vec<PendingEdit>);

/// The ghosts' translucent material.
#[derive(Resource)]
struct GhostLook(Option<Handle<StandardMaterial>>);

pub(super) fn build(app: &mut App) {
    app.init_resource::<HandleMode>()
        .init_resource::<ActiveDrag>()
        .init_resource::<PendingEdits>()
        .add_observer(hover_in)
        .add_observer(hover_out)
        .add_observer(drag_start)
        .add_observer(drag)
        .add_observer(drag_end)
        .add_systems(
            Update,
            (switch_mode, answers, forget_closed_links, sync_handles).chain(),
        )
        .add_systems(
            PostUpdate,
            place_handles.before(bevy::transform::TransformSystems::Propagate),
        );
}

type Affordances<'a> = (
    &'a Transform,
    Option<&'a CanTranslate>,
    Option<&'a CanRotate>,
    Option<&'a CanScale>,
);

fn limits_for(
    mode: HandleMode,
    (_, t, r, s): (
        &Transform,
        Option<&CanTranslate>,
        Option<&CanRotate>,
        Option<&CanScale>,
    ),
) -> Option<AxisLimits> {
    match mode {
        HandleMode::Translate => t.map(|t| t.0),
        HandleMode::Rotate => r.map(|r| r.0),
        HandleMode::Scale => s.map(|s| s.0),
    }
}

fn switch_mode(
    keys: Option<Res<ButtonInput<KeyCode>>>,
    capture: Res<PointerCapture>,
    mut mode: ResMut<HandleMode>,
) {
    let Some(keys) = keys else { return };
    if capture.over_panel {
        return;
    }
    let next = if keys.just_pressed(KeyCode::KeyW) {
        HandleMode::Translate
    } else if keys.just_pressed(KeyCode::KeyE) {
        HandleMode::Rotate
    } else if keys.just_pressed(KeyCode::KeyR) {
        HandleMode::Scale
    } else {
        return;
    };
    if *mode != next {
        *mode = next;
    }
}

/// Spawns, respawns or removes the handles as the selection, the mode or the affordances change.
#[expect(clippy::too_many_arguments, reason = "a system")]
fn sync_handles(
    mut commands: Commands,
    selection: Res<Selection>,
    mode: Res<HandleMode>,
    drag: Res<ActiveDrag>,
    targets: Query<Affordances, With<Mirrored>>,
    roots: Query<(Entity, &HandleRoot)>,
    mut meshes: Option<ResMut<Assets<Mesh>>>,
    mut materials: Option<ResMut<Assets<StandardMaterial>>>,
    mut capture: ResMut<PointerCapture>,
) {
    if drag.0.is_some() {
        return;
    }
    let wanted = selection.0.and_then(|e| {
        let a = targets.get(e).ok()?;
        let free = limits_for(*mode, a)?.free();
        free.any().then_some((e, free))
    });
    let mut keep = false;
    for (root, h) in &roots {
        if wanted.is_some_and(|(e, free)| h.target == e && h.mode == *mode && h.free == free) {
            keep = true;
        } else {
            commands.entity(root).despawn();
            // A despawned handle sends no `Pointer<Out>`.
            capture.over_handle = false;
        }
    }
    let Some((target, free)) = wanted else { return };
    if keep {
        return;
    }
    let root = commands
        .spawn((
            HandleRoot {
                target,
                mode: *mode,
                free,
            },
            Transform::default(),
            Visibility::default(),
            Name::new("handles"),
        ))
        .id();
    let colors = [
        Color::srgb(0.9, 0.2, 0.2),
        Color::srgb(0.3, 0.85, 0.3),
        Color::srgb(0.25, 0.45, 1.0),
    ];
    for axis in (0..3).filter(|a| free.test(*a)) {
        let dir = Vec3::AXES[axis];
        // Meshes point along +Y: turn them onto the axis.
        let turn = Quat::from_rotation_arc(Vec3::Y, dir);
        let mut handle = commands.spawn((
            AxisHandle { axis, mode: *mode },
            ChildOf(root),
            Transform::from_rotation(turn),
            Visibility::default(),
            Pickable::default(),
            NotShadowCaster,
        ));
        if let (Some(meshes), Some(materials)) = (meshes.as_mut(), materials.as_mut()) {
            let material = materials.add(StandardMaterial {
                base_color: colors[axis],
                unlit: true,
                // Drawn over the object they move (a constant depth bias large enough to win
                // against anything at a similar distance).
                depth_bias: HANDLE_DEPTH_BIAS,
                ..default()
            });
            let mesh = meshes.add(handle_mesh(*mode));
            handle.insert((Mesh3d(mesh), MeshMaterial3d(material)));
        }
    }
}

/// See where the handles' material is made.
const HANDLE_DEPTH_BIAS: f32 = 1.0e8;

/// A handle along +Y: an arrow, a ring or a shaft with a box.
fn handle_mesh(mode: HandleMode) -> Mesh {
    let shaft = || {
        Cylinder::new(0.03, 1.0)
            .mesh()
            .build()
            .translated_by(Vec3::Y * 0.5)
    };
    let tip = match mode {
        HandleMode::Rotate => return Torus::new(0.93, 1.07).mesh().build(),
        HandleMode::Translate => Cone::new(0.14, 0.3).mesh().build(),
        HandleMode::Scale => Cuboid::from_length(0.24).mesh().build(),
    };
    let mut mesh = shaft();
    // Both are Bevy primitives with the same attributes; should merging fail, the shaft alone
    // still works as a handle.
    if mesh.merge(&tip.translated_by(Vec3::Y * 1.1)).is_err() {
        mesh = shaft();
    }
    mesh
}

/// The frame handles live in: for translation and rotation the parent's (limits are on the
/// local translation and rotation), for scale the entity's own axes.
fn handle_frame(mode: HandleMode, parent: &GlobalTransform, local: &Transform) -> Quat {
    let (_, parent_rotation, _) = parent.to_scale_rotation_translation();
    match mode {
        HandleMode::Scale => parent_rotation * local.rotation,
        _ => parent_rotation,
    }
}

/// Screen-constant size: about a tenth of the distance to the nearest 3D camera.
fn handle_size(at: Vec3, cameras: &Query<(&Camera, &GlobalTransform), With<Camera3d>>) -> f32 {
    cameras
        .iter()
        .filter(|(c, _)| c.is_active)
        .map(|(_, t)| t.translation().distance(at) * 0.12)
        .fold(None, |a: Option<f32>, d| Some(a.map_or(d, |a| a.min(d))))
        .filter(|d| d.is_finite() && *d > 0.0)
        .unwrap_or(1.0)
}

fn parent_global(
    entity: Entity,
    parents: &Query<&ChildOf>,
    globals: &Query<&GlobalTransform>,
) -> GlobalTransform {
    parents
        .get(entity)
        .ok()
        .and_then(|p| globals.get(p.parent()).ok())
        .copied()
        .unwrap_or_default()
}

fn place_handles(
    drag: Res<ActiveDrag>,
    mut roots: Query<(&HandleRoot, &mut Transform)>,
    targets: Query<&Transform, Without<HandleRoot>>,
    parents: Query<&ChildOf>,
    globals: Query<&GlobalTransform>,
    cameras: Query<(&Camera, &GlobalTransform), With<Camera3d>>,
) {
    for (h, mut t) in &mut roots {
        let Ok(local) = targets.get(h.target) else {
            continue;
        };
        let local = match drag.0 {
            Some(d) if d.target == h.target => d.wanted,
            _ => *local,
        };
        let parent = parent_global(h.target, &parents, &globals);
        let at = parent.transform_point(local.translation);
        let size = handle_size(at, &cameras);
        *t = Transform {
            translation: at,
            rotation: handle_frame(h.mode, &parent, &local),
            scale: Vec3::splat(size),
        };
    }
}

fn hover_in(
    event: On<Pointer<Over>>,
    handles: Query<(), With<AxisHandle>>,
    mut capture: ResMut<PointerCapture>,
) {
    if handles.contains(event.event_target()) {
        capture.over_handle = true;
    }
}

fn hover_out(
    event: On<Pointer<Out>>,
    handles: Query<(), With<AxisHandle>>,
    mut capture: ResMut<PointerCapture>,
) {
    if handles.contains(event.event_target()) {
        capture.over_handle = false;
    }
}

/// How far (in units along `dir`, a world-space vector for one unit) the pointer moved.
fn along_axis(
    camera: Option<(&Camera, &GlobalTransform)>,
    origin: Vec3,
    dir: Vec3,
    distance: Vec2,
) -> f32 {
    if let Some((camera, at)) = camera
        && let (Ok(a), Ok(b)) = (
            camera.world_to_viewport(at, origin),
            camera.world_to_viewport(at, origin + dir),
        )
    {
        let s = b - a;
        let len2 = s.length_squared();
        if len2 > 1e-6 {
            return distance.dot(s) / len2;
        }
    }
    (distance.x - distance.y) / 100.0
}

#[expect(clippy::too_many_arguments, reason = "an observer")]
fn drag_start(
    mut event: On<Pointer<DragStart>>,
    mut commands: Commands,
    handles: Query<&AxisHandle>,
    roots: Query<&HandleRoot>,
    parents: Query<&ChildOf>,
    targets: Query<&Transform, With<Mirrored>>,
    meshes: Query<(Entity, &Mesh3d, &GlobalTransform)>,
    children: Query<&Children>,
    globals: Query<&GlobalTransform>,
    mut look: Local<Option<GhostLook>>,
    mut materials: Option<ResMut<Assets<StandardMaterial>>>,
    mut active: ResMut<ActiveDrag>,
    mut capture: ResMut<PointerCapture>,
) {
    let Ok(handle) = handles.get(event.event_target()) else {
        return;
    };
    event.propagate(false);
    if event.event.button != PointerButton::Primary {
        return;
    }
    let Some(root) = parents
        .get(event.event_target())
        .ok()
        .and_then(|p| roots.get(p.parent()).ok())
    else {
        return;
    };
    let Ok(start) = targets.get(root.target) else {
        return;
    };
    let look = look.get_or_insert_with(|| {
        GhostLook(materials.as_mut().map(|m| {
            m.add(StandardMaterial {
                base_color: Color::srgba(0.6, 0.8, 1.0, 0.35),
                alpha_mode: AlphaMode::Blend,
                unlit: true,
                ..default()
            })
        }))
    });
    let ghost = spawn_ghost(
        &mut commands,
        root.target,
        &meshes,
        &children,
        &globals,
        look.0.clone(),
    );
    active.0 = Some(DragState {
        target: root.target,
        handle: *handle,
        camera: event.event.hit.camera,
        start: *start,
        wanted: *start,
        ghost,
    });
    capture.dragging_handle = true;
}

/// A ghost of `target`: copies of the meshes at and under it, placed relative to it.
fn spawn_ghost(
    commands: &mut Commands,
    target: Entity,
    meshes: &Query<(Entity, &Mesh3d, &GlobalTransform)>,
    children: &Query<&Children>,
    globals: &Query<&GlobalTransform>,
    material: Option<Handle<StandardMaterial>>,
) -> Entity {
    let base = globals.get(target).copied().unwrap_or_default();
    let ghost = commands
        .spawn((
            Ghost { of: target },
            base.compute_transform(),
            Visibility::default(),
            Pickable::IGNORE,
            Name::new("ghost"),
        ))
        .id();
    let inverse = base.affine().inverse();
    let mut parts: Vec<Entity> = vec![target];
    parts.extend(children.iter_descendants(target));
    for part in parts {
        let Ok((_, mesh, global)) = meshes.get(part) else {
            continue;
        };
        let relative = GlobalTransform::from(inverse * global.affine()).compute_transform();
        let mut c = commands.spawn((
            ChildOf(ghost),
            relative,
            Visibility::default(),
            Mesh3d(mesh.0.clone()),
            Pickable::IGNORE,
            NotShadowCaster,
        ));
        if let Some(m) = &material {
            c.insert(MeshMaterial3d(m.clone()));
        }
    }
    ghost
}

#[expect(clippy::too_many_arguments, reason = "an observer")]
fn drag(
    mut event: On<Pointer<Drag>>,
    mut active: ResMut<ActiveDrag>,
    handles: Query<(), With<AxisHandle>>,
    affordances: Query<Affordances, With<Mirrored>>,
    parents: Query<&ChildOf>,
    globals: Query<&GlobalTransform>,
    cameras: Query<(&Camera, &GlobalTransform), With<Camera3d>>,
    mut ghosts: Query<&mut Transform, (With<Ghost>, Without<Mirrored>)>,
) {
    if !handles.contains(event.event_target()) {
        return;
    }
    event.propagate(false);
    let Some(state) = active.0.as_mut() else {
        return;
    };
    let Ok(a) = affordances.get(state.target) else {
        return;
    };
    let parent = parent_global(state.target, &parents, &globals);
    let start = state.start;
    let axis = state.handle.axis;
    let unit = Vec3::AXES[axis];
    let camera = cameras.get(state.camera).ok();
    let origin = parent.transform_point(start.translation);
    let mut wanted = start;
    match state.handle.mode {
        HandleMode::Translate => {
            let dir = parent.affine().transform_vector3(unit);
            wanted.translation[axis] += along_axis(camera, origin, dir, event.event.distance);
        }
        HandleMode::Rotate => {
            let angle = (event.event.distance.x - event.event.distance.y) * 0.01;
            wanted.rotation = (Quat::from_axis_angle(unit, angle) * start.rotation).normalize();
        }
        HandleMode::Scale => {
            let frame = handle_frame(HandleMode::Scale, &parent, &start);
            let size = handle_size(origin, &cameras);
            let amount = along_axis(camera, origin, frame * unit * size, event.event.distance);
            wanted.scale[axis] = start.scale[axis] * (1.0 + amount).max(0.01);
        }
    }
    state.wanted = constrain(&start, &wanted, a.1, a.2, a.3);
    if let Ok(mut g) = ghosts.get_mut(state.ghost) {
        *g = GlobalTransform::from(parent.affine() * state.wanted.compute_affine())
            .compute_transform();
    }
}

#[expect(clippy::too_many_arguments, reason = "an observer")]
fn drag_end(
    mut event: On<Pointer<DragEnd>>,
    mut commands: Commands,
    handles: Query<(), With<AxisHandle>>,
    mut active: ResMut<ActiveDrag>,
    mirrored: Query<(&Mirrored, Option<&Name>)>,
    mut proposals: Proposals,
    mut pending: ResMut<PendingEdits>,
    mut capture: ResMut<PointerCapture>,
    mut log: ResMut<ViewerLog>,
    time: Res<Time>,
) {
    if !handles.contains(event.event_target()) {
        return;
    }
    event.propagate(false);
    capture.dragging_handle = false;
    let Some(state) = active.0.take() else {
        return;
    };
    let now = time.elapsed_secs_f64();
    let Ok((m, name)) = mirrored.get(state.target) else {
        commands.entity(state.ghost).despawn();
        return;
    };
    let who = name.map_or_else(|| state.target.to_string(), |n| n.to_string());
    if state.wanted == state.start {
        commands.entity(state.ghost).despawn();
        return;
    }
    let mut p = Proposal::new();
    p.insert(state.target, state.wanted);
    match proposals.send(m.link, p) {
        Ok(transaction_id) => pending.0.push(PendingEdit {
            link: m.link,
            transaction_id,
            entity: state.target,
            ghost: state.ghost,
            pose: state.wanted,
        }),
        Err(e) => {
            log.push(now, true, format!("moving {who}: {e}"));
            commands.entity(state.ghost).despawn();
        }
    }
}

/// The answer to a drag's proposal: the ghost goes (the canonical transaction, applied before
/// the reply is read, moved the entity if it was accepted).
fn answers(
    mut commands: Commands,
    mut replies: MessageReader<ProposalReply>,
    mut pending: ResMut<PendingEdits>,
    names: Query<&Name>,
    mut log: ResMut<ViewerLog>,
    time: Res<Time>,
) {
    for r in replies.read() {
        let Some(i) = pending
            .0
            .iter()
            .position(|p| p.link == r.link && p.transaction_id == r.transaction_id)
        else {
            continue;
        };
        let edit = pending.0.remove(i);
        if let Ok(mut g) = commands.get_entity(edit.ghost) {
            g.despawn();
        }
        let who = names
            .get(edit.entity)
            .map_or_else(|_| edit.entity.to_string(), |n| n.to_string());
        if r.accepted() {
            log.push(time.elapsed_secs_f64(), false, format!("moved {who}"));
        } else {
            log.push(
                time.elapsed_secs_f64(),
                true,
                format!(
                    "{who} snapped back: the Upstream rejected the move with code {}",
                    r.code
                ),
            );
        }
    }
}

fn forget_closed_links(
    mut commands: Commands,
    mut closed: MessageReader<LinkClosed>,
    mut pending: ResMut<PendingEdits>,
) {
    for c in closed.read() {
        pending.0.retain(|p| {
            if p.link == c.link {
                if let Ok(mut g) = commands.get_entity(p.ghost) {
                    g.despawn();
                }
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_camera_a_hundred_pixels_are_one_unit() {
        assert_eq!(
            along_axis(None, Vec3::ZERO, Vec3::X, Vec2::new(250.0, 0.0)),
            2.5
        );
        assert_eq!(
            along_axis(None, Vec3::ZERO, Vec3::X, Vec2::new(0.0, 100.0)),
            -1.0
        );
    }
}
