//! Nothing received is lost: values of component types this node maps to no Bevy component are
//! kept as bytes.
//!
//! - A component type whose layout this node knows (every Core type, and any type an app declares
//!   with [`MirrorAppExt::keep_raw_component`](super::MirrorAppExt::keep_raw_component)) but
//!   that no [`MirrorComponent`](super::MirrorComponent) maps is validated like a mapped one (a
//!   malformed value closes the link) and each entity's value is kept in its [`RawComponents`],
//!   replaced by later values and removed by deletions, like any component. Registering a real
//!   mapping for the type later (in any plugin) replaces the raw rule.
//! - A payload of a type whose layout this node does not know (an extension it negotiated but
//!   registered nothing for) cannot be split by entity: the latest payload of each such type is
//!   kept whole on the link entity, in [`UnmappedPayloads`].
//!
//! Both are counted in [`MirrorStats`](super::MirrorStats) (`raw_values`, `unmapped_payloads`)
//! and shown by the `inspect` example. Memory: a kept value is a copy of its bytes, and each
//! replaces the one before it, so what is kept is at most the size of the Upstream's world as
//! sent, plus one payload per unknown type.

use std::collections::HashMap;

use bevy::prelude::*;
use bytes::Bytes;

use crate::codec::rt::Reader;
use crate::codec::{self as w, EntityID, Wire};

/// The values of component types this app maps to no Bevy component, kept as their wire bytes
/// (see [`MirrorAppExt::keep_raw_component`](super::MirrorAppExt::keep_raw_component) and the
/// README's "Nothing received is lost"). On mirrored entities.
#[derive(Component, Debug, Clone, Default, PartialEq)]
pub struct RawComponents {
    values: Vec<RawComponent>,
}

/// One kept value.
#[derive(Debug, Clone, PartialEq)]
pub struct RawComponent {
    /// `(extension, identifier)` of its component type.
    pub component: (u16, u16),
    /// The name of its wire type (`"TextComponent"`).
    pub name: &'static str,
    /// Its encoded value (without the `EntityID`).
    pub bytes: Bytes,
}

impl RawComponent {
    /// Decode the value as `W` (the wire type named by [`RawComponent::name`]).
    pub fn decode<W: Wire>(&self) -> Result<W, crate::codec::DecodeError> {
        W::decode(self.bytes.clone())
    }
}

impl RawComponents {
    /// The value of component type `(extension, identifier)`, if the entity has one.
    pub fn get(&self, extension: u16, identifier: u16) -> Option<&RawComponent> {
        self.values
            .iter()
            .find(|v| v.component == (extension, identifier))
    }

    /// Every kept value, in the order they first arrived.
    pub fn iter(&self) -> impl Iterator<Item = &RawComponent> {
        self.values.iter()
    }

    /// How many component types are kept.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Nothing kept.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn set(&mut self, v: RawComponent) {
        match self.values.iter_mut().find(|o| o.component == v.component) {
            Some(old) => *old = v,
            None => self.values.push(v),
        }
    }

    fn remove(&mut self, component: (u16, u16)) {
        self.values.retain(|v| v.component != component);
    }
}

/// Payloads of component types this node knows nothing about (not even their layout, so they
/// cannot be told apart by entity): the latest payload of each type, on the link entity it came
/// from.
#[derive(Component, Debug, Clone, Default)]
pub struct UnmappedPayloads {
    /// `(extension, identifier)` → the latest `ContentModifyComponents` content of that type
    /// (`(EntityID, value)` records back to back).
    pub latest: HashMap<(u16, u16), Bytes>,
}

/// The short name of wire type `W` (`"TextComponent"`).
pub(crate) fn wire_name<W>() -> &'static str {
    let full = std::any::type_name::<W>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Keep each `(EntityID, W)` value of `payload` on the entity its id resolves to.
pub(crate) fn keep_values<W: Wire>(
    world: &mut World,
    key: (u16, u16),
    resolve: &mut dyn FnMut(&mut World, u64) -> Entity,
    payload: &Bytes,
) -> Result<(), crate::codec::DecodeError> {
    let name = wire_name::<W>();
    let mut r = Reader::new(payload);
    let mut kept = 0u64;
    while r.remaining() > 0 {
        let id = EntityID::read(&mut r)?.id.get();
        let start = r.position();
        W::read(&mut r)?;
        // A copy, so a kept value does not pin the whole payload it came in.
        let bytes = Bytes::copy_from_slice(&payload[start..r.position()]);
        let entity = resolve(world, id);
        if let Ok(mut e) = world.get_entity_mut(entity) {
            let raw = RawComponent {
                component: key,
                name,
                bytes,
            };
            match e.get_mut::<RawComponents>() {
                Some(mut all) => all.set(raw),
                None => {
                    e.insert(RawComponents { values: vec![raw] });
                }
            }
        }
        kept += 1;
    }
    world.resource_mut::<super::MirrorStats>().raw_values += kept;
    Ok(())
}

/// Remove the kept value of `key` from `entity`.
pub(crate) fn remove_value(world: &mut World, entity: Entity, key: (u16, u16)) {
    if let Ok(mut e) = world.get_entity_mut(entity)
        && let Some(mut all) = e.get_mut::<RawComponents>()
    {
        all.remove(key);
        if all.is_empty() {
            e.remove::<RawComponents>();
        }
    }
}

/// The kept bytes of `key` on `entity`.
pub(crate) fn kept_value(world: &World, entity: Entity, key: (u16, u16)) -> Option<Vec<u8>> {
    world
        .get::<RawComponents>(entity)?
        .get(key.0, key.1)
        .map(|v| v.bytes.to_vec())
}

/// Keep the payload of a type of unknown layout on its link.
pub(crate) fn keep_payload(world: &mut World, link: Entity, key: (u16, u16), payload: &Bytes) {
    if let Ok(mut e) = world.get_entity_mut(link) {
        match e.get_mut::<UnmappedPayloads>() {
            Some(mut p) => {
                p.latest.insert(key, payload.clone());
            }
            None => {
                e.insert(UnmappedPayloads {
                    latest: HashMap::from([(key, payload.clone())]),
                });
            }
        }
    }
    world.resource_mut::<super::MirrorStats>().unmapped_payloads += 1;
}

/// Declare every Core component type as kept raw; the real mappings registered by the plugin's
/// features replace these.
pub(crate) fn register_core(app: &mut App) {
    use super::MirrorAppExt;
    app.keep_raw_component::<w::GlobalComponent>(0, 0)
        .keep_raw_component::<w::RPCEndpointComponent>(0, 1)
        .keep_raw_component::<w::BillboardComponent>(0, 2)
        .keep_raw_component::<w::EnvironmentComponent>(0, 3)
        .keep_raw_component::<w::InstanceComponent>(0, 4)
        .keep_raw_component::<w::InteractiveComponent>(0, 5)
        .keep_raw_component::<w::CanTranslateComponent>(0, 6)
        .keep_raw_component::<w::CanRotateComponent>(0, 7)
        .keep_raw_component::<w::CanScaleComponent>(0, 8)
        .keep_raw_component::<w::ActivateComponent>(0, 9)
        .keep_raw_component::<w::DirectionalLightComponent>(0, 10)
        .keep_raw_component::<w::PointLightComponent>(0, 11)
        .keep_raw_component::<w::SpotLightComponent>(0, 12)
        .keep_raw_component::<w::PBRMaterialComponent>(0, 13)
        .keep_raw_component::<w::MeshComponent>(0, 14)
        .keep_raw_component::<w::NameComponent>(0, 15)
        .keep_raw_component::<w::ChildOfComponent>(0, 16)
        .keep_raw_component::<w::CanSelectComponent>(0, 17)
        .keep_raw_component::<w::IsSelectedComponent>(0, 18)
        .keep_raw_component::<w::TextComponent>(0, 19)
        .keep_raw_component::<w::TransformComponent>(0, 20)
        .keep_raw_component::<w::VisibilityComponent>(0, 21)
        .keep_raw_component::<w::AnimatorComponent>(0, 22)
        .keep_raw_component::<w::SkinComponent>(0, 23)
        .keep_raw_component::<w::MorphWeightsComponent>(0, 24)
        .keep_raw_component::<w::TimeSyncComponent>(0, 25)
        .keep_raw_component::<w::ParameterRootComponent>(0, 26)
        .keep_raw_component::<w::ParameterComponent>(0, 27)
        .keep_raw_component::<w::ParamDefinitionComponent>(0, 28)
        .keep_raw_component::<w::ParamStateComponent>(0, 29);
}
