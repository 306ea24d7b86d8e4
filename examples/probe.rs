//! Ask a NOODLES2 session for its name and icon, without joining it.
//!
//! ```text
//! cargo run --example probe -- ws://127.0.0.1:50000 [--token T]
//! ```
//! Prints `name: ...` and `icon: N bytes`, or a clear error and a non-zero exit status.

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy_noodles2::prelude::*;

fn main() -> AppExit {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, token) = match args.as_slice() {
        [url] if !url.starts_with('-') => (url.clone(), None),
        [url, flag, token] if !url.starts_with('-') && flag == "--token" => {
            (url.clone(), Some(token.clone()))
        }
        _ => {
            eprintln!("usage: probe ws://HOST:PORT [--token T]");
            return AppExit::error();
        }
    };
    App::new()
        .add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(2))))
        .add_plugins(NoodlesPlugin {
            session_name: "bevy_noodles2 probe".into(),
            ..default()
        })
        .add_systems(Startup, move |mut commands: Commands| {
            let mut c = NoodlesConnect::new(url.clone()).probe();
            if let Some(t) = &token {
                c = c.with_token(t.clone());
            }
            commands.spawn(c);
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
