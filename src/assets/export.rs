//! Upstream: Bevy assets used by shared entities, exported as NOODLES2 assets. An asset type is
//! exported by registering the component that refers to it ([`AssetUser`], for example
//! `Mesh3d`) with [`ExportAppExt::export_asset_users`]; the asset type says how it is encoded
//! ([`ExportAsset`]). Core registers `Mesh3d` (meshes) and, with `render`,
//! `MeshMaterial3d<StandardMaterial>` (materials and their images) through that same call.
//!
//! Each Bevy asset is exported once, whatever the number of entities using it; it is sent again
//! (under the same id, with a new buffer) when the Bevy asset changes, and deleted when no shared
//! entity uses it any more. A component whose asset is exported late is marked changed, so its
//! entity's component goes out once the asset has an id.
//!
//! The cost follows changes: exporters run on send ticks only, look at the components that
//! changed since the last one, count users per asset (observers note entities that stop using
//! one), count references per image, and encode large images off the main thread
//! ([`OFF_THREAD_BYTES`]).

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use bevy::asset::UntypedAssetId;
use bevy::ecs::component::Mutable;
use bevy::prelude::*;
use bevy::tasks::{AsyncComputeTaskPool, Task};
use bytes::Bytes;

use super::convert;
use super::remote::OobServer;
use super::sync::{AssetStats, asset_type, buffer_body, delete_buffer, whole_view};
use super::users::{RefCounts, Users, modified, take_finished};
use crate::codec::{ImageAsset, ImageFlags, Wire};
use crate::mirror::changes::anything_changed;
use crate::mirror::{AssetIdMap, Outgoing, Shared, SharedId, send_tick, upgrade};
use crate::schedule::NoodlesSystems;

/// Work on larger data runs on Bevy's async compute pool, so a large texture or mesh does not
/// stall a frame: encoding an image to PNG (Upstream, counted in pixel bytes), converting an
/// environment's cubemap, and decoding a received image, mesh or environment (Downstream,
/// counted in encoded bytes). What uses such an asset waits for it.
pub const OFF_THREAD_BYTES: usize = 256 * 1024;

/// A Bevy asset type the Upstream exports as a NOODLES2 asset.
pub trait ExportAsset: Asset {
    /// The NOODLES2 asset type it is sent as: `(extension, identifier)`.
    const ASSET_TYPE: (u16, u16);

    /// This asset's body. Its buffer and the images it refers to are exported through `cx`.
    /// `Ok(None)`: something it refers to is not ready yet (it is tried again on the next send
    /// tick); `Err`: it cannot be shared (logged, not sent).
    fn to_wire(&self, cx: &mut ExportCx<'_>) -> Result<Option<Bytes>, String>;
}

/// A component of shared entities that uses an exported asset.
pub trait AssetUser: Component<Mutability = Mutable> {
    /// The asset it uses.
    type Asset: ExportAsset;
    /// Which one.
    fn asset(&self) -> AssetId<Self::Asset>;
}

/// Registering exported asset users on an [`App`].
pub trait ExportAppExt {
    /// Export the assets that shared entities' `U` components use (needs `Assets<U::Asset>`).
    fn export_asset_users<U: AssetUser>(&mut self) -> &mut Self;
}

impl ExportAppExt for App {
    fn export_asset_users<U: AssetUser>(&mut self) -> &mut Self {
        // Proposals that refer to an exported asset by its id get a handle to it.
        self.world_mut()
            .get_resource_or_init::<AssetIdMap>()
            .set_upgrade(U::Asset::ASSET_TYPE, upgrade::<U::Asset>);
        self.init_resource::<ExportState<U>>()
            .add_observer(|remove: On<Remove, U>, mut state: ResMut<ExportState<U>>| {
                state.stop_using(remove.entity)
            })
            .add_observer(
                |remove: On<Remove, Shared>, mut state: ResMut<ExportState<U>>| {
                    state.stop_using(remove.entity)
                },
            )
            .add_systems(
                PostUpdate,
                (
                    note_modified::<U>,
                    anything_changed::<U>
                        .pipe(export_used::<U>)
                        .run_if(send_tick)
                        .after(finish_image_encodings),
                )
                    .chain()
                    .in_set(NoodlesSystems::ExportAssets),
            )
    }
}

/// What the Upstream has exported (shared by every exporter, so ids are unique).
#[derive(Resource, Default)]
pub struct AssetExport {
    next_id: u64,
    /// Bevy asset → (its asset id, its buffer's asset id or 0, asset type).
    exported: HashMap<UntypedAssetId, (u64, u64, (u16, u16))>,
    /// Asset → the images it refers to (kept while it waits for one of them, too).
    dependencies: HashMap<UntypedAssetId, Vec<UntypedAssetId>>,
    /// How many assets refer to each image; an image nothing refers to is deleted.
    image_refs: RefCounts<UntypedAssetId>,
    /// Images being encoded on the async compute pool.
    encoding: HashMap<UntypedAssetId, Encoding>,
    /// Images that cannot be shared (logged once), until they change.
    unshareable: HashSet<UntypedAssetId>,
}

impl AssetExport {
    /// A fresh asset id (never reused in the session).
    pub(crate) fn allocate(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Images being encoded off the main thread.
    pub fn encoding(&self) -> usize {
        self.encoding.len()
    }
}

/// An image being encoded off the main thread: its bytes and flags on the wire, or why not.
pub(crate) type Encoding = Task<Result<(Vec<u8>, ImageFlags), String>>;

/// Per user type: which shared entity uses which asset, and what changed since the last send
/// tick.
#[derive(Resource)]
struct ExportState<U> {
    users: Users<UntypedAssetId>,
    /// Assets nobody may use any more (an entity stopped using them); checked on the send tick.
    unused: Vec<UntypedAssetId>,
    /// Assets waiting for their Bevy data or for an image.
    waiting: HashSet<UntypedAssetId>,
    /// Bevy assets modified since the last send tick (asset events are read every frame: a
    /// reader that skips frames loses them).
    modified: HashSet<UntypedAssetId>,
    _user: PhantomData<fn() -> U>,
}

impl<U> Default for ExportState<U> {
    fn default() -> Self {
        ExportState {
            users: Users::default(),
            unused: Vec::new(),
            waiting: HashSet::new(),
            modified: HashSet::new(),
            _user: PhantomData,
        }
    }
}

impl<U> ExportState<U> {
    /// Entity `e` lost its `U` or stopped being shared.
    fn stop_using(&mut self, e: Entity) {
        if let Some(key) = self.users.remove(e) {
            self.unused.push(key);
        }
    }
}

/// What an [`ExportAsset::to_wire`] can do while it encodes.
pub struct ExportCx<'a> {
    export: &'a mut AssetExport,
    ids: &'a mut AssetIdMap,
    out: &'a mut Outgoing,
    oob: Option<&'a OobServer>,
    images: Option<&'a Assets<Image>>,
    stats: &'a mut AssetStats,
    buffer: u64,
    dependencies: Vec<UntypedAssetId>,
    missing: bool,
}

impl ExportCx<'_> {
    /// The id of this asset's buffer (allocated on first call).
    pub fn buffer_id(&mut self) -> u64 {
        if self.buffer == 0 {
            self.buffer = self.export.allocate();
        }
        self.buffer
    }

    /// Send `bytes` as this asset's buffer: inline, or out of band above the OOB threshold.
    pub fn write_buffer(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        let id = self.buffer_id();
        let body = buffer_body(bytes, id, self.oob).ok_or("the buffer cannot be encoded")?;
        self.out.modify_asset((0, asset_type::BUFFER, id), body);
        Ok(())
    }

    /// The asset id of image `h`, exported now if it was not. `None` while it is not loaded or
    /// still being encoded off the main thread (the asset is then tried again on the next send
    /// tick), or when it cannot be shared (logged once).
    pub fn image(&mut self, h: &Handle<Image>) -> Option<u64> {
        let key = h.id().untyped();
        self.dependencies.push(key);
        if let Some((id, _, _)) = self.export.exported.get(&key) {
            return Some(*id);
        }
        if self.export.unshareable.contains(&key) {
            return None;
        }
        if self.export.encoding.contains_key(&key) {
            self.missing = true;
            return None;
        }
        let Some(img) = self.images.and_then(|images| images.get(h)) else {
            self.missing = true;
            return None;
        };
        if encode_image(key, img, self.export) {
            self.missing = true;
            return None;
        }
        let encoded = convert::image_to_wire(img).map_err(|e| e.to_string());
        let (export, ids, out, oob) = (&mut *self.export, &mut *self.ids, &mut *self.out, self.oob);
        let id = finish_image(key, encoded, export, ids, out, oob)?;
        self.stats.exported += 1;
        Some(id)
    }
}

/// Start encoding a large image on the async compute pool (true), or leave a small one to be
/// encoded at once (false).
fn encode_image(key: UntypedAssetId, img: &Image, export: &mut AssetExport) -> bool {
    if img
        .data
        .as_ref()
        .is_none_or(|d| d.len() <= OFF_THREAD_BYTES)
    {
        return false;
    }
    let img = img.clone();
    let task = AsyncComputeTaskPool::get()
        .spawn(async move { convert::image_to_wire(&img).map_err(|e| e.to_string()) });
    // Replacing a task drops (cancels) the older encoding.
    export.encoding.insert(key, task);
    true
}

/// Send an encoded image (Bevy image `key`) as a Buffer asset and an Image asset, under the id it
/// had if it was exported before (whose old buffer goes). `None` (logged once) when it cannot be
/// shared.
fn finish_image(
    key: UntypedAssetId,
    encoded: Result<(Vec<u8>, ImageFlags), String>,
    export: &mut AssetExport,
    ids: &mut AssetIdMap,
    out: &mut Outgoing,
    oob: Option<&OobServer>,
) -> Option<u64> {
    let (png, flags) = match encoded {
        Ok(x) => x,
        Err(e) => {
            warn!("image {key:?} cannot be shared: {e}");
            export.unshareable.insert(key);
            return None;
        }
    };
    forget(export, out, oob, key);
    let buffer = export.allocate();
    let id = ids.exported_id(key).unwrap_or_else(|| export.allocate());
    let view = whole_view(png.len(), buffer);
    let body = ImageAsset { view, flags }.encode_bytes().ok()?;
    out.modify_asset(
        (0, asset_type::BUFFER, buffer),
        buffer_body(png, buffer, oob)?,
    );
    out.modify_asset((0, asset_type::IMAGE, id), body);
    export
        .exported
        .insert(key, (id, buffer, (0, asset_type::IMAGE)));
    ids.export((0, asset_type::IMAGE), key, id);
    Some(id)
}

/// Images encoded off the main thread since the last send tick are sent (if something still
/// refers to them); the assets waiting for them are tried again right after.
pub(crate) fn finish_image_encodings(
    mut export: ResMut<AssetExport>,
    mut ids: ResMut<AssetIdMap>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    oob: Option<Res<OobServer>>,
) {
    for (key, encoded) in take_finished(&mut export.encoding) {
        if export.image_refs.is_used(&key)
            && finish_image(
                key,
                encoded,
                &mut export,
                &mut ids,
                &mut out,
                oob.as_deref(),
            )
            .is_some()
        {
            stats.exported += 1;
        }
    }
}

/// Forget an exported asset's content so it is exported again (its old buffer goes; its id is
/// kept, and so are the images it refers to until its new content says otherwise).
fn forget(
    export: &mut AssetExport,
    out: &mut Outgoing,
    oob: Option<&OobServer>,
    id: UntypedAssetId,
) -> bool {
    match export.exported.remove(&id) {
        Some((_, buffer, _)) => {
            if buffer != 0 {
                delete_buffer(out, oob, buffer);
            }
            true
        }
        None => false,
    }
}

/// Every frame: note the `U` assets Bevy modified, for the next send tick.
fn note_modified<U: AssetUser>(
    mut events: MessageReader<AssetEvent<U::Asset>>,
    mut state: ResMut<ExportState<U>>,
) {
    state
        .modified
        .extend(modified(&mut events).map(|id| id.untyped()));
}

/// On send ticks: export the assets that `U` components of shared entities started using,
/// re-export modified ones, and delete those no shared entity uses any more. The work follows
/// what changed: entities that stop using an asset are noted by observers, users are counted per
/// asset, and only the users of an asset that was waiting are marked changed when it goes out.
#[expect(clippy::too_many_arguments, reason = "the exporter of one user type")]
#[expect(clippy::type_complexity, reason = "change-detection filters")]
fn export_used<U: AssetUser>(
    // Whether the first query below selects anything (a cheap test that spares its scan).
    In(any_changed): In<bool>,
    mut state: ResMut<ExportState<U>>,
    mut export: ResMut<AssetExport>,
    mut ids: ResMut<AssetIdMap>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    assets: Res<Assets<U::Asset>>,
    images: Option<Res<Assets<Image>>>,
    // Shared entities whose `U` changed (or that were just shared), and every shared `U` (to
    // mark the users of a late asset changed).
    mut users: ParamSet<(
        Query<(Entity, &U), (With<Shared>, Or<(Changed<U>, Added<SharedId>)>)>,
        Query<&mut U, With<Shared>>,
    )>,
    oob: Option<Res<OobServer>>,
) {
    let oob = oob.as_deref();
    let state = &mut *state;
    let mut want: HashSet<UntypedAssetId> = HashSet::new();
    // The query's scan is skipped when nothing can match it.
    if any_changed {
        for (e, u) in users.p0().iter() {
            let key = u.asset().untyped();
            if let Some(old) = state.users.set(e, key) {
                state.unused.push(old);
            }
            want.insert(key);
        }
    }
    for key in std::mem::take(&mut state.unused) {
        if !state.users.is_used(&key) {
            state.waiting.remove(&key);
            delete(&mut export, &mut ids, &mut out, oob, key);
        }
    }
    for key in std::mem::take(&mut state.modified) {
        if forget(&mut export, &mut out, oob, key) {
            want.insert(key);
        }
    }
    let late = std::mem::take(&mut state.waiting);
    want.extend(late.iter().copied());
    for key in want {
        if export.exported.contains_key(&key) || !state.users.is_used(&key) {
            continue;
        }
        // Created by an accepted proposal: its body already went out as proposed (under this
        // id); from now on it is this exporter's, re-sent when it changes, deleted when unused.
        if let Some(id) = ids.claim(key) {
            export.exported.insert(key, (id, 0, U::Asset::ASSET_TYPE));
            continue;
        }
        let Some(asset) = assets.get(key.typed::<U::Asset>()) else {
            state.waiting.insert(key);
            continue;
        };
        let mut cx = ExportCx {
            export: &mut export,
            ids: &mut ids,
            out: &mut out,
            oob,
            images: images.as_deref(),
            stats: &mut stats,
            buffer: 0,
            dependencies: Vec::new(),
            missing: false,
        };
        let body = asset.to_wire(&mut cx);
        let (buffer, dependencies, missing) = (cx.buffer, cx.dependencies, cx.missing);
        for image in export.set_dependencies(key, dependencies) {
            delete(&mut export, &mut ids, &mut out, oob, image);
        }
        let body = match body {
            Ok(Some(body)) if !missing => body,
            Ok(_) => {
                if buffer != 0 {
                    delete_buffer(&mut out, oob, buffer);
                }
                state.waiting.insert(key);
                continue;
            }
            Err(e) => {
                warn!("{key:?} cannot be shared: {e}");
                continue;
            }
        };
        let id = ids.exported_id(key).unwrap_or_else(|| export.allocate());
        let (ext, ty) = U::Asset::ASSET_TYPE;
        out.modify_asset((ext, ty, id), body);
        export.exported.insert(key, (id, buffer, (ext, ty)));
        ids.export((ext, ty), key, id);
        stats.exported += 1;
        // Entities whose asset was exported late send their component now.
        if late.contains(&key) {
            let mut all = users.p1();
            for e in state.users.users_of(&key) {
                if let Ok(mut u) = all.get_mut(e) {
                    u.set_changed();
                }
            }
        }
    }
}

impl AssetExport {
    /// `key` now refers to `images`; returns the images nothing refers to any more.
    fn set_dependencies(
        &mut self,
        key: UntypedAssetId,
        images: Vec<UntypedAssetId>,
    ) -> Vec<UntypedAssetId> {
        let old = self.dependencies.remove(&key).unwrap_or_default();
        let gone = self.image_refs.replace(&old, &images);
        if !images.is_empty() {
            self.dependencies.insert(key, images);
        }
        gone
    }
}

/// Delete an exported asset (and its buffer) on every Downstream, and the images only it
/// referred to; an encoding in flight is cancelled.
fn delete(
    export: &mut AssetExport,
    ids: &mut AssetIdMap,
    out: &mut Outgoing,
    oob: Option<&OobServer>,
    key: UntypedAssetId,
) {
    if let Some((id, buffer, (ext, ty))) = export.exported.remove(&key) {
        out.delete_asset((ext, ty, id));
        if buffer != 0 {
            delete_buffer(out, oob, buffer);
        }
    }
    ids.unexport(key);
    export.encoding.remove(&key);
    export.unshareable.remove(&key);
    for image in export.set_dependencies(key, Vec::new()) {
        delete(export, ids, out, oob, image);
    }
}

/// Images modified since the last send tick (read every frame).
#[derive(Resource, Default)]
pub(crate) struct ModifiedImages(HashSet<UntypedAssetId>);

/// Every frame: note the images Bevy modified, for the next send tick.
pub(crate) fn note_modified_images(
    mut events: MessageReader<AssetEvent<Image>>,
    mut modified: ResMut<ModifiedImages>,
) {
    modified
        .0
        .extend(super::users::modified(&mut events).map(|id| id.untyped()));
}

/// On send ticks: images that changed are sent again under the same id (the assets that use them
/// refer to the id, so they need not be sent again); large ones are encoded off the main thread
/// and replace the old content when done.
pub(crate) fn reexport_images(
    mut modified: ResMut<ModifiedImages>,
    mut export: ResMut<AssetExport>,
    mut ids: ResMut<AssetIdMap>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    images: Res<Assets<Image>>,
    oob: Option<Res<OobServer>>,
) {
    let oob = oob.as_deref();
    for key in std::mem::take(&mut modified.0) {
        if !export.image_refs.is_used(&key) {
            continue;
        }
        export.unshareable.remove(&key);
        let Some(img) = images.get(key.typed::<Image>()) else {
            // Gone from Bevy's collection: gone on the wire too.
            delete(&mut export, &mut ids, &mut out, oob, key);
            continue;
        };
        if encode_image(key, img, &mut export) {
            continue;
        }
        export.encoding.remove(&key);
        let encoded = convert::image_to_wire(img).map_err(|e| e.to_string());
        if finish_image(key, encoded, &mut export, &mut ids, &mut out, oob).is_some() {
            stats.exported += 1;
        }
    }
}

impl ExportAsset for Mesh {
    const ASSET_TYPE: (u16, u16) = (0, asset_type::MESH);

    fn to_wire(&self, cx: &mut ExportCx<'_>) -> Result<Option<Bytes>, String> {
        let buffer = cx.buffer_id();
        let (bytes, wire) = convert::mesh_to_wire(self, buffer).map_err(|e| e.to_string())?;
        // Joint indices and weights travel together or not at all.
        let lone_skin = wire.flags.has_joint_0() == 0;
        let skipped: Vec<&str> = [
            (Mesh::ATTRIBUTE_JOINT_INDEX, lone_skin),
            (Mesh::ATTRIBUTE_JOINT_WEIGHT, lone_skin),
            (Mesh::ATTRIBUTE_COLOR, true),
        ]
        .into_iter()
        .filter(|(a, skipped)| *skipped && self.contains_attribute(*a))
        .map(|(a, _)| a.name)
        .collect();
        if !skipped.is_empty() {
            info!(
                "mesh attributes {skipped:?} are not sent (vertex colors are not supported yet; joint indices are only sent with joint weights)"
            );
        }
        cx.write_buffer(bytes)?;
        wire.encode_bytes().map(Some).map_err(|e| e.to_string())
    }
}

impl AssetUser for Mesh3d {
    type Asset = Mesh;
    fn asset(&self) -> AssetId<Mesh> {
        self.0.id()
    }
}

#[cfg(feature = "render")]
impl ExportAsset for StandardMaterial {
    const ASSET_TYPE: (u16, u16) = (0, asset_type::PBR_MATERIAL);

    fn to_wire(&self, cx: &mut ExportCx<'_>) -> Result<Option<Bytes>, String> {
        let wire = convert::material_to_wire(self, &mut |h| cx.image(h));
        if cx.missing {
            return Ok(None);
        }
        wire.encode_bytes().map(Some).map_err(|e| e.to_string())
    }
}

#[cfg(feature = "render")]
impl AssetUser for MeshMaterial3d<StandardMaterial> {
    type Asset = StandardMaterial;
    fn asset(&self) -> AssetId<StandardMaterial> {
        self.0.id()
    }
}
