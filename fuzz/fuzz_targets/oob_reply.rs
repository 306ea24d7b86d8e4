//! Fuzz the decoder of `OOBReply` (see `common::check` for the property).
#![no_main]

mod common;

use noodles2::codec::OOBReply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::check::<OOBReply>(data));
