//! The component registry: which Bevy component maps to which NOODLES2 `ComponentTypeID`, and how.

use std::collections::HashMap;

use bevy::asset::UntypedAssetId;
use bevy::prelude::*;
use bytes::Bytes;

use super::NoodlesId;
use super::upstream::{self, Outgoing};
use crate::codec::rt::Reader;
use crate::codec::{DecodeError, EntityID, Wire};
use crate::schedule::NoodlesSystems;

/// Entity → canonical id, for encoding references (`ChildOf`, skin joints, ...).
pub trait EntityIds {
    /// The canonical id of a shared or mirrored entity; `None` if it is neither.
    fn id_of(&self, entity: Entity) -> Option<u64>;
    /// The NOODLES2 `AssetID` a Bevy asset is exported as (Upstream), if it is.
    fn asset_id(&self, _asset: UntypedAssetId) -> Option<u64> {
        None
    }
}

impl EntityIds for Query<'_, '_, &NoodlesId> {
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
        self.assets.exported.get(&asset).copied()
    }
}

/// NOODLES2 asset ids ↔ Bevy assets. Filled by the asset layer.
#[derive(Resource, Default)]
pub struct AssetIdMap {
    /// Upstream: Bevy asset → the `AssetID` it is exported as.
    pub exported: HashMap<UntypedAssetId, u64>,
    /// Downstream: (link, asset type identifier, `AssetID`) → the Bevy handle that holds it
    /// (reserved before the asset arrives, filled when it does).
    pub imported: HashMap<(Entity, u16, u64), UntypedHandle>,
    /// Downstream: how to reserve a handle, per asset type (from [`MirrorAsset::reserve`]).
    reservers: HashMap<(u16, u16), ReserveFn>,
}

/// The handle for an imported asset, reserving one if it has not arrived yet.
pub fn imported_handle(
    world: &mut World,
    link: Entity,
    asset_type: u16,
    id: u64,
) -> Option<UntypedHandle> {
    let map = world.get_resource::<AssetIdMap>()?;
    if let Some(h) = map.imported.get(&(link, asset_type, id)) {
        return Some(h.clone());
    }
    // Components refer to Core assets only (the resolver's asset types are Core identifiers).
    let reserve = *map.reservers.get(&(0, asset_type))?;
    let h = reserve(world)?;
    world
        .resource_mut::<AssetIdMap>()
        .imported
        .insert((link, asset_type, id), h.clone());
    Some(h)
}

/// Canonical id → entity while applying a transaction; unknown ids get a fresh mirrored entity
/// (a parent may arrive after its child).
pub trait EntityResolver {
    fn entity(&mut self, id: u64) -> Entity;
    /// The handle of an imported asset of a Core asset type (`identifier` in extension 0),
    /// reserved if the asset has not arrived yet.
    fn asset_handle(&mut self, _asset_type: u16, _id: u64) -> Option<UntypedHandle> {
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
    /// Put a decoded value on an entity. The default inserts (replacing any old value); mutable
    /// components that change often may assign in place instead (see `Transform`).
    fn store(self, entity: &mut EntityWorldMut<'_>) {
        entity.insert(self);
    }
    /// The Upstream deleted the component from `entity` (default: remove it; a component whose
    /// absence means a default, such as `Visibility`, puts that default back instead).
    fn remove(entity: &mut EntityWorldMut<'_>) {
        entity.remove::<Self>();
    }
}

/// Type-erased operations of one registered component type.
#[derive(Clone)]
pub struct ComponentRule {
    pub name: &'static str,
    pub extension: u16,
    pub identifier: u16,
    /// Check a `ContentModifyComponents` payload without applying it; returns the pair count.
    pub validate: fn(&Bytes) -> Result<usize, DecodeError>,
    /// Apply a payload to the world (after validation).
    pub apply: ApplyFn,
    /// Remove the component from an entity.
    pub remove: fn(&mut World, Entity),
    /// Encode the component of one entity (for digests and proposals).
    pub encode_one: fn(&mut World, Entity) -> Option<Vec<u8>>,
    /// Decode a payload and re-encode it, handing each pair's target `EntityID` to the first
    /// visitor and every id inside the value (wire order) to the second; both may rewrite them.
    /// Proposals use it to check and remap patch-local ids.
    pub visit_ids: VisitIdsFn,
}

/// [`ComponentRule::apply`]: world, link entity, remote-id resolver, payload.
pub type ApplyFn = fn(
    &mut World,
    Entity,
    &mut dyn FnMut(&mut World, u64) -> Entity,
    &Bytes,
) -> Result<(), super::MirrorError>;

/// [`ComponentRule::visit_ids`]: payload, target-id visitor, inner-id visitor.
pub type VisitIdsFn = fn(
    &Bytes,
    &mut dyn FnMut(&mut u64),
    &mut dyn FnMut(crate::codec::IdMut<'_>),
) -> Result<Bytes, super::MirrorError>;

/// Every registered component type, by `(extension, identifier)`, in registration order, and
/// every registered asset type likewise.
#[derive(Resource, Default, Clone)]
pub struct ComponentRegistry {
    pub rules: Vec<ComponentRule>,
    pub by_id: HashMap<(u16, u16), usize>,
    /// Asset rules, in registration order (which is also the order in which a batch of received
    /// bodies is imported: register the types others refer to first, as Core does buffers).
    pub assets: Vec<AssetRule>,
    pub asset_by_id: HashMap<(u16, u16), usize>,
}

impl ComponentRegistry {
    pub fn get(&self, extension: u16, identifier: u16) -> Option<&ComponentRule> {
        self.by_id
            .get(&(extension, identifier))
            .map(|&i| &self.rules[i])
    }

    /// The rule of asset type `(extension, identifier)`, with its registration index.
    pub fn asset(&self, extension: u16, identifier: u16) -> Option<(usize, &AssetRule)> {
        self.asset_by_id
            .get(&(extension, identifier))
            .map(|&i| (i, &self.assets[i]))
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

    /// Downstream: check a decoded body and make it part of this node (usually a Bevy asset under
    /// the handle [`imported_handle`] reserves). An `Err` refuses the asset with that reason; the
    /// link goes on.
    fn import(
        wire: Self::Wire,
        world: &mut World,
        link: Entity,
        id: u64,
    ) -> Result<AssetImported, String>;

    /// Downstream: the Upstream deleted the asset (the handle kept for it is dropped by the
    /// caller).
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

/// The type-erased form of a [`MirrorAsset`], kept in the [`ComponentRegistry`].
#[derive(Clone)]
pub struct AssetRule {
    pub name: &'static str,
    pub extension: u16,
    pub identifier: u16,
    /// Decode and import a received body.
    pub import: fn(&mut World, Entity, u64, &Bytes) -> Result<AssetImported, String>,
    /// Apply a deletion.
    pub delete: fn(&mut World, Entity, u64),
    /// Note a refusal.
    pub refused: fn(&mut World, Entity, u64, &str),
    /// Reserve a handle for early references.
    pub reserve: ReserveFn,
    /// Proposals: decode, check what a Downstream may propose, visit (and remap) every id, and
    /// encode again.
    pub propose: ProposeAssetFn,
}

/// See [`MirrorAsset::reserve`].
pub type ReserveFn = fn(&World) -> Option<UntypedHandle>;

/// See [`AssetRule::propose`].
pub type ProposeAssetFn =
    fn(&Bytes, &mut dyn FnMut(crate::codec::IdMut<'_>)) -> Result<Bytes, String>;

fn import_asset<T: MirrorAsset>(
    world: &mut World,
    link: Entity,
    id: u64,
    body: &Bytes,
) -> Result<AssetImported, String> {
    let wire = T::Wire::decode(body.clone()).map_err(|e| e.to_string())?;
    T::import(wire, world, link, id)
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
    /// Mirror `T` between Upstream and Downstreams.
    fn mirror_component<T: MirrorComponent>(&mut self) -> &mut Self;
    /// Mirror asset type `T`: received bodies are imported through it, proposed ones checked.
    fn mirror_asset<T: MirrorAsset>(&mut self) -> &mut Self;
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
            reserve: T::reserve,
            propose: propose_asset::<T>,
        });
        registry.asset_by_id.insert(key, index);
        self.world_mut()
            .get_resource_or_init::<AssetIdMap>()
            .reservers
            .insert(key, T::reserve);
        self
    }

    fn mirror_component<T: MirrorComponent>(&mut self) -> &mut Self {
        let key = (T::EXTENSION, T::IDENTIFIER);
        let mut registry = self.world_mut().get_resource_or_init::<ComponentRegistry>();
        if registry.by_id.contains_key(&key) {
            warn!(
                "component type {key:?} ({}) is already mirrored; ignoring the second registration",
                std::any::type_name::<T>()
            );
            return self;
        }
        let index = registry.rules.len();
        registry.rules.push(ComponentRule {
            name: std::any::type_name::<T>(),
            extension: T::EXTENSION,
            identifier: T::IDENTIFIER,
            validate: validate_pairs::<T>,
            apply: apply_pairs::<T>,
            remove: |world, e| {
                if let Ok(mut em) = world.get_entity_mut(e) {
                    T::remove(&mut em);
                }
            },
            encode_one: encode_one::<T>,
            visit_ids: visit_pair_ids::<T>,
        });
        registry.by_id.insert(key, index);
        self.world_mut()
            .get_resource_or_init::<Outgoing>()
            .register(key);
        self.add_systems(
            PostUpdate,
            (
                upstream::collect_changes::<T>.run_if(upstream::send_tick),
                upstream::collect_removals::<T>,
            )
                .in_set(NoodlesSystems::Collect),
        );
        self
    }
}

/// Walk `(EntityID, T::Wire)` pairs until the payload is consumed.
fn for_each_pair<T: MirrorComponent>(
    bytes: &Bytes,
    mut f: impl FnMut(u64, T::Wire) -> Result<(), super::MirrorError>,
) -> Result<usize, super::MirrorError> {
    let mut r = Reader::new(bytes);
    let mut n = 0;
    while r.remaining() > 0 {
        let id = EntityID::read(&mut r).map_err(|e| super::MirrorError::Decode {
            component: std::any::type_name::<T>(),
            index: n,
            error: e,
        })?;
        let w = T::Wire::read(&mut r).map_err(|e| super::MirrorError::Decode {
            component: std::any::type_name::<T>(),
            index: n,
            error: e,
        })?;
        f(id.id.get(), w)?;
        n += 1;
    }
    Ok(n)
}

fn validate_pairs<T: MirrorComponent>(bytes: &Bytes) -> Result<usize, DecodeError> {
    let mut r = Reader::new(bytes);
    let mut n = 0;
    while r.remaining() > 0 {
        EntityID::read(&mut r).map_err(|e| e.at(crate::codec::rt::PathSeg::Index(n)))?;
        T::Wire::read(&mut r).map_err(|e| e.at(crate::codec::rt::PathSeg::Index(n)))?;
        n += 1;
    }
    Ok(n)
}

fn apply_pairs<T: MirrorComponent>(
    world: &mut World,
    link: Entity,
    resolve: &mut dyn FnMut(&mut World, u64) -> Entity,
    bytes: &Bytes,
) -> Result<(), super::MirrorError> {
    // The whole transaction was validated (`validate_pairs`) before anything was applied, so
    // decoding cannot fail half-way: stream the pairs straight into the world.
    for_each_pair::<T>(bytes, |id, w| {
        let entity = resolve(world, id);
        let value = {
            let mut resolver = WorldResolver {
                world: &mut *world,
                link,
                resolve: &mut *resolve,
            };
            T::from_wire(w, &mut resolver)?
        };
        if let Ok(mut em) = world.get_entity_mut(entity) {
            value.store(&mut em);
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
    fn asset_handle(&mut self, asset_type: u16, id: u64) -> Option<UntypedHandle> {
        imported_handle(self.world, self.link, asset_type, id)
    }
}

fn visit_pair_ids<T: MirrorComponent>(
    bytes: &Bytes,
    target: &mut dyn FnMut(&mut u64),
    inner: &mut dyn FnMut(crate::codec::IdMut<'_>),
) -> Result<Bytes, super::MirrorError> {
    use crate::codec::VisitIds;
    let mut out = Vec::with_capacity(bytes.len());
    for_each_pair::<T>(bytes, |mut id, mut w| {
        target(&mut id);
        w.visit_ids_mut(inner);
        out.extend_from_slice(&id.to_le_bytes());
        w.write(&mut out).map_err(|e| {
            super::MirrorError::Invalid(format!("component {}: {e}", std::any::type_name::<T>()))
        })
    })?;
    Ok(Bytes::from(out))
}

fn encode_one<T: MirrorComponent>(world: &mut World, entity: Entity) -> Option<Vec<u8>> {
    let mut ids = world.query::<&NoodlesId>();
    let world: &World = world;
    let c = world.get::<T>(entity)?;
    let lookup = WorldIds { world, q: &mut ids };
    let w = c.to_wire(&lookup)?;
    w.encode().ok()
}

struct WorldIds<'a> {
    world: &'a World,
    q: &'a mut bevy::ecs::query::QueryState<&'static NoodlesId>,
}

impl EntityIds for WorldIds<'_> {
    fn id_of(&self, entity: Entity) -> Option<u64> {
        self.q.get_manual(self.world, entity).ok().map(|n| n.0)
    }
    fn asset_id(&self, asset: UntypedAssetId) -> Option<u64> {
        let map = self.world.get_resource::<AssetIdMap>()?;
        if let Some(id) = map.exported.get(&asset) {
            return Some(*id);
        }
        // Downstream: the id an imported handle stands for.
        map.imported
            .iter()
            .find(|(_, h)| h.id() == asset)
            .map(|((_, _, id), _)| *id)
    }
}
