//! Host the built-in demo scene as a NOODLES2 Upstream.
//!
//! ```text
//! cargo run --example host -- [--listen HOST:PORT] [--name NAME] [--entities N] [-v]
//! ```
//! Prints one line, `listening on ws://HOST:PORT`, once it accepts connections, then nothing more
//! unless `-v` is given. Runs until killed.

use std::time::Duration;

use anyhow::{Context, bail};
use bevy::app::ScheduleRunnerPlugin;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_noodles2::demo::DemoScenePlugin;
use bevy_noodles2::prelude::*;

struct Args {
    listen: String,
    name: String,
    entities: usize,
    verbose: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        listen: "127.0.0.1:50000".into(),
        name: "bevy_noodles2 demo".into(),
        entities: 100,
        verbose: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--listen" => a.listen = it.next().context("--listen needs HOST:PORT")?,
            "--name" => a.name = it.next().context("--name needs a value")?,
            "--entities" => {
                a.entities = it
                    .next()
                    .context("--entities needs N")?
                    .parse()
                    .context("--entities needs a number")?
            }
            "-v" | "--verbose" => a.verbose = true,
            "-h" | "--help" => {
                println!("usage: host [--listen HOST:PORT] [--name NAME] [--entities N] [-v]");
                std::process::exit(0);
            }
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
    if args.verbose {
        app.add_plugins(LogPlugin::default());
    }
    // Headless: assets exist (so meshes and materials can be shared) but nothing renders.
    app.add_plugins(AssetPlugin::default())
        .init_asset::<Mesh>()
        .init_asset::<StandardMaterial>()
        .init_asset::<Image>()
        .add_plugins(NoodlesPlugin {
            session_name: args.name.clone(),
            ..default()
        })
        .add_plugins(DemoScenePlugin {
            entities: args.entities,
        });
    let listen = args.listen.clone();
    app.add_systems(Startup, move |mut commands: Commands| {
        commands.spawn(NoodlesListener::new(listen.clone()));
    })
    .add_systems(Update, announce);
    match app.run() {
        AppExit::Success => Ok(()),
        AppExit::Error(code) => std::process::exit(code.get() as i32),
    }
}

fn announce(mut ready: MessageReader<ListenerReady>, mut exit: MessageWriter<AppExit>) {
    for r in ready.read() {
        match &r.result {
            Ok(addr) => {
                use std::io::Write;
                println!("listening on ws://{addr}");
                let _ = std::io::stdout().flush();
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit.write(AppExit::error());
            }
        }
    }
}
