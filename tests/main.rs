//! The one integration-test binary (one link of Bevy for every test). Each feature is a module.

mod common;

mod animation;
mod asset_registry;
mod assets;
mod auth;
mod billboard;
mod diagnostics;
mod environment;
mod export;
mod instances;
mod load;
mod mirror;
mod morph;
mod net;
mod oob;
mod parameters;
mod proposals;
mod raw;
mod render;
mod rpc;
mod skin;
mod text;
mod tls;
mod viewer;
