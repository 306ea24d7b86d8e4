//! Morph targets: mesh morph streams through the mesh conversion (both ways), and morph weights
//! (`MorphWeightsComponent`, Core (0, 24)) mirrored from Bevy's `MeshMorphWeights` over a
//! loopback link, including weights that live on another entity (as glTF scenes load them) and
//! hostile weights.

use std::time::Duration;

use bevy::math::primitives::Cuboid;
use bevy::mesh::morph::{MeshMorphWeights, MorphAttributes, MorphWeights};
use bevy::mesh::{MeshBuilder, Meshable};
use bevy::prelude::*;
use bevy_noodles2::assets::convert::{mesh_from_wire, mesh_to_wire};
use bevy_noodles2::codec as w;
use bevy_noodles2::codec::Wire;
use bevy_noodles2::mirror::{Mirrored, MorphTargetWeights, Shared};
use bevy_noodles2::prelude::*;
use bytes::Bytes;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

/// A cube with two morph targets: the first moves every vertex up by its index / 100 and bends
/// its normal, the second only pushes positions out along x.
fn morphing_cube() -> Mesh {
    let mut mesh = Cuboid::default().mesh().build();
    let n = mesh.count_vertices();
    let first = (0..n).map(|v| {
        MorphAttributes::new(
            Vec3::Y * v as f32 / 100.0,
            Vec3::new(0.0, 0.5, 0.0),
            Vec3::ZERO,
        )
    });
    let second =
        (0..n).map(|v| MorphAttributes::new(Vec3::X * (1.0 + v as f32), Vec3::ZERO, Vec3::ZERO));
    mesh.set_morph_targets(first.chain(second).collect());
    mesh
}

#[test]
fn morph_targets_survive_the_wire_exactly() {
    let mesh = morphing_cube();
    let (buffer, asset) = mesh_to_wire(&mesh, 5).expect("mesh_to_wire");
    assert_eq!(asset.flags.has_morph_targets(), 1);
    assert_eq!(asset.morph_targets.0.len(), 2);
    // Only the first target has normal deltas; neither has tangents.
    assert_eq!(asset.morph_targets.0[0].flags.has_normal(), 1);
    assert_eq!(asset.morph_targets.0[1].flags.has_normal(), 0);
    assert_eq!(asset.morph_targets.0[1].flags.has_tangent(), 0);
    let asset = w::MeshAsset::decode(Bytes::from(asset.encode().unwrap())).unwrap();
    let back = mesh_from_wire(&asset, &buffer).expect("mesh_from_wire");
    assert_eq!(back.morph_targets(), mesh.morph_targets());
}

#[test]
fn morph_streams_that_alias_to_amplify_are_refused() {
    let mesh = morphing_cube();
    let (buffer, mut asset) = mesh_to_wire(&mesh, 5).expect("mesh_to_wire");
    // 2,000 targets all reading the same position deltas: 24 vertices × 12 bytes each.
    let target = asset.morph_targets.0[0];
    asset.morph_targets.0 = vec![target; 2000];
    let err = mesh_from_wire(&asset, &buffer).expect_err("amplifying morph targets");
    assert!(err.to_string().contains("morph targets"), "{err}");
    // A target stream past the view is named.
    let mut asset = mesh_to_wire(&mesh, 5).unwrap().1;
    asset.morph_targets.0[1].position.common.view_byte_offset = 1_000_000.into();
    let err = mesh_from_wire(&asset, &buffer).expect_err("a stream past the view");
    assert!(
        err.to_string().contains("morph_targets[1].position"),
        "{err}"
    );
}

fn pair() -> (App, App) {
    linked_asset_apps("morph")
}

/// The Downstream's mirror of the Upstream's shared entity `e`: its mesh's morph targets and
/// the weights Bevy renders it with.
fn mirrored_morphs(
    up: &App,
    down: &mut App,
    e: Entity,
) -> Option<(Vec<MorphAttributes>, Vec<f32>)> {
    let m = mirror_of(up, down, e)?;
    let mesh = down.world().get::<Mesh3d>(m)?.0.clone();
    let targets = down
        .world()
        .resource::<Assets<Mesh>>()
        .get(&mesh)?
        .morph_targets()?
        .clone();
    match down.world().get::<MeshMorphWeights>(m)? {
        MeshMorphWeights::Value { weights } => Some((targets, weights.clone())),
        MeshMorphWeights::Reference(_) => None,
    }
}

#[test]
fn morph_targets_and_weights_are_mirrored_and_follow_changes() {
    let (mut up, mut down) = pair();
    let mesh = morphing_cube();
    let targets = mesh.morph_targets().unwrap().clone();
    let handle = up.world_mut().resource_mut::<Assets<Mesh>>().add(mesh);
    // Weights on the mesh entity itself...
    let direct = up
        .world_mut()
        .spawn((
            Shared,
            Transform::default(),
            Mesh3d(handle.clone()),
            MeshMorphWeights::Value {
                weights: vec![0.25, 0.5],
            },
        ))
        .id();
    // ... and weights on another entity that the mesh entity refers to (as glTF scenes do).
    let node = up
        .world_mut()
        .spawn((
            Shared,
            Transform::default(),
            MorphWeights::new(vec![1.0, 0.0], None).unwrap(),
        ))
        .id();
    let primitive = up
        .world_mut()
        .spawn((
            Shared,
            Transform::default(),
            ChildOf(node),
            Mesh3d(handle),
            MeshMorphWeights::Reference(node),
        ))
        .id();
    run_until(&mut [&mut up, &mut down], LIMIT, "morphs mirrored", |a| {
        let (up, down) = a.split_at_mut(1);
        mirrored_morphs(up[0], down[0], direct).is_some_and(|(_, w)| w == [0.25, 0.5])
            && mirrored_morphs(up[0], down[0], primitive).is_some_and(|(_, w)| w == [1.0, 0.0])
    });
    let (got, _) = mirrored_morphs(&up, &mut down, direct).unwrap();
    assert_eq!(got, targets, "the morph targets arrive exactly");
    let m = mirror_of(&up, &mut down, primitive).unwrap();
    assert_eq!(
        down.world().get::<MorphTargetWeights>(m),
        Some(&MorphTargetWeights(vec![1.0, 0.0]))
    );

    // Animating the referenced weights (what an AnimationPlayer does) reaches the Downstream.
    up.world_mut()
        .get_mut::<MorphWeights>(node)
        .unwrap()
        .weights_mut()
        .copy_from_slice(&[0.3, 0.7]);
    if let Some(mut w) = up.world_mut().get_mut::<MeshMorphWeights>(direct) {
        *w = MeshMorphWeights::Value {
            weights: vec![0.0, 1.0],
        };
    }
    run_until(&mut [&mut up, &mut down], LIMIT, "weights changed", |a| {
        let (up, down) = a.split_at_mut(1);
        mirrored_morphs(up[0], down[0], direct).is_some_and(|(_, w)| w == [0.0, 1.0])
            && mirrored_morphs(up[0], down[0], primitive).is_some_and(|(_, w)| w == [0.3, 0.7])
    });

    // Unchanged weights send nothing more.
    pump(&mut [&mut up, &mut down], 3);
    let before = up.world().resource::<MirrorStats>().last_delta_bytes;
    pump(&mut [&mut up, &mut down], 3);
    assert_eq!(
        up.world().resource::<MirrorStats>().last_delta_bytes,
        0,
        "was {before}"
    );

    // Removing the weights removes them downstream.
    up.world_mut()
        .entity_mut(direct)
        .remove::<MeshMorphWeights>();
    run_until(&mut [&mut up, &mut down], LIMIT, "weights removed", |a| {
        let (up, down) = a.split_at_mut(1);
        mirror_of(up[0], down[0], direct)
            .is_some_and(|m| down[0].world().get::<MeshMorphWeights>(m).is_none())
    });
    assert!(closed_reasons(&down).is_empty());
}

fn weights(id: u64, weights: Vec<f32>) -> w::ContentMessage {
    let mut content = id.to_le_bytes().to_vec();
    content.extend(w::MorphWeightsComponent(weights).encode().unwrap());
    w::ContentMessage::ContentModifyComponents(w::ContentModifyComponents {
        component: w::ComponentTypeID::new(w::ExtensionID::new(0), 24),
        count: 1,
        content: w::Content(content.into()),
    })
}

#[test]
fn hostile_morph_weights_close_the_link_with_a_reason() {
    for (bad, why) in [
        (vec![f32::NAN], "not finite"),
        (vec![0.5; 300], "300 weights"),
    ] {
        let (mut up, mut down) = pair();
        let e = up.world_mut().spawn((Shared, Transform::default())).id();
        run_until(&mut [&mut up, &mut down], LIMIT, "entity mirrored", |a| {
            let (up, down) = a.split_at_mut(1);
            mirror_of(up[0], down[0], e).is_some()
        });
        let id = up.world().get::<SharedId>(e).unwrap().get();
        send_transaction(&mut up, vec![weights(id, bad)]);
        run_until(&mut [&mut up, &mut down], LIMIT, "link closed", |a| {
            !closed_reasons(a[1]).is_empty()
        });
        let reasons = closed_reasons(&down);
        let text = reasons[0].to_string();
        assert!(
            text.contains("MorphTargetWeights") && text.contains(why),
            "{text}"
        );
        // No entity was given the bad weights.
        let mut q = down
            .world_mut()
            .query_filtered::<(), (With<Mirrored>, With<MeshMorphWeights>)>();
        assert_eq!(q.iter(down.world()).count(), 0);
    }
}
