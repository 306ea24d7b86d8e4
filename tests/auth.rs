//! Authentication at the websocket upgrade and per-link permissions (issue 11), over loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec::Any;
use bevy_noodles2::prelude::*;
use bevy_noodles2::proposals::{codes, send_proposal};
use bevy_noodles2::rpc::{self, DemoEndpointsPlugin, find_endpoint, invoke};
use tokio_tungstenite::tungstenite;

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

fn tokens() -> NoodlesListener {
    NoodlesListener::new("ws://127.0.0.1:0").with_tokens([
        ("editor-token", Principal::new("editor").with_role("edit")),
        ("viewer-token", Principal::new("viewer")),
    ])
}

/// The HTTP status a raw websocket upgrade to `url` gets.
fn upgrade_status(url: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match rt.block_on(tokio_tungstenite::connect_async(url)) {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn a_missing_or_wrong_token_is_refused_at_the_upgrade() {
    let mut up = app("guarded");
    let url = listen_with(&mut up, tokens());
    // The transport runs on its own threads: no update needed for the upgrade.
    assert_eq!(upgrade_status(&url), 401, "no token");
    assert_eq!(
        upgrade_status(&format!("{url}/?token=nope")),
        403,
        "wrong token"
    );
    assert_eq!(upgrade_status(&format!("{url}/?token=viewer-token")), 101);

    // Our own client: without a token the link closes with the status in its reason; with one,
    // it opens and the Upstream knows who it is.
    let mut anon = app("anonymous");
    log_closed(&mut anon);
    connect(&mut anon, NoodlesConnect::new(url.clone()));
    run_until(&mut [&mut up, &mut anon], LIMIT, "refusal", |a| {
        !closed_reasons(a[1]).is_empty()
    });
    let reason = closed_reasons(&anon)[0].to_string();
    assert!(reason.contains("401"), "{reason}");

    let mut down = app("editor");
    connect(
        &mut down,
        NoodlesConnect::new(url).with_token("editor-token"),
    );
    run_until(&mut [&mut up, &mut down], LIMIT, "the link", |a| {
        open_links(a[0]) == 1 && open_links(a[1]) == 1
    });
    let mut q = up.world_mut().query::<&NoodlesLink>();
    let principal = q.single(up.world()).unwrap().principal.clone();
    assert_eq!(principal, Some(Principal::new("editor").with_role("edit")));
}

#[test]
fn proposals_are_denied_unless_granted_and_the_policy_sees_the_principal() {
    let mut up = app("permissions");
    log_closed(&mut up);
    let seen: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let log = seen.clone();
    up.insert_resource(ProposalPolicy::new(move |ctx| {
        log.lock()
            .unwrap()
            .push(ctx.principal.map(|p| p.name.clone()));
        ProposalDecision::Accept
    }));
    // Editors may set names; viewers nothing.
    let url = listen_with(
        &mut up,
        tokens().permissions_by(|p| match p {
            Some(p) if p.has_role("edit") => LinkPermissions {
                propose_components: Grant::Only([(0, 15)].into()),
                ..default()
            },
            _ => LinkPermissions::default(),
        }),
    );
    let mut viewer = app("viewer");
    let mut editor = app("editor");
    let vl = connect(
        &mut viewer,
        NoodlesConnect::new(url.clone()).with_token("viewer-token"),
    );
    let el = connect(
        &mut editor,
        NoodlesConnect::new(url).with_token("editor-token"),
    );
    run_until(
        &mut [&mut up, &mut viewer, &mut editor],
        LIMIT,
        "links",
        |a| open_links(a[0]) == 2,
    );
    let propose = |app: &mut App, link: Entity, with_transform: bool| {
        let mut p = Proposal::new();
        let e = p.spawn();
        p.insert(e, Name::new("proposed"));
        if with_transform {
            p.insert(e, Transform::default());
        }
        send_proposal(app.world_mut(), link, p).unwrap()
    };
    let t1 = propose(&mut viewer, vl, false);
    let t2 = propose(&mut editor, el, true);
    let t3 = propose(&mut editor, el, false);
    let replies = |app: &mut App| {
        let mut r = Vec::new();
        app.world_mut()
            .resource_mut::<Messages<ProposalReply>>()
            .drain()
            .for_each(|m| r.push((m.transaction_id, m.code)));
        r
    };
    let (mut from_viewer, mut from_editor) = (Vec::new(), Vec::new());
    run_until(
        &mut [&mut up, &mut viewer, &mut editor],
        LIMIT,
        "three replies",
        |a| {
            from_viewer.extend(replies(a[1]));
            from_editor.extend(replies(a[2]));
            from_viewer.len() == 1 && from_editor.len() == 2
        },
    );
    assert_eq!(
        from_viewer,
        vec![(t1, codes::DENIED)],
        "a viewer may not propose"
    );
    from_editor.sort();
    assert_eq!(
        from_editor,
        vec![(t2, codes::DENIED), (t3, codes::ACCEPTED)],
        "an editor may set names but not transforms"
    );
    // Only the accepted proposal reached the policy, with its principal; no link closed.
    assert_eq!(*seen.lock().unwrap(), vec![Some("editor".to_string())]);
    assert!(closed_reasons(&up).is_empty());
    assert_eq!(open_links(&mut up), 2);
}

#[test]
fn a_call_the_link_may_not_make_gets_an_rpc_error() {
    let mut up = App::new();
    up.add_plugins(MinimalPlugins)
        .add_plugins(NoodlesPlugin {
            session_name: "calls".into(),
            ..default()
        })
        .add_plugins(DemoEndpointsPlugin);
    up.finish();
    up.cleanup();
    let listener = NoodlesListener::new("ws://127.0.0.1:0").grant(LinkPermissions {
        call: Grant::Only(["echo".to_string()].into()),
        ..default()
    });
    let mut down = app("caller");
    let link = linked_with(&mut up, &mut down, listener);
    run_until(&mut [&mut up, &mut down], LIMIT, "endpoints", |a| {
        find_endpoint(a[1].world_mut(), link, "countdown").is_some()
    });
    let echo = find_endpoint(down.world_mut(), link, "echo").unwrap();
    let countdown = find_endpoint(down.world_mut(), link, "countdown").unwrap();
    let ok = invoke(down.world_mut(), link, echo, [Any::from(1i64)]).unwrap();
    let denied = invoke(down.world_mut(), link, countdown, [Any::from(3i64)]).unwrap();
    let mut got: Vec<RpcReplyReceived> = Vec::new();
    run_until(&mut [&mut up, &mut down], LIMIT, "both replies", |a| {
        got.extend(
            a[1].world_mut()
                .resource_mut::<Messages<RpcReplyReceived>>()
                .drain(),
        );
        got.iter().filter(|r| r.kind.is_final()).count() == 2
    });
    let of = |id: u32| got.iter().find(|r| r.invoke_id == id).unwrap().kind.clone();
    assert!(matches!(of(ok), RpcReplyKind::Complete(_)), "{:?}", of(ok));
    match of(denied) {
        RpcReplyKind::Error(code, message) => {
            assert_eq!(code, rpc::codes::DENIED);
            assert!(
                message.contains("may not call endpoint `countdown`"),
                "{message}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(open_links(&mut up), 1);
}

#[test]
fn the_out_of_band_channel_demands_the_links_credentials() {
    use bevy::asset::RenderAssetUsages;
    use bevy::mesh::PrimitiveTopology;
    let mut up = asset_app("guarded oob");
    let url = listen_with(&mut up, tokens());
    // 2 MB of positions: above the OOB threshold (64 KiB).
    let positions: Vec<[f32; 3]> = (0..180_000).map(|i| [i as f32, 0.0, 0.5]).collect();
    let mesh = up.world_mut().resource_mut::<Assets<Mesh>>().add(
        Mesh::new(
            PrimitiveTopology::TriangleList,
            RenderAssetUsages::default(),
        )
        .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions),
    );
    up.world_mut()
        .spawn((Mesh3d(mesh), Transform::default(), Shared));

    // With the token, the mesh arrives over the OOB channel.
    let mut down = asset_app("viewer with token");
    connect(
        &mut down,
        NoodlesConnect::new(url).with_token("viewer-token"),
    );
    run_until(&mut [&mut up, &mut down], LIMIT, "the big mesh", |a| {
        let mut q = a[1].world_mut().query_filtered::<&Mesh3d, With<Mirrored>>();
        let Some(h) = q.iter(a[1].world()).next().map(|m| m.0.clone()) else {
            return false;
        };
        a[1].world()
            .resource::<Assets<Mesh>>()
            .get(&h)
            .is_some_and(|m| m.count_vertices() == 180_000)
    });
    let progress = down.world().resource::<OobProgress>().clone();
    assert!(progress.assets_done >= 1, "{progress:?}");

    // A process on the same machine (an address with a main link open) without the token is
    // refused at the upgrade; with it, it gets through.
    let oob = format!("ws://{}", up.world().resource::<OobServer>().addr);
    assert_eq!(upgrade_status(&oob), 401);
    assert_eq!(upgrade_status(&format!("{oob}/?token=nope")), 403);
    assert_eq!(upgrade_status(&format!("{oob}/?token=viewer-token")), 101);
}
