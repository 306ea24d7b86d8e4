//! Fuzz the decoder of `MainSequenceMessage` (see `common::check` for the property).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use noodles2::codec::MainSequenceMessage;

fuzz_target!(|data: &[u8]| common::check::<MainSequenceMessage>(data));
