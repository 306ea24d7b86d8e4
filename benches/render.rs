//! Rendering benchmarks (issue 13), each against a baseline from the same run:
//!
//! 1. **Instances.** A Downstream renders 100,000 cubes received from an Upstream, once as one
//!    entity with `Instances` (one `InstanceSet` of 100,000) and once as 100,000 entities with a
//!    `Mesh3d` and a `MeshMaterial3d` each (the same mesh and material: what Bevy batches and
//!    instances automatically). Printed: the Downstream's frame time (median and 95th percentile
//!    over 25 frames, GPU work included), its main world's update time (`First` to `Last`), its
//!    render world's time up to the GPU wait (with a software GPU, drawing happens there too), its
//!    peak resident memory and the time until the world was ready, and the instanced case against
//!    the entity case.
//! 2. **Texture latency.** The Upstream shares a material with a 2048×2048 texture (noise, so the
//!    PNG does not shrink: 16 MB, sent out of band). Printed: the time from the frame in which the
//!    Downstream holds the texture's last byte (its out-of-band fetch completed) to the frame in
//!    which the GPU has the texture (Bevy's `GpuImage` of the material's base color texture exists
//!    in the render world), the Downstream's longest frame in that interval against its median
//!    frame (the decode runs off the main thread, so no frame should stall), and both against the
//!    time the `image` crate takes to decode the same PNG on one thread in this process.
//!
//! ```sh
//! cargo bench --bench render                        # both (a few minutes on a software renderer)
//! RENDER_BENCH=instances cargo bench --bench render # only one: instances | texture
//! RENDER_BENCH_INSTANCES=20000 cargo bench --bench render   # fewer cubes
//! ```
//!
//! # Method
//!
//! Each side is a process of its own (this binary, started again with a role), so the memory
//! figure is the Downstream's alone: the orchestrator starts an Upstream process, which listens
//! on a free loopback port and prints its URL, then a Downstream process, which connects, renders
//! offscreen (no window: Bevy's `DefaultPlugins` without winit, a camera rendering to an image of
//! 320×180, frames as fast as they come) and prints its figures. After each frame the render
//! world waits for the GPU (`RenderDevice::poll`), so a frame's time includes drawing it: on this
//! machine that is Mesa's software Vulkan on the CPU, the same for both cases. Memory is the
//! Downstream's `VmHWM` (peak resident set) from `/proc/self/status` after the measured frames.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::app::ScheduleRunnerPlugin;
use bevy::asset::RenderAssetUsages;
use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::render_asset::RenderAssets;
use bevy::render::render_resource::{PipelineCache, PollType, TextureFormat, TextureUsages};
use bevy::render::renderer::RenderDevice;
use bevy::render::texture::GpuImage;
use bevy::render::{Render, RenderApp, RenderSystems};
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use bevy_noodles2::assets::OobProgress;
use bevy_noodles2::instances::{InstanceSet, Instances};
use bevy_noodles2::prelude::*;

mod common;
use common::status_kb;

const MEASURED_FRAMES: usize = 25;
const WARMUP_FRAMES: usize = 5;
/// The offscreen target: small, so that the software rasterizer's per-pixel work does not drown
/// what differs between the cases (the per-entity and per-vertex work).
const TARGET: (u32, u32) = (320, 180);
const TEXTURE_SIDE: u32 = 2048;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--role") {
        Some(i) => {
            let role = args.get(i + 1).map(String::as_str);
            let case = args.get(i + 2).cloned().unwrap_or_default();
            match role {
                Some("upstream") => upstream(&case),
                Some("downstream") => {
                    let url = args.get(i + 3).cloned().unwrap_or_default();
                    downstream(&case, &url)
                }
                _ => panic!("unknown role {role:?}"),
            }
        }
        None => orchestrate(),
    }
}

fn instance_count() -> usize {
    std::env::var("RENDER_BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

// -------------------------------------------------------------------------------------------
// orchestrator
// -------------------------------------------------------------------------------------------

fn orchestrate() {
    let only = std::env::var("RENDER_BENCH").unwrap_or_default();
    if only.is_empty() || only == "instances" {
        let n = instance_count();
        eprintln!("render bench: {n} cubes, instanced vs one entity per cube");
        let inst = run_pair("instanced");
        let ents = run_pair("entities");
        let f = |r: &Figures, k: &str| r.get(k);
        println!();
        println!(
            "instances: {n} cubes on the Downstream (frame time includes the GPU: software Vulkan)"
        );
        println!(
            "  {:<24} {:>12} {:>12} {:>9} {:>14} {:>12} {:>8}",
            "case",
            "frame p50 ms",
            "frame p95 ms",
            "main ms",
            "render ms",
            "peak RSS MB",
            "ready s"
        );
        for (name, r) in [
            ("one entity, Instances", &inst),
            ("one entity per cube", &ents),
        ] {
            println!(
                "  {:<24} {:>12.1} {:>12.1} {:>9.2} {:>14.2} {:>12.1} {:>8.1}",
                name,
                f(r, "frame_p50_ms"),
                f(r, "frame_p95_ms"),
                f(r, "main_ms"),
                f(r, "render_cpu_ms"),
                f(r, "hwm_kb") / 1024.0,
                f(r, "ready_s")
            );
        }
        println!(
            "  instanced / entities: frame time {:.2}×, main world {:.3}×, render world {:.3}×, peak memory {:.2}×, time to ready {:.2}×",
            f(&inst, "frame_p50_ms") / f(&ents, "frame_p50_ms"),
            f(&inst, "main_ms") / f(&ents, "main_ms"),
            f(&inst, "render_cpu_ms") / f(&ents, "render_cpu_ms"),
            f(&inst, "hwm_kb") / f(&ents, "hwm_kb"),
            f(&inst, "ready_s") / f(&ents, "ready_s"),
        );
    }
    if only.is_empty() || only == "texture" {
        let png = noise_png(TEXTURE_SIDE);
        let t = Instant::now();
        let decoded = image::load_from_memory(&png).expect("decode");
        let decode_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(decoded.width(), TEXTURE_SIDE);
        let r = run_pair("texture");
        println!();
        println!(
            "texture: {s}×{s} RGBA PNG of {:.1} MB, out of band",
            png.len() as f64 / 1e6,
            s = TEXTURE_SIDE
        );
        println!(
            "  last byte received → on the GPU: {:.1} ms ({} frames); baseline: decoding the PNG on one thread here: {:.1} ms ({:.2}×)",
            r.get("latency_ms"),
            r.get("latency_frames"),
            decode_ms,
            r.get("latency_ms") / decode_ms
        );
        println!(
            "  Downstream frames meanwhile: longest {:.1} ms against a median of {:.1} ms ({:.2}×)",
            r.get("stall_ms"),
            r.get("median_ms"),
            r.get("stall_ms") / r.get("median_ms")
        );
    }
}

struct Figures(Vec<(String, f64)>);

impl Figures {
    fn get(&self, k: &str) -> f64 {
        self.0
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("the Downstream did not report {k}"))
    }
}

/// Kills a child process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_pair(case: &str) -> Figures {
    let exe = std::env::current_exe().expect("own path");
    let mut up = Killed(
        Command::new(&exe)
            .args(["--role", "upstream", case])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the Upstream"),
    );
    let mut lines = BufReader::new(up.0.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the Upstream exited before listening")
            .expect("read");
        if let Some(u) = line.strip_prefix("url ") {
            break u.to_string();
        }
    };
    let down = Command::new(&exe)
        .args(["--role", "downstream", case, &url])
        .stderr(Stdio::inherit())
        .output()
        .expect("run the Downstream");
    drop(up);
    assert!(
        down.status.success(),
        "the Downstream failed: {}",
        down.status
    );
    let out = String::from_utf8_lossy(&down.stdout);
    Figures(
        out.lines()
            .filter_map(|l| l.strip_prefix("figure "))
            .filter_map(|l| {
                let (k, v) = l.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect(),
    )
}

// -------------------------------------------------------------------------------------------
// Upstream
// -------------------------------------------------------------------------------------------

fn upstream(case: &str) {
    let mut app = App::new();
    app.add_plugins(
        MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(
            1.0 / 60.0,
        ))),
    )
    .add_plugins(AssetPlugin::default())
    .init_asset::<Mesh>()
    .init_asset::<Image>()
    .init_asset::<StandardMaterial>()
    .add_plugins(NoodlesPlugin {
        session_name: format!("render bench {case}"),
        ..default()
    });
    let case = case.to_string();
    app.add_systems(
        Startup,
        move |mut commands: Commands,
              mut meshes: ResMut<Assets<Mesh>>,
              mut materials: ResMut<Assets<StandardMaterial>>,
              mut images: ResMut<Assets<Image>>,
              mut sets: ResMut<Assets<InstanceSet>>| {
            commands.spawn(NoodlesListener::new("ws://127.0.0.1:0"));
            commands.spawn((
                DirectionalLight::default(),
                Transform::from_xyz(3.0, 8.0, 5.0).looking_at(Vec3::ZERO, Vec3::Y),
                Shared,
            ));
            let cube = meshes.add(Cuboid::new(0.1, 0.1, 0.1));
            let material = materials.add(Color::srgb(0.8, 0.5, 0.2));
            match case.as_str() {
                "instanced" => {
                    let set = sets.add(InstanceSet::from_transforms(grid(instance_count())));
                    commands.spawn((
                        Mesh3d(cube),
                        MeshMaterial3d(material),
                        Instances(set),
                        Transform::default(),
                        Shared,
                    ));
                }
                "entities" => {
                    for t in grid(instance_count()) {
                        commands.spawn((
                            Mesh3d(cube.clone()),
                            MeshMaterial3d(material.clone()),
                            t,
                            Shared,
                        ));
                    }
                }
                "texture" => {
                    let png = noise_png(TEXTURE_SIDE);
                    let image = image::load_from_memory(&png).expect("decode").to_rgba8();
                    let texture = images.add(Image::new(
                        bevy::render::render_resource::Extent3d {
                            width: TEXTURE_SIDE,
                            height: TEXTURE_SIDE,
                            depth_or_array_layers: 1,
                        },
                        bevy::render::render_resource::TextureDimension::D2,
                        image.into_raw(),
                        TextureFormat::Rgba8UnormSrgb,
                        RenderAssetUsages::default(),
                    ));
                    commands.spawn((
                        Mesh3d(cube),
                        MeshMaterial3d(materials.add(StandardMaterial {
                            base_color_texture: Some(texture),
                            ..default()
                        })),
                        Transform::from_scale(Vec3::splat(10.0)),
                        Shared,
                    ));
                }
                other => panic!("unknown case {other}"),
            }
        },
    )
    .add_systems(Update, |mut ready: MessageReader<ListenerReady>| {
        for r in ready.read() {
            match &r.result {
                Ok(addr) => println!("url ws://{addr}"),
                Err(e) => panic!("cannot listen: {e}"),
            }
        }
    });
    app.run();
}

/// `n` transforms on a cubic grid around the origin (spacing 0.2).
fn grid(n: usize) -> impl Iterator<Item = Transform> {
    let side = (n as f64).cbrt().ceil() as usize;
    (0..n).map(move |i| {
        let (x, y, z) = (i % side, (i / side) % side, i / (side * side));
        let c = side as f32 / 2.0;
        Transform::from_xyz(
            (x as f32 - c) * 0.2,
            (y as f32 - c) * 0.2,
            (z as f32 - c) * 0.2,
        )
    })
}

/// A `side`×`side` RGBA PNG of noise (incompressible, so its bytes are its pixels').
fn noise_png(side: u32) -> Vec<u8> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let pixels: Vec<u8> = (0..side * side * 4)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 56) as u8
        })
        .collect();
    let img = image::RgbaImage::from_raw(side, side, pixels).expect("size");
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

// -------------------------------------------------------------------------------------------
// Downstream
// -------------------------------------------------------------------------------------------

#[derive(Resource)]
struct Bench {
    case: String,
    started: Instant,
    /// Frames since the world was ready (None: not yet).
    ready_at: Option<(usize, Instant)>,
    last: Instant,
    frames: Vec<f64>,
    all_frames: Vec<f64>,
    /// Main-world update time (`First` to `Last`) and render-world CPU time of measured frames.
    main_cpu: Vec<f64>,
    render_cpu: Vec<f64>,
    main_start: Instant,
    /// Texture case: the frame in which the last byte arrived, and when.
    received: Option<(usize, Instant)>,
}

/// Set by the render world when the watched image is on the GPU (nanoseconds since `started`).
#[derive(Resource, Clone, Default)]
struct OnGpu {
    watched: Arc<Mutex<Option<AssetId<Image>>>>,
    at: Arc<AtomicU64>,
    frame_base: Arc<Mutex<Option<Instant>>>,
    /// Render pipelines still compiling (the render world's `PipelineCache`).
    waiting_pipelines: Arc<AtomicU64>,
    /// When the render world's last `Render` schedule started, and how long its CPU part took
    /// (up to the GPU wait), in nanoseconds.
    render_start: Arc<Mutex<Option<Instant>>>,
    render_cpu_ns: Arc<AtomicU64>,
}

fn downstream(case: &str, url: &str) {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                ..default()
            })
            .disable::<WinitPlugin>(),
    )
    .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::ZERO))
    .add_plugins(NoodlesPlugin {
        session_name: format!("render bench {case} down"),
        ..default()
    })
    .insert_resource(Bench {
        case: case.to_string(),
        started: Instant::now(),
        ready_at: None,
        last: Instant::now(),
        frames: Vec::new(),
        all_frames: Vec::new(),
        main_cpu: Vec::new(),
        render_cpu: Vec::new(),
        main_start: Instant::now(),
        received: None,
    });
    let on_gpu = OnGpu::default();
    app.insert_resource(on_gpu.clone());
    let url = url.to_string();
    app.add_systems(
        Startup,
        move |mut commands: Commands, mut images: ResMut<Assets<Image>>| {
            commands.spawn(NoodlesConnect::new(url.clone()));
            let mut target =
                Image::new_target_texture(TARGET.0, TARGET.1, TextureFormat::Rgba8UnormSrgb, None);
            target.texture_descriptor.usage |= TextureUsages::COPY_SRC;
            commands.spawn((
                Camera3d::default(),
                RenderTarget::Image(images.add(target).into()),
                Transform::from_xyz(12.0, 9.0, 14.0).looking_at(Vec3::ZERO, Vec3::Y),
            ));
        },
    )
    .add_systems(First, |mut b: ResMut<Bench>| b.main_start = Instant::now())
    .add_systems(Last, measure);
    let gpu = on_gpu.clone();
    let start = on_gpu.render_start.clone();
    if let Some(render) = app.get_sub_app_mut(RenderApp) {
        render.add_systems(
            Render,
            (move || *start.lock().unwrap() = Some(Instant::now()))
                .in_set(RenderSystems::ExtractCommands),
        );
        render.add_systems(
            Render,
            (move |images: Res<RenderAssets<GpuImage>>,
                   device: Res<RenderDevice>,
                   pipelines: Res<PipelineCache>| {
                if let Some(s) = *gpu.render_start.lock().unwrap() {
                    gpu.render_cpu_ns
                        .store(s.elapsed().as_nanos() as u64, Ordering::Relaxed);
                }
                // Wait for the GPU, so a frame's time includes drawing it.
                let _ = device.poll(PollType::wait_indefinitely());
                gpu.waiting_pipelines.store(
                    pipelines.waiting_pipelines().count() as u64,
                    Ordering::Relaxed,
                );
                let watched = *gpu.watched.lock().unwrap();
                if let Some(id) = watched
                    && gpu.at.load(Ordering::Relaxed) == 0
                    && images.get(id).is_some()
                    && let Some(base) = *gpu.frame_base.lock().unwrap()
                {
                    gpu.at
                        .store(base.elapsed().as_nanos().max(1) as u64, Ordering::Relaxed);
                }
            })
            .after(RenderSystems::Render),
        );
    }
    app.run();
}

#[expect(clippy::too_many_arguments, reason = "what the measurement reads")]
#[expect(clippy::type_complexity, reason = "a query filter")]
fn measure(
    mut bench: ResMut<Bench>,
    on_gpu: Res<OnGpu>,
    instanced: Query<&Instances>,
    sets: Res<Assets<InstanceSet>>,
    meshes: Query<
        (),
        (
            With<Mesh3d>,
            With<MeshMaterial3d<StandardMaterial>>,
            With<Mirrored>,
        ),
    >,
    materials: Res<Assets<StandardMaterial>>,
    material_of: Query<&MeshMaterial3d<StandardMaterial>>,
    oob: Option<Res<OobProgress>>,
    mut exit: MessageWriter<AppExit>,
) {
    let now = Instant::now();
    let dt = (now - bench.last).as_secs_f64() * 1e3;
    bench.last = now;
    if bench.all_frames.len().is_multiple_of(20) {
        let set = instanced
            .iter()
            .find_map(|i| sets.get(&i.0))
            .map(|s| s.instances.len());
        eprintln!(
            "render bench ({}): {:.0} s, {} frames, last {dt:.1} ms; instance set {set:?}, {} meshes, {} pipelines compiling, oob {:?}",
            bench.case,
            bench.started.elapsed().as_secs_f64(),
            bench.all_frames.len(),
            meshes.iter().count(),
            on_gpu.waiting_pipelines.load(Ordering::Relaxed),
            oob.as_ref().map(|o| (
                o.assets_pending,
                o.assets_done,
                o.failed,
                o.last_failure.clone()
            )),
        );
    }
    if bench.started.elapsed() > Duration::from_secs(600) {
        eprintln!("render bench: not ready after 600 s");
        exit.write(AppExit::error());
        return;
    }
    match bench.case.as_str() {
        "texture" => {
            bench.all_frames.push(dt);
            let frame = bench.all_frames.len();
            if bench.received.is_none() && oob.as_ref().is_some_and(|o| o.assets_done >= 1) {
                bench.received = Some((frame, now));
                *on_gpu.frame_base.lock().unwrap() = Some(now);
            }
            // The material's texture (once its material arrived): the image to watch on the GPU.
            if bench.received.is_some() && on_gpu.watched.lock().unwrap().is_none() {
                let texture = material_of
                    .iter()
                    .filter_map(|m| materials.get(&m.0))
                    .find_map(|m| m.base_color_texture.as_ref().map(|h| h.id()));
                *on_gpu.watched.lock().unwrap() = texture;
            }
            let at = on_gpu.at.load(Ordering::Relaxed);
            if let Some((from, _)) = bench.received
                && at > 0
            {
                let during = &bench.all_frames[from..];
                let stall = during.iter().cloned().fold(0.0, f64::max);
                let mut before: Vec<f64> = bench.all_frames[..from].to_vec();
                before.sort_by(f64::total_cmp);
                let median = before.get(before.len() / 2).copied().unwrap_or(dt);
                println!("figure latency_ms={}", at as f64 / 1e6);
                println!("figure latency_frames={}", frame - from);
                println!("figure stall_ms={stall}");
                println!("figure median_ms={median}");
                exit.write(AppExit::Success);
            }
        }
        _ => {
            if bench.ready_at.is_none() {
                let n = instance_count();
                let ready = match bench.case.as_str() {
                    "instanced" => instanced
                        .iter()
                        .any(|i| sets.get(&i.0).is_some_and(|s| s.instances.len() == n)),
                    _ => meshes.iter().count() >= n,
                };
                if ready && on_gpu.waiting_pipelines.load(Ordering::Relaxed) == 0 {
                    let frame = bench.all_frames.len();
                    bench.ready_at = Some((frame, now));
                }
                bench.all_frames.push(dt);
                return;
            }
            bench.all_frames.push(dt);
            let Some((at, ready)) = bench.ready_at else {
                return;
            };
            let since = bench.all_frames.len() - at;
            if since > WARMUP_FRAMES {
                bench.frames.push(dt);
                let main = bench.main_start.elapsed().as_secs_f64() * 1e3;
                bench.main_cpu.push(main);
                let render = on_gpu.render_cpu_ns.load(Ordering::Relaxed) as f64 / 1e6;
                bench.render_cpu.push(render);
            }
            if bench.frames.len() >= MEASURED_FRAMES {
                let median = |v: &[f64]| {
                    let mut v = v.to_vec();
                    v.sort_by(f64::total_cmp);
                    v[v.len() / 2]
                };
                let mut f = bench.frames.clone();
                f.sort_by(f64::total_cmp);
                println!("figure frame_p50_ms={}", f[f.len() / 2]);
                println!("figure frame_p95_ms={}", f[f.len() * 95 / 100]);
                println!("figure main_ms={}", median(&bench.main_cpu));
                println!("figure render_cpu_ms={}", median(&bench.render_cpu));
                println!("figure hwm_kb={}", status_kb("VmHWM"));
                println!("figure ready_s={}", (ready - bench.started).as_secs_f64());
                exit.write(AppExit::Success);
            }
        }
    }
}
