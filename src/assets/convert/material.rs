//! `StandardMaterial` ↔ `PBRMaterialAsset` (feature `render`: Bevy's PBR material lives in its
//! renderer).

use bevy::asset::Handle;
use bevy::color::{Color, ColorToPacked, LinearRgba, Srgba};
use bevy::material::AlphaMode;
use bevy::mesh::UvChannel;
use bevy::pbr::StandardMaterial;
use wgpu_types::Face;

use super::*;
#[cfg(test)]
use noodles2::assets::ior_from_wire;
use noodles2::assets::{TextureRef, decode_material};

/// `[0, 1]` float to `NormalizedUShort` (`round(clamp(v) * 65535)`, NaN becomes 0).
fn unorm16(v: f32) -> w::NormalizedUShort {
    w::NormalizedUShort::new((v.clamp(0.0, 1.0) * 65535.0).round() as u16)
}

/// IOR to the wire's u16: `((ior - 1) / 4) * 65535`, clamped to the representable `[1, 5]`.
fn ior_to_wire(ior: f32) -> u16 {
    (((ior - 1.0) / 4.0).clamp(0.0, 1.0) * 65535.0).round() as u16
}

fn channel_to_wire(c: &UvChannel) -> u8 {
    match c {
        UvChannel::Uv0 => 0,
        UvChannel::Uv1 => 1,
    }
}

/// Collects a material's images into its table (in order of first use, deduplicated by asset
/// id) and makes texture references.
struct TableBuilder<'a> {
    table: Vec<w::ImageAssetID>,
    image_slot: &'a mut dyn FnMut(&Handle<Image>) -> Option<u64>,
}

impl TableBuilder<'_> {
    fn reference(
        &mut self,
        texture: Option<&Handle<Image>>,
        channel: &UvChannel,
    ) -> Option<w::TextureReference> {
        let id = (self.image_slot)(texture?)?;
        let slot = match self.table.iter().position(|e| e.id.id.get() == id) {
            Some(slot) => slot,
            None if self.table.len() < MAX_MATERIAL_IMAGES => {
                self.table.push(w::ImageAssetID::new(w::AssetID::new(id)));
                self.table.len() - 1
            }
            None => return None,
        };
        Some(
            w::TextureReference::default()
                .with_channel(channel_to_wire(channel))
                .with_image_id(slot as u8),
        )
    }
}

/// A Bevy [`StandardMaterial`] as a NOODLES2 [`w::PBRMaterialAsset`].
///
/// - `base_color` → `SRGBA8` (sRGB, `round(clamp(c) * 255)`, so ±1/510 per channel);
///   `perceptual_roughness`, `metallic` → `NormalizedUShort` (`round(clamp(v) * 65535)`, error
///   ≤ 1/131070); `ior` → `((ior - 1) / 4) * 65535`, clamped to `[1, 5]`.
/// - `alpha_mode`: `Opaque`, `Mask(_)`, `Blend`, `Premultiplied` map directly (the mask cutoff
///   has no wire field and is lost); the others go to the nearest mode: `AlphaToCoverage` →
///   `Mask`, `Add` → `Premultiplied` (additive is premultiplied with alpha 0), `Multiply` →
///   `Blend`.
/// - `cull_mode` `Some(Back)` / `Some(Front)` / `None` → `Back` / `Front` / `None`;
///   `double_sided`, `unlit` copied; `fog_disabled = !fog_enabled`.
/// - `base_color_texture` → `color_map`, `metallic_roughness_texture` → `orm_map`,
///   `normal_map_texture` → `normal_map`, each with its UV channel. The image table is filled in
///   order of first use with the ids `image_slot` returns (the same id is stored once); a texture
///   for which `image_slot` returns `None` is left out (its `has_*` flag stays clear).
/// - `emissive` (linear RGB, alpha dropped) and `emissive_exposure_weight` (`NormalizedUShort`)
///   go in an `ExtendedMaterial` with `has_emission` when the color is not black or there is an
///   `emissive_texture` (then also `has_emission_map` and `emission.map`); otherwise the
///   extension is `Void`.
/// - Not sent yet: occlusion (apart from what the ORM texture holds), transmission, thickness,
///   clearcoat, anisotropy, parallax, UV transform, reflectance/specular, depth bias.
///
/// Spec: `spec/core/assets/pbr_material.jaw` (`PBRMaterialAsset`).
pub fn material_to_wire(
    m: &StandardMaterial,
    image_slot: &mut dyn FnMut(&Handle<Image>) -> Option<u64>,
) -> w::PBRMaterialAsset {
    let mut tables = TableBuilder {
        table: Vec::new(),
        image_slot,
    };
    let color_map = tables.reference(m.base_color_texture.as_ref(), &m.base_color_channel);
    let orm_map = tables.reference(
        m.metallic_roughness_texture.as_ref(),
        &m.metallic_roughness_channel,
    );
    let normal_map = tables.reference(m.normal_map_texture.as_ref(), &m.normal_map_channel);
    let emission_map = tables.reference(m.emissive_texture.as_ref(), &m.emissive_channel);

    let culling = match m.cull_mode {
        Some(Face::Back) => w::FaceCulling::Back,
        Some(Face::Front) => w::FaceCulling::Front,
        None => w::FaceCulling::None,
    };
    let alpha = match m.alpha_mode {
        AlphaMode::Opaque => w::AlphaMode::Opaque,
        AlphaMode::Mask(_) | AlphaMode::AlphaToCoverage => w::AlphaMode::Mask,
        AlphaMode::Blend | AlphaMode::Multiply => w::AlphaMode::Blend,
        AlphaMode::Premultiplied | AlphaMode::Add => w::AlphaMode::Premultiplied,
    };
    let flags = w::MatFlags::default()
        .with_double_sided(u8::from(m.double_sided))
        .with_unlit(u8::from(m.unlit))
        .with_fog_disabled(u8::from(!m.fog_enabled))
        .with_culling(culling)
        .with_alpha(alpha)
        .with_has_color_texture(u8::from(color_map.is_some()))
        .with_has_orm_texture(u8::from(orm_map.is_some()))
        .with_has_normal_map(u8::from(normal_map.is_some()));
    let [r, g, b, a] = m.base_color.to_srgba().to_u8_array();
    let base = w::PBRMaterialBase::new(
        flags,
        w::SRGBA8::new(r, g, b, a),
        unorm16(m.perceptual_roughness),
        unorm16(m.metallic),
        ior_to_wire(m.ior),
        color_map.unwrap_or_default(),
        orm_map.unwrap_or_default(),
        normal_map.unwrap_or_default(),
    );

    let e = m.emissive;
    let emits = e.red != 0.0 || e.green != 0.0 || e.blue != 0.0;
    let extension = if emits || emission_map.is_some() {
        let ext_flags = w::ExtendedMaterialFlags::default()
            .with_has_emission(1)
            .with_has_emission_map(u8::from(emission_map.is_some()));
        w::MaybePBRMaterialExtended::ExtendedMaterial(w::ExtendedMaterial {
            flags: ext_flags,
            emission: w::Emission::new(
                w::LinearRGB::new(e.red, e.green, e.blue),
                unorm16(m.emissive_exposure_weight),
                emission_map.unwrap_or_default(),
            ),
            ..Default::default()
        })
    } else {
        w::MaybePBRMaterialExtended::Void
    };

    w::PBRMaterialAsset {
        base,
        extension,
        table: w::MaterialImageTable(tables.table),
    }
}

/// A decoded texture as a Bevy handle and UV channel.
fn texture_from_wire(
    field: &'static str,
    texture: TextureRef,
    image: &mut dyn FnMut(u64) -> Option<Handle<Image>>,
) -> Result<(Handle<Image>, UvChannel), AssetError> {
    let channel = if texture.channel == 0 {
        UvChannel::Uv0
    } else {
        UvChannel::Uv1
    };
    let image_id = texture.image_id;
    let handle = image(image_id).ok_or(AssetError::UnknownImage { field, image_id })?;
    Ok((handle, channel))
}

/// A NOODLES2 [`w::PBRMaterialAsset`] as a Bevy [`StandardMaterial`]: the inverse of
/// [`material_to_wire`], starting from `StandardMaterial::default()`.
///
/// Quantization: `base_color` comes back as `Srgba::rgba_u8` (exact for the u8 values sent),
/// roughness and metallic as `value / 65535` (within 1/131070 of what was sent), ior as
/// `1 + x / 65535 * 4` (within 2/65535). A wire `Mask` becomes `AlphaMode::Mask(0.5)` (the glTF
/// default cutoff). `has_emission` sets `emissive` (alpha 1) and `emissive_exposure_weight`; a
/// `has_emission_map` without `has_emission` uses a white emissive so the texture shows. Other
/// extended features are ignored for now.
///
/// `image` maps an Image asset id from the table to a handle; `None` is
/// [`AssetError::UnknownImage`]. A table longer than 16 entries, a texture index at or past the
/// table's end, or a UV channel other than 0/1 is an error naming the field.
///
/// Spec: `spec/core/assets/pbr_material.jaw` (`PBRMaterialAsset`), `spec/core/extension.md`.
pub fn material_from_wire(
    asset: &w::PBRMaterialAsset,
    image: &mut dyn FnMut(u64) -> Option<Handle<Image>>,
) -> Result<StandardMaterial, AssetError> {
    let d = decode_material(asset)?;
    let mut m = StandardMaterial::default();
    let [r, g, b, a] = d.base_color;
    m.base_color = Color::Srgba(Srgba::rgba_u8(r, g, b, a));
    m.perceptual_roughness = d.roughness;
    m.metallic = d.metallic;
    m.ior = d.ior;
    m.double_sided = d.double_sided;
    m.unlit = d.unlit;
    m.fog_enabled = d.fog;
    m.cull_mode = match d.culling {
        w::FaceCulling::Back => Some(Face::Back),
        w::FaceCulling::Front => Some(Face::Front),
        w::FaceCulling::None => None,
    };
    m.alpha_mode = match d.alpha {
        w::AlphaMode::Opaque => AlphaMode::Opaque,
        w::AlphaMode::Mask => AlphaMode::Mask(0.5),
        w::AlphaMode::Blend => AlphaMode::Blend,
        w::AlphaMode::Premultiplied => AlphaMode::Premultiplied,
    };
    if let Some(t) = d.color_map {
        (m.base_color_texture, m.base_color_channel) =
            some(texture_from_wire("color_map", t, image)?);
    }
    if let Some(t) = d.orm_map {
        (m.metallic_roughness_texture, m.metallic_roughness_channel) =
            some(texture_from_wire("orm_map", t, image)?);
    }
    if let Some(t) = d.normal_map {
        (m.normal_map_texture, m.normal_map_channel) =
            some(texture_from_wire("normal_map", t, image)?);
    }
    if let Some(([r, g, b], exposure)) = d.emission {
        m.emissive = LinearRgba::rgb(r, g, b);
        m.emissive_exposure_weight = exposure;
    }
    if let Some(t) = d.emission_map {
        (m.emissive_texture, m.emissive_channel) =
            some(texture_from_wire("emission.map", t, image)?);
        if d.emission.is_none() {
            m.emissive = LinearRgba::WHITE;
        }
    }
    Ok(m)
}

fn some<T, U>((t, u): (T, U)) -> (Option<T>, U) {
    (Some(t), u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ior_formula_matches_spec() {
        assert_eq!(ior_to_wire(1.0), 0);
        assert_eq!(ior_to_wire(5.0), 65535);
        assert_eq!(ior_to_wire(9.0), 65535);
        assert_eq!(ior_to_wire(0.5), 0);
        assert_eq!(ior_to_wire(f32::NAN), 0);
        assert!((ior_from_wire(ior_to_wire(1.5)) - 1.5).abs() <= 2.0 / 65535.0);
    }

    #[test]
    fn unorm16_is_clamped_and_rounded() {
        assert_eq!(unorm16(-1.0).value.get(), 0);
        assert_eq!(unorm16(2.0).value.get(), 65535);
        assert_eq!(unorm16(f32::NAN).value.get(), 0);
        assert_eq!(unorm16(0.5).value.get(), 32768);
    }
}
