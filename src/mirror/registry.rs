//! The component registry: which Bevy component maps to which NOODLES2 `ComponentTypeID`, and how.

use std::collections::HashMap;
use std::sync::Arc;

use bevy::asset::UntypedAssetId;
use bevy::prelude::*;
use bytes::Bytes;

use super::asset_ids::{AssetIdMap, asset_handle};
use super::upstream::{self, AllShared, ChangedShared, Outgoing, StillShared};
use super::{MirrorError, Mirrored, SharedId};
use crate::codec::rt::Reader;
use crate::codec::{DecodeError, EntityID, IdMut, VisitIds, Wire};
use crate::schedule::NoodlesSystems;

/// Entity → `EntityID` in the namespace of the link a value is encoded for (references such as
/// `ChildOf` and skin joints): this node's [`SharedId`]s when it sends as Upstream, the
/// Upstream's ids ([`Mirrored::id`]) when it proposes or calls as Downstream.
pub trait EntityIds {
    /// The id of `entity` in this namespace; `None` if it has none (the reference cannot be sent).
    fn id_of(&self, entity: Entity) -> Option<u64>;
    /// The `AssetID` of a Bevy asset in this namespace, if it has one.
    fn asset_id(&self, _asset: UntypedAssetId) -> Option<u64> {
        None
    }
}

impl EntityIds for Query<'_, '_, &SharedId> {
    fn id_of(&self, entity: Entity) -> Option<u64> {
        self.get(entity).ok().map(|n| n.0)
    }
}

/// Entity ids plus the asset id map: what the Upstream collectors encode references with.
pub(crate) struct UpstreamIds<'a> {
    pub ids: &'a dyn EntityIds,
    pub assets: &'a AssetIdMap,
}

impl EntityIds for UpstreamIds<'_> {
    fn id_of(&self, entity: Entity) -> Option<u64> {
        self.ids.id_of(entity)
    }
    fn asset_id(&self, asset: UntypedAssetId) -> Option<u64> {
        self.assets.exported_id(asset)
    }
}

/// `EntityID` → entity while a received value is applied: on a Downstream, unknown ids get a
/// fresh mirrored entity (a parent may arrive after its child); on an Upstream applying a
/// proposal, ids are its own shared entities (checked before anything is applied).
pub trait EntityResolver {
    /// The entity `id` names.
    fn entity(&mut self, id: u64) -> Entity;
    /// The Bevy handle of asset `id` of `asset_type` (`(extension, identifier)`); see
    /// [`asset_handle`]. `None` when this app keeps no Bevy asset of that type.
    fn asset_handle(&mut self, _asset_type: (u16, u16), _id: u64) -> Option<UntypedHandle> {
        None
    }
}

/// Maps a Bevy component to a NOODLES2 component type.
///
/// Implement it for your own components to mirror them under your own extension id (advertise the
/// extension in [`NoodlesPlugin::extensions`](crate::NoodlesPlugin::extensions)), then register
/// with [`MirrorAppExt::mirror_component`].
///
/// ```
/// use bevy::prelude::*;
/// use bevy_noodles2::codec::TimeSyncComponent;
/// use bevy_noodles2::mirror::{EntityIds, EntityResolver, MirrorComponent, MirrorError};
///
/// /// A score, carried in extension 0x4242 as an f64.
/// #[derive(Component, Clone, PartialEq, Debug)]
/// struct Score(f64);
///
/// impl MirrorComponent for Score {
///     type Wire = TimeSyncComponent; // any generated type with the right layout
///     const EXTENSION: u16 = 0x4242;
///     const IDENTIFIER: u16 = 1;
///     fn to_wire(&self, _ids: &dyn EntityIds) -> Option<Self::Wire> {
///         Some(TimeSyncComponent::new(self.0))
///     }
///     fn from_wire(w: Self::Wire, _ids: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
///         Ok(Score(w.last.get()))
///     }
/// }
/// ```
pub trait MirrorComponent: Component + Sized {
    /// The generated codec type of the payload.
    /// (Every generated codec type implements both traits.)
    type Wire: Wire + crate::codec::VisitIds;
    /// The extension that owns the component type (Core is 0).
    const EXTENSION: u16;
    /// The component's identifier within its extension.
    const IDENTIFIER: u16;
    /// Encode; `None` skips the entity (for example a `ChildOf` whose parent is not shared).
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<Self::Wire>;
    /// Decode into the Bevy component.
    fn from_wire(
        wire: Self::Wire,
        ids: &mut dyn EntityResolver,
    ) -> Result<Self, super::MirrorError>;
    /// Check a received value without the world (finite numbers, lengths, ranges): run when a
    /// whole transaction is validated, before any of it applies, so a value refused here closes
    /// the link with nothing of its transaction applied. `Err` says what is wrong (the link's
    /// close reason names the component and the pair). Default: every decoded value is fine.
    fn check(_wire: &Self::Wire) -> Result<(), String> {
        Ok(())
    }
    /// How decoded values are put on entities (default [`Store::InPlace`]).
    const STORE: Store<Self> = Store::InPlace;
    /// The Upstream deleted the component from `entity` (default: remove it; a component whose
    /// absence means a default, such as `Visibility`, puts that default back instead).
    fn remove(entity: &mut EntityWorldMut<'_>) {
        entity.remove::<Self>();
    }
}

/// How decoded values of a mirrored component are put on entities
/// ([`MirrorComponent::STORE`], [`MirrorFns::with_store`]).
pub enum Store<C> {
    /// A mutable component the entity already has is overwritten in place, straight in its
    /// table column, as a local change would be (`Changed<C>` sees every update; `Insert`
    /// observers see the first arrival); otherwise (first arrival, immutable components,
    /// components with an `on_insert` or `on_discard` hook of their own) the value is inserted.
    ///
    /// An insertion of a component the entity has looks up the bundle, runs the archetype's
    /// hooks and triggers observers on every call, and even `get_mut` costs more than the rest of
    /// an update: for a Downstream's stream of transform updates, most of the apply.
    InPlace,
    /// Call this function instead.
    With(fn(C, &mut EntityWorldMut<'_>)),
}

impl<C> Clone for Store<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Store<C> {}

impl<C> std::fmt::Debug for Store<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::InPlace => f.write_str("InPlace"),
            Store::With(_) => f.write_str("With(..)"),
        }
    }
}

/// A component mapping given as functions, for [`MirrorAppExt::mirror_component_with`]: mirror a
/// component of another crate (the orphan rule forbids implementing [`MirrorComponent`] for it),
/// or give one type a second mapping under another component type id.
///
/// ```
/// use bevy::prelude::*;
/// use bevy_noodles2::codec::TimeSyncComponent;
/// use bevy_noodles2::mirror::{MirrorAppExt, MirrorFns};
///
/// // `Transform`'s uniform scale, also sent as an f64 in extension 0x4242 (a second mapping of a
/// // type that is not ours).
/// fn scale_mapping() -> MirrorFns<Transform, TimeSyncComponent> {
///     MirrorFns::new(
///         0x4242,
///         2,
///         |t: &Transform, _ids| Some(TimeSyncComponent::new(t.scale.x as f64)),
///         |w: TimeSyncComponent, _ids| {
///             Ok(Transform::from_scale(Vec3::splat(w.last.get() as f32)))
///         },
///     )
///     // Only the scale changes on the Downstream; the rest of its transform stays.
///     .with_store(|t: Transform, e| {
///         if let Some(mut old) = e.get_mut::<Transform>() {
///             old.scale = t.scale;
///         } else {
///             e.insert(t);
///         }
///     })
/// }
///
/// # let mut app = App::new();
/// app.mirror_component_with(scale_mapping());
/// ```
pub struct MirrorFns<C: Component, W> {
    /// The extension that owns the component type (Core is 0).
    pub extension: u16,
    /// The component's identifier within its extension.
    pub identifier: u16,
    /// Encode; `None` skips the entity (see [`MirrorComponent::to_wire`]).
    pub to_wire: fn(&C, &dyn EntityIds) -> Option<W>,
    /// Decode (see [`MirrorComponent::from_wire`]).
    pub from_wire: fn(W, &mut dyn EntityResolver) -> Result<C, MirrorError>,
    /// How decoded values are put on entities (see [`MirrorComponent::STORE`]).
    pub store: Store<C>,
    /// The Upstream deleted the component (see [`MirrorComponent::remove`]; default: remove).
    pub remove: fn(&mut EntityWorldMut<'_>),
    /// Check a received value without the world (see [`MirrorComponent::check`]; default: fine).
    pub check: fn(&W) -> Result<(), String>,
}

impl<C: Component, W> MirrorFns<C, W> {
    /// A mapping of `C` to component type `(extension, identifier)` that inserts decoded values
    /// and removes deleted ones.
    pub fn new(
        extension: u16,
        identifier: u16,
        to_wire: fn(&C, &dyn EntityIds) -> Option<W>,
        from_wire: fn(W, &mut dyn EntityResolver) -> Result<C, MirrorError>,
    ) -> Self {
        MirrorFns {
            extension,
            identifier,
            to_wire,
            from_wire,
            store: Store::InPlace,
            remove: remove_component::<C>,
            check: |_| Ok(()),
        }
    }

    /// Check received values with `check` before their transaction applies (see
    /// [`MirrorComponent::check`]).
    pub fn with_check(mut self, check: fn(&W) -> Result<(), String>) -> Self {
        self.check = check;
        self
    }

    /// Store decoded values with `store` instead of the default (see [`Store`]).
    pub fn with_store(mut self, store: fn(C, &mut EntityWorldMut<'_>)) -> Self {
        self.store = Store::With(store);
        self
    }

    /// Apply a deletion with `remove` instead of removing the component.
    pub fn with_remove(mut self, remove: fn(&mut EntityWorldMut<'_>)) -> Self {
        self.remove = remove;
        self
    }
}

impl<C: Component, W> Clone for MirrorFns<C, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: Component, W> Copy for MirrorFns<C, W> {}

/// Whether values of `C` may be overwritten in place: mutable, and without an `on_insert` or
/// `on_discard` hook of its own (which must see every value).
fn overwritable<C: Component>() -> bool {
    use bevy::ecs::component::ComponentMutability;
    <C::Mutability as ComponentMutability>::MUTABLE
        && C::on_insert().is_none()
        && C::on_discard().is_none()
}

/// The column values of `C` are overwritten in, for [`store_in_place`]: `Some` when `C` is
/// [`overwritable`], stored in tables, known to `world`, and Bevy does not track change
/// locations (feature `track_location`). Found once per payload: Bevy finds a component's id with
/// a hash lookup by `TypeId`, about as costly as the overwrite itself.
fn in_place_column<C: Component>(world: &World) -> Option<bevy::ecs::component::ComponentId> {
    use bevy::ecs::change_detection::MaybeLocation;
    use bevy::ecs::component::StorageType;
    if !overwritable::<C>()
        || C::STORAGE_TYPE != StorageType::Table
        || MaybeLocation::caller().into_option().is_some()
    {
        return None;
    }
    world.component_id::<C>()
}

/// Store `c` on `entity` the [`Store::InPlace`] way; `column` is [`in_place_column`]'s answer.
fn store_in_place<C: Component>(
    world: &mut World,
    entity: Entity,
    column: Option<bevy::ecs::component::ComponentId>,
    c: C,
) {
    let c = match column {
        Some(id) => match overwrite_in_table(world, entity, id, c) {
            Ok(()) => return,
            Err(c) => c,
        },
        None => c,
    };
    let Ok(mut e) = world.get_entity_mut(entity) else {
        return;
    };
    // Sparse-set components, and table ones when Bevy tracks change locations.
    if overwritable::<C>() {
        // SAFETY: `C` is mutable (`overwritable`).
        if let Some(mut current) = unsafe { e.get_mut_assume_mutable::<C>() } {
            *current = c;
            return;
        }
    }
    e.insert(c);
}

/// Overwrite `entity`'s `C` (component `id`) in its table column and mark it changed, as
/// `get_mut` would, without building a `Mut`. Gives `c` back when the entity does not have it
/// in a table (not spawned, or not carrying `C` yet).
///
/// The caller has checked [`in_place_column`].
fn overwrite_in_table<C: Component>(
    world: &mut World,
    entity: Entity,
    id: bevy::ecs::component::ComponentId,
    c: C,
) -> Result<(), C> {
    let Ok(location) = world.entities().get_spawned(entity) else {
        return Err(c);
    };
    let now = world.change_tick();
    let Some(table) = world.storages().tables.get(location.table_id) else {
        return Err(c);
    };
    let Some(column) = table.get_column(id) else {
        return Err(c);
    };
    let len = table.entity_count() as usize;
    // SAFETY: the column of `id` holds values of `C`, and `len` is its table's length.
    let (data, changed) = unsafe {
        (
            column.get_data_slice::<C>(len),
            column.get_changed_ticks_slice(len),
        )
    };
    let row = location.table_row.index();
    let (Some(value), Some(tick)) = (data.get(row), changed.get(row)) else {
        return Err(c);
    };
    // SAFETY: the world is borrowed exclusively, so nothing else reads or writes these cells
    // while they are written; `row` is the entity's row of this table, which holds a `C` (the
    // column exists), so the assignment drops the old value and moves in the new one.
    unsafe {
        *value.get() = c;
        *tick.get() = now;
    }
    Ok(())
}

fn remove_component<C: Component>(e: &mut EntityWorldMut<'_>) {
    e.remove::<C>();
}

/// One mapping between a Bevy component and a component type, as the generic machinery (the
/// collectors, the apply and proposal functions) uses it: a [`MirrorComponent`] (zero-sized, so
/// its calls are static) or a [`MirrorFns`].
pub(crate) trait Mapping: Copy + Send + Sync + 'static {
    type C: Component;
    type W: Wire + crate::codec::VisitIds;
    fn key(&self) -> (u16, u16);
    fn to_wire(&self, c: &Self::C, ids: &dyn EntityIds) -> Option<Self::W>;
    fn decode(&self, w: Self::W, ids: &mut dyn EntityResolver) -> Result<Self::C, MirrorError>;
    fn store(&self) -> Store<Self::C>;
    fn remove(&self, e: &mut EntityWorldMut<'_>);
    fn check(&self, w: &Self::W) -> Result<(), String>;
}

/// The mapping a [`MirrorComponent`] implements.
pub(crate) struct Own<T>(std::marker::PhantomData<fn() -> T>);

impl<T> Own<T> {
    pub(crate) fn new() -> Self {
        Own(std::marker::PhantomData)
    }
}

impl<T> Clone for Own<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Own<T> {}

impl<T: MirrorComponent> Mapping for Own<T> {
    type C = T;
    type W = T::Wire;
    #[inline]
    fn key(&self) -> (u16, u16) {
        (T::EXTENSION, T::IDENTIFIER)
    }
    #[inline]
    fn to_wire(&self, c: &T, ids: &dyn EntityIds) -> Option<T::Wire> {
        c.to_wire(ids)
    }
    #[inline]
    fn decode(&self, w: T::Wire, ids: &mut dyn EntityResolver) -> Result<T, MirrorError> {
        T::from_wire(w, ids)
    }
    #[inline]
    fn store(&self) -> Store<T> {
        T::STORE
    }
    #[inline]
    fn remove(&self, e: &mut EntityWorldMut<'_>) {
        T::remove(e)
    }
    #[inline]
    fn check(&self, w: &T::Wire) -> Result<(), String> {
        T::check(w)
    }
}

impl<C: Component, W: Wire + crate::codec::VisitIds + 'static> Mapping for MirrorFns<C, W> {
    type C = C;
    type W = W;
    fn key(&self) -> (u16, u16) {
        (self.extension, self.identifier)
    }
    fn to_wire(&self, c: &C, ids: &dyn EntityIds) -> Option<W> {
        (self.to_wire)(c, ids)
    }
    fn decode(&self, w: W, ids: &mut dyn EntityResolver) -> Result<C, MirrorError> {
        (self.from_wire)(w, ids)
    }
    fn store(&self) -> Store<C> {
        self.store
    }
    fn remove(&self, e: &mut EntityWorldMut<'_>) {
        (self.remove)(e)
    }
    fn check(&self, w: &W) -> Result<(), String> {
        (self.check)(w)
    }
}

/// Type-erased operations of one registered component type.
#[derive(Clone)]
pub struct ComponentRule {
    pub(crate) name: &'static str,
    /// The name of the wire type (`"TransformComponent"`).
    pub(crate) wire_name: &'static str,
    /// Kept as bytes in [`RawComponents`](super::RawComponents), not mapped to a Bevy component.
    pub(crate) raw: bool,
    pub(crate) extension: u16,
    pub(crate) identifier: u16,
    /// Check a `ContentModifyComponents` payload without applying it (decoding and the
    /// mapping's [`MirrorComponent::check`]); returns the pair count.
    pub(crate) validate: Arc<ValidateFn>,
    /// Apply a payload to the world (after validation).
    pub(crate) apply: Arc<ApplyFn>,
    /// Remove the component from an entity.
    pub(crate) remove: Arc<RemoveFn>,
    /// Encode the component of one entity (for digests).
    pub(crate) encode_one: Arc<EncodeOneFn>,
    /// Decode a payload and re-encode it, handing each pair's target `EntityID` to the first
    /// visitor and every id inside the value (wire order) to the second; both may rewrite them.
    /// Proposals use it to check and remap patch-local ids.
    pub(crate) visit_ids: Arc<VisitIdsFn>,
    /// Whether an entity carries the component.
    pub(crate) has: fn(&World, Entity, (u16, u16)) -> bool,
}

impl ComponentRule {
    /// The Bevy type's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `(extension, identifier)` of the component type.
    pub fn key(&self) -> (u16, u16) {
        (self.extension, self.identifier)
    }

    /// The name of the wire type (`"TransformComponent"`).
    pub fn wire_name(&self) -> &'static str {
        self.wire_name
    }

    /// Whether values of this type are kept as bytes in [`RawComponents`](super::RawComponents)
    /// (no Bevy component maps it in this app).
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// Whether `entity` carries this component type (mapped, or kept raw).
    pub fn has(&self, world: &World, entity: Entity) -> bool {
        (self.has)(world, entity, self.key())
    }

    /// The wire bytes of the component on `entity`, encoded in the namespace the entity lives in
    /// (its link's ids if it is mirrored, this node's otherwise); `None` if it has none or it
    /// cannot be encoded. For digests and tools.
    pub fn encode_one(&self, world: &mut World, entity: Entity) -> Option<Vec<u8>> {
        (self.encode_one)(world, entity)
    }
}

/// [`ComponentRule::apply`]: world, link entity, remote-id resolver, payload.
pub(crate) type ApplyFn = dyn Fn(
        &mut World,
        Entity,
        &mut dyn FnMut(&mut World, u64) -> Entity,
        &Bytes,
    ) -> Result<(), MirrorError>
    + Send
    + Sync;

/// [`ComponentRule::remove`]: world, entity.
pub(crate) type RemoveFn = dyn Fn(&mut World, Entity) + Send + Sync;

/// [`ComponentRule::encode_one`]: world, entity.
pub(crate) type EncodeOneFn = dyn Fn(&mut World, Entity) -> Option<Vec<u8>> + Send + Sync;

/// [`ComponentRule::validate`]: a payload's pair count, or why it is refused.
pub(crate) type ValidateFn = dyn Fn(&Bytes) -> Result<usize, MirrorError> + Send + Sync;

/// [`ComponentRule::visit_ids`]: payload, target-id visitor, inner-id visitor.
pub(crate) type VisitIdsFn = dyn Fn(
        &Bytes,
        &mut dyn FnMut(&mut u64),
        &mut dyn FnMut(crate::codec::IdMut<'_>),
    ) -> Result<Bytes, String>
    + Send
    + Sync;

/// Every registered component type, by `(extension, identifier)`, in registration order, and
/// every registered asset type likewise.
#[derive(Resource, Default, Clone)]
pub struct ComponentRegistry {
    rules: Vec<ComponentRule>,
    by_id: HashMap<(u16, u16), usize>,
    /// Asset rules, in registration order (which is also the order in which a batch of received
    /// bodies is imported: register the types others refer to first, as Core does buffers).
    assets: Vec<AssetRule>,
    asset_by_id: HashMap<(u16, u16), usize>,
    /// Typed id wrapper name → asset type (see [`MirrorAsset::ID_WRAPPER`]).
    wrappers: HashMap<&'static str, (u16, u16)>,
}

impl ComponentRegistry {
    /// The rule of component type `(extension, identifier)`.
    pub fn get(&self, extension: u16, identifier: u16) -> Option<&ComponentRule> {
        self.component(extension, identifier).map(|(_, r)| r)
    }

    /// The rule of component type `(extension, identifier)`, with its registration index.
    pub fn component(&self, extension: u16, identifier: u16) -> Option<(usize, &ComponentRule)> {
        self.by_id
            .get(&(extension, identifier))
            .map(|&i| (i, &self.rules[i]))
    }

    /// Every component rule, in registration order.
    pub fn rules(&self) -> &[ComponentRule] {
        &self.rules
    }

    /// The rule of asset type `(extension, identifier)`, with its registration index.
    pub fn asset(&self, extension: u16, identifier: u16) -> Option<(usize, &AssetRule)> {
        self.asset_by_id
            .get(&(extension, identifier))
            .map(|&i| (i, &self.assets[i]))
    }

    /// Every asset rule, in registration order.
    pub fn asset_rules(&self) -> &[AssetRule] {
        &self.assets
    }

    /// The asset type whose ids the codec wraps in `wrapper` (`"MeshAssetID"`), if a rule says.
    pub fn asset_type_of_wrapper(&self, wrapper: &str) -> Option<(u16, u16)> {
        self.wrappers.get(wrapper).copied()
    }
}

/// What became of one asset body a Downstream received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetImported {
    /// Turned into this node's form (a Bevy asset, a buffer's bytes).
    Done,
    /// Waits for something it refers to (a buffer, an image); retried every frame.
    Waiting,
    /// Its bytes are being fetched in the background; counted when they arrive.
    Fetching,
    /// It is being decoded on the async compute pool; counted (or refused) when done.
    Decoding,
    /// A type this node knows but does not use (yet): kept out of the world, counted apart.
    Ignored,
}

/// Mapping of one asset type between the wire and this node, registered with
/// [`MirrorAppExt::mirror_asset`]. Core's asset types are registered by
/// [`AssetsPlugin`](crate::assets::AssetsPlugin) through the same call; an application extension
/// registers its own.
///
/// The Upstream side of an asset type (which Bevy assets become which wire assets) is the
/// exporting plugin's business; the rule says how a received body is checked and imported, how a
/// deletion is applied, and what a Downstream may propose.
pub trait MirrorAsset: 'static {
    /// The wire type of the asset's body.
    type Wire: Wire + crate::codec::VisitIds;
    /// Extension namespace of the asset type.
    const EXTENSION: u16;
    /// Identifier of the asset type within its extension.
    const IDENTIFIER: u16;
    /// A short name for logs and refusals (`"mesh"`).
    const NAME: &'static str;
    /// The codec's typed id wrapper of this asset type (`"MeshAssetID"`), if it has one: an id
    /// inside such a wrapper (in a proposed component or asset) must name an asset of this type.
    const ID_WRAPPER: Option<&'static str> = None;

    /// Downstream: check a decoded body and make it part of this node (usually a Bevy asset under
    /// the handle [`asset_handle`] reserves). An `Err` refuses the asset with that reason; the
    /// link goes on.
    fn import(
        wire: Self::Wire,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String>;

    /// Downstream: the Upstream deleted the asset (the handle kept for it is dropped by the
    /// caller). An Upstream also calls it under the proposing link once it imported a proposed
    /// body, to drop what the import kept there (a buffer's bytes).
    fn delete(_world: &mut World, _link: Entity, _id: u64) {}

    /// Downstream: the body was refused (undecodable, or [`MirrorAsset::import`] said why);
    /// called before the refusal is logged and counted.
    fn refused(_world: &mut World, _link: Entity, _id: u64, _reason: &str) {}

    /// A handle for components that refer to the asset before its body arrives; `None` when the
    /// type has no Bevy asset behind it.
    fn reserve(_world: &World) -> Option<UntypedHandle> {
        None
    }

    /// Upstream: whether a Downstream may propose this body (beyond its ids, which the proposal
    /// layer checks). `Err` rejects the proposal as malformed with that reason.
    fn check_proposed(_wire: &Self::Wire) -> Result<(), String> {
        Ok(())
    }
}

/// Why a received asset body (or a skin) was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RefusalReason {
    /// The body does not decode as its type.
    #[error("undecodable: {0}")]
    Decode(DecodeError),
    /// The type's rule refused it ([`MirrorAsset::import`]), with its reason.
    #[error("{0}")]
    Invalid(String),
    /// Its bytes could not be fetched (out of band or by URL).
    #[error("fetch failed: {0}")]
    Fetch(String),
}

/// What was refused: an asset, or the skin of a mirrored entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// An asset.
    Asset {
        /// `(extension, identifier)` of its type.
        asset_type: (u16, u16),
        /// The type's short name (`"mesh"`).
        name: &'static str,
        /// Its `AssetID` on the link.
        id: u64,
    },
    /// The skin of entity `entity` (its `EntityID` on the link).
    Skin {
        /// The entity's id on the link.
        entity: u64,
    },
    /// The instances of entity `entity` (its `EntityID` on the link).
    Instances {
        /// The entity's id on the link.
        entity: u64,
    },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Asset { name, id, .. } => write!(f, "{name} asset {id}"),
            Refused::Skin { entity } => write!(f, "the skin of entity {entity}"),
            Refused::Instances { entity } => write!(f, "the instances of entity {entity}"),
        }
    }
}

/// An asset (or skin) a Downstream refused: the link goes on, the rest of the world too.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("refused {what} from link {link}: {reason}")]
pub struct AssetRefusal {
    /// The link it came on.
    pub link: Entity,
    /// What was refused.
    pub what: Refused,
    /// Why.
    pub reason: RefusalReason,
}

/// The type-erased form of a [`MirrorAsset`], kept in the [`ComponentRegistry`].
#[derive(Clone)]
pub struct AssetRule {
    pub(crate) name: &'static str,
    pub(crate) extension: u16,
    pub(crate) identifier: u16,
    /// Decode and import a received body.
    pub(crate) import: fn(&mut World, Entity, u64, &Bytes) -> Result<AssetImported, RefusalReason>,
    /// Apply a deletion.
    pub(crate) delete: fn(&mut World, Entity, u64),
    /// Note a refusal.
    pub(crate) refused: fn(&mut World, Entity, u64, &str),
    /// Proposals: decode, check what a Downstream may propose, visit (and remap) every id, and
    /// encode again.
    pub(crate) propose: ProposeAssetFn,
}

impl AssetRule {
    /// The type's short name (`"mesh"`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `(extension, identifier)` of the asset type.
    pub fn key(&self) -> (u16, u16) {
        (self.extension, self.identifier)
    }
}

/// See [`AssetRule::propose`].
pub type ProposeAssetFn =
    fn(&Bytes, &mut dyn FnMut(crate::codec::IdMut<'_>)) -> Result<Bytes, String>;

fn import_asset<T: MirrorAsset>(
    world: &mut World,
    link: Entity,
    id: u64,
    body: &Bytes,
) -> Result<AssetImported, RefusalReason> {
    let wire = T::Wire::decode(body.clone()).map_err(RefusalReason::Decode)?;
    T::import(wire, world, link, id).map_err(RefusalReason::Invalid)
}

fn propose_asset<T: MirrorAsset>(
    body: &Bytes,
    visit: &mut dyn FnMut(crate::codec::IdMut<'_>),
) -> Result<Bytes, String> {
    use crate::codec::VisitIds;
    let mut wire = T::Wire::decode(body.clone()).map_err(|e| format!("undecodable asset: {e}"))?;
    T::check_proposed(&wire)?;
    wire.visit_ids_mut(visit);
    wire.encode_bytes().map_err(|e| e.to_string())
}

/// Registers component and asset mappings on an [`App`].
pub trait MirrorAppExt {
    /// Mirror `T` between Upstream and Downstreams (through its [`MirrorComponent`] mapping).
    fn mirror_component<T: MirrorComponent>(&mut self) -> &mut Self;
    /// Mirror component `C` through the functions of `fns` (a component of another crate, or a
    /// second mapping of a type under another component type id).
    fn mirror_component_with<C: Component, W: Wire + crate::codec::VisitIds + 'static>(
        &mut self,
        fns: MirrorFns<C, W>,
    ) -> &mut Self;
    /// Mirror asset type `T`: received bodies are imported through it, proposed ones checked.
    fn mirror_asset<T: MirrorAsset>(&mut self) -> &mut Self;
    /// Keep values of component type `(extension, identifier)`, whose wire type is `W`, as bytes
    /// in [`RawComponents`](super::RawComponents) on the entities they arrive for, as long as no
    /// Bevy component maps the type (a mapping registered before or after this call wins). Every
    /// Core type is declared so by the plugin; declare your extension's types, so that a node
    /// without their mapping still validates, keeps and shows them.
    fn keep_raw_component<W: Wire + crate::codec::VisitIds + 'static>(
        &mut self,
        extension: u16,
        identifier: u16,
    ) -> &mut Self;
}

impl MirrorAppExt for App {
    fn mirror_asset<T: MirrorAsset>(&mut self) -> &mut Self {
        let key = (T::EXTENSION, T::IDENTIFIER);
        let mut registry = self.world_mut().get_resource_or_init::<ComponentRegistry>();
        if registry.asset_by_id.contains_key(&key) {
            warn!(
                "asset type {key:?} ({}) is already mirrored; ignoring the second registration",
                T::NAME
            );
            return self;
        }
        let index = registry.assets.len();
        registry.assets.push(AssetRule {
            name: T::NAME,
            extension: T::EXTENSION,
            identifier: T::IDENTIFIER,
            import: import_asset::<T>,
            delete: T::delete,
            refused: T::refused,
            propose: propose_asset::<T>,
        });
        registry.asset_by_id.insert(key, index);
        if let Some(wrapper) = T::ID_WRAPPER {
            registry.wrappers.insert(wrapper, key);
        }
        self.world_mut()
            .get_resource_or_init::<AssetIdMap>()
            .set_reserve(key, T::reserve);
        self
    }

    fn mirror_component<T: MirrorComponent>(&mut self) -> &mut Self {
        register(self, Own::<T>::new())
    }

    fn keep_raw_component<W: Wire + crate::codec::VisitIds + 'static>(
        &mut self,
        extension: u16,
        identifier: u16,
    ) -> &mut Self {
        let key = (extension, identifier);
        let mut registry = self.world_mut().get_resource_or_init::<ComponentRegistry>();
        if registry.by_id.contains_key(&key) {
            return self;
        }
        let name = super::raw::wire_name::<W>();
        let index = registry.rules.len();
        registry.rules.push(ComponentRule {
            name,
            wire_name: name,
            raw: true,
            extension,
            identifier,
            validate: Arc::new(move |bytes| {
                validate_pairs::<W>(bytes, true, |_| Ok(())).map_err(|e| e.named(name))
            }),
            apply: Arc::new(move |world, _link, resolve, bytes| {
                super::raw::keep_values::<W>(world, key, resolve, bytes).map_err(|error| {
                    MirrorError::Decode {
                        component: name,
                        index: 0,
                        error,
                    }
                })
            }),
            remove: Arc::new(move |world, e| super::raw::remove_value(world, e, key)),
            encode_one: Arc::new(move |world, e| super::raw::kept_value(world, e, key)),
            visit_ids: Arc::new(noodles2::proposal::visit_pair_ids::<W>),
            has: |world, e, key| {
                world
                    .get::<super::RawComponents>(e)
                    .is_some_and(|r| r.get(key.0, key.1).is_some())
            },
        });
        registry.by_id.insert(key, index);
        self
    }

    fn mirror_component_with<C: Component, W: Wire + crate::codec::VisitIds + 'static>(
        &mut self,
        fns: MirrorFns<C, W>,
    ) -> &mut Self {
        register(self, fns)
    }
}

/// Register mapping `m`: its rule, its collectors.
fn register<M: Mapping>(app: &mut App, m: M) -> &mut App {
    let key = m.key();
    let name = std::any::type_name::<M::C>();
    let mut registry = app.world_mut().get_resource_or_init::<ComponentRegistry>();
    // A mapping replaces a raw rule of its type in place (see `keep_raw_component`).
    let replaces = match registry.component(key.0, key.1) {
        Some((i, rule)) if rule.raw => Some(i),
        Some(_) => {
            warn!(
                "component type {key:?} ({name}) is already mirrored; ignoring the second registration",
            );
            return app;
        }
        None => None,
    };
    let rule = ComponentRule {
        name,
        wire_name: super::raw::wire_name::<M::W>(),
        raw: false,
        extension: key.0,
        identifier: key.1,
        validate: Arc::new(move |bytes| {
            validate_pairs::<M::W>(bytes, true, |w| m.check(w)).map_err(|e| e.named(name))
        }),
        apply: Arc::new(move |world, link, resolve, bytes| {
            apply_pairs(m, world, link, resolve, bytes)
        }),
        remove: Arc::new(move |world, e| {
            if let Ok(mut em) = world.get_entity_mut(e) {
                m.remove(&mut em);
            }
        }),
        encode_one: Arc::new(move |world, e| encode_one(m, world, e)),
        // Proposals pass the mapping's checks too, before anything of them applies.
        visit_ids: Arc::new(move |bytes, target, inner| {
            validate_pairs::<M::W>(bytes, false, |w| m.check(w))
                .map_err(|e| e.named(name).to_string())?;
            noodles2::proposal::visit_pair_ids::<M::W>(bytes, target, inner)
        }),
        has: |world, e, _| world.get::<M::C>(e).is_some(),
    };
    match replaces {
        Some(i) => registry.rules[i] = rule,
        None => {
            let index = registry.rules.len();
            registry.rules.push(rule);
            registry.by_id.insert(key, index);
        }
    }
    app.world_mut()
        .get_resource_or_init::<Outgoing>()
        .register(key);
    let collect = move |In(any_changed): In<bool>,
                        changed: ChangedShared<M::C>,
                        ids: Query<&SharedId>,
                        assets: Res<AssetIdMap>,
                        config: Res<super::MirrorConfig>,
                        out: ResMut<Outgoing>| {
        upstream::collect_changes(m, any_changed, changed, ids, assets, config, out)
    };
    let snapshot = move |all: AllShared<M::C>,
                         ids: Query<&SharedId>,
                         assets: Res<AssetIdMap>,
                         config: Res<super::MirrorConfig>,
                         out: ResMut<Outgoing>| {
        upstream::collect_snapshot(m, all, ids, assets, config, out)
    };
    let removals =
        move |removed: RemovedComponents<M::C>, still: StillShared<M::C>, out: ResMut<Outgoing>| {
            upstream::collect_removals(m, removed, still, out)
        };
    app.add_systems(
        PostUpdate,
        (
            super::changes::anything_changed::<M::C>
                .pipe(collect)
                .run_if(upstream::send_tick),
            removals,
        )
            .in_set(NoodlesSystems::Collect),
    )
    // In `Collect`, through its set.
    .add_systems(PostUpdate, snapshot.in_set(upstream::JoinSlices))
}

/// Walk the `(EntityID, W)` pairs of a payload until it is consumed, handing `f` each pair's
/// index, target and value; a pair that does not decode ends the walk with `error(index, why)`.
/// Payloads of a fixed-size type are read by offset ([`fixed_pairs`]).
fn for_each_pair<W: Wire, E>(
    bytes: &Bytes,
    error: impl Fn(usize, DecodeError) -> E,
    mut f: impl FnMut(usize, u64, W) -> Result<(), E>,
) -> Result<usize, E> {
    let mut n = 0;
    if let Some(pairs) = fixed_pairs::<W>(bytes) {
        for (id, value) in pairs {
            let w =
                W::read_fixed(value).ok_or_else(|| error(n, fixed_size_mismatch::<W>(value)))?;
            f(n, id, w)?;
            n += 1;
        }
        return Ok(n);
    }
    let mut r = Reader::new(bytes);
    while r.remaining() > 0 {
        let at = |e| error(n, e);
        let id = EntityID::read(&mut r).map_err(at)?.id.get();
        let w = W::read(&mut r).map_err(at)?;
        f(n, id, w)?;
        n += 1;
    }
    Ok(n)
}

/// The pairs of a payload whose wire type has a fixed size ([`Wire::FIXED_SIZE`]), as `(target,
/// value bytes)`, read by offset without a [`Reader`]'s checks per field, when the payload is a
/// whole number of pairs. `None` leaves the payload to the general decoder, which also names the
/// error of one cut short.
#[inline]
fn fixed_pairs<W: Wire>(bytes: &[u8]) -> Option<impl Iterator<Item = (u64, &[u8])>> {
    let size = W::FIXED_SIZE?;
    let stride = EntityID::FIXED_SIZE? + size;
    if !bytes.len().is_multiple_of(stride) {
        return None;
    }
    // Every chunk holds at least the 8 bytes of its id, so nothing is filtered out.
    Some(bytes.chunks_exact(stride).filter_map(|pair| {
        let (id, value) = pair.split_first_chunk::<8>()?;
        Some((u64::from_le_bytes(*id), value))
    }))
}

/// The error of [`Wire::read_fixed`] refusing bytes [`fixed_pairs`] sized for it (it does not:
/// both follow [`Wire::FIXED_SIZE`]).
#[cold]
fn fixed_size_mismatch<W: Wire>(value: &[u8]) -> DecodeError {
    DecodeError::new(crate::codec::rt::DecodeErrorKind::UnexpectedEnd {
        needed: W::FIXED_SIZE.unwrap_or(W::MIN_SIZE),
        left: value.len(),
    })
}

/// Why a payload failed validation, before the component's name is known.
enum PairError {
    /// Pair `.0` does not decode.
    Decode(usize, DecodeError),
    Check(usize, String),
    /// A patch-local id (bit 63) in a transaction, where only canonical ids may be.
    PatchLocal(u64),
}

impl PairError {
    fn named(self, component: &'static str) -> MirrorError {
        match self {
            PairError::Decode(index, error) => MirrorError::Decode {
                component,
                index,
                error,
            },
            PairError::Check(index, reason) => MirrorError::Invalid {
                component,
                reason: format!("pair {index}: {reason}"),
            },
            PairError::PatchLocal(id) => MirrorError::PatchLocalInTransaction(id),
        }
    }
}

/// Decode every pair of a payload and run `check` on each value. With `canonical` (a
/// transaction's payload), no id may be patch-local: neither a pair's target nor one inside its
/// value (proposals, which may carry them, pass `false`).
fn validate_pairs<W: Wire + VisitIds>(
    bytes: &Bytes,
    canonical: bool,
    check: impl Fn(&W) -> Result<(), String>,
) -> Result<usize, PairError> {
    for_each_pair::<W, _>(bytes, PairError::Decode, |n, id, mut w| {
        if canonical && let Some(local) = first_patch_local(id, &mut w) {
            return Err(PairError::PatchLocal(local));
        }
        check(&w).map_err(|reason| PairError::Check(n, reason))
    })
}

/// The first patch-local id of a pair: its target `id`, or one inside its value `w` (visited
/// only for wire types that hold ids).
fn first_patch_local<W: VisitIds>(id: u64, w: &mut W) -> Option<u64> {
    let local = |id: u64| id & super::PATCH_LOCAL_BIT != 0;
    if local(id) {
        return Some(id);
    }
    let mut first = None;
    if W::HAS_IDS {
        w.visit_ids_mut(&mut |inner| {
            let id = match inner {
                IdMut::Entity(e) => e.id.get(),
                IdMut::Asset { id, .. } => id.id.get(),
                IdMut::AnAsset(a) => a.key().2,
            };
            if local(id) {
                first.get_or_insert(id);
            }
        });
    }
    first
}

fn apply_pairs<M: Mapping>(
    m: M,
    world: &mut World,
    link: Entity,
    resolve: &mut dyn FnMut(&mut World, u64) -> Entity,
    bytes: &Bytes,
) -> Result<(), MirrorError> {
    // The whole transaction was validated (`validate_pairs`) before anything was applied, so
    // decoding cannot fail half-way: stream the pairs straight into the world.
    let store = m.store();
    let column = match store {
        Store::InPlace => in_place_column::<M::C>(world),
        Store::With(_) => None,
    };
    let name = std::any::type_name::<M::C>();
    let decode = |index, error| MirrorError::Decode {
        component: name,
        index,
        error,
    };
    for_each_pair::<M::W, _>(bytes, decode, |_, id, w| {
        let entity = resolve(world, id);
        let value = {
            let mut resolver = WorldResolver {
                world: &mut *world,
                link,
                resolve: &mut *resolve,
            };
            m.decode(w, &mut resolver)?
        };
        match store {
            Store::InPlace => store_in_place(world, entity, column, value),
            Store::With(f) => {
                if let Ok(mut em) = world.get_entity_mut(entity) {
                    f(value, &mut em);
                }
            }
        }
        Ok(())
    })
    .map(|_| ())
}

struct WorldResolver<'a, 'b> {
    world: &'a mut World,
    link: Entity,
    resolve: &'b mut dyn FnMut(&mut World, u64) -> Entity,
}

impl EntityResolver for WorldResolver<'_, '_> {
    fn entity(&mut self, id: u64) -> Entity {
        (self.resolve)(self.world, id)
    }
    fn asset_handle(&mut self, asset_type: (u16, u16), id: u64) -> Option<UntypedHandle> {
        asset_handle(self.world, self.link, asset_type, id)
    }
}

/// Encode `T` of `entity` in the namespace it lives in: its link's ids for a mirrored entity,
/// this node's shared ids otherwise.
fn encode_one<M: Mapping>(m: M, world: &mut World, entity: Entity) -> Option<Vec<u8>> {
    let world: &World = world;
    let lookup = WorldIds {
        world,
        link: world.get::<Mirrored>(entity).map(|m| m.link),
    };
    let w = m.to_wire(world.get::<M::C>(entity)?, &lookup)?;
    w.encode().ok()
}

/// Ids in one namespace, read from the world: a link's (Downstream) or this node's own.
struct WorldIds<'a> {
    world: &'a World,
    link: Option<Entity>,
}

impl EntityIds for WorldIds<'_> {
    fn id_of(&self, entity: Entity) -> Option<u64> {
        match self.link {
            Some(link) => self
                .world
                .get::<Mirrored>(entity)
                .filter(|m| m.link == link)
                .map(|m| m.id),
            None => self.world.get::<SharedId>(entity).map(|s| s.get()),
        }
    }
    fn asset_id(&self, asset: UntypedAssetId) -> Option<u64> {
        let map = self.world.get_resource::<AssetIdMap>()?;
        match self.link {
            Some(link) => map.imported_id(link, asset),
            None => map.exported_id(asset),
        }
    }
}

#[cfg(test)]
mod tests {
    use bevy::ecs::lifecycle::HookContext;
    use bevy::ecs::world::DeferredWorld;

    use super::*;

    /// A table component whose values hold a shared counter, so that a test can tell when the
    /// old value is dropped.
    #[derive(Component, Debug)]
    struct InTable(
        &'static str,
        #[expect(dead_code, reason = "held only to be counted, never read")] Arc<()>,
    );
    #[derive(Component, Debug, PartialEq)]
    #[component(storage = "SparseSet")]
    struct Sparse(u32);
    #[derive(Component, Debug, PartialEq)]
    #[component(immutable)]
    struct Frozen(u32);
    #[derive(Component, Debug, PartialEq)]
    #[component(on_insert = count_insert)]
    struct Hooked(u32);

    /// Insertions of [`Hooked`] seen by its hook.
    #[derive(Resource, Default)]
    struct Inserts(u32);

    fn count_insert(mut world: DeferredWorld, _: HookContext) {
        world.resource_mut::<Inserts>().0 += 1;
    }

    /// Values stored by [`store_in_place`] read back, and which of them are `Changed` and
    /// `Added` since the last check.
    #[derive(Resource, Default)]
    struct Seen(Vec<(&'static str, bool, bool)>);

    fn seen_table(q: Query<Ref<InTable>>, mut seen: ResMut<Seen>) {
        seen.0 = q
            .iter()
            .map(|c| (c.0, c.is_changed(), c.is_added()))
            .collect();
    }

    /// One update: what [`seen_table`] saw.
    fn seen(app: &mut App) -> Vec<(&'static str, bool, bool)> {
        app.update();
        std::mem::take(&mut app.world_mut().resource_mut::<Seen>().0)
    }

    fn store<C: Component>(app: &mut App, e: Entity, c: C) {
        store_into(app.world_mut(), e, c);
    }

    fn store_into<C: Component>(world: &mut World, e: Entity, c: C) {
        let column = in_place_column::<C>(world);
        store_in_place(world, e, column, c);
    }

    #[test]
    fn a_table_component_is_overwritten_in_place_and_marked_changed() {
        let mut app = App::new();
        app.init_resource::<Seen>().add_systems(Update, seen_table);
        let e = app.world_mut().spawn_empty().id();
        let (first, second) = (Arc::new(()), Arc::new(()));
        store(&mut app, e, InTable("first", first.clone()));
        assert_eq!(seen(&mut app), [("first", true, true)]);
        assert_eq!(seen(&mut app), [("first", false, false)]);
        // Overwritten in its table: the old value is dropped, the new one reads back changed but
        // not added, and the entity stays where it was.
        let archetype = app.world().entity(e).archetype().id();
        store(&mut app, e, InTable("second", second.clone()));
        assert_eq!(app.world().entity(e).archetype().id(), archetype);
        assert_eq!(
            Arc::strong_count(&first),
            1,
            "the old value was not dropped"
        );
        assert_eq!(Arc::strong_count(&second), 2);
        assert_eq!(seen(&mut app), [("second", true, false)]);
        assert_eq!(seen(&mut app), [("second", false, false)]);
    }

    #[test]
    fn sparse_immutable_and_hooked_components_are_replaced_too() {
        let mut world = World::new();
        world.init_resource::<Inserts>();
        let e = world.spawn_empty().id();
        for i in 0..3 {
            store_into(&mut world, e, Sparse(i));
            store_into(&mut world, e, Frozen(i));
            store_into(&mut world, e, Hooked(i));
            let em = world.entity(e);
            assert_eq!(em.get::<Sparse>(), Some(&Sparse(i)));
            assert_eq!(em.get::<Frozen>(), Some(&Frozen(i)));
            assert_eq!(em.get::<Hooked>(), Some(&Hooked(i)));
        }
        // A component with an insert hook of its own is inserted every time: the hook sees each.
        assert_eq!(world.resource::<Inserts>().0, 3);
    }
}
