//! Core asset bodies from the wire, validated, without an engine: the checks every converter
//! needs before it trusts an offset, a length, an index or an enum value, and the decoded forms an
//! engine turns into its own assets (`bevy_noodles2` builds Bevy's `Mesh` from [`DecodedMesh`]).
//!
//! Everything here treats its input as hostile: it never panics, and an [`AssetError`] names the
//! asset kind and the field that was wrong. The fuzz targets (`fuzz/`) run these functions on
//! arbitrary input.
//!
//! Spec: `spec/core/extension.md` (Core asset table) and `spec/core/assets/{buffer,image,mesh,
//! pbr_material}.jaw`.

use crate::codec as w;

mod environment;
#[cfg(feature = "image")]
mod image;
mod instance;
mod material;
mod mesh;
mod skin;

pub use environment::environment_images;
#[cfg(feature = "image")]
pub use image::{Container, ImageHeader, KTX2_MAX_BYTES_PER_PIXEL, check_image};
pub use instance::{
    FULL_FLOAT_BYTES, Instance, REDUCED_BYTES, decode_instances, encode_full_float, instance_stride,
};
pub use material::{
    DecodedAnisotropy, DecodedClearcoat, DecodedMaterial, DecodedParallax, DecodedThickness,
    DecodedTransmission, TextureRef, decode_material, from_unorm16, ior_from_wire,
};
pub use mesh::{
    DecodedMesh, DecodedMorphTarget, Influences, MORPH_MEMORY_FACTOR, MeshIndices,
    WEIGHT_SUM_TOLERANCE, decode_mesh,
};
pub use skin::{MATRIX_BYTES, influences_past, inverse_bind_matrices, joint_past};

/// Largest width or height accepted by image decoding (checked from the file header before
/// any pixel is decoded).
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Largest pixel count (width × height) accepted by image decoding, so that a small
/// malicious file cannot make the decoder allocate gigabytes.
pub const MAX_IMAGE_PIXELS: u64 = 1 << 26;

/// Most entries a material image table may have (`ImageTableID` is 4 bits wide,
/// `spec/core/extension.md`: "Image/material tables are intentionally small (up to 16 entries)").
pub const MAX_MATERIAL_IMAGES: usize = 16;

/// Why an engine asset could not be turned into a NOODLES2 asset body, or the reverse.
///
/// Every message starts with the asset kind (`mesh`, `image`, `material`) and names the field or
/// value that was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AssetError {
    /// An instance view is not `instance_count × stride` bytes.
    #[error(
        "instance: view is {length} bytes, but {count} instances of {stride} bytes need exactly {expected}"
    )]
    InstanceViewLength {
        /// The view's length in bytes.
        length: u64,
        /// `instance_count`.
        count: u32,
        /// Bytes per instance of the declared layout.
        stride: u64,
        /// The length the view must have.
        expected: u128,
    },
    /// An instance value (or a quantization range, `instance` `None`) is not finite.
    #[error("instance{}: {field} has {value}, not a finite number", instance.map(|i| format!(" {i}")).unwrap_or_default())]
    InstanceNotFinite {
        /// Which instance (counted from 0), `None` for the component's quantization ranges.
        instance: Option<usize>,
        /// The field.
        field: &'static str,
        /// The value.
        value: f32,
    },
    /// An instance's rotation quaternion has length zero.
    #[error("instance {instance}: rotation has length zero")]
    InstanceRotation {
        /// Which instance (counted from 0).
        instance: usize,
    },
    /// A skin's `inverse_bind_matrices` view is not `64 × joints` bytes.
    #[error(
        "skin: inverse_bind_matrices view is {length} bytes, but {joints} joints need exactly {expected} (64 per joint)"
    )]
    SkinViewLength {
        /// The view's length.
        length: u64,
        /// The skin's joints.
        joints: usize,
        /// The length it must have.
        expected: u128,
    },
    /// The engine mesh's data cannot be read (for example it was moved to the render world).
    #[error("mesh: vertex data is not readable: {0}")]
    MeshAccess(String),
    /// Only triangle lists exist in NOODLES2 (`PrimitiveType::Triangles`); the engine's
    /// topology, by name.
    #[error("mesh: primitive topology {0} is not supported, only TriangleList")]
    UnsupportedTopology(String),
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
        "image: texture format {0} cannot be encoded (supported: Rgba8UnormSrgb, Rgba8Unorm, Bgra8UnormSrgb, Bgra8Unorm, R8Unorm, Rg8Unorm)"
    )]
    UnsupportedTextureFormat(String),
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
    /// A material's float field is NaN or infinite.
    #[error("material: {field} is {value}, not a finite number")]
    NotFinite {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: f32,
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

/// [`AssetError::UnknownValue`] for `field` of an `asset` kind.
pub fn unknown(asset: &'static str, field: impl Into<String>, value: u8) -> AssetError {
    AssetError::UnknownValue {
        asset,
        field: field.into(),
        value: u64::from(value),
    }
}

// Buffer views

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
