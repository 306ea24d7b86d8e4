//! Fuzz the decoder of `OOBRequest` (see `common::check` for the property).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use noodles2::codec::OOBRequest;

fuzz_target!(|data: &[u8]| common::check::<OOBRequest>(data));
