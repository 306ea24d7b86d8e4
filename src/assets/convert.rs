//! Pure conversions between Bevy assets (`Mesh`, `Image`, `StandardMaterial`, sampler
//! descriptors) and the NOODLES2 Core asset bodies (`MeshAsset`, encoded image + `ImageFlags`,
//! `PBRMaterialAsset`).
//!
//! Nothing here touches the ECS or the network: the mirror systems call these functions and own
//! asset ids, buffers and handles. Every `*_from_wire` function treats its input as hostile: it
//! validates every offset, length, index and enum value before use and reports problems as an
//! [`AssetError`] that names the asset and the field; it never panics.
//!
//! Spec: `spec/core/extension.md` (Core asset table) and `spec/core/assets/{buffer,image,mesh,
//! pbr_material}.jaw`; the project's annotated copies are in `jaw/core/assets/`.

use std::io::Cursor;

use bevy::asset::RenderAssetUsages;
use bevy::image::{
    CompressedImageFormats, Image, ImageAddressMode, ImageFilterMode, ImageFormat, ImageSampler,
    ImageSamplerBorderColor, ImageSamplerDescriptor, ImageType,
};
use bevy::mesh::{Indices, Mesh, MeshVertexAttribute, PrimitiveTopology, VertexAttributeValues};
use thiserror::Error;
use wgpu_types::{TextureDimension, TextureFormat};

use crate::codec as w;
use crate::codec::WireEnum;

/// Largest width or height accepted by [`image_from_wire`] (checked from the file header before
/// any pixel is decoded).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Largest pixel count (width × height) accepted by [`image_from_wire`], so that a small
/// malicious file cannot make the decoder allocate gigabytes.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 26;

/// Most entries a material image table may have (`ImageTableID` is 4 bits wide,
/// `spec/core/extension.md`: "Image/material tables are intentionally small (up to 16 entries)").
pub const MAX_MATERIAL_IMAGES: usize = 16;

/// Why a Bevy asset could not be turned into a NOODLES2 asset body, or the reverse.
///
/// Every message starts with the asset kind (`mesh`, `image`, `material`) and names the field or
/// value that was wrong.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AssetError {
    /// The Bevy mesh's data cannot be read (for example it was moved to the render world).
    #[error("mesh: vertex data is not readable: {0}")]
    MeshAccess(String),
    /// Only triangle lists exist in NOODLES2 (`PrimitiveType::Triangles`).
    #[error("mesh: primitive topology {0:?} is not supported, only TriangleList")]
    UnsupportedTopology(PrimitiveTopology),
    /// The Bevy mesh has no `ATTRIBUTE_POSITION`.
    #[error("mesh: has no positions (ATTRIBUTE_POSITION)")]
    MissingPositions,
    /// A Bevy vertex attribute is stored in a format this conversion does not handle.
    #[error("mesh: attribute {attribute} is {found}, expected {expected}")]
    AttributeFormat {
        /// The attribute's name.
        attribute: &'static str,
        /// The format the attribute is stored in.
        found: String,
        /// The format this conversion expects.
        expected: &'static str,
    },
    /// A Bevy vertex attribute does not have one value per vertex.
    #[error("mesh: attribute {attribute} has {found} values but the mesh has {expected} positions")]
    AttributeLength {
        /// The attribute's name.
        attribute: &'static str,
        /// How many values the attribute has.
        found: usize,
        /// How many positions (vertices) the mesh has.
        expected: usize,
    },
    /// Some count or size does not fit the wire type that carries it.
    #[error("{asset}: {what} is {value}, more than the wire format allows ({limit})")]
    TooLarge {
        /// The asset kind.
        asset: &'static str,
        /// The count or size that is too large.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The largest value the wire type allows.
        limit: u64,
    },
    /// Offset arithmetic would overflow `u64`.
    #[error("{asset}: {what} overflows a 64-bit offset")]
    Overflow {
        /// The asset kind.
        asset: &'static str,
        /// The computation that overflows.
        what: String,
    },
    /// A `BufferView` reaches outside its buffer (`buffer.jaw`: "Any slice that escapes the
    /// bounds of the buffer is illegal").
    #[error(
        "{asset}: buffer view (offset {offset}, length {length}) escapes its buffer of {buffer_len} bytes"
    )]
    ViewOutOfBuffer {
        /// The asset kind.
        asset: &'static str,
        /// The view's byte offset in the buffer.
        offset: u64,
        /// The view's length in bytes.
        length: u64,
        /// The buffer's length in bytes.
        buffer_len: u64,
    },
    /// An attribute's stride is smaller than one element.
    #[error(
        "mesh: attribute {attribute} has vertex_stride {stride}, smaller than its {size}-byte element"
    )]
    StrideTooSmall {
        /// The attribute's name.
        attribute: String,
        /// The attribute's `vertex_stride` in bytes.
        stride: u16,
        /// The size of one element in bytes.
        size: u64,
    },
    /// An attribute's last element ends past the end of the mesh's view.
    #[error(
        "mesh: attribute {attribute} (view_byte_offset {offset}, vertex_stride {stride}, {count} vertices of {size} bytes) ends at byte {end}, past the {view_len}-byte view"
    )]
    AttributePastView {
        /// The attribute's name.
        attribute: String,
        /// The attribute's `view_byte_offset`.
        offset: u32,
        /// The attribute's `vertex_stride` in bytes.
        stride: u16,
        /// The number of vertices.
        count: u32,
        /// The size of one element in bytes.
        size: u64,
        /// The byte where the last element ends.
        end: u64,
        /// The view's length in bytes.
        view_len: u64,
    },
    /// The index block ends past the end of the mesh's view.
    #[error(
        "mesh: index block (view_byte_offset {offset}, index_count {count} of {size} bytes) ends at byte {end}, past the {view_len}-byte view"
    )]
    IndicesPastView {
        /// The index block's `view_byte_offset`.
        offset: u32,
        /// The number of indices (`index_count`).
        count: u32,
        /// The size of one index in bytes.
        size: u64,
        /// The byte where the index block ends.
        end: u64,
        /// The view's length in bytes.
        view_len: u64,
    },
    /// An index refers to a vertex that does not exist.
    #[error(
        "mesh: index {index} (at position {position}) is out of range for {vertex_count} vertices"
    )]
    IndexOutOfRange {
        /// The index's position in the index list.
        position: usize,
        /// The index value.
        index: u64,
        /// The number of vertices in the mesh.
        vertex_count: u64,
    },
    /// A triangle list needs a multiple of three indices (or vertices, without indices).
    #[error("mesh: {what} {count} is not a multiple of 3, as a triangle list needs")]
    NotTriangles {
        /// What was counted (the index count, or the vertex count without indices).
        what: &'static str,
        /// The count.
        count: u64,
    },
    /// An enum field holds a value the spec does not define.
    #[error("{asset}: {field} has unknown value {value}")]
    UnknownValue {
        /// The asset kind.
        asset: &'static str,
        /// The field's name.
        field: String,
        /// The undefined value.
        value: u64,
    },
    /// A joint stream without its weight stream, or the reverse.
    #[error("mesh: {present} is flagged but {missing} is not (joints and weights come in pairs)")]
    UnpairedSkinStream {
        /// The stream that is flagged.
        present: String,
        /// The paired stream that is not flagged.
        missing: String,
    },
    /// A skinning weight is negative, infinite or NaN.
    #[error("mesh: {attribute} of vertex {vertex} is {value}, not a finite weight >= 0")]
    BadWeight {
        /// The weight attribute's name.
        attribute: String,
        /// The vertex the weight belongs to.
        vertex: usize,
        /// The weight's value.
        value: f32,
    },
    /// The mesh says it has no morph targets but lists some (`mesh.jaw`).
    #[error("mesh: flags.has_morph_targets is 0 but morph_targets has {0} entries")]
    UnexpectedMorphTargets(usize),
    /// The Bevy image's pixel format cannot be encoded.
    #[error(
        "image: texture format {0:?} cannot be encoded (supported: Rgba8UnormSrgb, Rgba8Unorm, Bgra8UnormSrgb, Bgra8Unorm, R8Unorm, Rg8Unorm)"
    )]
    UnsupportedTextureFormat(TextureFormat),
    /// The Bevy image is not a single 2D image with pixel data.
    #[error("image: {0}")]
    UnsupportedImage(String),
    /// PNG encoding failed.
    #[error("image: PNG encoding failed: {0}")]
    Encode(String),
    /// The encoded bytes are not one of the formats of `image.jaw`.
    #[error(
        "image: unknown encoded format (first bytes: {first_bytes}); expected PNG, JPEG, WEBP, KTX2, HDR or EXR"
    )]
    UnknownImageFormat {
        /// The first bytes of the image, in hex.
        first_bytes: String,
    },
    /// The encoded format is known but this build of Bevy cannot decode it.
    #[error("image: {0} images are not supported by this build (Bevy feature not enabled)")]
    ImageFormatNotEnabled(&'static str),
    /// The encoded image is larger than [`MAX_IMAGE_SIDE`] / [`MAX_IMAGE_PIXELS`].
    #[error(
        "image: {format} image of {width}x{height} pixels exceeds the limit ({MAX_IMAGE_SIDE} per side, {MAX_IMAGE_PIXELS} pixels)"
    )]
    ImageTooLarge {
        /// The encoded format's name.
        format: &'static str,
        /// The image's width in pixels.
        width: u64,
        /// The image's height in pixels.
        height: u64,
    },
    /// Decoding the encoded image failed.
    #[error("image: decoding {format} failed: {reason}")]
    Decode {
        /// The encoded format's name.
        format: &'static str,
        /// Why decoding failed.
        reason: String,
    },
    /// The material image table has more than [`MAX_MATERIAL_IMAGES`] entries.
    #[error("material: image table has {0} entries, at most 16 are allowed")]
    TableTooLong(usize),
    /// A texture reference points past the material's image table.
    #[error(
        "material: {field} refers to image table entry {index}, but the table has {table_len} entries"
    )]
    ImageIndexOutOfRange {
        /// The texture reference's field name.
        field: &'static str,
        /// The image table entry it refers to.
        index: u8,
        /// The number of entries in the image table.
        table_len: usize,
    },
    /// A texture reference names a UV channel other than 0 or 1.
    #[error("material: {field} uses UV channel {channel}, only 0 and 1 exist")]
    BadUvChannel {
        /// The texture reference's field name.
        field: &'static str,
        /// The UV channel it names.
        channel: u8,
    },
    /// The image asset a texture reference resolves to is not known to the caller.
    #[error("material: {field} refers to image asset {image_id}, which is not available")]
    UnknownImage {
        /// The texture reference's field name.
        field: &'static str,
        /// The image asset it resolves to.
        image_id: u64,
    },
}

// ---------------------------------------------------------------------------------------------
// Buffer views
// ---------------------------------------------------------------------------------------------

/// The bytes of `view` inside `buffer` (the whole content of the Buffer asset), or
/// [`AssetError::ViewOutOfBuffer`] / [`AssetError::Overflow`] if the view escapes it.
///
/// Spec: `spec/core/assets/buffer.jaw` (`BufferView`: "A buffer view MUST only refer to a slice
/// inside of a buffer").
pub fn view_bytes<'a>(
    asset: &'static str,
    view: &w::BufferView,
    buffer: &'a [u8],
) -> Result<&'a [u8], AssetError> {
    let offset = view.offset.get();
    let length = view.length.get();
    let buffer_len = buffer.len() as u64;
    let escape = AssetError::ViewOutOfBuffer {
        asset,
        offset,
        length,
        buffer_len,
    };
    let end = offset
        .checked_add(length)
        .ok_or_else(|| AssetError::Overflow {
            asset,
            what: format!("buffer view offset {offset} + length {length}"),
        })?;
    if end > buffer_len {
        return Err(escape);
    }
    let (Ok(start), Ok(end)) = (usize::try_from(offset), usize::try_from(end)) else {
        return Err(escape);
    };
    buffer.get(start..end).ok_or(escape)
}

// ---------------------------------------------------------------------------------------------
// Mesh
// ---------------------------------------------------------------------------------------------

fn mesh_access(e: impl std::fmt::Display) -> AssetError {
    AssetError::MeshAccess(e.to_string())
}

fn too_large(asset: &'static str, what: &'static str, value: usize, limit: u64) -> AssetError {
    AssetError::TooLarge {
        asset,
        what,
        value: value as u64,
        limit,
    }
}

/// Reads an optional Bevy attribute that must have one `T` per vertex.
fn bevy_attribute<'a, T>(
    mesh: &'a Mesh,
    attribute: MeshVertexAttribute,
    name: &'static str,
    expected: &'static str,
    vertex_count: usize,
    pick: fn(&'a VertexAttributeValues) -> Option<&'a [T]>,
) -> Result<Option<&'a [T]>, AssetError> {
    let Some(values) = mesh.try_attribute_option(attribute).map_err(mesh_access)? else {
        return Ok(None);
    };
    let Some(values) = pick(values) else {
        return Err(AssetError::AttributeFormat {
            attribute: name,
            found: format!("{:?}", bevy::mesh::VertexFormat::from(values)),
            expected,
        });
    };
    if values.len() != vertex_count {
        return Err(AssetError::AttributeLength {
            attribute: name,
            found: values.len(),
            expected: vertex_count,
        });
    }
    Ok(Some(values))
}

/// Appends a block of float vectors to `buf` and returns the block's offset.
fn push_floats<const N: usize>(buf: &mut Vec<u8>, values: &[[f32; N]]) -> Result<u32, AssetError> {
    let offset = u32::try_from(buf.len())
        .map_err(|_| too_large("mesh", "buffer size", buf.len(), u32::MAX as u64))?;
    buf.reserve(values.len().saturating_mul(N * 4));
    for v in values {
        for x in v {
            buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    Ok(offset)
}

fn common(offset: u32, stride: usize) -> w::UncompressedAttribCommon {
    // Strides are 8, 12 or 16 bytes.
    w::UncompressedAttribCommon::new(offset, stride as u16)
}

/// Packs a Bevy [`Mesh`] into one buffer and describes it with a NOODLES2 [`w::MeshAsset`].
///
/// Returns the buffer bytes (to be sent as the Buffer asset `buffer_asset_id`) and the mesh
/// asset, whose `view` covers the whole buffer from offset 0. Each attribute is a tightly packed
/// block (stride = element size), in this order: positions (`float3`), normals (`float3`),
/// tangents (`float4`), UV0 and UV1 (`float2`), joint indices (`joint_0`: `ubyte4` when every
/// index is below 256, else `ushort4`) and joint weights (`weight_0`: `float4`), then the
/// indices. Joint indices and weights are sent together or not at all (a mesh with only one of
/// `ATTRIBUTE_JOINT_INDEX` / `ATTRIBUTE_JOINT_WEIGHT` is sent without either). Indices are
/// written as `U16` when every index is below 65536, else as `U32`; a mesh without indices gets
/// `IndexFormat::None`. `bb_min`/`bb_max` are the bounds of the positions (zero for an empty
/// mesh). Morph targets and vertex colors are not sent yet.
///
/// Errors: non-`TriangleList` topologies, a missing position attribute, attributes in another
/// format or with a different length than the positions, indices out of range or not a multiple
/// of three, or a mesh too large for the u32 offsets of the wire format.
///
/// Spec: `spec/core/assets/mesh.jaw` (`MeshAsset`), `spec/core/assets/buffer.jaw` (`BufferView`).
pub fn mesh_to_wire(
    mesh: &Mesh,
    buffer_asset_id: u64,
) -> Result<(Vec<u8>, w::MeshAsset), AssetError> {
    let topology = mesh.primitive_topology();
    if topology != PrimitiveTopology::TriangleList {
        return Err(AssetError::UnsupportedTopology(topology));
    }
    let positions = match mesh
        .try_attribute_option(Mesh::ATTRIBUTE_POSITION)
        .map_err(mesh_access)?
    {
        Some(VertexAttributeValues::Float32x3(p)) => p.as_slice(),
        Some(other) => {
            return Err(AssetError::AttributeFormat {
                attribute: "position",
                found: format!("{:?}", bevy::mesh::VertexFormat::from(other)),
                expected: "Float32x3",
            });
        }
        None => return Err(AssetError::MissingPositions),
    };
    let n = positions.len();
    let vertex_count =
        u32::try_from(n).map_err(|_| too_large("mesh", "vertex count", n, u32::MAX as u64))?;
    let normals = bevy_attribute(
        mesh,
        Mesh::ATTRIBUTE_NORMAL,
        "normal",
        "Float32x3",
        n,
        |v| match v {
            VertexAttributeValues::Float32x3(v) => Some(v.as_slice()),
            _ => None,
        },
    )?;
    let tangents = bevy_attribute(
        mesh,
        Mesh::ATTRIBUTE_TANGENT,
        "tangent",
        "Float32x4",
        n,
        |v| match v {
            VertexAttributeValues::Float32x4(v) => Some(v.as_slice()),
            _ => None,
        },
    )?;
    fn uv_pick(v: &VertexAttributeValues) -> Option<&[[f32; 2]]> {
        match v {
            VertexAttributeValues::Float32x2(v) => Some(v.as_slice()),
            _ => None,
        }
    }
    let uv0 = bevy_attribute(mesh, Mesh::ATTRIBUTE_UV_0, "uv_0", "Float32x2", n, uv_pick)?;
    let uv1 = bevy_attribute(mesh, Mesh::ATTRIBUTE_UV_1, "uv_1", "Float32x2", n, uv_pick)?;
    let joints = bevy_attribute(
        mesh,
        Mesh::ATTRIBUTE_JOINT_INDEX,
        "joint_index",
        "Uint16x4",
        n,
        |v| match v {
            VertexAttributeValues::Uint16x4(v) => Some(v.as_slice()),
            _ => None,
        },
    )?;
    let weights = bevy_attribute(
        mesh,
        Mesh::ATTRIBUTE_JOINT_WEIGHT,
        "joint_weight",
        "Float32x4",
        n,
        |v| match v {
            VertexAttributeValues::Float32x4(v) => Some(v.as_slice()),
            _ => None,
        },
    )?;
    let indices = mesh.try_indices_option().map_err(mesh_access)?;

    let mut buf = Vec::new();
    let mut asset = w::MeshAsset {
        vertex_count,
        ..Default::default()
    };
    let mut flags =
        w::UncompressedFlags::default().with_primitive_type(w::PrimitiveType::Triangles);

    let offset = push_floats(&mut buf, positions)?;
    asset.position = w::PositionAttribute::new(common(offset, 12), w::PositionFormat::Float3);
    if let Some(normals) = normals {
        let offset = push_floats(&mut buf, normals)?;
        asset.normal = w::NormalAttribute::new(common(offset, 12), w::NormalFormat::Float3);
        flags.set_has_normal(1);
    }
    if let Some(tangents) = tangents {
        let offset = push_floats(&mut buf, tangents)?;
        asset.tangent = w::TangentAttribute::new(common(offset, 16), w::TangentFormat::Float4);
        flags.set_has_tangent(1);
    }
    if let Some(uv) = uv0 {
        let offset = push_floats(&mut buf, uv)?;
        asset.uv_0 = w::UVAttribute::new(common(offset, 8), w::UVFormat::Float2);
        flags.set_has_uv_0(1);
    }
    if let Some(uv) = uv1 {
        let offset = push_floats(&mut buf, uv)?;
        asset.uv_1 = w::UVAttribute::new(common(offset, 8), w::UVFormat::Float2);
        flags.set_has_uv_1(1);
    }
    // Skinning: both streams or neither (a lone one is left out, see the doc above).
    if let (Some(joints), Some(weights)) = (joints, weights) {
        let offset = u32::try_from(buf.len())
            .map_err(|_| too_large("mesh", "buffer size", buf.len(), u32::MAX as u64))?;
        let max = joints.iter().flatten().copied().max().unwrap_or(0);
        if max < 256 {
            buf.reserve(n.saturating_mul(4));
            for j in joints {
                // `max < 256` was checked above.
                buf.extend(j.iter().map(|&x| x as u8));
            }
            asset.joint_0 = w::JointAttribute::new(common(offset, 4), w::JointFormat::Ubyte4);
        } else {
            buf.reserve(n.saturating_mul(8));
            for j in joints {
                for x in j {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
            }
            asset.joint_0 = w::JointAttribute::new(common(offset, 8), w::JointFormat::Ushort4);
        }
        flags.set_has_joint_0(1);
        let offset = push_floats(&mut buf, weights)?;
        asset.weight_0 = w::WeightAttribute::new(common(offset, 16), w::WeightFormat::Float4);
        flags.set_has_weight_0(1);
    }

    match indices {
        None => {
            if n % 3 != 0 {
                return Err(AssetError::NotTriangles {
                    what: "vertex count (no indices)",
                    count: n as u64,
                });
            }
            flags.set_format(w::IndexFormat::None);
        }
        Some(indices) => {
            let count = indices.len();
            let index_count = u32::try_from(count)
                .map_err(|_| too_large("mesh", "index count", count, u32::MAX as u64))?;
            if count % 3 != 0 {
                return Err(AssetError::NotTriangles {
                    what: "index count",
                    count: count as u64,
                });
            }
            let mut max = 0usize;
            for (position, index) in indices.iter().enumerate() {
                if index >= n {
                    return Err(AssetError::IndexOutOfRange {
                        position,
                        index: index as u64,
                        vertex_count: n as u64,
                    });
                }
                max = max.max(index);
            }
            let offset = u32::try_from(buf.len())
                .map_err(|_| too_large("mesh", "buffer size", buf.len(), u32::MAX as u64))?;
            if max < 65536 {
                buf.reserve(count.saturating_mul(2));
                for i in indices.iter() {
                    // `max < 65536` was checked above.
                    buf.extend_from_slice(&(i as u16).to_le_bytes());
                }
                flags.set_format(w::IndexFormat::U16);
            } else {
                buf.reserve(count.saturating_mul(4));
                for i in indices.iter() {
                    // Every index is below the vertex count, which fits in u32.
                    buf.extend_from_slice(&(i as u32).to_le_bytes());
                }
                flags.set_format(w::IndexFormat::U32);
            }
            asset.index = w::UncompressedIndex::new(offset, index_count);
        }
    }

    if buf.len() > u32::MAX as usize {
        return Err(too_large("mesh", "buffer size", buf.len(), u32::MAX as u64));
    }

    let (mut lo, mut hi) = if n == 0 {
        ([0.0; 3], [0.0; 3])
    } else {
        ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3])
    };
    for p in positions {
        for ((l, h), x) in lo.iter_mut().zip(hi.iter_mut()).zip(p) {
            *l = l.min(*x);
            *h = h.max(*x);
        }
    }
    asset.bb_min = w::Vec3::new(lo[0], lo[1], lo[2]);
    asset.bb_max = w::Vec3::new(hi[0], hi[1], hi[2]);
    asset.flags = flags;
    asset.view = w::BufferView::new(
        0,
        buf.len() as u64,
        w::BufferAssetID::new(w::AssetID::new(buffer_asset_id)),
    );
    Ok((buf, asset))
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

fn read_floats<const N: usize>(s: &Stream<'_>) -> Vec<[f32; N]> {
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

fn unknown(asset: &'static str, field: impl Into<String>, value: u8) -> AssetError {
    AssetError::UnknownValue {
        asset,
        field: field.into(),
        value: u64::from(value),
    }
}

/// Reads a UV stream (`float2` or `normalized_ushort2`) as Bevy's `Float32x2`.
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

/// Reads a joint-index stream (`ubyte4` widened, or `ushort4`) as Bevy's `Uint16x4`.
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
/// `v / 65535`, or `float4`) as Bevy's `Float32x4`. Float weights must be finite and not
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

/// One set of per-vertex joint indices and weights (four influences per vertex).
type Influences = (Vec<[u16; 4]>, Vec<[f32; 4]>);

/// Joint indices and weights of up to eight influences per vertex (`joint_0`/`weight_0` and
/// `joint_1`/`weight_1`) as Bevy's four: the four largest weights (the first ones on ties),
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

/// Builds a Bevy [`Mesh`] from a NOODLES2 [`w::MeshAsset`] and the whole content of the Buffer
/// asset its `view` refers to.
///
/// Validates, before reading anything: the view lies inside `buffer` (overflow-safe); the
/// primitive type is `Triangles`; every flagged attribute has a known format, a stride of at
/// least its element size and its last element inside the view; the index block fits in the
/// view, its count is a multiple of three and every index is below `vertex_count` (without
/// indices, `vertex_count` must be a multiple of three).
///
/// The result is a `TriangleList` mesh with `RenderAssetUsages::default()` and
/// `ATTRIBUTE_POSITION`, plus `ATTRIBUTE_NORMAL`, `ATTRIBUTE_TANGENT`, `ATTRIBUTE_UV_0` and
/// `ATTRIBUTE_UV_1` when flagged (`normalized_ushort2` UVs become floats `v / 65535`), and
/// indices (`U8` widened to `U16`). Joint and weight streams become `ATTRIBUTE_JOINT_INDEX`
/// (`Uint16x4`, `ubyte4` widened) and `ATTRIBUTE_JOINT_WEIGHT` (`Float32x4`, normalized formats
/// divided by 255 / 65535); with both `_0` and `_1` sets the four largest weights are kept; weights
/// are renormalized when their sum is off 1 by more than [`WEIGHT_SUM_TOLERANCE`]; a joint stream
/// without its weight stream (or the reverse) and negative or non-finite weights are refused; the
/// mesh gets Bevy's skinned-mesh bounds. Morph-target streams are validated but not applied yet;
/// `bb_min`/`bb_max` are not used (Bevy computes its own bounds).
///
/// Spec: `spec/core/assets/mesh.jaw` (`MeshAsset`), `spec/core/assets/buffer.jaw` (`BufferView`).
pub fn mesh_from_wire(asset: &w::MeshAsset, buffer: &[u8]) -> Result<Mesh, AssetError> {
    let view = view_bytes("mesh", &asset.view, buffer)?;
    let flags = asset.flags;
    let primitive = ((flags.raw() >> 11) & 0x7) as u8;
    if w::PrimitiveType::from_repr(primitive).is_none() {
        return Err(unknown("mesh", "flags.primitive_type", primitive));
    }
    let n = asset.vertex_count;

    let position = asset.position;
    if w::PositionFormat::from_repr(position.format).is_none() {
        return Err(unknown("mesh", "position.format", position.format));
    }
    let positions = read_floats::<3>(&stream(view, "position", &position.common, 12, n)?);

    let normals = if flags.has_normal() != 0 {
        let normal = asset.normal;
        if w::NormalFormat::from_repr(normal.format).is_none() {
            return Err(unknown("mesh", "normal.format", normal.format));
        }
        Some(read_floats::<3>(&stream(
            view,
            "normal",
            &normal.common,
            12,
            n,
        )?))
    } else {
        None
    };
    let tangents = if flags.has_tangent() != 0 {
        let tangent = asset.tangent;
        if w::TangentFormat::from_repr(tangent.format).is_none() {
            return Err(unknown("mesh", "tangent.format", tangent.format));
        }
        Some(read_floats::<4>(&stream(
            view,
            "tangent",
            &tangent.common,
            16,
            n,
        )?))
    } else {
        None
    };
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
    // Morph targets: validated, applied in a later issue.
    if flags.has_morph_targets() == 0 {
        if !asset.morph_targets.0.is_empty() {
            return Err(AssetError::UnexpectedMorphTargets(
                asset.morph_targets.0.len(),
            ));
        }
    } else {
        for (i, target) in asset.morph_targets.0.iter().enumerate() {
            let target = *target;
            // One displacement stream of a morph target: known format, inside the view.
            let check = |part: &str, known: bool, format: u8, common, size| {
                let name = format!("morph_targets[{i}].{part}");
                if !known {
                    return Err(unknown("mesh", format!("{name}.format"), format));
                }
                stream(view, &name, common, size, n).map(drop)
            };
            if target.flags.has_position() != 0 {
                let p = &target.position;
                let known = w::PositionFormat::from_repr(p.format).is_some();
                check("position", known, p.format, &p.common, 12)?;
            }
            if target.flags.has_normal() != 0 {
                let v = &target.normal;
                let known = w::NormalFormat::from_repr(v.format).is_some();
                check("normal", known, v.format, &v.common, 12)?;
            }
            if target.flags.has_tangent() != 0 {
                let t = &target.tangent;
                let known = w::TangentFormat::from_repr(t.format).is_some();
                check("tangent", known, t.format, &t.common, 16)?;
            }
        }
    }

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

    let mut mesh = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    );
    mesh.try_insert_attribute(Mesh::ATTRIBUTE_POSITION, positions)
        .map_err(mesh_access)?;
    if let Some(v) = normals {
        mesh.try_insert_attribute(Mesh::ATTRIBUTE_NORMAL, v)
            .map_err(mesh_access)?;
    }
    if let Some(v) = tangents {
        mesh.try_insert_attribute(Mesh::ATTRIBUTE_TANGENT, v)
            .map_err(mesh_access)?;
    }
    if let Some(v) = uv0 {
        mesh.try_insert_attribute(Mesh::ATTRIBUTE_UV_0, v)
            .map_err(mesh_access)?;
    }
    if let Some(v) = uv1 {
        mesh.try_insert_attribute(Mesh::ATTRIBUTE_UV_1, v)
            .map_err(mesh_access)?;
    }
    let skin_sets_empty = skin_sets.is_empty();
    if !skin_sets_empty {
        let (joints, weights) = skin_influences(skin_sets, n as usize);
        mesh.try_insert_attribute(
            Mesh::ATTRIBUTE_JOINT_INDEX,
            VertexAttributeValues::Uint16x4(joints),
        )
        .map_err(mesh_access)?;
        mesh.try_insert_attribute(Mesh::ATTRIBUTE_JOINT_WEIGHT, weights)
            .map_err(mesh_access)?;
    }
    if let Some(i) = indices {
        mesh.try_insert_indices(i).map_err(mesh_access)?;
    }
    if !skin_sets_empty {
        // Per-joint bounds, for `DynamicSkinnedMeshBounds`; a mesh whose weights are all zero
        // has none (and is culled by its bind-pose bounds).
        let _ = mesh.generate_skinned_mesh_bounds();
    }
    Ok(mesh)
}

/// Reads and checks the index block (format is not `None`).
fn read_indices(
    view: &[u8],
    format: w::IndexFormat,
    index: &w::UncompressedIndex,
    vertex_count: u32,
) -> Result<Indices, AssetError> {
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
        w::IndexFormat::U8 => Indices::U16(
            bytes
                .iter()
                .enumerate()
                .map(|(p, &b)| check(p, u32::from(b)).map(|i| i as u16))
                .collect::<Result<_, _>>()?,
        ),
        w::IndexFormat::U16 => Indices::U16(
            bytes
                .chunks_exact(2)
                .enumerate()
                .map(|(p, b)| {
                    check(p, u32::from(u16::from_le_bytes([b[0], b[1]]))).map(|i| i as u16)
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => Indices::U32(
            bytes
                .chunks_exact(4)
                .enumerate()
                .map(|(p, b)| check(p, u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect::<Result<_, _>>()?,
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Samplers and images
// ---------------------------------------------------------------------------------------------

fn address_to_wire(m: ImageAddressMode) -> w::ImageAddressMode {
    match m {
        ImageAddressMode::ClampToEdge => w::ImageAddressMode::ClampToEdge,
        ImageAddressMode::Repeat => w::ImageAddressMode::Repeat,
        ImageAddressMode::MirrorRepeat => w::ImageAddressMode::MirroredRepeat,
        ImageAddressMode::ClampToBorder => w::ImageAddressMode::ClampToBorder,
    }
}

fn address_from_wire(m: w::ImageAddressMode) -> ImageAddressMode {
    match m {
        w::ImageAddressMode::ClampToEdge => ImageAddressMode::ClampToEdge,
        w::ImageAddressMode::Repeat => ImageAddressMode::Repeat,
        w::ImageAddressMode::MirroredRepeat => ImageAddressMode::MirrorRepeat,
        w::ImageAddressMode::ClampToBorder => ImageAddressMode::ClampToBorder,
    }
}

fn filter_to_wire(f: ImageFilterMode) -> w::ImageFilterMode {
    match f {
        ImageFilterMode::Nearest => w::ImageFilterMode::Nearest,
        ImageFilterMode::Linear => w::ImageFilterMode::Linear,
    }
}

fn filter_from_wire(f: w::ImageFilterMode) -> ImageFilterMode {
    match f {
        w::ImageFilterMode::Nearest => ImageFilterMode::Nearest,
        w::ImageFilterMode::Linear => ImageFilterMode::Linear,
    }
}

/// Sampler state of a Bevy sampler descriptor as NOODLES2 [`w::ImageFlags`] (semantic left at
/// `SRGB`, the zero value; [`image_to_wire`] sets it from the texture format).
///
/// Address modes and mag/min/mipmap filters map one to one; a border color of `None` is sent as
/// `TransparentBlack`. LOD clamps, comparison, anisotropy and label have no wire field and are
/// dropped.
///
/// Spec: `spec/core/assets/image.jaw` (`ImageFlags`).
pub fn sampler_to_flags(d: &ImageSamplerDescriptor) -> w::ImageFlags {
    let border = match d.border_color {
        None | Some(ImageSamplerBorderColor::TransparentBlack) => {
            w::ImageSamplerBorderColor::TransparentBlack
        }
        Some(ImageSamplerBorderColor::OpaqueBlack) => w::ImageSamplerBorderColor::OpaqueBlack,
        Some(ImageSamplerBorderColor::OpaqueWhite) => w::ImageSamplerBorderColor::OpaqueWhite,
        Some(ImageSamplerBorderColor::Zero) => w::ImageSamplerBorderColor::Zero,
    };
    w::ImageFlags::default()
        .with_address_mode_u(address_to_wire(d.address_mode_u))
        .with_address_mode_v(address_to_wire(d.address_mode_v))
        .with_address_mode_w(address_to_wire(d.address_mode_w))
        .with_border_color(border)
        .with_mag_filter(filter_to_wire(d.mag_filter))
        .with_min_filter(filter_to_wire(d.min_filter))
        .with_mipmap_filter(filter_to_wire(d.mipmap_filter))
}

/// The Bevy sampler descriptor for NOODLES2 [`w::ImageFlags`]: address modes and filters from
/// the flags, the border color only when some address mode is `ClampToBorder` (Bevy's `None`
/// otherwise), everything else at `ImageSamplerDescriptor::default()`.
///
/// Spec: `spec/core/assets/image.jaw` (`ImageFlags`).
pub fn flags_to_sampler(flags: w::ImageFlags) -> ImageSamplerDescriptor {
    let d = ImageSamplerDescriptor {
        address_mode_u: address_from_wire(flags.address_mode_u()),
        address_mode_v: address_from_wire(flags.address_mode_v()),
        address_mode_w: address_from_wire(flags.address_mode_w()),
        mag_filter: filter_from_wire(flags.mag_filter()),
        min_filter: filter_from_wire(flags.min_filter()),
        mipmap_filter: filter_from_wire(flags.mipmap_filter()),
        ..Default::default()
    };
    let uses_border = [d.address_mode_u, d.address_mode_v, d.address_mode_w]
        .contains(&ImageAddressMode::ClampToBorder);
    let border_color = uses_border.then(|| match flags.border_color() {
        w::ImageSamplerBorderColor::TransparentBlack => ImageSamplerBorderColor::TransparentBlack,
        w::ImageSamplerBorderColor::OpaqueBlack => ImageSamplerBorderColor::OpaqueBlack,
        w::ImageSamplerBorderColor::OpaqueWhite => ImageSamplerBorderColor::OpaqueWhite,
        w::ImageSamplerBorderColor::Zero => ImageSamplerBorderColor::Zero,
    });
    ImageSamplerDescriptor { border_color, ..d }
}

/// Encodes a Bevy [`Image`] as PNG and describes its sampler as NOODLES2 [`w::ImageFlags`].
///
/// Supported: single-layer 2D images with CPU pixel data in `Rgba8UnormSrgb`, `Rgba8Unorm`,
/// `Bgra8UnormSrgb`, `Bgra8Unorm` (written as RGBA), `R8Unorm` (written as 8-bit grey, so it
/// comes back as RGBA with R = G = B) and `Rg8Unorm` (written as RGB with B = 0, so R and G come
/// back in place). Only the first mip level is sent. Anything else is
/// [`AssetError::UnsupportedTextureFormat`] / [`AssetError::UnsupportedImage`].
///
/// Flags: [`sampler_to_flags`] of the image's sampler (`ImageSampler::Default` is sent as
/// `ImageSamplerDescriptor::linear()`, the default of Bevy's `ImagePlugin`), and semantic `SRGB`
/// for `*Srgb` formats, `Linear` otherwise.
///
/// Spec: `spec/core/assets/image.jaw` (`ImageAsset`, `ImageFlags`).
pub fn image_to_wire(image: &Image) -> Result<(Vec<u8>, w::ImageFlags), AssetError> {
    let desc = &image.texture_descriptor;
    if desc.dimension != TextureDimension::D2 || desc.size.depth_or_array_layers != 1 {
        return Err(AssetError::UnsupportedImage(format!(
            "only single-layer 2D images can be sent, this one is {:?} with {} layers",
            desc.dimension, desc.size.depth_or_array_layers
        )));
    }
    let (width, height) = (desc.size.width, desc.size.height);
    if width == 0 || height == 0 {
        return Err(AssetError::UnsupportedImage(format!(
            "image is empty ({width}x{height})"
        )));
    }
    let Some(data) = image.data.as_deref() else {
        return Err(AssetError::UnsupportedImage(
            "image has no CPU pixel data".to_owned(),
        ));
    };
    let format = desc.format;
    let (bpp, srgb): (u64, bool) = match format {
        TextureFormat::Rgba8UnormSrgb | TextureFormat::Bgra8UnormSrgb => (4, true),
        TextureFormat::Rgba8Unorm | TextureFormat::Bgra8Unorm => (4, false),
        TextureFormat::R8Unorm => (1, false),
        TextureFormat::Rg8Unorm => (2, false),
        other => return Err(AssetError::UnsupportedTextureFormat(other)),
    };
    let expected = u64::from(width) * u64::from(height) * bpp;
    let pixels = usize::try_from(expected)
        .ok()
        .and_then(|len| data.get(..len))
        .ok_or_else(|| {
            AssetError::UnsupportedImage(format!(
                "pixel data has {} bytes, {expected} needed for {width}x{height} {format:?}",
                data.len()
            ))
        })?;
    let (converted, color): (std::borrow::Cow<'_, [u8]>, ::image::ExtendedColorType) = match format
    {
        TextureFormat::Bgra8UnormSrgb | TextureFormat::Bgra8Unorm => (
            pixels
                .chunks_exact(4)
                .flat_map(|p| [p[2], p[1], p[0], p[3]])
                .collect::<Vec<u8>>()
                .into(),
            ::image::ExtendedColorType::Rgba8,
        ),
        TextureFormat::R8Unorm => (pixels.into(), ::image::ExtendedColorType::L8),
        TextureFormat::Rg8Unorm => (
            pixels
                .chunks_exact(2)
                .flat_map(|p| [p[0], p[1], 0])
                .collect::<Vec<u8>>()
                .into(),
            ::image::ExtendedColorType::Rgb8,
        ),
        _ => (pixels.into(), ::image::ExtendedColorType::Rgba8),
    };
    let mut png = Vec::new();
    ::image::ImageEncoder::write_image(
        ::image::codecs::png::PngEncoder::new(&mut png),
        &converted,
        width,
        height,
        color,
    )
    .map_err(|e| AssetError::Encode(e.to_string()))?;

    let sampler = match &image.sampler {
        ImageSampler::Default => ImageSamplerDescriptor::linear(),
        ImageSampler::Descriptor(d) => d.clone(),
    };
    let semantic = if srgb {
        w::ImageSemantic::SRGB
    } else {
        w::ImageSemantic::Linear
    };
    Ok((png, sampler_to_flags(&sampler).with_semantic(semantic)))
}

/// The container formats of `image.jaw`, recognised by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Png,
    Jpeg,
    Webp,
    Ktx2,
    Hdr,
    Exr,
}

impl Container {
    fn detect(b: &[u8]) -> Option<Self> {
        const KTX2: [u8; 12] = [
            0xAB, b'K', b'T', b'X', b' ', b'2', b'0', 0xBB, 0x0D, 0x0A, 0x1A, 0x0A,
        ];
        if b.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
            Some(Self::Png)
        } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Self::Jpeg)
        } else if b.len() >= 12
            && b.starts_with(b"RIFF")
            && b.get(8..12) == Some(b"WEBP".as_slice())
        {
            Some(Self::Webp)
        } else if b.starts_with(&KTX2) {
            Some(Self::Ktx2)
        } else if b.starts_with(b"#?RADIANCE") || b.starts_with(b"#?RGBE") {
            Some(Self::Hdr)
        } else if b.starts_with(&[0x76, 0x2F, 0x31, 0x01]) {
            Some(Self::Exr)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Webp => "WEBP",
            Self::Ktx2 => "KTX2",
            Self::Hdr => "HDR",
            Self::Exr => "EXR",
        }
    }

    fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Ktx2 => "image/ktx2",
            Self::Hdr => "image/vnd.radiance",
            Self::Exr => "image/x-exr",
        }
    }
}

fn check_size(format: &'static str, width: u64, height: u64) -> Result<(), AssetError> {
    let side = u64::from(MAX_IMAGE_SIDE);
    if width > side || height > side || width.saturating_mul(height) > MAX_IMAGE_PIXELS {
        return Err(AssetError::ImageTooLarge {
            format,
            width,
            height,
        });
    }
    Ok(())
}

/// Decodes an encoded NOODLES2 image (the bytes of an `ImageAsset`'s view) into a Bevy
/// [`Image`], with `is_srgb` from the semantic flag and an `ImageSampler::Descriptor` from
/// [`flags_to_sampler`]. Compressed KTX2 texture formats are refused (see
/// [`image_from_wire_with`] to allow the ones the GPU supports).
///
/// Spec: `spec/core/assets/image.jaw` (`ImageAsset`, `ImageFlags`).
pub fn image_from_wire(encoded: &[u8], flags: w::ImageFlags) -> Result<Image, AssetError> {
    image_from_wire_with(encoded, flags, CompressedImageFormats::NONE)
}

/// [`image_from_wire`] accepting the GPU-compressed KTX2 formats in `supported` (pass the
/// render app's `CompressedImageFormatSupport`).
///
/// The container is detected from its first bytes (PNG, JPEG, WEBP, KTX2, HDR, EXR, the formats
/// `image.jaw` allows); anything else is [`AssetError::UnknownImageFormat`] quoting those bytes,
/// and a format whose Bevy feature is off is [`AssetError::ImageFormatNotEnabled`]. The
/// dimensions are read from the header first and refused above [`MAX_IMAGE_SIDE`] per side or
/// [`MAX_IMAGE_PIXELS`] in total, then Bevy's `Image::from_buffer` decodes.
///
/// Spec: `spec/core/assets/image.jaw` (`ImageAsset`, `ImageFlags`).
pub fn image_from_wire_with(
    encoded: &[u8],
    flags: w::ImageFlags,
    supported: CompressedImageFormats,
) -> Result<Image, AssetError> {
    let Some(container) = Container::detect(encoded) else {
        let first_bytes = encoded
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ");
        return Err(AssetError::UnknownImageFormat {
            first_bytes: if first_bytes.is_empty() {
                "none, the image is empty".to_owned()
            } else {
                first_bytes
            },
        });
    };
    let name = container.name();
    let format = ImageFormat::from_mime_type(container.mime())
        .ok_or(AssetError::ImageFormatNotEnabled(name))?;
    let decode = |reason: String| AssetError::Decode {
        format: name,
        reason,
    };

    if container == Container::Ktx2 {
        // KTX2 header: identifier (12), vkFormat, typeSize, pixelWidth, pixelHeight,
        // pixelDepth, layerCount, faceCount, levelCount (u32 LE each).
        let field = |at: usize| {
            encoded
                .get(at..at + 4)
                .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .ok_or_else(|| decode("KTX2 header is truncated".to_owned()))
        };
        let (width, height, depth) = (field(20)?, field(24)?, field(28)?);
        let layers = field(32)?.max(1).saturating_mul(field(36)?.max(1));
        check_size(
            name,
            width,
            height
                .max(1)
                .saturating_mul(depth.max(1))
                .saturating_mul(layers),
        )?;
    } else {
        let crate_format = format
            .as_image_crate_format()
            .ok_or(AssetError::ImageFormatNotEnabled(name))?;
        let (width, height) = ::image::ImageReader::with_format(Cursor::new(encoded), crate_format)
            .into_dimensions()
            .map_err(|e| decode(e.to_string()))?;
        check_size(name, u64::from(width), u64::from(height))?;
    }

    let is_srgb = flags.semantic() == w::ImageSemantic::SRGB;
    Image::from_buffer(
        encoded,
        ImageType::Format(format),
        supported,
        is_srgb,
        ImageSampler::Descriptor(flags_to_sampler(flags)),
        RenderAssetUsages::default(),
    )
    .map_err(|e| decode(e.to_string()))
}

// Materials: `StandardMaterial` lives in Bevy's renderer, so its conversions need `render`.
#[cfg(feature = "render")]
mod material;
#[cfg(feature = "render")]
pub use material::{material_from_wire, material_to_wire};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_containers() {
        assert_eq!(
            Container::detect(b"\x89PNG\r\n\x1a\n...."),
            Some(Container::Png)
        );
        assert_eq!(
            Container::detect(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(Container::Jpeg)
        );
        assert_eq!(
            Container::detect(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(Container::Webp)
        );
        assert_eq!(Container::detect(b"#?RADIANCE\n"), Some(Container::Hdr));
        assert_eq!(
            Container::detect(&[0x76, 0x2F, 0x31, 0x01, 2]),
            Some(Container::Exr)
        );
        assert_eq!(Container::detect(b"GIF89a"), None);
        assert_eq!(Container::detect(b""), None);
    }
}
