//! What the example hosts share.

use bevy::prelude::*;
use bevy_noodles2::prelude::*;

/// Prints `listening on ws://HOST:PORT` (`wss://` with TLS; the one line tools wait for) once
/// the listener is bound; if it cannot bind, prints the error and exits non-zero.
pub fn announce_listening(
    mut ready: MessageReader<ListenerReady>,
    listeners: Query<&NoodlesListener>,
    mut exit: MessageWriter<AppExit>,
) {
    for r in ready.read() {
        match &r.result {
            Ok(addr) => {
                use std::io::Write;
                let url = listeners
                    .get(r.listener)
                    .ok()
                    .and_then(NoodlesListener::url);
                println!(
                    "listening on {}",
                    url.unwrap_or_else(|| format!("ws://{addr}"))
                );
                let _ = std::io::stdout().flush();
            }
            Err(e) => {
                eprintln!("error: {e}");
                exit.write(AppExit::error());
            }
        }
    }
}

/// The TLS flags of the examples: `--tls-cert PEM --tls-key PEM` (a listener serves `wss://`)
/// and `--ca PEM` (extra roots trusted when connecting to `wss://`).
#[derive(Debug, Default)]
pub struct TlsArgs {
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
    ca: Option<std::path::PathBuf>,
}

/// How the TLS flags read in usage lines.
#[allow(dead_code, reason = "each example uses the part it needs")]
pub const SERVER_TLS_USAGE: &str = "[--tls-cert PEM --tls-key PEM]";
/// How the client TLS flag reads in usage lines.
#[allow(dead_code, reason = "each example uses the part it needs")]
pub const CLIENT_TLS_USAGE: &str = "[--ca PEM]";

impl TlsArgs {
    /// Take `flag` (and its value from `rest`) if it is a TLS flag; false otherwise.
    pub fn take(
        &mut self,
        flag: &str,
        rest: &mut impl Iterator<Item = String>,
    ) -> anyhow::Result<bool> {
        use anyhow::Context;
        let slot = match flag {
            "--tls-cert" => &mut self.cert,
            "--tls-key" => &mut self.key,
            "--ca" => &mut self.ca,
            _ => return Ok(false),
        };
        *slot = Some(
            rest.next()
                .with_context(|| format!("{flag} needs a PEM file"))?
                .into(),
        );
        Ok(true)
    }

    /// The listener's certificate and key, when both were given.
    #[allow(dead_code, reason = "each example uses the part it needs")]
    pub fn server(&self) -> anyhow::Result<Option<ServerTls>> {
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Ok(Some(ServerTls::from_pem_files(cert, key)?)),
            (None, None) => Ok(None),
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        }
    }

    /// The roots to trust for `wss://`, with `--ca`.
    #[allow(dead_code, reason = "each example uses the part it needs")]
    pub fn client(&self) -> anyhow::Result<Option<ClientTls>> {
        self.ca
            .as_ref()
            .map(ClientTls::with_roots_pem_file)
            .transpose()
            .map_err(Into::into)
    }

    /// A listener on `addr`, serving `wss://` when a certificate was given.
    #[allow(dead_code, reason = "each example uses the part it needs")]
    pub fn listener(&self, addr: &str) -> anyhow::Result<NoodlesListener> {
        Ok(match self.server()? {
            Some(tls) => {
                let addr = bevy_noodles2::transport::strip_ws_scheme(addr);
                NoodlesListener::new(format!("wss://{addr}")).with_tls(tls)
            }
            None => NoodlesListener::new(addr),
        })
    }
}
