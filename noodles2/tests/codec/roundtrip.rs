//! Round trips for every generated type (one test per type, named after it): for a random value
//! `x`, `bytes = x.encode()`, `y = T::decode(bytes)`, then `y.encode() == bytes` and
//! `y.wire_len() == x.wire_len() == bytes.len()`; for a type with a `FIXED_SIZE`, `read_fixed(bytes)`
//! gives the same value. Bytes are compared rather than values so that
//! NaN floats and unknown-but-kept raw enum values are covered too.

use bytes::Bytes;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::strategies::*;

/// How deep the strategies nest recursive types (`Any` in `Any` ...).
pub const DEPTH: u32 = 3;

/// Cases per type: modest, so all types together stay fast.
const CASES: u32 = 64;

pub fn config() -> Config {
    Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The round-trip property for one value.
pub fn roundtrip<T: noodles2::codec::Wire + std::fmt::Debug>(x: &T) -> Result<(), TestCaseError> {
    let bytes = x
        .encode()
        .map_err(|e| TestCaseError::fail(format!("encode: {e}")))?;
    proptest::prop_assert_eq!(x.wire_len(), bytes.len(), "wire_len of the original");
    let y = T::decode(Bytes::from(bytes.clone()))
        .map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    let again = y
        .encode()
        .map_err(|e| TestCaseError::fail(format!("re-encode: {e}")))?;
    proptest::prop_assert_eq!(&again, &bytes, "re-encoding the decoded value of {:?}", x);
    proptest::prop_assert_eq!(y.wire_len(), bytes.len(), "wire_len of the decoded value");
    // A fixed-size type reads the same value from its bytes alone, and refuses other lengths.
    match T::FIXED_SIZE {
        Some(size) => {
            proptest::prop_assert_eq!(size, bytes.len(), "FIXED_SIZE");
            let z = T::read_fixed(&bytes)
                .ok_or_else(|| TestCaseError::fail("read_fixed refused its own bytes"))?;
            proptest::prop_assert_eq!(z.encode().ok(), Some(bytes.clone()), "read_fixed");
            if let Some(short) = bytes.get(1..) {
                proptest::prop_assert!(T::read_fixed(short).is_none(), "read_fixed, short");
            }
        }
        None => proptest::prop_assert!(T::read_fixed(&bytes).is_none(), "read_fixed, no size"),
    }
    Ok(())
}

macro_rules! roundtrip_test {
    ($t:ident, $s:ident) => {
        #[test]
        #[allow(non_snake_case)]
        fn $t() {
            let mut runner = TestRunner::new(config());
            if let Err(e) = runner.run(&$s(DEPTH), |x: noodles2::codec::$t| roundtrip(&x)) {
                panic!("{} round trip: {e}", stringify!($t));
            }
        }
    };
}

for_every_codec_type!(roundtrip_test);

/// How many types the macro covers (a schema change that drops the macro to nothing would be noticed).
#[test]
fn every_type_is_covered() {
    let mut n = 0;
    macro_rules! count {
        ($t:ident, $s:ident) => {
            n += 1;
        };
    }
    for_every_codec_type!(count);
    let declared: usize = {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../jaw");
        let mut count = 0;
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).expect("jaw/ is readable").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "jaw") {
                    let text = std::fs::read_to_string(&p).expect("read");
                    count += text
                        .lines()
                        .map(|l| l.split('#').next().unwrap_or("").trim())
                        .filter(|l| {
                            [
                                "pack ",
                                "seq ",
                                "enum ",
                                "bits ",
                                "variant ",
                                "fixed_array ",
                                "dyn_array ",
                            ]
                            .iter()
                            .any(|k| l.starts_with(k))
                                || ["pack", "seq"].contains(l)
                        })
                        .count();
                }
            }
        }
        count
    };
    assert_eq!(
        n, declared,
        "for_every_codec_type! covers {n} types, jaw/ declares {declared}"
    );
}
