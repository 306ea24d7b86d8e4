//! The one integration-test binary of `noodles2`: the codec and its generator, and the sans-IO
//! link, proposal checking, and (feature `transport`) the websocket transport over loopback. No
//! Bevy anywhere (`cargo test -p noodles2`).

mod codec;
mod link;
mod proposal;
#[cfg(feature = "transport")]
mod transport;
