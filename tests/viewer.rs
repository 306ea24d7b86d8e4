//! The viewer's client side over loopback, driven by Bevy picking's events (not a real mouse):
//! the interaction components mirrored, selection, handles that obey the limits, a ghost, one
//! proposal per drag, a rejected drag snapping back, activation invoking the endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bevy::camera::NormalizedRenderTarget;
use bevy::picking::backend::HitData;
use bevy::picking::events::{Click, Drag, DragEnd, DragStart, Pointer};
use bevy::picking::pointer::{Location, PointerButton, PointerId};
use bevy::prelude::*;
use bevy_noodles2::codec::Any;
use bevy_noodles2::interaction::{Activate, AxisLimit, AxisLimits, CanRotate};
use bevy_noodles2::prelude::*;
use bevy_noodles2::viewer::handles::{AxisHandle, Ghost, HandleMode, PendingEdits};
use bevy_noodles2::viewer::{Selection, ViewerLog, ViewerPlugin};

use crate::common::*;

#[derive(Resource, Clone, Default)]
struct Pokes(Arc<AtomicUsize>);

struct Scene {
    up: App,
    down: App,
    /// The Upstream's box.
    boxed: Entity,
    /// Its child (a lid), not selectable itself.
    lid: Entity,
    pokes: Arc<AtomicUsize>,
}

/// A headless Downstream with the viewer's client side (no panels, no rendering).
fn viewer_app(name: &str) -> App {
    let mut app = unfinished_asset_app(NoodlesPlugin {
        session_name: name.into(),
        ..default()
    });
    app.add_plugins(ViewerPlugin { ui: false });
    app.finish();
    app.cleanup();
    app
}

fn limits() -> CanTranslate {
    CanTranslate(AxisLimits {
        x: AxisLimit::range(-1.0, 1.0),
        y: AxisLimit::locked(0.0),
        // Invalid (min > max): the axis is locked and no handle shows.
        z: AxisLimit::range(2.0, -2.0),
    })
}

fn scene(name: &str, accept: bool) -> Scene {
    let mut up = asset_app(&format!("{name} up"));
    let pokes = Pokes::default();
    let counter = pokes.0.clone();
    up.insert_resource(pokes)
        .add_rpc_handler("poke", |In(_): In<RpcCall>, p: Res<Pokes>| -> RpcResult {
            Ok(Any::I64(p.0.fetch_add(1, Ordering::SeqCst) as i64 + 1))
        })
        .insert_resource(ProposalPolicy::new(move |_| {
            if accept {
                ProposalDecision::Accept
            } else {
                ProposalDecision::Deny
            }
        }));
    let endpoint = up
        .world_mut()
        .spawn((Name::new("poke"), RpcEndpoint::new("poke"), Shared))
        .id();
    let boxed = up
        .world_mut()
        .spawn((
            Name::new("box"),
            Transform::from_xyz(0.0, 0.0, 0.0),
            CanSelect,
            Interactive,
            limits(),
            CanRotate(AxisLimits::FREE),
            Activate(vec![endpoint]),
            Shared,
        ))
        .id();
    let lid = up
        .world_mut()
        .spawn((
            Name::new("lid"),
            Transform::default(),
            ChildOf(boxed),
            Shared,
        ))
        .id();
    let mut down = viewer_app(&format!("{name} down"));
    linked_with(&mut up, &mut down, granting_listener());
    let mut s = Scene {
        up,
        down,
        boxed,
        lid,
        pokes: counter,
    };
    let (boxed, lid) = (s.boxed, s.lid);
    run_until(
        &mut [&mut s.up, &mut s.down],
        Duration::from_secs(20),
        "the box, its lid and the endpoint to be mirrored with their components",
        |a| {
            let (up, down) = a.split_at_mut(1);
            let (Some(b), Some(l)) = (
                mirror_of(up[0], down[0], boxed),
                mirror_of(up[0], down[0], lid),
            ) else {
                return false;
            };
            let w = down[0].world();
            w.get::<CanSelect>(b).is_some()
                && w.get::<Activate>(b)
                    .is_some_and(|a| a.0.len() == 1 && w.get::<RpcEndpoint>(a.0[0]).is_some())
                && w.get::<ChildOf>(l).is_some_and(|p| p.parent() == b)
        },
    );
    s
}

impl Scene {
    /// The Downstream's box.
    fn box_down(&mut self) -> Entity {
        mirror_of(&self.up, &mut self.down, self.boxed).expect("mirrored")
    }

    /// The Downstream's lid.
    fn lid_down(&mut self) -> Entity {
        mirror_of(&self.up, &mut self.down, self.lid).expect("mirrored")
    }
}

fn location() -> Location {
    Location {
        target: NormalizedRenderTarget::None {
            width: 640,
            height: 480,
        },
        position: Vec2::new(320.0, 240.0),
    }
}

fn hit() -> HitData {
    HitData::new(Entity::PLACEHOLDER, 1.0, None, None)
}

fn click(app: &mut App, on: Entity, count: u8) {
    app.world_mut().trigger(Pointer::new(
        PointerId::Mouse,
        location(),
        Click {
            button: PointerButton::Primary,
            hit: hit(),
            duration: Duration::from_millis(80),
            count,
        },
        on,
    ));
    app.update();
}

fn handles(app: &mut App) -> Vec<(Entity, AxisHandle)> {
    let mut q = app.world_mut().query::<(Entity, &AxisHandle)>();
    let mut v: Vec<_> = q.iter(app.world()).map(|(e, h)| (e, *h)).collect();
    v.sort_by_key(|(_, h)| h.axis);
    v
}

fn drag(app: &mut App, handle: Entity, distance: Vec2) {
    let w = app.world_mut();
    w.trigger(Pointer::new(
        PointerId::Mouse,
        location(),
        DragStart {
            button: PointerButton::Primary,
            hit: hit(),
        },
        handle,
    ));
    // Apply the commands the observer queued (the ghost) before the pointer moves.
    w.flush();
    w.trigger(Pointer::new(
        PointerId::Mouse,
        location(),
        Drag {
            button: PointerButton::Primary,
            distance,
            delta: distance,
        },
        handle,
    ));
    w.flush();
}

fn release(app: &mut App, handle: Entity, distance: Vec2) {
    app.world_mut().trigger(Pointer::new(
        PointerId::Mouse,
        location(),
        DragEnd {
            button: PointerButton::Primary,
            distance,
        },
        handle,
    ));
}

/// Select the box (a click) and return it with its x handle (the first one shown).
fn grab_x_handle(s: &mut Scene) -> (Entity, Entity) {
    let b = s.box_down();
    click(&mut s.down, b, 1);
    s.down.update();
    let (x, h) = handles(&mut s.down)[0];
    assert_eq!((h.axis, h.mode), (0, HandleMode::Translate));
    (b, x)
}

fn ghosts(app: &mut App) -> Vec<Transform> {
    let mut q = app.world_mut().query_filtered::<&Transform, With<Ghost>>();
    q.iter(app.world()).copied().collect()
}

fn log_text(app: &App) -> String {
    app.world()
        .resource::<ViewerLog>()
        .entries()
        .map(|e| e.text.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn interaction_components_are_mirrored_with_their_limits() {
    let mut s = scene("viewer mirror", true);
    let b = s.box_down();
    let w = s.down.world();
    assert_eq!(w.get::<CanTranslate>(b), Some(&limits()));
    assert_eq!(w.get::<CanRotate>(b), Some(&CanRotate(AxisLimits::FREE)));
    assert!(w.get::<Interactive>(b).is_some());
    assert!(w.get::<CanScale>(b).is_none());
    // The invalid z limits arrive as they were sent, and say what is wrong.
    let problems = w.get::<CanTranslate>(b).unwrap().0.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");

    // The Upstream marks a selection: it arrives with its color.
    let boxed = s.boxed;
    s.up.world_mut().entity_mut(boxed).insert(IsSelected {
        color: Color::srgb_u8(10, 200, 30),
    });
    run_until(
        &mut [&mut s.up, &mut s.down],
        Duration::from_secs(10),
        "IsSelected to arrive",
        |a| a[1].world().get::<IsSelected>(b).is_some(),
    );
    assert_eq!(
        s.down
            .world()
            .get::<IsSelected>(b)
            .unwrap()
            .color
            .to_srgba()
            .to_u8_array(),
        [10, 200, 30, 255]
    );
}

#[test]
fn a_click_selects_the_selectable_ancestor_and_handles_show_only_free_axes() {
    let mut s = scene("viewer select", true);
    let (b, lid) = (s.box_down(), s.lid_down());
    // The lid is not selectable: the click selects the box it belongs to.
    click(&mut s.down, lid, 1);
    assert_eq!(s.down.world().resource::<Selection>().0, Some(b));
    s.down.update();
    let h = handles(&mut s.down);
    assert_eq!(
        h.iter().map(|(_, h)| (h.axis, h.mode)).collect::<Vec<_>>(),
        vec![(0, HandleMode::Translate)],
        "y is locked and z's limits are invalid: only x gets a handle"
    );
    // Rotation is free on every axis.
    *s.down.world_mut().resource_mut::<HandleMode>() = HandleMode::Rotate;
    s.down.update();
    assert_eq!(handles(&mut s.down).len(), 3);
    // A click on something that is not selectable (the endpoint) clears the selection, and the
    // handles go.
    let endpoint = s.down.world().get::<Activate>(b).unwrap().0[0];
    click(&mut s.down, endpoint, 1);
    assert_eq!(s.down.world().resource::<Selection>().0, None);
    s.down.update();
    assert!(handles(&mut s.down).is_empty());
    // The release that ends a drag (an orbit of the camera) is not a click that selects.
    s.down.world_mut().trigger(Pointer::new(
        PointerId::Mouse,
        location(),
        DragStart {
            button: PointerButton::Primary,
            hit: hit(),
        },
        b,
    ));
    click(&mut s.down, b, 1);
    assert_eq!(s.down.world().resource::<Selection>().0, None);
}

#[test]
fn a_drag_past_a_limit_is_clamped_in_the_proposal_and_moves_the_entity() {
    let mut s = scene("viewer drag", true);
    let (b, x) = grab_x_handle(&mut s);
    // 1,000 pixels to the right: 10 units without a camera, clamped to the limit of 1.
    drag(&mut s.down, x, Vec2::new(1000.0, 0.0));
    let g = ghosts(&mut s.down);
    assert_eq!(g.len(), 1, "a ghost shows the dragged pose");
    assert_eq!(g[0].translation, Vec3::new(1.0, 0.0, 0.0));
    // Nothing moved yet.
    assert_eq!(
        s.down.world().get::<Transform>(b).unwrap().translation,
        Vec3::ZERO
    );
    release(&mut s.down, x, Vec2::new(1000.0, 0.0));
    assert_eq!(s.down.world().resource::<PendingEdits>().0.len(), 1);
    let boxed = s.boxed;
    run_until(
        &mut [&mut s.up, &mut s.down],
        Duration::from_secs(10),
        "the move to be applied on both sides and the ghost to go",
        |a| {
            let up_x = a[0].world().get::<Transform>(boxed).unwrap().translation;
            let down_x = a[1].world().get::<Transform>(b).unwrap().translation;
            up_x == Vec3::X
                && down_x == Vec3::X
                && a[1].world().resource::<PendingEdits>().0.is_empty()
        },
    );
    assert!(ghosts(&mut s.down).is_empty());
    assert!(
        log_text(&s.down).contains("moved box"),
        "{}",
        log_text(&s.down)
    );
}

#[test]
fn a_rejected_drag_snaps_back_and_says_why() {
    let mut s = scene("viewer reject", false);
    let (b, x) = grab_x_handle(&mut s);
    drag(&mut s.down, x, Vec2::new(-50.0, 0.0));
    assert_eq!(
        ghosts(&mut s.down)[0].translation,
        Vec3::new(-0.5, 0.0, 0.0)
    );
    release(&mut s.down, x, Vec2::new(-50.0, 0.0));
    run_until(
        &mut [&mut s.up, &mut s.down],
        Duration::from_secs(10),
        "the rejection",
        |a| a[1].world().resource::<PendingEdits>().0.is_empty(),
    );
    assert!(ghosts(&mut s.down).is_empty(), "the ghost is gone");
    let boxed = s.boxed;
    assert_eq!(
        s.up.world().get::<Transform>(boxed).unwrap().translation,
        Vec3::ZERO
    );
    assert_eq!(
        s.down.world().get::<Transform>(b).unwrap().translation,
        Vec3::ZERO
    );
    let log = log_text(&s.down);
    assert!(
        log.contains("box snapped back") && log.contains("code 1"),
        "{log}"
    );
}

#[test]
fn a_double_click_activates_the_primary_target() {
    let mut s = scene("viewer activate", true);
    let lid = s.lid_down();
    // A single click selects only.
    click(&mut s.down, lid, 1);
    pump(&mut [&mut s.up, &mut s.down], 5);
    assert_eq!(s.pokes.load(Ordering::SeqCst), 0);
    // A double click on the lid activates the box it belongs to.
    click(&mut s.down, lid, 2);
    let pokes = s.pokes.clone();
    run_until(
        &mut [&mut s.up, &mut s.down],
        Duration::from_secs(10),
        "the endpoint to be called and its result to come back",
        |a| pokes.load(Ordering::SeqCst) == 1 && log_text(a[1]).contains("completed: 1"),
    );
    assert!(log_text(&s.down).contains("activated box"));
}

#[test]
fn an_upstream_holding_to_the_limits_clamps_a_proposal_that_ignores_them() {
    let mut s = scene("viewer hold", true);
    s.up.add_systems(Update, bevy_noodles2::demo::hold_to_affordances);
    // Its first run records the poses it holds to.
    s.up.update();
    let b = s.box_down();
    let link = s.down.world().get::<Mirrored>(b).unwrap().link;
    // Not through the handles: a client that proposes past every limit.
    let mut p = Proposal::new();
    p.insert(b, Transform::from_xyz(5.0, 3.0, -9.0));
    let mut state = bevy::ecs::system::SystemState::<Proposals>::new(s.down.world_mut());
    state
        .get_mut(s.down.world_mut())
        .unwrap()
        .send(link, p)
        .expect("sent");
    state.apply(s.down.world_mut());
    let boxed = s.boxed;
    run_until(
        &mut [&mut s.up, &mut s.down],
        Duration::from_secs(10),
        "the clamped pose on both sides",
        |a| {
            let want = Vec3::new(1.0, 0.0, 0.0);
            a[0].world().get::<Transform>(boxed).unwrap().translation == want
                && a[1].world().get::<Transform>(b).unwrap().translation == want
        },
    );
}
