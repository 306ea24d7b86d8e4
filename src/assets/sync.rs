//! Moving assets between Upstream and Downstream: the asset-referring Core components, the
//! export of environment lights, and the import of received bodies through the registry's asset
//! rules into Bevy's asset collections on the Downstream.
//!
//! Upstream: a shared entity with `Mesh3d` / `MeshMaterial3d<StandardMaterial>` needs nothing
//! more: [`export`] sends each Bevy asset once (whatever the number of entities
//! using it) as a `BufferAsset` plus a `MeshAsset` / `ImageAsset` / `PBRMaterialAsset`, kept
//! while a shared entity uses it, deleted when none does, and re-sent when the Bevy asset changes.
//!
//! Buffers above the OOB threshold are exported out of band when an [`OobServer`] runs (see
//! [`remote`](super::remote)).
//!
//! Downstream: asset bodies are decoded and validated; refused ones are logged with the reason
//! and counted in [`AssetStats`], and the rest of the world keeps working. OOB and URL buffers
//! are fetched in the background; assets that use them wait until the bytes arrive. Components
//! that refer to an asset before it arrives get a reserved handle that is filled when it does.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bevy::asset::UntypedAssetId;
use bevy::light::{GeneratedEnvironmentMapLight, Skybox};
use bevy::mesh::skinning::{SkinnedMesh, SkinnedMeshInverseBindposes};
use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task};
use bytes::Bytes;

use super::environment;
use super::export::{self, AssetExport, ExportAppExt};
use super::remote::{OobProgress, OobServer, RemoteFetch};
use super::skin;
use super::users::{Users, take_finished};
#[cfg(feature = "render")]
use crate::codec as w;
use crate::codec::{
    BufferAsset, BufferAssetFlags, BufferAssetID, BufferSource, BufferView, ImageAsset,
    InlineContent, MeshAssetID, MeshComponent, OOBAssetID, Wire,
};
use crate::mirror::{
    AssetIdMap, AssetImported, AssetRefusal, ComponentRegistry, EntityIds, EntityResolver,
    IncomingAsset, IncomingAssets, MirrorAppExt, MirrorComponent, MirrorError, Outgoing,
    RefusalReason, Refused, Shared, SharedId, send_tick, upgrade,
};

/// Core asset type identifiers (extension 0), from `spec/core/extension.md`.
pub mod asset_type {
    /// Buffer asset.
    pub const BUFFER: u16 = 0;
    /// Environment asset.
    pub const ENVIRONMENT: u16 = 1;
    /// Image asset.
    pub const IMAGE: u16 = 2;
    /// Mesh asset.
    pub const MESH: u16 = 3;
    /// PBR material asset.
    pub const PBR_MATERIAL: u16 = 4;
    /// Animation asset.
    pub const ANIMATION: u16 = 5;
    /// Animation sampler asset.
    pub const ANIM_SAMPLER: u16 = 6;
}

impl MirrorComponent for Mesh3d {
    type Wire = MeshComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 14;
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<MeshComponent> {
        let id = ids.asset_id(self.0.id().untyped())?;
        Some(MeshComponent::new(MeshAssetID::new(
            crate::codec::AssetID::new(id),
        )))
    }
    fn from_wire(w: MeshComponent, ids: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        let id = w.asset.id.id.get();
        let h = ids
            .asset_handle((0, asset_type::MESH), id)
            .ok_or_else(|| MirrorError::no_asset::<Self>((0, asset_type::MESH), id))?;
        Ok(Mesh3d(h.typed_debug_checked()))
    }
}

#[cfg(feature = "render")]
impl MirrorComponent for MeshMaterial3d<StandardMaterial> {
    type Wire = w::PBRMaterialComponent;
    const EXTENSION: u16 = 0;
    const IDENTIFIER: u16 = 13;
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<w::PBRMaterialComponent> {
        let id = ids.asset_id(self.0.id().untyped())?;
        Some(w::PBRMaterialComponent::new(w::PBRMaterialAssetID::new(
            crate::codec::AssetID::new(id),
        )))
    }
    fn from_wire(
        w: w::PBRMaterialComponent,
        ids: &mut dyn EntityResolver,
    ) -> Result<Self, MirrorError> {
        let id = w.asset.id.id.get();
        let h = ids
            .asset_handle((0, asset_type::PBR_MATERIAL), id)
            .ok_or_else(|| MirrorError::no_asset::<Self>((0, asset_type::PBR_MATERIAL), id))?;
        Ok(MeshMaterial3d(h.typed_debug_checked()))
    }
}

/// Counters of the asset layer (for overlays and tests).
#[derive(Resource, Debug, Default, Clone)]
pub struct AssetStats {
    /// Assets exported (Upstream), counting re-sends.
    pub exported: u64,
    /// Assets received and turned into Bevy assets (Downstream).
    pub imported: u64,
    /// Assets refused (Downstream), with the last reason. Skins that cannot become a
    /// `SkinnedMesh` are counted here too (see [`skin`]).
    pub refused: u64,
    /// The last refusal.
    pub last_refusal: Option<AssetRefusal>,
    /// The last refusals (at most [`AssetStats::RECENT`]), oldest first.
    pub recent_refusals: std::collections::VecDeque<AssetRefusal>,
    /// Assets waiting for a buffer they reference.
    pub pending: usize,
    /// Assets being decoded on the async compute pool, or queued for it (Downstream; see
    /// [`OFF_THREAD_BYTES`](super::OFF_THREAD_BYTES) and
    /// [`AssetImport::decodes_running`]).
    pub decoding: usize,
    /// Assets received but not used: types this app registers no rule for, and Core types it
    /// does not use (materials without `render`). Their bodies are kept in [`RawAssets`].
    pub ignored: u64,
}

/// Bodies of the assets this app does not turn into anything (see [`AssetStats::ignored`]),
/// kept as received until the Upstream deletes them or the link closes: nothing received is
/// lost, and code that wants them can decode them. Each body replaces the one before it under
/// the same id, so what is kept is at most what the Upstream's world holds.
#[derive(Resource, Debug, Default)]
pub struct RawAssets {
    bodies: HashMap<(Entity, (u16, u16), u64), Bytes>,
}

impl RawAssets {
    /// The body of asset `id` of type `asset_type` from `link`.
    pub fn get(&self, link: Entity, asset_type: (u16, u16), id: u64) -> Option<&Bytes> {
        self.bodies.get(&(link, asset_type, id))
    }

    /// Every kept body: `(link, asset type, id)` and the bytes.
    pub fn iter(&self) -> impl Iterator<Item = ((Entity, (u16, u16), u64), &Bytes)> {
        self.bodies.iter().map(|(k, v)| (*k, v))
    }

    /// How many bodies are kept.
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// Nothing kept.
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    pub(crate) fn forget_link(&mut self, link: Entity) {
        self.bodies.retain(|(l, ..), _| *l != link);
    }
}

impl AssetStats {
    /// How many refusals [`AssetStats::recent_refusals`] keeps.
    pub const RECENT: usize = 32;
}

/// The body of buffer `id`: inline, or out of band when an OOB server runs and the bytes exceed
/// its threshold (the OOB id is the buffer's id; the bytes are served until the buffer is deleted).
pub(crate) fn buffer_body(bytes: Vec<u8>, id: u64, oob: Option<&OobServer>) -> Option<Bytes> {
    let source = match oob {
        Some(server) if bytes.len() > server.threshold => {
            server.insert(id, Bytes::from(bytes));
            BufferSource::OOBAssetID(OOBAssetID::new(id))
        }
        _ => BufferSource::InlineContent(InlineContent(bytes.into())),
    };
    BufferAsset {
        flags: BufferAssetFlags::default(),
        source,
    }
    .encode_bytes()
    .ok()
}

/// Delete an exported buffer (and stop serving it out of band).
pub(crate) fn delete_buffer(out: &mut Outgoing, oob: Option<&OobServer>, buffer: u64) {
    out.delete_asset((0, asset_type::BUFFER, buffer));
    if let Some(server) = oob {
        server.remove(buffer);
    }
}

pub(crate) fn whole_view(len: usize, buffer: u64) -> BufferView {
    BufferView::new(
        0,
        len as u64,
        BufferAssetID::new(crate::codec::AssetID::new(buffer)),
    )
}

/// What the Upstream has exported for environment lights.
#[derive(Resource, Default)]
pub struct EnvironmentExport {
    /// Source cubemap → (environment asset id, image asset id, buffer asset id).
    exported: HashMap<UntypedAssetId, (u64, u64, u64)>,
    /// Which shared entity uses which cubemap.
    users: Users<UntypedAssetId>,
    /// Cubemaps an entity stopped using (noted by observers); checked on the send tick.
    unused: Vec<UntypedAssetId>,
    /// Cubemaps whose Bevy data was not loaded yet; retried on send ticks.
    waiting: HashSet<UntypedAssetId>,
    /// Images Bevy modified since the last send tick.
    modified: HashSet<UntypedAssetId>,
    /// Cubemaps being converted (equirectangular, HDR) on the async compute pool.
    encoding: HashMap<UntypedAssetId, export::Encoding>,
    /// Exported cubemap → the `is_skybox_visible` flag it was sent with.
    sky_visible: HashMap<UntypedAssetId, bool>,
}

impl EnvironmentExport {
    fn stop_using(&mut self, e: Entity) {
        if let Some(key) = self.users.remove(e) {
            self.unused.push(key);
        }
    }
}

/// Every frame: note the images Bevy modified, for the next send tick.
fn note_modified_environments(
    mut events: MessageReader<AssetEvent<Image>>,
    mut env_export: ResMut<EnvironmentExport>,
) {
    env_export
        .modified
        .extend(super::users::modified(&mut events).map(|id| id.untyped()));
}

/// Upstream, on send ticks: export the cubemap of every shared [`GeneratedEnvironmentMapLight`]
/// as an `EnvironmentAsset` with one equirectangular image (see [`environment`]). The
/// conversion of a large cubemap runs on the async compute pool; the entities using it send
/// their component once it is out.
#[expect(clippy::too_many_arguments, reason = "one system exports environments")]
#[expect(clippy::type_complexity, reason = "change-detection filters")]
pub(crate) fn export_environments(
    mut env_export: ResMut<EnvironmentExport>,
    mut export: ResMut<AssetExport>,
    mut ids: ResMut<AssetIdMap>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    images: Res<Assets<Image>>,
    mut users: ParamSet<(
        Query<
            (Entity, &GeneratedEnvironmentMapLight),
            (
                With<Shared>,
                Or<(Changed<GeneratedEnvironmentMapLight>, Added<SharedId>)>,
            ),
        >,
        Query<&mut GeneratedEnvironmentMapLight, With<Shared>>,
    )>,
    skyboxes: Query<(), (With<Shared>, With<Skybox>)>,
    oob: Option<Res<OobServer>>,
) {
    let oob = oob.as_deref();
    let env_export = &mut *env_export;
    let mut want: HashSet<UntypedAssetId> = HashSet::new();
    for (e, light) in users.p0().iter() {
        let key = light.environment_map.id().untyped();
        if let Some(old) = env_export.users.set(e, key) {
            env_export.unused.push(old);
        }
        want.insert(key);
    }
    for key in std::mem::take(&mut env_export.unused) {
        if env_export.users.is_used(&key) {
            continue;
        }
        env_export.waiting.remove(&key);
        env_export.encoding.remove(&key);
        env_export.sky_visible.remove(&key);
        if let Some((env, image, buffer)) = env_export.exported.remove(&key) {
            out.delete_asset((0, asset_type::ENVIRONMENT, env));
            out.delete_asset((0, asset_type::IMAGE, image));
            delete_buffer(&mut out, oob, buffer);
            ids.unexport(key);
        }
    }
    // A modified cubemap is converted again (replacing a conversion in flight); otherwise one
    // in flight or done is not started again.
    let modified = std::mem::take(&mut env_export.modified);
    want.extend(modified.iter().copied());
    want.extend(env_export.waiting.drain());
    let mut done = Vec::new();
    for key in want {
        let started =
            env_export.exported.contains_key(&key) || env_export.encoding.contains_key(&key);
        if !env_export.users.is_used(&key) || (started && !modified.contains(&key)) {
            continue;
        }
        let Some(cube) = images.get(key.typed::<Image>()) else {
            env_export.waiting.insert(key);
            continue;
        };
        let small = cube
            .data
            .as_ref()
            .is_none_or(|d| d.len() <= super::OFF_THREAD_BYTES);
        let convert =
            |cube: &Image| environment::environment_to_wire(cube).map_err(|e| e.to_string());
        if small {
            env_export.encoding.remove(&key);
            done.push((key, convert(cube)));
        } else {
            let cube = cube.clone();
            let task = AsyncComputeTaskPool::get().spawn(async move { convert(&cube) });
            // Replacing a task drops (cancels) the older conversion.
            env_export.encoding.insert(key, task);
        }
    }
    done.extend(take_finished(&mut env_export.encoding));
    for (key, converted) in done {
        let (hdr, flags) = match converted {
            Ok(x) => x,
            Err(e) => {
                warn!("environment map {key:?} cannot be shared: {e}");
                continue;
            }
        };
        // Re-sends keep the environment's id; the image and its buffer are replaced.
        let previous = env_export.exported.get(&key).copied();
        let (env_id, image_id, buffer_id) =
            previous.unwrap_or_else(|| (export.allocate(), export.allocate(), export.allocate()));
        let view = whole_view(hdr.len(), buffer_id);
        let visible = env_export
            .users
            .users_of(&key)
            .any(|e| skyboxes.contains(e));
        let (Some(bbody), Ok(ibody), Ok(ebody)) = (
            buffer_body(hdr, buffer_id, oob),
            ImageAsset { view, flags }.encode_bytes(),
            environment::environment_asset(image_id, visible).encode_bytes(),
        ) else {
            continue;
        };
        out.modify_asset((0, asset_type::BUFFER, buffer_id), bbody);
        out.modify_asset((0, asset_type::IMAGE, image_id), ibody);
        out.modify_asset((0, asset_type::ENVIRONMENT, env_id), ebody);
        env_export
            .exported
            .insert(key, (env_id, image_id, buffer_id));
        env_export.sky_visible.insert(key, visible);
        ids.export((0, asset_type::ENVIRONMENT), key, env_id);
        stats.exported += 1;
        // The entities using it send their component now that it has an id.
        if previous.is_none() {
            let mut all = users.p1();
            for e in env_export.users.users_of(&key) {
                if let Ok(mut light) = all.get_mut(e) {
                    light.set_changed();
                }
            }
        }
    } // A `Skybox` added to (or removed from) a user re-sends the environment's body alone.
    for (key, &(env_id, image_id, _)) in &env_export.exported {
        let visible = env_export.users.users_of(key).any(|e| skyboxes.contains(e));
        if env_export.sky_visible.get(key) == Some(&visible) {
            continue;
        }
        if let Ok(body) = environment::environment_asset(image_id, visible).encode_bytes() {
            out.modify_asset((0, asset_type::ENVIRONMENT, env_id), body);
            env_export.sky_visible.insert(*key, visible);
        }
    }
}

/// Downstream: what arrived, per link.
#[derive(Resource, Default)]
pub struct AssetImport {
    /// Buffer bodies by (link, id).
    pub(crate) buffers: HashMap<(Entity, u64), Bytes>,
    /// Buffers whose fetch failed, with the reason (assets using them are refused).
    pub(crate) failed: HashMap<(Entity, u64), String>,
    /// Assets waiting for something they refer to: (link, asset type, id, body).
    waiting: Vec<(Entity, (u16, u16), u64, Bytes)>,
    /// Assets being decoded on the async compute pool (or queued for a permit), by (link, asset
    /// type, id).
    pub(crate) decoding: HashMap<(Entity, (u16, u16), u64), DecodeTask>,
    /// Permits of decodes running at once, and how many there are
    /// ([`FetchConfig::max_decodes_in_flight`](super::FetchConfig::max_decodes_in_flight)).
    permits: Option<(usize, Arc<tokio::sync::Semaphore>)>,
}

/// What an off-thread decoding hands back: how to put the result into the world.
pub(crate) type Decoded = Box<dyn FnOnce(&mut World) -> Result<AssetImported, String> + Send>;
/// A decoding on the async compute pool.
pub(crate) type DecodeTask = Task<Result<Decoded, String>>;

impl AssetImport {
    /// Decodes running on the async compute pool right now (at most
    /// [`FetchConfig::max_decodes_in_flight`](super::FetchConfig::max_decodes_in_flight));
    /// [`AssetStats::decoding`] also counts those queued behind them.
    pub fn decodes_running(&self) -> usize {
        self.permits
            .as_ref()
            .map_or(0, |(n, permits)| n - permits.available_permits())
    }

    /// The permits decodes take before they run: `n` of them (at least one). A changed `n` makes
    /// a new set; decodes already queued keep the old one.
    pub(crate) fn decode_permits(&mut self, n: usize) -> Arc<tokio::sync::Semaphore> {
        let n = n.max(1);
        match &self.permits {
            Some((had, permits)) if *had == n => permits.clone(),
            _ => self
                .permits
                .insert((n, Arc::new(tokio::sync::Semaphore::new(n))))
                .1
                .clone(),
        }
    }

    /// Drop what a closed link left (buffer bytes, refusals, assets waiting for a buffer).
    pub(crate) fn forget_link(&mut self, link: Entity) {
        self.buffers.retain(|(l, _), _| *l != link);
        self.failed.retain(|(l, _), _| *l != link);
        self.waiting.retain(|(l, ..)| *l != link);
        self.decoding.retain(|(l, ..), _| *l != link);
    }
}

/// A buffer's bytes arrived (inline, or at the end of its fetch), new or replacing the ones it
/// had: what refers to a slice of it (skins, instances) reads it again.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferArrived {
    /// The link it came on.
    pub link: Entity,
    /// The Buffer asset's `AssetID` on that link.
    pub buffer: u64,
}

/// Keep a buffer's bytes and say so ([`BufferArrived`]).
pub(crate) fn store_buffer(world: &mut World, link: Entity, buffer: u64, bytes: Bytes) {
    world
        .resource_mut::<AssetImport>()
        .buffers
        .insert((link, buffer), bytes);
    world.write_message(BufferArrived { link, buffer });
}

/// The bytes of the buffer a view refers to: `Ok(None)` while they have not arrived, an error
/// when the buffer was refused.
pub(crate) fn buffer_of(
    import: &AssetImport,
    link: Entity,
    view: &BufferView,
) -> Result<Option<Bytes>, String> {
    let key = (link, view.asset_id.id.id.get());
    if let Some(reason) = import.failed.get(&key) {
        return Err(format!("its buffer {} was refused ({reason})", key.1));
    }
    Ok(import.buffers.get(&key).cloned())
}

fn refuse(world: &mut World, refusal: AssetRefusal) {
    world.resource_mut::<AssetStats>().refuse(refusal);
}

impl AssetStats {
    /// Log a refusal (`warn!`) and count it.
    pub(crate) fn refuse(&mut self, refusal: AssetRefusal) {
        warn!("{refusal}");
        self.refused += 1;
        if self.recent_refusals.len() >= AssetStats::RECENT {
            self.recent_refusals.pop_front();
        }
        self.recent_refusals.push_back(refusal.clone());
        self.last_refusal = Some(refusal);
    }
}

/// Buffers fetched in the background since the last frame join the received ones.
pub(crate) fn collect_fetched_buffers(world: &mut World) {
    let Some(mut fetch) = world.remove_resource::<RemoteFetch>() else {
        return;
    };
    let done = {
        let mut progress = world.resource_mut::<OobProgress>();
        fetch.poll(&mut progress)
    };
    world.insert_resource(fetch);
    for c in done {
        match c.result {
            Ok(bytes) => {
                debug!("buffer asset {} arrived ({} bytes)", c.buffer, bytes.len());
                store_buffer(world, c.link, c.buffer, bytes);
                world.resource_mut::<AssetStats>().imported += 1;
            }
            Err(reason) => {
                refuse(
                    world,
                    AssetRefusal {
                        link: c.link,
                        what: Refused::Asset {
                            asset_type: (0, asset_type::BUFFER),
                            name: "buffer",
                            id: c.buffer,
                        },
                        reason: RefusalReason::Fetch(reason.clone()),
                    },
                );
                world
                    .resource_mut::<AssetImport>()
                    .failed
                    .insert((c.link, c.buffer), reason);
            }
        }
    }
}

/// Assets decoded off the main thread since the last frame are stored (or refused).
pub(crate) fn collect_decoded(world: &mut World) {
    let done = take_finished(&mut world.resource_mut::<AssetImport>().decoding);
    if done.is_empty() {
        return;
    }
    let registry = world.resource::<ComponentRegistry>().clone();
    for ((link, key, id), result) in done {
        match result.and_then(|finish| finish(world)) {
            Ok(AssetImported::Done) => world.resource_mut::<AssetStats>().imported += 1,
            Ok(_) => {}
            Err(reason) => {
                let Some((_, rule)) = registry.asset(key.0, key.1) else {
                    continue;
                };
                (rule.refused)(world, link, id, &reason);
                let what = Refused::Asset {
                    asset_type: key,
                    name: rule.name,
                    id,
                };
                let reason = RefusalReason::Invalid(reason);
                refuse(world, AssetRefusal { link, what, reason });
            }
        }
    }
}

/// A closed link's raw asset bodies go with it.
fn forget_raw_assets(
    mut closed: MessageReader<crate::net::LinkClosed>,
    mut raw: ResMut<RawAssets>,
) {
    for c in closed.read() {
        raw.forget_link(c.link);
    }
}

fn keep_raw(world: &mut World, key: (Entity, (u16, u16), u64), body: Bytes) {
    world
        .get_resource_or_init::<RawAssets>()
        .bodies
        .insert(key, body);
}

/// Turn received asset bodies into this node's assets, each through the rule its type
/// registered ([`MirrorAppExt::mirror_asset`]); bodies that wait for a buffer or an image are
/// retried every frame. Types without a rule are counted as ignored.
pub(crate) fn import_assets(world: &mut World) {
    let incoming = match world.get_resource_mut::<IncomingAssets>() {
        Some(mut incoming) => incoming.take(),
        None => return,
    };
    // Most frames bring no asset and nothing waits: skip the registry's copy below.
    if incoming.is_empty() && world.resource::<AssetImport>().waiting.is_empty() {
        count_waiting(world);
        return;
    }
    let registry = world.resource::<ComponentRegistry>().clone();
    let mut work = std::mem::take(&mut world.resource_mut::<AssetImport>().waiting);
    // Content applies in array order (spec: "Transactions and Authority"): a deletion cancels the
    // bodies of the same asset received before it (and still waiting), and is applied at once, so
    // a body received after it creates the asset again.
    for (link, message) in incoming {
        match message {
            IncomingAsset::Modify(m) => {
                let (ext, ty, id) = m.an_asset.key();
                if registry.asset(ext, ty).is_none() {
                    debug!("asset type ({ext}, {ty}) is not handled by this app: kept as bytes");
                    world.resource_mut::<AssetStats>().ignored += 1;
                    keep_raw(world, (link, (ext, ty), id), m.content.0);
                    continue;
                }
                work.push((link, (ext, ty), id, m.content.0));
            }
            IncomingAsset::Delete(a) => {
                let (ext, ty, id) = a.key();
                work.retain(|(l, k, i, _)| (*l, *k, *i) != (link, (ext, ty), id));
                world
                    .resource_mut::<AssetImport>()
                    .decoding
                    .remove(&(link, (ext, ty), id));
                if let Some((_, rule)) = registry.asset(ext, ty) {
                    (rule.delete)(world, link, id);
                }
                if let Some(mut raw) = world.get_resource_mut::<RawAssets>() {
                    raw.bodies.remove(&(link, (ext, ty), id));
                }
                // Dropping our handle lets Bevy free the asset once no entity uses it.
                world
                    .resource_mut::<AssetIdMap>()
                    .forget_imported(link, (ext, ty), id);
            }
        }
    }
    // A newer body of the same asset replaces one still waiting (for a buffer that may never
    // come: an Upstream that re-sends an asset deletes the buffer the old body used).
    let mut newest: HashMap<(Entity, (u16, u16), u64), usize> = HashMap::new();
    for (i, (link, ty, id, _)) in work.iter().enumerate() {
        newest.insert((*link, *ty, *id), i);
    }
    let mut i = 0;
    work.retain(|(link, ty, id, _)| {
        i += 1;
        newest.get(&(*link, *ty, *id)) == Some(&(i - 1))
    });
    // In registration order of the types (stable: arrival order kept within a type), so the
    // types others refer to (buffers) come first.
    work.sort_by_key(|(_, (ext, ty), _, _)| registry.asset(*ext, *ty).map(|(i, _)| i));
    let mut waiting = Vec::new();
    for (link, key, id, body) in work {
        let Some((_, rule)) = registry.asset(key.0, key.1) else {
            continue;
        };
        // A newer body (or a retry of one that waited) replaces a decoding still in flight.
        world
            .resource_mut::<AssetImport>()
            .decoding
            .remove(&(link, key, id));
        match (rule.import)(world, link, id, &body) {
            Ok(AssetImported::Done) => world.resource_mut::<AssetStats>().imported += 1,
            Ok(AssetImported::Waiting) => waiting.push((link, key, id, body)),
            Ok(AssetImported::Fetching | AssetImported::Decoding) => {}
            Ok(AssetImported::Ignored) => {
                debug!(
                    "{} asset {id} is not used by this app: kept as bytes",
                    rule.name
                );
                world.resource_mut::<AssetStats>().ignored += 1;
                keep_raw(world, (link, key, id), body);
            }
            Err(reason) => {
                (rule.refused)(world, link, id, &reason.to_string());
                let what = Refused::Asset {
                    asset_type: key,
                    name: rule.name,
                    id,
                };
                refuse(world, AssetRefusal { link, what, reason });
            }
        }
    }
    world.resource_mut::<AssetImport>().waiting = waiting;
    count_waiting(world);
}

/// [`AssetStats`]' counts of bodies waiting and decoding (written only when they differ, so the
/// stats are not marked changed every frame).
fn count_waiting(world: &mut World) {
    let import = world.resource::<AssetImport>();
    let counts = (import.waiting.len(), import.decoding.len());
    let stats = world.resource::<AssetStats>();
    if (stats.pending, stats.decoding) != counts {
        let mut stats = world.resource_mut::<AssetStats>();
        (stats.pending, stats.decoding) = counts;
    }
}

/// The Downstream half, in every app: received bodies go through the registry's asset rules
/// (Core's registered here; a type whose Bevy collection the app lacks is ignored).
pub(crate) fn build_import(app: &mut App) {
    use crate::schedule::NoodlesSystems;
    super::core_assets::register(app);
    app.init_resource::<AssetStats>()
        .init_resource::<AssetImport>()
        .init_resource::<RawAssets>()
        .add_message::<BufferArrived>()
        .add_systems(
            PreUpdate,
            forget_raw_assets.in_set(NoodlesSystems::ApplyTransactions),
        )
        .add_systems(
            PreUpdate,
            (collect_fetched_buffers, collect_decoded, import_assets)
                .chain()
                .in_set(NoodlesSystems::ImportAssets),
        );
}

/// Export and the asset-referring components, in an app that has Bevy's mesh, material and
/// image assets (checked once every plugin is built).
pub(crate) fn build(app: &mut App) {
    use crate::schedule::NoodlesSystems;
    let has_assets = app.world().contains_resource::<Assets<Mesh>>()
        && app.world().contains_resource::<Assets<Image>>();
    if !has_assets {
        debug!("no mesh/image assets in this app: assets are not mirrored");
        return;
    }
    {
        let mut ids = app.world_mut().get_resource_or_init::<AssetIdMap>();
        ids.set_upgrade((0, asset_type::IMAGE), upgrade::<Image>);
        // An environment is exported from (and imported as) its cubemap image.
        ids.set_upgrade((0, asset_type::ENVIRONMENT), upgrade::<Image>);
    }
    app.init_resource::<AssetExport>()
        .mirror_component::<Mesh3d>()
        .export_asset_users::<Mesh3d>()
        // Images are exported as what other assets refer to (material textures).
        .init_resource::<export::ModifiedImages>()
        .add_systems(
            PostUpdate,
            (
                export::note_modified_images,
                (export::reexport_images, export::finish_image_encodings)
                    .chain()
                    .run_if(send_tick),
            )
                .chain()
                .in_set(NoodlesSystems::ExportAssets),
        );
    #[cfg(feature = "render")]
    if app.world().contains_resource::<Assets<StandardMaterial>>() {
        app.mirror_component::<MeshMaterial3d<StandardMaterial>>()
            .export_asset_users::<MeshMaterial3d<StandardMaterial>>();
    } else {
        debug!("no StandardMaterial assets in this app: materials are not mirrored");
    }
    app.init_resource::<EnvironmentExport>()
        .init_resource::<environment::ImportedEnvironments>()
        .add_systems(
            PreUpdate,
            environment::light_cameras.after(NoodlesSystems::ImportAssets),
        )
        .mirror_component::<GeneratedEnvironmentMapLight>()
        .add_observer(
            |remove: On<Remove, Shared>, mut export: ResMut<EnvironmentExport>| {
                export.stop_using(remove.entity)
            },
        )
        .add_observer(
            |remove: On<Remove, GeneratedEnvironmentMapLight>,
             mut export: ResMut<EnvironmentExport>| export.stop_using(remove.entity),
        )
        .add_systems(
            PostUpdate,
            (
                note_modified_environments,
                export_environments.run_if(send_tick),
            )
                .chain()
                .in_set(NoodlesSystems::ExportAssets),
        );
    if app
        .world()
        .contains_resource::<Assets<SkinnedMeshInverseBindposes>>()
    {
        app.init_resource::<skin::SkinExport>()
            .init_resource::<skin::SkinImport>()
            .mirror_component::<skin::Skin>()
            .add_observer(
                |remove: On<Remove, Shared>, mut export: ResMut<skin::SkinExport>| {
                    export.forget_entity(remove.entity, true)
                },
            )
            // A skin whose `SkinnedMesh` went: its removal goes out.
            .add_observer(
                |remove: On<Remove, SkinnedMesh>,
                 mut export: ResMut<skin::SkinExport>,
                 shared: Query<(), With<Shared>>,
                 mut commands: Commands| {
                    export.forget_entity(remove.entity, false);
                    if shared.contains(remove.entity)
                        && let Ok(mut e) = commands.get_entity(remove.entity)
                    {
                        e.try_remove::<skin::Skin>();
                    }
                },
            )
            .add_systems(
                PostUpdate,
                (
                    skin::note_modified_skins,
                    skin::export_skins.run_if(send_tick),
                )
                    .chain()
                    .in_set(NoodlesSystems::ExportAssets),
            )
            .add_systems(
                PreUpdate,
                skin::apply_skins
                    .in_set(NoodlesSystems::ImportAssets)
                    .after(import_assets),
            );
    } else {
        debug!("no SkinnedMeshInverseBindposes assets in this app: skins are not mirrored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_take_permits_and_a_new_budget_makes_a_new_set() {
        let mut import = AssetImport::default();
        assert_eq!(import.decodes_running(), 0);
        let permits = import.decode_permits(2);
        assert!(Arc::ptr_eq(&permits, &import.decode_permits(2)));
        let first = permits.clone().try_acquire_owned().unwrap();
        let _second = permits.clone().try_acquire_owned().unwrap();
        assert_eq!(import.decodes_running(), 2);
        // The budget is full: a third decode waits for one of them.
        assert!(permits.clone().try_acquire_owned().is_err());
        drop(first);
        assert_eq!(import.decodes_running(), 1);
        // Zero is taken as one; a changed budget is a new set, empty.
        let one = import.decode_permits(0);
        assert!(!Arc::ptr_eq(&permits, &one));
        assert_eq!((one.available_permits(), import.decodes_running()), (1, 0));
    }
}
