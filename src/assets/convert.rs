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

use bevy::asset::RenderAssetUsages;
use bevy::image::{
    CompressedImageFormats, Image, ImageAddressMode, ImageFilterMode, ImageFormat, ImageSampler,
    ImageSamplerBorderColor, ImageSamplerDescriptor, ImageType,
};
use bevy::mesh::{Indices, Mesh, MeshVertexAttribute, PrimitiveTopology, VertexAttributeValues};
use wgpu_types::{TextureDimension, TextureFormat};

use crate::codec as w;

use bevy::math::Vec3;
use bevy::mesh::morph::{MAX_MORPH_WEIGHTS, MorphAttributes};
pub use noodles2::assets::{
    AssetError, DecodedMesh, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, MAX_MATERIAL_IMAGES, MeshIndices,
    WEIGHT_SUM_TOLERANCE, decode_mesh, view_bytes,
};
use noodles2::assets::{DecodedMorphTarget, check_image};

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
/// mesh). Morph targets follow the skin, one target after another: position deltas (`float3`)
/// always, normal deltas (`float3`) and tangent deltas (`float4`, w = 0) only when some are not
/// zero. Vertex colors are not sent yet.
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
        return Err(AssetError::UnsupportedTopology(format!("{topology:?}")));
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

    let targets = morph_targets_to_wire(mesh, n, &mut buf)?;
    if !targets.is_empty() {
        flags.set_has_morph_targets(1);
        asset.morph_targets = w::MorphTargetList(targets);
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

/// Appends the morph targets of `mesh` (Bevy keeps them target after target, `n` vertices each)
/// to `buf` and describes them.
fn morph_targets_to_wire(
    mesh: &Mesh,
    n: usize,
    buf: &mut Vec<u8>,
) -> Result<Vec<w::MorphTarget>, AssetError> {
    if !mesh.try_has_morph_targets().map_err(mesh_access)? {
        return Ok(Vec::new());
    }
    let all = mesh.try_morph_targets().map_err(mesh_access)?;
    if all.is_empty() {
        return Ok(Vec::new());
    }
    if n == 0 || !all.len().is_multiple_of(n) {
        return Err(AssetError::AttributeLength {
            attribute: "morph_targets",
            found: all.len(),
            expected: n,
        });
    }
    let count = all.len() / n;
    if count > usize::from(u16::MAX) {
        return Err(too_large(
            "mesh",
            "morph target count",
            count,
            u16::MAX.into(),
        ));
    }
    let mut targets = Vec::with_capacity(count);
    for target in all.chunks(n) {
        let mut t = w::MorphTarget::default();
        let positions: Vec<[f32; 3]> = target.iter().map(|a| a.position.to_array()).collect();
        let offset = push_floats(buf, &positions)?;
        t.position = w::PositionAttribute::new(common(offset, 12), w::PositionFormat::Float3);
        t.flags.set_has_position(1);
        if target.iter().any(|a| a.normal != Vec3::ZERO) {
            let normals: Vec<[f32; 3]> = target.iter().map(|a| a.normal.to_array()).collect();
            let offset = push_floats(buf, &normals)?;
            t.normal = w::NormalAttribute::new(common(offset, 12), w::NormalFormat::Float3);
            t.flags.set_has_normal(1);
        }
        if target.iter().any(|a| a.tangent != Vec3::ZERO) {
            let tangents: Vec<[f32; 4]> = target
                .iter()
                .map(|a| a.tangent.extend(0.0).to_array())
                .collect();
            let offset = push_floats(buf, &tangents)?;
            t.tangent = w::TangentAttribute::new(common(offset, 16), w::TangentFormat::Float4);
            t.flags.set_has_tangent(1);
        }
        targets.push(t);
    }
    Ok(targets)
}

/// Builds a Bevy [`Mesh`] from a NOODLES2 [`w::MeshAsset`] and the whole content of the Buffer
/// asset its `view` refers to: [`decode_mesh`] (which validates everything, see there), then a
/// `TriangleList` mesh with `RenderAssetUsages::default()` and `ATTRIBUTE_POSITION`, plus
/// `ATTRIBUTE_NORMAL`, `ATTRIBUTE_TANGENT`, `ATTRIBUTE_UV_0` and `ATTRIBUTE_UV_1` when flagged,
/// and indices. Skinned meshes get `ATTRIBUTE_JOINT_INDEX` (`Uint16x4`) and
/// `ATTRIBUTE_JOINT_WEIGHT` (`Float32x4`) and Bevy's skinned-mesh bounds. Morph targets become
/// Bevy's (missing streams are zero deltas), rendered by Bevy's GPU morph path with the entity's
/// `MeshMorphWeights`; more than Bevy's `MAX_MORPH_WEIGHTS` (256) is an error. Bevy computes its
/// own bounds (`bb_min`/`bb_max` are not used).
///
/// Spec: `spec/core/assets/mesh.jaw` (`MeshAsset`), `spec/core/assets/buffer.jaw` (`BufferView`).
pub fn mesh_from_wire(asset: &w::MeshAsset, buffer: &[u8]) -> Result<Mesh, AssetError> {
    let DecodedMesh {
        positions,
        normals,
        tangents,
        uv0,
        uv1,
        skin,
        indices,
        morph_targets,
    } = decode_mesh(asset, buffer)?;
    let positions_len = positions.len();
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
    let skinned = skin.is_some();
    if let Some((joints, weights)) = skin {
        mesh.try_insert_attribute(
            Mesh::ATTRIBUTE_JOINT_INDEX,
            VertexAttributeValues::Uint16x4(joints),
        )
        .map_err(mesh_access)?;
        mesh.try_insert_attribute(Mesh::ATTRIBUTE_JOINT_WEIGHT, weights)
            .map_err(mesh_access)?;
    }
    if let Some(i) = indices {
        let i = match i {
            MeshIndices::U16(v) => Indices::U16(v),
            MeshIndices::U32(v) => Indices::U32(v),
        };
        mesh.try_insert_indices(i).map_err(mesh_access)?;
    }
    if !morph_targets.is_empty() {
        mesh.try_set_morph_targets(morph_targets_from_wire(morph_targets, positions_len)?)
            .map_err(mesh_access)?;
    }
    if skinned {
        // Per-joint bounds, for `DynamicSkinnedMeshBounds`; a mesh whose weights are all zero
        // has none (and is culled by its bind-pose bounds).
        let _ = mesh.generate_skinned_mesh_bounds();
    }
    Ok(mesh)
}

/// Bevy's morph target layout (target after target, `n` vertices each) from decoded targets.
fn morph_targets_from_wire(
    targets: Vec<DecodedMorphTarget>,
    n: usize,
) -> Result<Vec<MorphAttributes>, AssetError> {
    if targets.len() > MAX_MORPH_WEIGHTS {
        return Err(AssetError::TooLarge {
            asset: "mesh",
            what: "morph target count (Bevy's MAX_MORPH_WEIGHTS)",
            value: targets.len() as u64,
            limit: MAX_MORPH_WEIGHTS as u64,
        });
    }
    let mut out = Vec::with_capacity(targets.len().saturating_mul(n));
    for t in targets {
        // `decode_mesh` gives every stream one value per vertex.
        let at = |s: &Option<Vec<[f32; 3]>>, v: usize| {
            s.as_ref()
                .and_then(|s| s.get(v))
                .map_or(Vec3::ZERO, |x| Vec3::from(*x))
        };
        out.extend((0..n).map(|v| {
            MorphAttributes::new(at(&t.positions, v), at(&t.normals, v), at(&t.tangents, v))
        }));
    }
    Ok(out)
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
        other => return Err(AssetError::UnsupportedTextureFormat(format!("{other:?}"))),
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
/// [`check_image`] reads the container and the dimensions from the header first (refusing
/// unknown formats and anything above [`MAX_IMAGE_SIDE`] per side or [`MAX_IMAGE_PIXELS`] in
/// total); a format whose Bevy feature is off is [`AssetError::ImageFormatNotEnabled`]; then
/// Bevy's `Image::from_buffer` decodes.
///
/// Spec: `spec/core/assets/image.jaw` (`ImageAsset`, `ImageFlags`).
pub fn image_from_wire_with(
    encoded: &[u8],
    flags: w::ImageFlags,
    supported: CompressedImageFormats,
) -> Result<Image, AssetError> {
    let header = check_image(encoded)?;
    let name = header.container.name();
    let format = ImageFormat::from_mime_type(header.container.mime())
        .ok_or(AssetError::ImageFormatNotEnabled(name))?;
    let decode = |reason: String| AssetError::Decode {
        format: name,
        reason,
    };
    let is_srgb = flags.semantic() == w::ImageSemantic::SRGB;
    let image = Image::from_buffer(
        encoded,
        ImageType::Format(format),
        supported,
        is_srgb,
        ImageSampler::Descriptor(flags_to_sampler(flags)),
        RenderAssetUsages::default(),
    )
    .map_err(|e| decode(e.to_string()))?;
    check_pixel_data(&image).map_err(decode)?;
    Ok(image)
}

/// The pixel data of a decoded image is exactly what its size, format, layers and mip levels
/// need (a KTX2 file can say one size in its header and carry another in its levels; the GPU
/// upload would fail on it).
fn check_pixel_data(image: &Image) -> Result<(), String> {
    let desc = &image.texture_descriptor;
    let format = desc.format;
    let (bw, bh) = format.block_dimensions();
    let Some(block) = format.block_copy_size(None) else {
        return Err(format!(
            "texture format {format:?} has no single block size"
        ));
    };
    let layers = u64::from(desc.size.depth_or_array_layers.max(1));
    let volume = desc.dimension == TextureDimension::D3;
    let mut expected = 0u64;
    for level in 0..desc.mip_level_count.max(1) {
        let w = u64::from((desc.size.width >> level).max(1));
        let h = u64::from((desc.size.height >> level).max(1));
        // A volume's depth shrinks with its mips; array layers do not.
        let layers = if volume {
            (layers >> level).max(1)
        } else {
            layers
        };
        let blocks = w.div_ceil(u64::from(bw)) * h.div_ceil(u64::from(bh));
        expected = expected.saturating_add(blocks * u64::from(block) * layers);
    }
    let got = image.data.as_ref().map_or(0, |d| d.len() as u64);
    if got != expected {
        return Err(format!(
            "the image says {}x{} {format:?} with {layers} layers and {} mip levels, which is {expected} bytes, but it holds {got}",
            desc.size.width, desc.size.height, desc.mip_level_count
        ));
    }
    Ok(())
}

// Materials: `StandardMaterial` lives in Bevy's renderer, so its conversions need `render`.
#[cfg(feature = "render")]
mod material;
#[cfg(feature = "render")]
pub use material::{MAX_PARALLAX_LAYERS, material_from_wire, material_to_wire};
