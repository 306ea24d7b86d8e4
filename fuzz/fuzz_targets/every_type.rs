//! Fuzz the decoder of every generated type, from the list generated with the codec
//! (`noodles2::codec::EVERY_TYPE`, so a new type in `jaw/` is fuzzed without touching this file):
//! the first two bytes select the type, the rest is the frame. Decoding must never panic; what
//! decodes re-encodes to exactly as many bytes, and that encoding is a fixed point.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use noodles2::codec::EVERY_TYPE;

fuzz_target!(|data: &[u8]| {
    let [a, b, frame @ ..] = data else {
        return;
    };
    let (name, redecode) = EVERY_TYPE[usize::from(u16::from_le_bytes([*a, *b])) % EVERY_TYPE.len()];
    let Ok(encoded) = redecode(Bytes::copy_from_slice(frame)) else {
        return;
    };
    assert_eq!(encoded.len(), frame.len(), "a decoded {name} changed size");
    let again = redecode(Bytes::from(encoded.clone())).expect("a re-encoded value decodes");
    assert_eq!(again, encoded, "the encoding of a {name} is not stable");
});
