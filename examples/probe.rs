//! Ask a NOODLES2 session for its name and icon, without joining it.
//!
//! ```text
//! cargo run --example probe -- ws(s)://127.0.0.1:50000 [--token T] [--ca PEM]
//! ```
//! Prints `name: ...` and `icon: N bytes`, or a clear error and a non-zero exit status.

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::prelude::*;
use bevy_noodles2::prelude::*;

const USAGE: &str = "usage: probe ws(s)://HOST:PORT [--token T] [--ca PEM]";

fn main() -> AppExit {
    let mut args = std::env::args().skip(1);
    let (mut url, mut token, mut ca) = (None, None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--token" => token = args.next(),
            "--ca" => ca = args.next(),
            s if !s.starts_with('-') && url.is_none() => url = Some(arg),
            _ => url = None,
        }
    }
    let Some(url) = url else {
        eprintln!("{USAGE}");
        return AppExit::error();
    };
    let tls = match ca.map(ClientTls::with_roots_pem_file).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("error: {e}");
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
            if let Some(tls) = &tls {
                c = c.with_tls(tls.clone());
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
