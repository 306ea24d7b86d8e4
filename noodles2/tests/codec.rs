//! Tests of the generated NOODLES2 codec and of the generator that writes it (issue 2).
//!
//! - [`golden`]: byte vectors computed by hand from the spec's `.jaw` layouts, checked both ways.
//! - [`roundtrip`]: proptest round trips for every generated type (`for_every_codec_type!`).
//! - [`robust`]: truncations, random mutations and hostile frames never panic; errors are typed,
//!   say where they happened, and are raised before anything big is allocated.
//! - [`generator`]: the Jaw parser's errors, every construct, Rust keywords as names, and a
//!   checked-in fixture of generated code that must compile (`codec/fixture_gen.rs`).
//! - [`drift`]: the compiled codec equals what `jaw/` generates now, and `jaw/` equals the spec.

/// See [`jaw`].
#[path = "../src/codegen/gen.rs"]
#[allow(dead_code)]
mod r#gen;
/// The Jaw parser and the code generator, exactly as `build.rs` and `codegen` use them.
#[path = "../src/codegen/jaw.rs"]
#[allow(dead_code)]
mod jaw;

// proptest strategies for every codec type (`strategies::strat_<Name>`) and `for_every_codec_type!`.
include!(concat!(env!("OUT_DIR"), "/codec/strategies.rs"));

// Explicit paths: this file is a module of the `protocol` test binary (tests/main.rs).
#[path = "codec/alloc.rs"]
mod alloc;
#[path = "codec/drift.rs"]
mod drift;
#[path = "codec/generator.rs"]
mod generator;
#[path = "codec/golden.rs"]
mod golden;
#[path = "codec/memory.rs"]
mod memory;
#[path = "codec/robust.rs"]
mod robust;
#[path = "codec/roundtrip.rs"]
mod roundtrip;

/// Parse a hex string, ignoring whitespace.
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {s:?}"
    );
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex digit"))
        .collect()
}

/// Format bytes as lowercase hex (for readable assertion failures).
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
