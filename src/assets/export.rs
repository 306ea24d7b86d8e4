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

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use bevy::asset::UntypedAssetId;
use bevy::ecs::component::Mutable;
use bevy::prelude::*;
use bytes::Bytes;

use super::convert;
use super::remote::OobServer;
use super::sync::{AssetStats, asset_type, buffer_body, delete_buffer, whole_view};
use crate::codec::{ImageAsset, Wire};
use crate::mirror::{AssetIdMap, Outgoing, Shared, SharedId, upgrade};
use crate::schedule::NoodlesSystems;

/// A Bevy asset type the Upstream exports as a NOODLES2 asset.
pub trait ExportAsset: Asset {
    /// The NOODLES2 asset type it is sent as: `(extension, identifier)`.
    const ASSET_TYPE: (u16, u16);

    /// This asset's body. Its buffer and the images it refers to are exported through `cx`.
    /// `Ok(None)`: something it refers to is not loaded yet (it is tried again next frame);
    /// `Err`: it cannot be shared (logged, not sent).
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
            .add_observer(|_: On<Remove, Shared>, mut state: ResMut<ExportState<U>>| {
                state.dirty = true
            })
            .add_systems(
                PostUpdate,
                export_used::<U>.in_set(NoodlesSystems::ExportAssets),
            )
    }
}

/// What the Upstream has exported (shared by every exporter, so ids are unique).
#[derive(Resource, Default)]
pub struct AssetExport {
    next_id: u64,
    /// Bevy asset → (its asset id, its buffer's asset id or 0, asset type).
    exported: HashMap<UntypedAssetId, (u64, u64, (u16, u16))>,
    /// Exported asset → the images it refers to.
    dependencies: HashMap<UntypedAssetId, Vec<UntypedAssetId>>,
}

impl AssetExport {
    /// A fresh asset id (never reused in the session).
    pub(crate) fn allocate(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Per user type: assets waiting for their Bevy data, and whether a sweep is due.
#[derive(Resource)]
struct ExportState<U> {
    waiting: HashSet<UntypedAssetId>,
    dirty: bool,
    _user: PhantomData<fn() -> U>,
}

impl<U> Default for ExportState<U> {
    fn default() -> Self {
        ExportState {
            waiting: HashSet::new(),
            dirty: false,
            _user: PhantomData,
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

    /// The asset id of image `h`, exported now if it was not; `None` while it is not loaded
    /// (the asset is then tried again next frame) or when it cannot be shared (logged).
    pub fn image(&mut self, h: &Handle<Image>) -> Option<u64> {
        let key = h.id().untyped();
        if let Some((id, _, _)) = self.export.exported.get(&key) {
            self.dependencies.push(key);
            return Some(*id);
        }
        let Some(img) = self.images.and_then(|images| images.get(h)) else {
            self.missing = true;
            return None;
        };
        let id = export_image(key, img, self.export, self.ids, self.out, self.oob)?;
        self.stats.exported += 1;
        self.dependencies.push(key);
        Some(id)
    }
}

/// Export `img` (Bevy image `key`) as a Buffer asset and an Image asset, reusing the image's id
/// if it was exported before. `None` (logged) when it cannot be shared.
fn export_image(
    key: UntypedAssetId,
    img: &Image,
    export: &mut AssetExport,
    ids: &mut AssetIdMap,
    out: &mut Outgoing,
    oob: Option<&OobServer>,
) -> Option<u64> {
    let (png, flags) = match convert::image_to_wire(img) {
        Ok(x) => x,
        Err(e) => {
            warn!("image {key:?} cannot be shared: {e}");
            return None;
        }
    };
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

/// The asset a `Modified` event names, untyped.
fn modified_id<A: Asset>(event: &AssetEvent<A>) -> Option<UntypedAssetId> {
    match event {
        AssetEvent::Modified { id } => Some(id.untyped()),
        _ => None,
    }
}

/// Forget an exported asset so it is exported again (its old buffer goes; its id is kept).
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

/// Export the assets `U` components of shared entities use; re-export modified ones; delete
/// those no shared entity uses any more.
#[expect(clippy::too_many_arguments, reason = "the exporter of one user type")]
fn export_used<U: AssetUser>(
    mut state: ResMut<ExportState<U>>,
    mut export: ResMut<AssetExport>,
    mut ids: ResMut<AssetIdMap>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    assets: Res<Assets<U::Asset>>,
    images: Option<Res<Assets<Image>>>,
    mut events: MessageReader<AssetEvent<U::Asset>>,
    mut users: Query<(&mut U, Ref<SharedId>), With<Shared>>,
    removed: RemovedComponents<U>,
    oob: Option<Res<OobServer>>,
) {
    let oob = oob.as_deref();
    let mut want: Vec<UntypedAssetId> = users
        .iter_mut()
        .filter(|(u, id)| u.is_changed() || id.is_added())
        .map(|(u, _)| u.asset().untyped())
        .collect();
    for id in events.read().filter_map(modified_id) {
        if forget(&mut export, &mut out, oob, id) {
            want.push(id);
        }
    }
    want.extend(std::mem::take(&mut state.waiting));
    let mut newly: HashSet<UntypedAssetId> = HashSet::new();
    for key in want {
        if export.exported.contains_key(&key) {
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
        let body = match body {
            Ok(Some(body)) if !missing => body,
            Ok(_) => {
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
        export.dependencies.insert(key, dependencies);
        ids.export((ext, ty), key, id);
        stats.exported += 1;
        newly.insert(key);
    }
    // Entities whose asset was exported late send their component now.
    if !newly.is_empty() {
        for (mut u, _) in users.iter_mut() {
            if newly.contains(&u.asset().untyped()) {
                u.set_changed();
            }
        }
    }
    // Sweep what no shared entity uses any more (unsharing marks the sweep through an observer).
    if !removed.is_empty() {
        state.dirty = true;
    }
    if std::mem::take(&mut state.dirty) {
        let used: HashSet<UntypedAssetId> =
            users.iter().map(|(u, _)| u.asset().untyped()).collect();
        let ty = U::Asset::ASSET_TYPE;
        let gone: Vec<UntypedAssetId> = export
            .exported
            .iter()
            .filter(|(k, (_, _, t))| *t == ty && !used.contains(*k))
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            delete(&mut export, &mut ids, &mut out, oob, key);
        }
        // Images no exported asset refers to any more.
        let needed: HashSet<UntypedAssetId> =
            export.dependencies.values().flatten().copied().collect();
        let orphans: Vec<UntypedAssetId> = export
            .exported
            .iter()
            .filter(|(k, (_, _, t))| *t == (0, asset_type::IMAGE) && !needed.contains(*k))
            .map(|(k, _)| *k)
            .collect();
        for key in orphans {
            delete(&mut export, &mut ids, &mut out, oob, key);
        }
    }
}

/// Delete an exported asset (and its buffer) on every Downstream.
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
        ids.unexport(key);
        export.dependencies.remove(&key);
    }
}

/// Images that changed are sent again under the same id (the assets that use them refer to the
/// id, so they need not be sent again).
pub(crate) fn reexport_images(
    mut export: ResMut<AssetExport>,
    mut ids: ResMut<AssetIdMap>,
    mut out: ResMut<Outgoing>,
    mut stats: ResMut<AssetStats>,
    images: Res<Assets<Image>>,
    mut events: MessageReader<AssetEvent<Image>>,
    oob: Option<Res<OobServer>>,
) {
    let oob = oob.as_deref();
    for key in events.read().filter_map(modified_id) {
        let is_image = export
            .exported
            .get(&key)
            .is_some_and(|(_, _, t)| *t == (0, asset_type::IMAGE));
        if !is_image {
            continue;
        }
        let Some(img) = images.get(key.typed::<Image>()) else {
            // Gone from Bevy's collection: gone on the wire too.
            delete(&mut export, &mut ids, &mut out, oob, key);
            continue;
        };
        forget(&mut export, &mut out, oob, key);
        if export_image(key, img, &mut export, &mut ids, &mut out, oob).is_some() {
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
