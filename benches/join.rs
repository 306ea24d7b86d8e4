//! Joining a heavy world (issue 15, goal 3): a Downstream joins an Upstream sharing 10,000
//! entities that use 200 meshes (about 100 MB of buffers, the large ones out of band) and 200
//! materials with their textures; the time until every asset is imported, against a raw
//! tokio-tungstenite loopback transfer of the same bytes, and the Upstream's frame times while it
//! serves the join.
//!
//! ```sh
//! cargo bench --bench join     # about a minute
//! JOIN_BENCH_TRACE=1 cargo bench --bench join   # and a line per Downstream frame: what arrived
//! JOIN_BENCH_SLICES=10000:1048576 cargo bench --bench join   # other join slices (entities:bytes)
//! ```
//!
//! # Method
//!
//! - **Two processes, 60 Hz each.** The Upstream (`MinimalPlugins`, Bevy's mesh, image and
//!   material assets, `NoodlesPlugin`) runs in this process; it builds the world, waits until
//!   everything is exported, then starts the Downstream (the same plugins) in a child process
//!   (this same binary), which connects. Each app has Bevy's task pools to itself, as a viewer
//!   and a host would; they share the machine's two cores.
//! - **The world**: 10 meshes of 5 MiB and 190 of 256 KiB (positions and normals; every mesh's
//!   buffer out of band, above the default 64 KiB threshold), 200 materials each with its own
//!   64×64 texture (inline),
//!   10,000 shared entities each using one mesh and one material.
//! - **Joined** is the first Downstream frame in which every mirrored entity has its mesh and its
//!   material, every material its texture, and nothing waits (`AssetStats::pending`,
//!   `decoding`, `OobProgress::assets_pending` all zero).
//! - **The baseline**: the bytes the Downstream received (its link's `bytes_in` plus the
//!   out-of-band bytes) sent by a raw tokio-tungstenite server to a client on loopback in 1 MiB
//!   messages, timed from the client's request to the last byte, in the same run. Goal: the join
//!   within 1.5 × that.
//! - **CPU time** of both processes from the Downstream's connection to joined (the
//!   Downstream's own, and this process's, whose main thread waits meanwhile), against that of
//!   the raw transfer's best run (both ends, in this process): what the join costs beyond moving
//!   the bytes.
//! - **The Upstream's frames** while serving the join (from the Downstream's connection to
//!   joined): median and longest `update()`, wall clock (the goal: none over 2 × the median) and
//!   CPU time of the Upstream's thread (it runs its systems on that one thread, so this is what
//!   the frame itself cost, without the preemption by the Downstream's process that the wall
//!   clock of a 2-core machine includes). The median CPU time of the idle frames before the
//!   join is printed too: the frame the Upstream keeps when nobody joins.
//! - **Slices**: the defaults of `MirrorConfig::join_entities_per_frame` and
//!   `join_asset_bytes_per_frame`, or `JOIN_BENCH_SLICES=ENTITIES:BYTES` (`max` for either: all
//!   in one frame), to see what larger slices trade: a shorter join against longer frames.
//!
//! The machine is shared: compare the rows of one run.

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::asset::RenderAssetUsages;
use bevy::image::Image;
use bevy::mesh::PrimitiveTopology;
use bevy::prelude::*;
use bevy_noodles2::assets::{AssetStats, OobProgress, OobServer};
use bevy_noodles2::prelude::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use wgpu_types::{Extent3d, TextureDimension, TextureFormat};

mod common;
use common::{
    headless_app, init_logging, load_average, pace, process_cpu, quantile, single_threaded,
    thread_cpu,
};

const ENTITIES: usize = 10_000;
const LARGE_MESHES: usize = 10;
const LARGE_MESH_BYTES: usize = 5 << 20;
const SMALL_MESHES: usize = 190;
const SMALL_MESH_BYTES: usize = 256 << 10;
const MATERIALS: usize = 200;
const TEXTURE_SIDE: u32 = 64;
const FRAME: Duration = Duration::from_micros(16_667);
const DEADLINE: Duration = Duration::from_secs(300);

/// Set in the child process: the Upstream's url (the child plays the Downstream).
const ROLE_URL: &str = "JOIN_BENCH_URL";

fn main() {
    init_logging();
    if let Ok(url) = std::env::var(ROLE_URL) {
        let (join, bytes, cpu) = downstream(&url);
        println!(
            "joined {} {bytes} {}",
            join.as_secs_f64(),
            cpu.as_secs_f64()
        );
        return;
    }
    let load_before = load_average();

    // The Upstream on its own thread: builds, exports, then reports its url; records its frame
    // times once told the Downstream connects, until told it joined.
    let (url_tx, url_rx) = channel::<String>();
    let serving = Arc::new(Mutex::new(None::<Vec<(f64, f64)>>));
    let idle = Arc::new(Mutex::new(Vec::<f64>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up = {
        let (serving, idle, stop) = (serving.clone(), idle.clone(), stop.clone());
        std::thread::spawn(move || upstream(&url_tx, &serving, &idle, &stop))
    };
    eprintln!("building and exporting the world ...");
    let url = url_rx
        .recv_timeout(DEADLINE)
        .expect("the Upstream's url once exported");

    eprintln!("joining ...");
    *serving.lock().unwrap() = Some(Vec::new());
    let up_cpu = process_cpu();
    let (join, bytes, down_cpu) = join_from_child(&url);
    // This process's main thread waits for the child meanwhile: what it spent is the
    // Upstream's (its app thread and its transport's).
    let up_cpu = process_cpu() - up_cpu;
    let frames = serving.lock().unwrap().take().unwrap_or_default();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    up.join().expect("the Upstream thread");

    eprintln!("raw baseline ({bytes} bytes) ...");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    // Best of three, with the CPU time (both ends, this process) of that run.
    let (raw, raw_cpu) = (0..3)
        .map(|_| {
            let cpu = process_cpu();
            let took = rt.block_on(raw_websocket(bytes));
            (took, process_cpu() - cpu)
        })
        .min()
        .unwrap();

    if std::env::var_os("JOIN_BENCH_TRACE").is_some() {
        let shown: Vec<String> = frames
            .iter()
            .map(|(wall, cpu)| format!("{wall:.1}/{cpu:.1}"))
            .collect();
        eprintln!(
            "Upstream frames while serving (wall/CPU ms): {}",
            shown.join(" ")
        );
    }
    let sorted = |f: fn(&(f64, f64)) -> f64| {
        let mut v: Vec<f64> = frames.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (walls, cpus) = (sorted(|f| f.0), sorted(|f| f.1));
    let (median, longest) = (
        quantile(&walls, 0.5),
        walls.last().copied().unwrap_or(f64::NAN),
    );
    let (cpu_median, cpu_longest) = (
        quantile(&cpus, 0.5),
        cpus.last().copied().unwrap_or(f64::NAN),
    );
    let idle_median = {
        let mut v = idle.lock().unwrap().clone();
        v.sort_by(f64::total_cmp);
        quantile(&v, 0.5)
    };
    let (entities, bytes_per_frame) = slices();
    println!();
    println!(
        "joining a world of {ENTITIES} entities, {} meshes ({LARGE_MESHES} of {} MiB), {MATERIALS} materials with {MATERIALS} textures",
        LARGE_MESHES + SMALL_MESHES,
        LARGE_MESH_BYTES >> 20
    );
    println!(
        "join slices: {} entities and {} bytes of asset bodies a frame",
        shown_limit(entities),
        shown_limit(bytes_per_frame)
    );
    println!("{:<58} {:>10} {:>10}", "case", "seconds", "x raw");
    println!(
        "{:<58} {:>10.3} {:>10.2}",
        format!("raw tokio-tungstenite, {bytes} bytes in 1 MiB messages"),
        raw.as_secs_f64(),
        1.0
    );
    println!(
        "{:<58} {:>10.3} {:>10.2}",
        "bevy_noodles2: connect to every asset imported",
        join.as_secs_f64(),
        join.as_secs_f64() / raw.as_secs_f64()
    );
    let cores = |cpu: Duration, wall: Duration| cpu.as_secs_f64() / wall.as_secs_f64();
    println!(
        "CPU time: the join {:.3} s (Downstream {:.3}, Upstream {:.3}) = {:.2} cores busy on average; the raw transfer {:.3} s (both ends) = {:.2} cores; the join spent {:.1} × the raw transfer's CPU time",
        (down_cpu + up_cpu).as_secs_f64(),
        down_cpu.as_secs_f64(),
        up_cpu.as_secs_f64(),
        cores(down_cpu + up_cpu, join),
        raw_cpu.as_secs_f64(),
        cores(raw_cpu, raw),
        (down_cpu + up_cpu).as_secs_f64() / raw_cpu.as_secs_f64()
    );
    println!(
        "Upstream frames while serving the join: {} frames, median {median:.2} ms, longest {longest:.2} ms = {:.2} × the median (goal ≤ 2)",
        frames.len(),
        longest / median
    );
    println!(
        "  the same frames' CPU time (the Upstream runs its systems on one thread; without the preemption by the Downstream a 2-core machine adds): median {cpu_median:.2} ms, longest {cpu_longest:.2} ms = {:.2} ×",
        cpu_longest / cpu_median
    );
    println!(
        "  idle Upstream frames before the join, CPU time: median {idle_median:.2} ms (the longest serving frame = {:.2} × that)",
        cpu_longest / idle_median
    );
    println!(
        "(goal: the join within 1.5 × the raw transfer; load average before {load_before}, after {})",
        load_average()
    );
}

/// A mesh of about `bytes` bytes of positions and normals (24 bytes a vertex), distinct per `seed`.
fn mesh(bytes: usize, seed: usize) -> Mesh {
    let n = bytes / 24 / 3 * 3;
    let positions: Vec<[f32; 3]> = (0..n)
        .map(|i| [i as f32 * 0.001, seed as f32, (i % 97) as f32 * 0.01])
        .collect();
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
    .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0f32, 1.0, 0.0]; n])
}

fn texture(seed: usize) -> Image {
    let side = TEXTURE_SIDE;
    let data = (0..side * side)
        .flat_map(|i| {
            [
                (i as usize * 7 + seed) as u8,
                seed as u8,
                (i / side) as u8,
                255,
            ]
        })
        .collect();
    Image::new(
        Extent3d {
            width: side,
            height: side,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::default(),
    )
}

/// CPU time of the calling thread so far, in ms.
fn thread_cpu_ms() -> f64 {
    thread_cpu().as_secs_f64() * 1e3
}

/// The join slices: `JOIN_BENCH_SLICES=ENTITIES:BYTES`, or the defaults.
fn slices() -> (usize, usize) {
    let defaults = MirrorConfig::default();
    let Ok(spec) = std::env::var("JOIN_BENCH_SLICES") else {
        return (
            defaults.join_entities_per_frame,
            defaults.join_asset_bytes_per_frame,
        );
    };
    let parse = |s: &str| match s {
        "max" => usize::MAX,
        n => n
            .parse()
            .unwrap_or_else(|_| panic!("JOIN_BENCH_SLICES: {n:?} is not a number or `max`")),
    };
    let (e, b) = spec
        .split_once(':')
        .expect("JOIN_BENCH_SLICES=ENTITIES:BYTES");
    (parse(e), parse(b))
}

fn shown_limit(n: usize) -> String {
    if n == usize::MAX {
        "all".into()
    } else {
        n.to_string()
    }
}

fn upstream(
    url: &std::sync::mpsc::Sender<String>,
    serving: &Mutex<Option<Vec<(f64, f64)>>>,
    idle: &Mutex<Vec<f64>>,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut app = headless_app("join bench upstream", true);
    let (entities, bytes) = slices();
    {
        let mut config = app.world_mut().resource_mut::<MirrorConfig>();
        config.join_entities_per_frame = entities;
        config.join_asset_bytes_per_frame = bytes;
    }
    // Every system on this thread, so its CPU time is the whole frame's work.
    single_threaded(&mut app);
    let world = app.world_mut();
    let meshes: Vec<Handle<Mesh>> = {
        let mut assets = world.resource_mut::<Assets<Mesh>>();
        (0..LARGE_MESHES + SMALL_MESHES)
            .map(|i| {
                let bytes = if i < LARGE_MESHES {
                    LARGE_MESH_BYTES
                } else {
                    SMALL_MESH_BYTES
                };
                assets.add(mesh(bytes, i))
            })
            .collect()
    };
    let images: Vec<Handle<Image>> = {
        let mut assets = world.resource_mut::<Assets<Image>>();
        (0..MATERIALS).map(|i| assets.add(texture(i))).collect()
    };
    let materials: Vec<Handle<StandardMaterial>> = {
        let mut assets = world.resource_mut::<Assets<StandardMaterial>>();
        images
            .iter()
            .map(|image| {
                assets.add(StandardMaterial {
                    base_color_texture: Some(image.clone()),
                    ..default()
                })
            })
            .collect()
    };
    world.spawn_batch((0..ENTITIES).map(|i| {
        (
            Mesh3d(meshes[i % meshes.len()].clone()),
            MeshMaterial3d(materials[i % materials.len()].clone()),
            Transform::from_xyz(i as f32, 0.0, 0.0),
            Shared,
        )
    }));
    let listener = world.spawn(NoodlesListener::new("ws://127.0.0.1:0")).id();

    // Exported: the meshes' buffers are served out of band, and a few more frames let the
    // images' encodings (off the main thread) finish.
    let start = Instant::now();
    let mut settled = 0;
    let mut announced = false;
    let mut next = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let (frame, cpu) = (Instant::now(), thread_cpu_ms());
        app.update();
        let took = frame.elapsed().as_secs_f64() * 1e3;
        let cpu = thread_cpu_ms() - cpu;
        if let Some(frames) = serving.lock().unwrap().as_mut() {
            frames.push((took, cpu));
        } else if settled > 0 || announced {
            // Exported and idle: the frame the Upstream keeps when nobody joins.
            idle.lock().unwrap().push(cpu);
        }
        if !announced {
            let world = app.world();
            // Every mesh buffer above the threshold is served out of band.
            let (served, out_of_band) = world.get_resource::<OobServer>().map_or((0, 0), |s| {
                let above = |bytes: usize| bytes / 24 / 3 * 3 * 24 > s.threshold;
                let oob = usize::from(above(LARGE_MESH_BYTES)) * LARGE_MESHES
                    + usize::from(above(SMALL_MESH_BYTES)) * SMALL_MESHES;
                (s.served(), oob)
            });
            let exporting = world
                .get_resource::<bevy_noodles2::assets::AssetExport>()
                .is_some_and(|e| e.encoding() > 0);
            settled = if served >= out_of_band && !exporting {
                settled + 1
            } else {
                0
            };
            if settled >= 30
                && let Some(u) = world.get::<NoodlesListener>(listener).and_then(|l| l.url())
            {
                let _ = url.send(u);
                announced = true;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the Upstream never finished exporting"
            );
        }
        pace(&mut next, FRAME);
    }
}

/// Runs the Downstream in a child process (this binary, with [`ROLE_URL`]); returns what it
/// reports.
fn join_from_child(url: &str) -> (Duration, usize, Duration) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("this benchmark"))
        .env(ROLE_URL, url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the Downstream process");
    let stdout = child.stdout.take().expect("its stdout");
    let report = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("joined ").map(str::to_owned));
    let status = child.wait().expect("the Downstream process");
    let report = report.unwrap_or_else(|| panic!("the Downstream process ended ({status})"));
    let fields: Vec<&str> = report.split(' ').collect();
    let [secs, bytes, cpu] = fields[..] else {
        panic!("the Downstream reported {report:?}, not seconds, bytes and CPU seconds");
    };
    let duration = |s: &str| Duration::from_secs_f64(s.parse().expect("seconds"));
    (duration(secs), bytes.parse().expect("bytes"), duration(cpu))
}

/// Connects and runs at 60 Hz until the world is joined; returns the time it took, the bytes
/// received (link and out of band) and the CPU time this process spent meanwhile.
fn downstream(url: &str) -> (Duration, usize, Duration) {
    let mut app = headless_app("join bench downstream", true);
    let start = Instant::now();
    let cpu = process_cpu();
    let link = app.world_mut().spawn(NoodlesConnect::new(url)).id();
    let mut next = Instant::now();
    let trace = std::env::var_os("JOIN_BENCH_TRACE").is_some();
    loop {
        let frame = Instant::now();
        app.update();
        if trace {
            trace_frame(&app, link, start, frame);
        }
        if joined(&mut app) {
            let took = start.elapsed();
            let world = app.world();
            let link_bytes = world
                .get::<NoodlesLink>(link)
                .map_or(0, |l| l.stats.bytes_in);
            let oob = world.resource::<OobProgress>().bytes_done;
            return (took, (link_bytes + oob) as usize, process_cpu() - cpu);
        }
        assert!(start.elapsed() < DEADLINE, "the world was never joined");
        pace(&mut next, FRAME);
    }
}

/// One line per Downstream frame (`JOIN_BENCH_TRACE=1`): what has arrived so far.
fn trace_frame(app: &App, link: Entity, start: Instant, frame: Instant) {
    let world = app.world();
    let stats = world.resource::<AssetStats>();
    let oob = world.resource::<OobProgress>();
    let bytes_in = world
        .get::<NoodlesLink>(link)
        .map_or(0, |l| l.stats.bytes_in);
    let mirrored = world
        .try_query_filtered::<(), With<Mirrored>>()
        .map_or(0, |mut q| q.iter(world).count());
    eprintln!(
        "{:>7.1} ms (frame {:>5.1} ms): {bytes_in:>9} B in, {mirrored:>5} entities, {:>3} imported, {:>3} waiting, {:>2} decoding, OOB {}/{} done, {} B",
        start.elapsed().as_secs_f64() * 1e3,
        frame.elapsed().as_secs_f64() * 1e3,
        stats.imported,
        stats.pending,
        stats.decoding,
        oob.assets_done,
        oob.assets_done + oob.assets_pending,
        oob.bytes_done,
    );
}

/// Every mirrored entity has its mesh and material, every material its texture, nothing waits.
fn joined(app: &mut App) -> bool {
    let world = app.world_mut();
    let stats = world.resource::<AssetStats>();
    let oob = world.resource::<OobProgress>();
    assert_eq!(stats.refused, 0, "refused: {:?}", stats.last_refusal);
    assert_eq!(oob.failed, 0, "failed: {:?}", oob.last_failure);
    if stats.pending > 0 || stats.decoding > 0 || oob.assets_pending > 0 {
        return false;
    }
    let mut q =
        world.query_filtered::<(&Mesh3d, &MeshMaterial3d<StandardMaterial>), With<Mirrored>>();
    let used: Vec<(AssetId<Mesh>, AssetId<StandardMaterial>)> = q
        .iter(world)
        .map(|(m, mat)| (m.0.id(), mat.0.id()))
        .collect();
    if used.len() < ENTITIES {
        return false;
    }
    let (meshes, materials, images) = (
        world.resource::<Assets<Mesh>>(),
        world.resource::<Assets<StandardMaterial>>(),
        world.resource::<Assets<Image>>(),
    );
    used.iter().all(|(m, mat)| {
        meshes.contains(*m)
            && materials.get(*mat).is_some_and(|mat| {
                mat.base_color_texture
                    .as_ref()
                    .is_some_and(|t| images.contains(t.id()))
            })
    })
}

/// `bytes` bytes in 1 MiB binary messages from a tokio-tungstenite server to a client on loopback.
async fn raw_websocket(bytes: usize) -> Duration {
    const CHUNK: usize = 1 << 20;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let payload = bytes::Bytes::from(vec![7u8; CHUNK]);
    let server = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
        let _ = ws.next().await;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            ws.send(Message::Binary(payload.slice(..n))).await.unwrap();
            left -= n;
        }
        let _ = ws.next().await;
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
        .await
        .unwrap();
    let start = Instant::now();
    ws.send(Message::Binary(bytes::Bytes::from_static(b"go")))
        .await
        .unwrap();
    let mut got = 0;
    while got < bytes {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => got += b.len(),
            Some(Ok(_)) => {}
            other => panic!("raw websocket: {other:?}"),
        }
    }
    let t = start.elapsed();
    let _ = ws.close(None).await;
    let _ = server.await;
    t
}
