//! Helpers shared by the test modules: apps on real loopback sockets, and waiting on conditions
//! with deadlines (never fixed sleeps).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use bevy::mesh::skinning::SkinnedMeshInverseBindposes;
use bevy::prelude::*;
use bevy_noodles2::prelude::*;

/// A headless app with the plugin.
pub fn app_with(plugin: NoodlesPlugin) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins).add_plugins(plugin);
    app.finish();
    app.cleanup();
    app
}

/// A headless app with the plugin and Bevy's asset collections (meshes, materials, images,
/// skins), so assets are mirrored too.
pub fn asset_app_with(plugin: NoodlesPlugin) -> App {
    let mut app = unfinished_asset_app(plugin);
    app.finish();
    app.cleanup();
    app
}

/// [`asset_app_with`] before `finish`, for tests that add more plugins.
pub fn unfinished_asset_app(plugin: NoodlesPlugin) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(AssetPlugin::default())
        .init_asset::<Mesh>()
        .init_asset::<StandardMaterial>()
        .init_asset::<Image>()
        .init_asset::<SkinnedMeshInverseBindposes>()
        .add_plugins(plugin);
    app
}

pub fn asset_app(name: &str) -> App {
    asset_app_with(NoodlesPlugin {
        session_name: name.into(),
        ..default()
    })
}

/// The Downstream entity mirroring canonical id `id`.
pub fn mirror_of_id(down: &mut App, id: u64) -> Option<Entity> {
    let mut q = down.world_mut().query::<(Entity, &Mirrored)>();
    q.iter(down.world())
        .find(|(_, m)| m.id == id)
        .map(|(e, _)| e)
}

/// The Downstream entity mirroring the Upstream entity `e`.
pub fn mirror_of(up: &App, down: &mut App, e: Entity) -> Option<Entity> {
    let id = up.world().get::<SharedId>(e)?.get();
    mirror_of_id(down, id)
}

pub fn app(name: &str) -> App {
    app_with(NoodlesPlugin {
        session_name: name.into(),
        ..default()
    })
}

/// Update every app until `cond` holds, or panic with `what` after `limit`.
pub fn run_until(
    apps: &mut [&mut App],
    limit: Duration,
    what: &str,
    mut cond: impl FnMut(&mut [&mut App]) -> bool,
) {
    let deadline = Instant::now() + limit;
    loop {
        for a in apps.iter_mut() {
            a.update();
        }
        if cond(apps) {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        std::thread::yield_now();
    }
}

/// Update every app a few times (to let queued work settle), without asserting anything.
pub fn pump(apps: &mut [&mut App], frames: usize) {
    for _ in 0..frames {
        for a in apps.iter_mut() {
            a.update();
        }
    }
}

/// Spawn a listener on port 0 (default permissions: no proposals) and return its `ws://` url
/// once bound.
pub fn listen(app: &mut App) -> String {
    listen_with(app, NoodlesListener::new("ws://127.0.0.1:0"))
}

/// A listener on port 0 whose links may propose anything.
pub fn granting_listener() -> NoodlesListener {
    NoodlesListener::new("ws://127.0.0.1:0").grant(LinkPermissions::allow_all())
}

/// Spawn `listener` and return its `ws://` url once bound.
pub fn listen_with(app: &mut App, listener: NoodlesListener) -> String {
    let e = app.world_mut().spawn(listener).id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        app.update();
        let l = app
            .world()
            .get::<NoodlesListener>(e)
            .expect("listener entity");
        if let Some(url) = l.url() {
            return url;
        }
        if let Some(err) = &l.error {
            panic!("listen failed: {err}");
        }
        assert!(Instant::now() < deadline, "listener never bound");
    }
}

/// Spawn a connection and return its entity.
pub fn connect(app: &mut App, c: NoodlesConnect) -> Entity {
    app.world_mut().spawn(c).id()
}

/// `up` listens, `down` connects, and both are updated until the link is open on each side.
/// Returns the link's entity in `down`.
pub fn linked(up: &mut App, down: &mut App) -> Entity {
    linked_with(up, down, NoodlesListener::new("ws://127.0.0.1:0"))
}

/// Two apps (`{name} up` and `{name} down`) with an open link; the Downstream keeps its mirror
/// when the link closes ([`keeping_on_close`]), so a test can show what a refused transaction
/// left untouched, and logs the reasons its links close ([`closed_reasons`]).
pub fn linked_keeping(name: &str) -> (App, App) {
    let mut up = app(&format!("{name} up"));
    let mut down = app_with(keeping_on_close(&format!("{name} down")));
    log_closed(&mut down);
    linked(&mut up, &mut down);
    (up, down)
}

/// Two asset apps (`{name} up` and `{name} down`) with an open link; the Downstream logs the
/// reasons its links close ([`closed_reasons`]).
pub fn linked_asset_apps(name: &str) -> (App, App) {
    let mut up = asset_app(&format!("{name} up"));
    let mut down = asset_app(&format!("{name} down"));
    log_closed(&mut down);
    linked(&mut up, &mut down);
    (up, down)
}

/// Send `content` from `up` as one raw `Transaction` on every link (for hostile input).
pub fn send_transaction(up: &mut App, content: Vec<bevy_noodles2::codec::ContentMessage>) {
    use bevy_noodles2::codec::{ContentArray, MainSequenceMessage, Transaction};
    let tx = MainSequenceMessage::Transaction(Transaction {
        content: ContentArray(content),
    });
    let mut q = up.world_mut().query::<&NoodlesLink>();
    for l in q.iter(up.world()) {
        l.send_message(&tx).expect("queued");
    }
}

/// [`linked`] through `listener`.
pub fn linked_with(up: &mut App, down: &mut App, listener: NoodlesListener) -> Entity {
    let url = listen_with(up, listener);
    let link = connect(down, NoodlesConnect::new(url));
    run_until(
        &mut [up, down],
        Duration::from_secs(20),
        "the link to open on both sides",
        |a| open_links(a[0]) == 1 && open_links(a[1]) == 1,
    );
    link
}

/// All links of an app with their status and role.
pub fn links(app: &mut App) -> Vec<(Entity, LinkStatus, Option<Role>)> {
    let mut q = app.world_mut().query::<(Entity, &NoodlesLink)>();
    q.iter(app.world())
        .map(|(e, l)| (e, l.status.clone(), l.role))
        .collect()
}

/// Links in the main sequence.
pub fn open_links(app: &mut App) -> usize {
    links(app)
        .into_iter()
        .filter(|(_, s, _)| *s == LinkStatus::MainSequence)
        .count()
}

/// Every LinkClosed reason seen so far (reads the message queue with a persistent cursor).
#[derive(Resource, Default)]
pub struct ClosedLog(pub Vec<(Entity, CloseReason)>);

pub fn log_closed(app: &mut App) {
    app.init_resource::<ClosedLog>();
    app.add_systems(
        Last,
        |mut r: MessageReader<LinkClosed>, mut log: ResMut<ClosedLog>| {
            for c in r.read() {
                log.0.push((c.link, c.reason.clone()));
            }
        },
    );
}

pub fn closed_reasons(app: &App) -> Vec<CloseReason> {
    app.world()
        .resource::<ClosedLog>()
        .0
        .iter()
        .map(|(_, r)| r.clone())
        .collect()
}

/// A digest of the mirrored world: for every Shared (Upstream) or Mirrored (Downstream) entity,
/// sorted by canonical id, the wire bytes of every registered component it has.
pub fn world_digest(app: &mut App) -> u64 {
    use bevy_noodles2::mirror::{ComponentRegistry, Mirrored, Shared, SharedId};
    use std::hash::{Hash, Hasher};
    let registry = app.world().resource::<ComponentRegistry>().clone();
    let mut q = app.world_mut().query_filtered::<(Entity, Option<&SharedId>, Option<&Mirrored>), bevy::ecs::query::Or<(With<Shared>, With<Mirrored>)>>();
    // A mirrored entity by its id on its link, a shared one by the id this node gave it.
    let mut ents: Vec<(u64, Entity)> = q
        .iter(app.world())
        .filter_map(|(e, shared, mirrored)| {
            Some((mirrored.map(|m| m.id).or(shared.map(|s| s.get()))?, e))
        })
        .collect();
    ents.sort_unstable();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let inherited = {
        use bevy_noodles2::codec::Wire;
        bevy_noodles2::codec::VisibilityComponent::Inherited
            .encode()
            .expect("encodes")
    };
    for (id, e) in ents {
        id.hash(&mut h);
        for rule in registry.rules() {
            if let Some(bytes) = rule.encode_one(app.world_mut(), e) {
                // `Visibility::Inherited` is what no `VisibilityComponent` means (the spec's
                // default); a Downstream spawns every mirrored entity with it.
                if rule.key() == (0, 21) && bytes == inherited {
                    continue;
                }
                rule.key().hash(&mut h);
                bytes.hash(&mut h);
            }
        }
    }
    h.finish()
}

/// `ContentModifyComponents` of component type `(ext, id)`: `pairs` of entity id and encoded
/// value, back to back (for hand-made and hostile transactions).
pub fn components(
    ext: u16,
    id: u16,
    pairs: &[(u64, Vec<u8>)],
) -> bevy_noodles2::codec::ContentMessage {
    use bevy_noodles2::codec as w;
    let mut content = Vec::new();
    for (e, value) in pairs {
        content.extend_from_slice(&e.to_le_bytes());
        content.extend_from_slice(value);
    }
    w::ContentMessage::ContentModifyComponents(w::ContentModifyComponents {
        component: w::ComponentTypeID::new(w::ExtensionID::new(ext), id),
        count: pairs.len() as u32,
        content: w::Content(content.into()),
    })
}

/// `ContentModifyAsset` of Core asset type `ty`, id `id`, with `body`.
pub fn core_asset(ty: u16, id: u64, body: Vec<u8>) -> bevy_noodles2::codec::ContentMessage {
    use bevy_noodles2::codec as w;
    w::ContentMessage::ContentModifyAsset(w::ContentModifyAsset {
        an_asset: w::AnAsset::new(
            w::AssetTypeID::new(w::ExtensionID::new(0), ty),
            w::AssetID::new(id),
        ),
        content: w::Content(body.into()),
    })
}

/// Core buffer `id` holding `bytes` inline.
pub fn inline_buffer(id: u64, bytes: Vec<u8>) -> bevy_noodles2::codec::ContentMessage {
    use bevy_noodles2::codec::{self as w, Wire};
    let body = w::BufferAsset {
        flags: w::BufferAssetFlags::default(),
        source: w::BufferSource::InlineContent(w::InlineContent(bytes.into())),
    };
    core_asset(0, id, body.encode().expect("a buffer encodes"))
}

/// A plugin whose mirrored entities stay when a link closes (`LinkClosedPolicy::Keep`), to show
/// what a refused transaction left applied.
pub fn keeping_on_close(name: &str) -> NoodlesPlugin {
    NoodlesPlugin {
        session_name: name.into(),
        mirror: MirrorConfig {
            on_link_closed: LinkClosedPolicy::Keep,
            ..default()
        },
        ..default()
    }
}

/// An identity `TransformComponent`, encoded.
pub fn identity_transform() -> Vec<u8> {
    use bevy_noodles2::codec::{self as w, Wire};
    w::TransformComponent::new(
        w::Vec3::new(0.0, 0.0, 0.0),
        w::UnitQuaternion::new(0.0, 0.0, 0.0, 1.0),
        w::Vec3::new(1.0, 1.0, 1.0),
    )
    .encode()
    .expect("a transform encodes")
}
