//! The component registry: which Bevy component maps to which NOODLES2 `ComponentTypeID`, and how.

use std::collections::HashMap;

use bevy::prelude::*;
use bytes::Bytes;

use super::upstream::{self, Outgoing};
use super::NoodlesId;
use crate::codec::rt::Reader;
use crate::codec::{DecodeError, EntityID, Wire};
use crate::plugin::NoodlesSystems;

/// Entity → canonical id, for encoding references (`ChildOf`, skin joints, ...).
pub trait EntityIds {
    /// The canonical id of a shared or mirrored entity; `None` if it is neither.
    fn id_of(&self, entity: Entity) -> Option<u64>;
}

impl EntityIds for Query<'_, '_, &NoodlesId> {
    fn id_of(&self, entity: Entity) -> Option<u64> {
        self.get(entity).ok().map(|n| n.0)
    }
}

/// Canonical id → entity while applying a transaction; unknown ids get a fresh mirrored entity
/// (a parent may arrive after its child).
pub trait EntityResolver {
    fn entity(&mut self, id: u64) -> Entity;
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
    type Wire: Wire;
    /// The extension that owns the component type (Core is 0).
    const EXTENSION: u16;
    /// The component's identifier within its extension.
    const IDENTIFIER: u16;
    /// Encode; `None` skips the entity (for example a `ChildOf` whose parent is not shared).
    fn to_wire(&self, ids: &dyn EntityIds) -> Option<Self::Wire>;
    /// Decode into the Bevy component.
    fn from_wire(wire: Self::Wire, ids: &mut dyn EntityResolver) -> Result<Self, super::MirrorError>;
    /// Put a decoded value on an entity. The default inserts (replacing any old value); mutable
    /// components that change often may assign in place instead (see `Transform`).
    fn store(self, entity: &mut EntityWorldMut<'_>) {
        entity.insert(self);
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
    pub apply: fn(&mut World, &mut dyn FnMut(&mut World, u64) -> Entity, &Bytes) -> Result<(), super::MirrorError>,
    /// Remove the component from an entity.
    pub remove: fn(&mut World, Entity),
    /// Encode the component of one entity (for digests and proposals).
    pub encode_one: fn(&mut World, Entity) -> Option<Vec<u8>>,
}

/// Every registered component type, by `(extension, identifier)`, in registration order.
#[derive(Resource, Default, Clone)]
pub struct ComponentRegistry {
    pub rules: Vec<ComponentRule>,
    pub by_id: HashMap<(u16, u16), usize>,
}

impl ComponentRegistry {
    pub fn get(&self, extension: u16, identifier: u16) -> Option<&ComponentRule> {
        self.by_id.get(&(extension, identifier)).map(|&i| &self.rules[i])
    }
}

/// Registers component mappings on an [`App`].
pub trait MirrorAppExt {
    /// Mirror `T` between Upstream and Downstreams.
    fn mirror_component<T: MirrorComponent>(&mut self) -> &mut Self;
}

impl MirrorAppExt for App {
    fn mirror_component<T: MirrorComponent>(&mut self) -> &mut Self {
        let key = (T::EXTENSION, T::IDENTIFIER);
        let mut registry = self.world_mut().get_resource_or_init::<ComponentRegistry>();
        if registry.by_id.contains_key(&key) {
            warn!("component type {key:?} ({}) is already mirrored; ignoring the second registration", std::any::type_name::<T>());
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
                    em.remove::<T>();
                }
            },
            encode_one: encode_one::<T>,
        });
        registry.by_id.insert(key, index);
        self.world_mut().get_resource_or_init::<Outgoing>().register(key);
        self.add_systems(
            PostUpdate,
            (upstream::collect_changes::<T>.after(upstream::track_links).before(upstream::collect_phase_marker), upstream::collect_removals::<T>)
                .in_set(NoodlesSystems::Send),
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
        let id = EntityID::read(&mut r).map_err(|e| super::MirrorError::Decode { component: std::any::type_name::<T>(), index: n, error: e })?;
        let w = T::Wire::read(&mut r).map_err(|e| super::MirrorError::Decode { component: std::any::type_name::<T>(), index: n, error: e })?;
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
    resolve: &mut dyn FnMut(&mut World, u64) -> Entity,
    bytes: &Bytes,
) -> Result<(), super::MirrorError> {
    // Decode all first; a later failure must not leave a half-applied payload.
    let mut decoded: Vec<(u64, T::Wire)> = Vec::new();
    for_each_pair::<T>(bytes, |id, w| {
        decoded.push((id, w));
        Ok(())
    })?;
    for (id, w) in decoded {
        let entity = resolve(world, id);
        let value = {
            let mut resolver = WorldResolver { world: &mut *world, resolve: &mut *resolve };
            T::from_wire(w, &mut resolver)?
        };
        let Ok(mut em) = world.get_entity_mut(entity) else { continue };
        value.store(&mut em);
    }
    Ok(())
}

struct WorldResolver<'a, 'b> {
    world: &'a mut World,
    resolve: &'b mut dyn FnMut(&mut World, u64) -> Entity,
}

impl EntityResolver for WorldResolver<'_, '_> {
    fn entity(&mut self, id: u64) -> Entity {
        (self.resolve)(self.world, id)
    }
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
}
