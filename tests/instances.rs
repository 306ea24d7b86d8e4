//! Instances: `Instances` ↔ `InstanceComponent` over a loopback link (both layouts), the set
//! updated when its asset changes, and hostile instance views refused with the link intact.

use std::time::Duration;

use bevy::camera::visibility::RenderLayers;
use bevy::prelude::*;
use bevy_noodles2::codec::{self as w, Wire};
use bevy_noodles2::instances::{InstanceSet, Instances, instance_from_transform};
use bevy_noodles2::prelude::*;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);
const INSTANCE: u16 = 4;

fn set_of(app: &App, e: Entity) -> Option<InstanceSet> {
    let h = &app.world().get::<Instances>(e)?.0;
    app.world()
        .resource::<Assets<InstanceSet>>()
        .get(h)
        .cloned()
}

/// The same instances, up to the rounding of renormalized rotations.
fn same_set(a: &InstanceSet, b: &InstanceSet) {
    assert_eq!(a.instances.len(), b.instances.len());
    for (i, (x, y)) in a.instances.iter().zip(&b.instances).enumerate() {
        let close = |p: [f32; 4], q: [f32; 4]| p.iter().zip(q).all(|(p, q)| (p - q).abs() < 1e-6);
        assert!(
            close(x.position, y.position)
                && close(x.rotation, y.rotation)
                && x.texture == y.texture
                && x.scale == y.scale,
            "instance {i}: {x:?} vs {y:?}"
        );
    }
}

fn ring(n: usize, radius: f32) -> InstanceSet {
    InstanceSet::from_transforms((0..n).map(|i| {
        let a = i as f32 / n as f32 * std::f32::consts::TAU;
        Transform::from_xyz(a.cos() * radius, 0.0, a.sin() * radius)
            .with_rotation(Quat::from_rotation_y(a))
            .with_scale(Vec3::new(1.0, 2.0, 0.5))
    }))
}

#[test]
fn instances_are_mirrored_and_follow_their_asset() {
    let (mut up, mut down) = linked_asset_apps("instances");
    let mut set = ring(100, 3.0);
    set.instances[7].texture = [0.5, 0.25, 0.5, 0.5];
    let handle = up
        .world_mut()
        .resource_mut::<Assets<InstanceSet>>()
        .add(set.clone());
    let cube = up
        .world_mut()
        .resource_mut::<Assets<Mesh>>()
        .add(Cuboid::new(0.2, 0.2, 0.2));
    let e = up
        .world_mut()
        .spawn((
            Mesh3d(cube),
            Instances(handle.clone()),
            Transform::from_xyz(1.0, 0.0, 0.0),
            Shared,
        ))
        .id();
    // Two entities share one set: one buffer goes out.
    let e2 = up
        .world_mut()
        .spawn((Instances(handle.clone()), Transform::default(), Shared))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "the instances", |a| {
        let [u, d] = a else { unreachable!() };
        [e, e2]
            .iter()
            .all(|x| mirror_of(u, d, *x).is_some_and(|m| set_of(d, m).is_some()))
    });
    let m = mirror_of(&up, &mut down, e).unwrap();
    same_set(&set_of(&down, m).unwrap(), &set);
    // Bevy's own mesh draw is off for instanced entities, on both sides.
    assert_eq!(
        down.world().get::<RenderLayers>(m),
        Some(&RenderLayers::none())
    );
    assert_eq!(
        up.world().get::<RenderLayers>(e),
        Some(&RenderLayers::none())
    );
    // The mesh came too.
    assert!(down.world().get::<Mesh3d>(m).is_some());

    // The Bevy asset changes: the Downstream's set follows, in the same asset.
    let before = down.world().get::<Instances>(m).unwrap().0.id();
    let moved = ring(5, 1.0);
    *up.world_mut()
        .resource_mut::<Assets<InstanceSet>>()
        .get_mut(&handle)
        .unwrap() = moved.clone();
    run_until(&mut [&mut up, &mut down], LIMIT, "the changed set", |a| {
        set_of(a[1], m).is_some_and(|s| s.instances.len() == 5)
    });
    same_set(&set_of(&down, m).unwrap(), &moved);
    assert_eq!(down.world().get::<Instances>(m).unwrap().0.id(), before);

    // Instances removed: gone on the Downstream, and its mesh draws again.
    up.world_mut().entity_mut(e).remove::<Instances>();
    run_until(&mut [&mut up, &mut down], LIMIT, "the removal", |a| {
        a[1].world().get::<Instances>(m).is_none()
    });
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "render layers back",
        |a| a[1].world().get::<RenderLayers>(m).is_none(),
    );
    assert_eq!(down.world().resource::<AssetStats>().refused, 0);
}

fn instance_component(
    buffer: u64,
    offset: u64,
    length: u64,
    count: u32,
    ty: w::InstanceType,
) -> Vec<u8> {
    w::InstanceComponent::new(
        w::BufferView::new(
            offset,
            length,
            w::BufferAssetID::new(w::AssetID::new(buffer)),
        ),
        count,
        ty,
        w::Vec3::new(-4.0, 0.0, 0.0),
        w::Vec3::new(4.0, 8.0, 1.0),
        w::Vec2::new(0.0, 3.0),
    )
    .encode()
    .unwrap()
}

fn reduced(p: [u16; 3], s: u16, r: [i16; 4], t: [i16; 4]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in p.into_iter().chain([s]) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in r.into_iter().chain(t) {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

fn refusals(down: &App) -> String {
    down.world()
        .resource::<AssetStats>()
        .recent_refusals
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn reduced_instances_from_a_peer_and_hostile_views() {
    let (mut up, mut down) = linked_asset_apps("instance peer");
    let mut reduced_bytes = reduced(
        [0, 65535, 32768],
        65535,
        [0, 0, 0, 32767],
        [0, 0, 32767, 32767],
    );
    reduced_bytes.extend(reduced(
        [65535, 0, 0],
        0,
        [0, 32767, 0, 0],
        [16384, 0, 16384, 16384],
    ));
    let full = noodles2_full(&[instance_from_transform(Transform::from_xyz(1.0, 2.0, 3.0))]);
    let mut nan = full.clone();
    nan[48..52].copy_from_slice(&f32::NAN.to_le_bytes());
    let entities = [2001u64, 2002, 2003, 2004, 2005];
    send_transaction(
        &mut up,
        vec![
            w::ContentMessage::ContentCreateEntities(w::ContentCreateEntities {
                list: entities.map(w::EntityID::new).to_vec().into(),
            }),
            inline_buffer(9101, reduced_bytes),
            inline_buffer(9102, full.clone()),
            inline_buffer(9103, nan),
            components(0, 20, &entities.map(|e| (e, identity_transform()))),
            components(
                0,
                INSTANCE,
                &[
                    // Good: two Reduced instances.
                    (
                        2001,
                        instance_component(9101, 0, 48, 2, w::InstanceType::Reduced),
                    ),
                    // A count that disagrees with the view.
                    (
                        2002,
                        instance_component(9102, 0, 64, 2, w::InstanceType::FullFloat),
                    ),
                    // A view outside its buffer.
                    (
                        2003,
                        instance_component(9102, 32, 64, 1, w::InstanceType::FullFloat),
                    ),
                    // A scale that is not a number.
                    (
                        2004,
                        instance_component(9103, 0, 64, 1, w::InstanceType::FullFloat),
                    ),
                    // Good: one full-float instance.
                    (
                        2005,
                        instance_component(9102, 0, 64, 1, w::InstanceType::FullFloat),
                    ),
                ],
            ),
        ],
    );
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "three refusals and two applied instance sets",
        |a| {
            let d = &mut a[1];
            d.world().resource::<AssetStats>().refused >= 3
                && [2001, 2005]
                    .iter()
                    .all(|id| mirror_of_id(d, *id).is_some_and(|e| set_of(d, e).is_some()))
        },
    );
    let r = refusals(&down);
    assert!(
        r.contains("instances of entity 2002") && r.contains("2 instances of 64 bytes"),
        "{r}"
    );
    assert!(
        r.contains("instances of entity 2003") && r.contains("escapes"),
        "{r}"
    );
    assert!(
        r.contains("instances of entity 2004")
            && r.contains("instance 0: scale")
            && r.contains("NaN"),
        "{r}"
    );
    for id in [2002, 2003, 2004] {
        let e = mirror_of_id(&mut down, id).unwrap();
        assert!(down.world().get::<Instances>(e).is_none(), "entity {id}");
    }
    // Reduced: dequantized over the component's ranges.
    let e = mirror_of_id(&mut down, 2001).unwrap();
    let s = set_of(&down, e).unwrap().instances;
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].position[..2], [-4.0, 8.0]);
    assert!((s[0].position[2] - 0.5).abs() < 1e-4);
    assert_eq!(s[0].scale[..3], [3.0, 3.0, 3.0]);
    assert_eq!(s[0].rotation, [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(s[1].position[..3], [4.0, 0.0, 0.0]);
    assert_eq!(s[1].rotation, [0.0, 1.0, 0.0, 0.0]);
    assert!((s[1].texture[0] - 0.5).abs() < 1e-3);
    let e = mirror_of_id(&mut down, 2005).unwrap();
    assert_eq!(
        set_of(&down, e).unwrap().instances[0].position[..3],
        [1.0, 2.0, 3.0]
    );

    // The peer replaces the buffer's bytes under the same id: the instances follow, in place.
    let asset = down.world().get::<Instances>(e).unwrap().0.id();
    let moved = noodles2_full(&[instance_from_transform(Transform::from_xyz(5.0, 6.0, 7.0))]);
    send_transaction(&mut up, vec![inline_buffer(9102, moved)]);
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the replaced buffer",
        |a| {
            let d = &mut a[1];
            set_of(d, e).is_some_and(|s| s.instances[0].position[..3] == [5.0, 6.0, 7.0])
        },
    );
    assert_eq!(down.world().get::<Instances>(e).unwrap().0.id(), asset);
    // Replaced by too few bytes for its view: refused, that entity loses its instances, the
    // other buffer's user keeps them.
    send_transaction(&mut up, vec![inline_buffer(9101, vec![0; 10])]);
    let shrunk = mirror_of_id(&mut down, 2001).unwrap();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the shrunk buffer refused",
        |a| a[1].world().get::<Instances>(shrunk).is_none(),
    );
    let r = refusals(&down);
    assert!(
        r.contains("instances of entity 2001") && r.contains("escapes its buffer of 10 bytes"),
        "{r}"
    );
    assert!(set_of(&down, e).is_some());

    // The link stayed open and the world goes on.
    let later = up.world_mut().spawn((Name::new("after"), Shared)).id();
    run_until(&mut [&mut up, &mut down], LIMIT, "a later entity", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, later).is_some()
    });
    assert!(
        closed_reasons(&down).is_empty(),
        "{:?}",
        closed_reasons(&down)
    );
}

fn noodles2_full(instances: &[bevy_noodles2::instances::Instance]) -> Vec<u8> {
    bevy_noodles2::noodles2::assets::encode_full_float(instances)
}
