//! RPC end to end: endpoints on an Upstream, calls from Downstreams, over loopback websockets.

use std::time::Duration;

use bevy::prelude::Vec3;
use bevy::prelude::*;
use bevy_noodles2::codec::*;
use bevy_noodles2::mirror::MirrorConfig;
use bevy_noodles2::prelude::*;
use bevy_noodles2::proposals::send_proposal;
use bevy_noodles2::rpc::{Countdown, DemoEndpointsPlugin, RpcServer, codes, find_endpoint, invoke};

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

/// How often the `tick` endpoint ran.
#[derive(Resource, Default)]
struct Ticks(u32);

#[derive(Resource, Default)]
struct Replies(Vec<RpcReplyReceived>);

fn upstream() -> App {
    let mut up = App::new();
    up.add_plugins(MinimalPlugins)
        .add_plugins(NoodlesPlugin {
            session_name: "up".into(),
            mirror: MirrorConfig {
                time_sync_interval: Duration::from_secs(3600),
                ..default()
            },
            ..default()
        })
        .add_plugins(DemoEndpointsPlugin)
        .init_resource::<Ticks>()
        .add_rpc_handler("fail", |In(_): In<RpcCall>| -> RpcResult {
            Err(RpcFailure::new(300, "nope"))
        })
        .add_rpc_handler(
            "tick",
            |In(_): In<RpcCall>, mut t: ResMut<Ticks>| -> RpcResult {
                t.0 += 1;
                Ok(Any::Void)
            },
        );
    up.finish();
    up.cleanup();
    up.world_mut()
        .spawn((Name::new("fail"), RpcEndpoint::new("fail"), Shared));
    up.world_mut()
        .spawn((Name::new("tick"), RpcEndpoint::new("tick"), Shared));
    up.world_mut()
        .spawn((Name::new("orphan"), RpcEndpoint::new("orphan"), Shared));
    up.world_mut().spawn((Name::new("plain"), Shared));
    up
}

fn downstream(name: &str) -> App {
    let mut d = app(name);
    d.init_resource::<Replies>();
    d.add_systems(
        Last,
        |mut r: MessageReader<RpcReplyReceived>, mut log: ResMut<Replies>| {
            log.0.extend(r.read().cloned())
        },
    );
    d
}

/// An Upstream with endpoints and `n` Downstreams that see all of them; returns their links.
fn setup(n: usize) -> (App, Vec<App>, Vec<Entity>) {
    let mut up = upstream();
    let url = listen_with(&mut up, granting_listener());
    let mut downs: Vec<App> = (0..n).map(|i| downstream(&format!("down{i}"))).collect();
    let links: Vec<Entity> = downs
        .iter_mut()
        .map(|d| connect(d, NoodlesConnect::new(url.clone())))
        .collect();
    let mut apps: Vec<&mut App> = vec![&mut up];
    apps.extend(downs.iter_mut());
    let ls = links.clone();
    run_until(&mut apps, LIMIT, "endpoints mirrored", |a| {
        (1..a.len()).all(|i| {
            [
                "echo",
                "count_entities",
                "countdown",
                "fail",
                "tick",
                "orphan",
            ]
            .iter()
            .all(|n| find_endpoint(a[i].world_mut(), ls[i - 1], n).is_some())
        })
    });
    (up, downs, links)
}

fn endpoint(d: &mut App, link: Entity, name: &str) -> Entity {
    find_endpoint(d.world_mut(), link, name).unwrap_or_else(|| panic!("endpoint {name}"))
}

fn replies(d: &App, invoke_id: u32) -> Vec<RpcReplyKind> {
    d.world()
        .resource::<Replies>()
        .0
        .iter()
        .filter(|r| r.invoke_id == invoke_id)
        .map(|r| r.kind.clone())
        .collect()
}

/// Run until the call `invoke_id` on Downstream `i` got its final reply; returns all its replies.
fn finish(up: &mut App, downs: &mut [App], i: usize, invoke_id: u32) -> Vec<RpcReplyKind> {
    let mut apps: Vec<&mut App> = vec![up];
    apps.extend(downs.iter_mut());
    run_until(&mut apps, LIMIT, "the final reply", |a| {
        replies(a[i + 1], invoke_id)
            .last()
            .is_some_and(|k| k.is_final())
    });
    replies(&downs[i], invoke_id)
}

fn call(
    up: &mut App,
    downs: &mut [App],
    links: &[Entity],
    i: usize,
    name: &str,
    args: Vec<Any>,
) -> Vec<RpcReplyKind> {
    let ep = endpoint(&mut downs[i], links[i], name);
    let id = invoke(downs[i].world_mut(), links[i], ep, args).unwrap();
    finish(up, downs, i, id)
}

fn send_raw(d: &mut App, link: Entity, invoke_id: u32, endpoint: u64, args: Vec<Any>) {
    let msg = MainSequenceMessage::RPCInvoke(RPCInvoke {
        this_invoke_id: invoke_id,
        endpoint: EntityID::new(endpoint),
        args: RPCArgumentList(args),
    });
    d.world()
        .get::<NoodlesLink>(link)
        .unwrap()
        .send_message(&msg)
        .unwrap();
}

/// The Upstream's id of the mirrored entity `e`.
fn canonical(d: &App, e: Entity) -> u64 {
    d.world().get::<Mirrored>(e).unwrap().id
}

fn error_code(r: &[RpcReplyKind]) -> (u16, String) {
    match r {
        [RpcReplyKind::Error(code, msg)] => (*code, msg.clone()),
        other => panic!("expected one error, got {other:?}"),
    }
}

#[test]
fn echo_and_count_complete() {
    let (mut up, mut downs, links) = setup(1);
    let args = vec![
        Any::from(1i64),
        Any::from("a"),
        Any::from(2.5f64),
        Any::from(vec![Any::from(true)]),
        Any::from(Vec3::X),
    ];
    let r = call(&mut up, &mut downs, &links, 0, "echo", args.clone());
    assert_eq!(r, vec![RpcReplyKind::Complete(Any::from(args))]);
    let r = call(&mut up, &mut downs, &links, 0, "echo", vec![]);
    assert_eq!(
        r,
        vec![RpcReplyKind::Complete(Any::from(Vec::<Any>::new()))]
    );
    let shared = {
        let mut q = up.world_mut().query_filtered::<(), With<Shared>>();
        q.iter(up.world()).count() as i64
    };
    let r = call(&mut up, &mut downs, &links, 0, "count_entities", vec![]);
    assert_eq!(r, vec![RpcReplyKind::Complete(Any::I64(shared))]);
    // The call is over on both sides.
    assert_eq!(up.world().resource::<RpcServer>().calls_in_flight(), 0);
}

#[test]
fn countdown_streams_then_completes() {
    let (mut up, mut downs, links) = setup(1);
    let r = call(
        &mut up,
        &mut downs,
        &links,
        0,
        "countdown",
        vec![Any::from(3i64)],
    );
    assert_eq!(
        r,
        vec![
            RpcReplyKind::Stream(Any::I64(3)),
            RpcReplyKind::Stream(Any::I64(2)),
            RpcReplyKind::Stream(Any::I64(1)),
            RpcReplyKind::Complete(Any::I64(0))
        ]
    );
    let r = call(
        &mut up,
        &mut downs,
        &links,
        0,
        "countdown",
        vec![Any::from(0i64)],
    );
    assert_eq!(r, vec![RpcReplyKind::Complete(Any::I64(0))]);
    assert_eq!(up.world().resource::<RpcServer>().calls_in_flight(), 0);
}

#[test]
fn failures_are_rpc_errors_with_clear_messages() {
    let (mut up, mut downs, links) = setup(1);
    let link = links[0];
    // Unknown endpoint id.
    let id = invoke(downs[0].world_mut(), link, 987_654u64, []).unwrap();
    let (code, msg) = error_code(&finish(&mut up, &mut downs, 0, id));
    assert_eq!(code, codes::UNKNOWN_ENDPOINT);
    assert!(msg.contains("#987654"), "{msg}");
    // An entity without an endpoint.
    let plain = {
        let mut q = downs[0].world_mut().query::<(Entity, &Name, &Mirrored)>();
        q.iter(downs[0].world())
            .find(|(_, n, _)| n.as_str() == "plain")
            .map(|(e, _, _)| e)
            .unwrap()
    };
    let id = invoke(downs[0].world_mut(), link, plain, []).unwrap();
    let (code, msg) = error_code(&finish(&mut up, &mut downs, 0, id));
    assert_eq!(code, codes::NOT_AN_ENDPOINT, "{msg}");
    // An endpoint without a handler.
    let (code, msg) = error_code(&call(&mut up, &mut downs, &links, 0, "orphan", vec![]));
    assert_eq!(code, codes::NO_HANDLER);
    assert!(msg.contains("`orphan`"), "{msg}");
    // Wrong count, wrong type.
    let (code, msg) = error_code(&call(&mut up, &mut downs, &links, 0, "countdown", vec![]));
    assert_eq!(code, codes::BAD_ARGUMENTS);
    assert!(
        msg.contains("`countdown` takes 1 argument (n), got 0"),
        "{msg}"
    );
    let (code, msg) = error_code(&call(
        &mut up,
        &mut downs,
        &links,
        0,
        "countdown",
        vec![Any::from("three")],
    ));
    assert_eq!(code, codes::BAD_ARGUMENTS);
    assert!(
        msg.contains("argument 0 (`n`) must be integer (i64), got string"),
        "{msg}"
    );
    let (code, _) = error_code(&call(
        &mut up,
        &mut downs,
        &links,
        0,
        "count_entities",
        vec![Any::from(1i64)],
    ));
    assert_eq!(code, codes::BAD_ARGUMENTS);
    // The handler's own checks and failures.
    let (code, msg) = error_code(&call(
        &mut up,
        &mut downs,
        &links,
        0,
        "countdown",
        vec![Any::from(-1i64)],
    ));
    assert_eq!(code, codes::BAD_ARGUMENTS);
    assert!(msg.contains("got -1"), "{msg}");
    assert_eq!(
        error_code(&call(&mut up, &mut downs, &links, 0, "fail", vec![])),
        (300, "nope".to_string())
    );
    // The link is fine after all of it.
    assert_eq!(open_links(&mut downs[0]), 1);
    assert_eq!(
        call(&mut up, &mut downs, &links, 0, "echo", vec![]),
        vec![RpcReplyKind::Complete(Any::from(Vec::<Any>::new()))]
    );
}

#[test]
fn invoke_id_zero_gets_no_reply_and_cannot_stream() {
    let (mut up, mut downs, links) = setup(1);
    let link = links[0];
    let (tick, countdown, echo) = (
        endpoint(&mut downs[0], link, "tick"),
        endpoint(&mut downs[0], link, "countdown"),
        endpoint(&mut downs[0], link, "echo"),
    );
    let (tick, countdown) = (canonical(&downs[0], tick), canonical(&downs[0], countdown));
    send_raw(&mut downs[0], link, 0, tick, vec![]);
    send_raw(&mut downs[0], link, 0, countdown, vec![Any::from(2i64)]);
    send_raw(&mut downs[0], link, 0, 987_654, vec![]);
    // A call with a reply after them: once it is answered, the three before were handled.
    let id = invoke(downs[0].world_mut(), link, echo, [Any::from(1i64)]).unwrap();
    finish(&mut up, &mut downs, 0, id);
    pump(&mut [&mut up, &mut downs[0]], 10);
    let all = downs[0].world().resource::<Replies>().0.clone();
    assert_eq!(
        all.len(),
        1,
        "only the call with an id is answered: {all:?}"
    );
    assert_eq!(all[0].invoke_id, id);
    assert_eq!(
        up.world().resource::<Ticks>().0,
        1,
        "the handler ran for the id-0 call"
    );
    let mut q = up.world_mut().query::<&Countdown>();
    assert_eq!(
        q.iter(up.world()).count(),
        0,
        "a streaming call with id 0 is refused"
    );
}

#[test]
fn the_same_invoke_id_on_two_links_and_duplicates_in_flight() {
    let (mut up, mut downs, links) = setup(2);
    // Both Downstreams start at invoke id 1: two streams with the same id on two links.
    let ids: Vec<u32> = (0..2)
        .map(|i| {
            let ep = endpoint(&mut downs[i], links[i], "countdown");
            invoke(
                downs[i].world_mut(),
                links[i],
                ep,
                [Any::from(3i64 + i as i64)],
            )
            .unwrap()
        })
        .collect();
    assert_eq!(ids, vec![1, 1]);
    let a = finish(&mut up, &mut downs, 0, 1);
    let b = finish(&mut up, &mut downs, 1, 1);
    let ints = |r: &[RpcReplyKind]| -> Vec<i64> {
        r.iter()
            .map(|k| match k {
                RpcReplyKind::Stream(Any::I64(n)) | RpcReplyKind::Complete(Any::I64(n)) => *n,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(ints(&a), vec![3, 2, 1, 0]);
    assert_eq!(ints(&b), vec![4, 3, 2, 1, 0]);

    // On one link, an id in flight cannot be used again until the call ends.
    let link = links[0];
    let (countdown, echo) = (
        endpoint(&mut downs[0], link, "countdown"),
        endpoint(&mut downs[0], link, "echo"),
    );
    let (countdown, echo) = (canonical(&downs[0], countdown), canonical(&downs[0], echo));
    send_raw(&mut downs[0], link, 7, countdown, vec![Any::from(20i64)]);
    send_raw(&mut downs[0], link, 7, echo, vec![Any::from("again")]);
    // The duplicate is refused while the countdown is in flight (the two invokes may reach the
    // Upstream in the same frame or in two), and the countdown goes on to its end.
    let mut apps: Vec<&mut App> = vec![&mut up];
    apps.extend(downs.iter_mut());
    run_until(&mut apps, LIMIT, "the countdown completes", |a| {
        replies(a[1], 7).contains(&RpcReplyKind::Complete(Any::I64(0)))
    });
    let r = replies(&downs[0], 7);
    let refused = r.iter().position(|k| {
        matches!(k, RpcReplyKind::Error(code, msg) if *code == codes::DUPLICATE_INVOKE_ID && msg.contains("in flight"))
    });
    assert!(
        refused.is_some_and(|i| i + 1 < r.len()),
        "refused before the countdown completes: {r:?}"
    );
    assert_eq!(
        r.iter()
            .filter(|k| matches!(k, RpcReplyKind::Stream(_)))
            .count(),
        20
    );
    assert_eq!(r.len(), 22);
    // Once it ended, id 7 may be reused.
    let before = r.len();
    send_raw(&mut downs[0], link, 7, echo, vec![Any::from("reused")]);
    let mut apps: Vec<&mut App> = vec![&mut up];
    apps.extend(downs.iter_mut());
    run_until(&mut apps, LIMIT, "the reused id is answered", |a| {
        replies(a[1], 7).len() > before
    });
    assert_eq!(
        replies(&downs[0], 7)[before],
        RpcReplyKind::Complete(Any::from(vec![Any::from("reused")]))
    );
}

#[test]
fn a_call_to_an_endpoint_deleted_just_before_still_gets_a_reply() {
    let (mut up, mut downs, links) = setup(1);
    let link = links[0];
    let echo = endpoint(&mut downs[0], link, "echo");
    // The proposal deleting the endpoint arrives first; the call right after it.
    let mut p = Proposal::new();
    p.despawn(echo);
    let tid = send_proposal(downs[0].world_mut(), link, p).unwrap();
    let id = invoke(downs[0].world_mut(), link, echo, []).unwrap();
    let (code, msg) = error_code(&finish(&mut up, &mut downs, 0, id));
    assert_eq!(code, codes::UNKNOWN_ENDPOINT);
    assert!(msg.contains("deleted"), "{msg}");
    assert!(tid > 0);
}

/// Streaming calls a handler holds, unanswered.
#[derive(Resource, Default)]
struct Held(Vec<RpcResponder>);

#[test]
fn streaming_calls_held_unanswered_are_bounded_per_link_and_the_rest_are_busy() {
    let mut up = App::new();
    up.add_plugins(MinimalPlugins)
        .add_plugins(NoodlesPlugin {
            session_name: "up".into(),
            max_calls_in_flight: 2,
            ..default()
        })
        .init_resource::<Held>()
        .add_rpc_stream_handler(
            "hold",
            |In((_, r)): In<(RpcCall, RpcResponder)>, mut held: ResMut<Held>| held.0.push(r),
        );
    up.world_mut()
        .spawn((Name::new("hold"), RpcEndpoint::new("hold"), Shared));
    let url = listen(&mut up);
    let mut downs = vec![downstream("down")];
    let link = connect(&mut downs[0], NoodlesConnect::new(url));
    run_until(
        &mut [&mut up, &mut downs[0]],
        LIMIT,
        "the endpoint mirrored",
        |a| find_endpoint(a[1].world_mut(), link, "hold").is_some(),
    );
    let ep = endpoint(&mut downs[0], link, "hold");
    let first = invoke(downs[0].world_mut(), link, ep, vec![]).unwrap();
    let second = invoke(downs[0].world_mut(), link, ep, vec![]).unwrap();
    let third = invoke(downs[0].world_mut(), link, ep, vec![]).unwrap();
    // Two are held; the third is answered at once.
    let (code, msg) = error_code(&finish(&mut up, &mut downs, 0, third));
    assert_eq!(code, codes::BUSY, "{msg}");
    assert!(msg.contains("2 streaming calls"), "{msg}");
    assert_eq!(up.world().resource::<RpcServer>().calls_in_flight(), 2);
    assert!(replies(&downs[0], first).is_empty());
    assert!(replies(&downs[0], second).is_empty());

    // Finishing one makes room for one more.
    let r = up.world_mut().resource_mut::<Held>().0.remove(0);
    r.complete(Any::I64(1));
    assert_eq!(
        finish(&mut up, &mut downs, 0, first),
        vec![RpcReplyKind::Complete(Any::I64(1))]
    );
    let fourth = invoke(downs[0].world_mut(), link, ep, vec![]).unwrap();
    run_until(
        &mut [&mut up, &mut downs[0]],
        LIMIT,
        "the fourth call held",
        |a| a[0].world().resource::<Held>().0.len() == 2,
    );
    assert!(replies(&downs[0], fourth).is_empty());
    // Closing the link ends every held call.
    downs[0]
        .world()
        .get::<NoodlesLink>(link)
        .unwrap()
        .close("done");
    run_until(
        &mut [&mut up, &mut downs[0]],
        LIMIT,
        "the calls forgotten",
        |a| a[0].world().resource::<RpcServer>().calls_in_flight() == 0,
    );
}
