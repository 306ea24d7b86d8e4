//! Fuzz the decoder of `PreMessage` (see `common::check` for the property).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use noodles2::codec::PreMessage;

fuzz_target!(|data: &[u8]| common::check::<PreMessage>(data));
