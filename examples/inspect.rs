//! A headless Downstream that prints a hosted world.
//!
//! ```text
//! cargo run --example inspect -- ws://HOST:PORT [--watch]
//! ```
//! Prints every mirrored entity (id, name, parent, component kinds, transform) as a tree and a
//! one-line summary, then exits; with `--watch` it keeps printing changes as they arrive.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy_noodles2::mirror::MirrorStats;
use bevy_noodles2::prelude::*;

#[derive(Resource)]
struct Opts {
    watch: bool,
}

#[derive(Resource, Default)]
struct Progress {
    first_applied: Option<Instant>,
    printed: bool,
}

fn main() -> anyhow::Result<()> {
    let mut url = None;
    let mut watch = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--watch" => watch = true,
            "-h" | "--help" => {
                println!("usage: inspect ws://HOST:PORT [--watch]");
                return Ok(());
            }
            s if s.starts_with("ws://") => url = Some(s.to_string()),
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    let url = url.context("usage: inspect ws://HOST:PORT [--watch]")?;
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(5))))
        .add_plugins(NoodlesPlugin {
            session_name: "bevy_noodles2 inspect".into(),
            ..default()
        })
        .insert_resource(Opts { watch })
        .init_resource::<Progress>()
        .add_systems(Startup, move |mut commands: Commands| {
            commands.spawn(NoodlesConnect::new(url.clone()));
        })
        .add_systems(Update, (print_world, watch_changes, on_close));
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(c) => std::process::exit(c.get() as i32),
    }
}

fn kinds(e: EntityRef) -> Vec<&'static str> {
    let mut k = Vec::new();
    macro_rules! has {
        ($($t:ty => $n:literal),*) => {$( if e.contains::<$t>() { k.push($n); } )*};
    }
    has!(Transform => "Transform", Visibility => "Visibility", DirectionalLight => "DirectionalLight",
         PointLight => "PointLight", SpotLight => "SpotLight", Global => "Global", TimeSync => "TimeSync",
         Mesh3d => "Mesh", MeshMaterial3d<StandardMaterial> => "PBRMaterial");
    k
}

fn fmt_transform(t: &Transform) -> String {
    let p = t.translation;
    format!("pos ({:.2}, {:.2}, {:.2})", p.x, p.y, p.z)
}

fn print_world(world: &mut World) {
    let applied = world.resource::<MirrorStats>().transactions_applied;
    let watch = world.resource::<Opts>().watch;
    let mut progress = world.resource_mut::<Progress>();
    if progress.printed || applied == 0 {
        return;
    }
    let first = *progress.first_applied.get_or_insert_with(Instant::now);
    // The initial world may span several transactions: give it a moment to arrive.
    if first.elapsed() < Duration::from_millis(500) {
        return;
    }
    progress.printed = true;
    print_tree(world, applied);
    if !watch {
        world.write_message(AppExit::Success);
    }
}

fn print_tree(world: &mut World, applied: u64) {
    let world: &World = world;
    let mut by_id: BTreeMap<u64, Entity> = BTreeMap::new();
    for e in world.iter_entities() {
        if let (Some(id), true) = (e.get::<NoodlesId>(), e.contains::<Mirrored>()) {
            by_id.insert(id.0, e.id());
        }
    }
    let mut children: BTreeMap<Option<u64>, Vec<u64>> = BTreeMap::new();
    for (&id, &e) in &by_id {
        let parent = world
            .get::<ChildOf>(e)
            .and_then(|c| world.get::<NoodlesId>(c.parent()))
            .map(|p| p.0);
        children.entry(parent).or_default().push(id);
    }
    fn walk(
        world: &World,
        by_id: &BTreeMap<u64, Entity>,
        children: &BTreeMap<Option<u64>, Vec<u64>>,
        at: Option<u64>,
        depth: usize,
    ) {
        for id in children.get(&at).into_iter().flatten() {
            let e = by_id[id];
            let er = world.entity(e);
            let name = er
                .get::<Name>()
                .map(|n| n.as_str().to_string())
                .unwrap_or_else(|| "<unnamed>".into());
            let t = er.get::<Transform>().map(fmt_transform).unwrap_or_default();
            println!(
                "{:indent$}#{id} {name} [{}] {t}",
                "",
                kinds(er).join(", "),
                indent = depth * 2
            );
            walk(world, by_id, children, Some(*id), depth + 1);
        }
    }
    walk(world, &by_id, &children, None, 0);
    let lights = by_id.values().filter(|e| {
        let er = world.entity(**e);
        er.contains::<DirectionalLight>()
            || er.contains::<PointLight>()
            || er.contains::<SpotLight>()
    });
    let transforms = by_id
        .values()
        .filter(|e| world.entity(**e).contains::<Transform>())
        .count();
    println!(
        "summary: {} entities, {} roots, {} with Transform, {} lights, {} transactions applied",
        by_id.len(),
        children.get(&None).map_or(0, Vec::len),
        transforms,
        lights.count(),
        applied
    );
}

/// Mirrored entities whose transform changed this frame.
type MovedMirror = (With<Mirrored>, Changed<Transform>);

fn watch_changes(
    opts: Res<Opts>,
    progress: Res<Progress>,
    q: Query<(&NoodlesId, Option<&Name>, &Transform), MovedMirror>,
) {
    if !opts.watch || !progress.printed {
        return;
    }
    for (id, name, t) in &q {
        println!(
            "#{} {} {}",
            id.0,
            name.map(|n| n.as_str()).unwrap_or("<unnamed>"),
            fmt_transform(t)
        );
    }
}

fn on_close(mut closed: MessageReader<LinkClosed>, mut exit: MessageWriter<AppExit>) {
    if let Some(c) = closed.read().next() {
        eprintln!("error: link closed: {}", c.reason);
        exit.write(AppExit::error());
    }
}
