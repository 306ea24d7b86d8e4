//! Host the built-in demo scene as a NOODLES2 Upstream.
//!
//! ```text
//! cargo run --example host -- [--listen HOST:PORT [--tls-cert PEM --tls-key PEM] | --connect ws(s)://HOST:PORT [--ca PEM]] [--name NAME] [--entities N] [--deny-proposals] [--token T] [-v] [--diagnostics]
//! ```
//! Prints one line, `listening on ws://HOST:PORT`, once it accepts connections, then nothing more
//! unless `-v` is given (logs) or `--diagnostics` (the NOODLES2 diagnostics logged every second:
//! links, bytes and messages per second, round-trip time, entities, assets, latencies). Runs
//! until killed. With `--tls-cert` and `--tls-key` it serves `wss://` (and prints
//! `listening on wss://HOST:PORT`); `--ca` adds a root for a `wss://` viewer.
//!
//! `--connect` pushes the scene instead: it connects to a viewer that listens
//! (`cargo run --example viewer -- --listen HOST:PORT`) and asks to be its Upstream, prints
//! `pushing to ws://HOST:PORT` once the viewer agreed, and exits when the link closes (non-zero
//! with the reason).
//!
//! Accepts every well-formed proposal (`--deny-proposals`: denies them all with code 1) and shares
//! three RPC endpoints: `echo ...` (completes with its arguments as an array), `count_entities`
//! (completes with the number of shared entities) and `countdown N` (streams N, N-1, ..., 1, one
//! per frame, then completes with 0). Try them with the inspector:
//! `cargo run --example inspect -- ws://127.0.0.1:50000 --call countdown 3`. The demo's
//! parameters (motion, speed, spheres, color, and a reset button calling `demo.reset`) are edited
//! by proposal, which the same policy decides; the demo corrects values out of range.

mod common;

use std::time::Duration;

use anyhow::{Context, bail};
use bevy::app::ScheduleRunnerPlugin;
use bevy::diagnostic::LogDiagnosticsPlugin;
use bevy::log::LogPlugin;
use bevy::mesh::skinning::SkinnedMeshInverseBindposes;
use bevy::prelude::*;
use bevy_noodles2::demo::DemoScenePlugin;
use bevy_noodles2::prelude::*;
use bevy_noodles2::rpc::DemoEndpointsPlugin;

struct Args {
    listen: String,
    connect: Option<String>,
    name: String,
    entities: usize,
    deny_proposals: bool,
    token: Option<String>,
    tls: common::TlsArgs,
    verbose: bool,
    diagnostics: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        listen: "127.0.0.1:50000".into(),
        connect: None,
        name: "bevy_noodles2 demo".into(),
        entities: 100,
        deny_proposals: false,
        token: None,
        tls: common::TlsArgs::default(),
        verbose: false,
        diagnostics: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => a.listen = it.next().context("--listen needs HOST:PORT")?,
            "--connect" => a.connect = Some(it.next().context("--connect needs ws://HOST:PORT")?),
            "--name" => a.name = it.next().context("--name needs a value")?,
            "--entities" => {
                a.entities = it
                    .next()
                    .context("--entities needs N")?
                    .parse()
                    .context("--entities needs a number")?
            }
            "--deny-proposals" => a.deny_proposals = true,
            "--token" => a.token = Some(it.next().context("--token needs a value")?),
            "-v" | "--verbose" => a.verbose = true,
            "--diagnostics" => a.diagnostics = true,
            "-h" | "--help" => {
                println!(
                    "usage: host [--listen HOST:PORT {} | --connect ws(s)://HOST:PORT {}] [--name NAME] [--entities N] [--deny-proposals] [--token T] [-v] [--diagnostics]",
                    common::SERVER_TLS_USAGE,
                    common::CLIENT_TLS_USAGE
                );
                std::process::exit(0);
            }
            other if a.tls.take(other, &mut it)? => {}
            other => bail!("unknown argument `{other}` (try --help)"),
        }
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut app = App::new();
    app.add_plugins(
        MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(
            1.0 / 60.0,
        ))),
    );
    if args.verbose || args.diagnostics {
        app.add_plugins(LogPlugin::default());
    }
    if args.diagnostics {
        app.add_plugins((NoodlesDiagnosticsPlugin, LogDiagnosticsPlugin::default()));
    }
    // Headless: assets exist (so meshes, images and, with Bevy's renderer compiled in,
    // materials can be shared) but nothing renders.
    app.add_plugins(AssetPlugin::default())
        .init_asset::<Mesh>()
        .init_asset::<Image>()
        .init_asset::<SkinnedMeshInverseBindposes>();
    #[cfg(feature = "render")]
    app.init_asset::<StandardMaterial>();
    app.add_plugins(NoodlesPlugin {
        session_name: args.name.clone(),
        ..default()
    })
    .add_plugins(DemoScenePlugin {
        entities: args.entities,
    })
    .add_plugins(DemoEndpointsPlugin)
    .insert_resource(if args.deny_proposals {
        ProposalPolicy::deny_all()
    } else {
        ProposalPolicy::accept_all()
    });
    // The demo lets its Downstreams propose (the policy above decides); with --token only
    // holders of the token may connect at all.
    let permissions = if args.deny_proposals {
        LinkPermissions::default()
    } else {
        LinkPermissions::allow_all()
    };
    match args.connect.clone() {
        None => {
            let mut listener = args.tls.listener(&args.listen)?.grant(permissions);
            if let Some(token) = args.token.clone() {
                listener = listener.with_tokens([(token, Principal::new("token holder"))]);
            }
            let mut listener = Some(listener);
            app.add_systems(Startup, move |mut commands: Commands| {
                if let Some(l) = listener.take() {
                    commands.spawn(l);
                }
            })
            .add_systems(Update, common::announce_listening);
        }
        Some(url) => {
            let mut connect = NoodlesConnect::new(url).as_upstream().grant(permissions);
            if let Some(tls) = args.tls.client()? {
                connect = connect.with_tls(tls);
            }
            if let Some(token) = args.token.clone() {
                connect = connect.with_token(token);
            }
            app.add_systems(Startup, move |mut commands: Commands| {
                commands.spawn(connect.clone());
            })
            .add_systems(Update, report_push);
        }
    }
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => std::process::exit(code.get() as i32),
    }
}

/// `--connect`: say when the viewer agreed, and exit when the link closes.
fn report_push(
    mut opened: MessageReader<LinkOpened>,
    mut closed: MessageReader<LinkClosed>,
    connects: Query<&NoodlesConnect>,
    mut exit: MessageWriter<AppExit>,
) {
    for o in opened.read() {
        let url = connects.get(o.link).map(|c| c.url.as_str()).unwrap_or("?");
        println!("pushing to {url} (`{}`)", o.peer_name);
    }
    if let Some(c) = closed.read().next() {
        eprintln!("link closed: {}", c.reason);
        exit.write(AppExit::error());
    }
}
