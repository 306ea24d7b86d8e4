//! Proposals: a Downstream asks the Upstream to change the shared world, and the Upstream decides
//! (spec: README, "Transactions and Authority"; `main_sequence.jaw`, `ProposedChangeTransaction`).
//!
//! **Downstream.** Build a [`Proposal`] from ordinary Bevy components, send it with the
//! [`Proposals`] system parameter (or [`send_proposal`] from exclusive code), and read the answer
//! as a [`ProposalReply`] message. New entities and assets get patch-local ids (bit 63 set); a
//! [`Placeholder`] stands for a new entity wherever a component needs an [`Entity`] (a `ChildOf`
//! pointing at a new parent, for example). Nothing changes locally: the new entities appear when the
//! Upstream's canonical `Transaction` comes back.
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_noodles2::proposals::{Proposal, ProposalReply, Proposals};
//!
//! fn propose(mut proposals: Proposals, link: Single<Entity, With<bevy_noodles2::net::NoodlesLink>>) {
//!     let mut p = Proposal::new();
//!     let parent = p.spawn();
//!     p.insert(parent, Name::new("crate"));
//!     let child = p.spawn();
//!     p.insert(child, Name::new("lid")).insert(child, ChildOf(parent.entity()));
//!     match proposals.send(*link, p) {
//!         Ok(transaction_id) => info!("proposal {transaction_id} sent"),
//!         Err(e) => warn!("{e}"),
//!     }
//! }
//!
//! fn answers(mut replies: MessageReader<ProposalReply>) {
//!     for r in replies.read() {
//!         info!("proposal {} answered with code {}; new entities: {:?}", r.transaction_id, r.code, r.entities);
//!     }
//! }
//! ```
//!
//! **Upstream.** Proposals from every link are handled in strict arrival order, one at a time.
//! Each is checked whole first (unknown canonical ids, patch-local ids the proposal does not create,
//! asset deletion, non-inline buffers, types outside the link's extensions, anything undecodable:
//! code 3); then the [`ProposalPolicy`] decides; an accepted proposal is applied whole, its
//! placeholders become shared entities (and assets) with canonical ids, the proposer gets a
//! `ProposedTransactionReply` with complete remap tables, and the canonical `Transaction` follows
//! through the normal send step in the same frame. The app sees [`ProposalApplied`] or
//! [`ProposalRejected`].
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_noodles2::proposals::{ProposalDecision, ProposalPolicy, ProposedChange};
//!
//! # let mut app = App::new();
//! // Allow creating entities, nothing else.
//! app.insert_resource(ProposalPolicy::new(|ctx| {
//!     if ctx.changes.iter().all(|c| matches!(c, ProposedChange::SetComponent { entity, .. } if entity.is_new())) {
//!         ProposalDecision::Accept
//!     } else {
//!         ProposalDecision::Deny
//!     }
//! }));
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;

use bevy::asset::UntypedAssetId;
use bevy::ecs::system::{SystemParam, SystemState};
use bevy::prelude::*;
use bytes::Bytes;

use crate::codec::{
    AnAsset, AssetID, AssetPairMap, AssetTypeID, BufferAsset, BufferAssetFlags, BufferSource,
    ComponentTypeID, Content, ContentArray, ContentCreateEntities, ContentDeleteComponents,
    ContentDeleteEntities, ContentMessage, ContentModifyAsset, ContentModifyComponents,
    EncodeError, EntityID, EntityList, EntityPairMap, ExtensionID, IdMut, InlineContent,
    MainSequenceMessage, ProposedChangeTransaction, ProposedTransactionReply, RemappedAssets,
    RemappedEntities, Wire,
};
use crate::link::{MessageKind, Role};
use crate::mirror::{
    AssetIdMap, AssetImported, ComponentRegistry, EntityIds, EntityIndex, MirrorComponent,
    Mirrored, Outgoing, PATCH_LOCAL_BIT, Shared, SharedId, reserve_imported,
};
use crate::net::{
    CloseLink, LinkClosed, LinkPermissions, LinkSendError, NoodlesLink, RouterAppExt,
};
use crate::schedule::{self, NoodlesSystems};
use noodles2::proposal::{
    AssetCheck, ComponentCheck, Plan, ProposalWorld, Rejection, Step, check, malformed,
};

pub use noodles2::proposal::codes;

/// The Core buffer asset type, `AssetTypeID (0, 0)`.
pub const BUFFER_ASSET_TYPE: (u16, u16) = (0, 0);

/// Canonical ids of assets created by accepted proposals start here (bit 62), so they never
/// collide with ids the asset layer allocates from 1.
pub const PROPOSED_ASSET_ID_BASE: u64 = 1 << 62;

pub use noodles2::proposal::MAX_PLACEHOLDERS;

/// The first 64 bits of the UUID of a stand-in handle ([`AssetPlaceholder::handle`]).
const STAND_IN_UUID: u64 = u64::from_be_bytes(*b"noodles2");

// ============================================================================================
// Downstream: building and sending proposals
// ============================================================================================

/// A new entity in a [`Proposal`]: its patch-local id (bit 63 set), and a stand-in [`Entity`] to
/// put in components that reference entities (`ChildOf(placeholder.entity())`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Placeholder(u64);

impl Placeholder {
    /// The patch-local id (bit 63 set), as it appears on the wire and in the reply's remap table.
    pub fn id(self) -> u64 {
        self.0
    }

    /// A stand-in entity for this placeholder, for component values that hold an [`Entity`].
    /// It is never spawned; it only means "this new entity" while the proposal is encoded
    /// (index near `u32::MAX`, generation `u32::MAX`, so it cannot alias a live entity in practice).
    pub fn entity(self) -> Entity {
        let k = (self.0 & !PATCH_LOCAL_BIT) as u32;
        let index = u32::MAX - 2 - k;
        Entity::try_from_bits(((u32::MAX as u64) << 32) | index as u64)
            .unwrap_or(Entity::PLACEHOLDER)
    }
}

/// A new asset in a [`Proposal`]: its asset type and patch-local id (bit 63 set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssetPlaceholder {
    /// `(extension, identifier)` of the asset type.
    pub asset_type: (u16, u16),
    /// The patch-local id (bit 63 set).
    pub id: u64,
}

impl AssetPlaceholder {
    /// The typed reference, as it appears on the wire.
    pub fn an_asset(self) -> AnAsset {
        an_asset(self.asset_type, self.id)
    }

    /// A stand-in handle for this new asset, for components that hold a handle
    /// (`Mesh3d(placeholder.handle())`). Like [`Placeholder::entity`], it only means "this new
    /// asset" while the proposal is encoded: a UUID handle that no collection holds.
    pub fn handle<A: Asset>(self) -> Handle<A> {
        Handle::Uuid(
            bevy::asset::uuid::Uuid::from_u64_pair(STAND_IN_UUID, self.id),
            std::marker::PhantomData,
        )
    }
}

/// Which entity a change in a [`Proposal`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalTarget {
    /// An entity the proposal creates.
    New(Placeholder),
    /// An entity mirrored from the link the proposal goes to (or a placeholder's stand-in).
    Entity(Entity),
    /// A canonical id, as is.
    Id(u64),
}

impl From<Placeholder> for ProposalTarget {
    fn from(p: Placeholder) -> Self {
        ProposalTarget::New(p)
    }
}

impl From<Entity> for ProposalTarget {
    fn from(e: Entity) -> Self {
        ProposalTarget::Entity(e)
    }
}

/// Why a proposal could not be built or sent (Downstream).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProposalError {
    /// No link entity.
    #[error("link {0} does not exist")]
    NoSuchLink(Entity),
    /// The link is not in the main sequence.
    #[error("link {0} is not open")]
    NotOpen(Entity),
    /// Only a Downstream proposes.
    #[error("we are not Downstream on link {0}: only the Downstream proposes")]
    NotDownstream(Entity),
    /// An entity the proposal names is not mirrored from this link.
    #[error(
        "entity {entity} is not mirrored from link {link} (nor a placeholder of this proposal)"
    )]
    NotMirrored {
        /// The entity.
        entity: Entity,
        /// The link the proposal goes to.
        link: Entity,
    },
    /// A component's `to_wire` declined to encode it (for example a reference to an entity that is
    /// neither mirrored nor a placeholder).
    #[error(
        "component {component} of {target:?} cannot be encoded (does it reference an entity that is not mirrored?)"
    )]
    NotEncodable {
        /// The Bevy type.
        component: &'static str,
        /// The entity it was for.
        target: ProposalTarget,
    },
    /// More than [`MAX_PLACEHOLDERS`] placeholders.
    #[error("too many placeholders in one proposal (at most {MAX_PLACEHOLDERS})")]
    TooManyPlaceholders,
    /// The message could not be encoded.
    #[error("proposal cannot be encoded: {0}")]
    Encode(#[from] EncodeError),
    /// The link refused the frame.
    #[error("{0}")]
    Send(#[from] LinkSendError),
    /// A buffer of the proposal is over 4 GiB.
    #[error("a buffer of the proposal is too large to encode (over 4 GiB)")]
    TooLarge,
    /// The proposal layer is not set up in this world (is the `NoodlesPlugin` added?).
    #[error("proposals are unavailable: {0}")]
    Unavailable(String),
}

type Encoder = Box<dyn FnOnce(&dyn EntityIds) -> Option<Vec<u8>> + Send + Sync>;

enum Op {
    Insert {
        key: (u16, u16),
        name: &'static str,
        target: ProposalTarget,
        encode: Encoder,
    },
    Remove {
        key: (u16, u16),
        target: ProposalTarget,
    },
    Despawn(ProposalTarget),
    Asset(ContentModifyAsset),
    Raw(ContentMessage),
}

/// A change to propose to the Upstream, built from ordinary Bevy components.
///
/// New entities come from [`spawn`](Self::spawn); existing ones are named by their mirrored
/// [`Entity`] (or canonical id). Components are encoded through their [`MirrorComponent`] mapping
/// when the proposal is sent, so entity references resolve to canonical ids, or to patch-local ids
/// for [`Placeholder::entity`] stand-ins.
#[derive(Default)]
pub struct Proposal {
    entities: Vec<Placeholder>,
    assets: Vec<AssetPlaceholder>,
    ops: Vec<Op>,
    overflow: bool,
    too_large: bool,
}

impl fmt::Debug for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proposal")
            .field("entities", &self.entities)
            .field("assets", &self.assets)
            .field("changes", &self.ops.len())
            .finish()
    }
}

impl Proposal {
    /// An empty proposal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Create a new entity; returns its placeholder.
    pub fn spawn(&mut self) -> Placeholder {
        let k = self.entities.len() as u64 + 1;
        if k > MAX_PLACEHOLDERS {
            self.overflow = true;
        }
        let p = Placeholder(PATCH_LOCAL_BIT | k.min(MAX_PLACEHOLDERS));
        self.entities.push(p);
        p
    }

    /// Set a component on a new or existing entity.
    pub fn insert<T: MirrorComponent>(
        &mut self,
        target: impl Into<ProposalTarget>,
        component: T,
    ) -> &mut Self {
        let encode: Encoder = Box::new(move |ids: &dyn EntityIds| {
            component.to_wire(ids).and_then(|w| w.encode().ok())
        });
        self.ops.push(Op::Insert {
            key: (T::EXTENSION, T::IDENTIFIER),
            name: std::any::type_name::<T>(),
            target: target.into(),
            encode,
        });
        self
    }

    /// Remove component `T` from an entity.
    pub fn remove<T: MirrorComponent>(&mut self, target: impl Into<ProposalTarget>) -> &mut Self {
        self.ops.push(Op::Remove {
            key: (T::EXTENSION, T::IDENTIFIER),
            target: target.into(),
        });
        self
    }

    /// Delete an existing entity.
    pub fn despawn(&mut self, target: impl Into<ProposalTarget>) -> &mut Self {
        self.ops.push(Op::Despawn(target.into()));
        self
    }

    /// Add a buffer asset with inline content; returns its placeholder (its id goes in the
    /// `BufferView`s of the assets that use it).
    pub fn add_buffer(&mut self, bytes: impl Into<Bytes>) -> AssetPlaceholder {
        let asset = BufferAsset {
            flags: BufferAssetFlags::default(),
            source: BufferSource::InlineContent(InlineContent(bytes.into())),
        };
        // Only a buffer over 4 GiB fails to encode; `build` then reports it.
        let body = asset.encode_bytes().unwrap_or_else(|_| {
            self.too_large = true;
            Bytes::new()
        });
        self.add_asset(BUFFER_ASSET_TYPE, body)
    }

    /// Add an asset of `asset_type` (`(extension, identifier)`) with an encoded body (for example
    /// a `MeshAsset` whose view names a buffer placeholder's id); returns its placeholder. Refer
    /// to it from components through [`AssetPlaceholder::handle`].
    pub fn add_asset(&mut self, asset_type: (u16, u16), body: Bytes) -> AssetPlaceholder {
        let k = self.assets.len() as u64 + 1;
        if k > MAX_PLACEHOLDERS {
            self.overflow = true;
        }
        let p = AssetPlaceholder {
            asset_type,
            id: PATCH_LOCAL_BIT | k.min(MAX_PLACEHOLDERS),
        };
        self.ops.push(Op::Asset(ContentModifyAsset {
            an_asset: p.an_asset(),
            content: Content(body),
        }));
        self.assets.push(p);
        p
    }

    /// Append a raw content message as is (for content the builder does not cover).
    pub fn push_content(&mut self, content: ContentMessage) -> &mut Self {
        self.ops.push(Op::Raw(content));
        self
    }

    /// The new entities so far.
    pub fn placeholders(&self) -> &[Placeholder] {
        &self.entities
    }

    /// The new assets so far.
    pub fn asset_placeholders(&self) -> &[AssetPlaceholder] {
        &self.assets
    }

    /// Is the proposal empty?
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty() && self.ops.is_empty()
    }

    /// Encode into the content of a `ProposedChangeTransaction`. `ids` gives the id, on the link
    /// the proposal goes to, of an existing entity or asset (its [`Mirrored::id`], its imported
    /// asset id); placeholders and their stand-ins resolve to their patch-local ids.
    pub fn build(self, ids: &dyn EntityIds, link: Entity) -> Result<ContentArray, ProposalError> {
        if self.overflow {
            return Err(ProposalError::TooManyPlaceholders);
        }
        if self.too_large {
            return Err(ProposalError::TooLarge);
        }
        let stand_ins: HashMap<Entity, u64> =
            self.entities.iter().map(|p| (p.entity(), p.id())).collect();
        let assets: HashSet<u64> = self.assets.iter().map(|a| a.id).collect();
        let ids = ProposalIds {
            stand_ins: &stand_ins,
            assets: &assets,
            link: ids,
        };
        let target_id = |t: ProposalTarget| -> Result<u64, ProposalError> {
            match t {
                ProposalTarget::New(p) => Ok(p.id()),
                ProposalTarget::Id(id) => Ok(id),
                ProposalTarget::Entity(e) => ids
                    .id_of(e)
                    .ok_or(ProposalError::NotMirrored { entity: e, link }),
            }
        };
        let mut content = Vec::with_capacity(self.ops.len() + 1);
        if !self.entities.is_empty() {
            content.push(ContentMessage::ContentCreateEntities(
                ContentCreateEntities {
                    list: EntityList(
                        self.entities
                            .iter()
                            .map(|p| EntityID::new(p.id()))
                            .collect(),
                    ),
                },
            ));
        }
        for op in self.ops {
            match op {
                Op::Insert {
                    key,
                    name,
                    target,
                    encode,
                } => {
                    let id = target_id(target)?;
                    let value = encode(&ids).ok_or(ProposalError::NotEncodable {
                        component: name,
                        target,
                    })?;
                    let mut bytes = Vec::with_capacity(8 + value.len());
                    bytes.extend_from_slice(&id.to_le_bytes());
                    bytes.extend_from_slice(&value);
                    content.push(ContentMessage::ContentModifyComponents(
                        ContentModifyComponents {
                            component: component_type(key),
                            count: 1,
                            content: Content(bytes.into()),
                        },
                    ));
                }
                Op::Remove { key, target } => {
                    let id = target_id(target)?;
                    content.push(ContentMessage::ContentDeleteComponents(
                        ContentDeleteComponents {
                            component: component_type(key),
                            list: EntityList(vec![EntityID::new(id)]),
                        },
                    ));
                }
                Op::Despawn(target) => {
                    let id = target_id(target)?;
                    content.push(ContentMessage::ContentDeleteEntities(
                        ContentDeleteEntities {
                            list: EntityList(vec![EntityID::new(id)]),
                        },
                    ));
                }
                Op::Asset(m) => content.push(ContentMessage::ContentModifyAsset(m)),
                Op::Raw(m) => content.push(m),
            }
        }
        Ok(ContentArray(content))
    }
}

/// Ids while a proposal is encoded: its own placeholders' stand-ins, then the link's ids.
struct ProposalIds<'a> {
    stand_ins: &'a HashMap<Entity, u64>,
    assets: &'a HashSet<u64>,
    link: &'a dyn EntityIds,
}

impl EntityIds for ProposalIds<'_> {
    fn id_of(&self, entity: Entity) -> Option<u64> {
        self.stand_ins
            .get(&entity)
            .copied()
            .or_else(|| self.link.id_of(entity))
    }

    fn asset_id(&self, asset: UntypedAssetId) -> Option<u64> {
        if let UntypedAssetId::Uuid { uuid, .. } = asset {
            let (stand_in, id) = uuid.as_u64_pair();
            return (stand_in == STAND_IN_UUID && self.assets.contains(&id)).then_some(id);
        }
        self.link.asset_id(asset)
    }
}

/// The ids of one link where this node is Downstream: its mirrored entities and the assets
/// imported from it.
struct LinkIds<'a, 'w, 's> {
    link: Entity,
    mirrored: &'a Query<'w, 's, &'static Mirrored>,
    assets: Option<&'a AssetIdMap>,
}

impl EntityIds for LinkIds<'_, '_, '_> {
    fn id_of(&self, entity: Entity) -> Option<u64> {
        self.mirrored
            .get(entity)
            .ok()
            .filter(|m| m.link == self.link)
            .map(|m| m.id)
    }

    fn asset_id(&self, asset: UntypedAssetId) -> Option<u64> {
        self.assets?.imported_id(self.link, asset)
    }
}

fn component_type(key: (u16, u16)) -> ComponentTypeID {
    ComponentTypeID::new(ExtensionID::new(key.0), key.1)
}

fn an_asset(asset_type: (u16, u16), id: u64) -> AnAsset {
    AnAsset::new(
        AssetTypeID::new(ExtensionID::new(asset_type.0), asset_type.1),
        AssetID::new(id),
    )
}

/// Downstream bookkeeping: transaction ids per link and proposals waiting for their reply.
#[derive(Resource, Debug, Default)]
pub struct ProposalClient {
    next: HashMap<Entity, u32>,
    /// `(link, transaction_id)` of proposals sent and not answered yet, with when they were sent.
    pending: HashMap<(Entity, u32), std::time::Instant>,
}

impl ProposalClient {
    /// Is proposal `transaction_id` on `link` still waiting for its reply?
    pub fn is_pending(&self, link: Entity, transaction_id: u32) -> bool {
        self.pending.contains_key(&(link, transaction_id))
    }

    /// How many proposals wait for their reply.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

/// Sends proposals (Downstream). See the [module docs](self).
#[derive(SystemParam)]
pub struct Proposals<'w, 's> {
    links: Query<'w, 's, &'static NoodlesLink>,
    mirrored: Query<'w, 's, &'static Mirrored>,
    assets: Option<Res<'w, AssetIdMap>>,
    state: ResMut<'w, ProposalClient>,
}

impl Proposals<'_, '_> {
    /// Send `proposal` on `link` (where we are Downstream); returns its `transaction_id`.
    /// The answer arrives as a [`ProposalReply`] with the same link and id.
    pub fn send(&mut self, link: Entity, proposal: Proposal) -> Result<u32, ProposalError> {
        let l = self
            .links
            .get(link)
            .map_err(|_| ProposalError::NoSuchLink(link))?;
        if !l.is_open() {
            return Err(ProposalError::NotOpen(link));
        }
        if l.role != Some(Role::Downstream) {
            return Err(ProposalError::NotDownstream(link));
        }
        let ids = LinkIds {
            link,
            mirrored: &self.mirrored,
            assets: self.assets.as_deref(),
        };
        let content = proposal.build(&ids, link)?;
        let next = self.state.next.entry(link).or_insert(0);
        *next = next.wrapping_add(1);
        let transaction_id = *next;
        let msg = MainSequenceMessage::ProposedChangeTransaction(ProposedChangeTransaction {
            transaction_id,
            content,
        });
        let bytes = msg.encode_bytes()?;
        l.send(bytes)?;
        self.state
            .pending
            .insert((link, transaction_id), std::time::Instant::now());
        debug!("sent proposal {transaction_id} on link {link}");
        Ok(transaction_id)
    }
}

/// [`Proposals::send`] for exclusive systems, tests and tools with `&mut World`.
pub fn send_proposal(
    world: &mut World,
    link: Entity,
    proposal: Proposal,
) -> Result<u32, ProposalError> {
    let mut state = SystemState::<Proposals>::new(world);
    let result = match state.get_mut(world) {
        Ok(mut p) => p.send(link, proposal),
        Err(e) => Err(ProposalError::Unavailable(e.to_string())),
    };
    state.apply(world);
    result
}

/// Downstream: the Upstream answered a proposal.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ProposalReply {
    /// The link the proposal went to.
    pub link: Entity,
    /// The proposal's `transaction_id`.
    pub transaction_id: u32,
    /// 0 accepted; 1 denied, 2 resource exhausted, 3 malformed, ≥ 256 application-specific.
    pub code: u16,
    /// Patch-local → canonical entity ids (empty unless accepted).
    pub entities: Vec<(u64, u64)>,
    /// Patch-local → canonical assets (empty unless accepted).
    pub assets: Vec<(AnAsset, AnAsset)>,
    /// Time from sending the proposal to its reply (`None` for a reply to a proposal this node
    /// did not send, or answered before).
    pub latency: Option<std::time::Duration>,
}

impl ProposalReply {
    /// Was the proposal applied?
    pub fn accepted(&self) -> bool {
        self.code == codes::ACCEPTED
    }

    /// The canonical id a placeholder became.
    pub fn canonical(&self, p: Placeholder) -> Option<u64> {
        self.entities
            .iter()
            .find(|(from, _)| *from == p.id())
            .map(|(_, to)| *to)
    }

    /// The canonical asset an asset placeholder became.
    pub fn canonical_asset(&self, p: AssetPlaceholder) -> Option<AnAsset> {
        let key = p.an_asset().key();
        self.assets
            .iter()
            .find(|(from, _)| from.key() == key)
            .map(|(_, to)| *to)
    }
}

// ============================================================================================
// Upstream: policy, checking, applying
// ============================================================================================

/// What the application decides about a well-formed proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalDecision {
    /// Apply it.
    Accept,
    /// Code 1: not permitted.
    Deny,
    /// Code 2: not enough resources.
    ResourceExhausted,
    /// An application-specific code (≥ 256; smaller values are sent as 1, denied).
    Application(u16),
}

impl ProposalDecision {
    /// The reply code.
    pub fn code(self) -> u16 {
        match self {
            ProposalDecision::Accept => codes::ACCEPTED,
            ProposalDecision::Deny => codes::DENIED,
            ProposalDecision::ResourceExhausted => codes::RESOURCE_EXHAUSTED,
            ProposalDecision::Application(c) if c >= codes::APPLICATION_MIN => c,
            ProposalDecision::Application(_) => codes::DENIED,
        }
    }
}

/// An entity a proposal touches: an existing shared [`Entity`], or a patch-local id it creates.
pub type ProposedEntity = noodles2::proposal::ProposedEntity<Entity>;

/// One thing a proposal does, for the [`ProposalPolicy`].
pub type ProposedChange = noodles2::proposal::ProposedChange<Entity>;

/// What a proposal does, handed to the [`ProposalPolicy`] after the proposal passed every check.
#[derive(Debug)]
pub struct ProposalContext<'a> {
    /// The link it came on.
    pub link: Entity,
    /// The peer's name on that link.
    pub peer_name: &'a str,
    /// Who the link's listener admitted (`None` without authentication).
    pub principal: Option<&'a crate::auth::Principal>,
    /// Its `transaction_id`.
    pub transaction_id: u32,
    /// Patch-local ids of the entities it creates.
    pub new_entities: &'a [u64],
    /// The assets it creates (patch-local ids).
    pub new_assets: &'a [AnAsset],
    /// Everything it does, in order.
    pub changes: &'a [ProposedChange],
    /// The raw content, for policies that look at payloads.
    pub content: &'a ContentArray,
}

type PolicyFn = dyn Fn(&ProposalContext<'_>) -> ProposalDecision + Send + Sync;

/// The application's decision on well-formed proposals (Upstream). The default accepts all.
#[derive(Resource)]
pub struct ProposalPolicy(pub Box<PolicyFn>);

impl ProposalPolicy {
    /// A policy from a closure.
    pub fn new(
        f: impl Fn(&ProposalContext<'_>) -> ProposalDecision + Send + Sync + 'static,
    ) -> Self {
        ProposalPolicy(Box::new(f))
    }

    /// Accept every well-formed proposal.
    pub fn accept_all() -> Self {
        Self::new(|_| ProposalDecision::Accept)
    }

    /// Deny every proposal (code 1).
    pub fn deny_all() -> Self {
        Self::new(|_| ProposalDecision::Deny)
    }
}

impl Default for ProposalPolicy {
    fn default() -> Self {
        Self::accept_all()
    }
}

/// Upstream: a proposal was applied (after its reply was queued).
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ProposalApplied {
    /// The proposing link.
    pub link: Entity,
    /// Its `transaction_id`.
    pub transaction_id: u32,
    /// Patch-local → canonical entity ids.
    pub entities: Vec<(u64, u64)>,
    /// Patch-local → canonical assets.
    pub assets: Vec<(AnAsset, AnAsset)>,
}

/// Upstream: a proposal was rejected; the world is untouched.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct ProposalRejected {
    /// The proposing link.
    pub link: Entity,
    /// Its `transaction_id`.
    pub transaction_id: u32,
    /// The reply code (never 0).
    pub code: u16,
    /// Why (for logs; the wire carries only the code).
    pub reason: String,
}

/// Assets created by accepted proposals (Upstream), by canonical `(extension, type, id)`. Their
/// bodies go out like every other change, through the mirror's [`Outgoing`] (encoded once, sent
/// to every Downstream and to links that join later).
#[derive(Resource, Debug, Default)]
pub struct ProposedAssets {
    /// Canonical id → asset type (ids are unique across types).
    created: HashMap<u64, (u16, u16)>,
    next_id: u64,
}

impl ProposedAssets {
    fn allocate(&mut self) -> u64 {
        self.next_id += 1;
        PROPOSED_ASSET_ID_BASE + self.next_id
    }

    /// Whether `(extension, type, id)` was created by an accepted proposal.
    pub fn contains(&self, key: (u16, u16, u64)) -> bool {
        self.created.get(&key.2) == Some(&(key.0, key.1))
    }
}

/// The Upstream's world as proposal checking sees it (see [`noodles2::proposal::check`]).
struct UpstreamWorld<'a> {
    world: &'a World,
    index: &'a EntityIndex,
    proposed: Option<&'a ProposedAssets>,
    exported: Option<&'a AssetIdMap>,
    registry: &'a ComponentRegistry,
}

impl<'a> UpstreamWorld<'a> {
    fn new(world: &'a World, registry: &'a ComponentRegistry) -> Self {
        UpstreamWorld {
            world,
            index: world.resource::<EntityIndex>(),
            proposed: world.get_resource::<ProposedAssets>(),
            exported: world.get_resource::<AssetIdMap>(),
            registry,
        }
    }
}

impl ProposalWorld for UpstreamWorld<'_> {
    type Entity = Entity;

    fn entity(&self, id: u64) -> Option<Entity> {
        self.index
            .local
            .get(&id)
            .copied()
            .filter(|e| self.world.get_entity(*e).is_ok())
    }

    fn known_asset(&self, asset_type: Option<(u16, u16)>, id: u64) -> bool {
        let ty = self
            .proposed
            .and_then(|p| p.created.get(&id).copied())
            .or_else(|| {
                self.exported
                    .and_then(|m| m.exported_asset(id))
                    .map(|(t, _)| t)
            });
        ty.is_some_and(|t| asset_type.is_none_or(|a| a == t))
    }

    fn replaceable_asset(&self, key: (u16, u16, u64)) -> bool {
        self.proposed.is_some_and(|p| p.contains(key))
    }

    fn component(&self, extension: u16, identifier: u16) -> Option<ComponentCheck<'_>> {
        self.registry
            .component(extension, identifier)
            // A type this node only keeps as bytes cannot be proposed to it: it would not be
            // shared on.
            .filter(|(_, r)| !r.is_raw())
            .map(|(rule, r)| ComponentCheck {
                rule,
                name: r.name,
                visit: &*r.visit_ids,
            })
    }

    fn asset(&self, extension: u16, identifier: u16) -> Option<AssetCheck<'_>> {
        self.registry
            .asset(extension, identifier)
            .map(|(rule, r)| AssetCheck {
                rule,
                name: r.name,
                propose: &r.propose,
            })
    }

    fn asset_type_of_wrapper(&self, wrapper: &str) -> Option<(u16, u16)> {
        self.registry.asset_type_of_wrapper(wrapper)
    }
}

fn send_reply(
    world: &World,
    link: Entity,
    transaction_id: u32,
    code: u16,
    entities: Vec<EntityPairMap>,
    assets: Vec<AssetPairMap>,
) {
    let Some(l) = world.get::<NoodlesLink>(link) else {
        return;
    };
    let msg = MainSequenceMessage::ProposedTransactionReply(ProposedTransactionReply {
        transaction_id,
        code,
        remapped_entities: RemappedEntities(entities),
        remapped_assets: RemappedAssets(assets),
    });
    if let Err(e) = l.send_message(&msg) {
        warn!("cannot reply to proposal {transaction_id} on link {link}: {e}");
    }
}

fn reject(world: &mut World, link: Entity, transaction_id: u32, code: u16, reason: String) {
    warn!("proposal {transaction_id} from link {link} rejected with code {code}: {reason}");
    send_reply(world, link, transaction_id, code, Vec::new(), Vec::new());
    world.write_message(ProposalRejected {
        link,
        transaction_id,
        code,
        reason,
    });
}

/// Check, decide, and apply (or reject) one proposal.
fn handle_proposal(world: &mut World, link: Entity, p: ProposedChangeTransaction) {
    let transaction_id = p.transaction_id;
    let Some(l) = world.get::<NoodlesLink>(link) else {
        return;
    };
    if l.role != Some(Role::Upstream) {
        return;
    }
    let extensions = l.extensions.clone();
    let peer_name = l.peer_name.clone();
    let principal = l.principal.clone();
    let registry = world.resource::<ComponentRegistry>().clone();
    let plan = match check(
        &UpstreamWorld::new(world, &registry),
        &extensions,
        &p.content,
    ) {
        Ok(plan) => plan,
        Err(r) => return reject(world, link, transaction_id, r.code, r.reason),
    };
    let permissions = world.get::<LinkPermissions>(link);
    if let Some(why) = not_permitted(permissions, &plan) {
        return reject(world, link, transaction_id, codes::DENIED, why);
    }
    let decision = {
        let ctx = ProposalContext {
            link,
            peer_name: &peer_name,
            principal: principal.as_ref(),
            transaction_id,
            new_entities: &plan.new_entities,
            new_assets: &plan.new_assets,
            changes: &plan.changes,
            content: &p.content,
        };
        match world.get_resource::<ProposalPolicy>() {
            Some(policy) => (policy.0)(&ctx),
            None => ProposalDecision::Accept,
        }
    };
    if decision != ProposalDecision::Accept {
        let code = decision.code();
        return reject(
            world,
            link,
            transaction_id,
            code,
            format!("the application's policy decided {decision:?}"),
        );
    }
    apply(world, link, transaction_id, plan, &registry);
}

/// Why the link's permissions do not allow what `plan` does (`None`: they do). A link without
/// [`LinkPermissions`] may not propose.
fn not_permitted(permissions: Option<&LinkPermissions>, plan: &Plan<Entity>) -> Option<String> {
    let Some(p) = permissions else {
        return Some("this link has no permissions".into());
    };
    for change in &plan.changes {
        match change {
            ProposedChange::SetComponent {
                component, name, ..
            }
            | ProposedChange::RemoveComponent {
                component, name, ..
            } if !p.propose_components.allows(component) => {
                return Some(format!(
                    "this link may not propose component {name} {component:?} (see LinkPermissions)"
                ));
            }
            ProposedChange::DeleteEntity { id, .. } if !p.delete => {
                return Some(format!(
                    "this link may not delete entities (entity {id}; see LinkPermissions)"
                ));
            }
            ProposedChange::SetAsset(a) => {
                let (ext, ty, id) = a.key();
                if !p.propose_assets.allows(&(ext, ty)) {
                    return Some(format!(
                        "this link may not propose assets of type ({ext}, {ty}) (asset {id}; see LinkPermissions)"
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// Apply a checked, accepted proposal. Its new assets are imported first (this node needs them as
/// Bevy assets, so components can refer to them); one that cannot be imported rejects the whole
/// proposal (code 3) before any entity changes. Then its entities are created and its changes
/// applied, in order.
fn apply(
    world: &mut World,
    link: Entity,
    transaction_id: u32,
    plan: Plan<Entity>,
    registry: &ComponentRegistry,
) {
    // Canonical ids for the new assets.
    let mut asset_map: HashMap<(u16, u16, u64), AnAsset> = HashMap::new();
    {
        let mut store = world.get_resource_or_init::<ProposedAssets>();
        for a in &plan.new_assets {
            let (e, t, id) = a.key();
            asset_map.insert((e, t, id), an_asset((e, t), store.allocate()));
        }
    }
    let asset_ids: HashMap<u64, u64> = asset_map
        .iter()
        .map(|(k, v)| (k.2, v.asset_id.id.get()))
        .collect();
    let mut entity_map: HashMap<u64, u64> = HashMap::new();
    let remap = |entity_map: &HashMap<u64, u64>, x: IdMut<'_>| match x {
        IdMut::Entity(e) => {
            if let Some(c) = entity_map.get(&e.id.get()) {
                *e = EntityID::new(*c);
            }
        }
        IdMut::Asset { id, .. } => {
            if let Some(c) = asset_ids.get(&id.id.get()) {
                *id = AssetID::new(*c);
            }
        }
        IdMut::AnAsset(a) => {
            if let Some(c) = asset_map.get(&a.key()) {
                *a = *c;
            }
        }
    };
    // 1. Assets, with their asset ids made canonical.
    let mut bodies: Vec<(AnAsset, usize, Bytes)> = Vec::new();
    for step in &plan.steps {
        if let Step::Asset {
            an_asset,
            rule,
            bytes,
        } = step
        {
            let canonical = asset_map.get(&an_asset.key()).copied().unwrap_or(*an_asset);
            match (registry.asset_rules()[*rule].propose)(bytes, &mut |x| remap(&entity_map, x)) {
                Ok(b) => bodies.push((canonical, *rule, b)),
                Err(e) => {
                    return reject(
                        world,
                        link,
                        transaction_id,
                        codes::MALFORMED,
                        format!("asset {:#x}: {e}", an_asset.asset_id.id.get()),
                    );
                }
            }
        }
    }
    let kept = match import_proposed_assets(world, link, registry, &bodies) {
        Ok(kept) => kept,
        Err(r) => return reject(world, link, transaction_id, r.code, r.reason),
    };
    // 2. Placeholders become shared entities; `on_share` allocates their canonical ids.
    let spawned: Vec<(u64, Entity)> = plan
        .new_entities
        .iter()
        .map(|&p| (p, world.spawn(Shared).id()))
        .collect();
    world.flush();
    entity_map.reserve(spawned.len());
    for (p, e) in &spawned {
        match world.get::<SharedId>(*e) {
            Some(id) => {
                entity_map.insert(*p, id.get());
            }
            None => {
                error!("a proposed entity got no canonical id (is the `Shared` observer missing?)")
            }
        }
    }
    let mut resolve = |w: &mut World, id: u64| {
        w.resource::<EntityIndex>()
            .local
            .get(&id)
            .copied()
            .unwrap_or(Entity::PLACEHOLDER)
    };
    // 3. Every change, in order.
    let mut new_assets: Vec<(AnAsset, Bytes)> = Vec::new();
    for step in plan.steps {
        match step {
            Step::Modify { rule, bytes } => {
                let r = &registry.rules()[rule];
                let mut remap_target = |id: &mut u64| {
                    if let Some(c) = entity_map.get(id) {
                        *id = *c;
                    }
                };
                let result =
                    (r.visit_ids)(&bytes, &mut remap_target, &mut |x| remap(&entity_map, x))
                        .and_then(|b| {
                            (r.apply)(world, link, &mut resolve, &b).map_err(|e| e.to_string())
                        });
                if let Err(e) = result {
                    error!(
                        "proposal {transaction_id} from link {link}: applying {} failed after it was checked: {e}",
                        r.name
                    );
                }
            }
            Step::Remove { rule, ids } => {
                for id in ids {
                    let id = entity_map.get(&id).copied().unwrap_or(id);
                    if let Some(&e) = world.resource::<EntityIndex>().local.get(&id) {
                        (registry.rules()[rule].remove)(world, e);
                    }
                }
            }
            Step::Delete { ids } => {
                for id in ids {
                    // The proposal deletes these entities, not their subtrees: children are
                    // detached (and stay shared) rather than despawned along with the parent.
                    if let Some(&e) = world.resource::<EntityIndex>().local.get(&id) {
                        crate::mirror::detach_and_despawn(world, e);
                    }
                }
            }
            Step::Asset {
                an_asset,
                rule,
                bytes,
            } => {
                let canonical = asset_map.get(&an_asset.key()).copied().unwrap_or(an_asset);
                // Entity ids inside the body are canonical now too.
                match (registry.asset_rules()[rule].propose)(&bytes, &mut |x| remap(&entity_map, x))
                {
                    Ok(b) => new_assets.push((canonical, b)),
                    Err(e) => error!("proposal {transaction_id}: re-encoding an asset failed: {e}"),
                }
            }
        }
    }
    world.flush();
    // The components that use the new assets hold them now.
    drop(kept);
    let entities: Vec<(u64, u64)> = plan
        .new_entities
        .iter()
        .filter_map(|p| entity_map.get(p).map(|c| (*p, *c)))
        .collect();
    let assets: Vec<(AnAsset, AnAsset)> = plan
        .new_assets
        .iter()
        .filter_map(|a| asset_map.get(&a.key()).map(|c| (*a, *c)))
        .collect();
    send_reply(
        world,
        link,
        transaction_id,
        codes::ACCEPTED,
        entities
            .iter()
            .map(|(f, t)| EntityPairMap::new(EntityID::new(*f), EntityID::new(*t)))
            .collect(),
        assets
            .iter()
            .map(|(f, t)| AssetPairMap::new(*f, *t))
            .collect(),
    );
    // The new assets go out with the next transaction, before the components that use them.
    for (a, body) in new_assets {
        let (e, t, id) = a.key();
        world
            .get_resource_or_init::<ProposedAssets>()
            .created
            .insert(id, (e, t));
        world
            .resource_mut::<Outgoing>()
            .modify_asset((e, t, id), body);
    }
    debug!(
        "proposal {transaction_id} from link {link} applied: {} new entities, {} new assets",
        entities.len(),
        assets.len()
    );
    world.write_message(ProposalApplied {
        link,
        transaction_id,
        entities,
        assets,
    });
}

/// Import the assets of an accepted proposal into this node (as the Downstream import would,
/// through each type's registry rule), under their canonical ids: new ones become exported Bevy
/// assets ([`AssetIdMap::export`]) whose handles are returned, to be held until the components
/// that use them are applied. A body that cannot be imported, or that waits for an asset the
/// proposal does not carry (a buffer of this node's own exports, for example), rejects the
/// proposal, and what was imported is dropped again.
fn import_proposed_assets(
    world: &mut World,
    link: Entity,
    registry: &ComponentRegistry,
    bodies: &[(AnAsset, usize, Bytes)],
) -> Result<Vec<UntypedHandle>, Rejection> {
    if bodies.is_empty() || !world.contains_resource::<AssetIdMap>() {
        return Ok(Vec::new());
    }
    let new: Vec<&(AnAsset, usize, Bytes)> = {
        let created = &world.resource::<ProposedAssets>().created;
        bodies
            .iter()
            .filter(|(a, ..)| !created.contains_key(&a.asset_id.id.get()))
            .collect()
    };
    // New assets are imported under the proposing link, with handles reserved for them.
    for (a, ..) in &new {
        let (e, t, id) = a.key();
        reserve_imported(world, link, (e, t), id);
    }
    // Types others refer to (buffers) first, as a Downstream imports a batch.
    let mut order: Vec<&(AnAsset, usize, Bytes)> = bodies.iter().collect();
    order.sort_by_key(|(_, rule, _)| *rule);
    let mut failure = None;
    for (a, rule, body) in &order {
        let r = &registry.asset_rules()[*rule];
        let (_, _, id) = a.key();
        let why = match (r.import)(world, link, id, body) {
            Ok(AssetImported::Waiting) => Some(
                "it refers to an asset this proposal does not carry (buffers must be inline in the same proposal)"
                    .to_string(),
            ),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            failure = Some(malformed(format!("{} asset {id}: {why}", r.name)));
            break;
        }
    }
    // What the imports kept under the link (a buffer's bytes) is not needed any more.
    for (a, rule, _) in bodies {
        (registry.asset_rules()[*rule].delete)(world, link, a.asset_id.id.get());
    }
    let mut kept = Vec::new();
    for (a, _, _) in &new {
        let (e, t, id) = a.key();
        let mut ids = world.resource_mut::<AssetIdMap>();
        if let Some(h) = ids.forget_imported(link, (e, t), id)
            && failure.is_none()
        {
            ids.export_unclaimed((e, t), h.id(), id);
            kept.push(h);
        }
    }
    match failure {
        Some(r) => Err(r),
        None => Ok(kept),
    }
}

// ============================================================================================
// Downstream: replies
// ============================================================================================

fn handle_reply(world: &mut World, link: Entity, r: ProposedTransactionReply) {
    let sent = world
        .get_resource_mut::<ProposalClient>()
        .and_then(|mut c| c.pending.remove(&(link, r.transaction_id)));
    if sent.is_none() {
        debug!(
            "reply to proposal {} on link {link}, which we did not send (or was answered before)",
            r.transaction_id
        );
    }
    world.write_message(ProposalReply {
        link,
        transaction_id: r.transaction_id,
        code: r.code,
        entities: r
            .remapped_entities
            .iter()
            .map(|p| (p.from.id.get(), p.to.id.get()))
            .collect(),
        assets: r.remapped_assets.iter().map(|p| (p.from, p.to)).collect(),
        latency: sent.map(|t| t.elapsed()),
    });
}

// ============================================================================================
// Dispatch
// ============================================================================================

/// The router's handler of `ProposedChangeTransaction`s (links where this node is Upstream).
fn route_proposal(
    world: &mut World,
    link: Entity,
    msg: MainSequenceMessage,
) -> Result<(), CloseLink> {
    if let MainSequenceMessage::ProposedChangeTransaction(p) = msg {
        handle_proposal(world, link, p);
    }
    Ok(())
}

/// The router's handler of `ProposedTransactionReply`s (links where this node is Downstream).
fn route_reply(world: &mut World, link: Entity, msg: MainSequenceMessage) -> Result<(), CloseLink> {
    if let MainSequenceMessage::ProposedTransactionReply(r) = msg {
        handle_reply(world, link, r);
    }
    Ok(())
}

/// Forget proposals that will never be answered on links that closed.
fn forget_closed(mut closed: MessageReader<LinkClosed>, mut client: ResMut<ProposalClient>) {
    for c in closed.read() {
        client.pending.retain(|(l, _), _| *l != c.link);
        client.next.remove(&c.link);
    }
}

/// Proposals: a Downstream proposes changes with [`Proposals`] and reads [`ProposalReply`]; an
/// Upstream validates each proposal whole, asks its [`ProposalPolicy`], applies accepted ones and
/// answers every one. Needs [`MirrorPlugin`](crate::mirror::MirrorPlugin); added by
/// [`NoodlesPlugin`](crate::NoodlesPlugin).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProposalsPlugin;

impl Plugin for ProposalsPlugin {
    fn build(&self, app: &mut App) {
        schedule::configure(app);
        app.init_resource::<ProposalClient>()
            .init_resource::<ProposedAssets>()
            .init_resource::<ProposalPolicy>()
            .add_message::<ProposalReply>()
            .add_message::<ProposalApplied>()
            .add_message::<ProposalRejected>()
            .add_message_handler(MessageKind::ProposedChangeTransaction, route_proposal)
            .add_message_handler(MessageKind::ProposedTransactionReply, route_reply)
            .add_systems(
                PreUpdate,
                forget_closed.in_set(NoodlesSystems::ApplyTransactions),
            );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_have_bit_63_and_distinct_stand_ins() {
        let mut p = Proposal::new();
        let a = p.spawn();
        let b = p.spawn();
        assert_ne!(a.id() & PATCH_LOCAL_BIT, 0);
        assert_ne!(a.id(), b.id());
        assert_ne!(a.entity(), b.entity());
        assert_ne!(a.entity(), Entity::PLACEHOLDER);
    }

    #[test]
    fn build_resolves_stand_ins_inside_components() {
        let mut p = Proposal::new();
        let parent = p.spawn();
        let child = p.spawn();
        p.insert(child, ChildOf(parent.entity()));
        let content = p.build(&NoIds, Entity::PLACEHOLDER).unwrap();
        assert_eq!(content.len(), 2);
        let ContentMessage::ContentModifyComponents(m) = &content[1] else {
            panic!("{content:?}")
        };
        let mut expected = child.id().to_le_bytes().to_vec();
        expected.extend_from_slice(&parent.id().to_le_bytes());
        assert_eq!(&m.content.0[..], &expected[..]);
    }

    #[test]
    fn unknown_entities_are_an_error() {
        let mut p = Proposal::new();
        p.insert(Entity::from_raw_u32(5).unwrap(), Name::new("x"));
        assert!(matches!(
            p.build(&NoIds, Entity::PLACEHOLDER),
            Err(ProposalError::NotMirrored { .. })
        ));
    }

    /// A link that mirrors nothing.
    struct NoIds;

    impl EntityIds for NoIds {
        fn id_of(&self, _: Entity) -> Option<u64> {
            None
        }
    }

    #[test]
    fn asset_stand_ins_encode_as_their_placeholders() {
        let mut p = Proposal::new();
        let mesh = p.add_asset((0, 3), Bytes::from_static(b"body"));
        let e = p.spawn();
        p.insert(e, Mesh3d(mesh.handle()));
        let content = p.build(&NoIds, Entity::PLACEHOLDER).unwrap();
        let ContentMessage::ContentModifyComponents(m) = &content[2] else {
            panic!("{content:?}")
        };
        let mut expected = e.id().to_le_bytes().to_vec();
        expected.extend_from_slice(&mesh.id.to_le_bytes());
        assert_eq!(&m.content.0[..], &expected[..]);
        // A stand-in of another proposal is not one of this proposal's assets.
        let other = Proposal::new().add_asset((0, 3), Bytes::new());
        let mut q = Proposal::new();
        let e = q.spawn();
        q.insert(
            e,
            Mesh3d(
                AssetPlaceholder {
                    id: other.id | 7,
                    ..other
                }
                .handle(),
            ),
        );
        assert!(matches!(
            q.build(&NoIds, Entity::PLACEHOLDER),
            Err(ProposalError::NotEncodable { .. })
        ));
    }

    #[test]
    fn decisions_map_to_codes() {
        assert_eq!(ProposalDecision::Accept.code(), 0);
        assert_eq!(ProposalDecision::Deny.code(), 1);
        assert_eq!(ProposalDecision::ResourceExhausted.code(), 2);
        assert_eq!(ProposalDecision::Application(300).code(), 300);
        assert_eq!(ProposalDecision::Application(7).code(), 1);
    }
}
