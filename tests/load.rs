//! Busy peers (issue 11): a Downstream that pipelines far more proposals and calls than fit in
//! one frame is slowed (the Upstream stops reading it while its replies wait), never dropped,
//! and every request gets exactly one answer.

use std::collections::HashMap;
use std::time::Duration;

use bevy::prelude::*;
use bevy_noodles2::codec::Any;
use bevy_noodles2::prelude::*;
use bevy_noodles2::proposals::send_proposal;
use bevy_noodles2::rpc::{DemoEndpointsPlugin, find_endpoint, invoke};

use crate::common::*;

const N: usize = 10_000;

#[derive(Resource, Default)]
struct Answers {
    proposals: HashMap<u32, Vec<u16>>,
    calls: HashMap<u32, usize>,
}

#[test]
fn ten_thousand_pipelined_proposals_and_calls_are_each_answered_once() {
    // Small byte bounds, so the replies really exceed them and the Downstream is slowed.
    let mut up = App::new();
    up.add_plugins(MinimalPlugins)
        .add_plugins(NoodlesPlugin {
            session_name: "up".into(),
            max_queued_bytes: 16 << 10,
            max_inbound_bytes: 16 << 10,
            ..default()
        })
        .add_plugins(DemoEndpointsPlugin);
    up.finish();
    up.cleanup();
    // Every third proposal is denied.
    up.insert_resource(ProposalPolicy::new(|ctx| {
        if ctx.transaction_id % 3 == 0 {
            ProposalDecision::Deny
        } else {
            ProposalDecision::Accept
        }
    }));
    let mut down = app("busy down");
    down.init_resource::<Answers>().add_systems(
        Last,
        |mut p: MessageReader<ProposalReply>,
         mut r: MessageReader<RpcReplyReceived>,
         mut a: ResMut<Answers>| {
            for reply in p.read() {
                a.proposals
                    .entry(reply.transaction_id)
                    .or_default()
                    .push(reply.code);
            }
            for reply in r.read() {
                *a.calls.entry(reply.invoke_id).or_default() += 1;
            }
        },
    );
    log_closed(&mut up);
    log_closed(&mut down);
    let link = linked_with(&mut up, &mut down, granting_listener());
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(20),
        "echo",
        |a| find_endpoint(a[1].world_mut(), link, "echo").is_some(),
    );
    let echo = find_endpoint(down.world_mut(), link, "echo").unwrap();

    // All at once, in one frame of the Downstream.
    let mut proposals = Vec::with_capacity(N);
    let mut calls = Vec::with_capacity(N);
    for i in 0..N {
        let mut p = Proposal::new();
        let e = p.spawn();
        p.insert(e, Name::new(format!("proposed {i}")));
        proposals.push(send_proposal(down.world_mut(), link, p).expect("proposal queued"));
        calls.push(
            invoke(down.world_mut(), link, echo, [Any::from(i as i64)]).expect("call queued"),
        );
    }
    let mut max_queued = 0;
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(120),
        "every proposal and call answered",
        |a| {
            let mut q = a[0].world_mut().query::<&NoodlesLink>();
            for l in q.iter(a[0].world()) {
                max_queued = max_queued.max(l.stats.queued_bytes);
            }
            let answers = a[1].world().resource::<Answers>();
            answers.proposals.len() == N && answers.calls.len() == N
        },
    );
    pump(&mut [&mut up, &mut down], 5);

    assert!(closed_reasons(&up).is_empty(), "{:?}", closed_reasons(&up));
    assert!(closed_reasons(&down).is_empty());
    let answers = down.world().resource::<Answers>();
    for tid in &proposals {
        let codes = &answers.proposals[tid];
        let want = if tid % 3 == 0 { 1 } else { 0 };
        assert_eq!(codes, &vec![want], "proposal {tid}");
    }
    for id in &calls {
        assert_eq!(answers.calls[id], 1, "call {id} answered more than once");
    }
    // The Upstream holds exactly the accepted entities.
    let accepted = proposals.iter().filter(|t| *t % 3 != 0).count();
    let mut names = up.world_mut().query_filtered::<&Name, With<Shared>>();
    let proposed = names
        .iter(up.world())
        .filter(|n| n.as_str().starts_with("proposed "))
        .count();
    assert_eq!(proposed, accepted);
    eprintln!("at most {max_queued} bytes waited for the busy Downstream");
}

fn link_stats(app: &mut App) -> bevy_noodles2::transport::LinkStats {
    let mut q = app.world_mut().query::<&NoodlesLink>();
    q.single(app.world()).expect("one link").live_stats()
}

#[test]
fn an_app_that_falls_behind_stops_reading_and_its_peer_waits() {
    const BOUND: usize = 64 << 10;
    const PROPOSALS: usize = 20_000;
    let mut up = app_with(NoodlesPlugin {
        session_name: "slow up".into(),
        max_inbound_bytes: BOUND,
        ..default()
    });
    let mut down = app("fast down");
    log_closed(&mut up);
    let link = linked_with(&mut up, &mut down, granting_listener());
    down.init_resource::<Answers>().add_systems(
        Last,
        |mut p: MessageReader<ProposalReply>, mut a: ResMut<Answers>| {
            for reply in p.read() {
                a.proposals
                    .entry(reply.transaction_id)
                    .or_default()
                    .push(reply.code);
            }
        },
    );

    // About 20 MB of proposals, while the Upstream app does not run (its transport does).
    let padding = "x".repeat(1000);
    for i in 0..PROPOSALS {
        let mut p = Proposal::new();
        let e = p.spawn();
        p.insert(e, Name::new(format!("{padding} {i}")));
        send_proposal(down.world_mut(), link, p).expect("proposal queued");
    }
    // The Downstream runs (the Upstream app does not) until the Upstream's transport holds its
    // bound of unhandled messages and the Downstream has written a few MB (the socket buffers
    // between them are full).
    run_until(
        &mut [&mut down],
        Duration::from_secs(60),
        "the Upstream to stop reading",
        |a| {
            link_stats(&mut up).inbound_bytes as usize >= BOUND
                && link_stats(a[0]).bytes_out > 2 << 20
        },
    );
    let sent = link_stats(&mut down).bytes_out as usize;
    let held = link_stats(&mut up);
    assert!(
        held.inbound_bytes as usize <= BOUND + 2 * 1024,
        "the Upstream holds {} bytes of unhandled messages (bound {BOUND})",
        held.inbound_bytes
    );
    assert!(
        (held.bytes_in as usize) < PROPOSALS * 1000 / 2,
        "the Upstream read {} bytes while its app was stopped: no backpressure",
        held.bytes_in
    );
    eprintln!(
        "while stopped: the Upstream read {} bytes and holds {}; the Downstream wrote {sent} \
         and queues {}",
        held.bytes_in,
        held.inbound_bytes,
        link_stats(&mut down).queued_bytes
    );

    // The app catches up: every proposal is answered, and the link never closed.
    run_until(
        &mut [&mut up, &mut down],
        Duration::from_secs(120),
        "every proposal answered",
        |a| a[1].world().resource::<Answers>().proposals.len() == PROPOSALS,
    );
    assert!(closed_reasons(&up).is_empty(), "{:?}", closed_reasons(&up));
    assert!(
        down.world()
            .resource::<Answers>()
            .proposals
            .values()
            .all(|codes| codes == &vec![0])
    );
}
