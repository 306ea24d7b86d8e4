//! Asset types are rules in the registry (`MirrorAppExt::mirror_asset`): an application
//! extension's own asset type travels and is imported like Core's, deletions reach its rule,
//! Core types this node does not use are counted as ignored (not as imported), and a node
//! without Bevy's asset collections ignores meshes instead of refusing them.

use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec as w;
use bevy_noodles2::codec::Wire;
use bevy_noodles2::mirror::{AssetImported, MirrorAsset, Outgoing, RefusalReason, Refused};
use bevy_noodles2::prelude::*;
use bytes::Bytes;

use crate::common::*;

const EXT: u16 = 0x4242;

/// What the extension's asset rule saw on the Downstream.
#[derive(Resource, Default, Debug)]
struct Seen {
    imported: Vec<(u64, String)>,
    deleted: Vec<u64>,
}

/// An application's asset type (0x4242, 0): a label, carried as a Core `NameComponent` body.
struct Label;

impl MirrorAsset for Label {
    type Wire = w::NameComponent;
    const EXTENSION: u16 = EXT;
    const IDENTIFIER: u16 = 0;
    const NAME: &'static str = "label";

    fn import(
        wire: w::NameComponent,
        world: &mut World,
        _link: Entity,
        id: u64,
    ) -> Result<AssetImported, String> {
        if wire.0.is_empty() {
            return Err("a label may not be empty".into());
        }
        world
            .get_resource_or_init::<Seen>()
            .imported
            .push((id, wire.0));
        Ok(AssetImported::Done)
    }

    fn delete(world: &mut World, _link: Entity, id: u64) {
        world.get_resource_or_init::<Seen>().deleted.push(id);
    }
}

fn label_app(name: &str) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(NoodlesPlugin {
            session_name: name.into(),
            extensions: vec![EXT],
            ..default()
        })
        .mirror_asset::<Label>();
    app.finish();
    app.cleanup();
    app
}

fn stats(app: &App) -> AssetStats {
    app.world().resource::<AssetStats>().clone()
}

fn body(text: &str) -> Bytes {
    w::NameComponent(text.into())
        .encode_bytes()
        .expect("encodes")
}

#[test]
fn an_application_asset_type_is_imported_refused_and_deleted_through_its_rule() {
    let mut up = label_app("up");
    let mut down = label_app("down");
    linked(&mut up, &mut down);
    {
        let mut out = up.world_mut().resource_mut::<Outgoing>();
        out.modify_asset((EXT, 0, 7), body("north gate"));
        out.modify_asset((EXT, 0, 8), body(""));
    }
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the label",
        |a| stats(a[1]).imported + stats(a[1]).refused >= 2,
    );
    let seen = down.world().resource::<Seen>();
    assert_eq!(seen.imported, vec![(7, "north gate".to_string())]);
    let s = stats(&down);
    assert_eq!((s.imported, s.refused), (1, 1), "{s:?}");
    assert!(
        s.last_refusal.as_ref().is_some_and(|r| matches!(
            r.what,
            Refused::Asset {
                id: 8,
                name: "label",
                ..
            }
        ) && matches!(&r.reason, RefusalReason::Invalid(why) if why.contains("may not be empty"))),
        "{s:?}"
    );
    up.world_mut()
        .resource_mut::<Outgoing>()
        .delete_asset((EXT, 0, 7));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the deletion",
        |a| !a[1].world().resource::<Seen>().deleted.is_empty(),
    );
    assert_eq!(down.world().resource::<Seen>().deleted, vec![7]);
    assert_eq!(
        open_links(&mut down),
        1,
        "a refused asset does not close the link"
    );
}

#[test]
fn unused_core_assets_are_counted_as_ignored_and_headless_nodes_ignore_meshes() {
    let mut up = app("up");
    // No Bevy asset collections: meshes cannot become Bevy assets here.
    let mut down = app("down");
    linked(&mut up, &mut down);
    let sampler = w::AnimSamplerAsset::default().encode_bytes();
    let sampler = sampler.expect("encodes");
    let (bytes, mesh) = bevy_noodles2::assets::mesh_to_wire(
        &Mesh::from(bevy::math::primitives::Triangle3d::default()),
        1,
    )
    .expect("a triangle converts");
    let buffer = w::BufferAsset {
        flags: w::BufferAssetFlags::default(),
        source: w::BufferSource::InlineContent(w::InlineContent(Bytes::from(bytes))),
    }
    .encode_bytes()
    .expect("encodes");
    {
        let mut out = up.world_mut().resource_mut::<Outgoing>();
        out.modify_asset((0, 6, 5), sampler);
        out.modify_asset((0, 0, 1), buffer);
        out.modify_asset((0, 3, 2), mesh.encode_bytes().expect("encodes"));
    }
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "three assets",
        |a| {
            let s = stats(a[1]);
            s.imported + s.ignored + s.refused >= 3
        },
    );
    let s = stats(&down);
    // The buffer is kept (assets may refer to it); the sampler and the mesh are not used here.
    assert_eq!((s.imported, s.ignored, s.refused), (1, 2, 0), "{s:?}");
}

fn label_asset(id: u64) -> w::AnAsset {
    w::AnAsset::new(
        w::AssetTypeID::new(w::ExtensionID::new(EXT), 0),
        w::AssetID::new(id),
    )
}

fn modify_label(id: u64, text: &str) -> w::ContentMessage {
    w::ContentMessage::ContentModifyAsset(w::ContentModifyAsset {
        an_asset: label_asset(id),
        content: w::Content(body(text)),
    })
}

fn delete_label(id: u64) -> w::ContentMessage {
    w::ContentMessage::ContentDeleteAsset(w::ContentDeleteAsset {
        an_asset: label_asset(id),
    })
}

#[test]
fn asset_content_applies_in_array_order() {
    let mut up = label_app("up");
    let mut down = label_app("down");
    linked(&mut up, &mut down);
    // Asset 3: made, deleted, made again. Asset 4: made, then deleted. In one transaction.
    send_transaction(
        &mut up,
        vec![
            modify_label(3, "first"),
            modify_label(4, "short-lived"),
            delete_label(3),
            modify_label(3, "second"),
            delete_label(4),
        ],
    );
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the labels",
        |a| {
            a[1].world()
                .get_resource::<Seen>()
                .is_some_and(|s| s.deleted.len() >= 2)
        },
    );
    pump(&mut [&mut up, &mut down], 3);
    let seen = down.world().resource::<Seen>();
    // The deletion of 3 cancelled its first body; the body after it made it again; 4 never
    // became more than a body cancelled by its deletion.
    assert_eq!(seen.imported, vec![(3, "second".to_string())], "{seen:?}");
    assert_eq!(seen.deleted, vec![3, 4], "{seen:?}");
}

#[test]
fn an_asset_deleted_and_made_again_in_one_tick_stays() {
    let mut up = label_app("up");
    let mut down = label_app("down");
    linked(&mut up, &mut down);
    up.world_mut()
        .resource_mut::<Outgoing>()
        .modify_asset((EXT, 0, 5), body("old"));
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the first body",
        |a| stats(a[1]).imported >= 1,
    );
    {
        let mut out = up.world_mut().resource_mut::<Outgoing>();
        out.delete_asset((EXT, 0, 5));
        out.modify_asset((EXT, 0, 5), body("new"));
    }
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "the second body",
        |a| stats(a[1]).imported >= 2,
    );
    pump(&mut [&mut up, &mut down], 5);
    assert!(up.world().resource::<Outgoing>().is_live((EXT, 0, 5)));
    let seen = down.world().resource::<Seen>();
    assert_eq!(
        seen.imported,
        vec![(5, "old".to_string()), (5, "new".to_string())]
    );
    assert!(seen.deleted.is_empty(), "deleted after all: {seen:?}");
}
