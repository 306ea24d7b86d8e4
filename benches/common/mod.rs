//! Helpers shared by the benchmarks (a module of each, not a benchmark of its own).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use bevy::ecs::schedule::SingleThreadedExecutor;
use bevy::prelude::*;
use bevy_noodles2::prelude::*;
use serde::{Deserialize, Serialize};

/// Logs to stderr, at `warn` unless `RUST_LOG` says otherwise (stdout carries the figures).
pub fn init_logging() {
    let _ = bevy::log::tracing_subscriber::fmt()
        .with_env_filter(
            bevy::log::tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// A headless app (`MinimalPlugins`) with `NoodlesPlugin`, built and ready to `update()`; with
/// `assets`, Bevy's mesh and image collections too (and materials with the `render` feature),
/// so that assets are mirrored.
pub fn headless_app(name: &str, assets: bool) -> App {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins);
    if assets {
        app.add_plugins(AssetPlugin::default())
            .init_asset::<Mesh>()
            .init_asset::<Image>();
        #[cfg(feature = "render")]
        app.init_asset::<StandardMaterial>();
    }
    app.add_plugins(NoodlesPlugin {
        session_name: name.into(),
        ..default()
    });
    app.finish();
    app.cleanup();
    app
}

/// Every schedule of `app` runs on the calling thread, one system after another (so a section's
/// time is its systems' work, not the scheduling of others on the second core).
pub fn single_threaded(app: &mut App) {
    let mut schedules = app.world_mut().resource_mut::<Schedules>();
    for (_, schedule) in schedules.iter_mut() {
        schedule.set_executor(SingleThreadedExecutor::new());
    }
}

/// Spawns a listener on a free loopback port and updates `app` until it is bound (or panics
/// after `limit`); returns its `ws://` url.
pub fn listen(app: &mut App, limit: Duration) -> String {
    let e = app
        .world_mut()
        .spawn(NoodlesListener::new("ws://127.0.0.1:0"))
        .id();
    let start = Instant::now();
    loop {
        app.update();
        let l = app.world().get::<NoodlesListener>(e).expect("listener");
        if let Some(url) = l.url() {
            return url;
        }
        assert!(l.error.is_none(), "listen failed: {:?}", l.error);
        assert!(start.elapsed() < limit, "the listener never bound");
        std::thread::yield_now();
    }
}

/// A frame loop's wait: sleeps until `next` + `frame` (the next frame boundary), without catching
/// up on frames missed by a slow frame.
pub fn pace(next: &mut Instant, frame: Duration) {
    *next += frame;
    match next.checked_duration_since(Instant::now()) {
        Some(wait) => std::thread::sleep(wait),
        None => *next = Instant::now(),
    }
}

/// Polls `cond` (every millisecond: it watches other threads or processes) until it holds or
/// `limit` passes; returns whether it held.
pub fn poll_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// CPU time of this process so far, every thread.
pub fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time of the calling thread so far.
pub fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(r, 0, "clock_gettime({clock})");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `field` of `/proc/self/status` in kB (`VmRSS`, `VmHWM`); NaN where unknown.
pub fn status_kb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(f64::NAN)
}

/// `Transform` as postcard writes it with Bevy's `serialize` feature: ten `f32`s, 40 bytes. The
/// replicon side of the benchmarks replicates `Transform` through it (`replicate_as`), which
/// avoids enabling Bevy's `serialize` feature for every test build of the crate.
#[derive(Serialize, Deserialize)]
pub struct TransformWire([f32; 3], [f32; 4], [f32; 3]);

impl From<Transform> for TransformWire {
    fn from(t: Transform) -> Self {
        TransformWire(
            t.translation.to_array(),
            t.rotation.to_array(),
            t.scale.to_array(),
        )
    }
}

impl From<TransformWire> for Transform {
    fn from(w: TransformWire) -> Self {
        Transform {
            translation: Vec3::from_array(w.0),
            rotation: Quat::from_array(w.1),
            scale: Vec3::from_array(w.2),
        }
    }
}

/// A bevy_replicon app (`MinimalPlugins`, its server and client plugins sending in `PostUpdate`,
/// its example backend) replicating `Transform` through [`TransformWire`], not built yet.
pub fn replicon_app() -> App {
    use bevy::state::app::StatesPlugin;
    use bevy_replicon::prelude::*;
    use bevy_replicon_example_backend::RepliconExampleBackendPlugins;
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        StatesPlugin,
        RepliconPlugins.set(ServerPlugin::new(PostUpdate)),
        RepliconExampleBackendPlugins,
    ))
    .replicate_as::<Transform, TransformWire>();
    app
}

/// The first three fields of `/proc/loadavg` (other work on the machine skews every figure).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A value at quantile `q` (0 to 1) of sorted `samples`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
