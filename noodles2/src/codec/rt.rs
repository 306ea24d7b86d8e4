//! The hand-written runtime the generated codec builds on: the [`Wire`] trait, the bounds-checked
//! [`Reader`], typed errors with paths, and the id visitor.

use std::fmt;

pub use bytes::Bytes;
/// zerocopy, for the derives of code generated in other crates (`#[zerocopy(crate = ...)]`).
pub use zerocopy;
pub use zerocopy::little_endian::{F32, F64, I16, I32, I64, U16, U32, U64};
pub use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

/// How deep variants may nest (`Any` inside `Any` ...) before decoding gives up.
pub const MAX_DEPTH: u32 = 64;

/// Decoding a frame of `n` bytes allocates at most `MEMORY_FACTOR × n + DECODE_SLACK` bytes:
/// every array charges the in-memory size of its elements to the [`Reader`]'s budget before it
/// is allocated, and a frame whose decoded form would need more is refused
/// ([`DecodeErrorKind::MemoryBudget`]). Byte arrays are zero-copy slices of the frame and cost
/// nothing. The factor leaves room for every realistic message (a transaction decodes to about
/// its own size; an `Any` takes 40 bytes in memory: 20 times the 2 bytes of a boolean, 4.4
/// times the 9 of a float) and refuses the amplification attacks (an `Any` of nothing is 1 byte
/// on the wire, an empty key/value pair 2 bytes for 80 in memory).
pub const MEMORY_FACTOR: usize = 24;
/// The part of the decode budget that does not depend on the frame's size.
pub const DECODE_SLACK: usize = 64 * 1024;

/// One step of the path to the place a decode or encode error happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// The type decoded at the top level.
    Root(&'static str),
    /// A member of a `seq` or `pack`.
    Field(&'static str),
    /// An element of an array.
    Index(usize),
    /// The option taken in a `variant`.
    Variant(&'static str),
}

/// Where in a message an error happened, e.g.
/// `MainSequenceMessage::Transaction.content[3].ContentModifyComponents.content`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WirePath {
    /// Innermost first (the order errors are annotated while unwinding).
    segs: Vec<PathSeg>,
}

impl WirePath {
    fn push(&mut self, seg: PathSeg) {
        self.segs.push(seg);
    }
}

impl fmt::Display for WirePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prev_root = false;
        for (i, seg) in self.segs.iter().rev().enumerate() {
            match seg {
                PathSeg::Root(n) => write!(f, "{n}")?,
                PathSeg::Field(n) => write!(f, "{}{n}", if i == 0 { "" } else { "." })?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
                PathSeg::Variant(n) if prev_root => write!(f, "::{n}")?,
                PathSeg::Variant(n) => write!(f, "{}{n}", if i == 0 { "" } else { "." })?,
            }
            prev_root = matches!(seg, PathSeg::Root(_));
        }
        Ok(())
    }
}

/// What went wrong while decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    #[error("needs {needed} bytes but only {left} are left")]
    UnexpectedEnd { needed: usize, left: usize },
    #[error("count {count} exceeds the {left} bytes left")]
    CountExceedsRemaining { count: u64, left: usize },
    #[error("unknown discriminant {value}")]
    UnknownDiscriminant { value: u64 },
    #[error("unknown enum value {value} (the enum declares no default)")]
    UnknownEnumValue { value: u64 },
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("{count} trailing bytes after the message")]
    TrailingBytes { count: usize },
    #[error("nested deeper than {limit} levels")]
    TooDeep { limit: u32 },
    #[error(
        "decoding needs {needed} more bytes of memory but only {left} are left of its budget (MEMORY_FACTOR times the frame's size)"
    )]
    MemoryBudget { needed: usize, left: usize },
}

/// A decode error: what went wrong, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub path: WirePath,
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    pub fn new(kind: DecodeErrorKind) -> Self {
        DecodeError {
            path: WirePath::default(),
            kind,
        }
    }
    #[inline(never)]
    #[cold]
    pub fn at(mut self, seg: PathSeg) -> Self {
        self.path.push(seg);
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.segs.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.path, self.kind)
        }
    }
}

impl std::error::Error for DecodeError {}

/// What went wrong while encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeErrorKind {
    #[error("{len} elements do not fit a count of at most {max}")]
    TooLong { len: usize, max: u64 },
}

/// An encode error: a value that the wire format cannot carry, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    pub path: WirePath,
    pub kind: EncodeErrorKind,
}

impl EncodeError {
    pub fn new(kind: EncodeErrorKind) -> Self {
        EncodeError {
            path: WirePath::default(),
            kind,
        }
    }
    #[inline(never)]
    #[cold]
    pub fn at(mut self, seg: PathSeg) -> Self {
        self.path.push(seg);
        self
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.segs.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.path, self.kind)
        }
    }
}

impl std::error::Error for EncodeError {}

/// A bounds-checked cursor over a frame. Byte arrays are handed out as zero-copy [`Bytes`] slices.
pub struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    depth: u32,
    /// Bytes of memory decoding may still allocate (see [`MEMORY_FACTOR`]).
    budget: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a Bytes) -> Self {
        Reader {
            buf,
            pos: 0,
            depth: 0,
            budget: buf
                .len()
                .saturating_mul(MEMORY_FACTOR)
                .saturating_add(DECODE_SLACK),
        }
    }

    /// Charge `count` elements of `T` to the memory budget before allocating them.
    #[inline]
    pub fn charge<T>(&mut self, count: usize) -> Result<(), DecodeError> {
        let needed = count.saturating_mul(core::mem::size_of::<T>());
        if needed > self.budget {
            return Err(DecodeError::new(DecodeErrorKind::MemoryBudget {
                needed,
                left: self.budget,
            }));
        }
        self.budget -= needed;
        Ok(())
    }

    /// Bytes of memory decoding may still allocate.
    #[inline]
    pub fn budget(&self) -> usize {
        self.budget
    }

    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread bytes.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.remaining();
        if n > left {
            return Err(DecodeError::new(DecodeErrorKind::UnexpectedEnd {
                needed: n,
                left,
            }));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A zero-copy slice of the frame.
    #[inline]
    pub fn take_bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let left = self.remaining();
        if n > left {
            return Err(DecodeError::new(DecodeErrorKind::UnexpectedEnd {
                needed: n,
                left,
            }));
        }
        let b = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    #[inline]
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Check a dyn_array count against the bytes left, before anything is allocated.
    /// `min_elem` is the smallest encoded size of one element (zero-sized elements count as one byte,
    /// so a count can never exceed the bytes left).
    #[inline]
    pub fn check_count(&self, count: u64, min_elem: usize) -> Result<usize, DecodeError> {
        let left = self.remaining();
        let need = (count as u128) * (min_elem.max(1) as u128);
        if need > left as u128 {
            return Err(DecodeError::new(DecodeErrorKind::CountExceedsRemaining {
                count,
                left,
            }));
        }
        Ok(count as usize)
    }

    /// Enter a nested variant; errors past [`MAX_DEPTH`].
    #[inline]
    pub fn enter(&mut self) -> Result<(), DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::new(DecodeErrorKind::TooDeep {
                limit: MAX_DEPTH,
            }));
        }
        self.depth += 1;
        Ok(())
    }

    #[inline]
    pub fn leave(&mut self) {
        self.depth -= 1;
    }
}

/// A type with a NOODLES2 wire form. Implemented by every generated type.
pub trait Wire: Sized {
    /// The Jaw name of the type (for error paths).
    const NAME: &'static str;
    /// The smallest encoded size of any value (used to bound array counts before allocating).
    const MIN_SIZE: usize;
    /// The encoded size when the type has one fixed layout that every byte pattern of that size
    /// decodes to (plain structs of numbers, without enums), which
    /// [`read_fixed`](Wire::read_fixed) reads; `None` for every other type.
    const FIXED_SIZE: Option<usize> = None;
    /// Read one value; the reader is left after it.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Read one value of a [`FIXED_SIZE`](Wire::FIXED_SIZE) type from exactly its bytes, without a
    /// [`Reader`]: `None` when `bytes` has another length or the type has no fixed size.
    #[inline]
    fn read_fixed(bytes: &[u8]) -> Option<Self> {
        let _ = bytes;
        None
    }
    /// Append the encoded value.
    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError>;
    /// The exact encoded length.
    fn wire_len(&self) -> usize;

    /// Decode a whole frame: strict, no trailing bytes, never panics.
    fn decode(bytes: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(&bytes);
        let v = Self::read(&mut r).map_err(|e| e.at(PathSeg::Root(Self::NAME)))?;
        if r.remaining() != 0 {
            return Err(DecodeError::new(DecodeErrorKind::TrailingBytes {
                count: r.remaining(),
            })
            .at(PathSeg::Root(Self::NAME)));
        }
        Ok(v)
    }

    /// Decode from a borrowed slice (copies it once into a [`Bytes`]).
    fn decode_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode(Bytes::copy_from_slice(bytes))
    }

    /// Encode into a fresh buffer of exactly the right size.
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.write(&mut out)
            .map_err(|e| e.at(PathSeg::Root(Self::NAME)))?;
        Ok(out)
    }

    /// Encode into a shareable [`Bytes`].
    fn encode_bytes(&self) -> Result<Bytes, EncodeError> {
        self.encode().map(Bytes::from)
    }
}

/// A mutable reference to an id inside a decoded value, handed to [`VisitIds::visit_ids_mut`].
#[derive(Debug)]
pub enum IdMut<'a> {
    /// An `EntityID`.
    Entity(&'a mut super::EntityID),
    /// A bare `AssetID` inside a typed wrapper; `within` names the wrapper (e.g. `"MeshAssetID"`).
    Asset {
        within: &'static str,
        id: &'a mut super::AssetID,
    },
    /// A typed `AnAsset` (asset type plus id).
    AnAsset(&'a mut super::AnAsset),
}

/// Visits every `EntityID`, `AssetID` and `AnAsset` inside a value, in wire order. Generated for every
/// type from the Jaw field types, so proposal remapping needs no hand-written visitors.
pub trait VisitIds {
    /// Does any value of this type hold an id?
    const HAS_IDS: bool;
    fn visit_ids_mut(&mut self, f: &mut dyn FnMut(IdMut<'_>));
}

macro_rules! prim {
    ($($t:ty => $le:ty),*) => {$(
        impl Wire for $t {
            const NAME: &'static str = stringify!($t);
            const MIN_SIZE: usize = core::mem::size_of::<$t>();
            #[inline]
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_le_bytes(r.array()?))
            }
            #[inline]
            fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                out.extend_from_slice(&self.to_le_bytes());
                Ok(())
            }
            #[inline]
            fn wire_len(&self) -> usize { core::mem::size_of::<$t>() }
        }
        impl VisitIds for $t {
            const HAS_IDS: bool = false;
            #[inline]
            fn visit_ids_mut(&mut self, _f: &mut dyn FnMut(IdMut<'_>)) {}
        }
        impl Wire for $le {
            const NAME: &'static str = stringify!($t);
            const MIN_SIZE: usize = core::mem::size_of::<$t>();
            #[inline]
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$le>::new(<$t>::from_le_bytes(r.array()?)))
            }
            #[inline]
            fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                out.extend_from_slice(self.as_bytes());
                Ok(())
            }
            #[inline]
            fn wire_len(&self) -> usize { core::mem::size_of::<$t>() }
        }
        impl VisitIds for $le {
            const HAS_IDS: bool = false;
            #[inline]
            fn visit_ids_mut(&mut self, _f: &mut dyn FnMut(IdMut<'_>)) {}
        }
    )*};
}

prim!(u16 => U16, u32 => U32, u64 => U64, i16 => I16, i32 => I32, i64 => I64, f32 => F32, f64 => F64);

macro_rules! byte {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            const NAME: &'static str = stringify!($t);
            const MIN_SIZE: usize = 1;
            #[inline]
            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok(<$t>::from_le_bytes(r.array()?))
            }
            #[inline]
            fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
                out.push(*self as u8);
                Ok(())
            }
            #[inline]
            fn wire_len(&self) -> usize { 1 }
        }
        impl VisitIds for $t {
            const HAS_IDS: bool = false;
            #[inline]
            fn visit_ids_mut(&mut self, _f: &mut dyn FnMut(IdMut<'_>)) {}
        }
    )*};
}

byte!(u8, i8);

impl<T: Wire, const N: usize> Wire for [T; N] {
    const NAME: &'static str = T::NAME;
    const MIN_SIZE: usize = T::MIN_SIZE * N;
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.charge::<T>(N)?;
        let mut v = Vec::with_capacity(N);
        for i in 0..N {
            v.push(T::read(r).map_err(|e| e.at(PathSeg::Index(i)))?);
        }
        // Exactly N elements were pushed above.
        Ok(v.try_into().unwrap_or_else(|_| unreachable!()))
    }
    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for (i, x) in self.iter().enumerate() {
            x.write(out).map_err(|e| e.at(PathSeg::Index(i)))?;
        }
        Ok(())
    }
    fn wire_len(&self) -> usize {
        self.iter().map(Wire::wire_len).sum()
    }
}

impl<T: VisitIds, const N: usize> VisitIds for [T; N] {
    const HAS_IDS: bool = T::HAS_IDS;
    fn visit_ids_mut(&mut self, f: &mut dyn FnMut(IdMut<'_>)) {
        if T::HAS_IDS {
            for x in self.iter_mut() {
                x.visit_ids_mut(f);
            }
        }
    }
}

/// Read a dyn_array count of the given width.
#[inline]
pub fn read_count<C: Wire + Into<u64>>(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
    Ok(C::read(r)?.into())
}

/// Write a dyn_array count, failing when `len` exceeds what the count type holds.
#[inline]
pub fn write_count<C: Wire + TryFrom<usize>>(
    len: usize,
    max: u64,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match C::try_from(len) {
        Ok(c) => c.write(out),
        Err(_) => Err(EncodeError::new(EncodeErrorKind::TooLong { len, max })),
    }
}

/// Read `count` little-endian scalars (already bounds-checked) into a Vec.
#[inline]
pub fn read_scalars<T: Wire>(r: &mut Reader<'_>, count: usize) -> Result<Vec<T>, DecodeError> {
    r.charge::<T>(count)?;
    let mut v = Vec::with_capacity(count);
    for _ in 0..count {
        v.push(T::read(r)?);
    }
    Ok(v)
}

/// Read `count` packs (already bounds-checked) with one copy.
#[inline]
pub fn read_packs<T: FromBytes + Immutable + KnownLayout + Unaligned + Clone>(
    r: &mut Reader<'_>,
    count: usize,
) -> Result<Vec<T>, DecodeError> {
    let size = core::mem::size_of::<T>();
    r.charge::<T>(count)?;
    let bytes = r.take(count * size)?;
    match <[T]>::ref_from_bytes(bytes) {
        Ok(slice) => Ok(slice.to_vec()),
        // Cannot happen: the length is a multiple of the size and T is unaligned.
        Err(_) => Err(DecodeError::new(DecodeErrorKind::UnexpectedEnd {
            needed: count * size,
            left: bytes.len(),
        })),
    }
}

/// Read a UTF-8 string of `count` bytes.
#[inline]
pub fn read_utf8(r: &mut Reader<'_>, count: usize) -> Result<String, DecodeError> {
    r.charge::<u8>(count)?;
    let s = r.take(count)?;
    match std::str::from_utf8(s) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err(DecodeError::new(DecodeErrorKind::InvalidUtf8)),
    }
}

/// Implemented by generated enums.
pub trait WireEnum: Sized + Copy {
    type Repr: Copy + Into<u64>;
    /// The member declared with `>`, substituted for unknown values.
    const DEFAULT: Option<Self>;
    fn from_repr(v: Self::Repr) -> Option<Self>;
    fn to_repr(self) -> Self::Repr;
    /// The member for a raw value, the declared default for unknown values, or the first member
    /// when the enum declares no default (only reachable for values that strict decoding rejects).
    fn from_repr_lossy(v: Self::Repr) -> Self;
}

/// Something whose raw storage may hold values strict decoding rejects (enum fields inside packs and bits).
pub trait Validate {
    const NEEDS_VALIDATION: bool;
    fn validate(&self) -> Result<(), DecodeError>;
}
