//! Checking a proposal (`ProposedChangeTransaction`) on the Upstream, without an engine: every
//! id, type and payload of a hostile proposal is checked before anything is applied, and the
//! result is a [`Plan`] of what to apply or a [`Rejection`] with its reply code and a reason.
//!
//! The engine answers the questions a check asks through [`ProposalWorld`]: which canonical
//! entities and assets exist, which component and asset types it mirrors (with a function that
//! decodes a payload and visits the ids inside). `bevy_noodles2` implements it over its world and
//! registry; the `proposal` fuzz target over a small fixed world.
//!
//! Spec: `main_sequence.jaw` (`ProposedChangeTransaction`, `ProposedTransactionReply`), the
//! README's *Proposals* (patch-local ids have bit 63 set and are remapped by the Upstream).

use std::collections::HashSet;

use bytes::Bytes;

use crate::codec::rt::Reader;
use crate::codec::{AnAsset, ContentArray, ContentMessage, EntityID, IdMut, VisitIds, Wire};

/// Bit 63: a patch-local id (created by the proposal, remapped by the Upstream).
pub const PATCH_LOCAL_BIT: u64 = 1 << 63;

/// Most placeholders one proposal may create (entities, and assets, each): the reply's remap
/// tables are counted in `u16`, so a larger proposal could never be answered. A proposal that
/// creates more is rejected with code 2 (resource exhausted) before anything is applied.
pub const MAX_PLACEHOLDERS: u64 = u16::MAX as u64;

/// `ProposedTransactionReply` codes (spec: `main_sequence.jaw`).
pub mod codes {
    /// The proposal was applied.
    pub const ACCEPTED: u16 = 0;
    /// Not permitted (authority, policy, capability).
    pub const DENIED: u16 = 1;
    /// Not enough resources to complete it.
    pub const RESOURCE_EXHAUSTED: u16 = 2;
    /// Rejection, or it contained disallowed content.
    pub const MALFORMED: u16 = 3;
    /// The first application-specific code.
    pub const APPLICATION_MIN: u16 = 256;
}

/// Decode a component payload (`(EntityID, value)` pairs) and re-encode it, handing each pair's
/// target id to the first visitor and every id inside the value (in wire order) to the second;
/// both may rewrite them.
pub type VisitComponentIds<'a> = &'a dyn Fn(
    &Bytes,
    &mut dyn FnMut(&mut u64),
    &mut dyn FnMut(IdMut<'_>),
) -> Result<Bytes, String>;

/// Decode an asset body, check it may be proposed, and re-encode it, visiting every id inside.
pub type VisitAssetIds<'a> = &'a dyn Fn(&Bytes, &mut dyn FnMut(IdMut<'_>)) -> Result<Bytes, String>;

/// A [`VisitComponentIds`] for component payloads of wire type `W`: decodes every
/// `(EntityID, W)` pair, visits its ids and re-encodes it.
pub fn visit_pair_ids<W: Wire + VisitIds>(
    bytes: &Bytes,
    target: &mut dyn FnMut(&mut u64),
    inner: &mut dyn FnMut(IdMut<'_>),
) -> Result<Bytes, String> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::with_capacity(bytes.len());
    let mut n = 0usize;
    while r.remaining() > 0 {
        let decode = |e| format!("pair {n}: {e}");
        let mut id = EntityID::read(&mut r).map_err(decode)?.id.get();
        let mut w = W::read(&mut r).map_err(decode)?;
        target(&mut id);
        w.visit_ids_mut(inner);
        out.extend_from_slice(&id.to_le_bytes());
        w.write(&mut out).map_err(|e| format!("pair {n}: {e}"))?;
        n += 1;
    }
    Ok(Bytes::from(out))
}

/// A [`VisitAssetIds`] for asset bodies of wire type `W` (with no further check).
pub fn visit_asset_ids<W: Wire + VisitIds>(
    bytes: &Bytes,
    visit: &mut dyn FnMut(IdMut<'_>),
) -> Result<Bytes, String> {
    let mut wire = W::decode(bytes.clone()).map_err(|e| format!("undecodable asset: {e}"))?;
    wire.visit_ids_mut(visit);
    wire.encode_bytes().map_err(|e| e.to_string())
}

/// A component type the Upstream mirrors.
pub struct ComponentCheck<'a> {
    /// The engine's index of its rule (handed back in the [`Plan`]).
    pub rule: usize,
    /// The engine type's name (for reasons and policies).
    pub name: &'static str,
    /// Its payload visitor.
    pub visit: VisitComponentIds<'a>,
}

/// An asset type the Upstream mirrors and accepts in proposals.
pub struct AssetCheck<'a> {
    /// The engine's index of its rule (handed back in the [`Plan`]).
    pub rule: usize,
    /// The engine type's name.
    pub name: &'static str,
    /// Its body visitor.
    pub propose: VisitAssetIds<'a>,
}

/// What a proposal check asks of the Upstream's world.
pub trait ProposalWorld {
    /// The engine's handle of an entity.
    type Entity: Copy;
    /// The shared entity with canonical id `id`, if it exists.
    fn entity(&self, id: u64) -> Option<Self::Entity>;
    /// Whether asset `id` exists (of type `asset_type`, when given).
    fn known_asset(&self, asset_type: Option<(u16, u16)>, id: u64) -> bool;
    /// Whether existing asset `(extension, type, id)` may be replaced by a proposal (only assets
    /// that proposals created may).
    fn replaceable_asset(&self, key: (u16, u16, u64)) -> bool;
    /// The component type `(extension, identifier)`, if mirrored.
    fn component(&self, extension: u16, identifier: u16) -> Option<ComponentCheck<'_>>;
    /// The asset type `(extension, identifier)`, if mirrored.
    fn asset(&self, extension: u16, identifier: u16) -> Option<AssetCheck<'_>>;
    /// The asset type whose ids the codec wraps in `wrapper` (`"MeshAssetID"`).
    fn asset_type_of_wrapper(&self, wrapper: &str) -> Option<(u16, u16)>;
}

/// Why a proposal is rejected before any policy sees it: its reply code and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    /// The reply code ([`codes`]).
    pub code: u16,
    /// What was wrong, naming the content entry.
    pub reason: String,
}

/// Code 3: malformed, or disallowed content.
pub fn malformed(reason: impl Into<String>) -> Rejection {
    Rejection {
        code: codes::MALFORMED,
        reason: reason.into(),
    }
}

/// An entity a proposal touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposedEntity<E> {
    /// An existing shared entity.
    Existing {
        /// Its canonical id.
        id: u64,
        /// The shared entity.
        entity: E,
    },
    /// An entity the proposal creates (its patch-local id).
    New(u64),
}

impl<E> ProposedEntity<E> {
    /// Is this an entity the proposal creates?
    pub fn is_new(&self) -> bool {
        matches!(self, ProposedEntity::New(_))
    }
}

/// One thing a proposal does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposedChange<E> {
    /// Set (add or replace) a component.
    SetComponent {
        /// On which entity.
        entity: ProposedEntity<E>,
        /// `(extension, identifier)`.
        component: (u16, u16),
        /// The engine type it maps to.
        name: &'static str,
    },
    /// Remove a component.
    RemoveComponent {
        /// From which entity.
        entity: ProposedEntity<E>,
        /// `(extension, identifier)`.
        component: (u16, u16),
        /// The engine type it maps to.
        name: &'static str,
    },
    /// Delete an existing entity.
    DeleteEntity {
        /// Its canonical id.
        id: u64,
        /// The shared entity.
        entity: E,
    },
    /// Add (patch-local id) or replace (canonical id) an asset.
    SetAsset(AnAsset),
}

/// One step of a checked proposal, in content order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Set a component on the pairs' entities.
    Modify {
        /// The engine's component rule.
        rule: usize,
        /// The payload.
        bytes: Bytes,
    },
    /// Remove a component from these entities (canonical or patch-local ids).
    Remove {
        /// The engine's component rule.
        rule: usize,
        /// The entities.
        ids: Vec<u64>,
    },
    /// Delete these existing entities.
    Delete {
        /// Their canonical ids.
        ids: Vec<u64>,
    },
    /// Set an asset.
    Asset {
        /// Which.
        an_asset: AnAsset,
        /// The engine's asset rule.
        rule: usize,
        /// The body.
        bytes: Bytes,
    },
}

/// A checked proposal, ready to decide on and apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<E> {
    /// Patch-local ids of the entities it creates.
    pub new_entities: Vec<u64>,
    /// The assets it creates (patch-local ids).
    pub new_assets: Vec<AnAsset>,
    /// What to apply, in order.
    pub steps: Vec<Step>,
    /// Everything it does, for permissions and policies.
    pub changes: Vec<ProposedChange<E>>,
}

/// Ids a proposal may use: canonical ones that exist, and the placeholders it creates.
struct IdCheck<'a, W: ProposalWorld> {
    world: &'a W,
    entities: HashSet<u64>,
    assets: HashSet<(u16, u16, u64)>,
    asset_ids: HashSet<u64>,
}

impl<W: ProposalWorld> IdCheck<'_, W> {
    fn entity(&self, id: u64) -> Result<ProposedEntity<W::Entity>, Rejection> {
        if id & PATCH_LOCAL_BIT != 0 {
            return if self.entities.contains(&id) {
                Ok(ProposedEntity::New(id))
            } else {
                Err(malformed(format!(
                    "patch-local entity id {id:#x} is not created by this proposal"
                )))
            };
        }
        match self.world.entity(id) {
            Some(entity) => Ok(ProposedEntity::Existing { id, entity }),
            None => Err(malformed(format!("unknown entity id {id}"))),
        }
    }

    fn asset(&self, asset_type: Option<(u16, u16)>, id: u64) -> Result<(), Rejection> {
        if id & PATCH_LOCAL_BIT != 0 {
            let declared = match asset_type {
                Some((e, t)) => self.assets.contains(&(e, t, id)),
                None => self.asset_ids.contains(&id),
            };
            return if declared {
                Ok(())
            } else {
                Err(malformed(format!(
                    "patch-local asset id {id:#x} is not created by this proposal"
                )))
            };
        }
        if self.world.known_asset(asset_type, id) {
            Ok(())
        } else {
            Err(malformed(match asset_type {
                Some(t) => format!("asset id {id} names no asset of type {t:?}"),
                None => format!("unknown asset id {id}"),
            }))
        }
    }

    /// Check every id a visitor hands over; the first problem wins.
    fn visit(&self, first: &mut Option<Rejection>, id: IdMut<'_>) {
        if first.is_some() {
            return;
        }
        let r = match id {
            IdMut::Entity(e) => self.entity(e.id.get()).map(|_| ()),
            IdMut::Asset { within, id } => {
                self.asset(self.world.asset_type_of_wrapper(within), id.id.get())
            }
            IdMut::AnAsset(a) => {
                let (e, t, i) = a.key();
                self.asset(Some((e, t)), i)
            }
        };
        if let Err(m) = r {
            *first = Some(m);
        }
    }
}

/// Check a whole proposal against `world` without changing anything: every id it uses exists or
/// is created by it, every component and asset type is one the Upstream mirrors on a negotiated
/// extension, every payload decodes (and its inner ids check out), and it creates at most
/// [`MAX_PLACEHOLDERS`] entities and as many assets. The plan says what to apply, in order.
pub fn check<W: ProposalWorld>(
    world: &W,
    extensions: &[u16],
    content: &ContentArray,
) -> Result<Plan<W::Entity>, Rejection> {
    let mut ids = IdCheck {
        world,
        entities: HashSet::new(),
        assets: HashSet::new(),
        asset_ids: HashSet::new(),
    };
    let mut new_entities = Vec::new();
    let mut new_assets = Vec::new();
    // The registry rule of a component type the proposal names, if this link may carry it.
    let component_rule = |i: usize,
                          ext: u16,
                          ident: u16|
     -> Result<ComponentCheck<'_>, Rejection> {
        if !extensions.contains(&ext) {
            return Err(malformed(format!(
                "content[{i}]: component type ({ext}, {ident}) is outside the link's extensions {extensions:?}"
            )));
        }
        world.component(ext, ident).ok_or_else(|| {
            malformed(format!(
                "content[{i}]: component type ({ext}, {ident}) is not mirrored by this Upstream"
            ))
        })
    };
    // Pass 1: what the proposal creates.
    for (i, c) in content.iter().enumerate() {
        match c {
            ContentMessage::ContentCreateEntities(m) => {
                for e in m.list.iter() {
                    let id = e.id.get();
                    if id & PATCH_LOCAL_BIT == 0 {
                        return Err(malformed(format!(
                            "content[{i}]: new entity with canonical id {id} (new entities must use patch-local ids)"
                        )));
                    }
                    if !ids.entities.insert(id) {
                        return Err(malformed(format!(
                            "content[{i}]: patch-local entity id {id:#x} is created twice"
                        )));
                    }
                    new_entities.push(id);
                }
            }
            ContentMessage::ContentModifyAsset(m) => {
                let key = m.an_asset.key();
                if key.2 & PATCH_LOCAL_BIT != 0 {
                    if !ids.assets.insert(key) {
                        return Err(malformed(format!(
                            "content[{i}]: patch-local asset id {:#x} is created twice",
                            key.2
                        )));
                    }
                    ids.asset_ids.insert(key.2);
                    new_assets.push(m.an_asset);
                }
            }
            _ => {}
        }
    }
    // The reply's remap tables are counted in u16: a larger proposal could not be answered.
    if new_entities.len() as u64 > MAX_PLACEHOLDERS || new_assets.len() as u64 > MAX_PLACEHOLDERS {
        return Err(Rejection {
            code: codes::RESOURCE_EXHAUSTED,
            reason: format!(
                "creates {} entities and {} assets; a reply can remap at most {MAX_PLACEHOLDERS} of each",
                new_entities.len(),
                new_assets.len()
            ),
        });
    }
    // Pass 2: every change, every id, every payload.
    let mut steps = Vec::new();
    let mut changes = Vec::new();
    for (i, c) in content.iter().enumerate() {
        match c {
            ContentMessage::ContentCreateEntities(_) => {}
            ContentMessage::ContentDeleteEntities(m) => {
                let mut list = Vec::new();
                for e in m.list.iter() {
                    match ids
                        .entity(e.id.get())
                        .map_err(|m| malformed(format!("content[{i}] (delete entities): {m}")))?
                    {
                        ProposedEntity::Existing { id, entity } => {
                            list.push(id);
                            changes.push(ProposedChange::DeleteEntity { id, entity });
                        }
                        ProposedEntity::New(id) => {
                            return Err(malformed(format!(
                                "content[{i}]: deletes entity {id:#x}, which the same proposal creates"
                            )));
                        }
                    }
                }
                steps.push(Step::Delete { ids: list });
            }
            ContentMessage::ContentModifyComponents(m) => {
                let (ext, ident) = (m.component.extension.id.get(), m.component.identifier.get());
                let ComponentCheck { rule, name, visit } = component_rule(i, ext, ident)?;
                let mut target_err: Option<Rejection> = None;
                let mut inner_err: Option<Rejection> = None;
                let mut targets = Vec::new();
                visit(
                    &m.content.0,
                    &mut |id: &mut u64| {
                        if target_err.is_none() {
                            match ids.entity(*id) {
                                Ok(t) => targets.push(t),
                                Err(e) => target_err = Some(e),
                            }
                        }
                    },
                    &mut |id| ids.visit(&mut inner_err, id),
                )
                .map_err(|e| malformed(format!("content[{i}]: undecodable {name} payload: {e}")))?;
                if let Some(m) = target_err.or(inner_err) {
                    return Err(malformed(format!("content[{i}] ({name}): {m}")));
                }
                for entity in targets {
                    changes.push(ProposedChange::SetComponent {
                        entity,
                        component: (ext, ident),
                        name,
                    });
                }
                steps.push(Step::Modify {
                    rule,
                    bytes: m.content.0.clone(),
                });
            }
            ContentMessage::ContentDeleteComponents(m) => {
                let (ext, ident) = (m.component.extension.id.get(), m.component.identifier.get());
                let ComponentCheck { rule, name, .. } = component_rule(i, ext, ident)?;
                let mut list = Vec::new();
                for e in m.list.iter() {
                    let entity = ids
                        .entity(e.id.get())
                        .map_err(|m| malformed(format!("content[{i}] (delete {name}): {m}")))?;
                    list.push(e.id.get());
                    changes.push(ProposedChange::RemoveComponent {
                        entity,
                        component: (ext, ident),
                        name,
                    });
                }
                steps.push(Step::Remove { rule, ids: list });
            }
            ContentMessage::ContentModifyAsset(m) => {
                let (ext, ty, id) = m.an_asset.key();
                if !extensions.contains(&ext) {
                    return Err(malformed(format!(
                        "content[{i}]: asset type ({ext}, {ty}) is outside the link's extensions {extensions:?}"
                    )));
                }
                if id & PATCH_LOCAL_BIT == 0 && !world.known_asset(Some((ext, ty)), id) {
                    return Err(malformed(format!("content[{i}]: unknown asset id {id}")));
                }
                if id & PATCH_LOCAL_BIT == 0 && !world.replaceable_asset((ext, ty, id)) {
                    return Err(malformed(format!(
                        "content[{i}]: asset {id} was not created by a proposal and cannot be replaced by one"
                    )));
                }
                let Some(AssetCheck {
                    rule,
                    name,
                    propose,
                }) = world.asset(ext, ty)
                else {
                    return Err(malformed(format!(
                        "content[{i}]: asset type ({ext}, {ty}) cannot be proposed (this Upstream does not mirror it)"
                    )));
                };
                let mut first = None;
                propose(&m.content.0, &mut |x| ids.visit(&mut first, x))
                    .map_err(|e| malformed(format!("content[{i}]: {name} asset {id:#x}: {e}")))?;
                if let Some(m) = first {
                    return Err(malformed(format!(
                        "content[{i}] ({name} asset {id:#x}): {m}"
                    )));
                }
                changes.push(ProposedChange::SetAsset(m.an_asset));
                steps.push(Step::Asset {
                    an_asset: m.an_asset,
                    rule,
                    bytes: m.content.0.clone(),
                });
            }
            ContentMessage::ContentDeleteAsset(m) => {
                let (ext, ty, id) = m.an_asset.key();
                return Err(malformed(format!(
                    "content[{i}]: proposes deleting asset ({ext}, {ty}):{id}; asset deletion cannot be proposed"
                )));
            }
        }
    }
    Ok(Plan {
        new_entities,
        new_assets,
        steps,
        changes,
    })
}
