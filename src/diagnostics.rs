//! Bevy [`Diagnostics`] for what an operator watches: [`NoodlesDiagnosticsPlugin`].
//!
//! Every frame, in `Last`, the plugin measures (the paths are the constants of this module; all
//! start with `noodles2/`):
//!
//! | path | unit | what |
//! | --- | --- | --- |
//! | [`LINKS`] | links | links in the main sequence |
//! | [`BYTES_IN`], [`BYTES_OUT`] | B/s | payload bytes of NOODLES2 frames received and sent, all links |
//! | [`MESSAGES_IN`], [`MESSAGES_OUT`] | msg/s | NOODLES2 messages received and sent, all links |
//! | [`QUEUED_BYTES`] | B | bytes waiting to be written to peers (a busy peer shows here first) |
//! | [`RTT`] | ms | the largest websocket ping round-trip time of the open links |
//! | [`ENTITIES_SHARED`], [`ENTITIES_MIRRORED`] | entities | entities this node shares; entities it mirrors from its Upstreams |
//! | [`ASSETS_EXPORTED`], [`ASSETS_IMPORTED`] | assets | assets this node serves; assets it holds from its Upstreams |
//! | [`ASSETS_WAITING`] | assets | received assets waiting for a buffer or being decoded |
//! | [`OOB_BUFFERS_PENDING`], [`OOB_BYTES_PENDING`] | buffers, B | out-of-band and URL buffers being fetched; the bytes the URL ones declare (an out-of-band buffer's size arrives with it) |
//! | [`OOB_BYTES_RECEIVED`] | B/s | bytes of fetched buffers arriving |
//! | [`PROPOSAL_LATENCY`] | ms | from sending a proposal to its reply (mean of the replies of the frame) |
//! | [`RPC_LATENCY`] | ms | from invoking an endpoint to its first reply (same) |
//!
//! and, per link (while it is open), `noodles2/link/<id>/` + `bytes_in`, `bytes_out` (B/s),
//! `messages_in`, `messages_out` (msg/s) and `rtt` (ms), where `<id>` is
//! [`NoodlesLink::id`]: see [`link_path`]. A link's diagnostics are removed when it closes, so
//! peers that come and go do not grow the store.
//!
//! Rates are measured every frame (counts since the last frame over its duration), so a
//! diagnostic's `average()` over its history (Bevy keeps 120 measurements) is the rate over the
//! last two seconds at 60 Hz. Bevy's `LogDiagnosticsPlugin` logs them all; its `filter` keeps
//! the ones wanted.
//!
//! ```no_run
//! use bevy::diagnostic::{DiagnosticsStore, LogDiagnosticsPlugin};
//! use bevy::prelude::*;
//! use bevy_noodles2::diagnostics::{BYTES_OUT, LINKS, NoodlesDiagnosticsPlugin};
//! use bevy_noodles2::prelude::*;
//!
//! App::new()
//!     .add_plugins((MinimalPlugins, bevy::log::LogPlugin::default()))
//!     .add_plugins((NoodlesPlugin::default(), NoodlesDiagnosticsPlugin))
//!     .add_plugins(LogDiagnosticsPlugin {
//!         filter: Some([LINKS, BYTES_OUT].into_iter().collect()),
//!         ..default()
//!     })
//!     .add_systems(Update, |store: Res<DiagnosticsStore>| {
//!         let out = store.get(&BYTES_OUT).and_then(|d| d.average()).unwrap_or(0.0);
//!         info!("sending {:.1} kB/s", out / 1e3);
//!     })
//!     .run();
//! ```

use std::collections::HashMap;
use std::time::Duration;

use bevy::diagnostic::{
    Diagnostic, DiagnosticPath, Diagnostics, DiagnosticsStore, RegisterDiagnostic,
};
use bevy::prelude::*;

use crate::assets::{AssetStats, OobProgress};
use crate::mirror::{AssetIdMap, EntityIndex};
use crate::net::{LinkStatus, NoodlesLink};
use crate::proposals::ProposalReply;
use crate::rpc::RpcReplyReceived;
use crate::transport::LinkStats;

/// Links in the main sequence.
pub const LINKS: DiagnosticPath = DiagnosticPath::const_new("noodles2/links");
/// Payload bytes received per second, all links.
pub const BYTES_IN: DiagnosticPath = DiagnosticPath::const_new("noodles2/bytes_in");
/// Payload bytes sent per second, all links.
pub const BYTES_OUT: DiagnosticPath = DiagnosticPath::const_new("noodles2/bytes_out");
/// NOODLES2 messages received per second, all links.
pub const MESSAGES_IN: DiagnosticPath = DiagnosticPath::const_new("noodles2/messages_in");
/// NOODLES2 messages sent per second, all links.
pub const MESSAGES_OUT: DiagnosticPath = DiagnosticPath::const_new("noodles2/messages_out");
/// Bytes waiting to be written to peers, all links.
pub const QUEUED_BYTES: DiagnosticPath = DiagnosticPath::const_new("noodles2/queued_bytes");
/// The largest round-trip time of the open links, in milliseconds.
pub const RTT: DiagnosticPath = DiagnosticPath::const_new("noodles2/rtt");
/// Entities this node shares.
pub const ENTITIES_SHARED: DiagnosticPath = DiagnosticPath::const_new("noodles2/entities_shared");
/// Entities this node mirrors from its Upstreams.
pub const ENTITIES_MIRRORED: DiagnosticPath =
    DiagnosticPath::const_new("noodles2/entities_mirrored");
/// Assets this node exports.
pub const ASSETS_EXPORTED: DiagnosticPath = DiagnosticPath::const_new("noodles2/assets_exported");
/// Assets this node holds from its Upstreams.
pub const ASSETS_IMPORTED: DiagnosticPath = DiagnosticPath::const_new("noodles2/assets_imported");
/// Received assets waiting for a buffer or being decoded.
pub const ASSETS_WAITING: DiagnosticPath = DiagnosticPath::const_new("noodles2/assets_waiting");
/// Out-of-band and URL buffers being fetched.
pub const OOB_BUFFERS_PENDING: DiagnosticPath =
    DiagnosticPath::const_new("noodles2/oob_buffers_pending");
/// Bytes the pending URL fetches declare.
pub const OOB_BYTES_PENDING: DiagnosticPath =
    DiagnosticPath::const_new("noodles2/oob_bytes_pending");
/// Bytes of fetched buffers arriving per second.
pub const OOB_BYTES_RECEIVED: DiagnosticPath =
    DiagnosticPath::const_new("noodles2/oob_bytes_received");
/// Milliseconds from sending a proposal to its reply.
pub const PROPOSAL_LATENCY: DiagnosticPath = DiagnosticPath::const_new("noodles2/proposal_latency");
/// Milliseconds from invoking an endpoint to its first reply.
pub const RPC_LATENCY: DiagnosticPath = DiagnosticPath::const_new("noodles2/rpc_latency");

/// The per-link measurements: path suffix and unit.
const PER_LINK: [(&str, &str); 5] = [
    ("bytes_in", "B/s"),
    ("bytes_out", "B/s"),
    ("messages_in", "msg/s"),
    ("messages_out", "msg/s"),
    ("rtt", "ms"),
];

/// The path of per-link diagnostic `what` (`bytes_in`, `bytes_out`, `messages_in`,
/// `messages_out` or `rtt`) of the link with transport id `link` ([`NoodlesLink::id`]).
pub fn link_path(link: crate::transport::LinkId, what: &str) -> DiagnosticPath {
    DiagnosticPath::new(format!("noodles2/link/{}/{what}", link.0))
}

/// Registers the NOODLES2 diagnostics and measures them every frame (see the
/// [module docs](self)). Not part of [`NoodlesPlugin`](crate::NoodlesPlugin): add it next to it
/// (it costs a pass over the links and a few counters a frame).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoodlesDiagnosticsPlugin;

impl Plugin for NoodlesDiagnosticsPlugin {
    fn build(&self, app: &mut App) {
        for (path, suffix) in [
            (LINKS, ""),
            (BYTES_IN, "B/s"),
            (BYTES_OUT, "B/s"),
            (MESSAGES_IN, "msg/s"),
            (MESSAGES_OUT, "msg/s"),
            (QUEUED_BYTES, "B"),
            (RTT, "ms"),
            (ENTITIES_SHARED, ""),
            (ENTITIES_MIRRORED, ""),
            (ASSETS_EXPORTED, ""),
            (ASSETS_IMPORTED, ""),
            (ASSETS_WAITING, ""),
            (OOB_BUFFERS_PENDING, ""),
            (OOB_BYTES_PENDING, "B"),
            (OOB_BYTES_RECEIVED, "B/s"),
            (PROPOSAL_LATENCY, "ms"),
            (RPC_LATENCY, "ms"),
        ] {
            app.register_diagnostic(Diagnostic::new(path).with_suffix(suffix));
        }
        // The replies whose latency is measured (registered here too, so that this plugin does
        // not depend on the order plugins are added in).
        app.add_message::<ProposalReply>()
            .add_message::<RpcReplyReceived>()
            .init_resource::<Previous>()
            .add_systems(Last, (track_links, measure).chain());
    }
}

/// What the last frame saw, to turn counters into rates.
#[derive(Resource, Default)]
struct Previous {
    /// Each open link's counters and transport id.
    links: HashMap<Entity, (crate::transport::LinkId, LinkStats)>,
    oob_bytes_done: u64,
}

/// Register the diagnostics of links that opened; remove those of links that closed or went.
fn track_links(
    links: Query<(Entity, &NoodlesLink)>,
    mut previous: ResMut<Previous>,
    mut store: ResMut<DiagnosticsStore>,
) {
    let mut gone = Vec::new();
    previous.links.retain(|e, (id, _)| {
        let open = links.get(*e).is_ok_and(|(_, l)| is_measured(l));
        if !open {
            gone.push(format!("noodles2/link/{}/", id.0));
        }
        open
    });
    if !gone.is_empty() {
        remove_diagnostics(&mut store, |p| {
            gone.iter().any(|g| p.starts_with(g.as_str()))
        });
    }
    for (e, l) in &links {
        if is_measured(l) && !previous.links.contains_key(&e) {
            for (what, suffix) in PER_LINK {
                store.add(Diagnostic::new(link_path(l.id, what)).with_suffix(suffix));
            }
            // Counted from zero: what arrived during the preamble shows in the first frame.
            previous.links.insert(e, (l.id, LinkStats::default()));
        }
    }
}

/// A link is measured while it is in the main sequence.
fn is_measured(l: &NoodlesLink) -> bool {
    matches!(l.status, LinkStatus::MainSequence)
}

/// Bevy's store has no removal: rebuild it without the paths `drop` selects (each kept
/// diagnostic moved over whole, history included).
fn remove_diagnostics(store: &mut DiagnosticsStore, drop: impl Fn(&str) -> bool) {
    let mut kept = DiagnosticsStore::default();
    for d in store.iter_mut() {
        if !drop(d.path().as_str()) {
            let empty = Diagnostic::new(d.path().clone());
            kept.add(std::mem::replace(d, empty));
        }
    }
    *store = kept;
}

/// The sources of the measurements, each present only if its feature is.
#[derive(bevy::ecs::system::SystemParam)]
struct Sources<'w, 's> {
    time: Res<'w, Time<Real>>,
    links: Query<'w, 's, (Entity, &'static NoodlesLink)>,
    index: Option<Res<'w, EntityIndex>>,
    asset_ids: Option<Res<'w, AssetIdMap>>,
    asset_stats: Option<Res<'w, AssetStats>>,
    oob: Option<Res<'w, OobProgress>>,
    proposal_replies: MessageReader<'w, 's, ProposalReply>,
    rpc_replies: MessageReader<'w, 's, RpcReplyReceived>,
}

fn measure(mut diagnostics: Diagnostics, mut src: Sources, mut previous: ResMut<Previous>) {
    let dt = src.time.delta_secs_f64();
    let rate = |now: u64, before: u64| {
        if dt > 0.0 {
            now.saturating_sub(before) as f64 / dt
        } else {
            0.0
        }
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;

    let (mut open, mut queued, mut rtt) = (0usize, 0u64, None::<Duration>);
    let (mut bytes_in, mut bytes_out, mut messages_in, mut messages_out) = (0.0, 0.0, 0.0, 0.0);
    for (e, l) in &src.links {
        let Some((id, before)) = previous.links.get_mut(&e) else {
            continue;
        };
        let now = l.stats;
        let per_link = [
            rate(now.bytes_in, before.bytes_in),
            rate(now.bytes_out, before.bytes_out),
            rate(now.messages_in, before.messages_in),
            rate(now.messages_out, before.messages_out),
        ];
        for ((what, _), value) in PER_LINK.iter().zip(per_link) {
            diagnostics.add_measurement(&link_path(*id, what), || value);
        }
        if let Some(r) = now.rtt {
            diagnostics.add_measurement(&link_path(*id, "rtt"), || ms(r));
            rtt = rtt.max(Some(r));
        }
        bytes_in += per_link[0];
        bytes_out += per_link[1];
        messages_in += per_link[2];
        messages_out += per_link[3];
        queued += now.queued_bytes;
        open += 1;
        *before = now;
    }
    diagnostics.add_measurement(&LINKS, || open as f64);
    diagnostics.add_measurement(&BYTES_IN, || bytes_in);
    diagnostics.add_measurement(&BYTES_OUT, || bytes_out);
    diagnostics.add_measurement(&MESSAGES_IN, || messages_in);
    diagnostics.add_measurement(&MESSAGES_OUT, || messages_out);
    diagnostics.add_measurement(&QUEUED_BYTES, || queued as f64);
    if let Some(r) = rtt {
        diagnostics.add_measurement(&RTT, || ms(r));
    }

    if let Some(index) = &src.index {
        diagnostics.add_measurement(&ENTITIES_SHARED, || index.shared_count() as f64);
        diagnostics.add_measurement(&ENTITIES_MIRRORED, || index.mirrored_total() as f64);
    }
    if let Some(ids) = &src.asset_ids {
        diagnostics.add_measurement(&ASSETS_EXPORTED, || ids.exported_count() as f64);
        diagnostics.add_measurement(&ASSETS_IMPORTED, || ids.imported_count() as f64);
    }
    if let Some(stats) = &src.asset_stats {
        diagnostics.add_measurement(&ASSETS_WAITING, || (stats.pending + stats.decoding) as f64);
    }
    if let Some(oob) = &src.oob {
        diagnostics.add_measurement(&OOB_BUFFERS_PENDING, || oob.assets_pending as f64);
        diagnostics.add_measurement(&OOB_BYTES_PENDING, || oob.bytes_pending as f64);
        let received = rate(oob.bytes_done, previous.oob_bytes_done);
        diagnostics.add_measurement(&OOB_BYTES_RECEIVED, || received);
        previous.oob_bytes_done = oob.bytes_done;
    }

    let mean = |it: &mut dyn Iterator<Item = Duration>| {
        let (n, sum) = it.fold((0u32, Duration::ZERO), |(n, s), d| (n + 1, s + d));
        (n > 0).then(|| ms(sum) / f64::from(n))
    };
    if let Some(m) = mean(&mut src.proposal_replies.read().filter_map(|r| r.latency)) {
        diagnostics.add_measurement(&PROPOSAL_LATENCY, || m);
    }
    if let Some(m) = mean(&mut src.rpc_replies.read().filter_map(|r| r.latency)) {
        diagnostics.add_measurement(&RPC_LATENCY, || m);
    }
}
