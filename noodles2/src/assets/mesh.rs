//! `MeshAsset` from the wire (`spec/core/assets/mesh.jaw`).

use super::{AssetError, unknown, view_bytes};
use crate::codec as w;
use crate::codec::WireEnum;

/// A mesh read from the wire and checked: one value per vertex in every stream, every index
/// below the vertex count, a triangle list. What an engine needs to build its own mesh.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedMesh {
    /// Vertex positions.
    pub positions: Vec<[f32; 3]>,
    /// Vertex normals, when flagged.
    pub normals: Option<Vec<[f32; 3]>>,
    /// Vertex tangents (xyz, handedness in w), when flagged.
    pub tangents: Option<Vec<[f32; 4]>>,
    /// First texture coordinates (`normalized_ushort2` becomes `v / 65535`), when flagged.
    pub uv0: Option<Vec<[f32; 2]>>,
    /// Second texture coordinates, when flagged.
    pub uv1: Option<Vec<[f32; 2]>>,
    /// Four joint indices and weights per vertex, when skinned (see [`decode_mesh`]).
    pub skin: Option<Influences>,
    /// The triangle list's indices (`None`: every three vertices are a triangle).
    pub indices: Option<MeshIndices>,
    /// Morph targets in list order: per-vertex deltas added with the entity's morph weights.
    pub morph_targets: Vec<DecodedMorphTarget>,
}

/// One morph target: per-vertex deltas of the streams it has (each with one value per vertex).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedMorphTarget {
    /// Position deltas.
    pub positions: Option<Vec<[f32; 3]>>,
    /// Normal deltas.
    pub normals: Option<Vec<[f32; 3]>>,
    /// Tangent deltas (xyz; the wire's w is ignored).
    pub tangents: Option<Vec<[f32; 3]>>,
}

impl DecodedMesh {
    /// The number of vertices.
    pub fn vertex_count(&self) -> usize {
        self.positions.len()
    }
}

/// A triangle list's indices (`U8` on the wire is widened to `U16`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshIndices {
    /// 16-bit indices.
    U16(Vec<u16>),
    /// 32-bit indices.
    U32(Vec<u32>),
}

impl MeshIndices {
    /// The number of indices.
    pub fn len(&self) -> usize {
        match self {
            MeshIndices::U16(v) => v.len(),
            MeshIndices::U32(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A validated attribute stream inside a mesh view: `bytes` starts at the first element and
/// ends right after the last one, so `bytes.chunks(stride)` yields one chunk per vertex, each
/// at least one element long.
struct Stream<'a> {
    bytes: &'a [u8],
    stride: usize,
}

impl Stream<'_> {
    fn elements(&self) -> impl Iterator<Item = &[u8]> {
        // `stride >= size >= 1` is checked in `stream`.
        self.bytes.chunks(self.stride.max(1))
    }
}

/// Validates one attribute stream of `count` elements of `size` bytes and returns its bytes.
fn stream<'a>(
    view: &'a [u8],
    attribute: &str,
    common: &w::UncompressedAttribCommon,
    size: u64,
    count: u32,
) -> Result<Stream<'a>, AssetError> {
    let offset = common.view_byte_offset.get();
    let stride = common.vertex_stride.get();
    if u64::from(stride) < size {
        return Err(AssetError::StrideTooSmall {
            attribute: attribute.to_owned(),
            stride,
            size,
        });
    }
    if count == 0 {
        return Ok(Stream {
            bytes: &[],
            stride: 1,
        });
    }
    let overflow = || AssetError::Overflow {
        asset: "mesh",
        what: format!("attribute {attribute} extent"),
    };
    let end = u64::from(stride)
        .checked_mul(u64::from(count) - 1)
        .and_then(|x| x.checked_add(u64::from(offset)))
        .and_then(|x| x.checked_add(size))
        .ok_or_else(overflow)?;
    let view_len = view.len() as u64;
    let past = AssetError::AttributePastView {
        attribute: attribute.to_owned(),
        offset,
        stride,
        count,
        size,
        end,
        view_len,
    };
    if end > view_len {
        return Err(past);
    }
    let (Ok(start), Ok(end)) = (usize::try_from(offset), usize::try_from(end)) else {
        return Err(past);
    };
    let bytes = view.get(start..end).ok_or(past)?;
    Ok(Stream {
        bytes,
        stride: usize::from(stride),
    })
}

/// A float stream of `count` elements of `size` bytes, read as `N` floats each, from an attribute
/// whose format is `known` (else an unknown value naming `{name}.format`).
fn floats<const N: usize>(
    view: &[u8],
    name: &str,
    (known, format): (bool, u8),
    common: &w::UncompressedAttribCommon,
    size: u64,
    count: u32,
) -> Result<Vec<[f32; N]>, AssetError> {
    if !known {
        return Err(unknown("mesh", format!("{name}.format"), format));
    }
    Ok(read_floats::<N>(&stream(view, name, common, size, count)?))
}

/// A `float3` position stream.
fn position(
    view: &[u8],
    name: &str,
    a: &w::PositionAttribute,
    n: u32,
) -> Result<Vec<[f32; 3]>, AssetError> {
    let known = w::PositionFormat::from_repr(a.format).is_some();
    floats::<3>(view, name, (known, a.format), &a.common, 12, n)
}

/// A `float3` normal stream.
fn normal(
    view: &[u8],
    name: &str,
    a: &w::NormalAttribute,
    n: u32,
) -> Result<Vec<[f32; 3]>, AssetError> {
    let known = w::NormalFormat::from_repr(a.format).is_some();
    floats::<3>(view, name, (known, a.format), &a.common, 12, n)
}

/// A `float4` tangent stream, read as its first `N` floats.
fn tangent<const N: usize>(
    view: &[u8],
    name: &str,
    a: &w::TangentAttribute,
    n: u32,
) -> Result<Vec<[f32; N]>, AssetError> {
    let known = w::TangentFormat::from_repr(a.format).is_some();
    floats::<N>(view, name, (known, a.format), &a.common, 16, n)
}

fn read_floats<const N: usize>(s: &Stream<'_>) -> Vec<[f32; N]> {
    // Tightly packed (the usual layout) on a little-endian machine: the wire bytes are the
    // floats' own bytes, copied whole.
    if cfg!(target_endian = "little") && s.stride == 4 * N {
        let mut out = vec![[0.0f32; N]; s.bytes.len() / (4 * N)];
        let bytes = zerocopy::IntoBytes::as_mut_bytes(out.as_mut_slice());
        bytes.copy_from_slice(&s.bytes[..bytes.len()]);
        return out;
    }
    s.elements()
        .map(|e| {
            let mut out = [0.0f32; N];
            for (o, b) in out.iter_mut().zip(e.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            out
        })
        .collect()
}

/// Reads a UV stream (`float2` or `normalized_ushort2`) as floats.
fn read_uv(
    view: &[u8],
    name: &str,
    attr: &w::UVAttribute,
    count: u32,
) -> Result<Vec<[f32; 2]>, AssetError> {
    let format = w::UVFormat::from_repr(attr.format)
        .ok_or_else(|| unknown("mesh", format!("{name}.format"), attr.format))?;
    Ok(match format {
        w::UVFormat::Float2 => read_floats::<2>(&stream(view, name, &attr.common, 8, count)?),
        w::UVFormat::NormalizedUshort2 => stream(view, name, &attr.common, 4, count)?
            .elements()
            .map(|e| {
                let mut out = [0.0f32; 2];
                for (o, b) in out.iter_mut().zip(e.chunks_exact(2)) {
                    *o = f32::from(u16::from_le_bytes([b[0], b[1]])) / 65535.0;
                }
                out
            })
            .collect(),
    })
}

/// Reads a joint-index stream (`ubyte4` widened, or `ushort4`) as `u16`s.
fn read_joints(
    view: &[u8],
    name: &str,
    attr: &w::JointAttribute,
    count: u32,
) -> Result<Vec<[u16; 4]>, AssetError> {
    Ok(match w::JointFormat::from_repr(attr.format) {
        Some(w::JointFormat::Ubyte4) => stream(view, name, &attr.common, 4, count)?
            .elements()
            .map(|e| [e[0], e[1], e[2], e[3]].map(u16::from))
            .collect(),
        Some(w::JointFormat::Ushort4) => stream(view, name, &attr.common, 8, count)?
            .elements()
            .map(|e| {
                let mut out = [0u16; 4];
                for (o, b) in out.iter_mut().zip(e.chunks_exact(2)) {
                    *o = u16::from_le_bytes([b[0], b[1]]);
                }
                out
            })
            .collect(),
        None => return Err(unknown("mesh", format!("{name}.format"), attr.format)),
    })
}

/// Reads a weight stream (`normalized_ubyte4` as `v / 255`, `normalized_ushort4` as
/// `v / 65535`, or `float4`) as floats. Float weights must be finite and not
/// negative.
fn read_weights(
    view: &[u8],
    name: &str,
    attr: &w::WeightAttribute,
    count: u32,
) -> Result<Vec<[f32; 4]>, AssetError> {
    let weights: Vec<[f32; 4]> = match w::WeightFormat::from_repr(attr.format) {
        Some(w::WeightFormat::NormalizedUbyte4) => stream(view, name, &attr.common, 4, count)?
            .elements()
            .map(|e| [e[0], e[1], e[2], e[3]].map(|x| f32::from(x) / 255.0))
            .collect(),
        Some(w::WeightFormat::NormalizedUshort4) => stream(view, name, &attr.common, 8, count)?
            .elements()
            .map(|e| {
                let mut out = [0.0f32; 4];
                for (o, b) in out.iter_mut().zip(e.chunks_exact(2)) {
                    *o = f32::from(u16::from_le_bytes([b[0], b[1]])) / 65535.0;
                }
                out
            })
            .collect(),
        Some(w::WeightFormat::Float4) => {
            read_floats::<4>(&stream(view, name, &attr.common, 16, count)?)
        }
        None => return Err(unknown("mesh", format!("{name}.format"), attr.format)),
    };
    for (vertex, v) in weights.iter().enumerate() {
        if let Some(&value) = v.iter().find(|x| !x.is_finite() || **x < 0.0) {
            return Err(AssetError::BadWeight {
                attribute: name.to_owned(),
                vertex,
                value,
            });
        }
    }
    Ok(weights)
}

/// Weight sums further than this from 1 are renormalized (`mesh.jaw`: implementations SHOULD
/// renormalize weights that do not sum to 1). Float weights that were normalized by the sender
/// stay bit-exact; quantized ones (off by up to 2/255) are renormalized.
pub const WEIGHT_SUM_TOLERANCE: f32 = 1e-4;

/// Per-vertex joint indices and weights (four influences per vertex).
pub type Influences = (Vec<[u16; 4]>, Vec<[f32; 4]>);

/// Joint indices and weights of up to eight influences per vertex (`joint_0`/`weight_0` and
/// `joint_1`/`weight_1`) as four: the four largest weights (the first ones on ties),
/// renormalized when their sum is off 1 by more than [`WEIGHT_SUM_TOLERANCE`] (a vertex whose
/// weights are all zero keeps them).
fn skin_influences(sets: Vec<Influences>, vertex_count: usize) -> Influences {
    let mut joints = Vec::with_capacity(vertex_count);
    let mut weights = Vec::with_capacity(vertex_count);
    for v in 0..vertex_count {
        let (mut j, mut w) = ([0u16; 4], [0.0f32; 4]);
        if sets.len() == 1 {
            j = sets[0].0[v];
            w = sets[0].1[v];
        } else {
            let mut all: Vec<(u16, f32)> = sets
                .iter()
                .flat_map(|(js, ws)| js[v].into_iter().zip(ws[v]))
                .collect();
            // Stable: equal weights keep their order.
            all.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (k, (joint, weight)) in all.into_iter().take(4).enumerate() {
                j[k] = joint;
                w[k] = weight;
            }
        }
        let sum: f32 = w.iter().sum();
        if sum > 0.0 && (sum - 1.0).abs() > WEIGHT_SUM_TOLERANCE {
            for x in &mut w {
                *x /= sum;
            }
        }
        joints.push(j);
        weights.push(w);
    }
    (joints, weights)
}

/// Reads a NOODLES2 [`w::MeshAsset`] from the whole content of the Buffer asset its `view`
/// refers to.
///
/// Validates, before reading anything: the view lies inside `buffer` (overflow-safe); the
/// primitive type is known; every flagged attribute has a known format, a stride of at least its
/// element size and its last element inside the view; the index block fits in the view, its
/// count is a multiple of three and every index is below `vertex_count` (without indices,
/// `vertex_count` must be a multiple of three).
///
/// Joint and weight streams become four influences per vertex (`ubyte4` joints widened,
/// normalized weights divided by 255 / 65535); with both `_0` and `_1` sets the four largest
/// weights are kept; weights are renormalized when their sum is off 1 by more than
/// [`WEIGHT_SUM_TOLERANCE`]; a joint stream without its weight stream (or the reverse) and
/// negative or non-finite weights are refused. Morph targets are decoded in list order (see
/// [`DecodedMorphTarget`]); `bb_min`/`bb_max` are not used.
///
/// Memory: positions take at least 12 bytes of the buffer per vertex, and every stream together
/// at most 128 bytes per vertex while decoding; an index grows at most from 1 byte to 2. So
/// the mesh takes at most about 11 times the buffer's size, plus its morph targets at most
/// [`MORPH_MEMORY_FACTOR`] times (about 19 in all).
pub fn decode_mesh(asset: &w::MeshAsset, buffer: &[u8]) -> Result<DecodedMesh, AssetError> {
    let view = view_bytes("mesh", &asset.view, buffer)?;
    let flags = asset.flags;
    let primitive = ((flags.raw() >> 11) & 0x7) as u8;
    if w::PrimitiveType::from_repr(primitive).is_none() {
        return Err(unknown("mesh", "flags.primitive_type", primitive));
    }
    let n = asset.vertex_count;

    let positions = position(view, "position", &asset.position, n)?;
    let normals = (flags.has_normal() != 0)
        .then(|| normal(view, "normal", &asset.normal, n))
        .transpose()?;
    let tangents = (flags.has_tangent() != 0)
        .then(|| tangent::<4>(view, "tangent", &asset.tangent, n))
        .transpose()?;
    let uv0 = if flags.has_uv_0() != 0 {
        Some(read_uv(view, "uv_0", &asset.uv_0, n)?)
    } else {
        None
    };
    let uv1 = if flags.has_uv_1() != 0 {
        Some(read_uv(view, "uv_1", &asset.uv_1, n)?)
    } else {
        None
    };

    // Skinning: each joint stream comes with its weight stream.
    let mut skin_sets = Vec::new();
    for (set, has_joint, has_weight, joint, weight) in [
        (
            0,
            flags.has_joint_0(),
            flags.has_weight_0(),
            &asset.joint_0,
            &asset.weight_0,
        ),
        (
            1,
            flags.has_joint_1(),
            flags.has_weight_1(),
            &asset.joint_1,
            &asset.weight_1,
        ),
    ] {
        match (has_joint != 0, has_weight != 0) {
            (false, false) => {}
            (true, true) => skin_sets.push((
                read_joints(view, &format!("joint_{set}"), joint, n)?,
                read_weights(view, &format!("weight_{set}"), weight, n)?,
            )),
            (true, false) => {
                return Err(AssetError::UnpairedSkinStream {
                    present: format!("joint_{set}"),
                    missing: format!("weight_{set}"),
                });
            }
            (false, true) => {
                return Err(AssetError::UnpairedSkinStream {
                    present: format!("weight_{set}"),
                    missing: format!("joint_{set}"),
                });
            }
        }
    }
    let morph_targets = morph_targets(asset, view, n)?;

    let indices = match flags.format() {
        w::IndexFormat::None => {
            if !n.is_multiple_of(3) {
                return Err(AssetError::NotTriangles {
                    what: "vertex count (no indices)",
                    count: u64::from(n),
                });
            }
            None
        }
        format => Some(read_indices(view, format, &asset.index, n)?),
    };

    let skin = if skin_sets.is_empty() {
        None
    } else {
        Some(skin_influences(skin_sets, n as usize))
    };
    Ok(DecodedMesh {
        positions,
        normals,
        tangents,
        uv0,
        uv1,
        skin,
        indices,
        morph_targets,
    })
}

/// Decoded morph targets may take at most this many times the bytes of the mesh's view. A real
/// target stream takes 12 or 16 bytes of the view per vertex and 12 decoded; only streams that
/// alias the same bytes many times exceed it.
pub const MORPH_MEMORY_FACTOR: u64 = 8;

/// Reads the morph targets of `asset`: every flagged stream has a known format and lies inside
/// the view, and all of them together decode to at most [`MORPH_MEMORY_FACTOR`] times the view.
fn morph_targets(
    asset: &w::MeshAsset,
    view: &[u8],
    n: u32,
) -> Result<Vec<DecodedMorphTarget>, AssetError> {
    let targets = &asset.morph_targets.0;
    if asset.flags.has_morph_targets() == 0 {
        if !targets.is_empty() {
            return Err(AssetError::UnexpectedMorphTargets(targets.len()));
        }
        return Ok(Vec::new());
    }
    let streams: u64 = targets
        .iter()
        .map(|t| {
            u64::from(t.flags.has_position() != 0)
                + u64::from(t.flags.has_normal() != 0)
                + u64::from(t.flags.has_tangent() != 0)
        })
        .sum();
    let decoded = streams.saturating_mul(12).saturating_mul(u64::from(n));
    let limit = MORPH_MEMORY_FACTOR.saturating_mul(view.len() as u64);
    if decoded > limit {
        return Err(AssetError::TooLarge {
            asset: "mesh",
            what: "decoded size of the morph targets (bytes)",
            value: decoded,
            limit,
        });
    }
    let mut out = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let name = |part: &str| format!("morph_targets[{i}].{part}");
        let f = target.flags;
        let decoded = DecodedMorphTarget {
            positions: (f.has_position() != 0)
                .then(|| position(view, &name("position"), &target.position, n))
                .transpose()?,
            normals: (f.has_normal() != 0)
                .then(|| normal(view, &name("normal"), &target.normal, n))
                .transpose()?,
            // Tangent deltas are float4 on the wire; their w is ignored (`mesh.jaw`).
            tangents: (f.has_tangent() != 0)
                .then(|| tangent::<3>(view, &name("tangent"), &target.tangent, n))
                .transpose()?,
        };
        out.push(decoded);
    }
    Ok(out)
}

/// Reads and checks the index block (format is not `None`).
fn read_indices(
    view: &[u8],
    format: w::IndexFormat,
    index: &w::UncompressedIndex,
    vertex_count: u32,
) -> Result<MeshIndices, AssetError> {
    let size: u64 = match format {
        w::IndexFormat::U8 => 1,
        w::IndexFormat::U16 => 2,
        _ => 4,
    };
    let offset = index.view_byte_offset.get();
    let count = index.index_count.get();
    let end = u64::from(count)
        .checked_mul(size)
        .and_then(|x| x.checked_add(u64::from(offset)))
        .ok_or_else(|| AssetError::Overflow {
            asset: "mesh",
            what: "index block extent".to_owned(),
        })?;
    let view_len = view.len() as u64;
    let past = AssetError::IndicesPastView {
        offset,
        count,
        size,
        end,
        view_len,
    };
    if end > view_len {
        return Err(past);
    }
    if !count.is_multiple_of(3) {
        return Err(AssetError::NotTriangles {
            what: "index count",
            count: u64::from(count),
        });
    }
    let (Ok(start), Ok(end)) = (usize::try_from(offset), usize::try_from(end)) else {
        return Err(past);
    };
    let bytes = view.get(start..end).ok_or(past)?;
    let check = |position: usize, i: u32| {
        if i < vertex_count {
            Ok(i)
        } else {
            Err(AssetError::IndexOutOfRange {
                position,
                index: u64::from(i),
                vertex_count: u64::from(vertex_count),
            })
        }
    };
    Ok(match format {
        w::IndexFormat::U8 => MeshIndices::U16(
            bytes
                .iter()
                .enumerate()
                .map(|(p, &b)| check(p, u32::from(b)).map(|i| i as u16))
                .collect::<Result<_, _>>()?,
        ),
        w::IndexFormat::U16 => MeshIndices::U16(
            bytes
                .chunks_exact(2)
                .enumerate()
                .map(|(p, b)| {
                    check(p, u32::from(u16::from_le_bytes([b[0], b[1]]))).map(|i| i as u16)
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => MeshIndices::U32(
            bytes
                .chunks_exact(4)
                .enumerate()
                .map(|(p, b)| check(p, u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(stride: usize, count: usize) -> (Vec<u8>, Vec<[f32; 3]>) {
        let expected: Vec<[f32; 3]> = (0..count)
            .map(|i| [i as f32, -(i as f32) * 0.5, 1e-3 * i as f32])
            .collect();
        let mut bytes = Vec::new();
        for v in &expected {
            for f in v {
                bytes.extend_from_slice(&f.to_le_bytes());
            }
            bytes.resize(bytes.len() + stride - 12, 0xAB);
        }
        // The last element ends at its own size, not at the stride.
        bytes.truncate(bytes.len() - (stride - 12));
        (bytes, expected)
    }

    #[test]
    fn packed_and_strided_floats_read_the_same() {
        for stride in [12, 16, 20] {
            let (bytes, expected) = floats(stride, 1000);
            let got = read_floats::<3>(&Stream {
                bytes: &bytes,
                stride,
            });
            assert_eq!(got, expected, "stride {stride}");
        }
        let empty = read_floats::<3>(&Stream {
            bytes: &[],
            stride: 12,
        });
        assert!(empty.is_empty());
    }
}
