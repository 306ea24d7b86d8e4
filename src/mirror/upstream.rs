//! Upstream: gather changes of shared entities, encode them once, send them to every Downstream.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bevy::prelude::*;
use bytes::Bytes;

use super::asset_ids::AssetIdMap;
use super::pool::BufferPool;
use super::registry::{EntityIds, Mapping};
use super::{EntityIndex, MirrorConfig, Shared, SharedId};
use crate::codec::{
    ComponentTypeID, ContentArray, ContentCreateEntities, ContentDeleteComponents,
    ContentDeleteEntities, ContentMessage, ContentModifyComponents, EntityID, EntityList,
    MainSequenceMessage, Transaction, Wire,
};
use crate::link::Role;
use crate::net::{LinkClosed, LinkOpened, LinkSendError, NoodlesLink};
use crate::transport::QueueError;

/// Pairs of one component type gathered this tick, cut into chunks of bounded size.
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    pub(crate) chunks: Vec<(Vec<u8>, u32)>,
    /// The same chunks as shareable bytes, moved (not copied) out of `chunks` by `freeze` when the
    /// tick is sent, so every extension group sends the same buffers.
    pub(crate) frozen: Vec<(Bytes, u32)>,
}

impl Chunks {
    fn clear(&mut self) {
        self.chunks.clear();
        self.frozen.clear();
    }

    fn freeze(&mut self, pool: &BufferPool) {
        self.frozen
            .extend(self.chunks.drain(..).map(|(buf, n)| (pool.share(buf), n)));
    }

    fn push_pair<W: Wire>(&mut self, id: u64, w: &W, limit: usize, pool: &BufferPool) {
        match self.chunks.last_mut() {
            Some((b, _)) if b.len() < limit => {}
            _ => self.chunks.push((pool.take(limit.min(1 << 16)), 0)),
        }
        if let Some((buf, n)) = self.chunks.last_mut() {
            buf.extend_from_slice(&id.to_le_bytes());
            // Generated encoders only fail on over-long arrays; such a component is skipped.
            let before = buf.len();
            if w.write(buf).is_err() {
                buf.truncate(before - 8);
                warn!(
                    "a component of entity {id} cannot be encoded (an array is too long for its count type); skipped"
                );
                return;
            }
            *n += 1;
        }
    }
}

/// Per component type: what changed this tick, and this frame's slice of the world for joining
/// links.
#[derive(Debug, Default)]
pub(crate) struct TypeOutgoing {
    pub(crate) delta: Chunks,
    pub(crate) snapshot: Chunks,
    /// Entities that lost the component (and still exist).
    pub(crate) removed: Vec<u64>,
}

/// What the Upstream sends this tick. Filled by the per-type collectors, drained by the sender.
#[derive(Resource, Debug, Default)]
pub struct Outgoing {
    /// Registration order of component types.
    pub(crate) order: Vec<(u16, u16)>,
    pub(crate) types: HashMap<(u16, u16), TypeOutgoing>,
    /// Entities that became shared since the last send.
    pub(crate) created: Vec<u64>,
    /// Entities that stopped being shared (unshared or despawned) since the last send.
    pub(crate) deleted: Vec<u64>,
    /// Links that get deltas: those that have the world, and those receiving it ([`Join`]).
    pub(crate) synced: HashSet<Entity>,
    /// Links that opened and wait for the world (until the join in progress, if any, is over).
    pub(crate) joining: Vec<Entity>,
    /// The world being sent to joining links, a slice per frame.
    pub(crate) join: Option<Join>,
    /// Asset payloads added or changed since the last send, as (extension, identifier, id, body).
    pub(crate) assets_modified: Vec<((u16, u16, u64), Bytes)>,
    /// Assets deleted since the last send.
    pub(crate) assets_deleted: Vec<(u16, u16, u64)>,
    /// Every live asset's current body, for joining links (ordered by type, so buffers come
    /// before the images and meshes that reference them).
    pub(crate) live_assets: BTreeMap<(u16, u16, u64), Bytes>,
    /// Is this a send tick?
    pub(crate) active: bool,
    last_send: Option<Duration>,
    /// The buffers the component payloads are encoded into (reused within the tick).
    pub(crate) pool: BufferPool,
    /// The buffers transactions are encoded into (back once the transport wrote them), apart
    /// from `pool` so that each pool holds buffers of one kind.
    pub(crate) tx_pool: BufferPool,
}

impl Outgoing {
    /// Queue an asset body for every Downstream (and remember it for joining links).
    pub fn modify_asset(&mut self, key: (u16, u16, u64), body: Bytes) {
        // Deleted and made again in the same tick: the new body replaces it on the wire, and the
        // deletion (which would be sent after it) is dropped.
        if !self.assets_deleted.is_empty() {
            self.assets_deleted.retain(|k| *k != key);
        }
        self.live_assets.insert(key, body.clone());
        self.assets_modified.push((key, body));
    }

    /// Queue an asset deletion.
    pub fn delete_asset(&mut self, key: (u16, u16, u64)) {
        if self.live_assets.remove(&key).is_some() {
            self.assets_modified.retain(|(k, _)| *k != key);
            self.assets_deleted.push(key);
        }
    }

    /// Is this frame a send tick (every frame without [`MirrorConfig::send_interval`])? Valid
    /// from `NoodlesSystems::Dispatch` on; exporters and collectors run only on send ticks.
    pub fn is_send_tick(&self) -> bool {
        self.active
    }

    /// Is asset `(extension, identifier, id)` live (sent, and not deleted since)?
    pub fn is_live(&self, key: (u16, u16, u64)) -> bool {
        self.live_assets.contains_key(&key)
    }

    /// Every live asset, by `(extension, identifier, id)`.
    pub fn live_assets(&self) -> impl Iterator<Item = (u16, u16, u64)> + '_ {
        self.live_assets.keys().copied()
    }

    pub(crate) fn register(&mut self, key: (u16, u16)) {
        if !self.types.contains_key(&key) {
            self.order.push(key);
            self.types.insert(key, TypeOutgoing::default());
        }
    }
}

/// The world sent to links that joined together, [`MirrorConfig::join_entities_per_frame`]
/// entities per frame, so that the Upstream's frame stays short however large the world is. The
/// links get deltas from the first slice on: a slice is the current state of its entities, and
/// whatever changes after it arrives as a delta, so the links end with the same world as if it
/// had been sent at once.
#[derive(Debug)]
pub(crate) struct Join {
    links: Vec<Entity>,
    /// The last id shared when the join began: the join walks the shared ids up to it, in
    /// order ([`EntityIndex`] keeps them ordered). Entities shared since come as deltas.
    last_id: u64,
    /// Where the next slice begins.
    next_id: u64,
    /// Every shared entity up to `last_id` went out.
    entities_done: bool,
    /// This frame's slice: the shared ids (ascending) and their entities; the snapshot
    /// collectors gather the components of these entities.
    pub(crate) slice: Vec<(u64, Entity)>,
    /// The live assets when the join began, smallest body first: what refers to large data (a
    /// mesh, a buffer served out of band, a material) goes before large inline bodies (images),
    /// so the joiner starts its out-of-band fetches at once. At most
    /// [`MirrorConfig::join_asset_bytes_per_frame`] (and at least one) go out per frame, each
    /// asset counting at least [`JOIN_ASSET_MIN_BYTES`]; assets made since come as deltas.
    assets: Vec<(u16, u16, u64)>,
    /// Where this frame's assets begin in `assets`.
    next_asset: usize,
    /// Assets of `assets` a delta carried (or will carry, at the next send tick) to the joining
    /// links since the join began: their slot in a slice is skipped (the delta sends their
    /// current body; sending it again would make the joiners import it, and fetch its
    /// out-of-band bytes, twice).
    delivered: HashSet<(u16, u16, u64)>,
}

/// What an asset counts, at least, against [`MirrorConfig::join_asset_bytes_per_frame`]: a
/// body costs its encoding and sending whatever its size, so a world of many small assets
/// (meshes, materials, out-of-band references) is spread over frames too.
pub(crate) const JOIN_ASSET_MIN_BYTES: usize = 1024;

/// What the last send cost and carried (for overlays, logs and benchmarks).
#[derive(Resource, Debug, Default, Clone)]
pub struct MirrorStats {
    /// Bytes of the delta transactions sent in the last send tick (encoded once, per extension set).
    pub last_delta_bytes: usize,
    /// Component pairs in the last delta.
    pub last_delta_pairs: usize,
    /// Transactions sent in total.
    pub transactions_sent: u64,
    /// Transactions applied in total (Downstream).
    pub transactions_applied: u64,
    /// Received component values kept as bytes in [`RawComponents`](super::RawComponents)
    /// (types no Bevy component maps in this app), in total (Downstream).
    pub raw_values: u64,
    /// Received payloads of component types of unknown layout, kept whole in
    /// [`UnmappedPayloads`](super::UnmappedPayloads), in total (Downstream).
    pub unmapped_payloads: u64,
}

/// A new shared entity gets its canonical id.
pub(crate) fn on_share(
    add: On<Add, Shared>,
    mut index: ResMut<EntityIndex>,
    mut out: ResMut<Outgoing>,
    mut commands: Commands,
) {
    let id = index.allocate();
    index.local.insert(id, add.entity);
    out.created.push(id);
    commands.entity(add.entity).insert(SharedId(id));
}

/// An entity stops being shared (marker removed or entity despawned).
pub(crate) fn on_unshare(
    remove: On<Remove, Shared>,
    ids: Query<&SharedId>,
    mut index: ResMut<EntityIndex>,
    mut out: ResMut<Outgoing>,
    mut commands: Commands,
) {
    if let Ok(id) = ids.get(remove.entity) {
        index.local.remove(&id.0);
        out.deleted.push(id.0);
        if let Ok(mut e) = commands.get_entity(remove.entity) {
            e.try_remove::<SharedId>();
        }
    }
}

/// Decide whether this frame is a send tick, and which links join.
pub(crate) fn track_links(
    time: Res<Time<Real>>,
    config: Res<MirrorConfig>,
    mut out: ResMut<Outgoing>,
    mut opened: MessageReader<LinkOpened>,
    mut closed: MessageReader<LinkClosed>,
) {
    for o in opened.read() {
        if o.role == Role::Upstream {
            out.joining.push(o.link);
        }
    }
    for c in closed.read() {
        out.synced.remove(&c.link);
        out.joining.retain(|l| *l != c.link);
        if let Some(j) = &mut out.join {
            j.links.retain(|l| *l != c.link);
        }
    }
    let now = time.elapsed();
    out.active = match (config.send_interval, out.last_send) {
        (None, _) | (_, None) => true,
        (Some(i), Some(last)) => now.saturating_sub(last) >= i,
    };
    if out.active {
        out.last_send = Some(now);
    }
}

/// Begin a join when links wait and none is in progress, and choose this frame's slice.
pub(crate) fn plan_join(
    config: Res<MirrorConfig>,
    index: Res<EntityIndex>,
    links: Query<&NoodlesLink>,
    mut out: ResMut<Outgoing>,
) {
    let out = &mut *out;
    if out.join.as_ref().is_some_and(|j| j.links.is_empty()) {
        out.join = None;
    }
    if out.join.is_none() {
        if out.joining.is_empty() {
            return;
        }
        // Links that are not open yet stay waiting.
        let (ready, waiting): (Vec<Entity>, Vec<Entity>) = out
            .joining
            .iter()
            .partition(|e| links.get(**e).is_ok_and(|l| l.is_open()));
        out.joining = waiting;
        if ready.is_empty() {
            return;
        }
        let mut assets: Vec<(usize, (u16, u16, u64))> =
            out.live_assets.iter().map(|(k, b)| (b.len(), *k)).collect();
        assets.sort_unstable();
        out.synced.extend(ready.iter().copied());
        out.join = Some(Join {
            links: ready,
            last_id: index.local.last_key_value().map_or(0, |(id, _)| *id),
            next_id: 0,
            entities_done: false,
            slice: Vec::new(),
            assets: assets.into_iter().map(|(_, k)| k).collect(),
            next_asset: 0,
            delivered: HashSet::new(),
        });
    }
    let Some(j) = &mut out.join else {
        return;
    };
    j.slice.clear();
    if j.entities_done {
        return;
    }
    let n = config.join_entities_per_frame.max(1);
    let mut walk = index.local.range(j.next_id..=j.last_id);
    j.slice
        .extend(walk.by_ref().take(n).map(|(id, e)| (*id, *e)));
    match walk.next() {
        Some((id, _)) => j.next_id = *id,
        None => j.entities_done = true,
    }
}

/// The snapshot collectors: they run (after [`plan_join`]) when a join sends entities this frame,
/// a condition evaluated once for all of them.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct JoinSlices;

/// Run condition of [`JoinSlices`].
pub(crate) fn join_slice(out: Res<Outgoing>) -> bool {
    out.join.as_ref().is_some_and(|j| !j.slice.is_empty())
}

/// Run condition of the collectors: this frame is a send tick. A collector must not even run
/// between send ticks, or its `Changed` filter would forget what changed in those frames.
pub(crate) fn send_tick(out: Res<Outgoing>) -> bool {
    out.active
}

/// Shared entities whose component `C` changed (or that were just shared).
pub(crate) type ChangedShared<'w, 's, C> = Query<
    'w,
    's,
    (
        Ref<'static, SharedId>,
        &'static C,
        Option<&'static super::LocallyDriven>,
    ),
    (With<Shared>, Or<(Changed<C>, Added<SharedId>)>),
>;
/// Every shared entity with component `C`.
pub(crate) type AllShared<'w, 's, C> = Query<'w, 's, (&'static SharedId, &'static C), With<Shared>>;
/// Shared entities, and whether they still have component `C`.
pub(crate) type StillShared<'w, 's, C> = Query<'w, 's, (&'static SharedId, Has<C>), With<Shared>>;

/// Gather changed components of mapping `m` on shared entities. `any_changed`: whether
/// `changed` selects anything at all ([`anything_changed`](super::changes::anything_changed),
/// much cheaper than the query's per-entity filter when nothing did).
pub(crate) fn collect_changes<M: Mapping>(
    m: M,
    any_changed: bool,
    changed: ChangedShared<M::C>,
    ids: Query<&SharedId>,
    assets: Res<AssetIdMap>,
    config: Res<MirrorConfig>,
    mut out: ResMut<Outgoing>,
) {
    let limit = config.max_transaction_bytes.max(64);
    let key = m.key();
    if !any_changed || out.synced.is_empty() {
        return;
    }
    let out = &mut *out;
    let Some(t) = out.types.get_mut(&key) else {
        return;
    };
    let upstream_ids = super::registry::UpstreamIds {
        ids: &ids,
        assets: &assets,
    };
    let lookup: &dyn EntityIds = &upstream_ids;
    let removed_before = t.removed.len();
    let mut sent = Vec::new();
    for (id, c, driven) in &changed {
        // A member every node computes itself goes out once, when the entity is shared.
        if driven.is_some_and(|d| d.drives(key)) && !id.is_added() {
            continue;
        }
        match m.to_wire(c, lookup) {
            Some(w) => {
                t.delta.push_pair(id.0, &w, limit, &out.pool);
                if removed_before > 0 {
                    sent.push(id.0);
                }
            }
            // Not representable any more (say, `ChildOf` an entity that is not shared):
            // from the wire's point of view the component is gone.
            None => t.removed.push(id.0),
        }
    }
    // Removed and inserted again between two send ticks: the modification wins (deletions
    // are applied after modifications, so a stale one would undo it).
    if !sent.is_empty() {
        let sent: bevy::platform::collections::HashSet<u64> = sent.into_iter().collect();
        let mut i = 0;
        t.removed.retain(|id| {
            i += 1;
            i > removed_before || !sent.contains(id)
        });
    }
}

/// Gather mapping `m`'s components of the shared entities in this frame's join slice.
pub(crate) fn collect_snapshot<M: Mapping>(
    m: M,
    all: AllShared<M::C>,
    ids: Query<&SharedId>,
    assets: Res<AssetIdMap>,
    config: Res<MirrorConfig>,
    mut out: ResMut<Outgoing>,
) {
    let limit = config.max_transaction_bytes.max(64);
    let out = &mut *out;
    let (Some(j), Some(t)) = (&out.join, out.types.get_mut(&m.key())) else {
        return;
    };
    let upstream_ids = super::registry::UpstreamIds {
        ids: &ids,
        assets: &assets,
    };
    for &(id, e) in &j.slice {
        if let Ok((_, c)) = all.get(e)
            && let Some(w) = m.to_wire(c, &upstream_ids)
        {
            t.snapshot.push_pair(id, &w, limit, &out.pool);
        }
    }
}

/// Record entities that lost the component of mapping `m` (every frame, so nothing is missed
/// between send ticks).
pub(crate) fn collect_removals<M: Mapping>(
    m: M,
    mut removed: RemovedComponents<M::C>,
    still: StillShared<M::C>,
    mut out: ResMut<Outgoing>,
) {
    let key = m.key();
    for e in removed.read() {
        if let Ok((id, has)) = still.get(e)
            && !has
            && let Some(t) = out.types.get_mut(&key)
        {
            t.removed.push(id.0);
        }
    }
}

fn an_asset(key: (u16, u16, u64)) -> crate::codec::AnAsset {
    crate::codec::AnAsset::new(
        crate::codec::AssetTypeID::new(crate::codec::ExtensionID::new(key.0), key.1),
        crate::codec::AssetID::new(key.2),
    )
}

fn entity_list(ids: &[u64]) -> EntityList {
    EntityList(ids.iter().map(|&i| EntityID::new(i)).collect())
}

/// Build transactions (content split to stay near `limit` bytes) from content messages.
fn pack_transactions(
    contents: Vec<(ContentMessage, usize)>,
    limit: usize,
    pool: &BufferPool,
) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut current: Vec<ContentMessage> = Vec::new();
    let mut size = 0;
    for (c, len) in contents {
        if !current.is_empty() && size + len > limit {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out.into_iter()
        .filter_map(|content| {
            let msg = MainSequenceMessage::Transaction(Transaction {
                content: ContentArray(content),
            });
            let mut buf = pool.take(msg.wire_len());
            match msg.write(&mut buf) {
                Ok(()) => Some(pool.share(buf)),
                Err(e) => {
                    error!("cannot encode a transaction: {e}");
                    None
                }
            }
        })
        .collect()
}

fn ids_in_chunks(ids: &[u64], limit: usize) -> impl Iterator<Item = &[u64]> {
    ids.chunks((limit / 8).max(1))
}

/// What a transaction group carries.
#[derive(Clone, Copy)]
enum Part<'a> {
    /// What changed since the last send tick.
    Delta,
    /// A slice of the world for joining links: these assets, these entities (created), and
    /// their components gathered this frame.
    Slice {
        ids: &'a [u64],
        assets: &'a [((u16, u16, u64), Bytes)],
    },
}

/// Content of one transaction group for links that speak `extensions`.
fn build_contents(
    out: &Outgoing,
    extensions: &[u16],
    part: Part,
    limit: usize,
) -> Vec<(ContentMessage, usize)> {
    let snapshot = matches!(part, Part::Slice { .. });
    let mut contents = Vec::new();
    let asset_msg = |key: &(u16, u16, u64), body: &Bytes| {
        (
            ContentMessage::ContentModifyAsset(crate::codec::ContentModifyAsset {
                an_asset: an_asset(*key),
                content: crate::codec::Content(body.clone()),
            }),
            body.len() + 21,
        )
    };
    match part {
        Part::Slice { assets, .. } => contents.extend(
            assets
                .iter()
                .filter(|(k, _)| extensions.contains(&k.0))
                .map(|(k, b)| asset_msg(k, b)),
        ),
        Part::Delta => contents.extend(
            out.assets_modified
                .iter()
                .filter(|(k, _)| extensions.contains(&k.0))
                .map(|(k, b)| asset_msg(k, b)),
        ),
    }
    let created: &[u64] = match part {
        Part::Slice { ids, .. } => ids,
        Part::Delta => &out.created,
    };
    for chunk in ids_in_chunks(created, limit) {
        contents.push((
            ContentMessage::ContentCreateEntities(ContentCreateEntities {
                list: entity_list(chunk),
            }),
            chunk.len() * 8 + 5,
        ));
    }
    for key in &out.order {
        if !extensions.contains(&key.0) {
            continue;
        }
        let Some(t) = out.types.get(key) else {
            continue;
        };
        let chunks = if snapshot { &t.snapshot } else { &t.delta };
        for (bytes, n) in &chunks.frozen {
            if *n == 0 {
                continue;
            }
            contents.push((
                ContentMessage::ContentModifyComponents(ContentModifyComponents {
                    component: ComponentTypeID::new(crate::codec::ExtensionID::new(key.0), key.1),
                    count: *n,
                    content: crate::codec::Content(bytes.clone()),
                }),
                bytes.len() + 13,
            ));
        }
        if !snapshot && !t.removed.is_empty() {
            for chunk in ids_in_chunks(&t.removed, limit) {
                contents.push((
                    ContentMessage::ContentDeleteComponents(ContentDeleteComponents {
                        component: ComponentTypeID::new(
                            crate::codec::ExtensionID::new(key.0),
                            key.1,
                        ),
                        list: entity_list(chunk),
                    }),
                    chunk.len() * 8 + 9,
                ));
            }
        }
    }
    if !snapshot {
        for key in out
            .assets_deleted
            .iter()
            .filter(|k| extensions.contains(&k.0))
        {
            contents.push((
                ContentMessage::ContentDeleteAsset(crate::codec::ContentDeleteAsset {
                    an_asset: an_asset(*key),
                }),
                17,
            ));
        }
        for chunk in ids_in_chunks(&out.deleted, limit) {
            contents.push((
                ContentMessage::ContentDeleteEntities(ContentDeleteEntities {
                    list: entity_list(chunk),
                }),
                chunk.len() * 8 + 5,
            ));
        }
    }
    contents
}

/// Encode this frame's transactions (the join slice, if any; the delta, on send ticks) once per
/// extension set and hand them to the links.
// A symbol of its own, so that `benches/callgrind.sh` can count it.
#[inline(never)]
pub(crate) fn send_transactions(
    mut out: ResMut<Outgoing>,
    config: Res<MirrorConfig>,
    index: Res<EntityIndex>,
    links: Query<(Entity, &NoodlesLink)>,
    mut stats: ResMut<MirrorStats>,
) {
    if !out.active && out.join.is_none() {
        return;
    }
    let limit = config.max_transaction_bytes.max(64);
    let o = &mut *out;
    for t in o.types.values_mut() {
        t.delta.freeze(&o.pool);
        t.snapshot.freeze(&o.pool);
    }
    let mut sent = 0u64;
    // The delta (this frame's, sent after the slice, or the next send tick's) carries the assets
    // modified since the last send tick to the joining links too, also those the join began
    // with: the slices leave them to it.
    if let Some(j) = &mut o.join {
        j.delivered
            .extend(o.assets_modified.iter().map(|(k, _)| *k));
    }
    // The slice first: the assets the deltas refer to go out early in the join.
    if let Some(j) = &out.join {
        // Entities unshared since the slice was taken (this frame) are not created.
        let ids: Vec<u64> = j
            .slice
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| index.local.contains_key(id))
            .collect();
        // Assets deleted since the join began, or already delivered by a delta, are skipped.
        let mut assets: Vec<((u16, u16, u64), Bytes)> = Vec::new();
        let mut next_asset = j.next_asset;
        let mut bytes = 0;
        for k in &j.assets[j.next_asset..] {
            let b = match out.live_assets.get(k) {
                Some(b) if !j.delivered.contains(k) => b,
                _ => {
                    next_asset += 1;
                    continue;
                }
            };
            let charge = b.len().max(JOIN_ASSET_MIN_BYTES);
            if !assets.is_empty() && bytes + charge > config.join_asset_bytes_per_frame {
                break;
            }
            bytes += charge;
            assets.push((*k, b.clone()));
            next_asset += 1;
        }
        let part = Part::Slice {
            ids: &ids,
            assets: &assets,
        };
        let mut groups: BTreeMap<&[u16], Vec<(Entity, &NoodlesLink)>> = BTreeMap::new();
        for (e, l) in j.links.iter().filter_map(|e| links.get(*e).ok()) {
            groups.entry(&l.extensions).or_default().push((e, l));
        }
        let mut failed = Vec::new();
        for (exts, group) in &groups {
            let contents = build_contents(&out, exts, part, limit);
            for tx in pack_transactions(contents, limit, &out.tx_pool) {
                sent += 1;
                for (e, l) in group {
                    if let Err(err) = l.send(tx.clone()) {
                        debug!("{err}");
                        failed.push(*e);
                    }
                }
            }
        }
        if let Some(j) = &mut out.join {
            j.links.retain(|e| !failed.contains(e));
            j.next_asset = next_asset;
            if (j.entities_done && j.next_asset >= j.assets.len()) || j.links.is_empty() {
                out.join = None;
            }
        }
    }
    if out.active {
        sent += send_delta(&out, &links, &mut stats, limit);
        out.created.clear();
        out.deleted.clear();
        out.assets_modified.clear();
        out.assets_deleted.clear();
        for t in out.types.values_mut() {
            t.delta.clear();
            t.removed.clear();
        }
    }
    for t in out.types.values_mut() {
        t.snapshot.clear();
    }
    stats.transactions_sent += sent;
}

/// Send the delta to every synced link, encoded once per extension set; returns the number of
/// transactions encoded.
fn send_delta(
    out: &Outgoing,
    links: &Query<(Entity, &NoodlesLink)>,
    stats: &mut MirrorStats,
    limit: usize,
) -> u64 {
    let mut groups: BTreeMap<&[u16], Vec<&NoodlesLink>> = BTreeMap::new();
    for (e, l) in links {
        if l.is_open() && l.role == Some(Role::Upstream) && out.synced.contains(&e) {
            groups.entry(&l.extensions).or_default().push(l);
        }
    }
    let mut bytes = 0;
    let mut sent = 0;
    for (exts, group) in &groups {
        let contents = build_contents(out, exts, Part::Delta, limit);
        for tx in pack_transactions(contents, limit, &out.tx_pool) {
            bytes += tx.len();
            sent += 1;
            for l in group {
                match l.send(tx.clone()) {
                    Ok(()) => {}
                    // Closed since this frame began: its `LinkClosed` says why.
                    Err(
                        e @ LinkSendError::Queue {
                            error: QueueError::Closed,
                            ..
                        },
                    ) => debug!("{e}"),
                    Err(e) => warn!("{e}"),
                }
            }
        }
    }
    stats.last_delta_pairs = out
        .types
        .values()
        .flat_map(|t| t.delta.frozen.iter().map(|c| c.1 as usize))
        .sum();
    stats.last_delta_bytes = bytes;
    sent
}
