//! Fuzz the decoder of `OOBReply` (see `common::check` for the property).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use noodles2::codec::OOBReply;

fuzz_target!(|data: &[u8]| common::check::<OOBReply>(data));
