//! NOODLES2 asset ids ↔ Bevy assets, kept apart by role like entity ids: the ids this node gives
//! the assets it exports (as Upstream), and the ids each Upstream gave the assets this node
//! imports from it (per link).

use std::collections::HashMap;

use bevy::asset::UntypedAssetId;
use bevy::prelude::*;

use crate::link::Role;
use crate::net::NoodlesLink;

/// Makes a strong handle from an asset id of one Bevy asset type (see [`AssetIdMap::export`]).
pub type UpgradeFn = fn(&mut World, UntypedAssetId) -> Option<UntypedHandle>;

/// Reserves a handle for an asset that has not arrived yet (see
/// [`MirrorAsset::reserve`](super::MirrorAsset::reserve)).
pub type ReserveFn = fn(&World) -> Option<UntypedHandle>;

/// NOODLES2 asset ids ↔ Bevy assets, filled by the asset layer.
///
/// - Upstream: each exported Bevy asset has one `AssetID` (ids are unique across asset types, and
///   never reused in a session).
/// - Downstream: per link, each `(asset type, AssetID)` has the Bevy handle that holds it,
///   reserved when a component refers to it before its body arrives.
#[derive(Resource, Default)]
pub struct AssetIdMap {
    exported: HashMap<UntypedAssetId, u64>,
    local: HashMap<u64, ((u16, u16), UntypedAssetId)>,
    imported: HashMap<(Entity, (u16, u16), u64), UntypedHandle>,
    imported_ids: HashMap<(Entity, UntypedAssetId), u64>,
    reservers: HashMap<(u16, u16), ReserveFn>,
    upgraders: HashMap<(u16, u16), UpgradeFn>,
    /// Exported by a proposal, not by the exporter of its type yet.
    unclaimed: std::collections::HashSet<UntypedAssetId>,
}

impl AssetIdMap {
    /// Upstream: the `AssetID` Bevy asset `asset` is exported as.
    pub fn exported_id(&self, asset: UntypedAssetId) -> Option<u64> {
        self.exported.get(&asset).copied()
    }

    /// Upstream: how many assets are exported.
    pub fn exported_count(&self) -> usize {
        self.local.len()
    }

    /// Downstream: how many assets every link together has here.
    pub fn imported_count(&self) -> usize {
        self.imported.len()
    }

    /// Upstream: the Bevy asset exported as `id`, with its asset type.
    pub fn exported_asset(&self, id: u64) -> Option<((u16, u16), UntypedAssetId)> {
        self.local.get(&id).copied()
    }

    /// Upstream: Bevy asset `asset` is exported as `(asset_type, id)`.
    pub fn export(&mut self, asset_type: (u16, u16), asset: UntypedAssetId, id: u64) {
        if let Some(old) = self.exported.insert(asset, id)
            && old != id
        {
            self.local.remove(&old);
        }
        self.local.insert(id, (asset_type, asset));
    }

    /// Upstream: like [`AssetIdMap::export`], for an asset whose body another layer sent (an
    /// accepted proposal's): the exporter of its type takes it over with
    /// [`AssetIdMap::claim`] when a shared entity first uses it.
    pub fn export_unclaimed(&mut self, asset_type: (u16, u16), asset: UntypedAssetId, id: u64) {
        self.export(asset_type, asset, id);
        self.unclaimed.insert(asset);
    }

    /// Upstream: take over an asset exported with [`AssetIdMap::export_unclaimed`]; returns its id
    /// (once).
    pub fn claim(&mut self, asset: UntypedAssetId) -> Option<u64> {
        if self.unclaimed.remove(&asset) {
            self.exported_id(asset)
        } else {
            None
        }
    }

    /// Upstream: `asset` is no longer exported; returns the id it had.
    pub fn unexport(&mut self, asset: UntypedAssetId) -> Option<u64> {
        self.unclaimed.remove(&asset);
        let id = self.exported.remove(&asset)?;
        self.local.remove(&id);
        Some(id)
    }

    /// Upstream: how to turn an exported asset id of `asset_type` back into a strong handle (for
    /// proposals that refer to it). Registered by the exporter of that type.
    pub fn set_upgrade(&mut self, asset_type: (u16, u16), upgrade: UpgradeFn) {
        self.upgraders.insert(asset_type, upgrade);
    }

    /// Downstream: the handle holding asset `(asset_type, id)` of `link`, if it arrived or was
    /// reserved.
    pub fn imported(
        &self,
        link: Entity,
        asset_type: (u16, u16),
        id: u64,
    ) -> Option<&UntypedHandle> {
        self.imported.get(&(link, asset_type, id))
    }

    /// Downstream: the `AssetID` on `link` of the Bevy asset behind an imported handle.
    pub fn imported_id(&self, link: Entity, asset: UntypedAssetId) -> Option<u64> {
        self.imported_ids.get(&(link, asset)).copied()
    }

    /// Downstream: keep `handle` for asset `(asset_type, id)` of `link`.
    pub fn set_imported(
        &mut self,
        link: Entity,
        asset_type: (u16, u16),
        id: u64,
        handle: UntypedHandle,
    ) {
        let asset = handle.id();
        if let Some(old) = self.imported.insert((link, asset_type, id), handle) {
            self.imported_ids.remove(&(link, old.id()));
        }
        self.imported_ids.insert((link, asset), id);
    }

    /// Downstream: drop the handle of asset `(asset_type, id)` of `link` (Bevy frees the asset
    /// once no entity uses it); returns it.
    pub fn forget_imported(
        &mut self,
        link: Entity,
        asset_type: (u16, u16),
        id: u64,
    ) -> Option<UntypedHandle> {
        let h = self.imported.remove(&(link, asset_type, id))?;
        self.imported_ids.remove(&(link, h.id()));
        Some(h)
    }

    /// Downstream: drop every handle kept for `link` (it closed).
    pub fn forget_link(&mut self, link: Entity) {
        self.imported.retain(|(l, _, _), _| *l != link);
        self.imported_ids.retain(|(l, _), _| *l != link);
    }

    /// How to reserve a handle for assets of `asset_type` (from its registry rule).
    pub(crate) fn set_reserve(&mut self, asset_type: (u16, u16), reserve: ReserveFn) {
        self.reservers.insert(asset_type, reserve);
    }
}

/// The Bevy handle for asset `(asset_type, id)` as a component received on `link` names it.
///
/// - On a link where this node is Downstream, ids are the Upstream's: the handle imported (or
///   reserved, if the body has not arrived yet) for that link.
/// - On a link where this node is Upstream (a proposal), ids are this node's own: an asset the
///   same proposal created (imported under the link while the proposal is applied), else the
///   exported Bevy asset with that id. Nothing is reserved: the proposal was checked first.
///
/// `None` when the type has no Bevy asset behind it in this app, or the id is unknown.
pub fn asset_handle(
    world: &mut World,
    link: Entity,
    asset_type: (u16, u16),
    id: u64,
) -> Option<UntypedHandle> {
    let map = world.get_resource::<AssetIdMap>()?;
    if let Some(h) = map.imported.get(&(link, asset_type, id)) {
        return Some(h.clone());
    }
    let upstream = world
        .get::<NoodlesLink>(link)
        .is_some_and(|l| l.role == Some(Role::Upstream));
    if upstream {
        let (ty, asset) = map.exported_asset(id)?;
        if ty != asset_type {
            return None;
        }
        let upgrade = *map.upgraders.get(&asset_type)?;
        return upgrade(world, asset);
    }
    reserve_imported(world, link, asset_type, id)
}

/// Reserve a handle for asset `(asset_type, id)` of `link` and keep it as that asset's, so an
/// import stores into it; `None` when the type has no Bevy asset behind it in this app.
pub fn reserve_imported(
    world: &mut World,
    link: Entity,
    asset_type: (u16, u16),
    id: u64,
) -> Option<UntypedHandle> {
    let reserve = *world
        .get_resource::<AssetIdMap>()?
        .reservers
        .get(&asset_type)?;
    let h = reserve(world)?;
    world
        .resource_mut::<AssetIdMap>()
        .set_imported(link, asset_type, id, h.clone());
    Some(h)
}

/// A strong handle to asset `id` of Bevy asset type `A`, if it is in its collection.
pub fn upgrade<A: Asset>(world: &mut World, id: UntypedAssetId) -> Option<UntypedHandle> {
    let id = id.try_typed::<A>().ok()?;
    world
        .get_resource_mut::<Assets<A>>()?
        .get_strong_handle(id)
        .map(|h| h.untyped())
}
