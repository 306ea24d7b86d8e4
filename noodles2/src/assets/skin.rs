//! Skins (`SkinComponent`, `spec/core/components/skin.jaw`) checked without an engine: the
//! inverse bind matrices read from their view, and a mesh's joint indices checked against the
//! joint list.

use super::{AssetError, Influences, view_bytes};
use crate::codec as w;

/// Bytes of one inverse bind matrix on the wire (a column-major 4×4 matrix of `f32`).
pub const MATRIX_BYTES: u64 = 64;

/// The inverse bind matrices of a skin with `joints` joints, read from `view` in `buffer` (the
/// whole content of its Buffer asset), each as 16 column-major `f32`s. The view must be exactly
/// `64 × joints` bytes ("view length MUST be 64 * joint_count") and inside the buffer.
pub fn inverse_bind_matrices(
    joints: usize,
    view: &w::BufferView,
    buffer: &[u8],
) -> Result<Vec<[f32; 16]>, AssetError> {
    let expected = u128::from(MATRIX_BYTES) * joints as u128;
    let length = view.length.get();
    if u128::from(length) != expected {
        return Err(AssetError::SkinViewLength {
            length,
            joints,
            expected,
        });
    }
    let bytes = view_bytes("skin", view, buffer)?;
    Ok(bytes
        .chunks_exact(MATRIX_BYTES as usize)
        .map(|m| {
            let mut out = [0.0f32; 16];
            for (o, b) in out.iter_mut().zip(m.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            out
        })
        .collect())
}

/// The first vertex whose joint index (with a weight above zero) is not below `joints`, as
/// (vertex, index): a mesh skinned by a skin with fewer joints than it uses. Without weights every
/// index counts.
pub fn joint_past(
    indices: &[[u16; 4]],
    weights: Option<&[[f32; 4]]>,
    joints: usize,
) -> Option<(usize, u16)> {
    indices.iter().enumerate().find_map(|(v, j)| {
        let w = weights.and_then(|w| w.get(v)).copied().unwrap_or([1.0; 4]);
        j.iter()
            .zip(w)
            .find(|(j, w)| usize::from(**j) >= joints && *w > 0.0)
            .map(|(j, _)| (v, *j))
    })
}

/// [`joint_past`] for a decoded mesh's influences.
pub fn influences_past(influences: &Influences, joints: usize) -> Option<(usize, u16)> {
    joint_past(&influences.0, Some(&influences.1), joints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: u64, length: u64) -> w::BufferView {
        w::BufferView::new(offset, length, w::BufferAssetID::new(w::AssetID::new(1)))
    }

    #[test]
    fn matrices_are_read_column_major_and_lengths_checked() {
        let mut buffer = vec![0u8; 8];
        for i in 0..32 {
            buffer.extend((i as f32).to_le_bytes());
        }
        let m = inverse_bind_matrices(2, &view(8, 128), &buffer).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1][0], 16.0);
        assert_eq!(m[1][15], 31.0);
        let e = inverse_bind_matrices(3, &view(8, 128), &buffer).unwrap_err();
        assert_eq!(
            e.to_string(),
            "skin: inverse_bind_matrices view is 128 bytes, but 3 joints need exactly 192 (64 per joint)"
        );
        let e = inverse_bind_matrices(2, &view(64, 128), &buffer).unwrap_err();
        assert!(matches!(e, AssetError::ViewOutOfBuffer { .. }), "{e}");
        let e = inverse_bind_matrices(usize::MAX, &view(0, u64::MAX), &buffer).unwrap_err();
        assert!(matches!(e, AssetError::SkinViewLength { .. }), "{e}");
    }

    #[test]
    fn joint_indices_past_the_list_are_found_unless_unweighted() {
        let idx = [[0, 1, 0, 0], [0, 5, 0, 0]];
        assert_eq!(joint_past(&idx, None, 2), Some((1, 5)));
        assert_eq!(joint_past(&idx, None, 6), None);
        let w = [[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]];
        assert_eq!(joint_past(&idx, Some(&w), 2), None);
    }
}
