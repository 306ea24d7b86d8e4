//! Nothing received is lost: component values and asset bodies this node maps to nothing in Bevy
//! are kept as bytes (`RawComponents`, `UnmappedPayloads`, `RawAssets`), validated like mapped
//! ones, replaced and deleted like them, and shown by the registry.

use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec as w;
use bevy_noodles2::codec::Wire;
use bevy_noodles2::mirror::{ComponentRegistry, Outgoing};
use bevy_noodles2::prelude::*;
use bytes::Bytes;

use crate::common::*;

const EXT: u16 = 0x4242;

fn component_type(ext: u16, id: u16) -> w::ComponentTypeID {
    w::ComponentTypeID::new(w::ExtensionID::new(ext), id)
}

fn delete(ext: u16, id: u16, entities: &[u64]) -> w::ContentMessage {
    w::ContentMessage::ContentDeleteComponents(w::ContentDeleteComponents {
        component: component_type(ext, id),
        list: w::EntityList(entities.iter().map(|e| w::EntityID::new(*e)).collect()),
    })
}

fn raw_of(app: &mut App, id: u64, key: (u16, u16)) -> Option<Bytes> {
    let e = mirror_of_id(app, id)?;
    app.world()
        .get::<RawComponents>(e)?
        .get(key.0, key.1)
        .map(|v| v.bytes.clone())
}

fn ext_app(name: &str) -> App {
    app_with(NoodlesPlugin {
        session_name: name.into(),
        extensions: vec![EXT],
        ..default()
    })
}

#[test]
fn unmapped_core_components_are_kept_validated_and_deleted() {
    let mut up = app("up");
    // Headless, without Bevy's asset collections: meshes map to nothing here.
    let mut down = app("down");
    log_closed(&mut down);
    linked(&mut up, &mut down);
    let registry = down.world().resource::<ComponentRegistry>();
    let mesh_rule = registry.get(0, 14).expect("every Core type has a rule");
    assert!(mesh_rule.is_raw() && mesh_rule.wire_name() == "MeshComponent");
    assert!(!registry.get(0, 20).expect("Transform").is_raw());

    let mesh = w::MeshComponent::new(w::MeshAssetID::new(w::AssetID::new(9)))
        .encode()
        .unwrap();
    let inst = w::InstanceComponent {
        instance_count: 3.into(),
        ..Default::default()
    }
    .encode()
    .unwrap();
    send_transaction(
        &mut up,
        vec![
            components(0, 14, &[(5, mesh.clone())]),
            components(0, 4, &[(5, inst.clone()), (6, inst)]),
        ],
    );
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the raw values",
        |a| raw_of(a[1], 6, (0, 4)).is_some(),
    );
    assert_eq!(raw_of(&mut down, 5, (0, 14)).as_deref(), Some(&mesh[..]));
    let e5 = mirror_of_id(&mut down, 5).unwrap();
    let raw = down.world().get::<RawComponents>(e5).unwrap();
    assert_eq!(raw.len(), 2);
    let decoded: w::MeshComponent = raw.get(0, 14).unwrap().decode().unwrap();
    assert_eq!(decoded.asset.id.id.get(), 9);
    let registry = down.world().resource::<ComponentRegistry>().clone();
    assert!(registry.get(0, 14).unwrap().has(down.world(), e5));
    assert!(!registry.get(0, 24).unwrap().has(down.world(), e5));
    assert_eq!(down.world().resource::<MirrorStats>().raw_values, 3);

    // A replacement replaces; a deletion deletes.
    let other = w::MeshComponent::new(w::MeshAssetID::new(w::AssetID::new(10)))
        .encode()
        .unwrap();
    send_transaction(
        &mut up,
        vec![
            components(0, 14, &[(5, other.clone())]),
            delete(0, 4, &[5, 6]),
        ],
    );
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the replacement and the deletion",
        |a| raw_of(a[1], 6, (0, 4)).is_none(),
    );
    assert_eq!(raw_of(&mut down, 5, (0, 14)).as_deref(), Some(&other[..]));
    assert!(raw_of(&mut down, 5, (0, 4)).is_none());
    let e6 = mirror_of_id(&mut down, 6).unwrap();
    assert!(
        down.world().get::<RawComponents>(e6).is_none(),
        "an entity whose last raw value went has no RawComponents"
    );

    // A malformed value of a raw type closes the link like a mapped one, naming the type.
    // (Instances are raw in an app without Bevy's assets.)
    let bad = w::InstanceComponent {
        instance_type: 9, // neither FullFloat (0) nor Reduced (1)
        ..Default::default()
    }
    .encode()
    .unwrap();
    send_transaction(&mut up, vec![components(0, 4, &[(5, bad)])]);
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the link to close",
        |a| open_links(a[1]) == 0,
    );
    let reasons = closed_reasons(&down);
    assert!(
        reasons
            .iter()
            .any(|r| r.to_string().contains("InstanceComponent")),
        "{reasons:?}"
    );
}

#[test]
fn an_extension_component_without_a_mapping_is_kept() {
    let mut up = ext_app("up");
    // Knows the layout of (EXT, 1), maps nothing to it; knows nothing of (EXT, 2).
    let mut down = ext_app("down");
    down.keep_raw_component::<w::TimeSyncComponent>(EXT, 1);
    log_closed(&mut down);
    let link = linked(&mut up, &mut down);
    let score = w::TimeSyncComponent::new(42.5).encode().unwrap();
    let unknown = components(EXT, 2, &[(3, vec![1, 2, 3])]);
    let w::ContentMessage::ContentModifyComponents(ref m) = unknown else {
        unreachable!()
    };
    let payload = m.content.0.clone();
    send_transaction(
        &mut up,
        vec![components(EXT, 1, &[(3, score.clone())]), unknown],
    );
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the extension's values",
        |a| {
            a[1].world()
                .get::<UnmappedPayloads>(link)
                .is_some_and(|p| !p.latest.is_empty())
        },
    );
    assert_eq!(raw_of(&mut down, 3, (EXT, 1)).as_deref(), Some(&score[..]));
    let kept = down.world().get::<UnmappedPayloads>(link).unwrap();
    assert_eq!(kept.latest.get(&(EXT, 2)), Some(&payload));
    let stats = down.world().resource::<MirrorStats>();
    assert_eq!((stats.raw_values, stats.unmapped_payloads), (1, 1));
    assert_eq!(open_links(&mut down), 1);
}

#[test]
fn a_mapping_replaces_a_raw_rule_whenever_it_is_registered() {
    #[derive(Component, Clone, PartialEq, Debug)]
    struct Score(f64);
    impl MirrorComponent for Score {
        type Wire = w::TimeSyncComponent;
        const EXTENSION: u16 = EXT;
        const IDENTIFIER: u16 = 1;
        fn to_wire(&self, _: &dyn bevy_noodles2::mirror::EntityIds) -> Option<Self::Wire> {
            Some(w::TimeSyncComponent::new(self.0))
        }
        fn from_wire(
            w: Self::Wire,
            _: &mut dyn bevy_noodles2::mirror::EntityResolver,
        ) -> Result<Self, MirrorError> {
            Ok(Score(w.last.get()))
        }
    }
    let mut up = ext_app("up");
    up.mirror_component::<Score>();
    let mut down = ext_app("down");
    down.keep_raw_component::<w::TimeSyncComponent>(EXT, 1)
        .mirror_component::<Score>()
        // Declaring the layout after the mapping changes nothing.
        .keep_raw_component::<w::TimeSyncComponent>(EXT, 1);
    assert!(
        !down
            .world()
            .resource::<ComponentRegistry>()
            .get(EXT, 1)
            .unwrap()
            .is_raw()
    );
    linked(&mut up, &mut down);
    let e = up.world_mut().spawn((Score(7.0), Shared)).id();
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the score",
        |a| {
            let id = a[0].world().get::<SharedId>(e).unwrap().get();
            mirror_of_id(a[1], id).is_some_and(|m| a[1].world().get::<Score>(m).is_some())
        },
    );
    let m = mirror_of(&up, &mut down, e).unwrap();
    assert_eq!(down.world().get::<Score>(m), Some(&Score(7.0)));
    assert!(down.world().get::<RawComponents>(m).is_none());
}

#[test]
fn asset_bodies_of_unmapped_types_are_kept_until_deleted() {
    let mut up = ext_app("up");
    let mut down = ext_app("down");
    let link = linked(&mut up, &mut down);
    let body = Bytes::from_static(b"an extension's asset");
    up.world_mut()
        .resource_mut::<Outgoing>()
        .modify_asset((EXT, 3, 11), body.clone());
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the raw asset",
        |a| !a[1].world().resource::<RawAssets>().is_empty(),
    );
    let raw = down.world().resource::<RawAssets>();
    assert_eq!(raw.get(link, (EXT, 3), 11), Some(&body));
    assert_eq!(down.world().resource::<AssetStats>().ignored, 1);
    up.world_mut()
        .resource_mut::<Outgoing>()
        .delete_asset((EXT, 3, 11));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the deletion",
        |a| a[1].world().resource::<RawAssets>().is_empty(),
    );
}
