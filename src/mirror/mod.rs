//! World mirroring: change detection on the Upstream turns shared entities into `Transaction`s;
//! the Downstream applies them back into native Bevy components.
//!
//! - Mark an entity [`Shared`] on the Upstream. It gets a canonical [`NoodlesId`] (bit 63 clear,
//!   never reused in the session) and every registered component on it is mirrored.
//! - Register component mappings with [`MirrorAppExt::mirror_component`]; the Core components
//!   (`Transform`, `Name`, `ChildOf`, `Visibility`, lights, ...) are registered by the plugin.
//! - On the Downstream, mirrored entities carry [`Mirrored`] (the link they came from) and the
//!   same [`NoodlesId`].

mod core_components;
mod downstream;
mod registry;
mod upstream;

use std::collections::HashMap;
use std::time::Duration;

use bevy::platform::hash::RandomState as FoldHash;
use bevy::prelude::*;

pub use core_components::{AuthorityClock, Global, TimeSync};
pub use downstream::{LinkClosedPolicy, MirrorError, PendingMessages};
pub(crate) use downstream::{apply_incoming, detach_and_despawn};
pub use registry::{
    AssetIdMap, ComponentRegistry, EntityIds, EntityResolver, MirrorAppExt, MirrorComponent,
    imported_handle,
};
pub use upstream::{MirrorStats, Outgoing};
pub(crate) use upstream::{collect_phase_marker, track_links};

/// Ordering point in `PostUpdate`: asset exporters run before it, component collectors after.
pub(crate) fn assets_phase_marker() {}

use crate::plugin::NoodlesSystems;

/// Opt-in marker: this entity is mirrored to every Downstream.
#[derive(Component, Debug, Default, Clone, Copy)]
pub struct Shared;

/// The canonical NOODLES2 `EntityID` of a shared (Upstream) or mirrored (Downstream) entity.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoodlesId(pub u64);

/// Bit 63: patch-local placeholder ids in proposals.
pub const PATCH_LOCAL_BIT: u64 = 1 << 63;

/// Marks an entity that mirrors an Upstream's entity; `link` is the link entity it came from.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirrored {
    pub link: Entity,
}

/// Canonical id → entity, for shared entities (Upstream side) and for mirrored ones per link.
#[derive(Resource, Debug, Default)]
pub struct EntityIndex {
    /// Shared entities of this node (as Upstream).
    pub local: HashMap<u64, Entity>,
    /// Mirrored entities, per link (as Downstream). Hashed with foldhash (randomly seeded): the
    /// Downstream looks an id up for every pair it applies, and std's SipHash made that lookup
    /// most of the apply cost.
    pub remote: HashMap<Entity, HashMap<u64, Entity, FoldHash>, FoldHash>,
    next_id: u64,
}

impl EntityIndex {
    /// Allocate the next canonical id (starts at 1; never reused).
    pub fn allocate(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The entity mirroring `id` on `link`.
    pub fn remote_entity(&self, link: Entity, id: u64) -> Option<Entity> {
        self.remote.get(&link).and_then(|m| m.get(&id)).copied()
    }
}

/// Settings of world mirroring.
#[derive(Resource, Debug, Clone)]
pub struct MirrorConfig {
    /// How often the Upstream gathers and sends changes (`None`: every frame).
    pub send_interval: Option<Duration>,
    /// Content of one transaction is kept under this many bytes where possible (snapshots and
    /// large deltas are split into several transactions).
    pub max_transaction_bytes: usize,
    /// What happens to a link's mirrored entities when it closes.
    pub on_link_closed: LinkClosedPolicy,
    /// How often the Upstream publishes its clock (`TimeSyncComponent`).
    pub time_sync_interval: Duration,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            send_interval: None,
            max_transaction_bytes: 1 << 20,
            on_link_closed: LinkClosedPolicy::Despawn,
            time_sync_interval: Duration::from_secs(1),
        }
    }
}

/// Sets up mirroring. Added by [`NoodlesPlugin`](crate::NoodlesPlugin).
pub(crate) fn build(app: &mut App, config: MirrorConfig) {
    app.insert_resource(config)
        .init_resource::<EntityIndex>()
        .init_resource::<ComponentRegistry>()
        .init_resource::<AssetIdMap>()
        .init_resource::<Outgoing>()
        .init_resource::<MirrorStats>()
        .init_resource::<AuthorityClock>()
        .init_resource::<PendingMessages>()
        .add_observer(upstream::on_share)
        .add_observer(upstream::on_unshare)
        .add_systems(
            PreUpdate,
            (downstream::apply_incoming, downstream::despawn_closed_links)
                .chain()
                .in_set(NoodlesSystems::Apply),
        )
        .add_systems(
            PostUpdate,
            (
                upstream::track_links,
                core_components::publish_time_sync,
                assets_phase_marker,
                collect_phase_marker,
                upstream::send_transactions,
            )
                .chain()
                .in_set(NoodlesSystems::Send),
        );
    core_components::register(app);
}
