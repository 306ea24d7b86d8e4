//! Fuzz the sans-IO link state machine: both sides and every client intent, fed an arbitrary
//! sequence of frames, timeouts and application sends. It must never panic, emit nothing after
//! `Closed`, and agree with `is_closed` once closed.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::link::{ClientIntent, Link, LinkConfig, LinkEvent};

/// The next `len`-prefixed chunk (u16 length, cut to what is left).
fn chunk<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let len = match data {
        [a, b, ..] => u16::from_le_bytes([*a, *b]) as usize,
        _ => 0,
    };
    *data = data.get(2..).unwrap_or(&[]);
    let len = len.min(data.len());
    let (c, rest) = data.split_at(len);
    *data = rest;
    c
}

fuzz_target!(|input: &[u8]| {
    let Some((&side, mut data)) = input.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let config = LinkConfig::default();
    let mut link = match side % 4 {
        0 => Link::server(now, config),
        1 => Link::client(now, config, ClientIntent::Join),
        2 => Link::client(now, config, ClientIntent::JoinAsUpstream),
        _ => Link::client(now, config, ClientIntent::Probe),
    };
    let mut closed = false;
    while let Some((&op, rest)) = data.split_first() {
        data = rest;
        match op % 4 {
            0 | 1 => {
                let frame = Bytes::copy_from_slice(chunk(&mut data));
                link.handle_frame(now, frame);
            }
            2 => {
                let step = data.first().copied().unwrap_or(0);
                data = data.get(1..).unwrap_or(&[]);
                now += Duration::from_millis(u64::from(step) * 250);
                link.handle_timeout(now);
            }
            _ => {
                let frame = Bytes::copy_from_slice(chunk(&mut data));
                let _ = link.send_encoded(frame);
            }
        }
        while link.poll_transmit().is_some() {}
        while let Some(event) = link.poll_event() {
            assert!(!closed, "an event after Closed: {event:?}");
            closed = matches!(event, LinkEvent::Closed(_));
        }
        if closed {
            assert!(link.is_closed());
        }
    }
});
