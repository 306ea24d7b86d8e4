//! Out-of-band throughput (issue 15, goal 4): a 256 MiB buffer (a point-cloud mesh's
//! positions) over the OOB channel while a shared entity's transform changes every frame on the
//! main link, against a raw tokio-tungstenite loopback transfer of the same bytes.
//!
//! ```sh
//! cargo bench --bench oob      # about a minute
//! ```
//!
//! # Method
//!
//! - **Baselines, in this process, first:** a raw tokio-tungstenite server sends the bytes as one
//!   binary message to a client on loopback, the way a program using the library directly would
//!   (`sink.send(Message::Binary(bytes))`), and a plain tokio TCP `write_all` of the same bytes
//!   (the floor). Each is timed from the request to the last byte received, best of three.
//! - **Ours, in two child processes** (this binary again), each with its own memory:
//!   - the Upstream (`MinimalPlugins`, Bevy's mesh and image assets, `NoodlesPlugin`) shares a
//!     mesh of 22,369,620 points (positions only: a 256 MiB buffer, served out of band) and a
//!     "ticker" entity whose `translation.x` counts its frames, at 60 Hz;
//!   - the Downstream (the same plugins) connects, runs at 60 Hz, and measures: the time from its
//!     OOB request (`OobProgress::assets_pending` rising) to the bytes' arrival
//!     (`OobProgress::bytes_done`), and on to the mesh imported as a Bevy asset; while that runs,
//!     the largest jump of the ticker between two of its frames (in Upstream frames: 1 is
//!     smooth, the goal is at most 2) and its longest frame.
//! - **Memory:** each process reports its resident set before the transfer (`VmRSS`, the
//!   Upstream's after its mesh was exported) and its peak (`VmHWM`), as multiples of the buffer.
//!   What the applications keep counts: the Upstream holds the mesh and its exported buffer, the
//!   Downstream the received buffer and the mesh made from it.
//!
//! The machine is shared: compare the rows of one run.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bevy::asset::RenderAssetUsages;
use bevy::mesh::{PrimitiveTopology, VertexAttributeValues};
use bevy::prelude::*;
use bevy_noodles2::assets::{AssetStats, OobProgress};
use bevy_noodles2::prelude::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

mod common;
use common::{headless_app, init_logging, pace, status_kb};

/// Points of the mesh: 12 bytes each, 256 MiB in all (a multiple of 3: a triangle list).
const POINTS: usize = 22_369_620;
const BUFFER_BYTES: usize = POINTS * 12;
const FRAME: Duration = Duration::from_micros(16_667);
const DEADLINE: Duration = Duration::from_secs(300);

const ROLE: &str = "OOB_BENCH_ROLE";
const URL: &str = "OOB_BENCH_URL";

fn main() {
    init_logging();
    match std::env::var(ROLE).as_deref() {
        Ok("upstream") => upstream(),
        Ok("downstream") => downstream(&std::env::var(URL).expect("the Upstream's url")),
        _ => orchestrate(),
    }
}

fn mib(kb: f64) -> f64 {
    kb / 1024.0
}

// ---------------------------------------------------------------------------------------------
// Orchestrator: baselines, then the two processes

fn orchestrate() {
    let bytes = bytes::Bytes::from(
        (0..BUFFER_BYTES)
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    eprintln!("raw baselines ...");
    let raw_ws = (0..3)
        .map(|_| rt.block_on(raw_websocket(bytes.clone())))
        .min()
        .unwrap();
    let raw_tcp = (0..3)
        .map(|_| rt.block_on(raw_tcp(bytes.clone())))
        .min()
        .unwrap();
    drop(rt);
    drop(bytes);

    eprintln!("bevy_noodles2: Upstream and Downstream processes ...");
    let mut up = Role::spawn("upstream", None);
    let url = up.expect("url ");
    up.expect("exported");
    let mut down = Role::spawn("downstream", Some(&url));
    let figures = down.expect("figures ");
    up.expect_after_signal();
    let up_figures = up.expect("memory ");

    let get = |line: &str, key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let fetch_s = get(&figures, "fetch_s");
    let import_s = get(&figures, "import_s");
    let gap = get(&figures, "max_tick_jump");
    let longest_ms = get(&figures, "longest_frame_ms");
    let median_ms = get(&figures, "median_frame_ms");
    let down_before = get(&figures, "rss_before_kb");
    let down_peak = get(&figures, "hwm_kb");
    let up_before = get(&up_figures, "rss_before_kb");
    let up_peak = get(&up_figures, "hwm_kb");
    let mb = BUFFER_BYTES as f64 / 1e6;
    let buffer_mib = BUFFER_BYTES as f64 / (1 << 20) as f64;

    println!();
    println!("out-of-band transfer of {BUFFER_BYTES} bytes ({buffer_mib:.0} MiB) on loopback");
    println!(
        "{:<52} {:>10} {:>10} {:>12}",
        "case", "seconds", "MB/s", "x raw ws"
    );
    let row = |name: &str, s: f64| {
        println!(
            "{name:<52} {s:>10.3} {:>10.0} {:>12.2}",
            mb / s,
            raw_ws.as_secs_f64() / s
        );
    };
    row(
        "raw tokio-tungstenite, one binary message",
        raw_ws.as_secs_f64(),
    );
    row("raw tokio TCP write_all (the floor)", raw_tcp.as_secs_f64());
    row("bevy_noodles2 OOB: request to bytes received", fetch_s);
    row("bevy_noodles2 OOB: request to mesh imported", import_s);
    println!(
        "main link during the transfer: largest ticker jump {gap:.0} Upstream frames (goal ≤ 2), Downstream frames median {median_ms:.1} ms, longest {longest_ms:.1} ms"
    );
    println!(
        "memory (MiB; goal: under 2 × the buffer): Upstream {:.0} before (mesh and its buffer held), peak {:.0} = +{:.2} × buffer; Downstream {:.0} before, peak {:.0} = +{:.2} × buffer (it keeps the buffer and the mesh made from it)",
        mib(up_before),
        mib(up_peak),
        mib(up_peak - up_before) / buffer_mib,
        mib(down_before),
        mib(down_peak),
        mib(down_peak - down_before) / buffer_mib,
    );
    println!(
        "(ratio x raw ws = raw websocket time / this row's time: above 1 is faster; goal ≥ 0.8 for the bytes)"
    );
}

/// A child process playing one role; talks in lines on its stdout.
struct Role {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Role {
    fn spawn(role: &str, url: Option<&str>) -> Role {
        let mut c = Command::new(std::env::current_exe().expect("this benchmark's path"));
        c.env(ROLE, role)
            .stdout(Stdio::piped())
            .stdin(Stdio::piped());
        if let Some(url) = url {
            c.env(URL, url);
        }
        let mut child = c.spawn().expect("start a role process");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Role { child, lines }
    }

    /// The rest of the first line starting with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
        panic!("the role process ended before `{prefix}`");
    }

    /// Tell the Upstream the transfer is over (it reports its memory then).
    fn expect_after_signal(&mut self) {
        use std::io::Write;
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "report");
            let _ = stdin.flush();
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn raw_websocket(bytes: bytes::Bytes) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
        // One request, one reply: the whole buffer as one binary message.
        let _ = ws.next().await;
        ws.send(Message::Binary(bytes)).await.unwrap();
        let _ = ws.next().await;
    });
    let config = WebSocketConfig::default()
        .max_message_size(Some(BUFFER_BYTES + 1024))
        .max_frame_size(Some(BUFFER_BYTES + 1024));
    let (mut ws, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}"), Some(config), true)
            .await
            .unwrap();
    let start = Instant::now();
    ws.send(Message::Binary(bytes::Bytes::from_static(b"give")))
        .await
        .unwrap();
    let got = loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => break b.len(),
            Some(Ok(_)) => continue,
            other => panic!("raw websocket: {other:?}"),
        }
    };
    let t = start.elapsed();
    assert_eq!(got, BUFFER_BYTES);
    let _ = ws.close(None).await;
    let _ = server.await;
    t
}

async fn raw_tcp(bytes: bytes::Bytes) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut ask = [0u8; 1];
        s.read_exact(&mut ask).await.unwrap();
        s.write_all(&bytes).await.unwrap();
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut into = vec![0u8; BUFFER_BYTES];
    let start = Instant::now();
    c.write_all(b"?").await.unwrap();
    c.read_exact(&mut into).await.unwrap();
    let t = start.elapsed();
    server.await.unwrap();
    t
}

// ---------------------------------------------------------------------------------------------
// The two roles

/// The entity whose `translation.x` counts the Upstream's frames.
#[derive(Component)]
struct Ticker;

fn upstream() {
    let mut app = headless_app("oob bench upstream", true);
    let points = Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(
        Mesh::ATTRIBUTE_POSITION,
        (0..POINTS)
            .map(|i| [i as f32, (i % 1000) as f32, 0.0])
            .collect::<Vec<[f32; 3]>>(),
    );
    let mesh = app.world_mut().resource_mut::<Assets<Mesh>>().add(points);
    app.world_mut().spawn((
        Name::new("point cloud"),
        Mesh3d(mesh),
        Transform::default(),
        Shared,
    ));
    app.world_mut()
        .spawn((Name::new("ticker"), Ticker, Transform::default(), Shared));
    let listener = app
        .world_mut()
        .spawn(NoodlesListener::new("ws://127.0.0.1:0"))
        .id();
    let start = Instant::now();
    let mut announced = (false, false);
    // Reports its memory once told the transfer is over.
    let (tx, report) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if line == "report" {
                let _ = tx.send(());
            }
        }
    });
    let mut rss_before = f64::NAN;
    let mut next = Instant::now();
    loop {
        app.update();
        let world = app.world_mut();
        let mut ticker = world.query_filtered::<&mut Transform, With<Ticker>>();
        for mut t in ticker.iter_mut(world) {
            t.translation.x += 1.0;
        }
        if !announced.0
            && let Some(url) = app
                .world()
                .get::<NoodlesListener>(listener)
                .and_then(|l| l.url())
        {
            println!("url {url}");
            announced.0 = true;
        }
        if !announced.1
            && app
                .world()
                .get_resource::<OobServer>()
                .is_some_and(|s| s.served() > 0)
        {
            rss_before = status_kb("VmRSS");
            println!("exported");
            announced.1 = true;
        }
        if report.try_recv().is_ok() {
            println!(
                "memory rss_before_kb={rss_before} hwm_kb={}",
                status_kb("VmHWM")
            );
            return;
        }
        assert!(start.elapsed() < DEADLINE, "the Upstream ran out of time");
        pace(&mut next, FRAME);
    }
}

fn downstream(url: &str) {
    let mut app = headless_app("oob bench downstream", true);
    let rss_before = status_kb("VmRSS");
    app.world_mut().spawn(NoodlesConnect::new(url));
    let start = Instant::now();
    let (mut requested, mut received, mut imported) = (None, None, None);
    let mut last_tick: Option<f32> = None;
    let (mut max_jump, mut frames, mut longest) = (0.0f32, Vec::new(), Duration::ZERO);
    let mut next = Instant::now();
    while imported.is_none() {
        let frame_start = Instant::now();
        app.update();
        let frame = frame_start.elapsed();
        let now = Instant::now();
        let world = app.world();
        let progress = world.resource::<OobProgress>();
        if requested.is_none() && progress.assets_pending > 0 {
            requested = Some(now);
        }
        if received.is_none() && progress.bytes_done >= BUFFER_BYTES as u64 {
            received = Some(now);
        }
        assert_eq!(progress.failed, 0, "{:?}", progress.last_failure);
        let world = app.world_mut();
        assert_eq!(
            world.resource::<AssetStats>().refused,
            0,
            "an asset was refused"
        );
        let tick = world
            .query_filtered::<(&Name, &Transform), With<Mirrored>>()
            .iter(world)
            .find(|(n, _)| n.as_str() == "ticker")
            .map(|(_, t)| t.translation.x);
        // Frames while the transfer runs: the ticker must keep moving.
        if requested.is_some() {
            frames.push(frame.as_secs_f64() * 1e3);
            longest = longest.max(frame);
            if let (Some(a), Some(b)) = (last_tick, tick) {
                max_jump = max_jump.max(b - a);
            }
        }
        last_tick = tick.or(last_tick);
        let handles: Vec<Handle<Mesh>> = world
            .query::<&Mesh3d>()
            .iter(world)
            .map(|m| m.0.clone())
            .collect();
        let meshes = world.resource::<Assets<Mesh>>();
        let done = handles.iter().filter_map(|h| meshes.get(h)).any(|m| {
            matches!(
                m.attribute(Mesh::ATTRIBUTE_POSITION),
                Some(VertexAttributeValues::Float32x3(p)) if p.len() == POINTS
            )
        });
        if done {
            imported = Some(now);
        }
        assert!(start.elapsed() < DEADLINE, "the mesh never arrived");
        pace(&mut next, FRAME);
    }
    let requested = requested.expect("an OOB request");
    let received = received.unwrap_or(imported.unwrap());
    frames.sort_by(f64::total_cmp);
    println!(
        "figures fetch_s={} import_s={} max_tick_jump={max_jump} median_frame_ms={} longest_frame_ms={} rss_before_kb={rss_before} hwm_kb={}",
        (received - requested).as_secs_f64(),
        (imported.unwrap() - requested).as_secs_f64(),
        frames.get(frames.len() / 2).copied().unwrap_or(f64::NAN),
        longest.as_secs_f64() * 1e3,
        status_kb("VmHWM")
    );
}
