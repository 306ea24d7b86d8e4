//! World mirroring end to end: an Upstream app and Downstream apps over loopback websockets.

use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec::{
    self, AnAsset, AssetID, AssetTypeID, ContentCreateEntities, ContentDeleteAsset, ContentMessage,
    EntityID, ExtensionID, TimeSyncComponent, TransformComponent, UnitQuaternion, Wire,
};
use bevy_noodles2::mirror::{EntityIds, EntityResolver, MirrorComponent, MirrorError};
use bevy_noodles2::prelude::*;
use proptest::prelude::*;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

fn pair() -> (App, App) {
    let mut up = app("up");
    let mut down = app("down");
    let url = listen(&mut up);
    connect(&mut down, NoodlesConnect::new(url));
    run_until(&mut [&mut up, &mut down], LIMIT, "link open", |a| {
        open_links(a[0]) == 1 && open_links(a[1]) == 1
    });
    (up, down)
}

fn settle(up: &mut App, down: &mut App, what: &str) {
    run_until(&mut [up, down], LIMIT, what, |a| {
        let [u, d] = a else { unreachable!() };
        world_digest(u) == world_digest(d)
    });
}

#[test]
fn spawn_modify_despawn_and_unshare() {
    let (mut up, mut down) = pair();
    let e = up
        .world_mut()
        .spawn((Name::new("box"), Transform::from_xyz(1.0, 2.0, 3.0), Shared))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "box mirrored", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, e).is_some_and(|m| d.world().get::<Transform>(m).is_some())
    });
    let m = mirror_of(&up, &mut down, e).unwrap();
    assert_eq!(down.world().get::<Name>(m).unwrap().as_str(), "box");
    assert_eq!(
        down.world().get::<Transform>(m).unwrap().translation,
        Vec3::new(1.0, 2.0, 3.0)
    );

    // Modify.
    up.world_mut()
        .get_mut::<Transform>(e)
        .unwrap()
        .translation
        .x = 9.0;
    up.world_mut().get_mut::<Name>(e).unwrap().set("renamed");
    run_until(&mut [&mut up, &mut down], LIMIT, "modification", |a| {
        a[1].world()
            .get::<Transform>(m)
            .is_some_and(|t| t.translation.x == 9.0)
            && a[1]
                .world()
                .get::<Name>(m)
                .is_some_and(|n| n.as_str() == "renamed")
    });

    // Remove a component.
    up.world_mut().entity_mut(e).remove::<Name>();
    run_until(&mut [&mut up, &mut down], LIMIT, "component removal", |a| {
        a[1].world().get::<Name>(m).is_none()
    });
    assert!(down.world().get::<Transform>(m).is_some());

    // Unshare: the Downstream entity goes away, the Upstream one stays.
    up.world_mut().entity_mut(e).remove::<Shared>();
    run_until(&mut [&mut up, &mut down], LIMIT, "unshare", |a| {
        a[1].world().get_entity(m).is_err()
    });
    assert!(up.world().get_entity(e).is_ok());
    assert!(up.world().get::<SharedId>(e).is_none());

    // Re-share gets a new id; despawn deletes it.
    up.world_mut().entity_mut(e).insert(Shared);
    up.update();
    let new_id = up.world().get::<SharedId>(e).unwrap().get();
    run_until(&mut [&mut up, &mut down], LIMIT, "re-share", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, e).is_some()
    });
    let m2 = mirror_of(&up, &mut down, e).unwrap();
    assert_ne!(m2, m);
    assert!(new_id > 1);
    up.world_mut().entity_mut(e).despawn();
    run_until(&mut [&mut up, &mut down], LIMIT, "despawn", |a| {
        a[1].world().get_entity(m2).is_err()
    });
}

#[test]
fn hierarchy_visibility_and_lights_arrive_as_bevy_components() {
    let (mut up, mut down) = pair();
    let parent = up
        .world_mut()
        .spawn((Name::new("parent"), Transform::default(), Shared))
        .id();
    let child = up
        .world_mut()
        .spawn((
            Name::new("child"),
            Transform::default(),
            Visibility::Hidden,
            ChildOf(parent),
            Shared,
        ))
        .id();
    let sun = up
        .world_mut()
        .spawn((
            DirectionalLight {
                illuminance: 1234.0,
                color: Color::srgb(1.0, 0.5, 0.0),
                shadow_maps_enabled: true,
                ..default()
            },
            Shared,
        ))
        .id();
    let bulb = up
        .world_mut()
        .spawn((
            PointLight {
                intensity: 5000.0,
                range: 7.0,
                color: Color::srgb_u8(10, 20, 30),
                ..default()
            },
            Shared,
        ))
        .id();
    let spot = up
        .world_mut()
        .spawn((
            SpotLight {
                intensity: 800.0,
                range: 3.0,
                inner_angle: 0.2,
                outer_angle: 0.5,
                ..default()
            },
            Shared,
        ))
        .id();
    settle(&mut up, &mut down, "world converges");

    let mc = mirror_of(&up, &mut down, child).unwrap();
    let mp = mirror_of(&up, &mut down, parent).unwrap();
    assert_eq!(down.world().get::<ChildOf>(mc).unwrap().parent(), mp);
    assert_eq!(
        *down.world().get::<Visibility>(mc).unwrap(),
        Visibility::Hidden
    );
    assert!(down.world().get::<Children>(mp).unwrap().contains(&mc));

    let d = {
        let m = mirror_of(&up, &mut down, sun).unwrap();
        down.world().get::<DirectionalLight>(m)
    }
    .unwrap();
    assert_eq!(d.illuminance, 1234.0);
    assert!(d.shadow_maps_enabled);
    let c = d.color.to_srgba();
    assert!(
        (c.red - 1.0).abs() <= 0.5 / 255.0
            && (c.green - 0.5).abs() <= 0.5 / 255.0 + 1e-6
            && c.blue.abs() <= 0.5 / 255.0,
        "{c:?}"
    );
    let p = {
        let m = mirror_of(&up, &mut down, bulb).unwrap();
        down.world().get::<PointLight>(m)
    }
    .unwrap();
    assert_eq!((p.intensity, p.range), (5000.0, 7.0));
    assert_eq!(p.color.to_srgba().to_u8_array(), [10, 20, 30, 255]);
    let s = {
        let m = mirror_of(&up, &mut down, spot).unwrap();
        down.world().get::<SpotLight>(m)
    }
    .unwrap();
    assert_eq!(
        (s.intensity, s.range, s.inner_angle, s.outer_angle),
        (800.0, 3.0, 0.2, 0.5)
    );

    // Reparent, and make visible.
    let other = up.world_mut().spawn((Name::new("other"), Shared)).id();
    up.world_mut()
        .entity_mut(child)
        .insert((ChildOf(other), Visibility::Visible));
    settle(&mut up, &mut down, "reparent converges");
    let mo = mirror_of(&up, &mut down, other).unwrap();
    assert_eq!(down.world().get::<ChildOf>(mc).unwrap().parent(), mo);
    assert_eq!(
        *down.world().get::<Visibility>(mc).unwrap(),
        Visibility::Visible
    );

    // Deleting a parent keeps the (still shared) child on the Downstream, as on the Upstream.
    up.world_mut().entity_mut(child).remove::<ChildOf>();
    up.world_mut().entity_mut(other).despawn();
    settle(&mut up, &mut down, "parent deleted");
    assert!(down.world().get_entity(mc).is_ok());
}

#[test]
fn a_parent_that_arrives_after_its_child_is_resolved() {
    let (mut up, mut down) = pair();
    // Spawn the child first (lower id) with a parent spawned later: both arrive in one transaction.
    let child = up.world_mut().spawn((Name::new("child"), Shared)).id();
    let parent = up.world_mut().spawn((Name::new("parent"), Shared)).id();
    up.world_mut().entity_mut(child).insert(ChildOf(parent));
    settle(&mut up, &mut down, "converge");
    let (mc, mp) = (
        mirror_of(&up, &mut down, child).unwrap(),
        mirror_of(&up, &mut down, parent).unwrap(),
    );
    assert_eq!(down.world().get::<ChildOf>(mc).unwrap().parent(), mp);
    assert_eq!(down.world().get::<Name>(mp).unwrap().as_str(), "parent");
}

#[test]
fn parenting_to_an_unshared_entity_drops_the_parent_on_the_wire() {
    let (mut up, mut down) = pair();
    let shared_parent = up.world_mut().spawn((Name::new("p"), Shared)).id();
    let private = up.world_mut().spawn(Name::new("private")).id();
    let child = up
        .world_mut()
        .spawn((Name::new("c"), ChildOf(shared_parent), Shared))
        .id();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "child mirrored with parent",
        |a| {
            let [u, d] = a else { unreachable!() };
            mirror_of(u, d, child).is_some_and(|m| d.world().get::<ChildOf>(m).is_some())
        },
    );
    // The new parent is not shared: the Downstream must not keep the old one.
    up.world_mut().entity_mut(child).insert(ChildOf(private));
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "stale parent removed",
        |a| {
            let [u, d] = a else { unreachable!() };
            mirror_of(u, d, child).is_some_and(|m| d.world().get::<ChildOf>(m).is_none())
        },
    );
    settle(&mut up, &mut down, "digests equal");
}

#[test]
fn removed_and_reinserted_between_send_ticks_keeps_the_component() {
    let mut up = app_with(NoodlesPlugin {
        mirror: bevy_noodles2::mirror::MirrorConfig {
            send_interval: Some(Duration::from_millis(200)),
            ..default()
        },
        ..default()
    });
    let mut down = app("down");
    let url = listen(&mut up);
    connect(&mut down, NoodlesConnect::new(url));
    let e = up.world_mut().spawn((Name::new("a"), Shared)).id();
    run_until(&mut [&mut up, &mut down], LIMIT, "mirrored", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, e).is_some_and(|m| d.world().get::<Name>(m).is_some())
    });
    // Remove in one frame, insert again in the next, both before the next send tick.
    up.world_mut().entity_mut(e).remove::<Name>();
    up.update();
    up.world_mut().entity_mut(e).insert(Name::new("b"));
    up.update();
    run_until(&mut [&mut up, &mut down], LIMIT, "renamed", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, e)
            .and_then(|m| d.world().get::<Name>(m))
            .is_some_and(|n| n.as_str() == "b")
    });
    pump(&mut [&mut up, &mut down], 30);
    let m = mirror_of(&up, &mut down, e).unwrap();
    assert_eq!(down.world().get::<Name>(m).map(|n| n.as_str()), Some("b"));
}

#[test]
fn late_joiner_gets_the_world_then_deltas() {
    let mut up = app("up");
    let url = listen(&mut up);
    for i in 0..500 {
        up.world_mut().spawn((
            Name::new(format!("e{i}")),
            Transform::from_xyz(i as f32, 0.0, 0.0),
            Shared,
        ));
    }
    pump(&mut [&mut up], 3);
    // A small transaction limit forces the initial world into several transactions.
    let mut down = app_with(NoodlesPlugin {
        session_name: "late".into(),
        mirror: bevy_noodles2::mirror::MirrorConfig {
            max_transaction_bytes: 4096,
            ..default()
        },
        ..default()
    });
    connect(&mut down, NoodlesConnect::new(url));
    settle(&mut up, &mut down, "late joiner converges");
    let applied = down
        .world()
        .resource::<bevy_noodles2::mirror::MirrorStats>()
        .transactions_applied;
    assert!(applied >= 1);
    // Deltas after the snapshot.
    let mut q = up
        .world_mut()
        .query_filtered::<&mut Transform, With<Shared>>();
    for mut t in q.iter_mut(up.world_mut()) {
        t.translation.y += 1.0;
    }
    settle(&mut up, &mut down, "delta converges");
}

#[test]
fn a_large_world_joins_in_slices_and_what_changes_meanwhile_arrives() {
    let mut up = app_with(NoodlesPlugin {
        session_name: "up".into(),
        mirror: MirrorConfig {
            join_entities_per_frame: 20,
            ..default()
        },
        ..default()
    });
    let url = listen(&mut up);
    let entities: Vec<Entity> = (0..500)
        .map(|i| {
            up.world_mut()
                .spawn((
                    Name::new(format!("e{i}")),
                    Transform::from_xyz(i as f32, 0.0, 0.0),
                    Shared,
                ))
                .id()
        })
        .collect();
    pump(&mut [&mut up], 3);
    let mut down = app("late");
    connect(&mut down, NoodlesConnect::new(url));
    // While the world goes out (500 entities at 20 a frame): everything moves every frame; once
    // the first slice arrived, the last entity (in the last slice) is despawned before it was
    // sent, then one in the middle loses its name, then a new one is shared. In lockstep: after
    // each Upstream frame the Downstream runs until it applied every transaction sent.
    let mut seen = Vec::new();
    let mut step = 0;
    let mut gone = 0;
    let deadline = std::time::Instant::now() + LIMIT;
    while step < 3 || seen.last().is_some_and(|&n| n < 500) {
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        let mut q = up
            .world_mut()
            .query_filtered::<&mut Transform, With<Shared>>();
        for mut t in q.iter_mut(up.world_mut()) {
            t.translation.y += 1.0;
        }
        if seen.last().is_some_and(|&n| n > 0) {
            match step {
                0 => {
                    gone = up.world().get::<SharedId>(entities[499]).unwrap().get();
                    up.world_mut().despawn(entities[499]);
                }
                1 => {
                    up.world_mut().entity_mut(entities[250]).remove::<Name>();
                }
                2 => {
                    up.world_mut()
                        .spawn((Name::new("new"), Transform::default(), Shared));
                }
                _ => {}
            }
            step += 1;
        }
        up.update();
        let sent = transactions_sent(&up);
        run_until(
            &mut [&mut down],
            LIMIT,
            "the Upstream's frame applied",
            |a| a[0].world().resource::<MirrorStats>().transactions_applied >= sent,
        );
        let mut mirrored = down.world_mut().query_filtered::<(), With<Mirrored>>();
        seen.push(mirrored.iter(down.world()).count());
    }
    settle(&mut up, &mut down, "the joined world converges");
    // It arrived over several frames: the first slice (20 entities, and maybe the clock's
    // entity as a delta) before the rest.
    let first = seen.iter().copied().find(|&n| n > 0);
    assert!(
        first.is_some_and(|n| n <= 21),
        "mirrored entities after each frame: {seen:?}"
    );
    // Nothing of the despawned entity came back (its id is nowhere), and the new one is there:
    // as many mirrored entities as the Upstream shares (the 500 and its clock's entity).
    let mut mirrored = down.world_mut().query::<&Mirrored>();
    let ids: Vec<u64> = mirrored.iter(down.world()).map(|m| m.id).collect();
    assert!(!ids.contains(&gone), "the despawned entity came back");
    let mut shared = up.world_mut().query_filtered::<(), With<Shared>>();
    assert_eq!(ids.len(), shared.iter(up.world()).count());
}

#[test]
fn nothing_is_sent_when_nothing_changed() {
    let (mut up, mut down) = pair();
    up.world_mut()
        .spawn((Name::new("still"), Transform::default(), Shared));
    // The clock is published once an hour here, so nothing at all is due.
    up.world_mut()
        .resource_mut::<MirrorConfig>()
        .time_sync_interval = Duration::from_secs(3600);
    settle(&mut up, &mut down, "converge");
    pump(&mut [&mut up, &mut down], 5);
    // Counted where the frames leave, so frames still in flight cannot hide one.
    let before = (links_messages_out(&mut up), transactions_sent(&up));
    pump(&mut [&mut up, &mut down], 20);
    assert_eq!(
        (links_messages_out(&mut up), transactions_sent(&up)),
        before
    );
}

fn links_messages_out(app: &mut App) -> u64 {
    let mut q = app.world_mut().query::<&NoodlesLink>();
    q.iter(app.world()).map(|l| l.stats.messages_out).sum()
}

fn transactions_sent(app: &App) -> u64 {
    app.world().resource::<MirrorStats>().transactions_sent
}

#[test]
fn closing_the_link_despawns_the_mirror() {
    let (mut up, mut down) = pair();
    up.world_mut().spawn((Name::new("x"), Shared));
    settle(&mut up, &mut down, "converge");
    let mut q = down.world_mut().query_filtered::<Entity, With<Mirrored>>();
    assert!(q.iter(down.world()).count() >= 1);
    let mut lq = down.world_mut().query::<&NoodlesLink>();
    for l in lq.iter(down.world()) {
        l.close("test over");
    }
    run_until(&mut [&mut up, &mut down], LIMIT, "mirror gone", |a| {
        let mut q = a[1].world_mut().query_filtered::<Entity, With<Mirrored>>();
        q.iter(a[1].world()).count() == 0
    });
}

/// An application component in the application's own extension 0x4242.
#[derive(Component, Debug, Clone, PartialEq)]
struct Health(f64);

impl MirrorComponent for Health {
    type Wire = TimeSyncComponent;
    const EXTENSION: u16 = 0x4242;
    const IDENTIFIER: u16 = 7;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<TimeSyncComponent> {
        Some(TimeSyncComponent::new(self.0))
    }
    fn from_wire(w: TimeSyncComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(Health(w.last.get()))
    }
}

fn ext_app(name: &str, with_ext: bool) -> App {
    let mut a = app_with(NoodlesPlugin {
        session_name: name.into(),
        extensions: if with_ext { vec![0, 0x4242] } else { vec![0] },
        ..default()
    });
    a.mirror_component::<Health>();
    a
}

#[test]
fn application_extension_component_is_mirrored_and_gated() {
    let mut up = ext_app("up", true);
    let mut with = ext_app("with", true);
    let mut without = ext_app("without", false);
    let url = listen(&mut up);
    connect(&mut with, NoodlesConnect::new(url.clone()));
    connect(&mut without, NoodlesConnect::new(url));
    let e = up
        .world_mut()
        .spawn((Name::new("hero"), Health(75.5), Shared))
        .id();
    run_until(
        &mut [&mut up, &mut with, &mut without],
        LIMIT,
        "both mirror the hero",
        |a| {
            let [u, w, wo] = a else { unreachable!() };
            mirror_of(u, w, e).is_some_and(|m| w.world().get::<Health>(m).is_some())
                && mirror_of(u, wo, e).is_some_and(|m| wo.world().get::<Name>(m).is_some())
        },
    );
    let mw = mirror_of(&up, &mut with, e).unwrap();
    assert_eq!(with.world().get::<Health>(mw), Some(&Health(75.5)));
    // The link without the extension never carries it.
    pump(&mut [&mut up, &mut with, &mut without], 5);
    let mwo = mirror_of(&up, &mut without, e).unwrap();
    assert!(without.world().get::<Health>(mwo).is_none());
    let ext_of = |a: &mut App| {
        let mut q = a.world_mut().query::<&NoodlesLink>();
        q.iter(a.world())
            .map(|l| l.extensions.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ext_of(&mut with), vec![vec![0, 0x4242]]);
    assert_eq!(ext_of(&mut without), vec![vec![0]]);
}

#[test]
fn incoming_component_outside_the_negotiated_extensions_closes_the_link() {
    let (mut up, mut down) = pair();
    log_closed(&mut down);
    send_transaction(&mut up, vec![components(0x4242, 7, &[(1, vec![0; 8])])]);
    run_until(&mut [&mut up, &mut down], LIMIT, "downstream closes", |a| {
        !closed_reasons(a[1]).is_empty()
    });
    let r = closed_reasons(&down);
    assert!(r[0].to_string().contains("extension 16962"), "{r:?}");
}

#[test]
fn bad_component_payload_closes_the_link_and_applies_nothing() {
    let (mut up, mut down) = pair();
    log_closed(&mut down);
    // A valid entity creation followed by a Transform payload whose second pair is cut short:
    // the whole transaction is refused, naming the pair.
    let whole = TransformComponent::new(
        codec::Vec3::new(1.0, 2.0, 3.0),
        UnitQuaternion::new(0.0, 0.0, 0.0, 1.0),
        codec::Vec3::new(1.0, 1.0, 1.0),
    )
    .encode()
    .unwrap();
    send_transaction(
        &mut up,
        vec![
            ContentMessage::ContentCreateEntities(ContentCreateEntities {
                list: vec![EntityID::new(77)].into(),
            }),
            components(0, 20, &[(77, whole), (77, vec![1, 2, 3])]),
        ],
    );
    run_until(&mut [&mut up, &mut down], LIMIT, "downstream closes", |a| {
        !closed_reasons(a[1]).is_empty()
    });
    let mut m = down.world_mut().query::<&Mirrored>();
    assert!(
        m.iter(down.world()).all(|m| m.id != 77),
        "nothing of the bad transaction was applied"
    );
    let reason = closed_reasons(&down)[0].to_string();
    assert!(
        reason.contains("Transform") && reason.contains("(pair 1)"),
        "{reason}"
    );
}

/// Only proposals may carry patch-local ids (bit 63). One in a transaction closes the link
/// naming it: as a component pair's target, inside a component value (`ChildOfComponent`'s
/// parent), or as the id of an asset modified or deleted. Validation comes before anything of
/// the transaction applies: the entity it creates is not mirrored, and what was mirrored before
/// stays as it was (the Downstream keeps its mirror when the link closes).
#[test]
fn a_patch_local_id_in_a_transaction_closes_the_link_and_applies_nothing() {
    const LOCAL: u64 = 1 << 63;
    let delete_asset = |id| {
        ContentMessage::ContentDeleteAsset(ContentDeleteAsset {
            an_asset: AnAsset::new(AssetTypeID::new(ExtensionID::new(0), 0), AssetID::new(id)),
        })
    };
    let cases = [
        (
            LOCAL | 9,
            components(0, 16, &[(LOCAL | 9, 77u64.to_le_bytes().to_vec())]),
        ),
        (
            LOCAL | 5,
            components(0, 16, &[(77, (LOCAL | 5).to_le_bytes().to_vec())]),
        ),
        (LOCAL | 3, inline_buffer(LOCAL | 3, vec![1, 2, 3])),
        (LOCAL | 4, delete_asset(LOCAL | 4)),
    ];
    for (local, bad) in cases {
        let (mut up, mut down) = linked_keeping("patch-local");
        let kept = up
            .world_mut()
            .spawn((Name::new("before"), Transform::default(), Shared))
            .id();
        run_until(&mut [&mut up, &mut down], LIMIT, "the entity before", |a| {
            let [u, d] = a else { unreachable!() };
            mirror_of(u, d, kept).is_some()
        });
        let create = ContentMessage::ContentCreateEntities(ContentCreateEntities {
            list: vec![EntityID::new(77)].into(),
        });
        send_transaction(&mut up, vec![create, bad]);
        run_until(&mut [&mut up, &mut down], LIMIT, "the link to close", |a| {
            open_links(a[1]) == 0
        });
        let reason = closed_reasons(&down)[0].to_string();
        assert!(
            reason.contains(&format!("patch-local id {local:#x}")),
            "{reason}"
        );
        assert!(mirror_of_id(&mut down, 77).is_none(), "{reason}");
        let m = mirror_of(&up, &mut down, kept).unwrap();
        assert_eq!(down.world().get::<Name>(m).unwrap().as_str(), "before");
    }
}

#[test]
fn time_sync_gives_an_authority_clock() {
    let (mut up, mut down) = pair();
    run_until(&mut [&mut up, &mut down], LIMIT, "clock sample", |a| {
        a[1].world().resource::<AuthorityClock>().samples > 0
    });
    let clock = down.world().resource::<AuthorityClock>().clone();
    let up_now = up.world().resource::<Time<Real>>().elapsed_secs_f64();
    let down_now = down.world().resource::<Time<Real>>().elapsed_secs_f64();
    let est = clock.authority_now(down_now).unwrap();
    assert!(
        (est - up_now).abs() < 0.5,
        "estimated {est}, upstream {up_now}"
    );
}

#[test]
fn authority_clock_smooths_offsets() {
    let mut c = AuthorityClock {
        alpha: 0.1,
        ..default()
    };
    c.sample(100.0, 10.0);
    assert_eq!(c.offset, Some(90.0));
    c.sample(102.0, 11.0); // estimate 91
    assert!((c.offset.unwrap() - 90.1).abs() < 1e-9);
    assert!((c.authority_now(20.0).unwrap() - 110.1).abs() < 1e-9);
}

#[derive(Debug, Clone)]
enum Op {
    Spawn(f32),
    Move(usize, f32),
    Rename(usize, u8),
    Reparent(usize, usize),
    Hide(usize),
    Unshare(usize),
    Despawn(usize),
    Join,
    Leave(usize),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<i16>().prop_map(|v| Op::Spawn(v as f32)),
        6 => (any::<usize>(), any::<i16>()).prop_map(|(i, v)| Op::Move(i, v as f32)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Op::Rename(i, v)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Reparent(a, b)),
        1 => any::<usize>().prop_map(Op::Hide),
        1 => any::<usize>().prop_map(Op::Unshare),
        1 => any::<usize>().prop_map(Op::Despawn),
        1 => Just(Op::Join),
        1 => any::<usize>().prop_map(Op::Leave),
        3 => Just(Op::Tick),
    ]
}

/// How many cases `downstreams_converge` runs.
fn converge_cases() -> u32 {
    std::env::var("NOODLES2_CONVERGE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: converge_cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// 1,000 random operations while Downstreams join and leave: every connected Downstream ends
    /// with the Upstream's world (digest over the wire form of every mirrored component).
    /// 8 cases; `NOODLES2_CONVERGE_CASES=N` runs N (for a longer hunt).
    #[test]
    fn downstreams_converge(ops in proptest::collection::vec(op(), 1000)) {
        let mut up = app("up");
        let url = listen(&mut up);
        let mut downs: Vec<App> = Vec::new();
        let mut ents: Vec<Entity> = Vec::new();
        for op in ops {
            match op {
                Op::Spawn(x) => ents.push(up.world_mut().spawn((Name::new(format!("n{x}")), Transform::from_xyz(x, 0.0, 0.0), Shared)).id()),
                Op::Move(i, v) if !ents.is_empty() => {
                    let e = ents[i % ents.len()];
                    if let Some(mut t) = up.world_mut().get_mut::<Transform>(e) { t.translation.y = v; }
                }
                Op::Rename(i, v) if !ents.is_empty() => {
                    let e = ents[i % ents.len()];
                    up.world_mut().entity_mut(e).insert(Name::new(format!("r{v}")));
                }
                Op::Reparent(a, b) if !ents.is_empty() => {
                    let (c, p) = (ents[a % ents.len()], ents[b % ents.len()]);
                    // Only parent to a lower index: no cycles.
                    if ents.iter().position(|x| *x == p) < ents.iter().position(|x| *x == c) {
                        up.world_mut().entity_mut(c).insert(ChildOf(p));
                    }
                }
                Op::Hide(i) if !ents.is_empty() => {
                    let e = ents[i % ents.len()];
                    up.world_mut().entity_mut(e).insert(Visibility::Hidden);
                }
                Op::Unshare(i) if !ents.is_empty() => {
                    let e = ents[i % ents.len()];
                    up.world_mut().entity_mut(e).remove::<Shared>();
                }
                Op::Despawn(i) if !ents.is_empty() => {
                    let e = ents.remove(i % ents.len());
                    // Keep children (and their own subtrees) alive: detach them first.
                    let kids: Vec<Entity> = up.world().get::<Children>(e).map(|c| c.iter().collect()).unwrap_or_default();
                    for k in kids { up.world_mut().entity_mut(k).remove::<ChildOf>(); }
                    up.world_mut().entity_mut(e).despawn();
                }
                Op::Join if downs.len() < 4 => {
                    let mut d = app("down");
                    connect(&mut d, NoodlesConnect::new(url.clone()));
                    downs.push(d);
                }
                Op::Leave(i) if !downs.is_empty() => {
                    let d = downs.remove(i % downs.len());
                    drop(d);
                }
                Op::Tick => {
                    up.update();
                    for d in &mut downs { d.update(); }
                }
                _ => {}
            }
        }
        let mut all: Vec<&mut App> = std::iter::once(&mut up).chain(downs.iter_mut()).collect();
        run_until(&mut all, Duration::from_secs(60), "every Downstream converges", |a| {
            let (u, rest) = a.split_first_mut().unwrap();
            let want = world_digest(u);
            rest.iter_mut().all(|d| open_links(d) == 1 && world_digest(d) == want)
        });
    }
}

/// A parent without `VisibilityComponent` (the spec's "inherit") still gives Bevy the hierarchy
/// its visibility propagation needs: every mirrored entity has `Visibility` (and so
/// `InheritedVisibility`, so Bevy's propagation has no B0004 gap), and deleting a child's
/// `VisibilityComponent` puts "inherit" back. Nothing is sent back to the Upstream.
#[test]
fn mirrored_hierarchies_without_visibility_components_inherit() {
    let (mut up, mut down) = pair();
    let parent = up
        .world_mut()
        .spawn((Name::new("bare parent"), Shared))
        .id();
    let child = up
        .world_mut()
        .spawn((
            Name::new("visible child"),
            ChildOf(parent),
            Visibility::Visible,
            Shared,
        ))
        .id();
    settle(&mut up, &mut down, "the hierarchy");
    let dp = mirror_of(&up, &mut down, parent).expect("parent mirrored");
    let dc = mirror_of(&up, &mut down, child).expect("child mirrored");
    assert_eq!(
        down.world().get::<Visibility>(dp),
        Some(&Visibility::Inherited)
    );
    assert!(down.world().get::<InheritedVisibility>(dp).is_some());
    assert_eq!(
        down.world().get::<Visibility>(dc),
        Some(&Visibility::Visible)
    );
    assert!(down.world().get::<InheritedVisibility>(dc).is_some());
    up.world_mut().entity_mut(child).remove::<Visibility>();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the child's visibility to inherit",
        |a| a[1].world().get::<Visibility>(dc) == Some(&Visibility::Inherited),
    );
    assert!(
        up.world().get::<Visibility>(parent).is_none(),
        "nothing is sent back to the Upstream"
    );
}

/// Bevy's `NotShadowCaster` (a type of another crate), mirrored under extension 0x4242 through
/// functions: the orphan rule forbids `impl MirrorComponent for NotShadowCaster` here.
fn not_shadow_caster() -> MirrorFns<bevy::light::NotShadowCaster, TimeSyncComponent> {
    MirrorFns::new(
        0x4242,
        8,
        |_: &bevy::light::NotShadowCaster, _| Some(TimeSyncComponent::new(0.0)),
        |_: TimeSyncComponent, _| Ok(bevy::light::NotShadowCaster),
    )
}

#[test]
fn a_component_of_another_crate_is_mirrored_through_functions() {
    let mut up = ext_app("up", true);
    let mut down = ext_app("down", true);
    for a in [&mut up, &mut down] {
        a.mirror_component_with(not_shadow_caster());
    }
    let url = listen(&mut up);
    connect(&mut down, NoodlesConnect::new(url));
    let e = up
        .world_mut()
        .spawn((Name::new("no shadow"), bevy::light::NotShadowCaster, Shared))
        .id();
    let has = |down: &mut App, up: &App| {
        mirror_of(up, down, e).is_some_and(|m| {
            down.world()
                .get::<bevy::light::NotShadowCaster>(m)
                .is_some()
        })
    };
    run_until(&mut [&mut up, &mut down], LIMIT, "the marker", |a| {
        let [u, d] = a else { unreachable!() };
        has(d, u)
    });
    up.world_mut()
        .entity_mut(e)
        .remove::<bevy::light::NotShadowCaster>();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the marker's removal",
        |a| {
            let [u, d] = a else { unreachable!() };
            mirror_of(u, d, e).is_some() && !has(d, u)
        },
    );
    // The registry names the foreign type under its mapping.
    let registry = down
        .world()
        .resource::<bevy_noodles2::mirror::ComponentRegistry>();
    assert!(
        registry
            .get(0x4242, 8)
            .is_some_and(|r| r.name().ends_with("NotShadowCaster"))
    );
}
