//! Fuzz the skin checks (`noodles2::assets::inverse_bind_matrices` and `joint_past`): the input
//! is a `SkinComponent` body (its length in the first two bytes, little-endian) followed by the
//! content of its buffer; the buffer's bytes also serve as a mesh's joint indices and weights.
//! Nothing may panic; accepted matrices are exactly one per joint, read from a view of exactly
//! 64 bytes per joint inside the buffer; a joint index reported past the list is past it, and
//! none is missed.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::assets::{MATRIX_BYTES, inverse_bind_matrices, joint_past};
use noodles2::codec::{SkinComponent, Wire};

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (body, buffer) = rest.split_at(len);
    let Ok(skin) = SkinComponent::decode(Bytes::copy_from_slice(body)) else {
        return;
    };
    let joints = skin.joints.len();
    if let Ok(m) = inverse_bind_matrices(joints, &skin.inverse_bind_matrices, buffer) {
        assert_eq!(m.len(), joints);
        let v = &skin.inverse_bind_matrices;
        assert_eq!(v.length.get(), MATRIX_BYTES * joints as u64);
        assert!(v.offset.get() + v.length.get() <= buffer.len() as u64);
    }
    // The buffer as per-vertex influences: 8 bytes of indices, then 16 of weights.
    let (indices, weights): (Vec<[u16; 4]>, Vec<[f32; 4]>) = buffer
        .chunks_exact(24)
        .map(|c| {
            let i = std::array::from_fn(|k| u16::from_le_bytes([c[2 * k], c[2 * k + 1]]));
            let w = std::array::from_fn(|k| {
                let b = &c[8 + 4 * k..12 + 4 * k];
                f32::from_le_bytes([b[0], b[1], b[2], b[3]])
            });
            (i, w)
        })
        .unzip();
    let found = joint_past(&indices, Some(&weights), joints);
    let first = indices.iter().zip(&weights).enumerate().find_map(|(v, (i, w))| {
        i.iter()
            .zip(w)
            .find(|(i, w)| usize::from(**i) >= joints && **w > 0.0)
            .map(|(i, _)| (v, *i))
    });
    assert_eq!(found, first);
});
