//! The Core extension's asset types as registry rules ([`MirrorAsset`]): how a Downstream checks
//! and imports each received body, and what a Downstream may propose. Registered by
//! [`AssetsPlugin`](super::AssetsPlugin) with [`MirrorAppExt::mirror_asset`], the call an
//! application extension uses for its own asset types.
//!
//! | type | identifier | becomes |
//! | --- | --- | --- |
//! | `BufferAsset` | 0 | bytes kept per link for the assets that refer to them (inline, or fetched OOB/by URL) |
//! | `EnvironmentAsset` | 1 | a cubemap `Image` (from its equirectangular image) for `GeneratedEnvironmentMapLight` |
//! | `ImageAsset` | 2 | `Image` |
//! | `MeshAsset` | 3 | `Mesh` |
//! | `PBRMaterialAsset` | 4 | `StandardMaterial` (feature `render`; ignored without it) |
//! | `AnimationAsset`, `AnimSamplerAsset` | 5, 6 | registered by [`AnimationPlugin`](crate::animation::AnimationPlugin): `NoodlesClip`, `AnimSampler` |

use bevy::prelude::*;
use bevy::tasks::AsyncComputeTaskPool;

use super::OFF_THREAD_BYTES;
use super::convert;
use super::environment;
use super::remote::{FetchConfig, OobProgress, RemoteFetch};
use super::sync::{AssetImport, Decoded, asset_type, buffer_of};
use crate::codec as w;
use crate::codec::BufferSource;
use crate::mirror::{AssetImported, MirrorAppExt, MirrorAsset, asset_handle};

/// A handle reserved in Bevy's collection of `A` (for [`MirrorAsset::reserve`]); `None` without
/// that collection.
pub(crate) fn reserve<A: Asset>(world: &World) -> Option<UntypedHandle> {
    Some(
        world
            .get_resource::<Assets<A>>()?
            .reserve_handle()
            .untyped(),
    )
}

/// Put `value` under the handle reserved for asset `id` of type `ty` on `link`. An app without
/// Bevy's collection of `A` (a headless node) does not keep it: [`AssetImported::Ignored`].
pub(crate) fn store<A: Asset>(
    world: &mut World,
    link: Entity,
    ty: u16,
    id: u64,
    value: A,
) -> Result<AssetImported, String> {
    if !world.contains_resource::<Assets<A>>() {
        return Ok(AssetImported::Ignored);
    }
    let h = asset_handle(world, link, (0, ty), id).ok_or("no handle could be reserved for it")?;
    world
        .resource_mut::<Assets<A>>()
        .insert(h.id().typed::<A>(), value)
        .map_err(|e| e.to_string())?;
    Ok(AssetImported::Done)
}

/// Run `work` and put its result into the world with `finish`: at once for up to
/// [`OFF_THREAD_BYTES`] of input, on the async compute pool above that (the asset is then
/// [`AssetImported::Decoding`] until it is done; a newer body or a deletion cancels it). At most
/// [`FetchConfig::max_decodes_in_flight`] decodes run at once; the others queue for a permit on
/// the pool, and each starts the moment one before it ends (not at the next frame).
fn decode<T: Send + 'static>(
    world: &mut World,
    (link, ty, id): (Entity, u16, u64),
    input_bytes: usize,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
    finish: impl FnOnce(&mut World, T) -> Result<AssetImported, String> + Send + 'static,
) -> Result<AssetImported, String> {
    if input_bytes <= OFF_THREAD_BYTES {
        return finish(world, work()?);
    }
    let permits = world
        .get_resource::<FetchConfig>()
        .map_or(2, |c| c.max_decodes_in_flight);
    let permits = world.resource_mut::<AssetImport>().decode_permits(permits);
    let task = AsyncComputeTaskPool::get().spawn(async move {
        // Dropped with the task (a newer body, a deletion, a closed link): the permit returns.
        let _permit = permits
            .acquire_owned()
            .await
            .map_err(|_| "the decode queue was closed".to_string())?;
        let value = work()?;
        Ok(Box::new(move |world: &mut World| finish(world, value)) as Decoded)
    });
    world
        .resource_mut::<AssetImport>()
        .decoding
        .insert((link, (0, ty), id), task);
    Ok(AssetImported::Decoding)
}

/// The bytes a view refers to: `Ok(None)` while its buffer has not arrived.
fn view_buffer(
    world: &World,
    link: Entity,
    view: &w::BufferView,
) -> Result<Option<bytes::Bytes>, String> {
    buffer_of(world.resource::<AssetImport>(), link, view)
}

struct Buffer;

impl MirrorAsset for Buffer {
    type Wire = w::BufferAsset;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = asset_type::BUFFER;
    const NAME: &'static str = "buffer";
    const ID_WRAPPER: Option<&'static str> = Some("BufferAssetID");

    fn import(
        b: w::BufferAsset,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String> {
        // A new body replaces whatever the buffer had or waited for.
        forget(world, link, id);
        match b.source {
            BufferSource::InlineContent(c) => {
                super::sync::store_buffer(world, link, id, c.0);
                Ok(AssetImported::Done)
            }
            remote => fetch(world, link, id, remote),
        }
    }

    fn delete(world: &mut World, link: Entity, id: u64) {
        forget(world, link, id);
    }

    fn refused(world: &mut World, link: Entity, id: u64, reason: &str) {
        // The assets that use it are refused in turn, with this reason.
        world
            .resource_mut::<AssetImport>()
            .failed
            .insert((link, id), reason.to_string());
    }

    fn check_proposed(b: &w::BufferAsset) -> Result<(), String> {
        match &b.source {
            BufferSource::InlineContent(_) => Ok(()),
            BufferSource::BufferFromURL(_) => {
                Err("the buffer is given by URL; proposals must inline buffers".into())
            }
            BufferSource::OOBAssetID(_) => {
                Err("the buffer is an OOB asset; proposals must inline buffers".into())
            }
        }
    }
}

/// Drop a buffer's bytes, its refusal and its fetch.
fn forget(world: &mut World, link: Entity, id: u64) {
    let mut import = world.resource_mut::<AssetImport>();
    import.buffers.remove(&(link, id));
    import.failed.remove(&(link, id));
    if let Some(mut f) = world.get_resource_mut::<RemoteFetch>() {
        f.cancel(link, id);
    }
}

/// Start fetching a buffer that is not inline.
fn fetch(
    world: &mut World,
    link: Entity,
    id: u64,
    source: BufferSource,
) -> Result<AssetImported, String> {
    let Some(mut fetch) = world.remove_resource::<RemoteFetch>() else {
        return Err("this app does not fetch remote buffers".into());
    };
    let config = world
        .get_resource::<FetchConfig>()
        .cloned()
        .unwrap_or_default();
    let mut progress = world.remove_resource::<OobProgress>().unwrap_or_default();
    let result = match source {
        BufferSource::OOBAssetID(o) => match world.get::<crate::net::NoodlesLink>(link) {
            Some(l) => fetch.request_oob(l, link, id, o.id.get(), &config, &mut progress),
            None => Err("its link is gone".into()),
        },
        BufferSource::BufferFromURL(u) => {
            fetch.request_url(link, id, u.url.0, u.byte_size, &config, &mut progress)
        }
        BufferSource::InlineContent(_) => Ok(()),
    };
    world.insert_resource(progress);
    world.insert_resource(fetch);
    result.map(|_| AssetImported::Fetching)
}

struct ImageRule;

impl MirrorAsset for ImageRule {
    type Wire = w::ImageAsset;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = asset_type::IMAGE;
    const NAME: &'static str = "image";
    const ID_WRAPPER: Option<&'static str> = Some("ImageAssetID");

    fn import(
        a: w::ImageAsset,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String> {
        let Some(buf) = view_buffer(world, link, &a.view)? else {
            return Ok(AssetImported::Waiting);
        };
        if !world.contains_resource::<Assets<Image>>() {
            return Ok(AssetImported::Ignored);
        }
        let len = convert::view_bytes("image", &a.view, &buf)
            .map_err(|e| e.to_string())?
            .len();
        decode(
            world,
            (link, Self::IDENTIFIER, id),
            len,
            move || {
                let bytes =
                    convert::view_bytes("image", &a.view, &buf).map_err(|e| e.to_string())?;
                convert::image_from_wire(bytes, a.flags).map_err(|e| e.to_string())
            },
            move |world, image| store(world, link, Self::IDENTIFIER, id, image),
        )
    }

    fn reserve(world: &World) -> Option<UntypedHandle> {
        reserve::<Image>(world)
    }
}

struct MeshRule;

impl MirrorAsset for MeshRule {
    type Wire = w::MeshAsset;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = asset_type::MESH;
    const NAME: &'static str = "mesh";
    const ID_WRAPPER: Option<&'static str> = Some("MeshAssetID");

    fn import(
        a: w::MeshAsset,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String> {
        let Some(buf) = view_buffer(world, link, &a.view)? else {
            return Ok(AssetImported::Waiting);
        };
        if !world.contains_resource::<Assets<Mesh>>() {
            return Ok(AssetImported::Ignored);
        }
        decode(
            world,
            (link, Self::IDENTIFIER, id),
            buf.len(),
            move || convert::mesh_from_wire(&a, &buf).map_err(|e| e.to_string()),
            move |world, mesh| store(world, link, Self::IDENTIFIER, id, mesh),
        )
    }

    fn reserve(world: &World) -> Option<UntypedHandle> {
        reserve::<Mesh>(world)
    }
}

#[cfg(feature = "render")]
struct MaterialRule;

#[cfg(feature = "render")]
impl MirrorAsset for MaterialRule {
    type Wire = w::PBRMaterialAsset;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = asset_type::PBR_MATERIAL;
    const NAME: &'static str = "material";
    const ID_WRAPPER: Option<&'static str> = Some("PBRMaterialAssetID");

    fn import(
        a: w::PBRMaterialAsset,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String> {
        let mut image = |img: u64| {
            asset_handle(world, link, (0, asset_type::IMAGE), img).map(|h| h.typed::<Image>())
        };
        let mat = convert::material_from_wire(&a, &mut image).map_err(|e| e.to_string())?;
        store(world, link, Self::IDENTIFIER, id, mat)
    }

    fn reserve(world: &World) -> Option<UntypedHandle> {
        reserve::<StandardMaterial>(world)
    }
}

struct EnvironmentRule;

impl MirrorAsset for EnvironmentRule {
    type Wire = w::EnvironmentAsset;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = asset_type::ENVIRONMENT;
    const NAME: &'static str = "environment";
    const ID_WRAPPER: Option<&'static str> = Some("EnvironmentAssetID");

    fn import(
        a: w::EnvironmentAsset,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String> {
        let (light, sky) = environment::environment_images(&a).map_err(|e| e.to_string())?;
        // The equirectangular image of `img`, once it arrived.
        let equirect = |world: &mut World, img: u64| -> Result<Option<Image>, String> {
            let h = asset_handle(world, link, (0, asset_type::IMAGE), img)
                .ok_or("this app has no image assets")?;
            Ok(world
                .resource::<Assets<Image>>()
                .get(h.id().typed::<Image>())
                .cloned())
        };
        let Some(light_map) = equirect(world, light)? else {
            return Ok(AssetImported::Waiting);
        };
        // A visible sky of its own (not the lighting map) is converted too.
        let sky_map = match sky.filter(|s| *s != light) {
            Some(s) => match equirect(world, s)? {
                Some(img) => Some(img),
                None => return Ok(AssetImported::Waiting),
            },
            None => None,
        };
        let sky_visible = sky.is_some();
        let len = [&light_map]
            .into_iter()
            .chain(sky_map.as_ref())
            .map(|i| i.data.as_ref().map_or(0, Vec::len))
            .sum();
        decode(
            world,
            (link, Self::IDENTIFIER, id),
            len,
            move || {
                let cube =
                    |i: &Image| environment::equirect_to_cubemap(i).map_err(|e| e.to_string());
                Ok((cube(&light_map)?, sky_map.as_ref().map(cube).transpose()?))
            },
            move |world, (cube, sky_cube)| {
                let h = asset_handle(world, link, (0, Self::IDENTIFIER), id)
                    .ok_or("this app has no image assets")?;
                let key = h.id().typed::<Image>();
                let mut images = world.resource_mut::<Assets<Image>>();
                images.insert(key, cube).map_err(|e| e.to_string())?;
                let sky = match (sky_visible, sky_cube) {
                    (false, _) => environment::Sky::Hidden,
                    (true, None) => environment::Sky::LightingMap,
                    (true, Some(c)) => environment::Sky::Own(images.add(c)),
                };
                world
                    .get_resource_or_init::<environment::ImportedEnvironments>()
                    .skies
                    .insert(key, sky);
                Ok(AssetImported::Done)
            },
        )
    }

    /// An environment is imported as its cubemap image.
    fn reserve(world: &World) -> Option<UntypedHandle> {
        reserve::<Image>(world)
    }
}

/// Core types that are decoded and checked (and may be proposed) but not used by this build.
#[cfg(not(feature = "render"))]
struct Unused<T>(std::marker::PhantomData<T>);

#[cfg(not(feature = "render"))]
macro_rules! unused_core_asset {
    ($wire:ty, $id:expr, $name:literal, $wrapper:literal) => {
        impl MirrorAsset for Unused<$wire> {
            type Wire = $wire;
            const EXTENSION: u16 = 0;
            const IDENTIFIER: u16 = $id;
            const NAME: &'static str = $name;
            const ID_WRAPPER: Option<&'static str> = Some($wrapper);

            fn import(_: $wire, _: &mut World, _: Entity, _: u64) -> Result<AssetImported, String> {
                Ok(AssetImported::Ignored)
            }
        }
    };
}

// Without Bevy's renderer there is no `StandardMaterial` to import into.
#[cfg(not(feature = "render"))]
unused_core_asset!(
    w::PBRMaterialAsset,
    asset_type::PBR_MATERIAL,
    "material",
    "PBRMaterialAssetID"
);

/// Register every Core asset type, buffers first (the others refer to them).
pub(crate) fn register(app: &mut App) {
    app.mirror_asset::<Buffer>()
        .mirror_asset::<ImageRule>()
        .mirror_asset::<EnvironmentRule>()
        .mirror_asset::<MeshRule>();
    #[cfg(feature = "render")]
    app.mirror_asset::<MaterialRule>();
    #[cfg(not(feature = "render"))]
    app.mirror_asset::<Unused<w::PBRMaterialAsset>>();
}
