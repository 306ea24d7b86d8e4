//! Bevy assets ↔ NOODLES2 Core asset bodies (`bevy_noodles2::assets::convert`): round trips
//! through the wire types and their encoded bytes, and hostile input that must be refused with a
//! clear error, never a panic.

use std::marker::PhantomData;

use bevy::asset::uuid::Uuid;
use bevy::asset::{Handle, RenderAssetUsages};
use bevy::color::{Color, ColorToPacked, LinearRgba, Srgba};
use bevy::image::{
    Image, ImageAddressMode, ImageFilterMode, ImageSampler, ImageSamplerBorderColor,
    ImageSamplerDescriptor,
};
use bevy::material::AlphaMode;
use bevy::math::Vec2;
use bevy::math::primitives::{Cuboid, Sphere};
use bevy::mesh::{
    Indices, Mesh, MeshBuilder, Meshable, PrimitiveTopology, UvChannel, VertexAttributeValues,
};
use bevy::pbr::StandardMaterial;
use bevy::render::render_resource::{Extent3d, Face, TextureDimension, TextureFormat};
use bevy_noodles2::assets::convert::*;
use bevy_noodles2::codec as w;
use bevy_noodles2::codec::Wire;
use bytes::Bytes;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

/// Sends a mesh the way a link would: the mesh asset and the buffer asset each encoded to bytes
/// and decoded again, then converted back.
fn through_wire(mesh: &Mesh) -> (w::MeshAsset, Vec<u8>, Mesh) {
    let (buffer, asset) = mesh_to_wire(mesh, 42).expect("mesh_to_wire");
    assert_eq!(asset.view.offset.get(), 0);
    assert_eq!(asset.view.length.get(), buffer.len() as u64);
    assert_eq!(asset.view.asset_id.id.id.get(), 42);
    assert_eq!(asset.flags.primitive_type(), w::PrimitiveType::Triangles);

    let decoded = w::MeshAsset::decode(Bytes::from(asset.encode().expect("encode mesh")))
        .expect("decode mesh");
    assert_eq!(decoded, asset);

    let body = w::BufferAsset {
        flags: w::BufferAssetFlags::default(),
        source: w::BufferSource::InlineContent(w::InlineContent(Bytes::from(buffer.clone()))),
    };
    let body = w::BufferAsset::decode(Bytes::from(body.encode().expect("encode buffer")))
        .expect("decode buffer");
    let w::BufferSource::InlineContent(bytes) = body.source else {
        panic!("inline content expected");
    };
    let back = mesh_from_wire(&decoded, &bytes).expect("mesh_from_wire");
    (decoded, buffer, back)
}

fn attr(mesh: &Mesh, a: bevy::mesh::MeshVertexAttribute) -> Option<&VertexAttributeValues> {
    mesh.attribute(a)
}

fn index_values(mesh: &Mesh) -> Option<Vec<usize>> {
    mesh.indices().map(|i| i.iter().collect())
}

/// Every standard attribute and the index values are bit-for-bit equal.
fn assert_same_geometry(a: &Mesh, b: &Mesh) {
    for a_id in [
        Mesh::ATTRIBUTE_POSITION,
        Mesh::ATTRIBUTE_NORMAL,
        Mesh::ATTRIBUTE_TANGENT,
        Mesh::ATTRIBUTE_UV_0,
        Mesh::ATTRIBUTE_UV_1,
    ] {
        let name = a_id.name;
        match (attr(a, a_id), attr(b, a_id)) {
            (None, None) => {}
            (Some(x), Some(y)) => assert_eq!(
                x.get_bytes(),
                y.get_bytes(),
                "attribute {name} differs after the round trip"
            ),
            (x, y) => panic!(
                "attribute {name}: present before {}, after {}",
                x.is_some(),
                y.is_some()
            ),
        }
    }
    assert_eq!(index_values(a), index_values(b), "indices differ");
    assert_eq!(b.primitive_topology(), PrimitiveTopology::TriangleList);
}

fn handle(n: u128) -> Handle<Image> {
    Handle::Uuid(Uuid::from_u128(n), PhantomData)
}

/// `image_slot` for tests: handle uuid `n` is image asset `n + 1000`.
fn slot_of(h: &Handle<Image>) -> Option<u64> {
    match h {
        Handle::Uuid(u, _) => Some(u.as_u128() as u64 + 1000),
        Handle::Strong(_) => None,
    }
}

fn image_of(id: u64) -> Option<Handle<Image>> {
    id.checked_sub(1000).map(|n| handle(u128::from(n)))
}

fn err_text<T>(r: Result<T, AssetError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A valid cube on the wire, to be broken by the tests below.
fn cube_wire() -> (w::MeshAsset, Vec<u8>) {
    let (buffer, asset) = mesh_to_wire(&Cuboid::default().mesh().build(), 1).unwrap();
    (asset, buffer)
}

fn rgba_image(w: u32, h: u32, format: TextureFormat) -> Image {
    let bpp = match format {
        TextureFormat::R8Unorm => 1,
        TextureFormat::Rg8Unorm => 2,
        _ => 4,
    };
    let data: Vec<u8> = (0..w * h * bpp).map(|i| (i * 37 % 251) as u8).collect();
    Image::new(
        Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        format,
        RenderAssetUsages::default(),
    )
}

// ---------------------------------------------------------------------------------------------
// meshes
// ---------------------------------------------------------------------------------------------

#[test]
fn cube_round_trip_is_exact() {
    let cube = Cuboid::default().mesh().build();
    let (asset, buffer, back) = through_wire(&cube);
    assert_same_geometry(&cube, &back);
    assert_eq!(
        asset.flags.format(),
        w::IndexFormat::U16,
        "36 small indices travel as U16"
    );
    assert_eq!(asset.flags.has_normal(), 1);
    assert_eq!(asset.flags.has_uv_0(), 1);
    assert_eq!(asset.flags.has_tangent(), 0);
    assert_eq!(asset.flags.has_uv_1(), 0);
    assert_eq!(asset.vertex_count, 24);
    assert_eq!(asset.index.index_count.get(), 36);
    assert_eq!(
        (
            asset.bb_min.x.get(),
            asset.bb_min.y.get(),
            asset.bb_min.z.get()
        ),
        (-0.5, -0.5, -0.5)
    );
    assert_eq!(
        (
            asset.bb_max.x.get(),
            asset.bb_max.y.get(),
            asset.bb_max.z.get()
        ),
        (0.5, 0.5, 0.5)
    );
    // positions + normals (12 B) + uvs (8 B) per vertex + 2 B per index
    assert_eq!(buffer.len(), 24 * (12 + 12 + 8) + 36 * 2);
}

#[test]
fn sphere_with_tangents_and_second_uv_round_trip_is_exact() {
    let mut sphere = Sphere::new(1.0)
        .mesh()
        .build()
        .with_generated_tangents()
        .unwrap();
    let uv1: Vec<[f32; 2]> = (0..sphere.count_vertices())
        .map(|i| [i as f32 * 0.25, -(i as f32)])
        .collect();
    sphere.insert_attribute(Mesh::ATTRIBUTE_UV_1, uv1);
    let (asset, _, back) = through_wire(&sphere);
    assert_eq!(asset.flags.has_tangent(), 1);
    assert_eq!(asset.flags.has_uv_1(), 1);
    assert_same_geometry(&sphere, &back);
}

#[test]
fn more_than_65535_vertices_forces_u32_indices() {
    let n = 70_000u32;
    let positions: Vec<[f32; 3]> = (0..n)
        .map(|i| [i as f32, (i % 7) as f32, -(i as f32)])
        .collect();
    let indices: Vec<u32> = (0..n - 1).rev().collect(); // 69 999 indices, the largest 69 998
    let mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
    .with_inserted_indices(Indices::U32(indices));
    let (asset, buffer, back) = through_wire(&mesh);
    assert_eq!(asset.flags.format(), w::IndexFormat::U32);
    assert_eq!(buffer.len(), 70_000 * 12 + 69_999 * 4);
    assert_same_geometry(&mesh, &back);
    assert!(matches!(back.indices(), Some(Indices::U32(_))));
}

#[test]
fn small_u32_indices_travel_as_u16() {
    let mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, vec![[0.0f32; 3]; 3])
    .with_inserted_indices(Indices::U32(vec![2, 1, 0]));
    let (asset, _, back) = through_wire(&mesh);
    assert_eq!(asset.flags.format(), w::IndexFormat::U16);
    assert_eq!(index_values(&back), Some(vec![2, 1, 0]));
}

#[test]
fn mesh_without_indices_round_trips() {
    let mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(
        Mesh::ATTRIBUTE_POSITION,
        vec![
            [0.0f32, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [5.0, 5.0, 5.0],
            [6.0, 5.0, 5.0],
            [5.0, 6.0, -5.0],
        ],
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0f32, 0.0, 1.0]; 6]);
    let (asset, _, back) = through_wire(&mesh);
    assert_eq!(asset.flags.format(), w::IndexFormat::None);
    assert!(back.indices().is_none());
    assert_same_geometry(&mesh, &back);
    assert_eq!(asset.bb_min.z.get(), -5.0);
    assert_eq!(asset.bb_max.x.get(), 6.0);
}

#[test]
fn empty_mesh_round_trips() {
    let mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, Vec::<[f32; 3]>::new());
    let (asset, buffer, back) = through_wire(&mesh);
    assert!(buffer.is_empty());
    assert_eq!(asset.vertex_count, 0);
    assert_same_geometry(&mesh, &back);
}

/// A hand-made, interleaved layout that our sender never produces: normalized ushort UVs,
/// U8 indices, a view that starts inside a larger buffer, `ubyte4` joints with
/// `normalized_ubyte4` weights (renormalized when they do not sum to 1).
#[test]
fn interleaved_normalized_uv_and_u8_indices_from_another_peer() {
    // vertex: position (12) + uv ushort2 (4) + joints ubyte4 (4) + weights unorm8x4 (4) = 24
    let mut buffer = vec![0xEEu8; 7]; // bytes before the view
    let positions = [[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let uvs = [[0u16, 65535], [32768, 0], [65535, 65535]];
    let weights = [[255u8, 0, 0, 0], [100, 100, 0, 0], [0, 0, 0, 0]];
    for ((p, uv), wt) in positions.iter().zip(uvs).zip(weights) {
        for x in p {
            buffer.extend_from_slice(&x.to_le_bytes());
        }
        buffer.extend_from_slice(&uv[0].to_le_bytes());
        buffer.extend_from_slice(&uv[1].to_le_bytes());
        buffer.extend_from_slice(&[0, 1, 2, 3]);
        buffer.extend_from_slice(&wt);
    }
    buffer.extend_from_slice(&[2, 0, 1]);
    let view_len = buffer.len() as u64 - 7;
    buffer.extend_from_slice(&[0xEE; 5]); // bytes after the view

    let asset = w::MeshAsset {
        view: w::BufferView::new(7, view_len, w::BufferAssetID::new(w::AssetID::new(3))),
        vertex_count: 3,
        flags: w::UncompressedFlags::default()
            .with_format(w::IndexFormat::U8)
            .with_has_uv_0(1)
            .with_has_joint_0(1)
            .with_has_weight_0(1),
        position: w::PositionAttribute::new(
            w::UncompressedAttribCommon::new(0, 24),
            w::PositionFormat::Float3,
        ),
        uv_0: w::UVAttribute::new(
            w::UncompressedAttribCommon::new(12, 24),
            w::UVFormat::NormalizedUshort2,
        ),
        joint_0: w::JointAttribute::new(
            w::UncompressedAttribCommon::new(16, 24),
            w::JointFormat::Ubyte4,
        ),
        weight_0: w::WeightAttribute::new(
            w::UncompressedAttribCommon::new(20, 24),
            w::WeightFormat::NormalizedUbyte4,
        ),
        index: w::UncompressedIndex::new(72, 3),
        ..Default::default()
    };
    let asset = w::MeshAsset::decode(Bytes::from(asset.encode().unwrap())).unwrap();
    let mesh = mesh_from_wire(&asset, &buffer).unwrap();
    let Some(VertexAttributeValues::Float32x3(p)) = mesh.attribute(Mesh::ATTRIBUTE_POSITION) else {
        panic!("positions");
    };
    assert_eq!(p, &positions.to_vec());
    let Some(VertexAttributeValues::Float32x2(uv)) = mesh.attribute(Mesh::ATTRIBUTE_UV_0) else {
        panic!("uvs");
    };
    assert_eq!(uv, &vec![[0.0, 1.0], [32768.0 / 65535.0, 0.0], [1.0, 1.0]]);
    assert!(
        matches!(mesh.indices(), Some(Indices::U16(i)) if i == &vec![2, 0, 1]),
        "U8 widens to U16"
    );
    assert_eq!(
        mesh.attribute(Mesh::ATTRIBUTE_JOINT_INDEX),
        Some(&VertexAttributeValues::Uint16x4(vec![[0, 1, 2, 3]; 3])),
        "ubyte4 joints widen to u16"
    );
    assert_eq!(
        mesh.attribute(Mesh::ATTRIBUTE_JOINT_WEIGHT),
        Some(&VertexAttributeValues::Float32x4(vec![
            [1.0, 0.0, 0.0, 0.0],
            [0.5, 0.5, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0],
        ])),
        "unorm8 weights: 255 is 1, 100 + 100 are renormalized, all-zero weights stay"
    );
}

#[test]
fn only_triangle_lists_are_sent() {
    let mesh = Mesh::new(PrimitiveTopology::LineList, RenderAssetUsages::default())
        .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, vec![[0.0f32; 3]; 2]);
    let msg = err_text(mesh_to_wire(&mesh, 1));
    assert!(msg.contains("LineList"), "{msg}");

    let no_positions = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    );
    assert!(err_text(mesh_to_wire(&no_positions, 1)).contains("no positions"));

    let short_normals = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, vec![[0.0f32; 3]; 3])
    .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0f32; 3]; 2]);
    let msg = err_text(mesh_to_wire(&short_normals, 1));
    assert!(msg.contains("normal") && msg.contains("2 values"), "{msg}");

    let bad_index = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, vec![[0.0f32; 3]; 3])
    .with_inserted_indices(Indices::U16(vec![0, 1, 3]));
    assert!(err_text(mesh_to_wire(&bad_index, 1)).contains("index 3"));
}

#[test]
fn view_escaping_its_buffer_is_refused() {
    let (mut asset, buffer) = cube_wire();
    asset.view.length = (buffer.len() as u64 + 1).into();
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(
        msg.contains("mesh: buffer view") && msg.contains("escapes"),
        "{msg}"
    );

    let (mut asset, buffer) = cube_wire();
    asset.view.offset = 1.into();
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("escapes"));

    // The whole content is fine, a shorter buffer is not.
    let (asset, buffer) = cube_wire();
    assert!(err_text(mesh_from_wire(&asset, &buffer[..buffer.len() - 1])).contains("escapes"));
}

#[test]
fn huge_u64_offsets_do_not_overflow() {
    let (mut asset, buffer) = cube_wire();
    asset.view.offset = (u64::MAX - 3).into();
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(msg.contains("overflows"), "{msg}");

    asset.view.offset = u64::MAX.into();
    asset.view.length = u64::MAX.into();
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("overflows"));

    asset.view.offset = u64::MAX.into();
    asset.view.length = 0.into();
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("escapes"));

    // The largest u32 offsets, u16 strides and vertex counts stay in range too.
    let (mut asset, buffer) = cube_wire();
    asset.vertex_count = u32::MAX;
    asset.position.common = w::UncompressedAttribCommon::new(u32::MAX, u16::MAX);
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(
        msg.contains("attribute position") && msg.contains("past"),
        "{msg}"
    );
}

#[test]
fn attribute_past_the_view_is_refused() {
    let (mut asset, buffer) = cube_wire();
    // 24 normals of 12 bytes, starting so that the last one ends 4 bytes past the view.
    let off = buffer.len() as u32 - 24 * 12 + 4;
    asset.normal.common = w::UncompressedAttribCommon::new(off, 12);
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(
        msg.contains(&format!("ends at byte {}", buffer.len() + 4)),
        "{msg}"
    );
    assert!(
        msg.contains("attribute normal") && msg.contains("past the"),
        "{msg}"
    );

    // A view shorter than the data: the last stream (uv_0, then indices) no longer fits.
    let (mut asset, buffer) = cube_wire();
    asset.view.length = (asset.index.view_byte_offset.get() as u64 - 1).into();
    asset.flags.set_format(w::IndexFormat::None);
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(msg.contains("attribute uv_0"), "{msg}");

    // Streams of unflagged attributes are ignored, flagged skinning streams are checked.
    let (mut asset, buffer) = cube_wire();
    let late = buffer.len() as u32 - 100; // 24 weights of 16 bytes do not fit in the last 100 bytes
    asset.weight_1 = w::WeightAttribute::new(
        w::UncompressedAttribCommon::new(late, 16),
        w::WeightFormat::Float4,
    );
    // (Weights come with joints; these read the position bytes, which fit.)
    asset.joint_1 = w::JointAttribute::new(
        w::UncompressedAttribCommon::new(0, 12),
        w::JointFormat::Ubyte4,
    );
    asset.flags.set_has_joint_1(1);
    asset.flags.set_has_weight_1(1);
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("attribute weight_1"));
    asset.flags.set_has_joint_1(0);
    asset.flags.set_has_weight_1(0);
    assert!(mesh_from_wire(&asset, &buffer).is_ok());
}

#[test]
fn stride_smaller_than_element_is_refused() {
    let (mut asset, buffer) = cube_wire();
    asset.position.common = w::UncompressedAttribCommon::new(0, 8);
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(
        msg.contains("attribute position") && msg.contains("vertex_stride 8"),
        "{msg}"
    );

    let (mut asset, buffer) = cube_wire();
    asset.tangent = w::TangentAttribute::new(
        w::UncompressedAttribCommon::new(0, 0),
        w::TangentFormat::Float4,
    );
    asset.flags.set_has_tangent(1);
    assert!(
        err_text(mesh_from_wire(&asset, &buffer)).contains("attribute tangent has vertex_stride 0")
    );
}

#[test]
fn index_out_of_range_is_refused() {
    let (asset, mut buffer) = cube_wire();
    let at = asset.index.view_byte_offset.get() as usize + 2 * 5;
    buffer[at..at + 2].copy_from_slice(&24u16.to_le_bytes());
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(
        msg.contains("index 24 (at position 5)") && msg.contains("24 vertices"),
        "{msg}"
    );
}

#[test]
fn index_count_that_does_not_fit_is_refused() {
    let (mut asset, buffer) = cube_wire();
    asset.index.index_count = u32::MAX.into();
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(
        msg.contains("index block") && msg.contains("past the"),
        "{msg}"
    );

    let (mut asset, buffer) = cube_wire();
    asset.index.index_count = 35.into();
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("not a multiple of 3"));

    let (mut asset, buffer) = cube_wire();
    asset.index.view_byte_offset = u32::MAX.into();
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("index block"));

    // Switching the format to U32 doubles the block size: it no longer fits.
    let (mut asset, buffer) = cube_wire();
    asset.flags.set_format(w::IndexFormat::U32);
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("index block"));
}

#[test]
fn unknown_enum_values_are_refused() {
    let (mut asset, buffer) = cube_wire();
    asset.uv_0.format = 7;
    let msg = err_text(mesh_from_wire(&asset, &buffer));
    assert!(msg.contains("uv_0.format") && msg.contains('7'), "{msg}");

    let (mut asset, buffer) = cube_wire();
    asset.position.format = 1;
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("position.format"));

    let (mut asset, buffer) = cube_wire();
    asset.flags = w::UncompressedFlags::from_raw(asset.flags.raw() | (1 << 11));
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("primitive_type"));

    let (mut asset, buffer) = cube_wire();
    asset.morph_targets.0.push(w::MorphTarget::default());
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("has_morph_targets is 0"));
    asset.flags.set_has_morph_targets(1);
    assert!(
        mesh_from_wire(&asset, &buffer).is_ok(),
        "empty morph target streams are fine"
    );
    asset.morph_targets.0[0].flags.set_has_position(1);
    asset.morph_targets.0[0].position.common = w::UncompressedAttribCommon::new(u32::MAX - 2, 12);
    assert!(err_text(mesh_from_wire(&asset, &buffer)).contains("morph_targets[0].position"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the numbers in a mesh asset, conversion returns (Ok or Err) without panicking.
    #[test]
    fn mesh_from_wire_never_panics(
        view_offset in prop_oneof![Just(0u64), 0u64..2000, Just(u64::MAX), any::<u64>()],
        view_len in prop_oneof![Just(1000u64), 0u64..2000, Just(u64::MAX), any::<u64>()],
        vertex_count in prop_oneof![Just(24u32), 0u32..100, Just(u32::MAX), any::<u32>()],
        flags in any::<u16>(),
        offsets in proptest::collection::vec(any::<u32>(), 10),
        strides in proptest::collection::vec(prop_oneof![Just(12u16), 0u16..40, any::<u16>()], 10),
        formats in proptest::collection::vec(0u8..4, 10),
        index_count in prop_oneof![Just(36u32), 0u32..100, any::<u32>()],
        buffer in proptest::collection::vec(any::<u8>(), 0..1200),
    ) {
        let c = |i: usize| w::UncompressedAttribCommon::new(offsets[i] % 2048, strides[i]);
        let asset = w::MeshAsset {
            view: w::BufferView::new(view_offset, view_len, w::BufferAssetID::default()),
            vertex_count,
            flags: w::UncompressedFlags::from_raw(flags & !(0x7 << 11)),
            position: w::PositionAttribute { common: c(0), format: formats[0] % 2 },
            index: w::UncompressedIndex::new(offsets[1] % 2048, index_count),
            normal: w::NormalAttribute { common: c(2), format: formats[2] % 2 },
            tangent: w::TangentAttribute { common: c(3), format: formats[3] % 2 },
            uv_0: w::UVAttribute { common: c(4), format: formats[4] },
            uv_1: w::UVAttribute { common: c(5), format: formats[5] },
            joint_0: w::JointAttribute { common: c(6), format: formats[6] },
            joint_1: w::JointAttribute { common: c(7), format: formats[7] },
            weight_0: w::WeightAttribute { common: c(8), format: formats[8] },
            weight_1: w::WeightAttribute { common: c(9), format: formats[9] },
            ..Default::default()
        };
        let _ = mesh_from_wire(&asset, &buffer);
    }
}

// ---------------------------------------------------------------------------------------------
// images and samplers
// ---------------------------------------------------------------------------------------------

#[test]
fn rgba8_image_round_trips_through_png() {
    for (format, semantic) in [
        (TextureFormat::Rgba8UnormSrgb, w::ImageSemantic::SRGB),
        (TextureFormat::Rgba8Unorm, w::ImageSemantic::Linear),
    ] {
        let mut image = rgba_image(5, 3, format);
        let sampler = ImageSamplerDescriptor {
            address_mode_u: ImageAddressMode::Repeat,
            address_mode_v: ImageAddressMode::MirrorRepeat,
            address_mode_w: ImageAddressMode::ClampToEdge,
            mag_filter: ImageFilterMode::Linear,
            min_filter: ImageFilterMode::Nearest,
            mipmap_filter: ImageFilterMode::Linear,
            ..Default::default()
        };
        image.sampler = ImageSampler::Descriptor(sampler.clone());
        let (png, flags) = image_to_wire(&image).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert_eq!(flags.semantic(), semantic);

        // The flags travel inside an ImageAsset.
        let wire = w::ImageAsset {
            view: w::BufferView::new(0, png.len() as u64, w::BufferAssetID::default()),
            flags,
        };
        let wire = w::ImageAsset::decode(Bytes::from(wire.encode().unwrap())).unwrap();

        let back = image_from_wire(&png, wire.flags).unwrap();
        assert_eq!(back.texture_descriptor.format, format);
        assert_eq!((back.width(), back.height()), (5, 3));
        assert_eq!(back.data, image.data, "pixels differ for {format:?}");
        assert_eq!(back.sampler, ImageSampler::Descriptor(sampler));
    }
}

#[test]
fn bgra_r8_and_rg8_images_keep_their_channels() {
    let bgra = rgba_image(2, 2, TextureFormat::Bgra8UnormSrgb);
    let (png, flags) = image_to_wire(&bgra).unwrap();
    let back = image_from_wire(&png, flags).unwrap();
    let (src, dst) = (bgra.data.unwrap(), back.data.unwrap());
    for (s, d) in src.chunks(4).zip(dst.chunks(4)) {
        assert_eq!([s[2], s[1], s[0], s[3]], [d[0], d[1], d[2], d[3]]);
    }

    let r8 = rgba_image(3, 2, TextureFormat::R8Unorm);
    let (png, flags) = image_to_wire(&r8).unwrap();
    assert_eq!(flags.semantic(), w::ImageSemantic::Linear);
    let back = image_from_wire(&png, flags).unwrap();
    assert_eq!(back.texture_descriptor.format, TextureFormat::Rgba8Unorm);
    let red: Vec<u8> = back.data.unwrap().chunks(4).map(|p| p[0]).collect();
    assert_eq!(red, r8.data.unwrap());

    let rg8 = rgba_image(3, 2, TextureFormat::Rg8Unorm);
    let (png, flags) = image_to_wire(&rg8).unwrap();
    let back = image_from_wire(&png, flags).unwrap();
    let rg: Vec<u8> = back
        .data
        .unwrap()
        .chunks(4)
        .flat_map(|p| [p[0], p[1]])
        .collect();
    assert_eq!(rg, rg8.data.unwrap());
}

#[test]
fn unsupported_images_are_refused() {
    let float = Image::new_fill(
        Extent3d {
            width: 1,
            height: 1,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[0; 16],
        TextureFormat::Rgba32Float,
        RenderAssetUsages::default(),
    );
    assert!(err_text(image_to_wire(&float)).contains("Rgba32Float"));

    let mut layered = rgba_image(2, 2, TextureFormat::Rgba8UnormSrgb);
    layered.texture_descriptor.size.depth_or_array_layers = 6;
    assert!(err_text(image_to_wire(&layered)).contains("6 layers"));

    let mut short = rgba_image(2, 2, TextureFormat::Rgba8UnormSrgb);
    short.data = Some(vec![0; 3]);
    assert!(err_text(image_to_wire(&short)).contains("3 bytes"));

    let mut empty = rgba_image(2, 2, TextureFormat::Rgba8UnormSrgb);
    empty.data = None;
    assert!(err_text(image_to_wire(&empty)).contains("no CPU pixel data"));
}

#[test]
fn default_sampler_is_sent_as_linear() {
    let image = rgba_image(1, 1, TextureFormat::Rgba8UnormSrgb);
    assert_eq!(image.sampler, ImageSampler::Default);
    let (_, flags) = image_to_wire(&image).unwrap();
    assert_eq!(flags_to_sampler(flags), ImageSamplerDescriptor::linear());
}

#[test]
fn jpeg_is_detected_and_decoded() {
    let mut jpeg = Vec::new();
    let pixels = vec![200u8; 8 * 8 * 3];
    image::ImageEncoder::write_image(
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg),
        &pixels,
        8,
        8,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    let flags = w::ImageFlags::default().with_semantic(w::ImageSemantic::SRGB);
    let image = image_from_wire(&jpeg, flags).unwrap();
    assert_eq!((image.width(), image.height()), (8, 8));
    assert_eq!(
        image.texture_descriptor.format,
        TextureFormat::Rgba8UnormSrgb
    );
}

#[test]
fn sampler_flags_round_trip() {
    let modes = [
        ImageAddressMode::ClampToEdge,
        ImageAddressMode::Repeat,
        ImageAddressMode::MirrorRepeat,
        ImageAddressMode::ClampToBorder,
    ];
    let filters = [ImageFilterMode::Nearest, ImageFilterMode::Linear];
    for (i, u) in modes.iter().enumerate() {
        for f in filters {
            let (v, w_mode) = (modes[(i + 1) % 4], modes[(i + 2) % 4]);
            let d = ImageSamplerDescriptor {
                address_mode_u: *u,
                address_mode_v: v,
                address_mode_w: w_mode,
                mag_filter: f,
                min_filter: filters[usize::from(f == ImageFilterMode::Nearest)],
                mipmap_filter: f,
                // Kept only where some address mode uses it (i = 1, 2, 3).
                border_color: (i != 0).then_some(ImageSamplerBorderColor::OpaqueWhite),
                ..Default::default()
            };
            let flags = sampler_to_flags(&d);
            let flags = w::ImageFlags::decode(Bytes::from(flags.encode().unwrap())).unwrap();
            assert_eq!(flags_to_sampler(flags), d);
        }
    }
    // No border color without ClampToBorder.
    let d = ImageSamplerDescriptor::nearest();
    assert_eq!(flags_to_sampler(sampler_to_flags(&d)), d);
}

#[test]
fn unknown_image_bytes_are_refused() {
    let msg = err_text(image_from_wire(
        b"GIF89a\x01\x00\x01\x00",
        w::ImageFlags::default(),
    ));
    assert!(
        msg.contains("unknown encoded format") && msg.contains("47 49 46 38 39 61"),
        "{msg}"
    );
    let msg = err_text(image_from_wire(b"", w::ImageFlags::default()));
    assert!(msg.contains("empty"), "{msg}");
    // WEBP is recognised; this build has no WEBP decoder, and the data is junk anyway.
    assert!(image_from_wire(b"RIFF\x10\0\0\0WEBPVP8 junk", w::ImageFlags::default()).is_err());
}

#[test]
fn broken_encoded_images_are_errors_not_panics() {
    let (png, flags) = image_to_wire(&rgba_image(4, 4, TextureFormat::Rgba8UnormSrgb)).unwrap();
    // Cut inside the signature, the header, and the pixel data (a PNG missing only its IEND
    // chunk still decodes, which is fine).
    for cut in [8, 20, 33, png.len() / 2] {
        let msg = err_text(image_from_wire(&png[..cut], flags));
        assert!(msg.starts_with("image: decoding PNG failed"), "{msg}");
    }
    for cut in 0..png.len() {
        let _ = image_from_wire(&png[..cut], flags);
    }
    let mut corrupt = png.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xFF;
    assert!(image_from_wire(&corrupt, flags).is_err());

    assert!(err_text(image_from_wire(&[0xFF, 0xD8, 0xFF, 0, 0], flags)).contains("JPEG"));
    assert!(err_text(image_from_wire(b"#?RADIANCE\nbroken", flags)).contains("HDR"));
    assert!(err_text(image_from_wire(&[0x76, 0x2F, 0x31, 0x01, 0, 0], flags)).contains("EXR"));
    let ktx2 = [
        0xAB, b'K', b'T', b'X', b' ', b'2', b'0', 0xBB, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0,
    ];
    assert!(err_text(image_from_wire(&ktx2, flags)).contains("KTX2"));
}

/// CRC-32 (PNG chunks).
fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn images_claiming_huge_sizes_are_refused_before_decoding() {
    let (mut png, flags) = image_to_wire(&rgba_image(1, 1, TextureFormat::Rgba8UnormSrgb)).unwrap();
    // IHDR data is bytes 16..29, its CRC 29..33.
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let msg = err_text(image_from_wire(&png, flags));
    assert!(
        msg.contains("100000x100000") && msg.contains("exceeds"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// materials
// ---------------------------------------------------------------------------------------------

fn full_material() -> StandardMaterial {
    StandardMaterial {
        base_color: Color::Srgba(Srgba::new(0.2, 0.4, 0.6, 0.8)),
        base_color_texture: Some(handle(1)),
        base_color_channel: UvChannel::Uv1,
        perceptual_roughness: 0.3,
        metallic: 0.7,
        metallic_roughness_texture: Some(handle(2)),
        metallic_roughness_channel: UvChannel::Uv0,
        normal_map_texture: Some(handle(1)), // same image again: one table entry
        normal_map_channel: UvChannel::Uv1,
        ior: 2.42,
        emissive: LinearRgba::rgb(3.0, 0.5, 100.0),
        emissive_exposure_weight: 0.25,
        emissive_texture: Some(handle(3)),
        emissive_channel: UvChannel::Uv1,
        double_sided: true,
        cull_mode: None,
        unlit: true,
        fog_enabled: false,
        alpha_mode: AlphaMode::Blend,
        ..Default::default()
    }
}

fn material_through_wire(m: &StandardMaterial) -> (w::PBRMaterialAsset, StandardMaterial) {
    let asset = material_to_wire(m, &mut slot_of);
    let decoded = w::PBRMaterialAsset::decode(Bytes::from(asset.encode().unwrap())).unwrap();
    assert_eq!(decoded, asset);
    let back = material_from_wire(&decoded, &mut image_of).unwrap();
    (decoded, back)
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn material_round_trip_within_quantization() {
    let m = full_material();
    let (asset, back) = material_through_wire(&m);

    let table: Vec<u64> = asset.table.0.iter().map(|e| e.id.id.get()).collect();
    assert_eq!(
        table,
        vec![1001, 1002, 1003],
        "filled in order of first use, deduplicated"
    );
    assert_eq!(asset.base.color_map.image_id(), 0);
    assert_eq!(asset.base.orm_map.image_id(), 1);
    assert_eq!(asset.base.normal_map.image_id(), 0);
    assert_eq!(asset.base.color_map.channel(), 1);

    let (a, b) = (m.base_color.to_srgba(), back.base_color.to_srgba());
    for (x, y) in [
        (a.red, b.red),
        (a.green, b.green),
        (a.blue, b.blue),
        (a.alpha, b.alpha),
    ] {
        assert!(close(x, y, 0.5 / 255.0 + 1e-6), "{x} vs {y}");
    }
    assert!(close(back.perceptual_roughness, 0.3, 0.5 / 65535.0 + 1e-7));
    assert!(close(back.metallic, 0.7, 0.5 / 65535.0 + 1e-7));
    assert!(close(back.ior, 2.42, 2.0 / 65535.0 + 1e-6), "{}", back.ior);
    assert_eq!(
        back.emissive, m.emissive,
        "linear emissive color is sent as f32"
    );
    assert!(close(
        back.emissive_exposure_weight,
        0.25,
        0.5 / 65535.0 + 1e-7
    ));
    assert_eq!(back.base_color_texture, m.base_color_texture);
    assert_eq!(back.base_color_channel, UvChannel::Uv1);
    assert_eq!(
        back.metallic_roughness_texture,
        m.metallic_roughness_texture
    );
    assert_eq!(back.metallic_roughness_channel, UvChannel::Uv0);
    assert_eq!(back.normal_map_texture, m.normal_map_texture);
    assert_eq!(back.normal_map_channel, UvChannel::Uv1);
    assert_eq!(back.emissive_texture, m.emissive_texture);
    assert_eq!(back.emissive_channel, UvChannel::Uv1);
    assert_eq!(back.cull_mode, None);
    assert!(back.double_sided && back.unlit && !back.fog_enabled);
    assert_eq!(back.alpha_mode, AlphaMode::Blend);
}

#[test]
fn plain_material_has_no_extension() {
    let m = StandardMaterial::default();
    let (asset, back) = material_through_wire(&m);
    assert_eq!(asset.extension, w::MaybePBRMaterialExtended::Void);
    assert!(asset.table.0.is_empty());
    assert_eq!(asset.base.flags.culling(), w::FaceCulling::Back);
    assert_eq!(back.cull_mode, Some(Face::Back));
    assert!(back.fog_enabled && !back.unlit && !back.double_sided);
    assert_eq!(
        back.base_color,
        Color::Srgba(Srgba::rgba_u8(255, 255, 255, 255))
    );
    assert!(back.base_color_texture.is_none() && back.emissive_texture.is_none());
    assert_eq!(back.emissive, LinearRgba::BLACK);
    assert!(close(back.ior, 1.5, 2.0 / 65535.0));

    // Emissive color alone, or an emissive texture alone, makes an extension.
    let glow = StandardMaterial {
        emissive: LinearRgba::rgb(0.0, 0.0, 0.5),
        ..Default::default()
    };
    let (asset, _) = material_through_wire(&glow);
    let w::MaybePBRMaterialExtended::ExtendedMaterial(ext) = asset.extension else {
        panic!("extension expected");
    };
    assert_eq!(
        (ext.flags.has_emission(), ext.flags.has_emission_map()),
        (1, 0)
    );
    let mapped = StandardMaterial {
        emissive_texture: Some(handle(9)),
        ..Default::default()
    };
    let (asset, back) = material_through_wire(&mapped);
    assert!(
        matches!(asset.extension, w::MaybePBRMaterialExtended::ExtendedMaterial(e) if e.flags.has_emission_map() == 1)
    );
    assert_eq!(back.emissive_texture, Some(handle(9)));
}

#[test]
fn alpha_and_cull_modes_map_to_the_nearest() {
    for (mode, wire, back) in [
        (AlphaMode::Opaque, w::AlphaMode::Opaque, AlphaMode::Opaque),
        (
            AlphaMode::Mask(0.3),
            w::AlphaMode::Mask,
            AlphaMode::Mask(0.5),
        ),
        (AlphaMode::Blend, w::AlphaMode::Blend, AlphaMode::Blend),
        (
            AlphaMode::Premultiplied,
            w::AlphaMode::Premultiplied,
            AlphaMode::Premultiplied,
        ),
        (
            AlphaMode::AlphaToCoverage,
            w::AlphaMode::Mask,
            AlphaMode::Mask(0.5),
        ),
        (
            AlphaMode::Add,
            w::AlphaMode::Premultiplied,
            AlphaMode::Premultiplied,
        ),
        (AlphaMode::Multiply, w::AlphaMode::Blend, AlphaMode::Blend),
    ] {
        let m = StandardMaterial {
            alpha_mode: mode,
            ..Default::default()
        };
        let (asset, got) = material_through_wire(&m);
        assert_eq!(asset.base.flags.alpha(), wire, "{mode:?}");
        assert_eq!(got.alpha_mode, back, "{mode:?}");
    }
    for (cull, wire) in [
        (Some(Face::Back), w::FaceCulling::Back),
        (Some(Face::Front), w::FaceCulling::Front),
        (None, w::FaceCulling::None),
    ] {
        let m = StandardMaterial {
            cull_mode: cull,
            ..Default::default()
        };
        let (asset, got) = material_through_wire(&m);
        assert_eq!(asset.base.flags.culling(), wire);
        assert_eq!(got.cull_mode, cull);
    }
}

#[test]
fn numeric_extremes_are_clamped() {
    let m = StandardMaterial {
        perceptual_roughness: 2.0,
        metallic: -1.0,
        ior: 7.0,
        emissive_exposure_weight: f32::NAN,
        emissive: LinearRgba::rgb(1.0, 1.0, 1.0),
        base_color: Color::srgba(1.5, -0.5, 0.5, 1.0),
        ..Default::default()
    };
    let (asset, back) = material_through_wire(&m);
    assert_eq!(asset.base.roughness.value.get(), 65535);
    assert_eq!(asset.base.metallic.value.get(), 0);
    assert_eq!(asset.base.ior.get(), 65535);
    assert_eq!((asset.base.base_color.r, asset.base.base_color.g), (255, 0));
    assert_eq!(back.ior, 5.0);
    assert_eq!(back.emissive_exposure_weight, 0.0);
}

#[test]
fn textures_without_an_image_id_are_left_out() {
    let m = full_material();
    let asset = material_to_wire(&m, &mut |h| if *h == handle(2) { None } else { slot_of(h) });
    assert_eq!(asset.base.flags.has_orm_texture(), 0);
    assert_eq!(asset.base.flags.has_color_texture(), 1);
    assert_eq!(asset.table.0.len(), 2);
}

#[test]
fn image_table_index_out_of_range_is_refused() {
    let (asset, _) = material_through_wire(&full_material());

    let mut bad = asset.clone();
    bad.base.normal_map.set_image_id(3);
    let msg = err_text(material_from_wire(&bad, &mut image_of));
    assert!(
        msg.contains("material: normal_map refers to image table entry 3")
            && msg.contains("3 entries"),
        "{msg}"
    );

    let mut bad = asset.clone();
    bad.table.0.clear();
    assert!(err_text(material_from_wire(&bad, &mut image_of)).contains("color_map"));

    let mut bad = asset.clone();
    if let w::MaybePBRMaterialExtended::ExtendedMaterial(ext) = &mut bad.extension {
        ext.emission.map.set_image_id(15);
    }
    assert!(err_text(material_from_wire(&bad, &mut image_of)).contains("emission.map"));

    let mut bad = asset.clone();
    bad.table.0 = vec![w::ImageAssetID::new(w::AssetID::new(1001)); 17];
    let msg = err_text(material_from_wire(&bad, &mut image_of));
    assert!(msg.contains("17 entries") && msg.contains("16"), "{msg}");

    // Through the codec: a table of 255 entries decodes, and is refused here.
    let mut long = asset.clone();
    long.table.0 = vec![w::ImageAssetID::default(); 255];
    let long = w::PBRMaterialAsset::decode(Bytes::from(long.encode().unwrap())).unwrap();
    assert!(material_from_wire(&long, &mut image_of).is_err());

    let mut bad = asset.clone();
    bad.base.orm_map.set_channel(2);
    assert!(
        err_text(material_from_wire(&bad, &mut image_of)).contains("orm_map uses UV channel 2")
    );

    let msg = err_text(material_from_wire(&asset, &mut |_| None));
    assert!(
        msg.contains("color_map refers to image asset 1001"),
        "{msg}"
    );

    let mut bad = asset;
    bad.base.flags = w::MatFlags::from_raw(bad.base.flags.raw() | (0x3 << 3));
    assert!(err_text(material_from_wire(&bad, &mut image_of)).contains("culling"));
}

/// Everything `ExtendedMaterial` can say, on a Bevy material.
fn extended_material() -> StandardMaterial {
    StandardMaterial {
        metallic_roughness_texture: Some(handle(2)),
        thickness: 0.75,
        attenuation_distance: 2.5,
        attenuation_color: Color::srgba_u8(200, 100, 50, 255),
        thickness_texture: Some(handle(4)),
        thickness_channel: UvChannel::Uv1,
        diffuse_transmission: 0.25,
        specular_transmission: 0.9,
        diffuse_transmission_texture: Some(handle(5)),
        specular_transmission_texture: Some(handle(6)),
        specular_transmission_channel: UvChannel::Uv1,
        clearcoat: 0.8,
        clearcoat_perceptual_roughness: 0.15,
        clearcoat_texture: Some(handle(7)),
        clearcoat_roughness_texture: Some(handle(8)),
        clearcoat_normal_texture: Some(handle(9)),
        clearcoat_channel: UvChannel::Uv1,
        clearcoat_roughness_channel: UvChannel::Uv1,
        clearcoat_normal_channel: UvChannel::Uv1,
        anisotropy_strength: 0.6,
        anisotropy_rotation: 1.0,
        anisotropy_texture: Some(handle(10)),
        depth_map: Some(handle(11)),
        parallax_depth_scale: 0.05,
        max_parallax_layer_count: 32.0,
        uv_transform: bevy::math::Affine2::from_scale_angle_translation(
            Vec2::new(2.0, 0.5),
            0.3,
            Vec2::new(0.25, -0.5),
        ),
        emissive: LinearRgba::rgb(40.0, 8.0, 0.0),
        ..Default::default()
    }
}

#[test]
fn extended_material_round_trips() {
    let m = extended_material();
    let (asset, back) = material_through_wire(&m);
    let w::MaybePBRMaterialExtended::ExtendedMaterial(ext) = asset.extension else {
        panic!("extension expected");
    };
    let f = ext.flags;
    for (name, flag) in [
        ("thickness", f.has_thickness()),
        ("thickness texture", f.has_thickness_texture()),
        ("transmission", f.has_transmission()),
        ("diffuse map", f.has_transmission_diffuse_texture()),
        ("specular map", f.has_transmission_specular_texture()),
        ("clearcoat", f.has_clearcoat()),
        ("parallax", f.has_parallax()),
        ("depth map", f.has_parallax_depth_map()),
        ("anisotropy", f.has_anisotropy()),
        ("anisotropy map", f.has_anisotropy_map()),
        ("emission", f.has_emission()),
        ("uv0", f.has_uv0_transform()),
        ("uv1", f.has_uv1_transform()),
    ] {
        assert_eq!(flag, 1, "{name} flag");
    }
    assert_eq!(asset.table.0.len(), 9);
    let q = 0.5 / 65535.0 + 1e-6;
    assert_eq!(back.thickness, 0.75);
    assert_eq!(back.attenuation_distance, 2.5);
    assert_eq!(
        back.attenuation_color.to_srgba().to_u8_array(),
        [200, 100, 50, 255]
    );
    assert_eq!(back.thickness_texture, Some(handle(4)));
    assert_eq!(back.thickness_channel, UvChannel::Uv1);
    assert!(close(back.diffuse_transmission, 0.25, q));
    assert!(close(back.specular_transmission, 0.9, q));
    assert_eq!(back.diffuse_transmission_texture, Some(handle(5)));
    assert_eq!(back.specular_transmission_texture, Some(handle(6)));
    assert_eq!(back.specular_transmission_channel, UvChannel::Uv1);
    assert!(close(back.clearcoat, 0.8, q));
    assert!(close(back.clearcoat_perceptual_roughness, 0.15, q));
    assert_eq!(back.clearcoat_texture, Some(handle(7)));
    assert_eq!(back.clearcoat_roughness_texture, Some(handle(8)));
    assert_eq!(back.clearcoat_normal_texture, Some(handle(9)));
    assert_eq!(back.clearcoat_normal_channel, UvChannel::Uv1);
    assert!(close(back.anisotropy_strength, 0.6, q));
    assert!(
        close(back.anisotropy_rotation, 1.0, std::f32::consts::TAU * q),
        "{}",
        back.anisotropy_rotation
    );
    assert_eq!(back.anisotropy_texture, Some(handle(10)));
    assert_eq!(back.depth_map, Some(handle(11)));
    assert_eq!(back.parallax_depth_scale, 0.05);
    assert!(
        (back.max_parallax_layer_count - 32.0).abs() <= 0.5 * 63.0 / 255.0 + 1e-4,
        "{}",
        back.max_parallax_layer_count
    );
    assert_eq!(
        back.uv_transform, m.uv_transform,
        "the UV transform is sent as f32"
    );
    assert_eq!(back.emissive, m.emissive, "emissive strength survives");
    // Occlusion comes from the ORM texture.
    assert_eq!(back.occlusion_texture, Some(handle(2)));
}

#[test]
fn bad_extended_materials_are_refused_naming_the_field() {
    let (good, _) = material_through_wire(&extended_material());
    let w::MaybePBRMaterialExtended::ExtendedMaterial(ext) = good.extension else {
        panic!("extension expected");
    };
    let with = |x: w::ExtendedMaterial| w::PBRMaterialAsset {
        extension: w::MaybePBRMaterialExtended::ExtendedMaterial(x),
        ..good.clone()
    };
    let mut nan = ext;
    nan.parallax.depth_scale = f32::NAN.into();
    let msg = err_text(material_from_wire(&with(nan), &mut image_of));
    assert!(msg.contains("parallax.depth_scale"), "{msg}");
    let mut inf = ext;
    inf.uv1_transform.translate_x = f32::INFINITY.into();
    let msg = err_text(material_from_wire(&with(inf), &mut image_of));
    assert!(msg.contains("uv1_transform"), "{msg}");
    let mut past = ext;
    past.clearcoat.pack = past.clearcoat.pack.with_roughness_map(12);
    let msg = err_text(material_from_wire(&with(past), &mut image_of));
    assert!(msg.contains("clearcoat.pack.roughness_map"), "{msg}");
    let mut past = ext;
    past.clearcoat.pack = past.clearcoat.pack.with_amount_map(20);
    let msg = err_text(material_from_wire(&with(past), &mut image_of));
    assert!(msg.contains("clearcoat.pack.amount_map"), "{msg}");
    let mut channel = ext;
    channel.anisotropy.texture = channel.anisotropy.texture.with_channel(3);
    let msg = err_text(material_from_wire(&with(channel), &mut image_of));
    assert!(
        msg.contains("anisotropy.texture uses UV channel 3"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// WEBP and KTX2
// ---------------------------------------------------------------------------------------------

/// A 4x2 RGBA gradient.
fn gradient() -> Vec<u8> {
    (0..8u8)
        .flat_map(|i| [i * 30, 255 - i * 30, i * 10, 200])
        .collect()
}

#[test]
fn lossless_webp_decodes_exactly() {
    let pixels = gradient();
    let mut webp = Vec::new();
    ::image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(&pixels, 4, 2, ::image::ExtendedColorType::Rgba8)
        .unwrap();
    let img = image_from_wire(&webp, w::ImageFlags::default()).unwrap();
    assert_eq!(img.texture_descriptor.size.width, 4);
    assert_eq!(img.texture_descriptor.format, TextureFormat::Rgba8UnormSrgb);
    assert_eq!(img.data.as_deref(), Some(&pixels[..]));
}

/// A KTX2 file of one `R8G8B8A8_UNORM` level (vkFormat 37), `width` x `height` in its header,
/// carrying `level` as the level's bytes (zstd-compressed when `zstd`).
fn ktx2(width: u32, height: u32, level: &[u8], zstd: bool) -> Vec<u8> {
    let stored = if zstd {
        ruzstd::encoding::compress_to_vec(level, ruzstd::encoding::CompressionLevel::Fastest)
    } else {
        level.to_vec()
    };
    let mut f = vec![
        0xAB, b'K', b'T', b'X', b' ', b'2', b'0', 0xBB, 0x0D, 0x0A, 0x1A, 0x0A,
    ];
    // vkFormat, typeSize, width, height, depth, layers, faces, levels, supercompression.
    for v in [37, 1, width, height, 0, 0, 1, 1, if zstd { 2 } else { 0 }] {
        f.extend_from_slice(&u32::to_le_bytes(v));
    }
    // The data format descriptor: its total size, then one basic block for RGBA8 UNORM
    // (4 samples of 8 bits).
    let mut dfd = Vec::new();
    let block_size = 24 + 16 * 4;
    dfd.extend_from_slice(&(4 + block_size as u32).to_le_bytes());
    dfd.extend_from_slice(&0u32.to_le_bytes()); // vendor 0, type 0
    dfd.extend_from_slice(&(2u32 | ((block_size as u32) << 16)).to_le_bytes()); // version 2
    dfd.extend_from_slice(&[1, 1, 1, 0]); // model RGBSDA, primaries BT709, linear, flags
    dfd.extend_from_slice(&[0, 0, 0, 0]); // block dimensions 1x1x1x1 (minus one)
    dfd.extend_from_slice(&[4, 0, 0, 0, 0, 0, 0, 0]); // 4 bytes per plane 0
    for (i, channel) in [0u8, 1, 2, 15].into_iter().enumerate() {
        let offset = (i * 8) as u16;
        dfd.extend_from_slice(&offset.to_le_bytes());
        dfd.push(7); // bit length - 1
        dfd.push(channel);
        dfd.extend_from_slice(&[0; 4]); // sample position
        dfd.extend_from_slice(&0u32.to_le_bytes()); // lower
        dfd.extend_from_slice(&255u32.to_le_bytes()); // upper
    }
    let dfd_offset = 80 + 24;
    let data_offset = (dfd_offset + dfd.len()).next_multiple_of(16);
    // Index: dfd offset/length, kvd offset/length, sgd offset/length.
    for v in [dfd_offset as u32, dfd.len() as u32, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&[0; 16]);
    // Level 0: offset, stored length, uncompressed length.
    for v in [data_offset as u64, stored.len() as u64, level.len() as u64] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&dfd);
    f.resize(data_offset, 0);
    f.extend_from_slice(&stored);
    f
}

#[test]
fn ktx2_plain_and_zstd_supercompressed_decode() {
    let pixels = gradient();
    let flags = w::ImageFlags::default().with_semantic(w::ImageSemantic::Linear);
    for zstd in [false, true] {
        let img = image_from_wire(&ktx2(4, 2, &pixels, zstd), flags)
            .unwrap_or_else(|e| panic!("zstd {zstd}: {e}"));
        assert_eq!(
            (
                img.texture_descriptor.size.width,
                img.texture_descriptor.size.height
            ),
            (4, 2)
        );
        assert_eq!(img.texture_descriptor.format, TextureFormat::Rgba8Unorm);
        assert_eq!(img.data.as_deref(), Some(&pixels[..]), "zstd {zstd}");
    }
}

#[test]
fn a_ktx2_that_lies_about_its_size_is_refused() {
    // The header says 64x64 (16 KiB of pixels); the level holds 32 bytes.
    let pixels = gradient();
    for zstd in [false, true] {
        let msg = err_text(image_from_wire(
            &ktx2(64, 64, &pixels, zstd),
            w::ImageFlags::default(),
        ));
        assert!(msg.contains("KTX2"), "{msg}");
        assert!(msg.contains("16384") || msg.contains("64x64"), "{msg}");
    }
    // A zstd bomb: 4x2 in the header, a level that inflates to 1 MiB (refused before Bevy's
    // decoder allocates it).
    let bomb = ktx2(4, 2, &vec![0u8; 1 << 20], true);
    assert!(bomb.len() < 4096, "{}", bomb.len());
    let msg = err_text(image_from_wire(&bomb, w::ImageFlags::default()));
    assert!(msg.contains("decompress to more than"), "{msg}");
    // Basis Universal supercompression (scheme 1) is not decoded by this build: refused, named.
    let mut basis = ktx2(4, 2, &pixels, false);
    basis[44] = 1;
    let msg = err_text(image_from_wire(&basis, w::ImageFlags::default()));
    assert!(msg.contains("KTX2") && msg.contains("BasisLZ"), "{msg}");
    // A KTX2 whose level runs past the end of the file.
    let mut cut = ktx2(4, 2, &pixels, false);
    cut.truncate(cut.len() - 8);
    assert!(err_text(image_from_wire(&cut, w::ImageFlags::default())).contains("KTX2"));
}
