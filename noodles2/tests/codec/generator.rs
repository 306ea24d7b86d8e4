//! Tests of the Jaw parser (`build/jaw.rs`) and of the code generator (`build/gen.rs`), included
//! from the build sources exactly as `build.rs` uses them.
//!
//! The generator is also run on [`FIXTURE`], a schema using every construct and Rust keywords as
//! names. Its output is checked in as `fixture_gen.rs` and compiled into this binary (module
//! [`fixture`]), so the generated code is proven to compile, and exercised; a test fails when the
//! checked-in file differs from what the generator writes now. Regenerate it with
//! `NOODLES2_BLESS=1 cargo test -p noodles2 --test protocol codec::generator`.

use super::r#gen::{self, Generator};
use super::jaw::{self, Builtin, DeclKind, ImportList, JawError, Schema, TypeRef};

/// Load an in-memory schema from `(path, text)` pairs; every file is an entry point.
fn load(files: &[(&str, &str)]) -> Result<Schema, JawError> {
    let entries: Vec<&str> = files.iter().map(|f| f.0).collect();
    jaw::load_schema(&entries, &mut |rel| {
        files.iter().find(|f| f.0 == rel).map(|f| f.1.to_string())
    })
}

/// Expect a parse or resolution error at `file:line` whose message contains every one of `parts`.
fn expect_err(r: Result<Schema, JawError>, file: &str, line: usize, parts: &[&str]) -> JawError {
    let e = r.expect_err("the schema should be rejected");
    assert_eq!((e.file.as_str(), e.line), (file, line), "wrong place: {e}");
    for p in parts {
        assert!(e.message.contains(p), "message {:?} lacks {p:?}", e.message);
    }
    assert_eq!(e.to_string(), format!("{file}:{line}: {}", e.message));
    e
}

// ------------------------------------------------------------------------------------------ errors

#[test]
fn bad_keyword_names_the_file_line_and_expected_keywords() {
    let e = expect_err(
        load(&[(
            "a.jaw",
            "# comment\npack A\n- x : u8\n\nstruct B\n- y : u8\n",
        )]),
        "a.jaw",
        5,
        &[
            "expected a declaration keyword",
            "pack, seq, enum, bits, variant",
            "found `struct`",
        ],
    );
    assert!(e.to_string().starts_with("a.jaw:5: expected"));
}

#[test]
fn missing_colon_is_reported_for_members_and_declarations() {
    expect_err(
        load(&[("m.jaw", "pack A\n- x : u8\n- y u16\n")]),
        "m.jaw",
        3,
        &["expected `- name : Type` in `A`"],
    );
    expect_err(
        load(&[("m.jaw", "seq S\n- x\n")]),
        "m.jaw",
        2,
        &["expected `- name : Type` in `S`"],
    );
    expect_err(
        load(&[("m.jaw", "\nenum E u8\n- A = 0\n")]),
        "m.jaw",
        2,
        &["expected `enum NAME : BASE_TYPE`"],
    );
    expect_err(
        load(&[("m.jaw", "dyn_array L u32 * u8\n")]),
        "m.jaw",
        1,
        &["expected `dyn_array NAME : COUNT * TYPE`"],
    );
    expect_err(
        load(&[("m.jaw", "dyn_array L : u32 u8\n")]),
        "m.jaw",
        1,
        &["expected `COUNT * TYPE`"],
    );
    expect_err(
        load(&[("m.jaw", "bits B : u8\n- 0 a u8\n")]),
        "m.jaw",
        2,
        &["expected `name : Type` after the bit range"],
    );
    expect_err(
        load(&[("m.jaw", "const C u8 = 1\n")]),
        "m.jaw",
        1,
        &["expected `const NAME : TYPE = VALUE`"],
    );
    expect_err(
        load(&[("m.jaw", "variant V : u8\n- 0 Void\n")]),
        "m.jaw",
        2,
        &["expected `- DISCRIMINANT => Type`"],
    );
    expect_err(
        load(&[("m.jaw", "enum E : u8\n- A 0\n")]),
        "m.jaw",
        2,
        &["expected `- Name = VALUE`"],
    );
}

#[test]
fn unknown_types_are_reported_where_used() {
    expect_err(
        load(&[("u.jaw", "pack A\n- x : u8\n- y : Nope\n")]),
        "u.jaw",
        3,
        &["expected a known type, found `Nope`"],
    );
    expect_err(
        load(&[("u.jaw", "dyn_array L : u16 * Missing\n")]),
        "u.jaw",
        1,
        &["found `Missing`"],
    );
    expect_err(
        load(&[("u.jaw", "variant V : u8\n- 0 => void\n- 1 => Gone\n")]),
        "u.jaw",
        3,
        &["found `Gone`"],
    );
    expect_err(
        load(&[("u.jaw", "dyn_array L : i16 * u8\n")]),
        "u.jaw",
        1,
        &["unsigned count type", "found `i16`"],
    );
    expect_err(
        load(&[("u.jaw", "enum E : f32\n- A = 0\n")]),
        "u.jaw",
        1,
        &["unsigned integer base type", "found `f32`"],
    );
    // Declared elsewhere but not imported: the hint names the file.
    expect_err(
        load(&[
            ("a.jaw", "pack A\n- x : u8\n"),
            ("b.jaw", "from \"a.jaw\" use {}\npack B\n- a : A\n"),
        ]),
        "b.jaw",
        3,
        &["found `A`", "declared in `a.jaw`; add an import"],
    );
    // Importing a name the file does not declare.
    expect_err(
        load(&[
            ("a.jaw", "pack A\n- x : u8\n"),
            ("b.jaw", "\nfrom \"a.jaw\" use {A, Z}\n"),
        ]),
        "b.jaw",
        2,
        &["expected `Z` to be declared in `a.jaw`"],
    );
    // Importing a file that does not exist.
    expect_err(
        load(&[("b.jaw", "from \"nowhere.jaw\" use *\n")]),
        "b.jaw",
        1,
        &["cannot be read", "nowhere.jaw"],
    );
    // A const is not a type.
    expect_err(
        load(&[("c.jaw", "const K : u8 = 1\npack P\n- k : K\n")]),
        "c.jaw",
        3,
        &["`K` is a const, not a type"],
    );
    // Packs only hold plain old data.
    expect_err(
        load(&[("p.jaw", "dyn_array L : u8 * u8\npack P\n- l : L\n")]),
        "p.jaw",
        3,
        &["expected a plain-old-data type for member `l` of pack `P`"],
    );
}

#[test]
fn duplicate_names_are_reported_with_both_places() {
    expect_err(
        load(&[("a.jaw", "pack A\n- x : u8\n"), ("b.jaw", "# x\n\nseq A\n")]),
        "b.jaw",
        3,
        &["`A` is already declared at a.jaw:1"],
    );
    expect_err(
        load(&[("d.jaw", "pack A\n- x : u8\n- x : u16\n")]),
        "d.jaw",
        3,
        &["member `x` appears twice in `A`"],
    );
    expect_err(
        load(&[("d.jaw", "enum E : u8\n- A = 0\n- A = 1\n")]),
        "d.jaw",
        3,
        &["member `A` appears twice"],
    );
    expect_err(
        load(&[("d.jaw", "enum E : u8\n- A = 0\n- B = 0\n")]),
        "d.jaw",
        3,
        &["value 0 appears twice"],
    );
    expect_err(
        load(&[("d.jaw", "enum E : u8\n> A = 0\n> B = 1\n")]),
        "d.jaw",
        1,
        &["more than one default"],
    );
    expect_err(
        load(&[("d.jaw", "variant V : u8\n- 0 => void\n- 0 => u8\n")]),
        "d.jaw",
        3,
        &["discriminant 0 appears twice"],
    );
    expect_err(
        load(&[("d.jaw", "bits B : u8\n- 0 a : u8\n- 1 a : u8\n")]),
        "d.jaw",
        3,
        &["field `a` appears twice"],
    );
    expect_err(
        load(&[("d.jaw", "pack u16\n- x : u8\n")]),
        "d.jaw",
        1,
        &["`u16` is a builtin type name"],
    );
}

#[test]
fn overlapping_and_too_wide_bits_are_rejected() {
    expect_err(
        load(&[("b.jaw", "bits B : u16\n- 0-3 a : u8\n- 2 b : u8\n")]),
        "b.jaw",
        3,
        &["field `b` overlaps another field of bits `B`"],
    );
    expect_err(
        load(&[("b.jaw", "bits B : u8\n- 0-7 a : u8\n- 8 b : u8\n")]),
        "b.jaw",
        3,
        &["bit 8 of `b` is outside the 8-bit base of bits `B`"],
    );
    expect_err(
        load(&[("b.jaw", "bits B : u32\n- 0-9 a : u8\n")]),
        "b.jaw",
        2,
        &["field `a` spans 10 bits, more than its type holds"],
    );
    expect_err(
        load(&[("b.jaw", "enum E : u8\n- A = 0\nbits B : E\n- 0-8 a : u16\n")]),
        "b.jaw",
        4,
        &["outside the 8-bit base"],
    );
    expect_err(
        load(&[("b.jaw", "bits B : u8\n- 3-1 a : u8\n")]),
        "b.jaw",
        2,
        &["must be LO-HI with LO <= HI <= 63"],
    );
    expect_err(
        load(&[("b.jaw", "bits B : u8\n- x a : u8\n")]),
        "b.jaw",
        2,
        &["expected a bit position or range"],
    );
    expect_err(
        load(&[("b.jaw", "bits B : f32\n")]),
        "b.jaw",
        1,
        &["expected an integer or enum base type"],
    );
    expect_err(
        load(&[("b.jaw", "pack P\n- x : u8\nbits B : P\n")]),
        "b.jaw",
        3,
        &["expected an integer or enum base type"],
    );
}

#[test]
fn other_structural_errors() {
    expect_err(
        load(&[("o.jaw", "- x : u8\n")]),
        "o.jaw",
        1,
        &["member line outside any declaration"],
    );
    expect_err(
        load(&[("o.jaw", "pack P\n> x : u8\n")]),
        "o.jaw",
        2,
        &["only allowed in an enum"],
    );
    expect_err(
        load(&[("o.jaw", "enum E : u8\n")]),
        "o.jaw",
        1,
        &["enum `E` has no members"],
    );
    expect_err(
        load(&[("o.jaw", "variant V : u8\n")]),
        "o.jaw",
        1,
        &["variant `V` has no options"],
    );
    expect_err(
        load(&[("o.jaw", "enum E : u8\n- A = 256\n")]),
        "o.jaw",
        2,
        &["value 256 does not fit the base type u8"],
    );
    expect_err(
        load(&[("o.jaw", "variant V : u8\n- 300 => void\n")]),
        "o.jaw",
        2,
        &["discriminant 300 does not fit"],
    );
    // A dyn_array is complete on its line, so a member after it is outside any declaration.
    expect_err(
        load(&[("o.jaw", "dyn_array L : u8 * u8\n- x : u8\n")]),
        "o.jaw",
        2,
        &["outside any declaration"],
    );
    expect_err(
        load(&[("o.jaw", "const C : u8 = abc\n")]),
        "o.jaw",
        1,
        &["expected a u8 literal"],
    );
    expect_err(
        load(&[("o.jaw", "fixed_array F : many * u8\n")]),
        "o.jaw",
        1,
        &["expected an element count"],
    );
    expect_err(
        load(&[("o.jaw", "from a.jaw use *\n")]),
        "o.jaw",
        1,
        &["expected `from \"PATH\" use *`"],
    );
    expect_err(
        load(&[("o.jaw", "from \"a.jaw\" take *\n")]),
        "o.jaw",
        1,
        &["expected `use` after"],
    );
    expect_err(
        load(&[("o.jaw", "seq S\n- s : S\n")]),
        "o.jaw",
        1,
        &["contains itself without a dyn_array"],
    );
    expect_err(
        load(&[("o.jaw", "pack 9P\n")]),
        "o.jaw",
        1,
        &["expected a type name after `pack`"],
    );
    expect_err(
        load(&[("o.jaw", "seq S\n- 1x : u8\n")]),
        "o.jaw",
        2,
        &["expected a member name"],
    );
}

// ------------------------------------------------------------------------------------- the fixture

/// A schema with every construct of the language, Rust keywords and the spec's oddities as names.
pub const FIXTURE: &[(&str, &str)] = &[
    (
        "lib/base.jaw",
        r#"# Every declaration kind.

# A 2D point.
pack Point
- x : f32
- y : f32 # trailing member comment

# A member-less seq.
seq Empty

enum Mode : u8
- Off = 0
> On = 1 # the default for unknown values
- Auto = 0x2

enum Strict : u16
- A = 0
- B = 1

bits Flags : u16
- 0 enabled : u8
- 1-2 mode : Mode
- 3-7 level : u8
- 8-9 strict : Strict

bits Small : Mode
- 0-1 low : u8

fixed_array Quad : 4 * f32
fixed_array Corners : 2 * Point

dyn_array Bytes8 : u8 * u8
dyn_array Text16 : u16 * u8 # UTF-8 text
dyn_array Points32 : u32 * Point
dyn_array Blob64 : u64 * u8

const VERSION : u16 = 3
const SCALE : f64 = 1.5
const NEG : i32 = -2
"#,
    ),
    (
        "lib/other.jaw",
        r#"from "base.jaw" use *

seq Holder
- points : Points32
- quad : Quad
- corners : Corners
- text : Text16
- blob : Blob64
- bytes : Bytes8
- mode : Mode
- flags : Flags
- small : Small
"#,
    ),
    (
        "main.jaw",
        r#"from "lib/base.jaw" use {Point, Mode}
from "lib/other.jaw" use *

variant Shape : u8
- 0 => void
- 1 => Point
- 2 => u32
- 3 => Holder
- 4 => Empty
- 200 => ShapeList

dyn_array ShapeList : u16 * Shape

variant Wide : u32
- 1 => f64
- 0x10000 => Mode
- 2 => None

# A type named like the prelude's variant. (Not in kw.jaw: there a pack has a member `None`, and
# both become `None_`, which `new(None_: u8)` would read as the unit struct.)
seq None
"#,
    ),
    (
        "kw.jaw",
        r#"# Rust keywords and the spec's oddities as names.
enum Kind : u8
> None = 0
- type = 1
- self = 2
- match = 3

enum Fixed : u8
- ref = 0
- fn = 1

pack KwPack
- type : u32
- match : Kind
- ref : u8
- self : u16
- fn : f32
- from : u64
- pack : Kind
- None : u8
- super : Fixed

bits KwBits : u32
- 0 type : u8
- 1-2 match : Kind
- 3 self : u8
- 4 fn : u8
- 5 ref : u8
- 6 from : u8
- 7 super : Fixed

seq KwSeq
- type : u32
- self : KwPack
- from : u8
- fn : KwBits
- crate : u8
- super : u8
- Some : u8

variant KwVariant : u8
- 0 => void
- 1 => KwSeq
- 2 => u8
"#,
    ),
];

fn fixture_schema() -> Schema {
    load(FIXTURE).unwrap_or_else(|e| panic!("fixture: {e}"))
}

/// The text of `fixture_gen.rs`: every fixture module plus its strategies, pointed at the fixture.
fn fixture_code() -> String {
    let schema = fixture_schema();
    let g = Generator::new(&schema);
    let mut o = String::from(
        "// @generated by `fixture_code` in tests/codec/generator.rs from its FIXTURE schema. Do not edit;\n\
         // regenerate with `NOODLES2_BLESS=1 cargo test -p noodles2 --test protocol codec::generator`.\n",
    );
    for f in &schema.files {
        let m = r#gen::module_name(&f.rel);
        o.push_str(&format!(
            "pub mod {m} {{\n{}}}\n#[allow(unused_imports)]\npub use {m}::*;\n",
            g.module(f)
        ));
    }
    o.push_str(
        &g.strategies()
            .replace("use noodles2::codec::rt::*;", "use super::rt::*;")
            .replace("use noodles2::codec::*;", "use super::*;")
            .replace("for_every_codec_type", "for_every_fixture_type"),
    );
    o
}

#[test]
fn fixture_code_is_checked_in() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/codec/fixture_gen.rs");
    let now = fixture_code();
    if std::env::var_os("NOODLES2_BLESS").is_some() {
        std::fs::write(&path, &now).expect("write fixture_gen.rs");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).expect("tests/codec/fixture_gen.rs exists");
    super::drift::assert_same_text(
        "tests/codec/fixture_gen.rs (regenerate with NOODLES2_BLESS=1)",
        &now,
        &checked_in,
    );
}

#[test]
fn every_construct_parses() {
    let schema = fixture_schema();
    let decl = |n: &str| {
        &schema
            .decl(n)
            .unwrap_or_else(|| panic!("`{n}` declared"))
            .kind
    };
    let base = schema
        .files
        .iter()
        .find(|f| f.rel == "lib/base.jaw")
        .expect("base");
    let point = base.decls.iter().find(|d| d.name == "Point").unwrap();
    assert_eq!(
        (point.line, point.doc.as_slice()),
        (4, &["A 2D point.".to_string()][..])
    );
    let DeclKind::Pack(ms) = &point.kind else {
        panic!("Point is a pack")
    };
    assert_eq!(
        ms.iter()
            .map(|m| (m.name.as_str(), m.ty.clone()))
            .collect::<Vec<_>>(),
        [
            ("x", TypeRef::Builtin(Builtin::F32)),
            ("y", TypeRef::Builtin(Builtin::F32)),
        ]
    );
    assert_eq!(decl("Empty"), &DeclKind::Seq(vec![]));
    let DeclKind::Enum { base: b, members } = decl("Mode") else {
        panic!("Mode")
    };
    assert_eq!(*b, Builtin::U8);
    assert_eq!(
        members
            .iter()
            .map(|m| (m.name.as_str(), m.value, m.is_default))
            .collect::<Vec<_>>(),
        [("Off", 0, false), ("On", 1, true), ("Auto", 2, false)]
    );
    let DeclKind::Bits { base: b, fields } = decl("Flags") else {
        panic!("Flags")
    };
    assert_eq!(*b, TypeRef::Builtin(Builtin::U16));
    assert_eq!(
        fields
            .iter()
            .map(|f| (f.lo, f.hi, f.name.as_str(), f.ty.clone()))
            .collect::<Vec<_>>(),
        [
            (0, 0, "enabled", TypeRef::Builtin(Builtin::U8)),
            (1, 2, "mode", TypeRef::Named("Mode".into())),
            (3, 7, "level", TypeRef::Builtin(Builtin::U8)),
            (8, 9, "strict", TypeRef::Named("Strict".into())),
        ]
    );
    assert!(matches!(decl("Small"), DeclKind::Bits { base: TypeRef::Named(n), .. } if n == "Mode"));
    assert_eq!(
        decl("Quad"),
        &DeclKind::FixedArray {
            count: 4,
            elem: TypeRef::Builtin(Builtin::F32)
        }
    );
    for (name, count, utf8) in [
        ("Bytes8", Builtin::U8, false),
        ("Text16", Builtin::U16, true),
        ("Points32", Builtin::U32, false),
        ("Blob64", Builtin::U64, false),
    ] {
        let DeclKind::DynArray {
            count: c, utf8: u, ..
        } = decl(name)
        else {
            panic!("{name}")
        };
        assert_eq!((*c, *u), (count, utf8), "{name}");
    }
    assert_eq!(
        decl("VERSION"),
        &DeclKind::Const {
            ty: Builtin::U16,
            value: "3".into()
        }
    );
    assert_eq!(
        decl("SCALE"),
        &DeclKind::Const {
            ty: Builtin::F64,
            value: "1.5".into()
        }
    );
    assert_eq!(
        decl("NEG"),
        &DeclKind::Const {
            ty: Builtin::I32,
            value: "-2".into()
        }
    );
    let DeclKind::Variant { base: b, options } = decl("Shape") else {
        panic!("Shape")
    };
    assert_eq!(*b, Builtin::U8);
    assert_eq!(
        options
            .iter()
            .map(|o| (o.disc, o.ty.clone()))
            .collect::<Vec<_>>(),
        [
            (0, TypeRef::Void),
            (1, TypeRef::Named("Point".into())),
            (2, TypeRef::Builtin(Builtin::U32)),
            (3, TypeRef::Named("Holder".into())),
            (4, TypeRef::Named("Empty".into())),
            (200, TypeRef::Named("ShapeList".into())),
        ]
    );
    assert!(
        matches!(decl("Wide"), DeclKind::Variant { base: Builtin::U32, options } if options[1].disc == 0x10000)
    );
    // Imports: a list, and `*` (which re-exports what the imported file imports).
    let main = schema
        .files
        .iter()
        .find(|f| f.rel == "main.jaw")
        .expect("main");
    assert_eq!(main.imports[0].path, "lib/base.jaw");
    assert_eq!(
        main.imports[0].names,
        ImportList::Names(vec!["Point".into(), "Mode".into()])
    );
    assert_eq!(main.imports[1].names, ImportList::All);
    let visible = schema.visible_names(main).unwrap();
    for n in ["Point", "Mode", "Holder", "Empty", "Points32", "Shape"] {
        assert!(visible.contains(n), "main.jaw sees `{n}`");
    }
    assert!(!visible.contains("Kind"));
    // Sizes.
    let named = |n: &str| TypeRef::Named(n.into());
    assert_eq!(schema.pod_size(&named("Point")), 8);
    assert_eq!(schema.pod_size(&named("Corners")), 16);
    assert_eq!(schema.pod_size(&named("Flags")), 2);
    assert_eq!(
        schema.pod_size(&named("KwPack")),
        4 + 1 + 1 + 2 + 4 + 8 + 1 + 1 + 1
    );
    assert_eq!(schema.min_size(&named("Shape")), 1);
    assert_eq!(schema.min_size(&named("Wide")), 4);
    assert_eq!(
        schema.min_size(&named("Holder")),
        4 + 16 + 16 + 2 + 8 + 1 + 1 + 2 + 1
    );
    assert!(schema.reaches(&named("ShapeList"), "Shape"));
}

#[test]
fn every_construct_generates() {
    let schema = fixture_schema();
    let g = Generator::new(&schema);
    let text = |rel: &str| g.module(schema.files.iter().find(|f| f.rel == rel).expect(rel));
    let base = text("lib/base.jaw");
    for s in [
        "#[repr(C, packed)]\npub struct Point {",
        "pub fn new(x: f32, y: f32) -> Self",
        "pub struct Empty;",
        "pub enum Mode {",
        "const DEFAULT: Option<Self> = Some(Self::On);",
        "const DEFAULT: Option<Self> = None;",
        "pub struct Flags(pub U16);",
        "pub fn mode(&self) -> Mode",
        "pub fn with_strict(mut self, v: Strict) -> Self",
        "pub struct Small(pub u8);",
        "pub type Quad = [F32; 4];",
        "pub type Corners = [Point; 2];",
        "pub struct Bytes8(pub ::bytes::Bytes);",
        "pub struct Text16(pub ::std::string::String);",
        "pub struct Points32(pub ::std::vec::Vec<Point>);",
        "read_count::<u64>(r)?",
        "pub const VERSION: u16 = 3;",
        "pub const NEG: i32 = -2;",
        "/// A 2D point.",
    ] {
        assert!(base.contains(s), "lib/base.jaw output lacks {s:?}");
    }
    let main = text("main.jaw");
    for s in [
        // A type named None.
        "pub struct None_;",
        "    None_(None_),",
        "2 => Self::None_(",
        "pub use super::lib_base::{Point, Mode};",
        "pub use super::lib_other::*;",
        "    Void,\n",
        "    U32(u32),",
        "    ShapeList(ShapeList),",
        "r.enter()?;",
        "200 => Self::ShapeList(",
        "65536 => Self::Mode(",
    ] {
        assert!(main.contains(s), "main.jaw output lacks {s:?}");
    }
    assert!(text("lib/other.jaw").contains("pub use super::lib_base::*;"));
    assert!(
        !text("lib/base.jaw").contains("r.enter()"),
        "only recursive variants count depth"
    );
}

const STRICT_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "gen",
];

#[test]
fn keywords_and_oddities_become_valid_identifiers() {
    assert_eq!(r#gen::rust_ident("type"), "r#type");
    assert_eq!(r#gen::rust_ident("match"), "r#match");
    assert_eq!(r#gen::rust_ident("ref"), "r#ref");
    assert_eq!(r#gen::rust_ident("fn"), "r#fn");
    assert_eq!(r#gen::rust_ident("self"), "self_");
    assert_eq!(r#gen::rust_ident("crate"), "crate_");
    assert_eq!(r#gen::rust_ident("from"), "from");
    assert_eq!(r#gen::rust_ident("pack"), "pack");
    assert_eq!(r#gen::rust_ident("None"), "None_");
    assert_eq!(r#gen::enum_member_name("None"), "None");
    assert_eq!(r#gen::enum_member_name("self"), "Self_");
    assert_eq!(
        r#gen::enum_member_name("normalized_ushort2"),
        "NormalizedUshort2"
    );
    assert_eq!(r#gen::rust_type_name("None"), "None_");
    assert_eq!(
        r#gen::module_name("core/components/type.jaw"),
        "core_components_type"
    );
    assert_eq!(r#gen::module_name("type.jaw"), "type_");

    let schema = fixture_schema();
    let g = Generator::new(&schema);
    let kw = g.module(schema.files.iter().find(|f| f.rel == "kw.jaw").unwrap());
    for s in [
        // Fields.
        "pub r#type: U32,",
        "pub r#match: u8,",
        "pub r#ref: u8,",
        "pub self_: U16,",
        "pub r#fn: F32,",
        "pub from: U64,",
        "pub pack: u8,",
        "pub None_: u8,",
        "pub super_: u8,",
        "pub crate_: u8,",
        "pub Some_: u8,",
        "pub self_: KwPack,",
        "pub r#fn: KwBits,",
        // Constructors and accessors.
        "pub fn new(r#type: u32, r#match: Kind, r#ref: u8, self_: u16, r#fn: f32, from: u64, pack: Kind, None_: u8, super_: Fixed)",
        "pub fn r#match(&self) -> Kind",
        "pub fn set_match(&mut self, v: Kind)",
        "pub fn pack(&self) -> Kind",
        "pub fn super_(&self) -> Fixed",
        "pub fn r#type(&self) -> u8",
        "pub fn self_(&self) -> u8",
        "pub fn with_self(mut self, v: u8) -> Self",
        "pub fn from(&self) -> u8",
        // Enum members.
        "    None = 0,",
        "    Type = 1,",
        "    Self_ = 2,",
        "    Match = 3,",
        "    Ref = 0,",
        "    Fn = 1,",
        // Error paths keep the schema's names.
        "PathSeg::Field(\"type\")",
        "PathSeg::Field(\"self\")",
    ] {
        assert!(kw.contains(s), "kw.jaw output lacks {s:?}");
    }
    // No keyword is used bare where an identifier goes.
    for line in kw.lines().filter(|l| !l.trim_start().starts_with("///")) {
        for k in STRICT_KEYWORDS {
            assert!(
                !line.contains(&format!("fn {k}(")),
                "bare keyword in generated line: {line}"
            );
            // A keyword as a field, parameter or binding name: `k:` but not the path `k::`.
            for before in ["pub ", "(", ", ", "{ "] {
                let bad = format!("{before}{k}:");
                for (i, _) in line.match_indices(&bad) {
                    assert!(
                        line[i + bad.len()..].starts_with(':'),
                        "bare keyword in generated line: {line}"
                    );
                }
            }
            let dotted = format!(".{k}");
            if let Some(i) = line.find(&dotted) {
                let next = line[i + dotted.len()..].chars().next();
                assert!(
                    next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bare keyword after `.` in generated line: {line}"
                );
            }
        }
    }
}

/// The checked-in output of the generator for [`FIXTURE`], compiled. That it compiles at all is
/// the main test; the tests inside exercise it.
#[allow(
    non_camel_case_types,
    non_snake_case,
    dead_code,
    unused_imports,
    unused_macros,
    clippy::all
)]
mod fixture {
    pub use noodles2::codec::rt;

    include!("fixture_gen.rs");

    mod tests {
        use bytes::Bytes;
        use noodles2::codec::{DecodeErrorKind, Wire};
        use proptest::test_runner::TestRunner;

        use super::strategies::*;
        use super::*;
        // Relative paths: this file is a module of the `protocol` test binary.
        use super::super::super::{hex, roundtrip as codec_roundtrip, to_hex};

        macro_rules! fixture_roundtrip {
            ($t:ident, $s:ident) => {
                #[test]
                #[allow(non_snake_case)]
                fn $t() {
                    let mut runner = TestRunner::new(codec_roundtrip::config());
                    if let Err(e) =
                        runner.run(&$s(3), |x: super::$t| codec_roundtrip::roundtrip(&x))
                    {
                        panic!("{} round trip: {e}", stringify!($t));
                    }
                }
            };
        }

        mod roundtrip {
            use super::*;
            for_every_fixture_type!(fixture_roundtrip);
        }

        #[test]
        fn keyword_pack_encodes_by_the_layout() {
            let p = KwPack::new(1, Kind::Match, 2, 3, 1.0, 4, Kind::None, 5, Fixed::Fn);
            let bytes = p.encode().unwrap();
            let h = concat!(
                "01000000",         // type (u32)
                "03",               // match: Kind::Match
                "02",               // ref (u8)
                "0300",             // self (u16)
                "0000803f",         // fn (f32) 1.0
                "0400000000000000", // from (u64)
                "00",               // pack: Kind::None
                "05",               // None (u8)
                "01",               // super: Fixed::Fn
            );
            assert_eq!(to_hex(&bytes), to_hex(&hex(h)));
            assert_eq!(KwPack::decode_slice(&bytes).unwrap(), p);
            assert_eq!(
                (p.r#match(), p.pack(), p.super_()),
                (Kind::Match, Kind::None, Fixed::Fn)
            );
            assert_eq!(
                (
                    { p.r#type }.get(),
                    { p.self_ }.get(),
                    p.None_,
                    { p.from }.get()
                ),
                (1, 3, 5, 4)
            );
            // Fixed has no default: 2 is an error naming the field by its schema name.
            let mut bad = bytes.clone();
            *bad.last_mut().unwrap() = 2;
            let e = KwPack::decode_slice(&bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                "KwPack.super: unknown enum value 2 (the enum declares no default)"
            );
            // Kind has one: 9 is kept raw and reads as None.
            bad = bytes.clone();
            bad[4] = 9;
            assert_eq!(KwPack::decode_slice(&bad).unwrap().r#match(), Kind::None);
        }

        #[test]
        fn keyword_bits_and_seq() {
            let b = KwBits::default()
                .with_type(1)
                .with_match(Kind::Self_)
                .with_self(1)
                .with_super(Fixed::Fn);
            assert_eq!(b.raw(), 0b1000_1101);
            assert_eq!(
                (b.r#type(), b.r#match(), b.self_(), b.r#fn(), b.super_()),
                (1, Kind::Self_, 1, 0, Fixed::Fn)
            );
            let s = KwSeq {
                r#type: 7,
                self_: KwPack::default(),
                from: 1,
                r#fn: b,
                crate_: 2,
                super_: 3,
                Some_: 4,
            };
            let v = KwVariant::KwSeq(s.clone());
            let bytes = v.encode().unwrap();
            assert_eq!(bytes.len(), 1 + 4 + KwPack::SIZE + 1 + 4 + 3);
            assert_eq!(KwVariant::decode(Bytes::from(bytes)).unwrap(), v);
            // KwBits.super (bit 7, no default) cannot be invalid, but Flags.strict (bits 8-9) can.
            let e = Flags::decode_slice(&[0, 2]).unwrap_err();
            assert_eq!(e.kind, DecodeErrorKind::UnknownEnumValue { value: 2 });
            assert_eq!(
                e.to_string(),
                "Flags.strict: unknown enum value 2 (the enum declares no default)"
            );
        }

        #[test]
        fn every_construct_behaves() {
            assert_eq!((VERSION, SCALE, NEG), (3u16, 1.5f64, -2i32));
            // A u32 discriminant.
            let w = Wide::Mode(Mode::Auto);
            assert_eq!(to_hex(&w.encode().unwrap()), "0000010002");
            assert_eq!(
                Wide::decode_slice(&hex("02000000")).unwrap(),
                Wide::None_(None_)
            );
            // Defaulted enum: unknown values read as On.
            assert_eq!(Mode::decode_slice(&[9]).unwrap(), Mode::On);
            assert_eq!(
                Strict::decode_slice(&[2, 0]).unwrap_err().kind,
                DecodeErrorKind::UnknownEnumValue { value: 2 }
            );
            // A u64-counted byte array and a UTF-8 one.
            assert_eq!(
                to_hex(&Blob64(Bytes::from_static(b"ab")).encode().unwrap()),
                "02000000000000006162"
            );
            assert_eq!(
                Text16::decode_slice(&hex("0200 fffe")).unwrap_err().kind,
                DecodeErrorKind::InvalidUtf8
            );
            // Recursion through ShapeList counts depth.
            let mut deep = Vec::new();
            for _ in 0..100 {
                deep.extend_from_slice(&[200, 1, 0]);
            }
            deep.push(0);
            assert!(matches!(
                Shape::decode_slice(&deep).unwrap_err().kind,
                DecodeErrorKind::TooDeep { .. }
            ));
            let shape = Shape::ShapeList(ShapeList(vec![
                Shape::Void,
                Shape::U32(5),
                Shape::Empty(Empty),
            ]));
            let h = concat!(
                "c8",          // Shape 200 = ShapeList
                "0300",        // count (u16) = 3
                "00",          // Shape 0 = void
                "02050000 00", // Shape 2 = u32 5
                "04",          // Shape 4 = Empty
            );
            assert_eq!(to_hex(&shape.encode().unwrap()), to_hex(&hex(h)));
            assert_eq!(Shape::decode_slice(&hex(h)).unwrap(), shape);
        }
    }
}
