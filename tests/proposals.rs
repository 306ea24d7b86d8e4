//! Proposals end to end: Downstreams propose, the Upstream checks, decides, applies and replies,
//! over real loopback websockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bevy::prelude::Vec3;
use bevy::prelude::*;
use bevy_noodles2::codec::*;
use bevy_noodles2::mirror::{
    EntityIds, EntityIndex, EntityResolver, MirrorConfig, MirrorError, PATCH_LOCAL_BIT,
};
use bevy_noodles2::prelude::*;
use bevy_noodles2::proposals::{ProposedChange, ProposedEntity, codes, send_proposal};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);
const P: u64 = PATCH_LOCAL_BIT;

/// A plugin whose clock entity does not change during a test (so digests are stable).
fn quiet(name: &str, extensions: Vec<u16>) -> NoodlesPlugin {
    NoodlesPlugin {
        session_name: name.into(),
        extensions,
        mirror: MirrorConfig {
            time_sync_interval: Duration::from_secs(3600),
            ..default()
        },
        ..default()
    }
}

/// An application component in extension 0x4242, mirrored by the Upstream only.
#[derive(Component, Debug, Clone, PartialEq)]
struct Score(f64);

impl MirrorComponent for Score {
    type Wire = TimeSyncComponent;
    const EXTENSION: u16 = 0x4242;
    const IDENTIFIER: u16 = 9;
    fn to_wire(&self, _: &dyn EntityIds) -> Option<TimeSyncComponent> {
        Some(TimeSyncComponent::new(self.0))
    }
    fn from_wire(w: TimeSyncComponent, _: &mut dyn EntityResolver) -> Result<Self, MirrorError> {
        Ok(Score(w.last.get()))
    }
}

/// Everything the proposal layer reported, in order.
#[derive(Resource, Default)]
struct Log {
    replies: Vec<ProposalReply>,
    applied: Vec<ProposalApplied>,
    rejected: Vec<ProposalRejected>,
}

fn log(app: &mut App) {
    app.init_resource::<Log>();
    app.add_systems(
        Last,
        |mut r: MessageReader<ProposalReply>,
         mut a: MessageReader<ProposalApplied>,
         mut j: MessageReader<ProposalRejected>,
         mut log: ResMut<Log>| {
            log.replies.extend(r.read().cloned());
            log.applied.extend(a.read().cloned());
            log.rejected.extend(j.read().cloned());
        },
    );
}

struct Scene {
    up: App,
    downs: Vec<App>,
    links: Vec<Entity>,
    root: Entity,
    boxed: Entity,
}

/// An Upstream with a small shared scene (and extension 0x4242), and `n` Core-only Downstreams
/// that have mirrored it.
fn scene(n: usize) -> Scene {
    let mut up = app_with(quiet("up", vec![0, 0x4242]));
    up.mirror_component::<Score>();
    log(&mut up);
    let root = up
        .world_mut()
        .spawn((
            Name::new("root"),
            Transform::from_xyz(0.0, 1.0, 0.0),
            Shared,
        ))
        .id();
    let boxed = up
        .world_mut()
        .spawn((
            Name::new("box"),
            Transform::from_xyz(1.0, 0.0, 0.0),
            ChildOf(root),
            Shared,
        ))
        .id();
    let url = listen_with(&mut up, granting_listener());
    let mut downs = Vec::new();
    let mut links = Vec::new();
    for i in 0..n {
        let mut d = app_with(quiet(&format!("down{i}"), vec![0]));
        log(&mut d);
        links.push(connect(&mut d, NoodlesConnect::new(url.clone())));
        downs.push(d);
    }
    let mut s = Scene {
        up,
        downs,
        links,
        root,
        boxed,
    };
    s.settle("the scene is mirrored everywhere");
    s
}

impl Scene {
    fn apps(&mut self) -> Vec<&mut App> {
        let mut v: Vec<&mut App> = vec![&mut self.up];
        v.extend(self.downs.iter_mut());
        v
    }

    fn run_until(&mut self, what: &str, mut cond: impl FnMut(&mut [&mut App]) -> bool) {
        let mut apps = self.apps();
        run_until(&mut apps, LIMIT, what, |a| cond(a));
    }

    /// Run until every Downstream's digest equals the Upstream's (and the scene has arrived).
    fn settle(&mut self, what: &str) {
        self.run_until(what, |a| {
            let (u, ds) = a.split_first_mut().unwrap();
            let want = world_digest(u);
            ds.iter_mut()
                .all(|d| open_links(d) == 1 && mirrored(d) >= 3 && world_digest(d) == want)
        });
    }

    /// The mirrored entity of the Upstream entity `e` on Downstream `i`.
    fn mirror(&mut self, i: usize, e: Entity) -> Entity {
        let id = self.up.world().get::<SharedId>(e).unwrap().get();
        by_id(&mut self.downs[i], id).expect("mirrored")
    }

    fn wait_reply(&mut self, i: usize, transaction_id: u32) -> ProposalReply {
        let link = self.links[i];
        self.run_until("the proposal's reply", |a| {
            a[i + 1]
                .world()
                .resource::<Log>()
                .replies
                .iter()
                .any(|r| r.link == link && r.transaction_id == transaction_id)
        });
        let r = self.downs[i]
            .world()
            .resource::<Log>()
            .replies
            .iter()
            .find(|r| r.link == link && r.transaction_id == transaction_id)
            .cloned();
        r.unwrap()
    }
}

fn mirrored(app: &mut App) -> usize {
    let mut q = app.world_mut().query_filtered::<(), With<Mirrored>>();
    q.iter(app.world()).count()
}

fn by_id(app: &mut App, id: u64) -> Option<Entity> {
    // Shared entities by the id this node gave them, mirrored ones by their link's id.
    let mut q = app
        .world_mut()
        .query::<(Entity, Option<&SharedId>, Option<&Mirrored>)>();
    q.iter(app.world())
        .find(|(_, s, m)| s.map(|s| s.get()) == Some(id) || m.map(|m| m.id) == Some(id))
        .map(|(e, ..)| e)
}

fn shared_count(app: &mut App) -> usize {
    app.world().resource::<EntityIndex>().shared_count()
}

fn send_raw(app: &mut App, link: Entity, transaction_id: u32, content: Vec<ContentMessage>) {
    let msg = MainSequenceMessage::ProposedChangeTransaction(ProposedChangeTransaction {
        transaction_id,
        content: ContentArray(content),
    });
    app.world()
        .get::<NoodlesLink>(link)
        .unwrap()
        .send_message(&msg)
        .unwrap();
}

fn ctype(ext: u16, id: u16) -> ComponentTypeID {
    ComponentTypeID::new(ExtensionID::new(ext), id)
}

fn asset(ext: u16, ty: u16, id: u64) -> AnAsset {
    AnAsset::new(
        AssetTypeID::new(ExtensionID::new(ext), ty),
        AssetID::new(id),
    )
}

fn create(ids: &[u64]) -> ContentMessage {
    ContentMessage::ContentCreateEntities(ContentCreateEntities {
        list: EntityList(ids.iter().map(|&i| EntityID::new(i)).collect()),
    })
}

fn modify(ext: u16, ident: u16, bytes: Vec<u8>) -> ContentMessage {
    ContentMessage::ContentModifyComponents(ContentModifyComponents {
        component: ctype(ext, ident),
        count: 1,
        content: Content(Bytes::from(bytes)),
    })
}

fn name_of(id: u64, name: &str) -> ContentMessage {
    let mut b = id.to_le_bytes().to_vec();
    b.extend(NameComponent(name.into()).encode().unwrap());
    modify(0, 15, b)
}

fn child_of(id: u64, parent: u64) -> ContentMessage {
    let mut b = id.to_le_bytes().to_vec();
    b.extend(parent.to_le_bytes());
    modify(0, 16, b)
}

fn buffer(id: u64, source: BufferSource) -> ContentMessage {
    let content = BufferAsset {
        flags: BufferAssetFlags::default(),
        source,
    }
    .encode()
    .unwrap();
    ContentMessage::ContentModifyAsset(ContentModifyAsset {
        an_asset: asset(0, 0, id),
        content: Content(content.into()),
    })
}

fn inline(bytes: &'static [u8]) -> BufferSource {
    BufferSource::InlineContent(InlineContent(Bytes::from_static(bytes)))
}

#[test]
fn malformed_proposals_are_rejected_with_code_3_and_change_nothing() {
    let mut s = scene(1);
    let link = s.links[0];
    let box_id = s.up.world().get::<SharedId>(s.boxed).unwrap().get();
    let mut bad_utf8 = (P | 1).to_le_bytes().to_vec();
    bad_utf8.extend([2, 0, 0xff, 0xfe]);
    let cases: Vec<(&str, Vec<ContentMessage>, &str)> = vec![
        (
            "unknown canonical target",
            vec![name_of(987_654, "x")],
            "unknown entity id 987654",
        ),
        (
            "canonical id in a create",
            vec![create(&[5])],
            "must use patch-local ids",
        ),
        (
            "a placeholder created twice",
            vec![create(&[P | 1, P | 1])],
            "created twice",
        ),
        (
            "undeclared placeholder as target",
            vec![name_of(P | 99, "x")],
            "is not created by this proposal",
        ),
        (
            "undeclared placeholder inside a payload",
            vec![create(&[P | 1]), child_of(P | 1, P | 42)],
            "is not created by this proposal",
        ),
        (
            "unknown canonical id inside a payload",
            vec![create(&[P | 1]), child_of(P | 1, 987_654)],
            "unknown entity id 987654",
        ),
        (
            "delete a component of an unknown entity",
            vec![ContentMessage::ContentDeleteComponents(
                ContentDeleteComponents {
                    component: ctype(0, 15),
                    list: EntityList(vec![EntityID::new(987_654)]),
                },
            )],
            "unknown entity id",
        ),
        (
            "delete an unknown entity",
            vec![ContentMessage::ContentDeleteEntities(
                ContentDeleteEntities {
                    list: EntityList(vec![EntityID::new(987_654)]),
                },
            )],
            "unknown entity id",
        ),
        (
            "truncated payload",
            vec![modify(0, 15, vec![1, 2, 3])],
            "undecodable",
        ),
        (
            "invalid UTF-8 in a name",
            vec![create(&[P | 1]), modify(0, 15, bad_utf8)],
            "undecodable",
        ),
        (
            // (Instances are kept raw by an app without Bevy's assets.)
            "a Core component this Upstream does not mirror",
            vec![modify(0, 4, box_id.to_le_bytes().to_vec())],
            "not mirrored by this Upstream",
        ),
        (
            "a value its mapping refuses (a text height that is not a number)",
            vec![{
                let mut b = box_id.to_le_bytes().to_vec();
                b.extend(
                    bevy_noodles2::codec::TextComponent {
                        color: bevy_noodles2::codec::SRGB8::new(0, 0, 0),
                        height: f32::NAN,
                        text: "x".into(),
                    }
                    .encode()
                    .unwrap(),
                );
                modify(0, 19, b)
            }],
            "height is NaN",
        ),
        (
            "a component outside the link's extensions",
            vec![{
                let mut b = box_id.to_le_bytes().to_vec();
                b.extend(2.0f64.to_le_bytes());
                modify(0x4242, 9, b)
            }],
            "outside the link's extensions",
        ),
        (
            "asset deletion",
            vec![ContentMessage::ContentDeleteAsset(ContentDeleteAsset {
                an_asset: asset(0, 0, P | 1),
            })],
            "asset deletion cannot be proposed",
        ),
        (
            "a buffer by URL",
            vec![buffer(
                P | 1,
                BufferSource::BufferFromURL(BufferFromURL {
                    byte_size: 4,
                    url: BufferURL("http://example.com/b".into()),
                }),
            )],
            "proposals must inline buffers",
        ),
        (
            "an OOB buffer",
            vec![buffer(P | 1, BufferSource::OOBAssetID(OOBAssetID::new(7)))],
            "proposals must inline buffers",
        ),
        (
            "an undecodable asset",
            vec![ContentMessage::ContentModifyAsset(ContentModifyAsset {
                an_asset: asset(0, 0, P | 1),
                content: Content(Bytes::from_static(&[9, 9])),
            })],
            "undecodable asset",
        ),
        (
            "an unknown canonical asset",
            vec![buffer(12_345, inline(b"data"))],
            "unknown asset id 12345",
        ),
        (
            "an asset type outside the link's extensions",
            vec![ContentMessage::ContentModifyAsset(ContentModifyAsset {
                an_asset: asset(0x4242, 0, P | 1),
                content: Content(Bytes::new()),
            })],
            "outside the link's extensions",
        ),
        (
            "an asset type no rule is registered for",
            vec![ContentMessage::ContentModifyAsset(ContentModifyAsset {
                an_asset: asset(0, 99, P | 1),
                content: Content(Bytes::from_static(&[1, 2, 3])),
            })],
            "cannot be proposed (this Upstream does not mirror it)",
        ),
        (
            "a valid start and a bad end (no partial application)",
            vec![
                create(&[P | 1, P | 2]),
                name_of(P | 1, "half"),
                name_of(box_id, "changed"),
                child_of(P | 2, 987_654),
            ],
            "unknown entity id 987654",
        ),
    ];
    let before = world_digest(&mut s.up);
    let count = shared_count(&mut s.up);
    for (i, (label, content, why)) in cases.into_iter().enumerate() {
        let tid = 100 + i as u32;
        send_raw(&mut s.downs[0], link, tid, content);
        let reply = s.wait_reply(0, tid);
        assert_eq!(reply.code, codes::MALFORMED, "{label}: {reply:?}");
        assert!(
            reply.entities.is_empty() && reply.assets.is_empty(),
            "{label}: remap tables must be empty"
        );
        let rejected =
            s.up.world()
                .resource::<Log>()
                .rejected
                .last()
                .cloned()
                .unwrap();
        assert_eq!(
            (rejected.transaction_id, rejected.code),
            (tid, codes::MALFORMED),
            "{label}"
        );
        assert!(
            rejected.reason.contains(why),
            "{label}: reason `{}` should mention `{why}`",
            rejected.reason
        );
        pump(&mut s.apps(), 3);
        assert_eq!(
            world_digest(&mut s.up),
            before,
            "{label}: the Upstream world changed"
        );
        assert_eq!(
            shared_count(&mut s.up),
            count,
            "{label}: entities were created"
        );
    }
    assert!(s.up.world().resource::<Log>().applied.is_empty());
    // The link survived all of it, and the Downstream still mirrors the same world.
    assert_eq!(open_links(&mut s.downs[0]), 1);
    assert_eq!(world_digest(&mut s.downs[0]), before);
}

#[test]
fn the_policy_decides_and_knows_the_link() {
    let mut s = scene(2);
    let code = Arc::new(AtomicU16::new(codes::DENIED));
    // (link, peer name, new entities, changes) as the policy saw them.
    type Seen = Vec<(Entity, String, usize, usize)>;
    let seen: Arc<std::sync::Mutex<Seen>> = Arc::default();
    let (c, log_seen) = (code.clone(), seen.clone());
    s.up.insert_resource(ProposalPolicy::new(move |ctx| {
        log_seen.lock().unwrap().push((
            ctx.link,
            ctx.peer_name.to_string(),
            ctx.new_entities.len(),
            ctx.changes.len(),
        ));
        match c.load(Ordering::SeqCst) {
            0 => ProposalDecision::Accept,
            1 => ProposalDecision::Deny,
            2 => ProposalDecision::ResourceExhausted,
            n => ProposalDecision::Application(n),
        }
    }));
    let before = world_digest(&mut s.up);
    let link = s.links[0];
    for want in [codes::DENIED, codes::RESOURCE_EXHAUSTED, 300] {
        code.store(want, Ordering::SeqCst);
        let mut p = Proposal::new();
        let e = p.spawn();
        p.insert(e, Name::new("denied?"));
        let tid = send_proposal(s.downs[0].world_mut(), link, p).unwrap();
        let r = s.wait_reply(0, tid);
        assert_eq!(r.code, want);
        assert!(r.entities.is_empty());
        pump(&mut s.apps(), 3);
        assert_eq!(
            world_digest(&mut s.up),
            before,
            "code {want}: the Upstream world changed"
        );
    }
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen.iter()
                .all(|(_, peer, new, changes)| peer == "down0" && *new == 1 && *changes == 1),
            "{seen:?}"
        );
    }
    // Malformed proposals never reach the policy (read the live log, not a copy of it).
    send_raw(&mut s.downs[1], s.links[1], 9, vec![name_of(987_654, "x")]);
    assert_eq!(s.wait_reply(1, 9).code, codes::MALFORMED);
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "a malformed proposal reached the policy"
    );
    // The same Downstream is accepted once the policy says so.
    code.store(0, Ordering::SeqCst);
    let mut p = Proposal::new();
    let e = p.spawn();
    p.insert(e, Name::new("accepted"));
    let tid = send_proposal(s.downs[0].world_mut(), link, p).unwrap();
    assert_eq!(s.wait_reply(0, tid).code, codes::ACCEPTED);
}

#[test]
fn a_parent_and_a_child_and_a_change_are_applied_whole() {
    let mut s = scene(2);
    let link = s.links[0];
    let box_mirror = s.mirror(0, s.boxed);
    let root_mirror = s.mirror(0, s.root);
    let mut p = Proposal::new();
    let parent = p.spawn();
    let child = p.spawn();
    p.insert(parent, Name::new("crate"))
        .insert(parent, Transform::from_xyz(5.0, 0.0, 0.0))
        .insert(parent, ChildOf(root_mirror))
        .insert(child, Name::new("lid"))
        .insert(child, Transform::from_xyz(0.0, 1.0, 0.0))
        .insert(child, ChildOf(parent.entity()))
        .insert(box_mirror, Name::new("box (renamed)"))
        .remove::<Transform>(box_mirror);
    let tid = send_proposal(s.downs[0].world_mut(), link, p).unwrap();
    let reply = s.wait_reply(0, tid);
    assert!(reply.accepted(), "{reply:?}");
    // Complete, one-to-one remap tables with canonical ids.
    assert_eq!(reply.entities.len(), 2);
    let (pc, cc) = (
        reply.canonical(parent).unwrap(),
        reply.canonical(child).unwrap(),
    );
    assert_ne!(pc, cc);
    assert_eq!(pc & PATCH_LOCAL_BIT, 0);
    assert_eq!(cc & PATCH_LOCAL_BIT, 0);
    let applied = s.up.world().resource::<Log>().applied.clone();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].entities, reply.entities);
    // The Upstream's world has it all.
    let (up_parent, up_child) = (by_id(&mut s.up, pc).unwrap(), by_id(&mut s.up, cc).unwrap());
    assert!(s.up.world().get::<Shared>(up_parent).is_some());
    assert_eq!(
        s.up.world().get::<Name>(up_parent).unwrap().as_str(),
        "crate"
    );
    assert_eq!(
        s.up.world().get::<ChildOf>(up_parent).unwrap().parent(),
        s.root
    );
    assert_eq!(
        s.up.world().get::<ChildOf>(up_child).unwrap().parent(),
        up_parent
    );
    assert_eq!(
        s.up.world().get::<Name>(s.boxed).unwrap().as_str(),
        "box (renamed)"
    );
    assert!(s.up.world().get::<Transform>(s.boxed).is_none());
    // Both Downstreams converge on the canonical result; the proposer's view matches.
    s.settle("both Downstreams have the canonical result");
    for i in 0..2 {
        let d = &mut s.downs[i];
        let (dp, dc) = (
            by_id(d, pc).expect("parent mirrored"),
            by_id(d, cc).expect("child mirrored"),
        );
        assert_eq!(d.world().get::<Name>(dc).unwrap().as_str(), "lid");
        assert_eq!(d.world().get::<ChildOf>(dc).unwrap().parent(), dp);
        assert_eq!(
            d.world().get::<Transform>(dc).unwrap().translation,
            Vec3::new(0.0, 1.0, 0.0)
        );
    }
    assert_eq!(
        s.downs[0].world().get::<Name>(box_mirror).unwrap().as_str(),
        "box (renamed)"
    );
    assert!(s.downs[0].world().get::<Transform>(box_mirror).is_none());
}

#[test]
fn a_proposed_buffer_gets_a_canonical_id_and_reaches_every_downstream() {
    let mut s = scene(2);
    let mut p = Proposal::new();
    let b = p.add_buffer(Bytes::from_static(b"hello buffer"));
    let e = p.spawn();
    p.insert(e, Name::new("with a buffer"));
    let tid = send_proposal(s.downs[0].world_mut(), s.links[0], p).unwrap();
    let reply = s.wait_reply(0, tid);
    assert!(reply.accepted(), "{reply:?}");
    let canonical = reply.canonical_asset(b).expect("asset remapped");
    let id = canonical.asset_id.id.get();
    assert_eq!(id & PATCH_LOCAL_BIT, 0);
    let store =
        s.up.world()
            .resource::<bevy_noodles2::proposals::ProposedAssets>();
    assert!(store.contains((0, 0, id)));
    // A canonical asset created by a proposal may be replaced by a later proposal.
    let tid = {
        send_raw(
            &mut s.downs[1],
            s.links[1],
            5,
            vec![buffer(id, inline(b"replaced"))],
        );
        5
    };
    assert!(s.wait_reply(1, tid).accepted());
}

#[test]
fn concurrent_proposals_are_applied_one_at_a_time_in_arrival_order() {
    let mut s = scene(3);
    // Every Downstream sends two proposals in the same frame, before the Upstream runs.
    let mut sent = Vec::new();
    for i in 0..3 {
        for k in 0..2 {
            let mut p = Proposal::new();
            let parent = p.spawn();
            let child = p.spawn();
            p.insert(parent, Name::new(format!("parent {i}.{k}")))
                .insert(child, Name::new(format!("child {i}.{k}")))
                .insert(child, ChildOf(parent.entity()));
            let link = s.links[i];
            let tid = send_proposal(s.downs[i].world_mut(), link, p).unwrap();
            sent.push((i, tid, parent, child));
        }
    }
    s.run_until("every reply", |a| {
        (1..=3).all(|i| a[i].world().resource::<Log>().replies.len() == 2)
    });
    let applied = s.up.world().resource::<Log>().applied.clone();
    assert_eq!(applied.len(), 6);
    // Serial application: the canonical ids of one proposal all come before the next one's.
    for w in applied.windows(2) {
        let max = w[0].entities.iter().map(|p| p.1).max().unwrap();
        let min = w[1].entities.iter().map(|p| p.1).min().unwrap();
        assert!(max < min, "proposals interleaved: {applied:?}");
    }
    for i in 0..3 {
        let replies = s.downs[i].world().resource::<Log>().replies.clone();
        // Each link's replies come in the order its proposals were sent.
        assert_eq!(
            replies.iter().map(|r| r.transaction_id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        for r in &replies {
            assert!(r.accepted());
            assert!(
                applied.iter().any(|a| a.entities == r.entities),
                "reply {r:?} matches an applied proposal"
            );
        }
    }
    s.settle("every Downstream converges");
    // Nothing half-applied: every child is under its own parent, everywhere.
    for (i, tid, parent, child) in sent {
        let r = s.downs[i]
            .world()
            .resource::<Log>()
            .replies
            .iter()
            .find(|r| r.transaction_id == tid)
            .cloned()
            .unwrap();
        let (pc, cc) = (r.canonical(parent).unwrap(), r.canonical(child).unwrap());
        for d in s.apps() {
            let (pe, ce) = (by_id(d, pc).unwrap(), by_id(d, cc).unwrap());
            assert_eq!(d.world().get::<ChildOf>(ce).unwrap().parent(), pe);
        }
    }
}

#[test]
fn the_policy_sees_what_the_proposal_does() {
    let mut s = scene(1);
    let seen: Arc<std::sync::Mutex<Vec<ProposedChange>>> = Arc::default();
    let log_seen = seen.clone();
    s.up.insert_resource(ProposalPolicy::new(move |ctx| {
        log_seen.lock().unwrap().extend(ctx.changes.iter().cloned());
        ProposalDecision::Deny
    }));
    let box_mirror = s.mirror(0, s.boxed);
    let mut p = Proposal::new();
    let e = p.spawn();
    p.insert(e, Name::new("new"))
        .insert(box_mirror, Name::new("renamed"))
        .despawn(box_mirror);
    let tid = send_proposal(s.downs[0].world_mut(), s.links[0], p).unwrap();
    assert_eq!(s.wait_reply(0, tid).code, codes::DENIED);
    let seen = seen.lock().unwrap().clone();
    let box_id = s.up.world().get::<SharedId>(s.boxed).unwrap().get();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(matches!(
        seen[0],
        ProposedChange::SetComponent {
            entity: ProposedEntity::New(_),
            component: (0, 15),
            ..
        }
    ));
    assert!(
        matches!(seen[1], ProposedChange::SetComponent { entity: ProposedEntity::Existing { id, entity }, .. } if id == box_id && entity == s.boxed)
    );
    assert_eq!(
        seen[2],
        ProposedChange::DeleteEntity {
            id: box_id,
            entity: s.boxed
        }
    );
}

fn introduction(name: &str) -> Bytes {
    PreMessage::Introduction(Introduction {
        header: IntroductionHeader {
            protocol_version: 1,
            flags: IntroductionFlags::default(),
            name: name.into(),
            capabilities: vec![ExtensionID::new(0)].into(),
        },
    })
    .encode_bytes()
    .unwrap()
}

/// Update the app once and collect the main-sequence frames that arrived on a raw websocket.
fn poll<S>(
    rt: &tokio::runtime::Runtime,
    ws: &mut S,
    up: &mut App,
    frames: &mut Vec<MainSequenceMessage>,
) where
    S: futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    up.update();
    while let Ok(Some(Ok(m))) =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(2), ws.next()).await })
    {
        if let WsMessage::Binary(b) = m
            && let Ok(msg) = MainSequenceMessage::decode(b)
        {
            frames.push(msg);
        }
    }
}

/// On the wire: the reply comes first, then the canonical Transaction that creates the entity,
/// and no earlier Transaction mentions it.
#[test]
fn the_reply_precedes_the_canonical_transaction() {
    let mut up = app_with(quiet("up", vec![0]));
    up.world_mut().spawn((Name::new("root"), Shared));
    let url = listen_with(&mut up, granting_listener());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (mut ws, _) = rt
        .block_on(tokio_tungstenite::connect_async(url.as_str()))
        .expect("raw connect");
    rt.block_on(ws.send(WsMessage::Binary(introduction("raw"))))
        .unwrap();
    let mut frames: Vec<MainSequenceMessage> = Vec::new();
    let deadline = std::time::Instant::now() + LIMIT;
    while !frames
        .iter()
        .any(|m| matches!(m, MainSequenceMessage::Transaction(_)))
    {
        poll(&rt, &mut ws, &mut up, &mut frames);
        assert!(std::time::Instant::now() < deadline, "no snapshot");
    }
    let proposal = MainSequenceMessage::ProposedChangeTransaction(ProposedChangeTransaction {
        transaction_id: 42,
        content: ContentArray(vec![create(&[P | 1]), name_of(P | 1, "new")]),
    });
    rt.block_on(ws.send(WsMessage::Binary(proposal.encode_bytes().unwrap())))
        .unwrap();
    let start = frames.len();
    let created = |m: &MainSequenceMessage, id: u64| {
        match m {
        MainSequenceMessage::Transaction(t) => t.content.iter().any(|c| matches!(c, ContentMessage::ContentCreateEntities(l) if l.list.iter().any(|e| e.id.get() == id))),
        _ => false,
    }
    };
    loop {
        poll(&rt, &mut ws, &mut up, &mut frames);
        let reply = frames[start..]
            .iter()
            .position(|m| matches!(m, MainSequenceMessage::ProposedTransactionReply(_)));
        if let Some(r) = reply {
            let MainSequenceMessage::ProposedTransactionReply(rep) = &frames[start + r] else {
                unreachable!()
            };
            assert_eq!((rep.transaction_id, rep.code), (42, 0));
            let id = rep.remapped_entities[0].to.id.get();
            assert!(
                !frames[..start + r].iter().any(|m| created(m, id)),
                "a Transaction created the entity before the reply"
            );
            if frames[start + r..].iter().any(|m| created(m, id)) {
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reply and Transaction: {frames:?}"
        );
    }
}

// ============================================================================================
// Assets in proposals: components that refer to assets, and new assets
// ============================================================================================

/// An Upstream with Bevy's asset collections sharing a cube (a mesh of 24 vertices), and one
/// Downstream (with the collections too) that mirrors it, mesh included.
fn asset_scene() -> (App, App, Entity, Entity) {
    let mut up = asset_app_with(quiet("up", vec![0]));
    let mut down = asset_app_with(quiet("down", vec![0]));
    log(&mut up);
    log(&mut down);
    let mesh = up
        .world_mut()
        .resource_mut::<Assets<Mesh>>()
        .add(Cuboid::default());
    let cube = up
        .world_mut()
        .spawn((Name::new("cube"), Mesh3d(mesh), Shared))
        .id();
    let link = linked_with(&mut up, &mut down, granting_listener());
    run_until(&mut [&mut up, &mut down], LIMIT, "the cube's mesh", |a| {
        let [u, d] = a else { unreachable!() };
        mirror_of(u, d, cube).is_some_and(|m| mesh_vertices(d, m) == Some(24))
    });
    (up, down, cube, link)
}

/// The vertex count of the mesh on `e`, once it is loaded.
fn mesh_vertices(app: &App, e: Entity) -> Option<usize> {
    let h = app.world().get::<Mesh3d>(e)?;
    app.world()
        .resource::<Assets<Mesh>>()
        .get(&h.0)
        .map(|m| m.count_vertices())
}

/// A mesh of one triangle (3 vertices).
fn triangle() -> Mesh {
    Mesh::new(
        bevy::mesh::PrimitiveTopology::TriangleList,
        bevy::asset::RenderAssetUsages::default(),
    )
    .with_inserted_attribute(
        Mesh::ATTRIBUTE_POSITION,
        vec![[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
    )
}

fn named(app: &mut App, name: &str) -> Option<Entity> {
    let mut q = app.world_mut().query::<(Entity, &Name)>();
    q.iter(app.world())
        .find(|(_, n)| n.as_str() == name)
        .map(|(e, _)| e)
}

fn wait_reply(up: &mut App, down: &mut App, link: Entity, tid: u32) -> ProposalReply {
    run_until(&mut [up, down], LIMIT, "the reply", |a| {
        a[1].world()
            .resource::<Log>()
            .replies
            .iter()
            .any(|r| r.link == link && r.transaction_id == tid)
    });
    down.world()
        .resource::<Log>()
        .replies
        .iter()
        .find(|r| r.link == link && r.transaction_id == tid)
        .cloned()
        .unwrap()
}

#[test]
fn a_proposal_can_give_an_entity_a_mesh_the_upstream_shares() {
    let (mut up, mut down, cube, link) = asset_scene();
    // A copy of the cube's `Mesh3d`, as the Downstream holds it.
    let cube_mirror = mirror_of(&up, &mut down, cube).unwrap();
    let handle = down.world().get::<Mesh3d>(cube_mirror).unwrap().clone();
    let mut p = Proposal::new();
    let e = p.spawn();
    p.insert(e, Name::new("copy")).insert(e, handle);
    let tid = send_proposal(down.world_mut(), link, p).expect("a mesh reference encodes");
    let reply = wait_reply(&mut up, &mut down, link, tid);
    assert!(reply.accepted(), "{reply:?}");
    // On the Upstream, the new entity uses the cube's own mesh.
    let copy = named(&mut up, "copy").expect("created");
    assert_eq!(
        up.world().get::<Mesh3d>(copy).map(|m| m.id()),
        up.world().get::<Mesh3d>(cube).map(|m| m.id()),
        "the proposed mesh resolved to another asset"
    );
    // And the Downstream sees it with that mesh.
    run_until(&mut [&mut up, &mut down], LIMIT, "the copy's mesh", |a| {
        named(a[1], "copy").is_some_and(|c| mesh_vertices(a[1], c) == Some(24))
    });
    pump(&mut [&mut up, &mut down], 5);
    let copy_mirror = named(&mut down, "copy").unwrap();
    assert_eq!(
        mesh_vertices(&down, copy_mirror),
        Some(24),
        "the mesh went away"
    );
}

#[test]
fn a_proposal_can_create_a_mesh_and_use_it() {
    let (mut up, mut down, _, link) = asset_scene();
    let triangle = triangle();
    let mut p = Proposal::new();
    // The buffer's placeholder id goes in the mesh's view.
    let buffer_id = PATCH_LOCAL_BIT | 1;
    let (bytes, wire) = bevy_noodles2::assets::mesh_to_wire(&triangle, buffer_id).unwrap();
    let buffer = p.add_buffer(bytes);
    assert_eq!(buffer.id, buffer_id);
    let mesh = p.add_asset((0, 3), wire.encode_bytes().unwrap());
    let e = p.spawn();
    p.insert(e, Name::new("triangle"))
        .insert(e, Mesh3d(mesh.handle()));
    let tid = send_proposal(down.world_mut(), link, p).expect("a new mesh encodes");
    let reply = wait_reply(&mut up, &mut down, link, tid);
    assert!(reply.accepted(), "{reply:?}");
    assert_eq!(reply.assets.len(), 2);
    let up_triangle = named(&mut up, "triangle").expect("created");
    assert_eq!(
        mesh_vertices(&up, up_triangle),
        Some(3),
        "the Upstream holds the proposed mesh as a Bevy mesh"
    );
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the triangle's mesh",
        |a| named(a[1], "triangle").is_some_and(|t| mesh_vertices(a[1], t) == Some(3)),
    );
    assert_eq!(down.world().resource::<AssetStats>().refused, 0);
    // A second entity may use the now canonical mesh by its id.
    let canonical = reply.canonical_asset(mesh).unwrap().asset_id.id.get();
    let mut mesh_of_new = (P | 1).to_le_bytes().to_vec();
    mesh_of_new.extend(
        MeshComponent::new(MeshAssetID::new(AssetID::new(canonical)))
            .encode()
            .unwrap(),
    );
    send_raw(
        &mut down,
        link,
        900,
        vec![
            create(&[P | 1]),
            name_of(P | 1, "second triangle"),
            modify(0, 14, mesh_of_new),
        ],
    );
    assert!(wait_reply(&mut up, &mut down, link, 900).accepted());
    let second = named(&mut up, "second triangle").unwrap();
    assert_eq!(mesh_vertices(&up, second), Some(3));
}

#[test]
fn a_proposed_mesh_that_cannot_be_imported_rejects_the_whole_proposal() {
    let (mut up, mut down, _, link) = asset_scene();
    let before = shared_count(&mut up);
    let mut p = Proposal::new();
    // A mesh whose view runs past its 12-byte buffer.
    let buffer = p.add_buffer(Bytes::from_static(&[0; 12]));
    let triangle = triangle();
    let (_, wire) = bevy_noodles2::assets::mesh_to_wire(&triangle, buffer.id).unwrap();
    let mesh = p.add_asset((0, 3), wire.encode_bytes().unwrap());
    let e = p.spawn();
    p.insert(e, Name::new("broken"))
        .insert(e, Mesh3d(mesh.handle()));
    let tid = send_proposal(down.world_mut(), link, p).unwrap();
    let reply = wait_reply(&mut up, &mut down, link, tid);
    assert_eq!(reply.code, codes::MALFORMED, "{reply:?}");
    let rejected = &up.world().resource::<Log>().rejected;
    assert!(
        rejected.iter().any(|r| r.reason.contains("mesh asset")),
        "{:?}",
        rejected
    );
    assert_eq!(shared_count(&mut up), before, "nothing was created");
    assert!(named(&mut up, "broken").is_none());
}

#[test]
fn a_proposal_creating_more_entities_than_a_reply_can_remap_is_rejected_whole_with_code_2() {
    let mut s = scene(1);
    let before = (shared_count(&mut s.up), world_digest(&mut s.up));
    // 65,536 new entities: one more than a reply's u16-counted remap table holds.
    let ids: Vec<u64> = (1..=65_536u64).map(|i| P | i).collect();
    send_raw(&mut s.downs[0], s.links[0], 77, vec![create(&ids)]);
    let reply = s.wait_reply(0, 77);
    assert_eq!(reply.code, codes::RESOURCE_EXHAUSTED, "{reply:?}");
    assert!(reply.entities.is_empty());
    pump(&mut s.apps(), 3);
    assert_eq!(
        (shared_count(&mut s.up), world_digest(&mut s.up)),
        before,
        "the Upstream's world changed"
    );
    // 65,535 fit, and are answered.
    let ids: Vec<u64> = (1..=65_535u64).map(|i| P | i).collect();
    send_raw(&mut s.downs[0], s.links[0], 78, vec![create(&ids)]);
    let reply = s.wait_reply(0, 78);
    assert!(reply.accepted(), "{:?}", reply.code);
    assert_eq!(reply.entities.len(), 65_535);
    // The builder refuses a proposal that could never be answered.
    let mut p = Proposal::new();
    for _ in 0..65_536 {
        p.spawn();
    }
    assert!(matches!(
        send_proposal(s.downs[0].world_mut(), s.links[0], p),
        Err(bevy_noodles2::proposals::ProposalError::TooManyPlaceholders)
    ));
}
