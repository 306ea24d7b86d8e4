//! Parser and resolver for the Jaw schema language (see `jaw/` and the spec's `doc/example.jaw`).
//!
//! Used by `build.rs` to generate the codec and by [`crate::codegen`] for applications' schemas.
//! It has no dependencies beyond `std`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// A parse or resolution error, naming the file, the line and what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct JawError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for JawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for JawError {}

/// Built-in scalar types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Builtin {
    pub fn parse(s: &str) -> Option<Builtin> {
        Some(match s {
            "u8" => Builtin::U8,
            "u16" => Builtin::U16,
            "u32" => Builtin::U32,
            "u64" => Builtin::U64,
            "i8" => Builtin::I8,
            "i16" => Builtin::I16,
            "i32" => Builtin::I32,
            "i64" => Builtin::I64,
            "f32" => Builtin::F32,
            "f64" => Builtin::F64,
            _ => return None,
        })
    }
    pub fn size(self) -> usize {
        match self {
            Builtin::U8 | Builtin::I8 => 1,
            Builtin::U16 | Builtin::I16 => 2,
            Builtin::U32 | Builtin::I32 | Builtin::F32 => 4,
            Builtin::U64 | Builtin::I64 | Builtin::F64 => 8,
        }
    }
    pub fn is_unsigned(self) -> bool {
        matches!(
            self,
            Builtin::U8 | Builtin::U16 | Builtin::U32 | Builtin::U64
        )
    }
    pub fn is_integer(self) -> bool {
        !matches!(self, Builtin::F32 | Builtin::F64)
    }
    pub fn rust(self) -> &'static str {
        match self {
            Builtin::U8 => "u8",
            Builtin::U16 => "u16",
            Builtin::U32 => "u32",
            Builtin::U64 => "u64",
            Builtin::I8 => "i8",
            Builtin::I16 => "i16",
            Builtin::I32 => "i32",
            Builtin::I64 => "i64",
            Builtin::F32 => "f32",
            Builtin::F64 => "f64",
        }
    }
    /// The explicit little-endian storage type used inside packs.
    pub fn le(self) -> &'static str {
        match self {
            Builtin::U8 => "u8",
            Builtin::I8 => "i8",
            Builtin::U16 => "U16",
            Builtin::U32 => "U32",
            Builtin::U64 => "U64",
            Builtin::I16 => "I16",
            Builtin::I32 => "I32",
            Builtin::I64 => "I64",
            Builtin::F32 => "F32",
            Builtin::F64 => "F64",
        }
    }
    pub fn max_unsigned(self) -> u64 {
        match self.size() {
            1 => u8::MAX as u64,
            2 => u16::MAX as u64,
            4 => u32::MAX as u64,
            _ => u64::MAX,
        }
    }
}

/// A reference to a type, as written in a member or declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeRef {
    Builtin(Builtin),
    Void,
    Named(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub ty: TypeRef,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnumMember {
    pub name: String,
    pub value: u64,
    pub is_default: bool,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BitsField {
    pub lo: u32,
    pub hi: u32,
    pub name: String,
    pub ty: TypeRef,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariantOption {
    pub disc: u64,
    pub ty: TypeRef,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeclKind {
    Pack(Vec<Member>),
    Seq(Vec<Member>),
    FixedArray {
        count: u64,
        elem: TypeRef,
    },
    /// `utf8` is set by a trailing comment starting with `UTF-8` on a `u8` array.
    DynArray {
        count: Builtin,
        elem: TypeRef,
        utf8: bool,
    },
    Enum {
        base: Builtin,
        members: Vec<EnumMember>,
    },
    Bits {
        base: TypeRef,
        fields: Vec<BitsField>,
    },
    Variant {
        base: Builtin,
        options: Vec<VariantOption>,
    },
    Const {
        ty: Builtin,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decl {
    pub name: String,
    pub kind: DeclKind,
    pub line: usize,
    /// Comment lines directly above the declaration plus its trailing comment.
    pub doc: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImportList {
    All,
    Names(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub path: String,
    pub names: ImportList,
    pub line: usize,
}

/// One parsed `.jaw` file.
#[derive(Debug, Clone, PartialEq)]
pub struct JawFile {
    /// Path relative to the schema root, with `/` separators.
    pub rel: String,
    pub imports: Vec<Import>,
    pub decls: Vec<Decl>,
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn parse_typeref(s: &str) -> Option<TypeRef> {
    let s = s.trim();
    if s == "void" {
        Some(TypeRef::Void)
    } else if let Some(b) = Builtin::parse(s) {
        Some(TypeRef::Builtin(b))
    } else if is_ident(s) {
        Some(TypeRef::Named(s.to_string()))
    } else {
        None
    }
}

struct LineCtx<'a> {
    file: &'a str,
    line: usize,
}

impl LineCtx<'_> {
    fn err(&self, message: impl Into<String>) -> JawError {
        JawError {
            file: self.file.to_string(),
            line: self.line,
            message: message.into(),
        }
    }
}

/// Split `text # comment` into the code part and the comment (without `#`).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    match line.find('#') {
        Some(i) => (&line[..i], Some(line[i + 1..].trim())),
        None => (line, None),
    }
}

/// Parse one file's text. `rel` names the file in errors.
pub fn parse_file(rel: &str, text: &str) -> Result<JawFile, JawError> {
    let mut file = JawFile {
        rel: rel.to_string(),
        imports: Vec::new(),
        decls: Vec::new(),
    };
    let mut pending_doc: Vec<String> = Vec::new();
    // The declaration currently receiving members, if any.
    let mut open: Option<Decl> = None;

    for (i, raw) in text.lines().enumerate() {
        let ctx = LineCtx {
            file: rel,
            line: i + 1,
        };
        let (code, comment) = split_comment(raw);
        let code = code.trim();
        if code.is_empty() {
            if let Some(c) = comment {
                if raw.trim_start().starts_with('#') {
                    pending_doc.push(c.to_string());
                }
            } else {
                pending_doc.clear();
            }
            continue;
        }
        if let Some(rest) = code.strip_prefix('-').or_else(|| code.strip_prefix('>')) {
            let is_default = code.starts_with('>');
            let Some(decl) = open.as_mut() else {
                return Err(ctx.err("expected a declaration (pack, seq, enum, bits, variant, fixed_array, dyn_array, const or from), found a member line outside any declaration"));
            };
            parse_member(&ctx, decl, rest.trim(), is_default)?;
            pending_doc.clear();
            continue;
        }
        // A new top-level item: close the open declaration.
        if let Some(decl) = open.take() {
            file.decls.push(decl);
        }
        let (keyword, rest) = match code.split_once(char::is_whitespace) {
            Some((k, r)) => (k, r.trim()),
            None => (code, ""),
        };
        let mut doc = std::mem::take(&mut pending_doc);
        if let Some(c) = comment {
            doc.push(c.to_string());
        }
        match keyword {
            "from" => file.imports.push(parse_import(&ctx, rest)?),
            "pack" | "seq" => {
                let name = expect_name(&ctx, rest, keyword)?;
                let kind = if keyword == "pack" {
                    DeclKind::Pack(Vec::new())
                } else {
                    DeclKind::Seq(Vec::new())
                };
                open = Some(Decl {
                    name,
                    kind,
                    line: ctx.line,
                    doc,
                });
            }
            "enum" | "bits" | "variant" => {
                let (name, base) = rest
                    .split_once(':')
                    .ok_or_else(|| ctx.err(format!("expected `{keyword} NAME : BASE_TYPE`")))?;
                let name = expect_name(&ctx, name, keyword)?;
                let base_s = base.trim();
                let kind = match keyword {
                    "bits" => DeclKind::Bits {
                        base: parse_typeref(base_s)
                            .filter(|t| *t != TypeRef::Void)
                            .ok_or_else(|| ctx.err(format!("expected an integer or enum base type for bits `{name}`, found `{base_s}`")))?,
                        fields: Vec::new(),
                    },
                    _ => {
                        let b = Builtin::parse(base_s).filter(|b| b.is_unsigned()).ok_or_else(|| {
                            ctx.err(format!("expected an unsigned integer base type (u8, u16, u32, u64) for {keyword} `{name}`, found `{base_s}`"))
                        })?;
                        if keyword == "enum" {
                            DeclKind::Enum { base: b, members: Vec::new() }
                        } else {
                            DeclKind::Variant { base: b, options: Vec::new() }
                        }
                    }
                };
                open = Some(Decl {
                    name,
                    kind,
                    line: ctx.line,
                    doc,
                });
            }
            "fixed_array" | "dyn_array" => {
                let (name, spec) = rest
                    .split_once(':')
                    .ok_or_else(|| ctx.err(format!("expected `{keyword} NAME : COUNT * TYPE`")))?;
                let name = expect_name(&ctx, name, keyword)?;
                let (count, elem) = spec.split_once('*').ok_or_else(|| {
                    ctx.err(format!(
                        "expected `COUNT * TYPE` after `{keyword} {name} :`"
                    ))
                })?;
                let elem_s = elem.trim();
                let elem = parse_typeref(elem_s)
                    .filter(|t| *t != TypeRef::Void)
                    .ok_or_else(|| {
                        ctx.err(format!(
                            "expected an element type for `{name}`, found `{elem_s}`"
                        ))
                    })?;
                let kind = if keyword == "fixed_array" {
                    let count = parse_uint(count)
                        .ok_or_else(|| ctx.err(format!("expected an element count (an integer) for fixed_array `{name}`, found `{}`", count.trim())))?;
                    DeclKind::FixedArray { count, elem }
                } else {
                    let count_s = count.trim();
                    let count = Builtin::parse(count_s).filter(|b| b.is_unsigned()).ok_or_else(|| {
                        ctx.err(format!("expected an unsigned count type (u8, u16, u32, u64) for dyn_array `{name}`, found `{count_s}`"))
                    })?;
                    let utf8 = elem == TypeRef::Builtin(Builtin::U8)
                        && comment.is_some_and(|c| c.starts_with("UTF-8"));
                    DeclKind::DynArray { count, elem, utf8 }
                };
                file.decls.push(Decl {
                    name,
                    kind,
                    line: ctx.line,
                    doc,
                });
            }
            "const" => {
                let (name, rest2) = rest
                    .split_once(':')
                    .ok_or_else(|| ctx.err("expected `const NAME : TYPE = VALUE`"))?;
                let name = expect_name(&ctx, name, "const")?;
                let (ty, value) = rest2
                    .split_once('=')
                    .ok_or_else(|| ctx.err(format!("expected `= VALUE` in const `{name}`")))?;
                let ty_s = ty.trim();
                let ty = Builtin::parse(ty_s).ok_or_else(|| {
                    ctx.err(format!(
                        "expected a builtin type for const `{name}`, found `{ty_s}`"
                    ))
                })?;
                let value = value.trim().to_string();
                let ok = if ty.is_integer() {
                    parse_uint(&value).is_some()
                        || value.strip_prefix('-').and_then(parse_uint).is_some()
                } else {
                    value.parse::<f64>().is_ok()
                };
                if !ok {
                    return Err(ctx.err(format!(
                        "expected a {} literal for const `{name}`, found `{value}`",
                        ty.rust()
                    )));
                }
                file.decls.push(Decl {
                    name,
                    kind: DeclKind::Const { ty, value },
                    line: ctx.line,
                    doc,
                });
            }
            other => {
                return Err(ctx.err(format!(
                    "expected a declaration keyword (pack, seq, enum, bits, variant, fixed_array, dyn_array, const, from), found `{other}`"
                )));
            }
        }
    }
    if let Some(decl) = open.take() {
        file.decls.push(decl);
    }
    Ok(file)
}

fn expect_name(ctx: &LineCtx<'_>, s: &str, keyword: &str) -> Result<String, JawError> {
    let s = s.trim();
    if is_ident(s) {
        Ok(s.to_string())
    } else {
        Err(ctx.err(format!(
            "expected a type name after `{keyword}`, found `{s}`"
        )))
    }
}

fn parse_import(ctx: &LineCtx<'_>, rest: &str) -> Result<Import, JawError> {
    let rest = rest.trim();
    let Some(after_quote) = rest.strip_prefix('"') else {
        return Err(ctx.err("expected `from \"PATH\" use *` or `from \"PATH\" use {A, B}`"));
    };
    let (path, tail) = after_quote
        .split_once('"')
        .ok_or_else(|| ctx.err("expected a closing `\"` after the import path"))?;
    let tail = tail.trim();
    let list = tail
        .strip_prefix("use")
        .map(str::trim)
        .ok_or_else(|| ctx.err(format!("expected `use` after `from \"{path}\"`")))?;
    let names = if list == "*" {
        ImportList::All
    } else if let Some(inner) = list.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
        let mut names = Vec::new();
        for n in inner.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if !is_ident(n) {
                return Err(ctx.err(format!(
                    "expected a type name in the import list, found `{n}`"
                )));
            }
            names.push(n.to_string());
        }
        ImportList::Names(names)
    } else {
        return Err(ctx.err(format!(
            "expected `*` or `{{A, B}}` after `use`, found `{list}`"
        )));
    };
    Ok(Import {
        path: path.to_string(),
        names,
        line: ctx.line,
    })
}

fn parse_member(
    ctx: &LineCtx<'_>,
    decl: &mut Decl,
    rest: &str,
    is_default: bool,
) -> Result<(), JawError> {
    let dname = decl.name.clone();
    if is_default && !matches!(decl.kind, DeclKind::Enum { .. }) {
        return Err(ctx.err(format!(
            "`>` (default member) is only allowed in an enum, not in `{dname}`"
        )));
    }
    match &mut decl.kind {
        DeclKind::Pack(members) | DeclKind::Seq(members) => {
            let (name, ty) = rest
                .split_once(':')
                .ok_or_else(|| ctx.err(format!("expected `- name : Type` in `{dname}`")))?;
            let name = name.trim();
            if !is_ident(name) {
                return Err(ctx.err(format!(
                    "expected a member name in `{dname}`, found `{name}`"
                )));
            }
            let ty_s = ty.trim();
            let ty = parse_typeref(ty_s)
                .filter(|t| *t != TypeRef::Void)
                .ok_or_else(|| {
                    ctx.err(format!(
                        "expected a type for member `{name}` of `{dname}`, found `{ty_s}`"
                    ))
                })?;
            members.push(Member {
                name: name.to_string(),
                ty,
                line: ctx.line,
            });
        }
        DeclKind::Enum { members, .. } => {
            let (name, value) = rest
                .split_once('=')
                .ok_or_else(|| ctx.err(format!("expected `- Name = VALUE` in enum `{dname}`")))?;
            let name = name.trim();
            if !is_ident(name) {
                return Err(ctx.err(format!(
                    "expected a member name in enum `{dname}`, found `{name}`"
                )));
            }
            let value = parse_uint(value).ok_or_else(|| {
                ctx.err(format!(
                    "expected an unsigned integer value for `{name}` in enum `{dname}`, found `{}`",
                    value.trim()
                ))
            })?;
            members.push(EnumMember {
                name: name.to_string(),
                value,
                is_default,
                line: ctx.line,
            });
        }
        DeclKind::Bits { fields, .. } => {
            let (range, field) = rest.split_once(char::is_whitespace).ok_or_else(|| {
                ctx.err(format!(
                    "expected `- BIT name : Type` or `- LO-HI name : Type` in bits `{dname}`"
                ))
            })?;
            let (lo, hi) = match range.split_once('-') {
                Some((a, b)) => (parse_uint(a), parse_uint(b)),
                None => (parse_uint(range), parse_uint(range)),
            };
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Err(ctx.err(format!("expected a bit position or range (e.g. `3` or `1-2`) in bits `{dname}`, found `{range}`")));
            };
            if lo > hi || hi > 63 {
                return Err(ctx.err(format!(
                    "bit range `{range}` in bits `{dname}` must be LO-HI with LO <= HI <= 63"
                )));
            }
            let (name, ty) = field.split_once(':').ok_or_else(|| {
                ctx.err(format!(
                    "expected `name : Type` after the bit range in bits `{dname}`"
                ))
            })?;
            let name = name.trim();
            if !is_ident(name) {
                return Err(ctx.err(format!(
                    "expected a field name in bits `{dname}`, found `{name}`"
                )));
            }
            let ty_s = ty.trim();
            let ty = parse_typeref(ty_s)
                .filter(|t| *t != TypeRef::Void)
                .ok_or_else(|| {
                    ctx.err(format!(
                        "expected a type for field `{name}` of bits `{dname}`, found `{ty_s}`"
                    ))
                })?;
            fields.push(BitsField {
                lo: lo as u32,
                hi: hi as u32,
                name: name.to_string(),
                ty,
                line: ctx.line,
            });
        }
        DeclKind::Variant { options, .. } => {
            let (disc, ty) = rest.split_once("=>").ok_or_else(|| {
                ctx.err(format!(
                    "expected `- DISCRIMINANT => Type` in variant `{dname}`"
                ))
            })?;
            let disc = parse_uint(disc).ok_or_else(|| {
                ctx.err(format!(
                    "expected an unsigned discriminant in variant `{dname}`, found `{}`",
                    disc.trim()
                ))
            })?;
            let ty_s = ty.trim();
            let ty = parse_typeref(ty_s)
                .ok_or_else(|| ctx.err(format!("expected a type or `void` for discriminant {disc} of variant `{dname}`, found `{ty_s}`")))?;
            options.push(VariantOption {
                disc,
                ty,
                line: ctx.line,
            });
        }
        DeclKind::FixedArray { .. } | DeclKind::DynArray { .. } | DeclKind::Const { .. } => {
            return Err(ctx.err(format!("`{dname}` takes no member lines")));
        }
    }
    Ok(())
}

/// A resolved schema: every file parsed, imports checked, names unique, types validated.
#[derive(Debug, Clone)]
pub struct Schema {
    pub files: Vec<JawFile>,
    /// Declaration name → (file index, decl index).
    pub index: BTreeMap<String, (usize, usize)>,
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn rel_string(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Load every file reachable from `entry` (relative to `root`), following imports.
/// `read` returns a file's text given its path relative to `root`.
pub fn load_schema(
    entries: &[&str],
    read: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<Schema, JawError> {
    let mut files: Vec<JawFile> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue: Vec<(String, String, usize)> = entries
        .iter()
        .map(|e| (e.to_string(), "<entry>".to_string(), 0))
        .collect();
    while let Some((rel, from, line)) = queue.pop() {
        if !seen.insert(rel.clone()) {
            continue;
        }
        let text = read(&rel).ok_or_else(|| JawError {
            file: from.clone(),
            line,
            message: format!("expected an importable file at `{rel}`, but it cannot be read"),
        })?;
        let file = parse_file(&rel, &text)?;
        let dir = Path::new(&rel)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for imp in &file.imports {
            let target = rel_string(&normalize(&dir.join(&imp.path)));
            queue.push((target, rel.clone(), imp.line));
        }
        files.push(file);
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    resolve(files)
}

/// The path (relative to the schema root) an import in `file` refers to.
pub fn import_target(file: &JawFile, imp: &Import) -> String {
    let dir = Path::new(&file.rel)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    rel_string(&normalize(&dir.join(&imp.path)))
}

/// Check names, imports and type rules across parsed files.
pub fn resolve(files: Vec<JawFile>) -> Result<Schema, JawError> {
    let mut index: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (fi, f) in files.iter().enumerate() {
        for (di, d) in f.decls.iter().enumerate() {
            if let Some(&(pf, pd)) = index.get(&d.name) {
                let prev: &Decl = &files[pf].decls[pd];
                return Err(JawError {
                    file: f.rel.clone(),
                    line: d.line,
                    message: format!(
                        "`{}` is already declared at {}:{}",
                        d.name, files[pf].rel, prev.line
                    ),
                });
            }
            if Builtin::parse(&d.name).is_some() || d.name == "void" {
                return Err(JawError {
                    file: f.rel.clone(),
                    line: d.line,
                    message: format!("`{}` is a builtin type name", d.name),
                });
            }
            index.insert(d.name.clone(), (fi, di));
        }
    }
    let schema = Schema { files, index };
    for f in &schema.files {
        let visible = schema.visible_names(f)?;
        for d in &f.decls {
            schema.check_decl(f, d, &visible)?;
        }
    }
    schema.check_cycles()?;
    Ok(schema)
}

impl Schema {
    pub fn decl(&self, name: &str) -> Option<&Decl> {
        self.index.get(name).map(|&(f, d)| &self.files[f].decls[d])
    }

    pub fn file_of(&self, name: &str) -> Option<&JawFile> {
        self.index.get(name).map(|&(f, _)| &self.files[f])
    }

    fn file_by_rel(&self, rel: &str) -> Option<&JawFile> {
        self.files.iter().find(|f| f.rel == rel)
    }

    /// Names a file may refer to: its own declarations plus its imports (transitively through `*`).
    pub fn visible_names(&self, f: &JawFile) -> Result<BTreeSet<String>, JawError> {
        let mut out: BTreeSet<String> = f.decls.iter().map(|d| d.name.clone()).collect();
        for imp in &f.imports {
            let target = import_target(f, imp);
            let tf = self.file_by_rel(&target).ok_or_else(|| JawError {
                file: f.rel.clone(),
                line: imp.line,
                message: format!(
                    "expected `{}` to be a schema file, but it was not loaded",
                    imp.path
                ),
            })?;
            let exported = self.exported_names(tf, &mut BTreeSet::new());
            match &imp.names {
                ImportList::All => out.extend(exported),
                ImportList::Names(names) => {
                    for n in names {
                        if !exported.contains(n) {
                            return Err(JawError {
                                file: f.rel.clone(),
                                line: imp.line,
                                message: format!(
                                    "expected `{n}` to be declared in `{}`, but it is not",
                                    imp.path
                                ),
                            });
                        }
                        out.insert(n.clone());
                    }
                }
            }
        }
        Ok(out)
    }

    /// Names a file makes available to importers: its declarations plus what it imports.
    pub fn exported_names(&self, f: &JawFile, stack: &mut BTreeSet<String>) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = f.decls.iter().map(|d| d.name.clone()).collect();
        if !stack.insert(f.rel.clone()) {
            return out;
        }
        for imp in &f.imports {
            let target = import_target(f, imp);
            if let Some(tf) = self.file_by_rel(&target) {
                match &imp.names {
                    ImportList::All => out.extend(self.exported_names(tf, stack)),
                    ImportList::Names(n) => out.extend(n.iter().cloned()),
                }
            }
        }
        out
    }

    fn err(f: &JawFile, line: usize, message: String) -> JawError {
        JawError {
            file: f.rel.clone(),
            line,
            message,
        }
    }

    fn check_ref(
        &self,
        f: &JawFile,
        line: usize,
        ty: &TypeRef,
        visible: &BTreeSet<String>,
    ) -> Result<(), JawError> {
        if let TypeRef::Named(n) = ty {
            if !visible.contains(n) {
                let hint = if self.index.contains_key(n) {
                    format!(
                        " (it is declared in `{}`; add an import)",
                        self.file_of(n).map(|f| f.rel.as_str()).unwrap_or("?")
                    )
                } else {
                    String::new()
                };
                return Err(Self::err(
                    f,
                    line,
                    format!("expected a known type, found `{n}`{hint}"),
                ));
            }
            if matches!(self.decl(n).map(|d| &d.kind), Some(DeclKind::Const { .. })) {
                return Err(Self::err(f, line, format!("`{n}` is a const, not a type")));
            }
        }
        Ok(())
    }

    fn check_decl(
        &self,
        f: &JawFile,
        d: &Decl,
        visible: &BTreeSet<String>,
    ) -> Result<(), JawError> {
        let e = |line: usize, m: String| Self::err(f, line, m);
        match &d.kind {
            DeclKind::Pack(members) | DeclKind::Seq(members) => {
                let mut names = BTreeSet::new();
                for m in members {
                    self.check_ref(f, m.line, &m.ty, visible)?;
                    if !names.insert(&m.name) {
                        return Err(e(
                            m.line,
                            format!("member `{}` appears twice in `{}`", m.name, d.name),
                        ));
                    }
                    if matches!(d.kind, DeclKind::Pack(_)) && !self.is_pod(&m.ty) {
                        return Err(e(
                            m.line,
                            format!(
                                "expected a plain-old-data type for member `{}` of pack `{}` (builtin, pack, enum, bits or fixed_array of those)",
                                m.name, d.name
                            ),
                        ));
                    }
                }
            }
            DeclKind::FixedArray { elem, .. } | DeclKind::DynArray { elem, .. } => {
                self.check_ref(f, d.line, elem, visible)?;
            }
            DeclKind::Enum { base, members } => {
                if members.is_empty() {
                    return Err(e(d.line, format!("enum `{}` has no members", d.name)));
                }
                let mut names = BTreeSet::new();
                let mut values = BTreeSet::new();
                let mut defaults = 0;
                for m in members {
                    if !names.insert(&m.name) {
                        return Err(e(
                            m.line,
                            format!("member `{}` appears twice in enum `{}`", m.name, d.name),
                        ));
                    }
                    if !values.insert(m.value) {
                        return Err(e(
                            m.line,
                            format!("value {} appears twice in enum `{}`", m.value, d.name),
                        ));
                    }
                    if m.value > base.max_unsigned() {
                        return Err(e(
                            m.line,
                            format!(
                                "value {} does not fit the base type {} of enum `{}`",
                                m.value,
                                base.rust(),
                                d.name
                            ),
                        ));
                    }
                    defaults += m.is_default as usize;
                }
                if defaults > 1 {
                    return Err(e(
                        d.line,
                        format!("enum `{}` marks more than one default with `>`", d.name),
                    ));
                }
            }
            DeclKind::Bits { base, fields } => {
                self.check_ref(f, d.line, base, visible)?;
                let width = self.bits_storage(base).ok_or_else(|| {
                    e(
                        d.line,
                        format!(
                            "expected an integer or enum base type for bits `{}`",
                            d.name
                        ),
                    )
                })?;
                let width_bits = width.size() as u32 * 8;
                let mut used: u64 = 0;
                let mut names = BTreeSet::new();
                for bf in fields {
                    self.check_ref(f, bf.line, &bf.ty, visible)?;
                    if !names.insert(&bf.name) {
                        return Err(e(
                            bf.line,
                            format!("field `{}` appears twice in bits `{}`", bf.name, d.name),
                        ));
                    }
                    if bf.hi >= width_bits {
                        return Err(e(
                            bf.line,
                            format!(
                                "bit {} of `{}` is outside the {width_bits}-bit base of bits `{}`",
                                bf.hi, bf.name, d.name
                            ),
                        ));
                    }
                    let n = bf.hi - bf.lo + 1;
                    let mask = if n == 64 {
                        u64::MAX
                    } else {
                        ((1u64 << n) - 1) << bf.lo
                    };
                    if used & mask != 0 {
                        return Err(e(
                            bf.line,
                            format!(
                                "field `{}` overlaps another field of bits `{}`",
                                bf.name, d.name
                            ),
                        ));
                    }
                    used |= mask;
                    let field_bits = match &bf.ty {
                        TypeRef::Builtin(b) if b.is_integer() => b.size() as u32 * 8,
                        TypeRef::Named(nm) => match self.decl(nm).map(|x| &x.kind) {
                            Some(DeclKind::Enum { base, .. }) => base.size() as u32 * 8,
                            _ => {
                                return Err(e(
                                    bf.line,
                                    format!(
                                        "expected an integer or enum type for field `{}` of bits `{}`",
                                        bf.name, d.name
                                    ),
                                ));
                            }
                        },
                        _ => {
                            return Err(e(
                                bf.line,
                                format!(
                                    "expected an integer or enum type for field `{}` of bits `{}`",
                                    bf.name, d.name
                                ),
                            ));
                        }
                    };
                    if n > field_bits {
                        return Err(e(
                            bf.line,
                            format!(
                                "field `{}` spans {n} bits, more than its type holds",
                                bf.name
                            ),
                        ));
                    }
                }
            }
            DeclKind::Variant { base, options } => {
                if options.is_empty() {
                    return Err(e(d.line, format!("variant `{}` has no options", d.name)));
                }
                let mut discs = BTreeSet::new();
                for o in options {
                    self.check_ref(f, o.line, &o.ty, visible)?;
                    if !discs.insert(o.disc) {
                        return Err(e(
                            o.line,
                            format!(
                                "discriminant {} appears twice in variant `{}`",
                                o.disc, d.name
                            ),
                        ));
                    }
                    if o.disc > base.max_unsigned() {
                        return Err(e(
                            o.line,
                            format!(
                                "discriminant {} does not fit the base type {} of variant `{}`",
                                o.disc,
                                base.rust(),
                                d.name
                            ),
                        ));
                    }
                }
            }
            DeclKind::Const { .. } => {}
        }
        Ok(())
    }

    /// The integer storage of a bits type's base (an integer, or an enum's base).
    pub fn bits_storage(&self, base: &TypeRef) -> Option<Builtin> {
        match base {
            TypeRef::Builtin(b) if b.is_integer() => Some(*b),
            TypeRef::Named(n) => match &self.decl(n)?.kind {
                DeclKind::Enum { base, .. } => Some(*base),
                _ => None,
            },
            _ => None,
        }
    }

    /// Plain old data: fixed size, any bit pattern of the storage is representable.
    pub fn is_pod(&self, ty: &TypeRef) -> bool {
        match ty {
            TypeRef::Builtin(_) => true,
            TypeRef::Void => false,
            TypeRef::Named(n) => match self.decl(n).map(|d| &d.kind) {
                Some(DeclKind::Pack(_))
                | Some(DeclKind::Enum { .. })
                | Some(DeclKind::Bits { .. }) => true,
                Some(DeclKind::FixedArray { elem, .. }) => self.is_pod(elem),
                _ => false,
            },
        }
    }

    /// Size in bytes of a POD type.
    pub fn pod_size(&self, ty: &TypeRef) -> usize {
        match ty {
            TypeRef::Builtin(b) => b.size(),
            TypeRef::Void => 0,
            TypeRef::Named(n) => match self.decl(n).map(|d| &d.kind) {
                Some(DeclKind::Pack(ms)) => ms.iter().map(|m| self.pod_size(&m.ty)).sum(),
                Some(DeclKind::Enum { base, .. }) => base.size(),
                Some(DeclKind::Bits { base, .. }) => {
                    self.bits_storage(base).map(Builtin::size).unwrap_or(0)
                }
                Some(DeclKind::FixedArray { count, elem }) => *count as usize * self.pod_size(elem),
                _ => 0,
            },
        }
    }

    /// The smallest number of bytes any value of this type occupies on the wire.
    pub fn min_size(&self, ty: &TypeRef) -> usize {
        self.min_size_guarded(ty, &mut BTreeSet::new())
    }

    fn min_size_guarded(&self, ty: &TypeRef, stack: &mut BTreeSet<String>) -> usize {
        match ty {
            TypeRef::Builtin(b) => b.size(),
            TypeRef::Void => 0,
            TypeRef::Named(n) => {
                if self.is_pod(ty) {
                    return self.pod_size(ty);
                }
                if !stack.insert(n.clone()) {
                    return 0;
                }
                let r = match self.decl(n).map(|d| &d.kind) {
                    Some(DeclKind::Seq(ms)) => {
                        ms.iter().map(|m| self.min_size_guarded(&m.ty, stack)).sum()
                    }
                    Some(DeclKind::FixedArray { count, elem }) => {
                        *count as usize * self.min_size_guarded(elem, stack)
                    }
                    Some(DeclKind::DynArray { count, .. }) => count.size(),
                    Some(DeclKind::Variant { base, options }) => {
                        base.size()
                            + options
                                .iter()
                                .map(|o| self.min_size_guarded(&o.ty, stack))
                                .min()
                                .unwrap_or(0)
                    }
                    _ => 0,
                };
                stack.remove(n);
                r
            }
        }
    }

    /// Named types directly referenced by a declaration.
    pub fn children(&self, d: &Decl) -> Vec<TypeRef> {
        match &d.kind {
            DeclKind::Pack(ms) | DeclKind::Seq(ms) => ms.iter().map(|m| m.ty.clone()).collect(),
            DeclKind::FixedArray { elem, .. } | DeclKind::DynArray { elem, .. } => {
                vec![elem.clone()]
            }
            DeclKind::Bits { base, fields } => {
                let mut v: Vec<TypeRef> = fields.iter().map(|f| f.ty.clone()).collect();
                v.push(base.clone());
                v
            }
            DeclKind::Variant { options, .. } => options.iter().map(|o| o.ty.clone()).collect(),
            DeclKind::Enum { .. } | DeclKind::Const { .. } => Vec::new(),
        }
    }

    /// Does `from` reach `to` through member types? (Cycles are allowed only through a dyn_array.)
    pub fn reaches(&self, from: &TypeRef, to: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(t) = stack.pop() {
            if let TypeRef::Named(n) = t {
                if n == to {
                    return true;
                }
                if !seen.insert(n.clone()) {
                    continue;
                }
                if let Some(d) = self.decl(&n) {
                    stack.extend(self.children(d));
                }
            }
        }
        false
    }

    /// A type may only contain itself through a dyn_array (which gives the recursion a finite size).
    fn check_cycles(&self) -> Result<(), JawError> {
        for f in &self.files {
            for d in f
                .decls
                .iter()
                .filter(|d| !matches!(d.kind, DeclKind::DynArray { .. }))
            {
                let mut seen = BTreeSet::new();
                let mut stack: Vec<TypeRef> = self.children(d);
                while let Some(t) = stack.pop() {
                    let TypeRef::Named(n) = t else { continue };
                    if n == d.name {
                        return Err(Self::err(
                            f,
                            d.line,
                            format!(
                                "`{}` contains itself without a dyn_array in between, so it has no finite size",
                                d.name
                            ),
                        ));
                    }
                    if !seen.insert(n.clone()) {
                        continue;
                    }
                    if let Some(c) = self.decl(&n)
                        && !matches!(c.kind, DeclKind::DynArray { .. })
                    {
                        stack.extend(self.children(c));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Every `.jaw` file under `dir`, as paths relative to `root` with `/` separators, sorted.
pub fn jaw_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?
        .collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            jaw_files(root, &p, out)?;
        } else if p.extension().is_some_and(|x| x == "jaw") {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            out.push(
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/"),
            );
        }
    }
    Ok(())
}
