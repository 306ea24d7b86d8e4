//! Fuzz the decoder of `MainSequenceMessage` (see `common::check` for the property).
#![no_main]

mod common;

use noodles2::codec::MainSequenceMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| common::check::<MainSequenceMessage>(data));
