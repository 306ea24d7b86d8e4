//! Fuzz the decoder of `OOBRequest` (see `common::check` for the property).
#![no_main]

mod common;

use noodles2::codec::OOBRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::check::<OOBRequest>(data));
