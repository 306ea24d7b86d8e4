//! Fuzz the mesh converter (`noodles2::assets::decode_mesh`): the input is a `MeshAsset` body
//! (its length in the first two bytes, little-endian) followed by the content of its buffer.
//! Whatever the input, decoding must not panic; a decoded mesh must hold one value per vertex in
//! every stream (morph targets included) and only indices below its vertex count, and take at
//! most 19 times the buffer's size (the bound `decode_mesh` documents).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::assets::{MeshIndices, decode_mesh};
use noodles2::codec::{MeshAsset, Wire};

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (body, buffer) = rest.split_at(len);
    let Ok(asset) = MeshAsset::decode(Bytes::copy_from_slice(body)) else {
        return;
    };
    let Ok(mesh) = decode_mesh(&asset, buffer) else {
        return;
    };
    let n = mesh.vertex_count();
    assert_eq!(n, asset.vertex_count as usize);
    let streams = [
        mesh.normals.as_ref().map(Vec::len),
        mesh.tangents.as_ref().map(Vec::len),
        mesh.uv0.as_ref().map(Vec::len),
        mesh.uv1.as_ref().map(Vec::len),
        mesh.skin.as_ref().map(|(j, _)| j.len()),
        mesh.skin.as_ref().map(|(_, w)| w.len()),
    ];
    let morphs = mesh
        .morph_targets
        .iter()
        .flat_map(|t| [&t.positions, &t.normals, &t.tangents].map(|s| s.as_ref().map(Vec::len)));
    for len in streams.into_iter().chain(morphs).flatten() {
        assert_eq!(len, n, "a stream without one value per vertex");
    }
    if let Some((_, weights)) = &mesh.skin {
        assert!(weights.iter().flatten().all(|w| w.is_finite() && *w >= 0.0));
    }
    let in_range = match &mesh.indices {
        Some(MeshIndices::U16(v)) => v.iter().all(|&i| usize::from(i) < n),
        Some(MeshIndices::U32(v)) => v.iter().all(|&i| (i as usize) < n),
        None => n % 3 == 0,
    };
    assert!(in_range, "an index past the vertices");
    let morph_streams: usize = mesh
        .morph_targets
        .iter()
        .map(|t| {
            [&t.positions, &t.normals, &t.tangents]
                .iter()
                .filter(|s| s.is_some())
                .count()
        })
        .sum();
    let bytes =
        80 * n + 4 * mesh.indices.as_ref().map_or(0, MeshIndices::len) + 12 * n * morph_streams;
    assert!(
        bytes <= 19 * buffer.len(),
        "{bytes} bytes decoded from {}",
        buffer.len()
    );
});
