//! The NOODLES2 codec, generated at build time from the Jaw schemas in `jaw/`.
//!
//! Every type of the protocol and of the Core extension is here under its Jaw name
//! (`Transaction`, `ContentModifyComponents`, `TransformComponent`, ...), with strict decoding
//! ([`Wire::decode`]), encoding ([`Wire::encode`]) and an id visitor ([`VisitIds`]).
//!
//! - `pack`s are `#[repr(C, packed)]` structs of explicit little-endian fields that derive
//!   zerocopy's traits, so runs of them can be viewed in place (`<[T]>::ref_from_bytes`).
//! - `seq`s are structs, `variant`s enums with one tuple option per discriminant, `enum`s Rust
//!   enums (unknown values become the `>` default or an error), `bits` newtypes with accessors,
//!   `dyn_array`s newtypes over `Vec`, `String` (arrays marked UTF-8 in `jaw/`) or `Bytes`.
//! - Decoding never panics: every read is bounds-checked, array counts are checked against the
//!   bytes left before anything is allocated, nesting is bounded by [`rt::MAX_DEPTH`], and errors
//!   say where they happened.

#![allow(
    clippy::all,
    non_camel_case_types,
    non_snake_case,
    missing_docs,
    reason = "generated code keeps the schema's names"
)]

pub mod rt;

/// Conversions between `Any` and Rust/Bevy values (the generated `any` module holds the type).
#[path = "any.rs"]
pub mod any_ext;

include!(concat!(env!("OUT_DIR"), "/codec/mod.rs"));

/// The list of every generated type, generated with the codec (see [`EVERY_TYPE`]).
pub mod every {
    use super::rt::{Bytes, DecodeError, EncodeError, Wire};
    use super::*;

    /// Why [`redecode`] failed.
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    pub enum RedecodeError {
        /// The frame does not decode as the type.
        #[error("{0}")]
        Decode(DecodeError),
        /// The decoded value does not encode again (a codec bug: every decoded value should).
        #[error("a decoded value does not encode again: {0}")]
        Encode(EncodeError),
    }

    /// Decode `b` as `T` and encode the value again.
    pub fn redecode<T: Wire>(b: Bytes) -> Result<Vec<u8>, RedecodeError> {
        let value = T::decode(b).map_err(RedecodeError::Decode)?;
        value.encode().map_err(RedecodeError::Encode)
    }

    include!(concat!(env!("OUT_DIR"), "/codec/every_type.rs"));
}
pub use every::EVERY_TYPE;

pub use any_ext::{AnyTypeError, any_type, any_type_name};
pub use rt::{
    DECODE_SLACK, DecodeError, DecodeErrorKind, EncodeError, EncodeErrorKind, IdMut, MEMORY_FACTOR,
    VisitIds, Wire, WireEnum,
};

impl AnAsset {
    /// `(extension, asset type identifier, asset id)`: the asset as a plain key, for maps.
    pub fn key(&self) -> (u16, u16, u64) {
        (
            self.asset_type.extension.id.get(),
            self.asset_type.identifier.get(),
            self.asset_id.id.get(),
        )
    }
}
