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
    /// Volume: thickness and attenuation, when flagged.
    pub thickness: Option<DecodedThickness>,
    /// Transmission, when flagged.
    pub transmission: Option<DecodedTransmission>,
    /// Clearcoat, when flagged.
    pub clearcoat: Option<DecodedClearcoat>,
    /// Anisotropy, when flagged.
    pub anisotropy: Option<DecodedAnisotropy>,
    /// Parallax (height) mapping, when flagged.
    pub parallax: Option<DecodedParallax>,
    /// The transform of UV channel 0, when flagged: a column-major 2×2 matrix (`[m00, m10, m01,
    /// m11]`, as the wire's `Mat22`) then the translation.
    pub uv0_transform: Option<([f32; 4], [f32; 2])>,
    /// The transform of UV channel 1, likewise.
    pub uv1_transform: Option<([f32; 4], [f32; 2])>,
}

/// `Thickness` of an extended material.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodedThickness {
    /// Thickness of the volume, in the mesh's units (≥ 0).
    pub thickness: f32,
    /// Distance light travels before it is attenuated to `attenuation_color` (> 0; infinity
    /// means none).
    pub attenuation_distance: f32,
    /// The color white light turns into at `attenuation_distance`, sRGB8 with alpha.
    pub attenuation_color: [u8; 4],
    /// Thickness texture (`has_thickness_texture`).
    pub map: Option<TextureRef>,
}

/// `Transmission` of an extended material.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodedTransmission {
    /// Diffuse transmission in `[0, 1]`.
    pub diffuse: f32,
    /// Specular transmission in `[0, 1]`.
    pub specular: f32,
    /// Diffuse transmission texture.
    pub diffuse_map: Option<TextureRef>,
    /// Specular transmission texture.
    pub specular_map: Option<TextureRef>,
}

/// `Clearcoat` of an extended material (its textures share one UV channel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodedClearcoat {
    /// Clearcoat amount in `[0, 1]`.
    pub amount: f32,
    /// Clearcoat perceptual roughness in `[0, 1]`.
    pub roughness: f32,
    /// Amount texture.
    pub amount_map: Option<TextureRef>,
    /// Roughness texture.
    pub roughness_map: Option<TextureRef>,
    /// Normal map of the coat.
    pub normal_map: Option<TextureRef>,
}

/// `Anisotropy` of an extended material.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodedAnisotropy {
    /// Strength in `[0, 1]`.
    pub strength: f32,
    /// Rotation in radians, `[0, 2π]` (the wire's `NormalizedUShort` over a full turn).
    pub rotation: f32,
    /// Anisotropy texture.
    pub map: Option<TextureRef>,
}

/// `Parallax` of an extended material.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodedParallax {
    /// Depth bias.
    pub depth_bias: f32,
    /// Depth scale (how deep the height map reaches, in UV units).
    pub depth_scale: f32,
    /// 0 (lowest) to 255 (the client's maximum) layer quality.
    pub layer_quality: u8,
    /// The depth (height) map (`has_parallax_depth_map`).
    pub depth_map: Option<TextureRef>,
}

fn finite(field: &'static str, value: f32) -> Result<f32, AssetError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(AssetError::NotFinite { field, value })
    }
}

fn affine(field: &'static str, a: &w::Affine2) -> Result<([f32; 4], [f32; 2]), AssetError> {
    let m = a.rotation_scale.map(|v| v.get());
    for v in m
        .into_iter()
        .chain([a.translate_x.get(), a.translate_y.get()])
    {
        finite(field, v)?;
    }
    Ok((m, [a.translate_x.get(), a.translate_y.get()]))
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
        thickness: None,
        transmission: None,
        clearcoat: None,
        anisotropy: None,
        parallax: None,
        uv0_transform: None,
        uv1_transform: None,
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
        let f = ext.flags;
        if f.has_thickness() != 0 {
            let t = ext.thickness;
            let c = t.attenuation_color;
            let distance = t.attenuation_distance.get();
            if distance.is_nan() {
                return Err(AssetError::NotFinite {
                    field: "thickness.attenuation_distance",
                    value: distance,
                });
            }
            m.thickness = Some(DecodedThickness {
                thickness: finite("thickness.thickness", t.thickness.get())?.max(0.0),
                // +infinity is glTF's "no attenuation"; anything not above 0 is treated so too.
                attenuation_distance: if distance > 0.0 {
                    distance
                } else {
                    f32::INFINITY
                },
                attenuation_color: [c.r, c.g, c.b, c.a],
                map: map(f.has_thickness_texture(), "thickness.texture", t.texture)?,
            });
        }
        if f.has_transmission() != 0 {
            let t = ext.transmission;
            m.transmission = Some(DecodedTransmission {
                diffuse: from_unorm16(t.diffuse),
                specular: from_unorm16(t.specular),
                diffuse_map: map(
                    f.has_transmission_diffuse_texture(),
                    "transmission.diffuse_map",
                    t.diffuse_map,
                )?,
                specular_map: map(
                    f.has_transmission_specular_texture(),
                    "transmission.specular_map",
                    t.specular_map,
                )?,
            });
        }
        if f.has_clearcoat() != 0 {
            let c = ext.clearcoat;
            let p = c.pack;
            let channel = p.channel();
            let coat_map = |has: u8, field: &'static str, index: u8| {
                map(
                    has,
                    field,
                    w::TextureReference::default()
                        .with_channel(channel)
                        .with_image_id(index),
                )
            };
            // Table ids are 4 bits in a `TextureReference`; the pack's amount index has 5.
            let amount_index = p.amount_map();
            if p.has_amount_map() != 0 && usize::from(amount_index) >= table.len() {
                return Err(AssetError::ImageIndexOutOfRange {
                    field: "clearcoat.pack.amount_map",
                    index: amount_index,
                    table_len: table.len(),
                });
            }
            m.clearcoat = Some(DecodedClearcoat {
                amount: from_unorm16(c.amount),
                roughness: from_unorm16(c.roughness),
                amount_map: coat_map(
                    p.has_amount_map(),
                    "clearcoat.pack.amount_map",
                    amount_index,
                )?,
                roughness_map: coat_map(
                    p.has_roughness_map(),
                    "clearcoat.pack.roughness_map",
                    p.roughness_map(),
                )?,
                normal_map: coat_map(
                    p.has_normal_map(),
                    "clearcoat.pack.normal_map",
                    p.normal_map(),
                )?,
            });
        }
        if f.has_anisotropy() != 0 {
            let a = ext.anisotropy;
            m.anisotropy = Some(DecodedAnisotropy {
                strength: from_unorm16(a.strength),
                rotation: from_unorm16(a.rotation) * std::f32::consts::TAU,
                map: map(f.has_anisotropy_map(), "anisotropy.texture", a.texture)?,
            });
        }
        if f.has_parallax() != 0 {
            let p = ext.parallax;
            m.parallax = Some(DecodedParallax {
                depth_bias: finite("parallax.depth_bias", p.depth_bias.get())?,
                depth_scale: finite("parallax.depth_scale", p.depth_scale.get())?,
                layer_quality: p.layer_quality,
                depth_map: map(
                    f.has_parallax_depth_map(),
                    "parallax.depth_map",
                    p.depth_map,
                )?,
            });
        }
        if f.has_uv0_transform() != 0 {
            m.uv0_transform = Some(affine("uv0_transform", &ext.uv0_transform)?);
        }
        if f.has_uv1_transform() != 0 {
            m.uv1_transform = Some(affine("uv1_transform", &ext.uv1_transform)?);
        }
    }
    Ok(m)
}
