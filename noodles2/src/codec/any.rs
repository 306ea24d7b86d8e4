//! Conversions between [`Any`] (the protocol's tagged value, used by RPC arguments and results)
//! and ordinary Rust values (and glam's vectors and quaternions, with the `glam` feature), plus the names of `AnyTypeID` values.
//!
//! ```
//! use noodles2::codec::Any;
//!
//! let args: Vec<Any> = vec![3i64.into(), "three".into(), 0.5f64.into(), true.into()];
//! assert_eq!(i64::try_from(args[0].clone()), Ok(3));
//! assert_eq!(String::try_from(args[1].clone()).as_deref(), Ok("three"));
//! assert!(f64::try_from(args[1].clone()).is_err());
//! assert_eq!(args[3], Any::U8(1));
//! ```

use std::fmt;

#[cfg(feature = "glam")]
use glam::{Quat, Vec3, Vec4};

use super::{Any, AnyArray, AnyString};

/// `AnyTypeID` values: the discriminants of [`Any`]'s options (spec: `any.jaw`).
pub mod any_type {
    /// No value.
    pub const VOID: u8 = 0;
    /// An unsigned byte (also used for booleans).
    pub const U8: u8 = 1;
    /// A signed 64-bit integer.
    pub const I64: u8 = 2;
    /// A 64-bit float.
    pub const F64: u8 = 3;
    /// A UTF-8 string.
    pub const STRING: u8 = 4;
    /// An array of values.
    pub const ARRAY: u8 = 5;
    /// A map of values.
    pub const MAP: u8 = 6;
    /// Opaque bytes.
    pub const BYTES: u8 = 7;
    /// Three f32.
    pub const VEC3: u8 = 8;
    /// Four f32.
    pub const VEC4: u8 = 9;
    /// A unit quaternion.
    pub const QUATERNION: u8 = 10;
    /// A UUID.
    pub const UUID: u8 = 11;
    /// A component type id.
    pub const COMPONENT_TYPE: u8 = 12;
    /// An asset type id.
    pub const ASSET_TYPE: u8 = 13;
    /// A typed asset reference.
    pub const AN_ASSET: u8 = 14;
    /// An entity id.
    pub const ENTITY: u8 = 15;
}

/// A human-readable name of an `AnyTypeID` value (for error messages).
pub fn any_type_name(type_id: u8) -> &'static str {
    match type_id {
        0 => "void",
        1 => "u8",
        2 => "integer (i64)",
        3 => "float (f64)",
        4 => "string",
        5 => "array",
        6 => "map",
        7 => "bytes",
        8 => "Vec3",
        9 => "Vec4",
        10 => "quaternion",
        11 => "UUID",
        12 => "component type",
        13 => "asset type",
        14 => "asset",
        15 => "entity",
        _ => "unknown type",
    }
}

/// An [`Any`] held a different kind of value than the one asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {found}")]
pub struct AnyTypeError {
    /// What was asked for.
    pub expected: &'static str,
    /// What the value is.
    pub found: &'static str,
}

impl Any {
    /// A human-readable name of this value's kind (for error messages).
    pub fn kind_name(&self) -> &'static str {
        any_type_name(self.discriminant())
    }

    fn type_error(&self, expected: u8) -> AnyTypeError {
        AnyTypeError {
            expected: any_type_name(expected),
            found: self.kind_name(),
        }
    }

    /// The integer, if this is an `I64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Any::I64(v) => Some(*v),
            _ => None,
        }
    }

    /// The float, if this is an `F64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Any::F64(v) => Some(*v),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Any::AnyString(s) => Some(&s.0),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Any]> {
        match self {
            Any::AnyArray(a) => Some(&a.0),
            _ => None,
        }
    }
}

impl From<bool> for Any {
    /// Booleans travel as `U8` 0 or 1.
    fn from(v: bool) -> Self {
        Any::U8(v as u8)
    }
}

impl From<i32> for Any {
    fn from(v: i32) -> Self {
        Any::I64(v.into())
    }
}

impl From<u32> for Any {
    fn from(v: u32) -> Self {
        Any::I64(v.into())
    }
}

impl From<f32> for Any {
    fn from(v: f32) -> Self {
        Any::F64(v.into())
    }
}

impl From<String> for Any {
    fn from(v: String) -> Self {
        Any::AnyString(AnyString(v))
    }
}

impl From<&str> for Any {
    fn from(v: &str) -> Self {
        Any::AnyString(AnyString(v.to_owned()))
    }
}

impl From<Vec<Any>> for Any {
    fn from(v: Vec<Any>) -> Self {
        Any::AnyArray(AnyArray(v))
    }
}

#[cfg(feature = "glam")]
impl From<Vec3> for Any {
    fn from(v: Vec3) -> Self {
        Any::Vec3(super::Vec3::new(v.x, v.y, v.z))
    }
}

#[cfg(feature = "glam")]
impl From<Vec4> for Any {
    fn from(v: Vec4) -> Self {
        Any::Vec4(super::Vec4::new(v.x, v.y, v.z, v.w))
    }
}

#[cfg(feature = "glam")]
impl From<Quat> for Any {
    fn from(v: Quat) -> Self {
        Any::UnitQuaternion(super::UnitQuaternion::new(v.x, v.y, v.z, v.w))
    }
}

impl TryFrom<Any> for i64 {
    type Error = AnyTypeError;
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        v.as_i64().ok_or_else(|| v.type_error(any_type::I64))
    }
}

impl TryFrom<Any> for f64 {
    type Error = AnyTypeError;
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        v.as_f64().ok_or_else(|| v.type_error(any_type::F64))
    }
}

impl TryFrom<Any> for u8 {
    type Error = AnyTypeError;
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        match v {
            Any::U8(b) => Ok(b),
            other => Err(other.type_error(any_type::U8)),
        }
    }
}

impl TryFrom<Any> for bool {
    type Error = AnyTypeError;
    /// `U8` 0 is false, any other `U8` true.
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        match v {
            Any::U8(b) => Ok(b != 0),
            other => Err(AnyTypeError {
                expected: "boolean (u8)",
                found: other.kind_name(),
            }),
        }
    }
}

impl TryFrom<Any> for String {
    type Error = AnyTypeError;
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        match v {
            Any::AnyString(s) => Ok(s.0),
            other => Err(other.type_error(any_type::STRING)),
        }
    }
}

impl TryFrom<Any> for Vec<Any> {
    type Error = AnyTypeError;
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        match v {
            Any::AnyArray(a) => Ok(a.0),
            other => Err(other.type_error(any_type::ARRAY)),
        }
    }
}

#[cfg(feature = "glam")]
impl TryFrom<Any> for Vec3 {
    type Error = AnyTypeError;
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        match v {
            Any::Vec3(w) => Ok(Vec3::new(w.x.get(), w.y.get(), w.z.get())),
            other => Err(other.type_error(any_type::VEC3)),
        }
    }
}

#[cfg(feature = "glam")]
impl TryFrom<Any> for Vec4 {
    type Error = AnyTypeError;
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        match v {
            Any::Vec4(w) => Ok(Vec4::new(w.x.get(), w.y.get(), w.z.get(), w.w.get())),
            other => Err(other.type_error(any_type::VEC4)),
        }
    }
}

#[cfg(feature = "glam")]
impl TryFrom<Any> for Quat {
    type Error = AnyTypeError;
    fn try_from(v: Any) -> Result<Self, AnyTypeError> {
        match v {
            Any::UnitQuaternion(q) => {
                Ok(Quat::from_xyzw(q.x.get(), q.y.get(), q.z.get(), q.w.get()))
            }
            other => Err(other.type_error(any_type::QUATERNION)),
        }
    }
}

impl fmt::Display for Any {
    /// A compact, readable form: `3`, `2.5`, `"text"`, `[1, 2]`, `{"k": 1}`, `#12` (entity), ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<'a>(
            f: &mut fmt::Formatter<'_>,
            items: impl Iterator<Item = &'a Any>,
        ) -> fmt::Result {
            for (i, x) in items.enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{x}")?;
            }
            Ok(())
        }
        match self {
            Any::Void => f.write_str("void"),
            Any::U8(v) => write!(f, "{v}u8"),
            Any::I64(v) => write!(f, "{v}"),
            Any::F64(v) => write!(f, "{v:?}"),
            Any::AnyString(s) => write!(f, "{:?}", s.0),
            Any::AnyArray(a) => {
                f.write_str("[")?;
                list(f, a.0.iter())?;
                f.write_str("]")
            }
            Any::AnyMap(m) => {
                f.write_str("{")?;
                for (i, kv) in m.0.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {}", kv.key, kv.value)?;
                }
                f.write_str("}")
            }
            Any::AnyBytes(b) => write!(f, "<{} bytes>", b.0.len()),
            Any::Vec3(v) => write!(f, "({}, {}, {})", v.x.get(), v.y.get(), v.z.get()),
            Any::Vec4(v) => write!(
                f,
                "({}, {}, {}, {})",
                v.x.get(),
                v.y.get(),
                v.z.get(),
                v.w.get()
            ),
            Any::UnitQuaternion(q) => write!(
                f,
                "quat({}, {}, {}, {})",
                q.x.get(),
                q.y.get(),
                q.z.get(),
                q.w.get()
            ),
            Any::UUID(u) => write!(
                f,
                "{:08x}-{:08x}-{:08x}-{:08x}",
                u.a.get(),
                u.b.get(),
                u.c.get(),
                u.d.get()
            ),
            Any::ComponentTypeID(c) => write!(
                f,
                "component({}, {})",
                c.extension.id.get(),
                c.identifier.get()
            ),
            Any::AssetTypeID(a) => write!(
                f,
                "asset type({}, {})",
                a.extension.id.get(),
                a.identifier.get()
            ),
            Any::AnAsset(a) => write!(
                f,
                "asset({}, {}):{}",
                a.asset_type.extension.id.get(),
                a.asset_type.identifier.get(),
                a.asset_id.id.get()
            ),
            Any::EntityID(e) => write!(f, "#{}", e.id.get()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(i64::try_from(Any::from(-7i64)), Ok(-7));
        assert_eq!(f64::try_from(Any::from(1.5f64)), Ok(1.5));
        assert_eq!(bool::try_from(Any::from(true)), Ok(true));
        assert_eq!(String::try_from(Any::from("hi")), Ok("hi".to_string()));
        assert_eq!(
            Vec::<Any>::try_from(Any::from(vec![Any::from(1i64)])),
            Ok(vec![Any::I64(1)])
        );
    }

    #[cfg(feature = "glam")]
    #[test]
    fn glam_round_trips() {
        assert_eq!(
            Vec3::try_from(Any::from(Vec3::new(1.0, 2.0, 3.0))),
            Ok(Vec3::new(1.0, 2.0, 3.0))
        );
        assert_eq!(Vec4::try_from(Any::from(Vec4::ONE)), Ok(Vec4::ONE));
        assert_eq!(
            Quat::try_from(Any::from(Quat::IDENTITY)),
            Ok(Quat::IDENTITY)
        );
    }

    #[test]
    fn mismatches_name_both_kinds() {
        let e = i64::try_from(Any::from("x")).unwrap_err();
        assert_eq!(e.to_string(), "expected integer (i64), got string");
    }

    #[test]
    fn display() {
        let v = Any::from(vec![Any::from(1i64), Any::from("a"), Any::from(2.5f64)]);
        assert_eq!(v.to_string(), r#"[1, "a", 2.5]"#);
    }
}
