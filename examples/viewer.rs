//! The visual Downstream: renders any Upstream's world with Bevy.
//!
//! ```text
//! cargo run --example viewer                      # hosts the built-in demo scene in-process and shows it
//! cargo run --example viewer -- ws://HOST:PORT    # connects to a running Upstream
//! cargo run --example viewer -- --listen HOST:PORT # waits for an Upstream to push its world
//!     [--token T] [--screenshot PATH] [--timeout SECONDS] [--size WxH]
//!     [--view YAW,PITCH[,ZOOM]]                  # camera direction in degrees, zoom on the framing
//!     [--select NAME]                             # select the entity with this name when it arrives
//! ```
//! `wss://HOST:PORT` connects over TLS (`--ca PEM` adds a trusted root, for a self-signed or
//! private certificate); `--listen` with `--tls-cert PEM --tls-key PEM` serves `wss://`.
//! With `--listen`, the viewer prints `listening on ws://HOST:PORT` and accepts connections that
//! ask to be Upstream, for example `cargo run --example host -- --connect ws://HOST:PORT`.
//! Drag with the left mouse button to orbit, scroll to zoom. Click an object to select it (an
//! outline shows it), F frames it, Escape deselects; W, E and R switch its handles between move,
//! rotate and scale where the Upstream allows them; a double click activates it. The panels show
//! the links, the entity tree, the inspector (components, activation, every endpoint with a form
//! to call it), the Upstream's parameters and a log. `--screenshot` waits until the
//! mirrored world and its assets are loaded and the render pipelines are ready, saves one
//! screenshot and exits (non-zero with a reason if that does not happen within `--timeout`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::mesh::VertexAttributeValues;
use bevy::prelude::*;
use bevy::render::render_resource::PipelineCache;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::render::{Render, RenderApp, RenderPlugin};
use bevy::window::WindowResolution;
use bevy_noodles2::assets::AssetStats;
use bevy_noodles2::demo::{DemoHost, DemoScenePlugin};
use bevy_noodles2::mirror::MirrorStats;
use bevy_noodles2::prelude::*;
use bevy_noodles2::viewer::panels::FrameSelection;
use bevy_noodles2::viewer::{PointerCapture, Selection, ViewerPlugin};

struct Args {
    url: Option<String>,
    listen: Option<String>,
    screenshot: Option<String>,
    token: Option<String>,
    tls: common::TlsArgs,
    timeout: f64,
    size: (u32, u32),
    /// `--view YAW,PITCH[,ZOOM]`: the camera's starting direction (degrees) and a factor on the
    /// distance that frames the scene.
    view: (f32, f32, f32),
    /// `--select NAME`: select the first mirrored entity with this name once it arrives.
    select: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        url: None,
        listen: None,
        screenshot: None,
        token: None,
        tls: common::TlsArgs::default(),
        timeout: 120.0,
        size: (1280, 720),
        view: (0.8f32.to_degrees(), 0.5f32.to_degrees(), 1.0),
        select: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--screenshot" => a.screenshot = Some(it.next().context("--screenshot needs a PATH")?),
            "--listen" => a.listen = Some(it.next().context("--listen needs HOST:PORT")?),
            "--token" => a.token = Some(it.next().context("--token needs a value")?),
            "--timeout" => {
                a.timeout = it
                    .next()
                    .context("--timeout needs SECONDS")?
                    .parse()
                    .context("--timeout needs a number")?
            }
            "--size" => {
                let s = it.next().context("--size needs WxH")?;
                let (w, h) = s
                    .split_once('x')
                    .context("--size needs WxH, e.g. 1280x720")?;
                a.size = (
                    w.parse().context("bad width")?,
                    h.parse().context("bad height")?,
                );
            }
            "--select" => a.select = Some(it.next().context("--select needs a NAME")?),
            "--view" => {
                let v = it.next().context("--view needs YAW,PITCH[,ZOOM]")?;
                let parts: Vec<f32> = v
                    .split(',')
                    .map(|x| x.trim().parse())
                    .collect::<Result<_, _>>()
                    .context("--view needs numbers: YAW,PITCH[,ZOOM] (degrees, factor)")?;
                match parts[..] {
                    [yaw, pitch] => a.view = (yaw, pitch, 1.0),
                    [yaw, pitch, zoom] if zoom > 0.0 => a.view = (yaw, pitch, zoom),
                    _ => bail!("--view needs YAW,PITCH[,ZOOM] (degrees, a factor above 0)"),
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: viewer [ws(s)://HOST:PORT {} | --listen HOST:PORT {}] [--token T] [--screenshot PATH] [--timeout SECONDS] [--size WxH] [--view YAW,PITCH[,ZOOM]] [--select NAME]",
                    common::CLIENT_TLS_USAGE,
                    common::SERVER_TLS_USAGE
                );
                std::process::exit(0);
            }
            s if s.starts_with("ws://") || s.starts_with("wss://") => a.url = Some(s.to_string()),
            other if a.tls.take(other, &mut it)? => {}
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    if a.url.is_some() && a.listen.is_some() {
        bail!("give either ws://HOST:PORT (connect) or --listen HOST:PORT, not both");
    }
    Ok(a)
}

/// How the viewer reaches its Upstream.
enum Peer {
    /// Connect to `ws://HOST:PORT`.
    Connect(String),
    /// Listen on `HOST:PORT` for an Upstream that pushes its world.
    Listen(String),
}

#[derive(Resource)]
struct ViewerArgs {
    peer: Peer,
    /// Sent when connecting, required when listening.
    token: Option<String>,
    /// Roots trusted for `wss://` (`--ca`).
    client_tls: Option<ClientTls>,
    /// Served with `--listen` (`--tls-cert`, `--tls-key`).
    server_tls: Option<ServerTls>,
    screenshot: Option<String>,
    deadline: Instant,
    timeout: f64,
    view: (f32, f32, f32),
    select: Option<String>,
}

/// Pipelines still compiling in the render world (shared with the main world).
#[derive(Resource, Clone, Default)]
struct WaitingPipelines(Arc<AtomicUsize>);

#[derive(Component)]
struct OrbitCamera {
    focus: Vec3,
    yaw: f32,
    pitch: f32,
    distance: f32,
}

impl OrbitCamera {
    /// Unit vector from the focus towards the camera.
    fn direction(&self) -> Vec3 {
        Vec3::new(
            self.yaw.cos() * self.pitch.cos(),
            self.pitch.sin(),
            self.yaw.sin() * self.pitch.cos(),
        )
    }
}

#[derive(Component)]
struct DefaultLight;

#[derive(Resource, Default)]
struct ViewerState {
    framed: bool,
    stable_frames: u32,
    last_counts: (usize, u64),
    shot_requested: bool,
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    // Before anything starts: winit would panic with a backtrace without a display.
    if let Err(e) = bevy_noodles2::display::check_display() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    // With neither a url nor --listen, the demo scene is hosted in this process (until the
    // viewer exits).
    let (peer, _demo_host) = match (args.url.clone(), args.listen.clone()) {
        (Some(url), _) => (Peer::Connect(url), None),
        (None, Some(addr)) => (Peer::Listen(addr), None),
        (None, None) => {
            let host = DemoHost::spawn("bevy_noodles2 demo", DemoScenePlugin::default())
                .map_err(|e| anyhow::anyhow!("the in-process demo host: {e}"))?;
            (Peer::Connect(host.url().to_string()), Some(host))
        }
    };
    let title = match &peer {
        Peer::Connect(url) => format!("bevy_noodles2 viewer — {url}"),
        Peer::Listen(addr) => format!("bevy_noodles2 viewer — listening on {addr}"),
    };
    let waiting = WaitingPipelines::default();
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title,
                    resolution: WindowResolution::new(args.size.0, args.size.1),
                    ..default()
                }),
                ..default()
            })
            .set(RenderPlugin {
                synchronous_pipeline_compilation: args.screenshot.is_some(),
                ..default()
            }),
    )
    .add_plugins(NoodlesDiagnosticsPlugin)
    .add_plugins(ViewerPlugin::default())
    .add_plugins(NoodlesPlugin {
        session_name: "bevy_noodles2 viewer".into(),
        // Listening, the viewer lets whoever connects be the Upstream (and only that).
        authority: match peer {
            Peer::Listen(_) => AuthorityPolicy::Accept,
            Peer::Connect(_) => AuthorityPolicy::Refuse,
        },
        ..default()
    })
    .insert_resource(ViewerArgs {
        peer,
        token: args.token.clone(),
        client_tls: args.tls.client()?,
        server_tls: args.tls.server()?,
        screenshot: args.screenshot.clone(),
        deadline: Instant::now() + Duration::from_secs_f64(args.timeout),
        timeout: args.timeout,
        view: args.view,
        select: args.select.clone(),
    })
    .insert_resource(waiting.clone())
    .insert_resource(ClearColor(Color::srgb(0.08, 0.09, 0.11)))
    .init_resource::<ViewerState>()
    .add_systems(Startup, setup)
    .add_systems(
        Update,
        (
            frame_scene,
            orbit,
            frame_selection,
            select_named,
            default_light,
            common::announce_listening,
            screenshot_when_ready,
            on_close,
        ),
    );
    if let Some(render_app) = app.get_sub_app_mut(RenderApp) {
        render_app
            .insert_resource(waiting)
            .add_systems(Render, count_waiting_pipelines);
    }
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(c) => std::process::exit(c.get() as i32),
    }
}

fn count_waiting_pipelines(cache: Option<Res<PipelineCache>>, waiting: Res<WaitingPipelines>) {
    if let Some(cache) = cache {
        waiting
            .0
            .store(cache.waiting_pipelines().count(), Ordering::Relaxed);
    }
}

fn setup(mut commands: Commands, args: Res<ViewerArgs>) {
    match &args.peer {
        Peer::Connect(url) => {
            let mut c = NoodlesConnect::new(url.clone());
            if let Some(t) = &args.token {
                c = c.with_token(t.clone());
            }
            if let Some(tls) = &args.client_tls {
                c = c.with_tls(tls.clone());
            }
            commands.spawn(c)
        }
        Peer::Listen(addr) => {
            let mut l = match &args.server_tls {
                Some(tls) => NoodlesListener::new(format!(
                    "wss://{}",
                    bevy_noodles2::transport::strip_ws_scheme(addr)
                ))
                .with_tls(tls.clone()),
                None => NoodlesListener::new(addr.clone()),
            };
            if let Some(t) = &args.token {
                l = l.with_tokens([(t.clone(), Principal::new("token holder"))]);
            }
            commands.spawn(l)
        }
    };
    commands.spawn((
        Camera3d::default(),
        Transform::from_xyz(8.0, 6.0, 8.0).looking_at(Vec3::ZERO, Vec3::Y),
        OrbitCamera {
            focus: Vec3::ZERO,
            yaw: args.view.0.to_radians(),
            pitch: args.view.1.to_radians().clamp(-1.5, 1.5),
            distance: 12.0,
        },
    ));
}

/// Once the world arrived, frame it: fit the camera to the bounds of the mirrored meshes (or of
/// the entities' origins when there are no meshes), whatever the scene's scale.
fn frame_scene(
    args: Res<ViewerArgs>,
    mut state: ResMut<ViewerState>,
    mirrored: Query<(&GlobalTransform, Option<&Mesh3d>), With<Mirrored>>,
    meshes: Res<Assets<Mesh>>,
    stats: Res<MirrorStats>,
    mut cam: Query<(&mut OrbitCamera, &mut Projection)>,
    mut frames: Local<u32>,
) {
    if state.framed || stats.transactions_applied == 0 {
        return;
    }
    // Let transform propagation place the mirrored hierarchy first.
    *frames += 1;
    if *frames < 10 {
        return;
    }
    let mut origins: Vec<Vec3> = Vec::new();
    let mut vertices: Vec<Vec3> = Vec::new();
    let mut meshes_missing = false;
    for (t, mesh) in &mirrored {
        origins.push(t.translation());
        let Some(mesh) = mesh else { continue };
        let Some(mesh) = meshes.get(&mesh.0) else {
            meshes_missing = true;
            continue;
        };
        // The vertices themselves (a sample of at most about 4096 per mesh) fit tighter than a
        // bounding box would. Mirrored meshes always have `Float32x3` positions.
        if let Some(VertexAttributeValues::Float32x3(positions)) =
            mesh.attribute(Mesh::ATTRIBUTE_POSITION)
        {
            let step = positions.len().div_ceil(4096).max(1);
            vertices.extend(
                positions
                    .iter()
                    .step_by(step)
                    .map(|p| t.transform_point(Vec3::from(*p))),
            );
        }
    }
    // Wait (a few seconds at most) for the meshes, whose bounds matter more than origins.
    if meshes_missing && *frames < 600 {
        return;
    }
    let points: Vec<Vec3> = if vertices.is_empty() {
        origins
    } else {
        vertices
    }
    .into_iter()
    .filter(|p| p.is_finite())
    .collect();
    if points.is_empty() {
        return;
    }
    let (min, max) = points.iter().fold(
        (Vec3::splat(f32::MAX), Vec3::splat(f32::MIN)),
        |(a, b), p| (a.min(*p), b.max(*p)),
    );
    let center = (min + max) / 2.0;
    let radius = ((max - min).length() / 2.0).max(2.0);
    if let Ok((mut c, mut projection)) = cam.single_mut() {
        c.focus = center;
        c.distance = radius * 2.4;
        if let Projection::Perspective(p) = projection.as_mut() {
            p.far = p.far.max(radius * 10.0);
            // Fit the points themselves rather than their bounding sphere: the nearest
            // distance along the view direction at which every point is in view, with the
            // focus moved so that their picture is centered (a few rounds, as moving the focus
            // changes the perspective a little).
            let dir = c.direction();
            let rotation = Transform::from_translation(dir)
                .looking_at(Vec3::ZERO, Vec3::Y)
                .rotation;
            let (right, up) = (rotation * Vec3::X, rotation * Vec3::Y);
            let tan_v = (p.fov / 2.0).tan();
            let tan_h = tan_v * p.aspect_ratio;
            let mut focus = center;
            for _ in 0..4 {
                let fit = points
                    .iter()
                    .map(|q| {
                        let o = *q - focus;
                        o.dot(dir) + (o.dot(right).abs() / tan_h).max(o.dot(up).abs() / tan_v)
                    })
                    .fold(0.0, f32::max);
                if !(fit.is_finite() && fit > 0.0) {
                    break;
                }
                // Where the points land on the screen (-1..1 on each axis) at that distance.
                let (mut lo, mut hi) = (Vec2::splat(f32::MAX), Vec2::splat(f32::MIN));
                for q in &points {
                    let o = *q - focus;
                    let depth = (fit - o.dot(dir)).max(1e-3);
                    let s = Vec2::new(o.dot(right) / tan_h, o.dot(up) / tan_v) / depth;
                    (lo, hi) = (lo.min(s), hi.max(s));
                }
                // A margin for the status overlay and for things that move.
                c.distance = fit * 1.3;
                let mid = (lo + hi) / 2.0;
                focus += (right * mid.x * tan_h + up * mid.y * tan_v) * fit;
            }
            c.focus = focus;
        }
        c.distance *= args.view.2;
    }
    state.framed = true;
}

fn orbit(
    buttons: Res<ButtonInput<MouseButton>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    capture: Res<PointerCapture>,
    mut orbiting: Local<bool>,
    mut q: Query<(&mut OrbitCamera, &mut Transform)>,
) {
    let Ok((mut o, mut t)) = q.single_mut() else {
        return;
    };
    // A drag that starts on a panel or a handle is theirs, not the camera's.
    if buttons.just_pressed(MouseButton::Left) {
        *orbiting = !capture.busy();
    }
    if buttons.pressed(MouseButton::Left) && *orbiting && !capture.dragging_handle {
        o.yaw -= motion.delta.x * 0.005;
        o.pitch = (o.pitch + motion.delta.y * 0.005).clamp(-1.5, 1.5);
    }
    if scroll.delta.y != 0.0 && !capture.over_panel {
        o.distance = (o.distance * (1.0 - scroll.delta.y * 0.1)).clamp(0.5, 10_000.0);
    }
    *t = Transform::from_translation(o.focus + o.direction() * o.distance)
        .looking_at(o.focus, Vec3::Y);
}

/// `--select NAME`: select the named entity once it is mirrored.
fn select_named(
    args: Res<ViewerArgs>,
    named: Query<(Entity, &Name), With<Mirrored>>,
    mut selection: ResMut<Selection>,
    mut done: Local<bool>,
) {
    let Some(want) = &args.select else { return };
    if *done {
        return;
    }
    if let Some((e, _)) = named.iter().find(|(_, n)| n.as_str() == want) {
        selection.0 = Some(e);
        *done = true;
    }
}

/// F (or the inspector's button): turn the camera to the selected entity and fit it in view.
fn frame_selection(
    keys: Res<ButtonInput<KeyCode>>,
    capture: Res<PointerCapture>,
    selection: Res<Selection>,
    mut asked: MessageReader<FrameSelection>,
    bounds: Query<(&GlobalTransform, Option<&bevy::camera::primitives::Aabb>)>,
    children: Query<&Children>,
    mut cam: Query<&mut OrbitCamera>,
) {
    let mut target = asked.read().last().map(|f| f.0);
    if keys.just_pressed(KeyCode::KeyF) && !capture.over_panel {
        target = target.or(selection.0);
    }
    let Some(target) = target else { return };
    let (mut lo, mut hi) = (Vec3::splat(f32::MAX), Vec3::splat(f32::MIN));
    for e in std::iter::once(target).chain(children.iter_descendants(target)) {
        let Ok((t, aabb)) = bounds.get(e) else {
            continue;
        };
        let (c, h) = aabb.map_or((Vec3::ZERO, Vec3::ZERO), |a| {
            (Vec3::from(a.center), Vec3::from(a.half_extents))
        });
        for corner in [-1.0f32, 1.0].into_iter().flat_map(|x| {
            [-1.0f32, 1.0]
                .into_iter()
                .flat_map(move |y| [-1.0f32, 1.0].map(|z| Vec3::new(x, y, z)))
        }) {
            let p = t.transform_point(c + h * corner);
            (lo, hi) = (lo.min(p), hi.max(p));
        }
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return;
    }
    if let Ok(mut c) = cam.single_mut() {
        c.focus = (lo + hi) / 2.0;
        c.distance = ((hi - lo).length() * 1.5).max(1.0);
    }
}

/// Filter for lights that came from the Upstream.
type MirroredLight = (
    With<Mirrored>,
    Or<(With<DirectionalLight>, With<PointLight>, With<SpotLight>)>,
);

/// A default light while the mirrored scene has none.
fn default_light(
    mut commands: Commands,
    mirrored_lights: Query<(), MirroredLight>,
    ours: Query<Entity, With<DefaultLight>>,
) {
    let has = !mirrored_lights.is_empty();
    match (has, ours.iter().next()) {
        (false, None) => {
            commands.spawn((
                DirectionalLight {
                    illuminance: 3000.0,
                    ..default()
                },
                Transform::from_xyz(3.0, 10.0, 5.0).looking_at(Vec3::ZERO, Vec3::Y),
                DefaultLight,
            ));
        }
        (true, Some(e)) => commands.entity(e).despawn(),
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)] // a Bevy system reading everything "ready" depends on
fn screenshot_when_ready(
    mut commands: Commands,
    args: Res<ViewerArgs>,
    mut state: ResMut<ViewerState>,
    stats: Res<MirrorStats>,
    assets: Res<AssetStats>,
    mirrored: Query<(), With<Mirrored>>,
    mesh_handles: Query<&Mesh3d, With<Mirrored>>,
    meshes: Res<Assets<Mesh>>,
    waiting: Res<WaitingPipelines>,
    camera: Query<&Camera, With<OrbitCamera>>,
    mut exit: MessageWriter<AppExit>,
) {
    let Some(path) = args.screenshot.clone() else {
        return;
    };
    if state.shot_requested {
        return;
    }
    if Instant::now() > args.deadline {
        eprintln!(
            "error: the scene was not ready within {}s (transactions applied: {}, entities: {}, assets pending: {}, pipelines compiling: {})",
            args.timeout,
            stats.transactions_applied,
            mirrored.iter().count(),
            assets.pending,
            waiting.0.load(Ordering::Relaxed)
        );
        exit.write(AppExit::error());
        return;
    }
    let counts = (mirrored.iter().count(), assets.imported);
    let meshes_loaded = mesh_handles.iter().all(|m| meshes.contains(&m.0));
    let ready = stats.transactions_applied > 0
        && counts.0 > 0
        && assets.pending == 0
        && meshes_loaded
        && waiting.0.load(Ordering::Relaxed) == 0
        && state.framed;
    if ready && counts == state.last_counts {
        state.stable_frames += 1;
    } else {
        state.stable_frames = 0;
    }
    state.last_counts = counts;
    // Stable for a while: assets in, pipelines compiled, a few frames rendered.
    if state.stable_frames >= 30 {
        state.shot_requested = true;
        let p = path.clone();
        // Where the 3D view is in the picture (between the panels), for the render test.
        let view = camera
            .single()
            .ok()
            .and_then(|c| c.viewport.as_ref())
            .map(|v| {
                let (at, size) = (v.physical_position, v.physical_size);
                format!("3d view: {} {} {} {}", at.x, at.y, size.x, size.y)
            });
        commands.spawn(Screenshot::primary_window()).observe(
            move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                let result = captured
                    .image
                    .clone()
                    .try_into_dynamic()
                    .map_err(|e| e.to_string())
                    .and_then(|img| img.to_rgb8().save(&p).map_err(|e| e.to_string()));
                match result {
                    Ok(()) => {
                        println!("saved screenshot to {p}");
                        if let Some(v) = &view {
                            println!("{v}");
                        }
                        exit.write(AppExit::Success);
                    }
                    Err(e) => {
                        eprintln!("error: cannot save the screenshot to {p}: {e}");
                        exit.write(AppExit::error());
                    }
                }
            },
        );
    }
}

fn on_close(
    args: Res<ViewerArgs>,
    mut closed: MessageReader<LinkClosed>,
    mut exit: MessageWriter<AppExit>,
) {
    if let Some(c) = closed.read().next() {
        eprintln!("link closed: {}", c.reason);
        if args.screenshot.is_some() {
            eprintln!("error: lost the link before the screenshot");
            exit.write(AppExit::error());
        }
    }
}
