//! Skinned meshes: joint/weight vertex streams through the mesh conversion, and `SkinnedMesh` ↔
//! `SkinComponent` mirrored from an Upstream to a Downstream over a loopback link, including
//! hostile skins that must be refused without closing the link.

use std::time::Duration;

use bevy::asset::RenderAssetUsages;
use bevy::math::primitives::Cuboid;
use bevy::mesh::skinning::{SkinnedMesh, SkinnedMeshInverseBindposes};
use bevy::mesh::{Indices, MeshBuilder, Meshable, PrimitiveTopology, VertexAttributeValues};
use bevy::prelude::*;
use bevy_noodles2::assets::convert::{AssetError, mesh_from_wire, mesh_to_wire};
use bevy_noodles2::assets::skin::{Skin, matrices_to_bytes};
use bevy_noodles2::assets::{AssetStats, asset_type};
use bevy_noodles2::codec as w;
use bevy_noodles2::codec::Wire;
use bevy_noodles2::mirror::Outgoing;
use bevy_noodles2::prelude::*;
use bytes::Bytes;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// A cube whose vertices are skinned to `joints` joints (two influences each, weights summing
/// to 1), with joint indices offset by `base`.
fn skinned_cube(joints: u16, base: u16) -> Mesh {
    let mut mesh = Cuboid::default().mesh().build();
    let n = mesh.count_vertices();
    let idx: Vec<[u16; 4]> = (0..n)
        .map(|v| {
            let a = base + (v as u16 % joints);
            let b = base + ((v as u16 + 1) % joints);
            [a, b, 0, 0]
        })
        .collect();
    let wts: Vec<[f32; 4]> = (0..n)
        .map(|v| {
            let a = 0.25 + (v as f32) / (4.0 * n as f32);
            [a, 1.0 - a, 0.0, 0.0]
        })
        .collect();
    mesh.insert_attribute(
        Mesh::ATTRIBUTE_JOINT_INDEX,
        VertexAttributeValues::Uint16x4(idx),
    );
    mesh.insert_attribute(Mesh::ATTRIBUTE_JOINT_WEIGHT, wts);
    mesh
}

fn through_wire(mesh: &Mesh) -> (w::MeshAsset, Mesh) {
    let (buffer, asset) = mesh_to_wire(mesh, 5).expect("mesh_to_wire");
    let asset = w::MeshAsset::decode(Bytes::from(asset.encode().unwrap())).unwrap();
    let back = mesh_from_wire(&asset, &buffer).expect("mesh_from_wire");
    (asset, back)
}

fn same_attribute(a: &Mesh, b: &Mesh, attr: bevy::mesh::MeshVertexAttribute) {
    let (x, y) = (a.attribute(attr), b.attribute(attr));
    assert!(x.is_some() && y.is_some(), "{} missing", attr.name);
    assert_eq!(
        x.unwrap().get_bytes(),
        y.unwrap().get_bytes(),
        "{} differs after the round trip",
        attr.name
    );
}

fn weights(mesh: &Mesh) -> &Vec<[f32; 4]> {
    match mesh.attribute(Mesh::ATTRIBUTE_JOINT_WEIGHT) {
        Some(VertexAttributeValues::Float32x4(w)) => w,
        other => panic!("weights: {other:?}"),
    }
}

fn joints(mesh: &Mesh) -> &Vec<[u16; 4]> {
    match mesh.attribute(Mesh::ATTRIBUTE_JOINT_INDEX) {
        Some(VertexAttributeValues::Uint16x4(j)) => j,
        other => panic!("joints: {other:?}"),
    }
}

fn pair() -> (App, App) {
    linked_asset_apps("skin")
}

/// The Downstream's skinned mesh mirroring `id` and its inverse bind matrices, once both exist.
fn skinned(down: &App, e: Entity) -> Option<(SkinnedMesh, Vec<Mat4>)> {
    let sm = down.world().get::<SkinnedMesh>(e)?.clone();
    let ibm = down
        .world()
        .resource::<Assets<SkinnedMeshInverseBindposes>>()
        .get(&sm.inverse_bindposes)?
        .to_vec();
    Some((sm, ibm))
}

fn bind_matrices(n: usize, k: f32) -> Vec<Mat4> {
    (0..n)
        .map(|i| {
            Mat4::from_scale_rotation_translation(
                Vec3::splat(1.0 + i as f32 * 0.125),
                Quat::from_rotation_z(0.3 * i as f32 + k),
                Vec3::new(i as f32, -k, 0.5 * i as f32),
            )
            .inverse()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// mesh streams
// ---------------------------------------------------------------------------------------------

#[test]
fn joint_and_weight_streams_round_trip_exactly() {
    let cube = skinned_cube(3, 0);
    let (asset, back) = through_wire(&cube);
    assert_eq!(asset.flags.has_joint_0(), 1);
    assert_eq!(asset.flags.has_weight_0(), 1);
    assert_eq!(asset.flags.has_joint_1(), 0);
    assert_eq!(asset.joint_0.format, w::JointFormat::Ubyte4 as u8);
    assert_eq!(asset.weight_0.format, w::WeightFormat::Float4 as u8);
    same_attribute(&cube, &back, Mesh::ATTRIBUTE_JOINT_INDEX);
    same_attribute(&cube, &back, Mesh::ATTRIBUTE_JOINT_WEIGHT);
    same_attribute(&cube, &back, Mesh::ATTRIBUTE_POSITION);
    assert!(back.skinned_mesh_bounds().is_some());

    // Joint indices of 256 and more travel as ushort4, still exact.
    let big = skinned_cube(4, 300);
    let (asset, back) = through_wire(&big);
    assert_eq!(asset.joint_0.format, w::JointFormat::Ushort4 as u8);
    same_attribute(&big, &back, Mesh::ATTRIBUTE_JOINT_INDEX);
    same_attribute(&big, &back, Mesh::ATTRIBUTE_JOINT_WEIGHT);
}

#[test]
fn a_lone_joint_stream_is_not_sent() {
    let mut cube = Cuboid::default().mesh().build();
    let n = cube.count_vertices();
    cube.insert_attribute(
        Mesh::ATTRIBUTE_JOINT_INDEX,
        VertexAttributeValues::Uint16x4(vec![[0; 4]; n]),
    );
    let (asset, back) = through_wire(&cube);
    assert_eq!(asset.flags.has_joint_0(), 0);
    assert!(back.attribute(Mesh::ATTRIBUTE_JOINT_INDEX).is_none());
}

/// A triangle of another peer: interleaved `ushort4` joints and `normalized_ushort4` weights
/// in both influence sets.
fn eight_influence_triangle(w0: [[u16; 4]; 3], w1: [[u16; 4]; 3]) -> (w::MeshAsset, Vec<u8>) {
    // vertex: position (12) + joint_0 (8) + weight_0 (8) + joint_1 (8) + weight_1 (8) = 44
    let mut buffer = Vec::new();
    let positions = [[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    for (v, p) in positions.iter().enumerate() {
        for x in p {
            buffer.extend_from_slice(&x.to_le_bytes());
        }
        for (j, wt) in [([0u16, 1, 2, 3], w0[v]), ([4u16, 5, 6, 7], w1[v])] {
            for x in j {
                buffer.extend_from_slice(&x.to_le_bytes());
            }
            for x in wt {
                buffer.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
    let c = |o| w::UncompressedAttribCommon::new(o, 44);
    let asset = w::MeshAsset {
        view: w::BufferView::new(
            0,
            buffer.len() as u64,
            w::BufferAssetID::new(w::AssetID::new(3)),
        ),
        vertex_count: 3,
        flags: w::UncompressedFlags::default()
            .with_format(w::IndexFormat::None)
            .with_has_joint_0(1)
            .with_has_weight_0(1)
            .with_has_joint_1(1)
            .with_has_weight_1(1),
        position: w::PositionAttribute::new(c(0), w::PositionFormat::Float3),
        joint_0: w::JointAttribute::new(c(12), w::JointFormat::Ushort4),
        weight_0: w::WeightAttribute::new(c(20), w::WeightFormat::NormalizedUshort4),
        joint_1: w::JointAttribute::new(c(28), w::JointFormat::Ushort4),
        weight_1: w::WeightAttribute::new(c(36), w::WeightFormat::NormalizedUshort4),
        ..Default::default()
    };
    (asset, buffer)
}

#[test]
fn eight_influences_keep_the_four_largest_renormalized() {
    let q = 65535u16;
    let (asset, buffer) = eight_influence_triangle(
        [[q, 0, 0, 0], [q / 4, 0, q / 4, 0], [100, 200, 300, 400]],
        [[0, 0, 0, 0], [0, q / 4, 0, q / 4], [500, 600, 700, 800]],
    );
    let mesh = mesh_from_wire(&asset, &buffer).expect("mesh_from_wire");
    let (j, wt) = (joints(&mesh), weights(&mesh));
    // Vertex 0: one influence, already normalized (65535 / 65535 = 1).
    assert_eq!(j[0][0], 0);
    assert_eq!(wt[0], [1.0, 0.0, 0.0, 0.0]);
    // Vertex 1: four equal influences spread over both sets (16383 / 65535 each: the sum is
    // within the renormalization tolerance, so they stay as quantized).
    let mut got: Vec<(u16, f32)> = j[1].iter().copied().zip(wt[1]).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        vec![0, 2, 5, 7]
    );
    for (_, x) in &got {
        assert!((x - 0.25).abs() < 1.0 / 65535.0, "{got:?}");
    }
    // Vertex 2: the four largest (joints 7, 6, 5, 4) survive and are renormalized.
    assert_eq!(j[2], [7, 6, 5, 4]);
    let sum: f32 = wt[2].iter().sum();
    assert!((sum - 1.0).abs() < 1e-6, "sum {sum}");
    assert!(
        (wt[2][0] - 800.0 / 2600.0).abs() < 1.0 / 65535.0,
        "{:?}",
        wt[2]
    );
}

#[test]
fn bad_skin_streams_are_refused() {
    let (mut asset, buffer) = eight_influence_triangle([[1; 4]; 3], [[1; 4]; 3]);
    asset.flags.set_has_weight_1(0);
    let e = mesh_from_wire(&asset, &buffer).unwrap_err();
    assert!(
        matches!(e, AssetError::UnpairedSkinStream { .. }) && e.to_string().contains("joint_1"),
        "{e}"
    );

    let (mut asset, buffer) = eight_influence_triangle([[1; 4]; 3], [[1; 4]; 3]);
    asset.weight_0.format = 9;
    let e = mesh_from_wire(&asset, &buffer).unwrap_err().to_string();
    assert!(e.contains("weight_0.format"), "{e}");

    let (mut asset, buffer) = eight_influence_triangle([[1; 4]; 3], [[1; 4]; 3]);
    asset.joint_1.common = w::UncompressedAttribCommon::new(40, 44);
    let e = mesh_from_wire(&asset, &buffer).unwrap_err().to_string();
    assert!(e.contains("joint_1") && e.contains("past"), "{e}");

    // Float weights must be finite and not negative.
    let mut cube = skinned_cube(2, 0);
    let n = cube.count_vertices();
    let mut wts = vec![[1.0f32, 0.0, 0.0, 0.0]; n];
    wts[5] = [f32::NAN, 0.0, 0.0, 0.0];
    cube.insert_attribute(Mesh::ATTRIBUTE_JOINT_WEIGHT, wts);
    let (buffer, asset) = mesh_to_wire(&cube, 1).unwrap();
    let e = mesh_from_wire(&asset, &buffer).unwrap_err().to_string();
    assert!(e.contains("weight_0 of vertex 5"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// end to end
// ---------------------------------------------------------------------------------------------

/// Spawns a shared two-joint skeleton and a skinned cube on it; returns (mesh entity, joints,
/// inverse bindposes handle).
fn spawn_skinned(
    up: &mut App,
    share_joints: bool,
) -> (Entity, Vec<Entity>, Handle<SkinnedMeshInverseBindposes>) {
    let world = up.world_mut();
    let mesh = world.resource_mut::<Assets<Mesh>>().add(skinned_cube(2, 0));
    let ibm = world
        .resource_mut::<Assets<SkinnedMeshInverseBindposes>>()
        .add(SkinnedMeshInverseBindposes::from(bind_matrices(2, 0.0)));
    let root = world
        .spawn((Name::new("armature"), Transform::from_xyz(0.0, 1.0, 0.0)))
        .id();
    let j0 = world
        .spawn((
            Name::new("hip"),
            Transform::from_xyz(0.0, 0.5, 0.0),
            ChildOf(root),
        ))
        .id();
    let j1 = world
        .spawn((
            Name::new("knee"),
            Transform::from_rotation(Quat::from_rotation_x(0.4)),
            ChildOf(j0),
        ))
        .id();
    if share_joints {
        for e in [root, j0, j1] {
            world.entity_mut(e).insert(Shared);
        }
    }
    let skinned = world
        .spawn((
            Name::new("body"),
            Transform::default(),
            Mesh3d(mesh),
            SkinnedMesh {
                inverse_bindposes: ibm.clone(),
                joints: vec![j0, j1],
            },
            Shared,
        ))
        .id();
    (skinned, vec![j0, j1], ibm)
}

#[test]
fn skinned_mesh_is_mirrored_with_its_joints_and_bind_matrices() {
    let (mut up, mut down) = pair();
    let (body, joints_up, ibm) = spawn_skinned(&mut up, true);

    let mut found = None;
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the skinned mesh on the Downstream",
        |a| {
            let [u, d] = a else { unreachable!() };
            found = mirror_of(u, d, body).and_then(|e| skinned(d, e).map(|s| (e, s)));
            found.is_some()
        },
    );
    let (body_down, (sm, matrices)) = found.unwrap();
    // Joints are the local mirrors of the Upstream's joints, in palette order.
    let want: Vec<Entity> = joints_up
        .iter()
        .map(|j| mirror_of(&up, &mut down, *j).expect("joint mirrored"))
        .collect();
    assert_eq!(sm.joints, want);
    assert_eq!(down.world().get::<Name>(want[1]).unwrap().as_str(), "knee");
    // Inverse bind matrices are bit-exact.
    assert_eq!(matrices, bind_matrices(2, 0.0));
    // The mesh's joint and weight streams too.
    let mesh_up = up
        .world()
        .resource::<Assets<Mesh>>()
        .get(&up.world().get::<Mesh3d>(body).unwrap().0)
        .unwrap();
    let h = down.world().get::<Mesh3d>(body_down).unwrap().0.clone();
    let mesh_down = down.world().resource::<Assets<Mesh>>().get(&h).unwrap();
    same_attribute(mesh_up, mesh_down, Mesh::ATTRIBUTE_JOINT_INDEX);
    same_attribute(mesh_up, mesh_down, Mesh::ATTRIBUTE_JOINT_WEIGHT);
    let skin = down.world().get::<Skin>(body_down).unwrap();
    assert_eq!(skin.skeleton_root, None, "Bevy skins have no root");
    let buffer = skin.inverse_bind_matrices.buffer;
    let live = |up: &App| {
        up.world()
            .resource::<Outgoing>()
            .is_live((0, asset_type::BUFFER, buffer))
    };
    assert!(live(&up));

    // New bind matrices on the Upstream reach the Downstream (as a new buffer).
    up.world_mut()
        .resource_mut::<Assets<SkinnedMeshInverseBindposes>>()
        .insert(
            &ibm,
            SkinnedMeshInverseBindposes::from(bind_matrices(2, 1.5)),
        )
        .unwrap();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the new bind matrices on the Downstream",
        |a| skinned(a[1], body_down).is_some_and(|(_, m)| m == bind_matrices(2, 1.5)),
    );
    assert!(!live(&up), "the old buffer was deleted");

    // Removing the skin on the Upstream removes it on the Downstream and deletes its buffer.
    up.world_mut().entity_mut(body).remove::<SkinnedMesh>();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the skin gone on the Downstream",
        |a| {
            a[1].world().get::<SkinnedMesh>(body_down).is_none()
                && a[1].world().get::<Skin>(body_down).is_none()
        },
    );
    let buffers = up
        .world()
        .resource::<Outgoing>()
        .live_assets()
        .filter(|k| k.1 == asset_type::BUFFER)
        .count();
    assert_eq!(buffers, 1, "only the mesh's buffer is left");
    assert!(closed_reasons(&down).is_empty());
    assert_eq!(down.world().resource::<AssetStats>().refused, 0);
}

#[test]
fn a_late_joiner_gets_the_skin_with_the_world() {
    let mut up = asset_app("skin up");
    // The world goes out an asset and an entity per frame: the skin, its mesh and the entities
    // arrive in separate frames, each waiting for what it refers to.
    {
        let mut config = up.world_mut().resource_mut::<MirrorConfig>();
        config.join_entities_per_frame = 1;
        config.join_asset_bytes_per_frame = 1;
    }
    let (body, joints_up, _) = spawn_skinned(&mut up, true);
    let url = listen(&mut up);
    pump(&mut [&mut up], 3);
    let mut down = asset_app("skin late");
    connect(&mut down, NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the skinned mesh on the late Downstream",
        |a| {
            let [u, d] = a else { unreachable!() };
            mirror_of(u, d, body).is_some_and(|e| skinned(d, e).is_some())
        },
    );
    let body_down = mirror_of(&up, &mut down, body).unwrap();
    let (sm, m) = skinned(&down, body_down).unwrap();
    let want: Vec<Entity> = joints_up
        .iter()
        .map(|j| mirror_of(&up, &mut down, *j).unwrap())
        .collect();
    assert_eq!(sm.joints, want);
    assert_eq!(m, bind_matrices(2, 0.0));
}

#[test]
fn a_skin_waits_until_its_joints_are_shared() {
    let (mut up, mut down) = pair();
    let (body, joints_up, _) = spawn_skinned(&mut up, false);
    // The mesh arrives, the skin cannot be represented (its joints are not shared).
    run_until(&mut [&mut up, &mut down], LIMIT, "the mesh entity", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, body).is_some_and(|e| d.world().get::<Mesh3d>(e).is_some())
    });
    pump(&mut [&mut up, &mut down], 5);
    let body_down = mirror_of(&up, &mut down, body).unwrap();
    assert!(down.world().get::<Skin>(body_down).is_none());
    assert!(down.world().get::<SkinnedMesh>(body_down).is_none());

    // Sharing the skeleton (root included, for the hierarchy) sends the skin.
    let root = up.world().get::<ChildOf>(joints_up[0]).unwrap().parent();
    for e in [root, joints_up[0], joints_up[1]] {
        up.world_mut().entity_mut(e).insert(Shared);
    }
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the skin after its joints were shared",
        |a| skinned(a[1], body_down).is_some(),
    );
    let sm = skinned(&down, body_down).unwrap().0;
    assert_eq!(
        sm.joints[0],
        mirror_of(&up, &mut down, joints_up[0]).unwrap()
    );

    // Unsharing a joint makes the skin unrepresentable again: it goes on the Downstream.
    up.world_mut().entity_mut(joints_up[1]).remove::<Shared>();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the skin gone after a joint was unshared",
        |a| a[1].world().get::<SkinnedMesh>(body_down).is_none(),
    );
}

// ---------------------------------------------------------------------------------------------
// hostile skins (raw transactions sent on the Upstream's link)
// ---------------------------------------------------------------------------------------------

fn skin(buffer: u64, offset: u64, length: u64, joints: &[u64]) -> Vec<u8> {
    w::SkinComponent {
        flags: w::SkinComponentFlags::default(),
        inverse_bind_matrices: w::BufferView::new(
            offset,
            length,
            w::BufferAssetID::new(w::AssetID::new(buffer)),
        ),
        skeleton_root: w::EntityID::new(0),
        joints: w::SkinJointList(joints.iter().map(|&j| w::EntityID::new(j)).collect()),
    }
    .encode()
    .unwrap()
}

const SKIN: u16 = 23;
const TRANSFORM: u16 = 20;
const MESH: u16 = 14;

fn refusals(down: &App) -> Vec<String> {
    down.world()
        .resource::<AssetStats>()
        .recent_refusals
        .iter()
        .map(|r| r.to_string())
        .collect()
}

#[test]
fn hostile_skins_are_refused_and_the_world_goes_on() {
    let (mut up, mut down) = pair();
    // Ids far above what the Upstream allocates itself.
    let ibm = matrices_to_bytes(&bind_matrices(2, 0.0));
    let (mesh_buffer, mesh_asset) = mesh_to_wire(&skinned_cube(4, 0), 9002).unwrap();
    send_transaction(
        &mut up,
        vec![
            w::ContentMessage::ContentCreateEntities(w::ContentCreateEntities {
                list: [1001u64, 1002, 1003, 1004, 1005, 1006]
                    .map(w::EntityID::new)
                    .to_vec()
                    .into(),
            }),
            inline_buffer(9001, ibm.clone()),
            inline_buffer(9002, mesh_buffer),
            core_asset(asset_type::MESH, 9003, mesh_asset.encode().unwrap()),
            components(
                0,
                TRANSFORM,
                &[(1001, identity_transform()), (1006, identity_transform())],
            ),
            components(
                0,
                MESH,
                &[(
                    1005,
                    w::MeshComponent::new(w::MeshAssetID::new(w::AssetID::new(9003)))
                        .encode()
                        .unwrap(),
                )],
            ),
            components(
                0,
                SKIN,
                &[
                    // 128 bytes for one joint: not 64 × joints.
                    (1002, skin(9001, 0, 128, &[1001])),
                    // A view past the end of its buffer.
                    (1003, skin(9001, 64, 128, &[1001, 1006])),
                    // A joint (5555) nobody created yet: waits for it.
                    (1004, skin(9001, 0, 128, &[1001, 5555])),
                    // The mesh uses joints 0..4, the skin has 2.
                    (1005, skin(9001, 0, 128, &[1001, 1006])),
                    // A good one.
                    (1006, skin(9001, 0, 128, &[1006, 1001])),
                ],
            ),
        ],
    );
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "three refusals and one applied skin",
        |a| {
            let d = &mut a[1];
            d.world().resource::<AssetStats>().refused >= 3
                && mirror_of_id(d, 1006).is_some_and(|e| skinned(d, e).is_some())
        },
    );
    let r = refusals(&down).join("\n");
    assert!(
        r.contains("entity 1002") && r.contains("128 bytes") && r.contains("exactly 64"),
        "{r}"
    );
    assert!(r.contains("entity 1003") && r.contains("escapes"), "{r}");
    assert!(
        r.contains("entity 1005") && r.contains("joint index") && r.contains("2 joints"),
        "{r}"
    );
    for id in [1002, 1003, 1004, 1005] {
        let e = mirror_of_id(&mut down, id).unwrap();
        assert!(
            down.world().get::<SkinnedMesh>(e).is_none(),
            "entity {id} has no skinned mesh"
        );
    }
    let good = mirror_of_id(&mut down, 1006).unwrap();
    let (sm, m) = skinned(&down, good).unwrap();
    assert_eq!(
        sm.joints,
        vec![good, mirror_of_id(&mut down, 1001).unwrap()]
    );
    assert_eq!(m, bind_matrices(2, 0.0));

    // The peer replaces the matrices' buffer under the same id: the skin reads it again.
    send_transaction(
        &mut up,
        vec![inline_buffer(
            9001,
            matrices_to_bytes(&bind_matrices(2, 1.0)),
        )],
    );
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the replaced matrices",
        |a| skinned(a[1], good).is_some_and(|(_, m)| m == bind_matrices(2, 1.0)),
    );

    // The joint that was missing arrives: the waiting skin applies, with that very entity.
    let placeholder = mirror_of_id(&mut down, 5555).expect("a placeholder for the joint");
    send_transaction(
        &mut up,
        vec![components(0, TRANSFORM, &[(5555, identity_transform())])],
    );
    let waiting = mirror_of_id(&mut down, 1004).unwrap();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the waiting skin once its joint arrived",
        |a| skinned(a[1], waiting).is_some(),
    );
    assert_eq!(skinned(&down, waiting).unwrap().0.joints[1], placeholder);

    // The link stayed open and the rest of the world keeps working.
    let later = up
        .world_mut()
        .spawn((Name::new("after the refusals"), Shared))
        .id();
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "an entity shared after the refusals",
        |a| {
            let [u, d] = a else { unreachable!() };
            mirror_of(u, d, later).is_some_and(|e| d.world().get::<Name>(e).is_some())
        },
    );
    assert!(
        closed_reasons(&down).is_empty(),
        "{:?}",
        closed_reasons(&down)
    );
    assert_eq!(open_links(&mut down), 1);
}

/// A mesh built by hand that Bevy's `Mesh` API accepts with triangle indices, used to keep
/// the `Indices`/`PrimitiveTopology`/`RenderAssetUsages` imports honest.
#[test]
fn skin_streams_survive_u32_indices() {
    let mut mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    );
    mesh.insert_attribute(
        Mesh::ATTRIBUTE_POSITION,
        vec![[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    );
    mesh.insert_attribute(
        Mesh::ATTRIBUTE_JOINT_INDEX,
        VertexAttributeValues::Uint16x4(vec![[0, 1, 0, 0], [1, 0, 0, 0], [65535, 0, 0, 0]]),
    );
    mesh.insert_attribute(
        Mesh::ATTRIBUTE_JOINT_WEIGHT,
        vec![
            [0.5f32, 0.5, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0],
        ],
    );
    mesh.insert_indices(Indices::U32(vec![0, 1, 2]));
    let (asset, back) = through_wire(&mesh);
    assert_eq!(asset.joint_0.format, w::JointFormat::Ushort4 as u8);
    same_attribute(&mesh, &back, Mesh::ATTRIBUTE_JOINT_INDEX);
    same_attribute(&mesh, &back, Mesh::ATTRIBUTE_JOINT_WEIGHT);
}
