//! Fan-out benchmark (issue 15, goal 1): one Upstream sharing 10,000 entities, 10 % of their
//! transforms changing every tick, with 1, 10, 50 and 100 Downstreams over loopback websockets.
//!
//! ```sh
//! cargo bench --bench fanout                      # 1, 10, 50 and 100 Downstreams (about 2 minutes)
//! FANOUT_COUNTS=1,10 cargo bench --bench fanout   # chosen counts
//! ```
//!
//! # Method
//!
//! - **Two processes.** This process runs the Upstream app on its main thread (Bevy's
//!   single-threaded executor, so its systems do not spread over the second core; the transport's
//!   tokio threads run as they always do). For each count it starts a child process (this same
//!   binary) that runs that many Downstream apps (`MinimalPlugins` + `NoodlesPlugin`, each with
//!   its own link and its own tokio runtime) on two threads, updated in turn.
//! - **The Upstream runs at 60 Hz**: every tick the "game" changes 1,000 transforms
//!   (`translation.x += 1`), then `update()` runs, then the thread sleeps until the next tick.
//! - **The figure is the Upstream process's CPU time per tick**, all threads, transport included
//!   (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` over [`MEASURED_TICKS`] ticks after
//!   [`WARMUP_TICKS`]), with the median wall time of the `update()` next to it. The baseline is
//!   the one-Downstream cost of the same run: each extra Downstream's cost is
//!   `(cpu(N) − cpu(1)) / (N − 1)`, printed as a share of `cpu(1)` (goal: at most 5 %).
//!   Loopback TCP does part of the receiver's work in the sender's system calls, so the Upstream
//!   pays some of what a real network would not charge it.
//! - **The floor**: for each count, the same bytes per tick written by this process to as many
//!   plain TCP sockets (blocking `write_all` from one thread, a child process reading), timed the
//!   same way: what the kernel charges the sender per loopback socket, which no library avoids.
//! - **Checks** (the run panics if one fails): every Downstream holds the whole world before
//!   measuring, every link is still open after it, and after the last tick every Downstream's
//!   world digest (ids and transforms, sorted by id) equals the Upstream's.
//!
//! The machine is shared (the child's Downstreams run on the same two cores): compare the rows of
//! one run, not runs.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy_noodles2::mirror::{EntityIndex, MirrorStats};
use bevy_noodles2::prelude::*;

mod common;
use common::{
    headless_app, init_logging, listen, load_average, pace, poll_until, process_cpu,
    single_threaded,
};

/// Shared entities.
const ENTITIES: usize = 10_000;
/// One entity in `PERIOD` changes per tick (10 %).
const PERIOD: usize = 10;
/// Downstream counts measured (override with `FANOUT_COUNTS=1,10`).
const COUNTS: [usize; 4] = [1, 10, 50, 100];
/// The Upstream's frame.
const TICK: Duration = Duration::from_micros(16_667);
const WARMUP_TICKS: usize = 60;
const MEASURED_TICKS: usize = 300;
/// Threads of the Downstream process.
const DOWNSTREAM_THREADS: usize = 2;
const DEADLINE: Duration = Duration::from_secs(120);

const ROLE_URL: &str = "FANOUT_DOWNSTREAMS_URL";
const ROLE_COUNT: &str = "FANOUT_DOWNSTREAMS";
const RAW_ADDR: &str = "FANOUT_RAW_ADDR";
const RAW_COUNT: &str = "FANOUT_RAW_READERS";

fn main() {
    init_logging();
    if let (Ok(addr), Ok(n)) = (std::env::var(RAW_ADDR), std::env::var(RAW_COUNT)) {
        return raw_readers(&addr, n.parse().expect("a reader count"));
    }
    match (std::env::var(ROLE_URL), std::env::var(ROLE_COUNT)) {
        (Ok(url), Ok(n)) => downstreams(&url, n.parse().expect("a Downstream count")),
        _ => orchestrate(),
    }
}

/// Stable index of an Upstream entity, to pick which ones change on a tick. Not mirrored.
#[derive(Component)]
struct Idx(u32);

fn app(name: &str) -> App {
    let mut app = headless_app(name, false);
    single_threaded(&mut app);
    app
}

/// A digest of a world: `(canonical id, transform)` of every entity, sorted by id.
fn digest(mut pairs: Vec<(u64, Transform)>) -> u64 {
    pairs.sort_by_key(|(id, _)| *id);
    let mut h = DefaultHasher::new();
    for (id, t) in pairs {
        id.hash(&mut h);
        for f in t.translation.to_array() {
            f.to_bits().hash(&mut h);
        }
        for f in t.rotation.to_array() {
            f.to_bits().hash(&mut h);
        }
        for f in t.scale.to_array() {
            f.to_bits().hash(&mut h);
        }
    }
    h.finish()
}

fn upstream_digest(app: &mut App) -> u64 {
    let world = app.world_mut();
    let mut q = world.query::<(&SharedId, &Transform)>();
    digest(q.iter(world).map(|(id, t)| (id.get(), *t)).collect())
}

fn downstream_digest(app: &mut App) -> u64 {
    let world = app.world_mut();
    let mut q = world.query::<(&Mirrored, &Transform)>();
    digest(q.iter(world).map(|(m, t)| (m.id, *t)).collect())
}

fn open_links(app: &mut App) -> usize {
    let world = app.world_mut();
    let mut q = world.query::<&NoodlesLink>();
    q.iter(world).filter(|l| l.is_open()).count()
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

// ---------------------------------------------------------------------------------------------
// The Upstream (this process)

/// One Downstream count's figures.
struct Row {
    n: usize,
    cpu_us: f64,
    update_us: f64,
    bytes_per_tick: usize,
    converged: usize,
    /// The floor: this process's CPU per tick writing the same bytes to `n` plain TCP sockets.
    raw_cpu_us: f64,
}

/// The Downstream process of one count, talking in lines over its stdin and stdout.
struct Downstreams {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Downstreams {
    fn spawn(url: &str, n: usize) -> Downstreams {
        let mut child = Command::new(std::env::current_exe().expect("this benchmark's path"))
            .env(ROLE_URL, url)
            .env(ROLE_COUNT, n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the Downstream process");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take().expect("piped stdin");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Downstreams {
            child,
            stdin,
            lines,
        }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the Downstream process");
        self.stdin.flush().expect("flush");
    }

    /// Keep the Upstream running at its frame rate (without changes) until the child says a
    /// line starting with `prefix`; returns it.
    fn wait_for(&mut self, up: &mut App, prefix: &str) -> String {
        let start = Instant::now();
        let mut next = Instant::now();
        loop {
            up.update();
            while let Ok(line) = self.lines.try_recv() {
                if line.starts_with(prefix) {
                    return line;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the Downstream process exited ({status}) before `{prefix}`");
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no `{prefix}` from the Downstreams"
            );
            pace(&mut next, TICK);
        }
    }
}

impl Drop for Downstreams {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn orchestrate() {
    let counts: Vec<usize> = match std::env::var("FANOUT_COUNTS") {
        Ok(s) => s
            .split(',')
            .map(|c| c.trim().parse().expect("FANOUT_COUNTS: numbers"))
            .collect(),
        Err(_) => COUNTS.to_vec(),
    };
    let load_before = load_average();
    let mut up = app("fanout upstream");
    let url = listen(&mut up, DEADLINE);
    up.world_mut().spawn_batch(
        (0..ENTITIES as u32).map(|i| (Idx(i), Transform::from_xyz(i as f32, 0.0, 0.0), Shared)),
    );
    up.update();

    let mut tick = 0usize;
    let mut rows = Vec::new();
    for &n in &counts {
        eprintln!("{n} Downstreams: joining ...");
        let mut ds = Downstreams::spawn(&url, n);
        ds.wait_for(&mut up, "ready");
        assert_eq!(open_links(&mut up), n, "every Downstream linked");

        eprintln!("{n} Downstreams: measuring {MEASURED_TICKS} ticks ...");
        let mut cpu_start = process_cpu();
        let mut updates = Vec::with_capacity(MEASURED_TICKS);
        let mut next = Instant::now();
        for t in 0..WARMUP_TICKS + MEASURED_TICKS {
            if t == WARMUP_TICKS {
                cpu_start = process_cpu();
            }
            mutate(&mut up, tick);
            tick += 1;
            let start = Instant::now();
            up.update();
            if t >= WARMUP_TICKS {
                updates.push(start.elapsed().as_secs_f64() * 1e6);
            }
            pace(&mut next, TICK);
        }
        let cpu = process_cpu() - cpu_start;
        let bytes_per_tick = up.world().resource::<MirrorStats>().last_delta_bytes;
        assert_eq!(open_links(&mut up), n, "every link is still open");

        let expected = upstream_digest(&mut up);
        ds.say(&format!("digest {expected}"));
        let line = ds.wait_for(&mut up, "converged");
        let converged: usize = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("converged COUNT");
        ds.say("exit");
        drop(ds);
        // Let the Upstream see its links close before the next count joins.
        assert!(
            poll_until(DEADLINE, || {
                up.update();
                open_links(&mut up) == 0
            }),
            "the Upstream's links never closed"
        );
        eprintln!("{n} plain TCP sockets: measuring {MEASURED_TICKS} ticks ...");
        let raw_cpu_us = raw_floor(n, bytes_per_tick);
        rows.push(Row {
            n,
            cpu_us: cpu.as_secs_f64() * 1e6 / MEASURED_TICKS as f64,
            update_us: median(&mut updates),
            bytes_per_tick,
            converged,
            raw_cpu_us,
        });
        assert_eq!(
            converged, n,
            "every Downstream converges to the Upstream's digest"
        );
    }
    print_table(&rows, &load_before);
}

/// The floor of fan-out on loopback: this process writes `bytes` to each of `n` plain TCP
/// sockets every tick (blocking `write_all`, one thread) while a child process reads and drops
/// them; returns this process's CPU time per tick. What the kernel does for loopback delivery is
/// charged here, as it is to the Upstream.
fn raw_floor(n: usize, bytes: usize) -> f64 {
    use std::io::Write as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let mut child = Command::new(std::env::current_exe().expect("this benchmark's path"))
        .env(RAW_ADDR, addr.to_string())
        .env(RAW_COUNT, n.to_string())
        .spawn()
        .expect("start the reader process");
    let mut sockets: Vec<std::net::TcpStream> = (0..n)
        .map(|_| {
            let (s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            s
        })
        .collect();
    let frame = vec![7u8; bytes.max(1)];
    let mut cpu_start = process_cpu();
    let mut next = Instant::now();
    for t in 0..WARMUP_TICKS + MEASURED_TICKS {
        if t == WARMUP_TICKS {
            cpu_start = process_cpu();
        }
        for s in &mut sockets {
            s.write_all(&frame).expect("write");
        }
        pace(&mut next, TICK);
    }
    let cpu = process_cpu() - cpu_start;
    drop(sockets);
    let _ = child.wait();
    cpu.as_secs_f64() * 1e6 / MEASURED_TICKS as f64
}

/// The reader process of [`raw_floor`]: `n` threads, each reading a socket until it closes.
fn raw_readers(addr: &str, n: usize) {
    use std::io::Read as _;
    let readers: Vec<_> = (0..n)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(s.read(&mut buf), Ok(k) if k > 0) {}
            })
        })
        .collect();
    for r in readers {
        let _ = r.join();
    }
}

/// The "game": changes the transforms of the entities whose index falls on this tick.
fn mutate(app: &mut App, tick: usize) {
    let phase = (tick % PERIOD) as u32;
    let world = app.world_mut();
    let mut q = world.query::<(&Idx, &mut Transform)>();
    for (idx, mut t) in q.iter_mut(world) {
        if idx.0 % PERIOD as u32 == phase {
            t.translation.x += 1.0;
        }
    }
}

fn print_table(rows: &[Row], load_before: &str) {
    let base = rows.iter().find(|r| r.n == 1).map(|r| r.cpu_us);
    println!();
    println!(
        "fan-out: {ENTITIES} shared entities, {} % changing per tick, {MEASURED_TICKS} ticks at 60 Hz per row",
        100 / PERIOD
    );
    println!(
        "{:>12} {:>16} {:>18} {:>22} {:>14} {:>11} {:>20} {:>18}",
        "Downstreams",
        "CPU µs / tick",
        "update µs (med.)",
        "per extra Downstream",
        "tick bytes",
        "converged",
        "raw TCP µs / tick",
        "raw per extra"
    );
    let raw_base = rows.iter().find(|r| r.n == 1).map(|r| r.raw_cpu_us);
    for r in rows {
        let per_extra = |cpu: f64, base: Option<f64>| match base {
            Some(b) if r.n > 1 => Some((cpu - b) / (r.n - 1) as f64),
            _ => None,
        };
        let extra = match (per_extra(r.cpu_us, base), base) {
            (Some(per), Some(b)) => format!("{per:.1} µs = {:.1} %", per / b * 100.0),
            _ => "(baseline)".into(),
        };
        let raw_extra = per_extra(r.raw_cpu_us, raw_base)
            .map_or_else(|| "(baseline)".into(), |p| format!("{p:.1} µs"));
        println!(
            "{:>12} {:>16.1} {:>18.1} {:>22} {:>14} {:>8}/{} {:>20.1} {:>18}",
            r.n,
            r.cpu_us,
            r.update_us,
            extra,
            r.bytes_per_tick,
            r.converged,
            r.n,
            r.raw_cpu_us,
            raw_extra
        );
    }
    println!(
        "(goal: each extra Downstream adds at most 5 % of the one-Downstream CPU time; load average before {load_before}, after {})",
        load_average()
    );
}

// ---------------------------------------------------------------------------------------------
// The Downstreams (the child process)

/// What the child's main thread tells its worker threads.
const RUN: u8 = 0;
const CONVERGE: u8 = 1;
const EXIT: u8 = 2;

struct Control {
    phase: AtomicU8,
    expected: AtomicU64,
    ready: AtomicUsize,
    converged: AtomicUsize,
}

fn downstreams(url: &str, n: usize) {
    let control = Arc::new(Control {
        phase: AtomicU8::new(RUN),
        expected: AtomicU64::new(0),
        ready: AtomicUsize::new(0),
        converged: AtomicUsize::new(0),
    });
    let workers: Vec<_> = (0..DOWNSTREAM_THREADS)
        .map(|w| {
            let count = n / DOWNSTREAM_THREADS + usize::from(w < n % DOWNSTREAM_THREADS);
            let (url, control) = (url.to_string(), control.clone());
            std::thread::spawn(move || worker(&url, count, &control))
        })
        .collect();
    assert!(
        poll_until(DEADLINE, || control.ready.load(Ordering::Relaxed) == n),
        "the Downstreams never held the world"
    );
    println!("ready");
    let mut lines = std::io::stdin().lock().lines();
    while let Some(Ok(line)) = lines.next() {
        if let Some(d) = line.strip_prefix("digest ") {
            control
                .expected
                .store(d.parse().expect("a digest"), Ordering::Relaxed);
            control.phase.store(CONVERGE, Ordering::Relaxed);
            // Until every Downstream holds the Upstream's world, or a deadline (the count
            // printed then tells the Upstream how many did).
            poll_until(DEADLINE, || control.converged.load(Ordering::Relaxed) == n);
            println!("converged {}", control.converged.load(Ordering::Relaxed));
        } else if line == "exit" {
            break;
        }
    }
    control.phase.store(EXIT, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
}

/// Runs `count` Downstream apps, each updated in turn, about 60 times a second.
fn worker(url: &str, count: usize, control: &Control) {
    let mut apps: Vec<(App, bool, bool)> = (0..count)
        .map(|i| {
            let mut a = app(&format!("fanout downstream {i}"));
            a.world_mut().spawn(NoodlesConnect::new(url));
            (a, false, false)
        })
        .collect();
    let mut next = Instant::now();
    let mut round = 0u64;
    loop {
        let phase = control.phase.load(Ordering::Relaxed);
        if phase == EXIT {
            return;
        }
        for (app, ready, converged) in &mut apps {
            app.update();
            if !*ready && app.world().resource::<EntityIndex>().mirrored_total() >= ENTITIES {
                *ready = true;
                control.ready.fetch_add(1, Ordering::Relaxed);
            }
            // Digests every few rounds (a sort of 10,000 transforms each).
            if phase == CONVERGE
                && !*converged
                && round.is_multiple_of(8)
                && downstream_digest(app) == control.expected.load(Ordering::Relaxed)
            {
                *converged = true;
                control.converged.fetch_add(1, Ordering::Relaxed);
            }
        }
        round += 1;
        pace(&mut next, TICK);
    }
}
