//! Diagnostics: what `NoodlesDiagnosticsPlugin` measures over a real link, and that a closed
//! link's diagnostics go away.

use std::time::Duration;

use bevy::diagnostic::{DiagnosticPath, DiagnosticsStore};
use bevy::prelude::*;
use bevy_noodles2::codec::Any;
use bevy_noodles2::diagnostics::{self as diag, link_path};
use bevy_noodles2::prelude::*;
use bevy_noodles2::proposals::send_proposal;
use bevy_noodles2::rpc::{DemoEndpointsPlugin, find_endpoint, invoke};

use crate::common::*;

const LIMIT: Duration = Duration::from_secs(20);

fn measured_app(name: &str, up: bool) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins)
        .add_plugins(NoodlesPlugin {
            session_name: name.into(),
            ..default()
        })
        .add_plugins(NoodlesDiagnosticsPlugin);
    if up {
        app.add_plugins(DemoEndpointsPlugin)
            .insert_resource(ProposalPolicy::accept_all());
    }
    app.finish();
    app.cleanup();
    app
}

/// The last measurement of `path`.
fn last(app: &App, path: &DiagnosticPath) -> Option<f64> {
    let store = app.world().resource::<DiagnosticsStore>();
    store.get(path)?.measurement().map(|m| m.value)
}

fn has(app: &App, path: &DiagnosticPath) -> bool {
    app.world()
        .resource::<DiagnosticsStore>()
        .get(path)
        .is_some()
}

#[test]
fn diagnostics_measure_links_entities_rates_and_latencies() {
    let mut up = measured_app("diag up", true);
    let mut down = measured_app("diag down", false);
    for i in 0..20 {
        up.world_mut().spawn((
            Name::new(format!("thing {i}")),
            Transform::default(),
            Shared,
        ));
    }
    let url = listen_with(&mut up, granting_listener());
    let link = connect(&mut down, NoodlesConnect::new(url));
    // The link opens and the world arrives: entities on both sides agree, bytes flowed each
    // way. Rates are sampled every frame from the start (the history keeps only the last 120
    // measurements), the link's own once the Upstream has it.
    let mut up_link = None;
    let mut seen = [0.0f64; 4];
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the mirrored entities and every rate to be measured",
        |a| {
            if up_link.is_none() {
                let mut q = a[0].world_mut().query::<&NoodlesLink>();
                up_link = q.iter(a[0].world()).next().map(|l| l.id);
            }
            let own = up_link.map(|id| link_path(id, "bytes_out"));
            let paths = [
                (0, Some(diag::BYTES_OUT)),
                (0, Some(diag::MESSAGES_OUT)),
                (1, Some(diag::BYTES_IN)),
                (0, own),
            ];
            for (i, (app, path)) in paths.into_iter().enumerate() {
                if let Some(path) = path {
                    seen[i] = seen[i].max(last(a[app], &path).unwrap_or(0.0));
                }
            }
            let shared = last(a[0], &diag::ENTITIES_SHARED).unwrap_or(0.0);
            shared >= 20.0
                && last(a[1], &diag::ENTITIES_MIRRORED) == Some(shared)
                // The Upstream counts its bytes once its transport wrote them, which can be a
                // frame after the Downstream received them.
                && seen.iter().all(|r| *r > 0.0)
        },
    );
    for app in [&up, &down] {
        assert_eq!(last(app, &diag::LINKS), Some(1.0), "one open link");
    }
    let up_link = up_link.expect("the Upstream's link");

    // One proposal and one call: each reply is measured once it arrives.
    let mut p = Proposal::new();
    let e = p.spawn();
    p.insert(e, Name::new("proposed"));
    send_proposal(down.world_mut(), link, p).expect("proposal sent");
    let echo = find_endpoint(down.world_mut(), link, "echo").expect("the echo endpoint");
    invoke(down.world_mut(), link, echo, [Any::from(1i64)]).expect("call sent");
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the proposal's and the call's latencies",
        |a| {
            last(a[1], &diag::PROPOSAL_LATENCY).is_some()
                && last(a[1], &diag::RPC_LATENCY).is_some()
        },
    );
    for path in [diag::PROPOSAL_LATENCY, diag::RPC_LATENCY] {
        let ms = last(&down, &path).unwrap();
        assert!(
            ms > 0.0 && ms < LIMIT.as_secs_f64() * 1e3,
            "{path}: {ms} ms"
        );
    }
    assert_eq!(
        last(&up, &diag::PROPOSAL_LATENCY),
        None,
        "the Upstream sent none"
    );

    // The link closes: its own diagnostics go, the totals stay and count no link.
    assert!(has(&up, &link_path(up_link, "bytes_in")));
    down.world()
        .get::<NoodlesLink>(link)
        .expect("link")
        .close("done");
    run_until(
        &mut [&mut up, &mut down],
        LIMIT,
        "the closed link's diagnostics to go",
        |a| !has(a[0], &link_path(up_link, "bytes_in")) && last(a[0], &diag::LINKS) == Some(0.0),
    );
    for (what, _) in [("bytes_out", ()), ("messages_in", ()), ("rtt", ())] {
        assert!(
            !has(&up, &link_path(up_link, what)),
            "{what} of the closed link"
        );
    }
    assert!(has(&up, &diag::BYTES_OUT), "the totals stay");
}
