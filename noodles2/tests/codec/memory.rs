//! Memory bounded by input (issue 11): decoding a frame of `n` bytes allocates at most
//! `MEMORY_FACTOR × n + DECODE_SLACK` bytes, for every generated type and every nesting, and
//! a frame that would need more is refused before its elements are allocated.

use bytes::Bytes;
use noodles2::codec::*;

use super::alloc::measure;

/// The documented bound for a frame of `len` bytes.
fn bound(len: usize) -> usize {
    len * MEMORY_FACTOR + DECODE_SLACK
}

fn invoke(args: Vec<Any>) -> Bytes {
    MainSequenceMessage::RPCInvoke(RPCInvoke {
        this_invoke_id: 1,
        endpoint: EntityID::new(1),
        args: RPCArgumentList(args),
    })
    .encode_bytes()
    .expect("encodes")
}

/// Decode `bytes` as a main-sequence message, checking the allocations against the bound.
fn decode_bounded(what: &str, bytes: Bytes) -> Result<MainSequenceMessage, DecodeError> {
    let len = bytes.len();
    let (r, allocs) = measure(|| MainSequenceMessage::decode(bytes));
    assert!(
        allocs.total <= bound(len),
        "{what}: a {len}-byte frame allocated {} bytes (bound {})",
        allocs.total,
        bound(len)
    );
    r
}

#[test]
fn a_flat_array_of_empty_values_is_refused_within_the_bound() {
    // 1 MiB of `Any::Void` (1 byte each on the wire, 40 in memory): the old amplification.
    let n = 1 << 20;
    let bytes = invoke(vec![Any::AnyArray(AnyArray(vec![Any::Void; n]))]);
    let e = decode_bounded("flat voids", bytes).expect_err("amplifying frame decoded");
    assert!(
        matches!(e.kind, DecodeErrorKind::MemoryBudget { .. }),
        "refused for another reason: {e}"
    );
    assert!(
        e.to_string()
            .starts_with("MainSequenceMessage::RPCInvoke.args[0].AnyArray"),
        "{e}"
    );
}

#[test]
fn nested_arrays_and_maps_stay_within_the_bound() {
    // Arrays of empty arrays, maps of empty strings to empty maps, three levels deep: each level
    // multiplies elements of a few bytes on the wire into tens of bytes in memory.
    let empty_array = Any::AnyArray(AnyArray(Vec::new()));
    let pair = AnyKeyPair {
        key: Any::AnyString(AnyString(String::new())),
        value: Any::AnyMap(AnyMap(Vec::new())),
    };
    let level1 = Any::AnyArray(AnyArray(vec![empty_array; 64]));
    let level2 = Any::AnyArray(AnyArray(vec![level1; 64]));
    let maps = Any::AnyMap(AnyMap(vec![pair; 4096]));
    for (what, args) in [
        (
            "nested arrays",
            vec![Any::AnyArray(AnyArray(vec![level2; 64]))],
        ),
        ("maps of empties", vec![maps.clone(), maps]),
    ] {
        let _ = decode_bounded(what, invoke(args));
    }
}

#[test]
fn every_generated_type_decodes_within_the_bound() {
    // Every frame the generated strategies make (every codec type, nested values included)
    // decodes within the bound.
    for f in super::robust::generated_frames() {
        let len = f.bytes.len();
        let (r, allocs) = measure(|| (f.redecode)(Bytes::from(f.bytes.clone())));
        r.unwrap_or_else(|e| panic!("{} does not decode: {e}", f.name));
        // The re-encoding allocates too: at most the frame's size again (plus a little).
        assert!(
            allocs.total <= bound(len) + 2 * len + 1024,
            "{}: a {len}-byte frame allocated {} bytes",
            f.name,
            allocs.total
        );
    }
}

#[test]
fn realistic_messages_fit_easily() {
    // An RPC call with 10,000 floats and strings, a transaction of 10,000 transforms.
    let args: Vec<Any> = (0..10_000)
        .map(|i| {
            if i % 2 == 0 {
                Any::F64(i as f64)
            } else {
                Any::AnyString(AnyString(format!("value {i}")))
            }
        })
        .collect();
    decode_bounded(
        "floats and strings",
        invoke(vec![Any::AnyArray(AnyArray(args))]),
    )
    .expect("a realistic call decodes");
    let bools = invoke(vec![Any::AnyArray(AnyArray(vec![Any::U8(1); 100_000]))]);
    decode_bounded("booleans", bools).expect("an array of booleans as Any decodes");
}
