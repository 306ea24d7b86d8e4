//! Environment lighting: NOODLES2 `EnvironmentAsset` + `EnvironmentComponent` ↔ Bevy's
//! [`GeneratedEnvironmentMapLight`] (a source cubemap that Bevy filters on the GPU into the
//! diffuse and specular maps of an [`EnvironmentMapLight`]).
//!
//! | NOODLES2 | Bevy |
//! | --- | --- |
//! | `EnvironmentComponent` (0, 3): asset, `intensity`, `rotation` | [`GeneratedEnvironmentMapLight`]: `environment_map`, `intensity` (cd/m²), `rotation` |
//! | `EnvironmentAsset` (0, 1), format `Equirect`, env map = table entry `env_map_index` | the cubemap [`Image`] in `environment_map` |
//!
//! The wire carries equirectangular images, Bevy cubemaps, so both directions resample on the
//! CPU: the Upstream turns the cubemap (mip 0; `Rgba8Unorm[Srgb]`, `Rgba16Float`, `Rgba32Float`
//! or `Rgb9e5Ufloat`) into a 2:1 equirectangular Radiance HDR image ([`environment_to_wire`]), the
//! Downstream turns the equirectangular image (any format [`image_from_wire`](super::convert::image_from_wire) decodes) into an
//! `Rgba16Float` cubemap with power-of-two faces ([`equirect_to_cubemap`]), which is what
//! [`GeneratedEnvironmentMapLight`] requires.
//!
//! Mapping of directions (world space, Bevy's right-handed Y-up): the equirectangular image's
//! center column looks down −Z, its left edge +Z going through −X (u = 0.25) and +X at u = 0.75;
//! its top row is +Y. Cubemap faces are in wgpu order (+X, −X, +Y, −Y, +Z, −Z) and sampled the
//! way Bevy samples environment maps (the lookup vector is the world direction with Z negated).
//!
//! On a Downstream, [`light_cameras`] lights every 3D camera with the mirrored environment and
//! shows its sky (`is_skybox_visible`; the separate sky map when `has_sky_map`, else the
//! lighting map) as the camera's [`Skybox`]: no app code needed. On the Upstream, a shared entity
//! whose environment light has a [`Skybox`] too exports `is_skybox_visible`, with its lighting
//! map as the sky (a `Skybox` image other than the lighting map is not exported as a sky map
//! yet). Prefiltered `EnvironmentMapLight` pairs on the Upstream are not exported (use
//! [`GeneratedEnvironmentMapLight`]).
//!
//! Intensity: see [`light_cameras`] (the wire value is Bevy's cd/m² scale, unchanged).
//!
//! Spec: `spec/core/assets/environment.jaw`, `spec/core/components/environment.jaw`.

use std::collections::HashMap;
use std::f32::consts::PI;

use bevy::asset::{AssetId, Assets, Handle, RenderAssetUsages};
use bevy::camera::Camera3d;
use bevy::color::{Color, LinearRgba};
use bevy::ecs::prelude::*;
use bevy::image::{Image, ImageSampler};
use bevy::light::{EnvironmentMapLight, GeneratedEnvironmentMapLight, Skybox};
use bevy::math::{Quat, Vec3};
use wgpu_types::{
    Extent3d, TextureDataOrder, TextureDimension, TextureFormat, TextureViewDescriptor,
    TextureViewDimension,
};

use super::convert::AssetError;
use super::sync::asset_type;
use crate::codec as w;
use crate::mirror::{EntityIds, EntityResolver, MirrorComponent, MirrorError, Mirrored};

/// Largest cubemap face made by [`equirect_to_cubemap`] (Bevy filters the whole cubemap on the
/// GPU every time it changes; 512 is plenty for lighting).
pub const MAX_CUBE_FACE: u32 = 512;

/// Largest equirectangular width made by [`environment_to_wire`].
pub const MAX_EQUIRECT_WIDTH: u32 = 2048;

impl MirrorComponent for GeneratedEnvironmentMapLight {
    type Wire = w::EnvironmentComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 3;
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<w::EnvironmentComponent> {
        let id = ids.asset_id(self.environment_map.id().untyped())?;
        let r = self.rotation;
        Some(w::EnvironmentComponent::new(
            w::EnvironmentAssetID::new(w::AssetID::new(id)),
            self.intensity,
            w::UnitQuaternion::new(r.x, r.y, r.z, r.w),
        ))
    }
    fn from_wire(
        w: w::EnvironmentComponent,
        ids: &mut dyn EntityResolver,
    ) -> Result<Self, MirrorError> {
        let id = w.environment.id.id.get();
        let h = ids
            .asset_handle((0, asset_type::ENVIRONMENT), id)
            .ok_or_else(|| MirrorError::no_asset::<Self>((0, asset_type::ENVIRONMENT), id))?;
        let r = w.rotation;
        let rotation = Quat::from_xyzw(r.x.get(), r.y.get(), r.z.get(), r.w.get());
        Ok(GeneratedEnvironmentMapLight {
            environment_map: h.typed_debug_checked(),
            intensity: w.intensity.get(),
            rotation: if rotation.is_finite() && rotation.length_squared() > 0.0 {
                rotation.normalize()
            } else {
                Quat::IDENTITY
            },
            ..Default::default()
        })
    }
}

/// The sky an imported environment asks for (`is_skybox_visible`, `has_sky_map`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Sky {
    /// No visible sky.
    #[default]
    Hidden,
    /// The lighting cubemap itself is the visible sky.
    LightingMap,
    /// A sky map of its own, converted to this cubemap.
    Own(Handle<Image>),
}

/// Downstream: what imported environment assets asked for beyond lighting.
#[derive(Resource, Debug, Default)]
pub struct ImportedEnvironments {
    /// Environment cubemap → the sky it shows. Entries of cubemaps that no longer exist are
    /// dropped (with their sky) every frame.
    pub skies: HashMap<AssetId<Image>, Sky>,
}

impl ImportedEnvironments {
    /// The skybox image shown with environment cubemap `cube`, if it asks for a visible sky.
    pub fn sky_of(&self, cube: &Handle<Image>) -> Option<Handle<Image>> {
        match self.skies.get(&cube.id())? {
            Sky::Hidden => None,
            Sky::LightingMap => Some(cube.clone()),
            Sky::Own(h) => Some(h.clone()),
        }
    }
}

/// On a camera: do not light it with the Upstream's environment (see [`light_cameras`]).
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct NoMirroredEnvironment;

/// Marks a camera whose [`GeneratedEnvironmentMapLight`] and [`Skybox`] this plugin set from the
/// Upstream's environment (and will update or remove).
#[derive(Component, Debug, Clone, PartialEq)]
pub struct EnvironmentFromUpstream {
    /// The environment cubemap, intensity and rotation it was set from.
    pub light: (Handle<Image>, f32, Quat),
    /// The sky shown, if any.
    pub sky: Option<Handle<Image>>,
}

fn light_key(l: &GeneratedEnvironmentMapLight) -> (Handle<Image>, f32, Quat) {
    (l.environment_map.clone(), l.intensity, l.rotation)
}

type CameraEnvironment<'a> = (
    Entity,
    Option<&'a EnvironmentFromUpstream>,
    Has<GeneratedEnvironmentMapLight>,
    Has<EnvironmentMapLight>,
    Has<Skybox>,
);

/// Downstream: every 3D camera is lit by the Upstream's environment (the mirrored
/// [`GeneratedEnvironmentMapLight`] with the lowest `EntityID`), with the environment's sky as
/// its [`Skybox`] when the environment asks for a visible one, without app code.
///
/// Units: the wire's `intensity` ("scalar multiplier for environment lighting") is Bevy's
/// `GeneratedEnvironmentMapLight::intensity` and `Skybox::brightness` as is: a texel of value 1.0
/// lights (and shows) as 1 cd/m² times `intensity`. The rotation is the component's.
///
/// Cameras the app lit itself (an environment or skybox without [`EnvironmentFromUpstream`]) and
/// cameras marked [`NoMirroredEnvironment`] are left alone. When the environment goes, so do the
/// camera components this set.
pub fn light_cameras(
    mut commands: Commands,
    mirrored: Query<(&Mirrored, &GeneratedEnvironmentMapLight)>,
    cameras: Query<CameraEnvironment, (With<Camera3d>, Without<NoMirroredEnvironment>)>,
    images: Res<Assets<Image>>,
    mut imported: ResMut<ImportedEnvironments>,
) {
    if !imported.skies.is_empty() {
        imported.skies.retain(|cube, _| images.contains(*cube));
    }
    let want = mirrored
        .iter()
        .min_by_key(|(m, _)| m.id)
        .map(|(_, light)| (light, imported.sky_of(&light.environment_map)));
    for (cam, ours, has_light, has_prefiltered, has_sky) in &cameras {
        if ours.is_none() && (has_light || has_prefiltered || has_sky) {
            continue;
        }
        match &want {
            Some((light, sky))
                if ours.is_some_and(|o| o.light == light_key(light) && o.sky == *sky) => {}
            Some((light, sky)) => {
                // Bevy filters a `GeneratedEnvironmentMapLight` once into an
                // `EnvironmentMapLight`: drop the one made from the previous environment.
                let mut e = commands.entity(cam);
                e.remove::<(EnvironmentMapLight, Skybox)>().insert((
                    (*light).clone(),
                    EnvironmentFromUpstream {
                        light: light_key(light),
                        sky: sky.clone(),
                    },
                ));
                if let Some(image) = sky {
                    e.insert(Skybox {
                        image: Some(image.clone()),
                        brightness: light.intensity,
                        rotation: light.rotation,
                    });
                }
            }
            None => {
                if ours.is_some() {
                    commands.entity(cam).remove::<(
                        GeneratedEnvironmentMapLight,
                        EnvironmentMapLight,
                        Skybox,
                        EnvironmentFromUpstream,
                    )>();
                }
            }
        }
    }
}

/// The world direction seen at equirectangular coordinates `u`, `v` (both in `0..=1`).
pub fn equirect_direction(u: f32, v: f32) -> Vec3 {
    let lon = (u - 0.5) * 2.0 * PI;
    let lat = (0.5 - v) * PI;
    Vec3::new(lon.sin() * lat.cos(), lat.sin(), -lon.cos() * lat.cos())
}

/// The equirectangular coordinates (`u`, `v` in `0..=1`) of a world direction.
pub fn equirect_coords(d: Vec3) -> (f32, f32) {
    let d = d.normalize_or(Vec3::NEG_Z);
    let lon = d.x.atan2(-d.z);
    let lat = d.y.clamp(-1.0, 1.0).asin();
    (lon / (2.0 * PI) + 0.5, 0.5 - lat / PI)
}

/// The cubemap lookup vector of texel (`x`, `y`) of `face` (wgpu order), `size` texels a side.
fn cube_lookup(face: u32, x: u32, y: u32, size: u32) -> Vec3 {
    let s = 2.0 * (x as f32 + 0.5) / size as f32 - 1.0;
    let t = 2.0 * (y as f32 + 0.5) / size as f32 - 1.0;
    match face {
        0 => Vec3::new(1.0, -t, -s),
        1 => Vec3::new(-1.0, -t, s),
        2 => Vec3::new(s, 1.0, t),
        3 => Vec3::new(s, -1.0, -t),
        4 => Vec3::new(s, -t, 1.0),
        _ => Vec3::new(-s, -t, -1.0),
    }
}

/// The face and texel of a cubemap lookup vector (inverse of [`cube_lookup`]).
fn cube_texel(c: Vec3, size: u32) -> (u32, u32, u32) {
    let a = c.abs();
    let (face, s, t, m) = if a.x >= a.y && a.x >= a.z {
        if c.x > 0.0 {
            (0, -c.z, -c.y, a.x)
        } else {
            (1, c.z, -c.y, a.x)
        }
    } else if a.y >= a.z {
        if c.y > 0.0 {
            (2, c.x, c.z, a.y)
        } else {
            (3, c.x, -c.z, a.y)
        }
    } else if c.z > 0.0 {
        (4, c.x, -c.y, a.z)
    } else {
        (5, -c.x, -c.y, a.z)
    };
    let to_texel = |v: f32| {
        let f = ((v / m) + 1.0) * 0.5 * size as f32;
        (f.max(0.0) as u32).min(size - 1)
    };
    (face, to_texel(s), to_texel(t))
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f32::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

fn rgb9e5_to_rgb(v: u32) -> [f32; 3] {
    let e = ((v >> 27) & 0x1f) as i32;
    let scale = 2f32.powi(e - 15 - 9);
    [
        (v & 0x1ff) as f32 * scale,
        ((v >> 9) & 0x1ff) as f32 * scale,
        ((v >> 18) & 0x1ff) as f32 * scale,
    ]
}

/// Reads linear RGB texels of mip 0 of a cubemap's faces.
struct CubeReader<'a> {
    data: &'a [u8],
    size: u32,
    bpp: usize,
    layer_stride: usize,
    format: TextureFormat,
}

impl<'a> CubeReader<'a> {
    fn new(cube: &'a Image) -> Result<Self, AssetError> {
        let desc = &cube.texture_descriptor;
        let size = desc.size.width;
        if desc.dimension != TextureDimension::D2
            || desc.size.depth_or_array_layers != 6
            || desc.size.height != size
            || size == 0
        {
            return Err(AssetError::UnsupportedImage(format!(
                "environment: a cubemap (6 square layers) is needed, this image is {:?} {}x{} with {} layers",
                desc.dimension, size, desc.size.height, desc.size.depth_or_array_layers
            )));
        }
        let format = desc.format;
        let bpp = match format {
            TextureFormat::Rgba8Unorm
            | TextureFormat::Rgba8UnormSrgb
            | TextureFormat::Rgb9e5Ufloat => 4,
            TextureFormat::Rgba16Float => 8,
            TextureFormat::Rgba32Float => 16,
            other => return Err(AssetError::UnsupportedTextureFormat(format!("{other:?}"))),
        };
        let data = cube.data.as_deref().ok_or_else(|| {
            AssetError::UnsupportedImage("environment: the cubemap has no CPU pixel data".into())
        })?;
        let mip0 = size as usize * size as usize * bpp;
        let layer_stride = match cube.data_order {
            TextureDataOrder::MipMajor => mip0,
            _ => (0..desc.mip_level_count.max(1))
                .map(|m| {
                    let s = (size >> m).max(1) as usize;
                    s * s * bpp
                })
                .sum(),
        };
        if data.len() < 5 * layer_stride + mip0 {
            return Err(AssetError::UnsupportedImage(format!(
                "environment: the cubemap has {} bytes of pixel data, {} needed",
                data.len(),
                5 * layer_stride + mip0
            )));
        }
        Ok(Self {
            data,
            size,
            bpp,
            layer_stride,
            format,
        })
    }

    fn texel(&self, face: u32, x: u32, y: u32) -> [f32; 3] {
        let at = face as usize * self.layer_stride
            + (y as usize * self.size as usize + x as usize) * self.bpp;
        let b = &self.data[at..at + self.bpp];
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match self.format {
            TextureFormat::Rgba8UnormSrgb => {
                let c = Color::srgb_u8(b[0], b[1], b[2]).to_linear();
                [c.red, c.green, c.blue]
            }
            TextureFormat::Rgba8Unorm => [b[0], b[1], b[2]].map(|v| f32::from(v) / 255.0),
            TextureFormat::Rgb9e5Ufloat => rgb9e5_to_rgb(u32_at(0)),
            TextureFormat::Rgba16Float => {
                [0, 2, 4].map(|i| f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]])))
            }
            _ => [0, 4, 8].map(|i| f32::from_bits(u32_at(i))),
        }
    }
}

/// Resamples a Bevy cubemap into a 2:1 equirectangular image and encodes it as Radiance HDR
/// (linear, so HDR values survive), with its [`w::ImageFlags`] (linear filtering, repeat in U,
/// clamp in V, semantic `Linear`).
///
/// The width is four times the face size, at most [`MAX_EQUIRECT_WIDTH`]. Errors: not a cubemap
/// (6 square layers of a 2D image), no CPU data, or a texel format other than `Rgba8Unorm[Srgb]`,
/// `Rgba16Float`, `Rgba32Float`, `Rgb9e5Ufloat`.
pub fn environment_to_wire(cube: &Image) -> Result<(Vec<u8>, w::ImageFlags), AssetError> {
    let reader = CubeReader::new(cube)?;
    let width = (reader.size * 4).clamp(4, MAX_EQUIRECT_WIDTH);
    let height = width / 2;
    let mut pixels = Vec::with_capacity(width as usize * height as usize);
    for y in 0..height {
        for x in 0..width {
            let d = equirect_direction(
                (x as f32 + 0.5) / width as f32,
                (y as f32 + 0.5) / height as f32,
            );
            let (face, tx, ty) = cube_texel(Vec3::new(d.x, d.y, -d.z), reader.size);
            let rgb = reader
                .texel(face, tx, ty)
                .map(|v| if v.is_finite() { v.max(0.0) } else { 0.0 });
            pixels.push(::image::Rgb(rgb));
        }
    }
    let mut out = Vec::new();
    ::image::codecs::hdr::HdrEncoder::new(&mut out)
        .encode(&pixels, width as usize, height as usize)
        .map_err(|e| AssetError::Encode(e.to_string()))?;
    let flags = w::ImageFlags::default()
        .with_address_mode_u(w::ImageAddressMode::Repeat)
        .with_address_mode_v(w::ImageAddressMode::ClampToEdge)
        .with_mag_filter(w::ImageFilterMode::Linear)
        .with_min_filter(w::ImageFilterMode::Linear)
        .with_semantic(w::ImageSemantic::Linear);
    Ok((out, flags))
}

/// Resamples an equirectangular image (2D, any format Bevy can read pixels of) into an
/// `Rgba16Float` cubemap whose faces are the largest power of two not above a quarter of the
/// width, clamped to `1..=`[`MAX_CUBE_FACE`]; its view is a cube view, ready for
/// [`GeneratedEnvironmentMapLight`]. Bilinear sampling, wrapping horizontally.
pub fn equirect_to_cubemap(equirect: &Image) -> Result<Image, AssetError> {
    let desc = &equirect.texture_descriptor;
    let (w, h) = (desc.size.width, desc.size.height);
    if desc.dimension != TextureDimension::D2 || desc.size.depth_or_array_layers != 1 {
        return Err(AssetError::UnsupportedImage(format!(
            "environment: the equirectangular map must be a single 2D image, this one is {:?} with {} layers",
            desc.dimension, desc.size.depth_or_array_layers
        )));
    }
    if w == 0 || h == 0 || equirect.data.is_none() {
        return Err(AssetError::UnsupportedImage(format!(
            "environment: the equirectangular map is empty ({w}x{h}) or has no pixel data"
        )));
    }
    let read = |x: u32, y: u32| -> Result<[f32; 3], AssetError> {
        let c: LinearRgba = equirect
            .get_color_at(x, y)
            .map_err(|e| AssetError::UnsupportedImage(format!("environment: {e}")))?
            .to_linear();
        Ok([c.red, c.green, c.blue])
    };
    read(0, 0)?;
    let quarter = (w / 4).max(1);
    let face = (1u32 << (31 - quarter.leading_zeros())).min(MAX_CUBE_FACE);
    let mut cube = Image::new_fill(
        Extent3d {
            width: face,
            height: face,
            depth_or_array_layers: 6,
        },
        TextureDimension::D2,
        &[0; 8],
        TextureFormat::Rgba16Float,
        RenderAssetUsages::default(),
    );
    for layer in 0..6 {
        for y in 0..face {
            for x in 0..face {
                let c = cube_lookup(layer, x, y, face);
                let (u, v) = equirect_coords(Vec3::new(c.x, c.y, -c.z));
                let fx = u * w as f32 - 0.5;
                let fy = (v * h as f32 - 0.5).clamp(0.0, (h - 1) as f32);
                let (x0, y0) = (fx.floor(), fy.floor());
                let (ax, ay) = (fx - x0, fy - y0);
                let xi = |dx: i64| ((x0 as i64 + dx).rem_euclid(i64::from(w))) as u32;
                let yi = |dy: u32| (y0 as u32 + dy).min(h - 1);
                let (p00, p10) = (read(xi(0), yi(0))?, read(xi(1), yi(0))?);
                let (p01, p11) = (read(xi(0), yi(1))?, read(xi(1), yi(1))?);
                let mut rgb = [0.0; 3];
                for i in 0..3 {
                    let top = p00[i] * (1.0 - ax) + p10[i] * ax;
                    let bottom = p01[i] * (1.0 - ax) + p11[i] * ax;
                    rgb[i] = top * (1.0 - ay) + bottom * ay;
                }
                cube.set_color_at_3d(x, y, layer, Color::linear_rgb(rgb[0], rgb[1], rgb[2]))
                    .map_err(|e| AssetError::UnsupportedImage(format!("environment: {e}")))?;
            }
        }
    }
    cube.texture_view_descriptor = Some(TextureViewDescriptor {
        dimension: Some(TextureViewDimension::Cube),
        ..Default::default()
    });
    cube.sampler = ImageSampler::linear();
    Ok(cube)
}

/// The NOODLES2 environment asset for one equirectangular image (image asset `image`) used as
/// the environment map, and as the visible sky when `skybox_visible`.
pub fn environment_asset(image: u64, skybox_visible: bool) -> w::EnvironmentAsset {
    w::EnvironmentAsset {
        flags: w::EnvironmentFlags::default()
            .with_format(w::EnvironmentFormat::Equirect)
            .with_has_env_map(1)
            .with_is_skybox_visible(skybox_visible as u8),
        table: w::EnvImageTable(vec![w::ImageAssetID::new(w::AssetID::new(image))]),
        env_map_index: 0,
        sky_map_index: 0,
    }
}

pub use noodles2::assets::environment_images;
