//! World mirroring: change detection on the Upstream turns shared entities into `Transaction`s;
//! the Downstream applies them back into native Bevy components.
//!
//! - Mark an entity [`Shared`] on the Upstream. It gets a canonical [`SharedId`] (bit 63 clear,
//!   never reused in the session) and every registered component on it is mirrored.
//! - Register component mappings with [`MirrorAppExt::mirror_component`] (or
//!   [`MirrorAppExt::mirror_component_with`] for a type of another crate); the Core components
//!   (`Transform`, `Name`, `ChildOf`, `Visibility`, lights, ...) are registered by the plugin.
//! - On the Downstream, mirrored entities carry [`Mirrored`]: the link they came from and their
//!   id on that link.
//!
//! The two ids are apart on purpose: a node that is Downstream of one link and Upstream of another
//! (a relay, a game that mirrors a service and shares its own scene) can share a mirrored entity,
//! which then has both, and references are always encoded in the namespace of the link they go to.

mod asset_ids;
pub(crate) mod changes;
pub(crate) mod core_components;
mod downstream;
mod pool;
mod raw;
mod registry;
mod upstream;

use std::collections::HashMap;
use std::time::Duration;

use bevy::platform::hash::RandomState as FoldHash;
use bevy::prelude::*;

pub use asset_ids::{AssetIdMap, ReserveFn, UpgradeFn, asset_handle, reserve_imported, upgrade};
pub use core_components::{AuthorityClock, Global, MorphTargetWeights, TimeSync};
pub(crate) use downstream::detach_and_despawn;
pub use downstream::{LinkClosedPolicy, MirrorError};
pub use raw::{RawComponent, RawComponents, UnmappedPayloads};
pub use registry::{
    AssetImported, AssetRefusal, AssetRule, ComponentRegistry, ComponentRule, EntityIds,
    EntityResolver, MirrorAppExt, MirrorAsset, MirrorComponent, MirrorFns, RefusalReason, Refused,
    Store,
};
pub(crate) use upstream::send_tick;
pub use upstream::{MirrorStats, Outgoing};

use crate::codec::{AnAsset, ContentModifyAsset};
use crate::link::MessageKind;
use crate::net::RouterAppExt;
use crate::schedule::{self, NoodlesSystems};

/// Asset messages received in transactions on Downstream links, in arrival order (the order of
/// the transactions and of the content inside each), waiting for the asset layer
/// (`AssetsPlugin`) to turn them into Bevy assets in [`NoodlesSystems::ImportAssets`]. Without
/// it they are dropped each frame.
#[derive(Resource, Debug, Default)]
pub struct IncomingAssets {
    queue: Vec<(Entity, IncomingAsset)>,
}

/// One asset message of a transaction.
#[derive(Debug, Clone)]
pub enum IncomingAsset {
    /// A body: create or replace the asset.
    Modify(ContentModifyAsset),
    /// Delete the asset.
    Delete(AnAsset),
}

impl IncomingAssets {
    /// Queue an asset body from `link`.
    pub fn push(&mut self, link: Entity, m: ContentModifyAsset) {
        self.queue.push((link, IncomingAsset::Modify(m)));
    }
    /// Queue an asset deletion from `link`.
    pub fn delete(&mut self, link: Entity, a: AnAsset) {
        self.queue.push((link, IncomingAsset::Delete(a)));
    }
    /// Take every queued message, in arrival order, with the link it came on.
    pub fn take(&mut self) -> Vec<(Entity, IncomingAsset)> {
        std::mem::take(&mut self.queue)
    }
    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.queue.len()
    }
    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Opt-in marker: this entity is mirrored to every Downstream.
#[derive(Component, Debug, Default, Clone, Copy)]
pub struct Shared;

/// The canonical NOODLES2 `EntityID` this node gave an entity it shares (as Upstream): added with
/// [`Shared`], removed with it. An entity mirrored from an Upstream carries that Upstream's id in
/// [`Mirrored`] instead.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[component(on_insert = changes::count_share)]
pub struct SharedId(pub(crate) u64);

impl SharedId {
    /// The id, as it appears on the wire of every link where this node is Upstream.
    pub fn get(self) -> u64 {
        self.0
    }
}

pub use noodles2::proposal::PATCH_LOCAL_BIT;

/// `s` cut to at most `max` bytes, at a character boundary: strings whose wire length is limited
/// (a `u8`- or `u16`-counted UTF-8 array) are sent cut rather than not at all.
pub(crate) fn cut_str(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Component types of a shared entity whose changes this node does not send, because every node
/// computes them itself: the animation plugin marks the members its exported clips animate (a
/// joint's `Transform`), so a clip costs a Downstream nothing per frame. A joining link still gets
/// their current value. Counted per component type: several clips may drive one.
#[derive(Component, Debug, Default, Clone, PartialEq, Eq)]
pub struct LocallyDriven(HashMap<(u16, u16), u32>);

impl LocallyDriven {
    /// Whether changes of component type `(extension, identifier)` are not sent.
    pub fn drives(&self, component: (u16, u16)) -> bool {
        self.0.contains_key(&component)
    }

    /// One more driver of `component`.
    pub fn add(&mut self, component: (u16, u16)) {
        *self.0.entry(component).or_default() += 1;
    }

    /// One driver of `component` fewer; true when nothing is driven any more.
    pub fn remove(&mut self, component: (u16, u16)) -> bool {
        if let Some(n) = self.0.get_mut(&component) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&component);
            }
        }
        self.0.is_empty()
    }
}

/// Marks an entity that mirrors an Upstream's entity.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirrored {
    /// The link entity it came from.
    pub link: Entity,
    /// Its `EntityID` on that link (the Upstream's canonical id).
    pub id: u64,
}

/// `EntityID` → entity, by role: the entities this node shares (by its own [`SharedId`]s) and,
/// per link, the entities it mirrors (by that link's ids).
#[derive(Resource, Debug, Default)]
pub struct EntityIndex {
    /// Ordered by id (ids are allocated increasing, so sharing appends): a join walks it in
    /// slices without collecting and sorting the ids first.
    pub(crate) local: std::collections::BTreeMap<u64, Entity>,
    pub(crate) remote: HashMap<Entity, RemoteIds, FoldHash>,
    next_id: u64,
}

impl EntityIndex {
    /// Allocate the next canonical id (starts at 1; never reused).
    pub(crate) fn allocate(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The shared entity with [`SharedId`] `id`.
    pub fn shared(&self, id: u64) -> Option<Entity> {
        self.local.get(&id).copied()
    }

    /// How many entities this node shares.
    pub fn shared_count(&self) -> usize {
        self.local.len()
    }

    /// The entity mirroring `id` on `link`.
    pub fn mirrored(&self, link: Entity, id: u64) -> Option<Entity> {
        self.remote.get(&link).and_then(|m| m.get(id))
    }

    /// How many entities `link` mirrors here.
    pub fn mirrored_count(&self, link: Entity) -> usize {
        self.remote.get(&link).map_or(0, RemoteIds::len)
    }

    /// How many entities every link together mirrors here.
    pub fn mirrored_total(&self) -> usize {
        self.remote.values().map(RemoteIds::len).sum()
    }
}

/// One link's canonical id → local entity map.
///
/// Canonical ids are allocated densely from 1 by the Upstream, so most live in a `Vec` indexed by
/// id: a lookup is one load, and a tick that changes entities in id order walks the vector (and
/// the entity tables behind it, spawned in the same order) in strides the prefetcher follows.
/// Ids far beyond the ones seen so far (another implementation's allocation scheme, or a hostile
/// peer) go to a hash map (foldhash, randomly seeded), so memory stays proportional to the number
/// of entities.
#[derive(Debug, Default)]
pub(crate) struct RemoteIds {
    dense: Vec<Entity>,
    sparse: HashMap<u64, Entity, FoldHash>,
    len: usize,
}

impl RemoteIds {
    /// Ids below this may live in the dense part (it never exceeds 128 MiB).
    const DENSE_LIMIT: u64 = 1 << 24;

    /// The entity mirroring `id`.
    #[inline]
    pub fn get(&self, id: u64) -> Option<Entity> {
        if let Some(&e) = self.dense.get(id as usize)
            && e != Entity::PLACEHOLDER
        {
            return Some(e);
        }
        if self.sparse.is_empty() {
            None
        } else {
            self.sparse.get(&id).copied()
        }
    }

    /// Map `id` to `entity`, returning the entity it mapped to before.
    pub fn insert(&mut self, id: u64, entity: Entity) -> Option<Entity> {
        let old = self.remove(id);
        let slot = id as usize;
        if id < Self::DENSE_LIMIT && slot <= self.dense.len().max(self.len) * 2 + 1024 {
            if slot >= self.dense.len() {
                self.dense.resize(slot + 1, Entity::PLACEHOLDER);
            }
            self.dense[slot] = entity;
        } else {
            self.sparse.insert(id, entity);
        }
        self.len += 1;
        old
    }

    /// Forget `id`, returning the entity it mapped to.
    pub fn remove(&mut self, id: u64) -> Option<Entity> {
        let old = match self.dense.get_mut(id as usize) {
            Some(e) if *e != Entity::PLACEHOLDER => Some(std::mem::replace(e, Entity::PLACEHOLDER)),
            _ => self.sparse.remove(&id),
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// How many ids are mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Every mapped entity.
    pub fn entities(&self) -> impl Iterator<Item = Entity> + '_ {
        self.dense
            .iter()
            .copied()
            .filter(|e| *e != Entity::PLACEHOLDER)
            .chain(self.sparse.values().copied())
    }
}

/// Settings of world mirroring.
#[derive(Resource, Debug, Clone)]
pub struct MirrorConfig {
    /// How often the Upstream gathers and sends changes (`None`: every frame).
    pub send_interval: Option<Duration>,
    /// Content of one transaction is kept under this many bytes where possible (join slices and
    /// large deltas are split into several transactions).
    pub max_transaction_bytes: usize,
    /// What happens to a link's mirrored entities when it closes.
    pub on_link_closed: LinkClosedPolicy,
    /// How often the Upstream publishes its clock (`TimeSyncComponent`).
    pub time_sync_interval: Duration,
    /// Entities a joining Downstream is sent per frame (default 1,000): the world goes out in
    /// slices, one per frame (send tick or not), so that the Upstream's frame stays short
    /// however large the world is. What changes meanwhile reaches the joining link as deltas.
    /// `usize::MAX`: every entity in one frame.
    pub join_entities_per_frame: usize,
    /// Bytes of asset bodies (inline ones; out-of-band ones are a reference) a joining
    /// Downstream is sent per frame, with the entities (default 256 KiB; at least one asset per
    /// frame). Each body counts at least 1 KiB (its encoding and sending cost something whatever
    /// its size), so a world of many small assets is spread over frames too. `usize::MAX`: every
    /// asset in the first frame.
    pub join_asset_bytes_per_frame: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            send_interval: None,
            max_transaction_bytes: 1 << 20,
            on_link_closed: LinkClosedPolicy::Despawn,
            time_sync_interval: Duration::from_secs(1),
            join_entities_per_frame: 1000,
            join_asset_bytes_per_frame: 256 << 10,
        }
    }
}

/// World mirroring: shared entities' registered components go out as transactions (Upstream),
/// transactions come back as native Bevy components (Downstream), with the Core components
/// (`Transform`, `Name`, `ChildOf`, `Visibility`, lights, `TimeSync`) registered. Needs
/// [`NetPlugin`](crate::net::NetPlugin); added by [`NoodlesPlugin`](crate::NoodlesPlugin).
#[derive(Debug, Clone, Default)]
pub struct MirrorPlugin {
    /// Send rate, transaction size, what happens on link close.
    pub config: MirrorConfig,
}

impl Plugin for MirrorPlugin {
    fn build(&self, app: &mut App) {
        schedule::configure(app);
        app.insert_resource(self.config.clone())
            .init_resource::<EntityIndex>()
            .init_resource::<ComponentRegistry>()
            .init_resource::<AssetIdMap>()
            .init_resource::<Outgoing>()
            .init_resource::<changes::ShareEpoch>()
            .init_resource::<MirrorStats>()
            .init_resource::<AuthorityClock>()
            .init_resource::<IncomingAssets>()
            .add_message_handler(MessageKind::Transaction, downstream::handle_transaction)
            .add_observer(upstream::on_share)
            .add_observer(upstream::on_unshare)
            .add_systems(
                PreUpdate,
                (
                    downstream::despawn_closed_links.in_set(NoodlesSystems::ApplyTransactions),
                    // After the asset layer took this frame's asset messages (if there is one).
                    discard_unclaimed_assets.after(NoodlesSystems::ImportAssets),
                    // Links that opened this frame join at the next send.
                    upstream::track_links.in_set(NoodlesSystems::Dispatch),
                ),
            )
            .add_systems(
                PostUpdate,
                (
                    core_components::publish_time_sync.in_set(NoodlesSystems::ExportAssets),
                    upstream::plan_join
                        .in_set(NoodlesSystems::Collect)
                        .before(upstream::JoinSlices),
                    upstream::send_transactions.in_set(NoodlesSystems::Send),
                ),
            );
        app.configure_sets(
            PostUpdate,
            upstream::JoinSlices
                .in_set(NoodlesSystems::Collect)
                .run_if(upstream::join_slice),
        );
        core_components::register(app);
        // After the Core mappings: the types still unmapped are kept as bytes until a feature
        // registers their mapping.
        raw::register_core(app);
    }
}

/// Asset messages nobody imported this frame (an app without the asset layer) are dropped, so
/// the queue cannot grow.
fn discard_unclaimed_assets(mut incoming: ResMut<IncomingAssets>) {
    if !incoming.is_empty() {
        debug!(
            "{} asset messages not imported (no asset layer in this app)",
            incoming.len()
        );
        incoming.take();
    }
}

#[cfg(test)]
mod remote_ids_tests {
    use super::RemoteIds;
    use bevy::prelude::Entity;

    fn e(i: u32) -> Entity {
        Entity::from_raw_u32(i).unwrap()
    }

    #[test]
    fn dense_and_sparse_ids_map_and_unmap() {
        let mut m = RemoteIds::default();
        assert_eq!(m.get(1), None);
        assert_eq!(m.insert(1, e(10)), None);
        assert_eq!(m.insert(u64::MAX >> 1, e(11)), None); // far away: sparse
        assert_eq!(m.insert(5_000, e(12)), None); // beyond 2 * len + 1024: sparse for now
        for id in 2..3_000 {
            m.insert(id, e(id as u32 + 100));
        }
        // 5,000 is now within the dense range: re-inserting moves it without duplicating it.
        assert_eq!(m.insert(5_000, e(13)), Some(e(12)));
        assert_eq!(m.get(5_000), Some(e(13)));
        assert_eq!(m.get(1), Some(e(10)));
        assert_eq!(m.get(u64::MAX >> 1), Some(e(11)));
        assert_eq!(m.len(), 3_001);
        assert_eq!(m.entities().count(), 3_001);
        assert_eq!(m.remove(1), Some(e(10)));
        assert_eq!(m.remove(1), None);
        assert_eq!(m.get(1), None);
        assert_eq!(m.remove(u64::MAX >> 1), Some(e(11)));
        assert_eq!(m.len(), 2_999);
    }

    #[test]
    fn hostile_ids_do_not_allocate_a_huge_vector() {
        let mut m = RemoteIds::default();
        for k in 0..64u64 {
            m.insert((1 << 23) + k * 100_000, e(k as u32));
        }
        assert_eq!(m.len(), 64);
        assert!(
            m.dense.len() < 1 << 16,
            "dense part grew to {}",
            m.dense.len()
        );
    }
}
