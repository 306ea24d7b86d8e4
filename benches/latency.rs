//! End-to-end latency (issue 15, goal 2): an Upstream and a Downstream app running freely at
//! 60 Hz over loopback, from the frame in which the Upstream's game changes a transform to the
//! frame in which the Downstream's world shows it; the same with bevy_replicon 0.44 and its
//! example backend.
//!
//! ```sh
//! cargo bench --bench latency    # 10,000 changes per library (about 40 s)
//! ```
//!
//! # Method
//!
//! - **Two threads, two free-running loops**: each app runs on a thread of its own, `update()`
//!   then sleep to its next frame boundary, as a game's frame loop would, with no coordination
//!   between the two. The Downstream's frame is 0.4 % shorter than the Upstream's 16.67 ms
//!   ([`DOWNSTREAM_FRAME`]), so the phase between the loops sweeps a whole frame several times
//!   in a run, as unsynchronized clocks do: with equal periods the figures would depend on the
//!   phase the two loops happened to start with.
//! - **Changes**: every Upstream frame, before its `update()`, the game gives each of
//!   [`ENTITIES`] entities the next value of a counter as its `translation.x` and notes the
//!   instant. A change is shown when the Downstream, right after one of its `update()`s, holds
//!   that value or a later one for the entity (a later one includes it). Its latency is that
//!   instant minus the change's.
//! - **Figures**: p50, p99 and max over [`CHANGES`] changes per library, and the goal: p99 within
//!   one Downstream frame plus 2 ms (18.7 ms) and no worse than replicon's. Half a frame on
//!   average is the wait for the Downstream's next frame; what is above a frame is delivery.
//!
//! The machine is shared: compare the rows of one run.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::ecs::query::QueryFilter;
use bevy::prelude::*;
use bevy_noodles2::prelude::*;
use bevy_replicon::prelude::*;
use bevy_replicon_example_backend::{ExampleClient, ExampleServer};

mod common;
use common::{headless_app, init_logging, listen, load_average, pace, quantile, replicon_app};

/// Entities changed every frame.
const ENTITIES: usize = 10;
/// Changes measured per library.
const CHANGES: usize = 10_000;
const FRAME: Duration = Duration::from_micros(16_667);
/// The Downstream's frame (see the method).
const DOWNSTREAM_FRAME: Duration = Duration::from_micros(16_600);
/// Frames before measuring (links open, first changes through).
const WARMUP_FRAMES: usize = 60;
const DEADLINE: Duration = Duration::from_secs(120);

fn main() {
    init_logging();
    let load_before = load_average();
    eprintln!("bevy_noodles2 ...");
    let ours = measure(Library::Noodles);
    eprintln!("bevy_replicon ...");
    let theirs = measure(Library::Replicon);

    println!();
    println!(
        "end-to-end latency over loopback, both apps free-running at 60 Hz: {CHANGES} changes each ({ENTITIES} entities changed per frame)"
    );
    println!(
        "{:<34} {:>10} {:>10} {:>10} {:>10}",
        "library", "p50 ms", "p99 ms", "max ms", "mean ms"
    );
    for (name, l) in [
        ("bevy_noodles2", &ours),
        ("bevy_replicon + example backend", &theirs),
    ] {
        println!(
            "{name:<34} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            quantile(l, 0.5),
            quantile(l, 0.99),
            l.last().copied().unwrap_or(f64::NAN),
            l.iter().sum::<f64>() / l.len() as f64
        );
    }
    let goal = DOWNSTREAM_FRAME.as_secs_f64() * 1e3 + 2.0;
    println!(
        "(goal: p99 ≤ {goal:.1} ms, one Downstream frame + 2 ms, and ≤ replicon's p99: ours {:.2} ms, {}; load average before {load_before}, after {})",
        quantile(&ours, 0.99),
        if quantile(&ours, 0.99) <= goal && quantile(&ours, 0.99) <= quantile(&theirs, 0.99) {
            "met"
        } else {
            "missed"
        },
        load_average()
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Library {
    Noodles,
    Replicon,
}

/// Instants of the changes, by value (value `k` at index `k`), written by the Upstream thread.
type Changes = Arc<Mutex<Vec<Option<Instant>>>>;

/// An Upstream entity the game changes (not mirrored).
#[derive(Component)]
struct Slot;

/// Runs both apps until [`CHANGES`] changes were shown; returns their latencies in ms, sorted.
fn measure(library: Library) -> Vec<f64> {
    let changes: Changes = Arc::new(Mutex::new(vec![None]));
    let stop = Arc::new(AtomicBool::new(false));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<String>();

    let up = {
        let (changes, stop) = (changes.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut app = match library {
                Library::Noodles => noodles_upstream(&addr_tx),
                Library::Replicon => replicon_server(&addr_tx),
            };
            let mut value = 0usize;
            let mut frame = 0usize;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                // Change only once the Downstream holds the world (the warm-up).
                if frame >= WARMUP_FRAMES {
                    let world = app.world_mut();
                    let mut q = world.query_filtered::<&mut Transform, With<Slot>>();
                    let mut changed = changes.lock().unwrap();
                    for mut t in q.iter_mut(world) {
                        value += 1;
                        t.translation.x = value as f32;
                        changed.push(Some(Instant::now()));
                    }
                }
                app.update();
                frame += 1;
                pace(&mut next, FRAME);
            }
        })
    };

    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the Upstream's address");
    let mut down = match library {
        Library::Noodles => noodles_downstream(&addr),
        Library::Replicon => replicon_client(&addr),
    };
    let mut latencies = Vec::with_capacity(CHANGES + ENTITIES);
    // Per Downstream entity: the largest value it showed.
    let mut shown: std::collections::HashMap<Entity, usize> = Default::default();
    let start = Instant::now();
    let mut next = Instant::now();
    while latencies.len() < CHANGES {
        down.update();
        let now = Instant::now();
        let values: Vec<(Entity, usize)> = match library {
            Library::Noodles => values::<With<Mirrored>>(&mut down),
            Library::Replicon => values::<With<Remote>>(&mut down),
        };
        let changed = changes.lock().unwrap();
        for (e, v) in values {
            // First sight (the initial state): nothing to time yet.
            let last = shown.entry(e).or_insert(v);
            // This entity's values are v, v − ENTITIES, ...: every one above the last shown is
            // shown now (the latest includes the earlier).
            let mut k = v;
            while k > *last && k > 0 {
                if let Some(Some(at)) = changed.get(k) {
                    latencies.push(now.saturating_duration_since(*at).as_secs_f64() * 1e3);
                }
                k = k.saturating_sub(ENTITIES);
            }
            *last = (*last).max(v);
        }
        drop(changed);
        assert!(start.elapsed() < DEADLINE, "changes stopped arriving");
        pace(&mut next, DOWNSTREAM_FRAME);
    }
    stop.store(true, Ordering::Relaxed);
    up.join().expect("the Upstream thread");
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// `(entity, translation.x as the change's value)` of the Downstream's mirrored entities.
fn values<F: QueryFilter>(app: &mut App) -> Vec<(Entity, usize)> {
    let world = app.world_mut();
    let mut q = world.query_filtered::<(Entity, &Transform), F>();
    q.iter(world)
        .map(|(e, t)| (e, t.translation.x.max(0.0) as usize))
        .collect()
}

fn spawn_slots(app: &mut App, with: impl Bundle + Clone) {
    for _ in 0..ENTITIES {
        app.world_mut()
            .spawn((Slot, Transform::default(), with.clone()));
    }
}

// ---------------------------------------------------------------------------------------------
// bevy_noodles2

fn noodles_upstream(addr: &std::sync::mpsc::Sender<String>) -> App {
    let mut app = headless_app("latency upstream", false);
    spawn_slots(&mut app, Shared);
    let _ = addr.send(listen(&mut app, DEADLINE));
    app
}

fn noodles_downstream(url: &str) -> App {
    let mut app = headless_app("latency downstream", false);
    app.world_mut().spawn(NoodlesConnect::new(url));
    app
}

// ---------------------------------------------------------------------------------------------
// bevy_replicon 0.44 + example backend

/// [`common::replicon_app`], built.
fn replicon_built() -> App {
    let mut app = replicon_app();
    app.finish();
    app.cleanup();
    app
}

fn replicon_server(addr: &std::sync::mpsc::Sender<String>) -> App {
    let mut app = replicon_built();
    spawn_slots(&mut app, Replicated);
    let server = ExampleServer::new(0).expect("bind 127.0.0.1:0");
    let port = server.local_addr().expect("server address").port();
    app.insert_resource(server);
    app.update();
    let _ = addr.send(port.to_string());
    app
}

fn replicon_client(port: &str) -> App {
    let mut app = replicon_built();
    let port: u16 = port.parse().expect("a port");
    app.insert_resource(ExampleClient::new((Ipv4Addr::LOCALHOST, port)).expect("connect"));
    app
}
