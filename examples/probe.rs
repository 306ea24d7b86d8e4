//! Ask a NOODLES2 session for its name and icon, without joining it.
//!
//! ```text
//! cargo run --example probe -- ws://127.0.0.1:50000
//! ```
//! Prints `name: ...` and `icon: N bytes`, or a clear error and a non-zero exit status.

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy_noodles2::prelude::*;

fn main() -> AppExit {
    let Some(url) = std::env::args().nth(1).filter(|a| !a.starts_with('-')) else {
        eprintln!("usage: probe ws://HOST:PORT");
        return AppExit::error();
    };
    App::new()
        .add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(2))))
        .add_plugins(NoodlesPlugin {
            session_name: "bevy_noodles2 probe".into(),
            ..default()
        })
        .add_systems(Startup, move |mut commands: Commands| {
            commands.spawn(NoodlesConnect::new(url.clone()).probe());
        })
        .add_systems(Update, report)
        .run()
}

fn report(
    mut answers: MessageReader<ProbeAnswered>,
    mut closed: MessageReader<LinkClosed>,
    mut exit: MessageWriter<AppExit>,
    mut done: Local<bool>,
) {
    if *done {
        return;
    }
    if let Some(a) = answers.read().next() {
        println!("name: {}", a.name);
        println!("icon: {} bytes", a.icon.len());
        *done = true;
        exit.write(AppExit::Success);
        return;
    }
    if let Some(c) = closed.read().next() {
        eprintln!("error: no probe reply: {}", c.reason);
        *done = true;
        exit.write(AppExit::error());
    }
}
