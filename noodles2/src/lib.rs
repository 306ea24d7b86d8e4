//! The NOODLES2 protocol without an engine: the codec generated from the Jaw schemas, the
//! sans-IO connection state machine, and (with the `transport` feature) websocket transport and
//! out-of-band asset channels. `bevy_noodles2` builds its Bevy plugin on this crate; a relay, a
//! recorder, a command-line tool or a fuzz target can use it alone.
//!
//! | module | holds |
//! | --- | --- |
//! | [`codec`] | every protocol and Core type under its Jaw name, strict decoding with errors that say where, encoding, id visitors, [`codec::Any`] |
//! | [`assets`] | Core asset bodies from the wire, validated without an engine: [`assets::decode_mesh`], buffer views, [`assets::AssetError`] |
//! | [`proposal`] | checking a proposal on the Upstream without an engine: [`proposal::check`] over a [`proposal::ProposalWorld`] |
//! | [`link`] | [`link::Link`]: preamble, roles, capability intersection, timeouts, keep-alive, role checks; fed frames and time, returns frames, events and close reasons |
//! | `transport` (feature `transport`) | websocket (`ws://` and `wss://`) listen/connect with tokio-tungstenite, one task per connection driving a [`link::Link`], bounded queues |
//! | `auth` (feature `transport`) | who may connect: the authorization hook at the websocket upgrade, bearer tokens, principals |
//! | `tls` (feature `transport`) | `wss://` with rustls (ring): a listener's certificate and key from PEM, the roots a client trusts |
//! | `oob` (feature `transport`) | the out-of-band asset server and client; `fetch_url` for `BufferFromURL` (feature `url`) |
//! | `codegen` (feature `codegen`) | the Jaw parser and generator, for an application's own schemas from its `build.rs` |
//!
//! ```
//! use noodles2::codec::{MainSequenceMessage, Wire};
//!
//! // Decoding is strict: a truncated frame is an error that says where, never a panic.
//! let err = MainSequenceMessage::decode(bytes::Bytes::from_static(&[1, 0])).unwrap_err();
//! println!("{err}");
//! ```
//!
//! Cargo features:
#![doc = document_features::document_features!()]
#![warn(missing_docs)]

pub mod animation;
pub mod assets;
#[cfg(feature = "transport")]
pub mod auth;
pub mod codec;
#[cfg(feature = "codegen")]
pub mod codegen;
pub mod link;
#[cfg(feature = "transport")]
pub mod oob;
pub mod proposal;
#[cfg(feature = "transport")]
pub mod tls;
#[cfg(feature = "transport")]
pub mod transport;

/// Include the modules that `codegen::compile` (feature `codegen`) wrote from an application's
/// schemas (in the application's crate, where its `build.rs` ran): `noodles2::include_schema!();`
/// inside a module.
#[macro_export]
macro_rules! include_schema {
    () => {
        include!(concat!(env!("OUT_DIR"), "/noodles2_schema/mod.rs"));
    };
}
