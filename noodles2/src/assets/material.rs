//! `PBRMaterialAsset` from the wire (`spec/core/assets/pbr_material.jaw`).

use super::{AssetError, MAX_MATERIAL_IMAGES, unknown};
use crate::codec as w;
use crate::codec::WireEnum;

/// A `NormalizedUShort` as a float in `[0, 1]`.
pub fn from_unorm16(v: w::NormalizedUShort) -> f32 {
    f32::from(v.value.get()) / 65535.0
}

/// The wire's u16 index of refraction as a float: `1 + x / 65535 * 4`, in `[1, 5]`.
pub fn ior_from_wire(x: u16) -> f32 {
    1.0 + f32::from(x) / 65535.0 * 4.0
}

/// A texture of a material: which Image asset (resolved through the material's image table) and
/// which UV channel (0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextureRef {
    /// The Image asset's id.
    pub image_id: u64,
    /// The UV channel, 0 or 1.
    pub channel: u8,
}

/// A material read from the wire and checked: known enum values, every texture resolved through
/// an image table of at most [`MAX_MATERIAL_IMAGES`] entries, UV channels 0 or 1.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMaterial {
    /// Base color as sRGB8 with alpha.
    pub base_color: [u8; 4],
    /// Perceptual roughness in `[0, 1]`.
    pub roughness: f32,
    /// Metallic in `[0, 1]`.
    pub metallic: f32,
    /// Index of refraction in `[1, 5]`.
    pub ior: f32,
    /// Both faces are lit.
    pub double_sided: bool,
    /// Not lit at all.
    pub unlit: bool,
    /// Affected by fog.
    pub fog: bool,
    /// Which faces are culled.
    pub culling: w::FaceCulling,
    /// How alpha is used.
    pub alpha: w::AlphaMode,
    /// Base color texture.
    pub color_map: Option<TextureRef>,
    /// Occlusion-roughness-metallic texture.
    pub orm_map: Option<TextureRef>,
    /// Normal map.
    pub normal_map: Option<TextureRef>,
    /// Emitted linear color and its exposure weight in `[0, 1]`, when flagged.
    pub emission: Option<([f32; 3], f32)>,
    /// Emission texture.
    pub emission_map: Option<TextureRef>,
}

/// Resolves one texture reference through the material's image table.
fn texture(
    field: &'static str,
    reference: w::TextureReference,
    table: &[w::ImageAssetID],
) -> Result<TextureRef, AssetError> {
    let channel = reference.channel();
    if channel > 1 {
        return Err(AssetError::BadUvChannel { field, channel });
    }
    let index = reference.image_id();
    let entry = table
        .get(usize::from(index))
        .ok_or(AssetError::ImageIndexOutOfRange {
            field,
            index,
            table_len: table.len(),
        })?;
    Ok(TextureRef {
        image_id: entry.id.id.get(),
        channel,
    })
}

/// Reads a NOODLES2 [`w::PBRMaterialAsset`]. A table longer than [`MAX_MATERIAL_IMAGES`]
/// entries, a texture index at or past the table's end, a UV channel other than 0/1, or an
/// undefined culling mode is an error naming the field. Whether the images exist is the
/// caller's question ([`AssetError::UnknownImage`]).
pub fn decode_material(asset: &w::PBRMaterialAsset) -> Result<DecodedMaterial, AssetError> {
    let table = asset.table.0.as_slice();
    if table.len() > MAX_MATERIAL_IMAGES {
        return Err(AssetError::TableTooLong(table.len()));
    }
    let base = asset.base;
    let flags = base.flags;
    let c = base.base_color;
    let culling = ((flags.raw() >> 3) & 0x3) as u8;
    let culling = w::FaceCulling::from_repr(culling)
        .ok_or_else(|| unknown("material", "base.flags.culling", culling))?;
    let map = |flag: u8, field, reference| {
        (flag != 0)
            .then(|| texture(field, reference, table))
            .transpose()
    };
    let mut m = DecodedMaterial {
        base_color: [c.r, c.g, c.b, c.a],
        roughness: from_unorm16(base.roughness),
        metallic: from_unorm16(base.metallic),
        ior: ior_from_wire(base.ior.get()),
        double_sided: flags.double_sided() != 0,
        unlit: flags.unlit() != 0,
        fog: flags.fog_disabled() == 0,
        culling,
        alpha: flags.alpha(),
        color_map: map(flags.has_color_texture(), "color_map", base.color_map)?,
        orm_map: map(flags.has_orm_texture(), "orm_map", base.orm_map)?,
        normal_map: map(flags.has_normal_map(), "normal_map", base.normal_map)?,
        emission: None,
        emission_map: None,
    };
    if let w::MaybePBRMaterialExtended::ExtendedMaterial(ext) = &asset.extension {
        let emission = ext.emission;
        if ext.flags.has_emission() != 0 {
            let c = emission.color;
            m.emission = Some((
                [c.r.get(), c.g.get(), c.b.get()],
                from_unorm16(emission.exposure),
            ));
        }
        m.emission_map = map(ext.flags.has_emission_map(), "emission.map", emission.map)?;
    }
    Ok(m)
}
