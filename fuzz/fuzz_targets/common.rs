//! The property every fuzz target checks, shared by all of them.

use bytes::Bytes;
use noodles2::codec::Wire;

/// Decode `data` as `T`. Decoding must never panic; an error must render (with its path). A value
/// that decodes must re-encode to exactly `wire_len` bytes, as many as it was decoded from (the
/// format has one size per value), and that encoding is a fixed point:
/// decoding it and encoding again gives the same bytes. (The first re-encoding may differ from
/// `data` itself, since decoding normalizes, e.g. unknown enum values to the declared default.)
pub fn check<T: Wire>(data: &[u8]) {
    let value = match T::decode(Bytes::copy_from_slice(data)) {
        Ok(v) => v,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let encoded = value.encode().expect("a decoded value re-encodes");
    assert_eq!(
        value.wire_len(),
        encoded.len(),
        "wire_len of a decoded {}",
        T::NAME
    );
    assert_eq!(
        encoded.len(),
        data.len(),
        "a decoded {} changed size when re-encoded",
        T::NAME
    );
    let again = T::decode(Bytes::from(encoded.clone())).expect("a re-encoded value decodes");
    assert_eq!(
        again.encode().expect("re-encodes"),
        encoded,
        "the encoding of a {} is not stable",
        T::NAME
    );
}
