//! Host a glTF/GLB file as a NOODLES2 Upstream.
//!
//! ```text
//! cargo run --example host_gltf -- PATH [--listen HOST:PORT] [--tls-cert PEM --tls-key PEM] [--name NAME] [--animation N|all|none] [--token T] [-v]
//! ```
//! Loads PATH with Bevy's glTF loader, spawns its default scene (hierarchy, meshes, materials,
//! textures, lights) and marks every entity of it `Shared`, so meshes, materials and images are
//! exported as NOODLES2 assets. Prints one line, `listening on ws://HOST:PORT` (default
//! `127.0.0.1:50000`), once the scene is spawned and the listener accepts connections. A file
//! that does not exist or does not load is an error with a non-zero exit.
//!
//! Skinned meshes are shared with their skins: the joints are entities of the scene (so they are
//! `Shared` too), the mesh carries its joint indices and weights, and the `SkinComponent`
//! references the joints and a buffer of inverse bind matrices.
//!
//! The file's first animation (`--animation N` picks another, `--animation all` plays every one
//! as a layer of equal weight, `--animation none` none) plays on the host with Bevy's
//! `AnimationPlayer`, looping. The plugin shares it as NOODLES2 animation: the clip and its
//! samplers go out once as assets, the player becomes an Animator component, and every
//! Downstream evaluates it against the host's clock (the skin deforms on its GPU). The joints'
//! `Transform`s are not streamed: once the scene is sent, a playing animation costs a Downstream
//! only the clock updates (about one a second).
//!
//! Try it: `cargo run --example host_gltf -- assets/Fox.glb`, then
//! `cargo run --example viewer -- ws://127.0.0.1:50000`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bevy::app::ScheduleRunnerPlugin;
use bevy::asset::{LoadState, RecursiveDependencyLoadState};
use bevy::image::{CompressedImageFormatSupport, CompressedImageFormats};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::settings::WgpuSettings;
use bevy::window::ExitCondition;
use bevy::winit::WinitPlugin;
use bevy::world_serialization::{WorldAsset, WorldAssetRoot, WorldInstanceReady};
use bevy_noodles2::prelude::*;

struct Args {
    path: PathBuf,
    listen: String,
    name: Option<String>,
    /// Which of the file's animations to play.
    animation: Play,
    /// Required of every client.
    token: Option<String>,
    tls: common::TlsArgs,
    verbose: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut path = None;
    let mut a = Args {
        path: PathBuf::new(),
        listen: "127.0.0.1:50000".into(),
        name: None,
        animation: Play::One(0),
        token: None,
        tls: common::TlsArgs::default(),
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => a.listen = it.next().context("--listen needs HOST:PORT")?,
            "--name" => a.name = Some(it.next().context("--name needs a value")?),
            "--token" => a.token = Some(it.next().context("--token needs a value")?),
            "--animation" => {
                a.animation = match it
                    .next()
                    .context("--animation needs N, all or none")?
                    .as_str()
                {
                    "none" => Play::None,
                    "all" => Play::All,
                    n => Play::One(
                        n.parse()
                            .context("--animation needs a number, all or none")?,
                    ),
                }
            }
            "-v" | "--verbose" => a.verbose = true,
            "-h" | "--help" => {
                println!(
                    "usage: host_gltf PATH [--listen HOST:PORT] {} [--name NAME] [--animation N|all|none] [--token T] [-v]",
                    common::SERVER_TLS_USAGE
                );
                std::process::exit(0);
            }
            s if a.tls.take(s, &mut it)? => {}
            s if s.starts_with('-') => bail!("unknown argument `{s}` (try --help)"),
            s => {
                if path.is_some() {
                    bail!("only one PATH is allowed (got a second one, `{s}`)");
                }
                path = Some(PathBuf::from(s));
            }
        }
    }
    a.path = path.context("missing PATH of a .gltf or .glb file (try --help)")?;
    Ok(a)
}

/// Which animations play.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Play {
    None,
    All,
    One(usize),
}

/// The scene being loaded, and whether it was spawned.
#[derive(Resource)]
struct Loading {
    file: String,
    gltf: Handle<Gltf>,
    scene: Handle<WorldAsset>,
    animation: Play,
    root: Option<Entity>,
    /// Spawned once the scene is shared.
    listener: Option<NoodlesListener>,
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let path = args
        .path
        .canonicalize()
        .with_context(|| format!("cannot open {}", args.path.display()))?;
    if !path.is_file() {
        bail!("{} is not a file", path.display());
    }
    let dir = path
        .parent()
        .context("the file has no parent directory")?
        .to_path_buf();
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .context("the file name is not UTF-8")?
        .to_owned();

    let mut app = App::new();
    // No GPU: textures are kept as they are in the file (compressed KTX2/DDS textures are not
    // transcoded for a GPU).
    app.insert_resource(CompressedImageFormatSupport(CompressedImageFormats::NONE));
    // Bevy's default plugins without a window or a GPU: asset loading (glTF, images), the PBR
    // material conversion of glTF materials, and scene spawning, but nothing renders.
    app.add_plugins(
        DefaultPlugins
            .build()
            .disable::<WinitPlugin>()
            .set(WindowPlugin {
                primary_window: None,
                exit_condition: ExitCondition::DontExit,
                ..default()
            })
            .set(RenderPlugin {
                render_creation: WgpuSettings {
                    backends: None,
                    ..default()
                }
                .into(),
                ..default()
            })
            .set(AssetPlugin {
                file_path: dir.to_string_lossy().into_owned(),
                ..default()
            })
            .set(LogPlugin {
                filter: if args.verbose {
                    "info,wgpu=error".into()
                } else {
                    // Without a GPU, a few render plugins complain that the render app is
                    // missing; that is expected here.
                    "warn,wgpu=error,bevy_render=off,bevy_gizmos_render=off".into()
                },
                ..default()
            }),
    )
    .add_plugins(ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(
        1.0 / 60.0,
    )))
    .add_plugins(NoodlesPlugin {
        session_name: args.name.clone().unwrap_or_else(|| file.clone()),
        ..default()
    });
    let mut listener = args.tls.listener(&args.listen)?;
    if let Some(t) = &args.token {
        listener = listener.with_tokens([(t.clone(), Principal::new("token holder"))]);
    }
    let server = app.world().resource::<AssetServer>();
    let scene = server.load(GltfAssetLabel::Scene(0).from_asset(file.clone()));
    let gltf = server.load(file.clone());
    app.insert_resource(Loading {
        file,
        gltf,
        scene,
        animation: args.animation,
        root: None,
        listener: Some(listener),
    })
    .add_observer(share_scene)
    .add_systems(Update, (spawn_when_loaded, common::announce_listening));
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => std::process::exit(code.get() as i32),
    }
}

/// Spawns the scene once it (and everything it uses) loaded; a failed load exits with an error.
fn spawn_when_loaded(
    mut loading: ResMut<Loading>,
    server: Res<AssetServer>,
    mut commands: Commands,
    mut exit: MessageWriter<AppExit>,
) {
    if loading.root.is_some() {
        return;
    }
    if let Some(LoadState::Failed(e)) = server.get_load_state(&loading.scene) {
        eprintln!("error: cannot load {}: {e}", loading.file);
        exit.write(AppExit::error());
        loading.root = Some(Entity::PLACEHOLDER);
        return;
    }
    // Both handles load the same file; spawning before both are done would see the scene asset
    // modified by the second load, and spawned again.
    let file_loaded = server.is_loaded_with_dependencies(&loading.gltf);
    match server.get_recursive_dependency_load_state(&loading.scene) {
        Some(RecursiveDependencyLoadState::Loaded) if file_loaded => {
            let root = commands
                .spawn((
                    Name::new(loading.file.clone()),
                    WorldAssetRoot(loading.scene.clone()),
                ))
                .id();
            loading.root = Some(root);
        }
        Some(RecursiveDependencyLoadState::Failed(e)) => {
            eprintln!("error: cannot load {}: {e}", loading.file);
            exit.write(AppExit::error());
            loading.root = Some(Entity::PLACEHOLDER);
        }
        _ => {}
    }
}

/// Marks the spawned scene (the root and all its descendants) `Shared`, starts its animation,
/// then starts listening. A scene spawned again (its asset changed) is shared again.
fn share_scene(
    ready: On<WorldInstanceReady>,
    mut loading: ResMut<Loading>,
    children: Query<&Children>,
    gltfs: Res<Assets<Gltf>>,
    mut graphs: ResMut<Assets<AnimationGraph>>,
    mut players: Query<&mut AnimationPlayer>,
    mut commands: Commands,
) {
    if loading.root != Some(ready.entity) {
        return;
    }
    let animations = gltfs
        .get(&loading.gltf)
        .map(|g| g.animations.as_slice())
        .unwrap_or_default();
    let clips: Vec<Handle<AnimationClip>> = match loading.animation {
        Play::None => Vec::new(),
        Play::All => animations.to_vec(),
        Play::One(i) => match animations.get(i) {
            Some(c) => vec![c.clone()],
            None => {
                if !animations.is_empty() {
                    warn!("no animation {i}: the file has {}", animations.len());
                }
                Vec::new()
            }
        },
    };
    if !clips.is_empty() {
        let (graph, nodes) = AnimationGraph::from_clips(clips.iter().cloned());
        let graph = graphs.add(graph);
        let mut playing = 0;
        for e in children.iter_descendants(ready.entity) {
            if let Ok(mut player) = players.get_mut(e) {
                for node in &nodes {
                    player.play(*node).repeat();
                }
                commands
                    .entity(e)
                    .insert(AnimationGraphHandle(graph.clone()));
                playing += 1;
            }
        }
        info!(
            "playing {:?} ({} of {} animations) on {playing} animation players",
            loading.animation,
            clips.len(),
            animations.len()
        );
    }
    let mut n = 1;
    commands.entity(ready.entity).insert(Shared);
    for e in children.iter_descendants(ready.entity) {
        commands.entity(e).insert(Shared);
        n += 1;
    }
    info!("sharing {n} entities of {}", loading.file);
    if let Some(listener) = loading.listener.take() {
        commands.spawn(listener);
    }
}
