//! Downstream: apply incoming transactions, in order and whole, to native Bevy components.

use bevy::prelude::*;

use super::registry::ComponentRegistry;
use super::upstream::MirrorStats;
use super::{EntityIndex, MirrorConfig, Mirrored, RemoteIds};
use crate::codec::{ContentMessage, DecodeError, MainSequenceMessage, Transaction};
use crate::net::{CloseLink, LinkClosed, NoodlesLink};

/// What happens to a link's mirrored entities when the link closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkClosedPolicy {
    /// Despawn them (default).
    #[default]
    Despawn,
    /// Keep them as they are (they stay [`Mirrored`], frozen).
    Keep,
}

/// Why a transaction (or a component in it) could not be applied. The link that sent it is closed
/// with this as the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MirrorError {
    /// A component payload does not decode.
    #[error("component {component} (pair {index}): {error}")]
    Decode {
        /// The Bevy type it maps to.
        component: &'static str,
        /// Which `(EntityID, value)` pair of the payload.
        index: usize,
        /// What was wrong, and where.
        error: DecodeError,
    },
    /// A component type of an extension the link did not negotiate: `(extension, identifier)`.
    #[error(
        "component type ({0}, {1}) belongs to extension {0}, which this link did not negotiate"
    )]
    NotNegotiatedComponent(u16, u16),
    /// An asset type of an extension the link did not negotiate: `(extension, identifier)`.
    #[error("asset type ({0}, {1}) belongs to extension {0}, which this link did not negotiate")]
    NotNegotiatedAsset(u16, u16),
    /// A patch-local id where only canonical ids may be.
    #[error("patch-local id {0:#x} (bit 63 set) in an authoritative transaction")]
    PatchLocalInTransaction(u64),
    /// A decoded value the component does not accept (a [`MirrorComponent::from_wire`] check).
    ///
    /// [`MirrorComponent::from_wire`]: super::MirrorComponent::from_wire
    #[error("component {component}: {reason}")]
    Invalid {
        /// The Bevy type.
        component: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// A component refers to an asset this app cannot hold.
    #[error(
        "component {component} refers to asset {id} of type ({}, {}), which this app cannot hold (it keeps no Bevy asset of that type)",
        asset_type.0,
        asset_type.1
    )]
    NoAsset {
        /// The Bevy type.
        component: &'static str,
        /// `(extension, identifier)` of the asset type.
        asset_type: (u16, u16),
        /// The `AssetID`.
        id: u64,
    },
    /// A decoded value could not be encoded again (an array too long for its count type).
    #[error("component {component} cannot be encoded: {error}")]
    Encode {
        /// The Bevy type.
        component: &'static str,
        /// What was too long.
        error: crate::codec::EncodeError,
    },
}

impl MirrorError {
    /// [`MirrorError::Invalid`] for component `C`.
    pub fn invalid<C>(reason: impl Into<String>) -> Self {
        MirrorError::Invalid {
            component: std::any::type_name::<C>(),
            reason: reason.into(),
        }
    }

    /// [`MirrorError::NoAsset`] for component `C`.
    pub fn no_asset<C>(asset_type: (u16, u16), id: u64) -> Self {
        MirrorError::NoAsset {
            component: std::any::type_name::<C>(),
            asset_type,
            id,
        }
    }
}

/// Validate a whole transaction before any of it is applied.
fn validate(
    tx: &Transaction,
    registry: &ComponentRegistry,
    link: &NoodlesLink,
) -> Result<(), MirrorError> {
    for c in tx.content.iter() {
        match c {
            ContentMessage::ContentCreateEntities(m) => {
                check_ids(m.list.iter().map(|e| e.id.get()))?
            }
            ContentMessage::ContentDeleteEntities(m) => {
                check_ids(m.list.iter().map(|e| e.id.get()))?
            }
            ContentMessage::ContentModifyComponents(m) => {
                let (ext, id) = (m.component.extension.id.get(), m.component.identifier.get());
                if !link.has_extension(ext) {
                    return Err(MirrorError::NotNegotiatedComponent(ext, id));
                }
                if let Some(rule) = registry.get(ext, id) {
                    (rule.validate)(&m.content.0)?;
                }
            }
            ContentMessage::ContentDeleteComponents(m) => {
                let (ext, id) = (m.component.extension.id.get(), m.component.identifier.get());
                if !link.has_extension(ext) {
                    return Err(MirrorError::NotNegotiatedComponent(ext, id));
                }
                check_ids(m.list.iter().map(|e| e.id.get()))?;
            }
            ContentMessage::ContentModifyAsset(m) => {
                let ext = m.an_asset.asset_type.extension.id.get();
                if !link.has_extension(ext) {
                    return Err(MirrorError::NotNegotiatedAsset(
                        ext,
                        m.an_asset.asset_type.identifier.get(),
                    ));
                }
                check_ids(std::iter::once(m.an_asset.key().2))?;
            }
            ContentMessage::ContentDeleteAsset(m) => {
                let ext = m.an_asset.asset_type.extension.id.get();
                if !link.has_extension(ext) {
                    return Err(MirrorError::NotNegotiatedAsset(
                        ext,
                        m.an_asset.asset_type.identifier.get(),
                    ));
                }
                check_ids(std::iter::once(m.an_asset.key().2))?;
            }
        }
    }
    Ok(())
}

fn check_ids(ids: impl Iterator<Item = u64>) -> Result<(), MirrorError> {
    for id in ids {
        if id & super::PATCH_LOCAL_BIT != 0 {
            return Err(MirrorError::PatchLocalInTransaction(id));
        }
    }
    Ok(())
}

/// One link's remote-id → entity map, taken out of [`EntityIndex`] while a transaction from that
/// link is applied: every pair resolves its id with one hash lookup, without going through the
/// world's resource table. Nothing else reads the link's map during the (exclusive) apply.
struct LinkIds {
    link: Entity,
    map: RemoteIds,
}

impl LinkIds {
    fn take(world: &mut World, link: Entity) -> Self {
        let map = world
            .resource_mut::<EntityIndex>()
            .remote
            .remove(&link)
            .unwrap_or_default();
        Self { link, map }
    }

    fn put_back(self, world: &mut World) {
        world
            .resource_mut::<EntityIndex>()
            .remote
            .insert(self.link, self.map);
    }

    /// The entity mirroring `id`, spawned on first sight (or again, if the app despawned it).
    #[inline]
    fn resolve(&mut self, world: &mut World, id: u64) -> Entity {
        match self.map.get(id) {
            Some(e) if world.get_entity(e).is_ok() => e,
            _ => self.spawn(world, id),
        }
    }

    #[cold]
    #[inline(never)]
    fn spawn(&mut self, world: &mut World, id: u64) -> Entity {
        // `Visibility::Inherited` is the spec's default without a `VisibilityComponent`; Bevy's
        // visibility propagation needs it on every entity of a hierarchy (B0004 otherwise). It is
        // local: mirrored entities send nothing back.
        let e = world
            .spawn((
                Mirrored {
                    link: self.link,
                    id,
                },
                Visibility::Inherited,
            ))
            .id();
        self.map.insert(id, e);
        e
    }

    fn despawn(&mut self, world: &mut World, id: u64) {
        if let Some(e) = self.map.remove(id) {
            detach_and_despawn(world, e);
        }
    }
}

/// Despawn without taking children along: Bevy despawns `Children` recursively, but a mirrored
/// child may outlive its parent (the Upstream deletes entities one by one).
pub(crate) fn detach_and_despawn(world: &mut World, e: Entity) {
    let children: Vec<Entity> = world
        .get::<Children>(e)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    for c in children {
        if let Ok(mut cm) = world.get_entity_mut(c) {
            cm.remove::<ChildOf>();
        }
    }
    if let Ok(em) = world.get_entity_mut(e) {
        em.despawn();
    }
}

/// Apply one validated transaction to the world.
fn apply(
    world: &mut World,
    link: Entity,
    tx: Transaction,
    registry: &ComponentRegistry,
) -> Result<(), MirrorError> {
    let mut ids = LinkIds::take(world, link);
    let result = apply_with(world, &mut ids, tx, registry);
    ids.put_back(world);
    result
}

fn apply_with(
    world: &mut World,
    ids: &mut LinkIds,
    tx: Transaction,
    registry: &ComponentRegistry,
) -> Result<(), MirrorError> {
    let link = ids.link;
    for c in tx.content.0 {
        match c {
            ContentMessage::ContentCreateEntities(m) => {
                for id in m.list.iter() {
                    ids.resolve(world, id.id.get());
                }
            }
            ContentMessage::ContentDeleteEntities(m) => {
                for id in m.list.iter() {
                    ids.despawn(world, id.id.get());
                }
            }
            ContentMessage::ContentModifyComponents(m) => {
                let (ext, id) = (m.component.extension.id.get(), m.component.identifier.get());
                match registry.get(ext, id) {
                    Some(rule) => {
                        let mut resolver = |w: &mut World, id: u64| ids.resolve(w, id);
                        (rule.apply)(world, link, &mut resolver, &m.content.0)?
                    }
                    None => {
                        debug!(
                            "component type ({ext}, {id}) has no known layout here: its payload is kept whole on the link"
                        );
                        super::raw::keep_payload(world, link, (ext, id), &m.content.0);
                    }
                }
            }
            ContentMessage::ContentDeleteComponents(m) => {
                let (ext, id) = (m.component.extension.id.get(), m.component.identifier.get());
                if let Some(rule) = registry.get(ext, id) {
                    for eid in m.list.iter() {
                        if let Some(e) = ids.map.get(eid.id.get()) {
                            (rule.remove)(world, e);
                        }
                    }
                }
            }
            ContentMessage::ContentModifyAsset(m) => {
                if let Some(mut assets) = world.get_resource_mut::<super::IncomingAssets>() {
                    assets.push(link, m);
                }
            }
            ContentMessage::ContentDeleteAsset(m) => {
                if let Some(mut assets) = world.get_resource_mut::<super::IncomingAssets>() {
                    assets.delete(link, m.an_asset);
                }
            }
        }
    }
    Ok(())
}

/// The router's handler of `Transaction`s (on links where this node is Downstream): each is
/// validated whole, then applied; a bad one closes the link.
pub(crate) fn handle_transaction(
    world: &mut World,
    link: Entity,
    msg: MainSequenceMessage,
) -> Result<(), CloseLink> {
    let MainSequenceMessage::Transaction(tx) = msg else {
        return Ok(());
    };
    world.resource_scope(|world, registry: Mut<ComponentRegistry>| {
        let Some(l) = world.get::<NoodlesLink>(link) else {
            return Ok(());
        };
        validate(&tx, &registry, l)
            .and_then(|_| apply(world, link, tx, &registry))
            .map_err(|e| CloseLink(format!("bad transaction: {e}")))
    })?;
    world.resource_mut::<MirrorStats>().transactions_applied += 1;
    Ok(())
}

/// When a Downstream link closes, despawn (or keep) what it mirrored.
pub(crate) fn despawn_closed_links(
    mut closed: MessageReader<LinkClosed>,
    mut index: ResMut<EntityIndex>,
    mut assets: ResMut<super::AssetIdMap>,
    config: Res<MirrorConfig>,
    mut commands: Commands,
) {
    for c in closed.read() {
        // Entities kept after the close hold their assets themselves.
        assets.forget_link(c.link);
        let Some(map) = index.remote.remove(&c.link) else {
            continue;
        };
        if config.on_link_closed == LinkClosedPolicy::Despawn {
            let entities: Vec<Entity> = map.entities().collect();
            commands.queue(move |world: &mut World| {
                for e in entities {
                    detach_and_despawn(world, e);
                }
            });
        }
    }
}
