//! A headless Downstream that prints a hosted world.
//!
//! ```text
//! cargo run --example inspect -- ws://HOST:PORT [--watch]
//! cargo run --example inspect -- ws://HOST:PORT --call NAME [ARGS...]
//! cargo run --example inspect -- ws://HOST:PORT --propose-name TEXT
//! cargo run --example inspect -- ws://HOST:PORT --measure SECONDS
//! ```
//! Any of them takes `--token T` and, for `wss://HOST:PORT` with a private or self-signed
//! certificate, `--ca PEM`.
//! Prints every mirrored entity (id, name, parent, component kinds, transform) as a tree and a
//! one-line summary, then exits; with `--watch` it keeps printing changes as they arrive.
//!
//! `--call NAME ARGS...` invokes the endpoint named NAME (arguments that parse as integers are
//! sent as integers, then floats, else strings), prints every reply (`stream: 3`, `complete: 0`,
//! `error 4: ...`) and exits (non-zero after an error). `--propose-name TEXT` proposes a new entity
//! with that name, prints the remap the Upstream answered (or the rejection code) and exits.
//! `--measure SECONDS` waits for the initial state (plus two seconds), then counts the bytes the
//! link receives for SECONDS and prints them per second: what a Downstream costs once joined.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy_noodles2::codec::Any;
use bevy_noodles2::mirror::{ComponentRegistry, MirrorStats};
use bevy_noodles2::prelude::*;

/// What the inspector does once connected.
#[derive(Debug, Clone)]
enum Action {
    /// Print the world (and, with `--watch`, its changes).
    Print,
    /// Invoke an endpoint and print its replies.
    Call { name: String, args: Vec<Any> },
    /// Propose a new named entity and print the remap.
    Propose(String),
    /// Measure the bytes received per second after the initial state.
    Measure(f64),
}

#[derive(Resource)]
struct Opts {
    watch: bool,
    action: Action,
}

/// How long `--call` waits for the endpoint to appear.
const FIND_TIMEOUT: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: inspect ws(s)://HOST:PORT [--token T] [--ca PEM] [--watch | --call NAME [ARGS...] | --propose-name TEXT | --measure SECONDS]";

/// How long `--measure` lets the initial state settle before it starts counting.
const SETTLE: Duration = Duration::from_secs(2);

/// An integer, else a float, else a string.
fn parse_arg(s: &str) -> Any {
    if let Ok(i) = s.parse::<i64>() {
        Any::from(i)
    } else if let Ok(f) = s.parse::<f64>() {
        Any::from(f)
    } else {
        Any::from(s)
    }
}

#[derive(Resource, Default)]
struct Progress {
    first_applied: Option<Instant>,
    printed: bool,
}

fn main() -> anyhow::Result<()> {
    let mut url = None;
    let mut token = None;
    let mut tls = None;
    let mut watch = false;
    let mut action = Action::Print;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--watch" => watch = true,
            "--token" => token = Some(it.next().context("--token needs a value")?),
            "--ca" => {
                let ca = it.next().context("--ca needs a PEM file")?;
                tls = Some(ClientTls::with_roots_pem_file(ca)?);
            }
            "--call" => {
                let name = it.next().context("--call needs an endpoint NAME")?;
                // Everything after the name is an argument (a URL may come before --call).
                let args = it.by_ref().map(|a| parse_arg(&a)).collect();
                action = Action::Call { name, args };
            }
            "--propose-name" => {
                action = Action::Propose(it.next().context("--propose-name needs TEXT")?)
            }
            "--measure" => {
                let secs = it.next().context("--measure needs SECONDS")?;
                action = Action::Measure(secs.parse().context("--measure needs a number")?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with("ws://") || s.starts_with("wss://") => url = Some(s.to_string()),
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    let url = url.context(USAGE)?;
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(5))))
        .add_plugins(NoodlesPlugin {
            session_name: "bevy_noodles2 inspect".into(),
            ..default()
        })
        .insert_resource(Opts { watch, action })
        .init_resource::<Progress>()
        .init_resource::<Task>()
        .add_systems(Startup, move |mut commands: Commands| {
            let mut c = NoodlesConnect::new(url.clone());
            if let Some(t) = &token {
                c = c.with_token(t.clone());
            }
            if let Some(tls) = &tls {
                c = c.with_tls(tls.clone());
            }
            commands.spawn(c);
        })
        .add_systems(
            Update,
            (
                print_world,
                watch_changes,
                call_endpoint,
                propose_name,
                measure,
                on_close,
            ),
        );
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(c) => std::process::exit(c.get() as i32),
    }
}

/// State of `--call` / `--propose-name`.
#[derive(Resource, Default)]
struct Task {
    /// When the link opened.
    opened: Option<Instant>,
    /// The invoke id or transaction id, once sent.
    sent: Option<u32>,
}

fn link_of(links: &Query<(Entity, &NoodlesLink)>) -> Option<Entity> {
    links.iter().find(|(_, l)| l.is_open()).map(|(e, _)| e)
}

fn call_endpoint(
    opts: Res<Opts>,
    mut task: ResMut<Task>,
    links: Query<(Entity, &NoodlesLink)>,
    endpoints: Query<&RpcEndpoint, With<Mirrored>>,
    mut rpc: RpcClient,
    mut replies: MessageReader<RpcReplyReceived>,
    mut exit: MessageWriter<AppExit>,
) {
    let Action::Call { name, args } = &opts.action else {
        return;
    };
    let Some(link) = link_of(&links) else { return };
    let opened = *task.opened.get_or_insert_with(Instant::now);
    match task.sent {
        None => match rpc.find_endpoint(link, name) {
            Some(endpoint) => match rpc.invoke(link, endpoint, args.iter().cloned()) {
                Ok(id) => task.sent = Some(id),
                Err(e) => {
                    eprintln!("error: {e}");
                    exit.write(AppExit::error());
                }
            },
            None if opened.elapsed() > FIND_TIMEOUT => {
                let mut names: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
                names.sort_unstable();
                eprintln!(
                    "error: no endpoint named `{name}` (endpoints: {})",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                );
                exit.write(AppExit::error());
            }
            None => {}
        },
        Some(id) => {
            for r in replies
                .read()
                .filter(|r| r.link == link && r.invoke_id == id)
            {
                match &r.kind {
                    RpcReplyKind::Stream(v) => println!("stream: {v}"),
                    RpcReplyKind::Complete(v) => {
                        println!("complete: {v}");
                        exit.write(AppExit::Success);
                    }
                    RpcReplyKind::Error(code, msg) => {
                        println!("error {code}: {msg}");
                        exit.write(AppExit::error());
                    }
                }
            }
        }
    }
}

fn propose_name(
    opts: Res<Opts>,
    mut task: ResMut<Task>,
    links: Query<(Entity, &NoodlesLink)>,
    mut proposals: Proposals,
    mut replies: MessageReader<ProposalReply>,
    mut exit: MessageWriter<AppExit>,
) {
    let Action::Propose(text) = &opts.action else {
        return;
    };
    let Some(link) = link_of(&links) else { return };
    match task.sent {
        None => {
            let mut p = Proposal::new();
            let e = p.spawn();
            p.insert(e, Name::new(text.clone()));
            match proposals.send(link, p) {
                Ok(tid) => task.sent = Some(tid),
                Err(e) => {
                    eprintln!("error: {e}");
                    exit.write(AppExit::error());
                }
            }
        }
        Some(tid) => {
            for r in replies
                .read()
                .filter(|r| r.link == link && r.transaction_id == tid)
            {
                if r.accepted() {
                    println!("accepted: proposal {tid}");
                    for (from, to) in &r.entities {
                        println!("entity {from:#x} -> #{to}");
                    }
                    exit.write(AppExit::Success);
                } else {
                    let what = match r.code {
                        1 => "denied",
                        2 => "resource exhausted",
                        3 => "malformed",
                        _ => "application-specific",
                    };
                    println!("rejected: proposal {tid}, code {} ({what})", r.code);
                    exit.write(AppExit::error());
                }
            }
        }
    }
}

/// Every component kind the entity carries, by its wire name: mapped to a Bevy component, or
/// kept as bytes ("(raw)") because this build maps no Bevy type to it.
fn kinds(world: &World, e: Entity) -> Vec<String> {
    let registry = world.resource::<ComponentRegistry>();
    registry
        .rules()
        .iter()
        .filter(|rule| rule.has(world, e))
        .map(|rule| {
            let name = rule.wire_name();
            let name = name.strip_suffix("Component").unwrap_or(name);
            if rule.is_raw() {
                format!("{name} (raw)")
            } else {
                name.to_owned()
            }
        })
        .collect()
}

fn fmt_transform(t: &Transform) -> String {
    let p = t.translation;
    format!("pos ({:.2}, {:.2}, {:.2})", p.x, p.y, p.z)
}

/// `--measure SECONDS`: once the first transaction applied and [`SETTLE`] passed, count the
/// bytes the link receives for SECONDS, print them per second, and exit.
fn measure(
    opts: Res<Opts>,
    stats: Res<MirrorStats>,
    links: Query<&NoodlesLink>,
    mut start: Local<Option<(Instant, u64)>>,
    mut first: Local<Option<Instant>>,
    mut exit: MessageWriter<AppExit>,
) {
    let Action::Measure(secs) = opts.action else {
        return;
    };
    let Some(link) = links.iter().next() else {
        return;
    };
    if stats.transactions_applied == 0 {
        return;
    }
    let first = *first.get_or_insert_with(Instant::now);
    if first.elapsed() < SETTLE {
        return;
    }
    let bytes = link.live_stats().bytes_in;
    let (t0, b0) = *start.get_or_insert((Instant::now(), bytes));
    let elapsed = t0.elapsed().as_secs_f64();
    if elapsed >= secs {
        let n = bytes - b0;
        println!(
            "received {n} bytes in {elapsed:.1} s after the initial state: {:.0} bytes/s",
            n as f64 / elapsed
        );
        exit.write(AppExit::Success);
    }
}

fn print_world(world: &mut World) {
    if !matches!(world.resource::<Opts>().action, Action::Print) {
        return;
    }
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
        if let Some(m) = e.get::<Mirrored>() {
            by_id.insert(m.id, e.id());
        }
    }
    let mut children: BTreeMap<Option<u64>, Vec<u64>> = BTreeMap::new();
    for (&id, &e) in &by_id {
        let parent = world
            .get::<ChildOf>(e)
            .and_then(|c| world.get::<Mirrored>(c.parent()))
            .map(|p| p.id);
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
                kinds(world, e).join(", "),
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
    let stats = world.resource::<MirrorStats>();
    let raw_assets = world.get_resource::<RawAssets>().map_or(0, RawAssets::len);
    println!(
        "summary: {} entities, {} roots, {} with Transform, {} lights, {} transactions applied, \
         {} component values and {} asset bodies kept as bytes, {} payloads of unknown types",
        by_id.len(),
        children.get(&None).map_or(0, Vec::len),
        transforms,
        lights.count(),
        applied,
        stats.raw_values,
        raw_assets,
        stats.unmapped_payloads,
    );
}

/// Mirrored entities whose transform changed this frame.
type MovedMirror = (With<Mirrored>, Changed<Transform>);

fn watch_changes(
    opts: Res<Opts>,
    progress: Res<Progress>,
    q: Query<(&Mirrored, Option<&Name>, &Transform), MovedMirror>,
) {
    if !opts.watch || !progress.printed {
        return;
    }
    for (id, name, t) in &q {
        println!(
            "#{} {} {}",
            id.id,
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
