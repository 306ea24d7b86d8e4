//! `StandardMaterial` ↔ `PBRMaterialAsset` (feature `render`: Bevy's PBR material lives in its
//! renderer).

use bevy::asset::Handle;
use std::f32::consts::TAU;

use bevy::color::{Color, ColorToPacked, LinearRgba, Srgba};
use bevy::material::AlphaMode;
use bevy::math::{Affine2, Mat2, Vec2};
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
/// - `ExtendedMaterial` (sent when any of it differs from Bevy's defaults, `Void` otherwise):
///   - emission: `emissive` (linear RGB, so strengths above 1 survive; alpha dropped),
///     `emissive_exposure_weight`, `emissive_texture`;
///   - thickness: `thickness`, `attenuation_distance` (infinity, Bevy's default, is "none"),
///     `attenuation_color` (sRGBA8), `thickness_texture`;
///   - transmission: `diffuse_transmission`, `specular_transmission` and their textures;
///   - clearcoat: `clearcoat`, `clearcoat_perceptual_roughness`, and the amount, roughness and
///     normal textures (the wire has one UV channel for the three: `clearcoat_channel`'s);
///   - anisotropy: `anisotropy_strength`, `anisotropy_rotation` (radians, sent as a fraction of
///     a full turn), `anisotropy_texture`;
///   - parallax: `depth_map` (UV 0), `parallax_depth_scale`, and `max_parallax_layer_count` as
///     the 0–255 quality (255 = [`MAX_PARALLAX_LAYERS`]); the wire's `depth_bias` is 0;
///   - `uv_transform` (when not the identity) as both `uv0_transform` and `uv1_transform` (Bevy
///     transforms both channels with it).
/// - Not sent: a separate `occlusion_texture` (the other side reads occlusion from the ORM
///   texture's red channel), reflectance/specular and their textures, `depth_bias`,
///   `parallax_mapping_method`, lightmap exposure.
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
    let extension = extension_to_wire(m, &mut tables, emission_map);

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

    w::PBRMaterialAsset {
        base,
        extension,
        table: w::MaterialImageTable(tables.table),
    }
}

/// `[0, 1]` from a float of the wire's `NormalizedUShort` that is a fraction of a full turn.
fn turn_to_unorm16(radians: f32) -> w::NormalizedUShort {
    unorm16(radians.rem_euclid(TAU) / TAU)
}

/// Bevy's parallax layer count (1 to [`MAX_PARALLAX_LAYERS`]) as the wire's 0–255 quality.
fn layers_to_quality(layers: f32) -> u8 {
    ((layers - 1.0) / (MAX_PARALLAX_LAYERS - 1.0) * 255.0)
        .round()
        .clamp(0.0, 255.0) as u8
}

/// The wire's 0–255 parallax quality as Bevy's layer count (1 to [`MAX_PARALLAX_LAYERS`]).
fn quality_to_layers(quality: u8) -> f32 {
    1.0 + f32::from(quality) / 255.0 * (MAX_PARALLAX_LAYERS - 1.0)
}

/// Parallax layers at the wire's highest quality (255).
pub const MAX_PARALLAX_LAYERS: f32 = 64.0;

fn affine_to_wire(a: &Affine2) -> w::Affine2 {
    let m = a.matrix2;
    w::Affine2::new(
        [m.x_axis.x, m.x_axis.y, m.y_axis.x, m.y_axis.y].map(Into::into),
        a.translation.x,
        a.translation.y,
    )
}

fn affine_from_wire((m, t): ([f32; 4], [f32; 2])) -> Affine2 {
    Affine2::from_mat2_translation(Mat2::from_cols_array(&m), Vec2::from(t))
}

/// The `ExtendedMaterial` of `m`, or `Void` when it has nothing beyond the base.
fn extension_to_wire(
    m: &StandardMaterial,
    tables: &mut TableBuilder<'_>,
    emission_map: Option<w::TextureReference>,
) -> w::MaybePBRMaterialExtended {
    let mut x = w::ExtendedMaterial::default();
    let mut f = w::ExtendedMaterialFlags::default();
    let e = m.emissive;
    if e.red != 0.0 || e.green != 0.0 || e.blue != 0.0 || emission_map.is_some() {
        f = f
            .with_has_emission(1)
            .with_has_emission_map(u8::from(emission_map.is_some()));
        x.emission = w::Emission::new(
            w::LinearRGB::new(e.red, e.green, e.blue),
            unorm16(m.emissive_exposure_weight),
            emission_map.unwrap_or_default(),
        );
    }
    let thickness_map = tables.reference(m.thickness_texture.as_ref(), &m.thickness_channel);
    if m.thickness > 0.0 || m.attenuation_distance.is_finite() || thickness_map.is_some() {
        let [r, g, b, a] = m.attenuation_color.to_srgba().to_u8_array();
        f = f
            .with_has_thickness(1)
            .with_has_thickness_texture(u8::from(thickness_map.is_some()));
        x.thickness = w::Thickness::new(
            m.thickness,
            m.attenuation_distance,
            w::SRGBA8::new(r, g, b, a),
            thickness_map.unwrap_or_default(),
        );
    }
    let diffuse_map = tables.reference(
        m.diffuse_transmission_texture.as_ref(),
        &m.diffuse_transmission_channel,
    );
    let specular_map = tables.reference(
        m.specular_transmission_texture.as_ref(),
        &m.specular_transmission_channel,
    );
    if m.diffuse_transmission > 0.0
        || m.specular_transmission > 0.0
        || diffuse_map.is_some()
        || specular_map.is_some()
    {
        f = f
            .with_has_transmission(1)
            .with_has_transmission_diffuse_texture(u8::from(diffuse_map.is_some()))
            .with_has_transmission_specular_texture(u8::from(specular_map.is_some()));
        x.transmission = w::Transmission::new(
            unorm16(m.diffuse_transmission),
            unorm16(m.specular_transmission),
            diffuse_map.unwrap_or_default(),
            specular_map.unwrap_or_default(),
        );
    }
    // The coat's textures share one UV channel on the wire: the amount texture's.
    let coat_channel = &m.clearcoat_channel;
    let amount = tables.reference(m.clearcoat_texture.as_ref(), coat_channel);
    let roughness = tables.reference(m.clearcoat_roughness_texture.as_ref(), coat_channel);
    let normal = tables.reference(m.clearcoat_normal_texture.as_ref(), coat_channel);
    if m.clearcoat > 0.0 || amount.is_some() || roughness.is_some() || normal.is_some() {
        let index = |t: Option<w::TextureReference>| t.map_or(0, |t| t.image_id());
        let pack = w::ClearcoatImagePack::default()
            .with_has_amount_map(u8::from(amount.is_some()))
            .with_has_roughness_map(u8::from(roughness.is_some()))
            .with_has_normal_map(u8::from(normal.is_some()))
            .with_channel(channel_to_wire(coat_channel))
            .with_amount_map(index(amount))
            .with_roughness_map(index(roughness))
            .with_normal_map(index(normal));
        f = f.with_has_clearcoat(1);
        x.clearcoat = w::Clearcoat::new(
            unorm16(m.clearcoat),
            unorm16(m.clearcoat_perceptual_roughness),
            pack,
        );
    }
    let anisotropy_map = tables.reference(m.anisotropy_texture.as_ref(), &m.anisotropy_channel);
    if m.anisotropy_strength > 0.0 || anisotropy_map.is_some() {
        f = f
            .with_has_anisotropy(1)
            .with_has_anisotropy_map(u8::from(anisotropy_map.is_some()));
        x.anisotropy = w::Anisotropy::new(
            unorm16(m.anisotropy_strength),
            turn_to_unorm16(m.anisotropy_rotation),
            anisotropy_map.unwrap_or_default(),
        );
    }
    let depth_map = tables.reference(m.depth_map.as_ref(), &UvChannel::Uv0);
    if let Some(depth_map) = depth_map {
        f = f.with_has_parallax(1).with_has_parallax_depth_map(1);
        x.parallax = w::Parallax::new(
            0.0,
            m.parallax_depth_scale,
            layers_to_quality(m.max_parallax_layer_count),
            depth_map,
        );
    }
    if m.uv_transform != Affine2::IDENTITY {
        // Bevy transforms both UV channels with the one matrix.
        f = f.with_has_uv0_transform(1).with_has_uv1_transform(1);
        x.uv0_transform = affine_to_wire(&m.uv_transform);
        x.uv1_transform = x.uv0_transform;
    }
    if f == w::ExtendedMaterialFlags::default() {
        return w::MaybePBRMaterialExtended::Void;
    }
    x.flags = f;
    w::MaybePBRMaterialExtended::ExtendedMaterial(x)
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
/// `has_emission_map` without `has_emission` uses a white emissive so the texture shows. The ORM
/// texture is also the `occlusion_texture` (its red channel). Thickness, transmission, clearcoat,
/// anisotropy, parallax and the UV transform map back onto the fields [`material_to_wire`]
/// lists (Bevy has one UV transform: `uv0_transform`, else `uv1_transform`; its depth map uses
/// UV 0; the parallax `depth_bias` has no Bevy field).
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
    // The ORM texture's red channel is the occlusion (glTF's packed convention).
    if m.metallic_roughness_texture.is_some() {
        m.occlusion_texture = m.metallic_roughness_texture.clone();
        m.occlusion_channel = m.metallic_roughness_channel.clone();
    }
    let mut texture = |field, t: Option<TextureRef>| -> Result<_, AssetError> {
        Ok(match t {
            Some(t) => some(texture_from_wire(field, t, image)?),
            None => (None, UvChannel::Uv0),
        })
    };
    if let Some(t) = d.thickness {
        m.thickness = t.thickness;
        m.attenuation_distance = t.attenuation_distance;
        let [r, g, b, a] = t.attenuation_color;
        m.attenuation_color = Color::Srgba(Srgba::rgba_u8(r, g, b, a));
        (m.thickness_texture, m.thickness_channel) = texture("thickness.texture", t.map)?;
    }
    if let Some(t) = d.transmission {
        m.diffuse_transmission = t.diffuse;
        m.specular_transmission = t.specular;
        (
            m.diffuse_transmission_texture,
            m.diffuse_transmission_channel,
        ) = texture("transmission.diffuse_map", t.diffuse_map)?;
        (
            m.specular_transmission_texture,
            m.specular_transmission_channel,
        ) = texture("transmission.specular_map", t.specular_map)?;
    }
    if let Some(c) = d.clearcoat {
        m.clearcoat = c.amount;
        m.clearcoat_perceptual_roughness = c.roughness;
        (m.clearcoat_texture, m.clearcoat_channel) =
            texture("clearcoat.pack.amount_map", c.amount_map)?;
        (m.clearcoat_roughness_texture, m.clearcoat_roughness_channel) =
            texture("clearcoat.pack.roughness_map", c.roughness_map)?;
        (m.clearcoat_normal_texture, m.clearcoat_normal_channel) =
            texture("clearcoat.pack.normal_map", c.normal_map)?;
    }
    if let Some(a) = d.anisotropy {
        m.anisotropy_strength = a.strength;
        m.anisotropy_rotation = a.rotation;
        (m.anisotropy_texture, m.anisotropy_channel) = texture("anisotropy.texture", a.map)?;
    }
    if let Some(p) = d.parallax {
        m.parallax_depth_scale = p.depth_scale;
        m.max_parallax_layer_count = quality_to_layers(p.layer_quality);
        // Bevy samples the depth map with UV channel 0.
        m.depth_map = texture("parallax.depth_map", p.depth_map)?.0;
    }
    // Bevy has one UV transform for both channels.
    if let Some(t) = d.uv0_transform.or(d.uv1_transform) {
        m.uv_transform = affine_from_wire(t);
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
