//! What the example hosts share.

use bevy::prelude::*;
use bevy_noodles2::prelude::*;

/// Prints `listening on ws://HOST:PORT` (the one line tools wait for) once the listener is bound;
/// if it cannot bind, prints the error and exits non-zero.
pub fn announce_listening(
    mut ready: MessageReader<ListenerReady>,
    mut exit: MessageWriter<AppExit>,
) {
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
