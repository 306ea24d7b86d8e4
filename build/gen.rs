//! Rust code generator for a resolved Jaw [`Schema`](super::jaw::Schema).
//!
//! Emits one module per `.jaw` file (types, strict decode, encode, id visitors), and a file of
//! proptest strategies for every type used by the round-trip tests.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::jaw::{Builtin, Decl, DeclKind, ImportList, JawFile, Schema, TypeRef, import_target};

const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield",
];

/// A Jaw member name as a Rust identifier (keywords become raw identifiers, or get a `_` suffix
/// where raw identifiers are not allowed).
pub fn rust_ident(name: &str) -> String {
    // `None`, `Some`, `Ok` and `Err` are not keywords, but as a parameter (e.g. of a pack's `new`)
    // they would be patterns naming the prelude's variants rather than bindings.
    if matches!(
        name,
        "self" | "Self" | "super" | "crate" | "_" | "None" | "Some" | "Ok" | "Err"
    ) {
        format!("{name}_")
    } else if RUST_KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

/// A Jaw type name as a Rust type name.
pub fn rust_type_name(name: &str) -> String {
    if RUST_KEYWORDS.contains(&name)
        || matches!(
            name,
            "Option" | "Result" | "Vec" | "String" | "Box" | "Some" | "None" | "Ok" | "Err"
        )
    {
        format!("{name}_")
    } else {
        name.to_string()
    }
}

/// An enum member name in Rust style: names starting lowercase become UpperCamelCase.
pub fn enum_member_name(name: &str) -> String {
    let converted = if name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.split('_')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let mut c = p.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect()
    } else {
        name.to_string()
    };
    if matches!(converted.as_str(), "Self") {
        format!("{converted}_")
    } else {
        converted
    }
}

/// The Rust module name for a schema file: `core/components/transform.jaw` → `core_components_transform`.
pub fn module_name(rel: &str) -> String {
    let stem = rel.strip_suffix(".jaw").unwrap_or(rel);
    let m: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if RUST_KEYWORDS.contains(&m.as_str()) || m == "rt" {
        format!("{m}_")
    } else {
        m
    }
}

pub struct Generator<'s> {
    pub schema: &'s Schema,
}

fn builtin_variant_name(b: Builtin) -> String {
    b.rust().to_ascii_uppercase()
}

impl<'s> Generator<'s> {
    fn decl(&self, name: &str) -> &'s Decl {
        self.schema
            .decl(name)
            .expect("resolved schema names are declared")
    }

    fn kind_of(&self, ty: &TypeRef) -> Option<&'s DeclKind> {
        match ty {
            TypeRef::Named(n) => Some(&self.decl(n).kind),
            _ => None,
        }
    }

    fn is_enum(&self, ty: &TypeRef) -> bool {
        matches!(self.kind_of(ty), Some(DeclKind::Enum { .. }))
    }

    fn enum_base(&self, ty: &TypeRef) -> Option<Builtin> {
        match self.kind_of(ty) {
            Some(DeclKind::Enum { base, .. }) => Some(*base),
            _ => None,
        }
    }

    fn enum_has_default(&self, ty: &TypeRef) -> bool {
        match self.kind_of(ty) {
            Some(DeclKind::Enum { members, .. }) => members.iter().any(|m| m.is_default),
            _ => false,
        }
    }

    /// A POD aggregate that is stored as-is (pack, bits, fixed_array of POD).
    fn is_pod_aggregate(&self, ty: &TypeRef) -> bool {
        self.schema.is_pod(ty)
            && matches!(
                self.kind_of(ty),
                Some(DeclKind::Pack(_))
                    | Some(DeclKind::Bits { .. })
                    | Some(DeclKind::FixedArray { .. })
            )
    }

    /// Rust type of a value in an owned (seq / variant / array) position.
    fn owned_ty(&self, ty: &TypeRef) -> String {
        match ty {
            TypeRef::Builtin(b) => b.rust().to_string(),
            TypeRef::Void => "()".to_string(),
            TypeRef::Named(n) => rust_type_name(n),
        }
    }

    /// Rust type of a value stored inside a pack (explicit little-endian storage; enums as their raw base).
    fn pack_ty(&self, ty: &TypeRef) -> String {
        match ty {
            TypeRef::Builtin(b) => b.le().to_string(),
            TypeRef::Named(n) => match &self.decl(n).kind {
                DeclKind::Enum { base, .. } => base.le().to_string(),
                _ => rust_type_name(n),
            },
            TypeRef::Void => "()".to_string(),
        }
    }

    fn rust_default_ok(&self, ty: &TypeRef, stack: &mut BTreeSet<String>) -> bool {
        match ty {
            TypeRef::Builtin(_) | TypeRef::Void => true,
            TypeRef::Named(n) => {
                if !stack.insert(n.clone()) {
                    return false;
                }
                let r = match &self.decl(n).kind {
                    DeclKind::Pack(_)
                    | DeclKind::Enum { .. }
                    | DeclKind::Bits { .. }
                    | DeclKind::DynArray { .. } => true,
                    DeclKind::FixedArray { count, elem } => {
                        *count <= 32 && self.rust_default_ok(elem, stack)
                    }
                    DeclKind::Seq(ms) => ms.iter().all(|m| self.rust_default_ok(&m.ty, stack)),
                    DeclKind::Variant { options, .. } => {
                        self.rust_default_ok(&options[0].ty, stack)
                    }
                    DeclKind::Const { .. } => false,
                };
                stack.remove(n);
                r
            }
        }
    }

    fn has_default(&self, ty: &TypeRef) -> bool {
        self.rust_default_ok(ty, &mut BTreeSet::new())
    }

    pub fn has_ids(&self, ty: &TypeRef) -> bool {
        fn go(g: &Generator<'_>, ty: &TypeRef, seen: &mut BTreeSet<String>) -> bool {
            let TypeRef::Named(n) = ty else { return false };
            if matches!(n.as_str(), "EntityID" | "AssetID" | "AnAsset") {
                return true;
            }
            if !seen.insert(n.clone()) {
                return false;
            }
            let d = g.decl(n);
            g.schema.children(d).iter().any(|c| go(g, c, seen))
        }
        go(self, ty, &mut BTreeSet::new())
    }

    fn needs_validation(&self, ty: &TypeRef) -> bool {
        match self.kind_of(ty) {
            Some(DeclKind::Pack(ms)) => ms.iter().any(|m| {
                (self.is_enum(&m.ty) && !self.enum_has_default(&m.ty))
                    || (self.is_pod_aggregate(&m.ty) && self.needs_validation(&m.ty))
            }),
            Some(DeclKind::Bits { fields, .. }) => fields
                .iter()
                .any(|f| self.is_enum(&f.ty) && !self.enum_has_default(&f.ty)),
            Some(DeclKind::FixedArray { elem, .. }) => {
                self.is_pod_aggregate(elem) && self.needs_validation(elem)
            }
            _ => false,
        }
    }

    fn min_size(&self, ty: &TypeRef) -> usize {
        self.schema.min_size(ty)
    }

    /// Names of variant options, disambiguated.
    fn option_names(&self, d: &Decl) -> Vec<String> {
        let DeclKind::Variant { options, .. } = &d.kind else {
            return Vec::new();
        };
        let mut names = Vec::new();
        let mut used = BTreeSet::new();
        for o in options {
            let base = match &o.ty {
                TypeRef::Void => "Void".to_string(),
                TypeRef::Builtin(b) => builtin_variant_name(*b),
                TypeRef::Named(n) => rust_type_name(n),
            };
            let name = if used.contains(&base) {
                format!("{base}{}", o.disc)
            } else {
                base
            };
            used.insert(name.clone());
            names.push(name);
        }
        names
    }

    // ------------------------------------------------------------------ modules

    /// Generate the Rust module for one schema file.
    pub fn module(&self, file: &JawFile) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "// @generated by build.rs from jaw/{}. Do not edit: change the schema instead.",
            file.rel
        );
        o.push_str("#[allow(unused_imports)]\nuse super::rt::*;\n");
        for imp in &file.imports {
            let target = module_name(&import_target(file, imp));
            match &imp.names {
                ImportList::All => {
                    let _ = writeln!(o, "#[allow(unused_imports)]\npub use super::{target}::*;");
                }
                ImportList::Names(names) => {
                    let list: Vec<String> = names.iter().map(|n| rust_type_name(n)).collect();
                    let _ = writeln!(
                        o,
                        "#[allow(unused_imports)]\npub use super::{target}::{{{}}};",
                        list.join(", ")
                    );
                }
            }
        }
        for d in &file.decls {
            o.push('\n');
            self.doc(&mut o, d, file);
            match &d.kind {
                DeclKind::Pack(_) => self.gen_pack(&mut o, d),
                DeclKind::Seq(_) => self.gen_seq(&mut o, d),
                DeclKind::Enum { .. } => self.gen_enum(&mut o, d),
                DeclKind::Bits { .. } => self.gen_bits(&mut o, d),
                DeclKind::Variant { .. } => self.gen_variant(&mut o, d),
                DeclKind::FixedArray { count, elem } => {
                    let et = if self.schema.is_pod(elem) {
                        self.pack_ty(elem)
                    } else {
                        self.owned_ty(elem)
                    };
                    let _ = writeln!(o, "pub type {} = [{et}; {count}];", rust_type_name(&d.name));
                }
                DeclKind::DynArray { .. } => self.gen_dyn_array(&mut o, d),
                DeclKind::Const { ty, value } => {
                    let _ = writeln!(o, "pub const {}: {} = {value};", d.name, ty.rust());
                }
            }
        }
        o
    }

    fn doc(&self, o: &mut String, d: &Decl, file: &JawFile) {
        for line in &d.doc {
            let _ = writeln!(o, "/// {}", line.replace('[', "\\[").replace(']', "\\]"));
        }
        if !d.doc.is_empty() {
            o.push_str("///\n");
        }
        let _ = writeln!(
            o,
            "/// Jaw: `{}` in `jaw/{}` (line {}).",
            d.name, file.rel, d.line
        );
    }

    fn gen_pack(&self, o: &mut String, d: &Decl) {
        let DeclKind::Pack(members) = &d.kind else {
            return;
        };
        let name = rust_type_name(&d.name);
        let ty = TypeRef::Named(d.name.clone());
        let size = self.schema.pod_size(&ty);
        let _ = writeln!(
            o,
            "#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq, Hash)]\n#[repr(C, packed)]\npub struct {name} {{"
        );
        for m in members {
            let mut note = String::new();
            if self.is_enum(&m.ty)
                && let TypeRef::Named(e) = &m.ty
            {
                note = format!(
                    " Raw value of [`{e}`]; use the method `{}()` for the typed value.",
                    m.name
                );
            }
            let _ = writeln!(o, "    /// Jaw member `{}`.{note}", m.name);
            let _ = writeln!(
                o,
                "    pub {}: {},",
                rust_ident(&m.name),
                self.pack_ty(&m.ty)
            );
        }
        o.push_str("}\n\n");

        // Constructor and enum accessors.
        let _ = writeln!(o, "impl {name} {{");
        let _ = writeln!(
            o,
            "    /// Encoded size in bytes.\n    pub const SIZE: usize = {size};"
        );
        let args: Vec<String> = members
            .iter()
            .map(|m| {
                let t = match &m.ty {
                    TypeRef::Builtin(b) => b.rust().to_string(),
                    TypeRef::Named(n) if self.is_enum(&m.ty) => rust_type_name(n),
                    other => self.pack_ty(other),
                };
                format!("{}: {t}", rust_ident(&m.name))
            })
            .collect();
        let inits: Vec<String> = members
            .iter()
            .map(|m| {
                let id = rust_ident(&m.name);
                match &m.ty {
                    TypeRef::Builtin(b) if b.size() > 1 => format!("{id}: {}::new({id})", b.le()),
                    TypeRef::Named(_) if self.is_enum(&m.ty) => {
                        let base = self.enum_base(&m.ty).expect("enum");
                        if base.size() > 1 {
                            format!("{id}: {}::new({id}.to_repr())", base.le())
                        } else {
                            format!("{id}: {id}.to_repr()")
                        }
                    }
                    _ => id,
                }
            })
            .collect();
        let _ = writeln!(
            o,
            "    /// Build from native values.\n    #[allow(clippy::too_many_arguments)]\n    pub fn new({}) -> Self {{\n        Self {{ {} }}\n    }}",
            args.join(", "),
            inits.join(", ")
        );
        for m in members.iter().filter(|m| self.is_enum(&m.ty)) {
            let TypeRef::Named(e) = &m.ty else { continue };
            let base = self.enum_base(&m.ty).expect("enum");
            let id = rust_ident(&m.name);
            let get = if base.size() > 1 {
                format!("self.{id}.get()")
            } else {
                format!("self.{id}")
            };
            let set = if base.size() > 1 {
                format!("{}::new(v.to_repr())", base.le())
            } else {
                "v.to_repr()".to_string()
            };
            let en = rust_type_name(e);
            let _ = writeln!(
                o,
                "    /// The typed value of `{}` (unknown raw values read as the declared default).",
                m.name
            );
            let _ = writeln!(
                o,
                "    pub fn {id}(&self) -> {en} {{ <{en} as WireEnum>::from_repr_lossy({get}) }}"
            );
            let _ = writeln!(
                o,
                "    pub fn set_{}(&mut self, v: {en}) {{ self.{id} = {set}; }}",
                m.name
            );
        }
        o.push_str("}\n\n");

        // Default: all zero.
        let _ = writeln!(
            o,
            "impl Default for {name} {{\n    fn default() -> Self {{ <Self as FromZeros>::new_zeroed() }}\n}}\n"
        );

        // Validation.
        let needs = self.needs_validation(&ty);
        let _ = writeln!(
            o,
            "impl Validate for {name} {{\n    const NEEDS_VALIDATION: bool = {needs};\n    #[inline]\n    fn validate(&self) -> Result<(), DecodeError> {{"
        );
        for m in members {
            let id = rust_ident(&m.name);
            let fname = &m.name;
            if self.is_enum(&m.ty) && !self.enum_has_default(&m.ty) {
                let TypeRef::Named(e) = &m.ty else { continue };
                let base = self.enum_base(&m.ty).expect("enum");
                let get = if base.size() > 1 {
                    format!("self.{id}.get()")
                } else {
                    format!("self.{id}")
                };
                let _ = writeln!(
                    o,
                    "        if <{} as WireEnum>::from_repr({get}).is_none() {{ return Err(DecodeError::new(DecodeErrorKind::UnknownEnumValue {{ value: {get} as u64 }}).at(PathSeg::Field(\"{fname}\"))); }}",
                    rust_type_name(e)
                );
            } else if self.is_pod_aggregate(&m.ty) && self.needs_validation(&m.ty) {
                let _ = writeln!(
                    o,
                    "        {{ let v = self.{id}; v.validate().map_err(|e| e.at(PathSeg::Field(\"{fname}\")))?; }}"
                );
            }
        }
        o.push_str("        Ok(())\n    }\n}\n\n");

        self.gen_pod_wire(o, &name, &d.name, size);

        // Id visitor.
        let has = self.has_ids(&ty);
        let _ = writeln!(
            o,
            "impl VisitIds for {name} {{\n    const HAS_IDS: bool = {has};\n    #[allow(unused_variables)]\n    fn visit_ids_mut(&mut self, f: &mut dyn FnMut(IdMut<'_>)) {{"
        );
        match d.name.as_str() {
            "EntityID" => o.push_str("        f(IdMut::Entity(self));\n"),
            "AnAsset" => o.push_str("        f(IdMut::AnAsset(self));\n"),
            "AssetID" => o.push_str("        f(IdMut::Asset { within: \"AssetID\", id: self });\n"),
            _ => {
                for m in members {
                    self.visit_member(o, &d.name, &m.ty, &format!("self.{}", rust_ident(&m.name)));
                }
            }
        }
        o.push_str("    }\n}\n");
    }

    fn visit_member(&self, o: &mut String, owner: &str, ty: &TypeRef, place: &str) {
        if !self.has_ids(ty) {
            return;
        }
        if *ty == TypeRef::Named("AssetID".to_string()) {
            let _ = writeln!(
                o,
                "        f(IdMut::Asset {{ within: \"{owner}\", id: &mut {place} }});"
            );
        } else {
            let _ = writeln!(o, "        VisitIds::visit_ids_mut(&mut {place}, f);");
        }
    }

    fn gen_pod_wire(&self, o: &mut String, name: &str, jaw_name: &str, size: usize) {
        let _ = writeln!(
            o,
            "impl Wire for {name} {{
    const NAME: &'static str = \"{jaw_name}\";
    const MIN_SIZE: usize = {size};
    #[inline]
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {{
        let bytes = r.take({size})?;
        let v = match <Self as FromBytes>::read_from_bytes(bytes) {{
            Ok(v) => v,
            Err(_) => return Err(DecodeError::new(DecodeErrorKind::UnexpectedEnd {{ needed: {size}, left: bytes.len() }})),
        }};
        if <Self as Validate>::NEEDS_VALIDATION {{
            v.validate()?;
        }}
        Ok(v)
    }}
    #[inline]
    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {{
        out.extend_from_slice(IntoBytes::as_bytes(self));
        Ok(())
    }}
    #[inline]
    fn wire_len(&self) -> usize {{ {size} }}
}}
"
        );
    }

    fn gen_seq(&self, o: &mut String, d: &Decl) {
        let DeclKind::Seq(members) = &d.kind else {
            return;
        };
        let name = rust_type_name(&d.name);
        let ty = TypeRef::Named(d.name.clone());
        let default = if self.has_default(&ty) {
            ", Default"
        } else {
            ""
        };
        if members.is_empty() {
            let _ = writeln!(
                o,
                "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]\npub struct {name};\n"
            );
        } else {
            let _ = writeln!(
                o,
                "#[derive(Clone, Debug, PartialEq{default})]\npub struct {name} {{"
            );
            for m in members {
                let _ = writeln!(o, "    /// Jaw member `{}`.", m.name);
                let _ = writeln!(
                    o,
                    "    pub {}: {},",
                    rust_ident(&m.name),
                    self.owned_ty(&m.ty)
                );
            }
            o.push_str("}\n\n");
        }
        let min = self.min_size(&ty);
        let _ = writeln!(
            o,
            "impl Wire for {name} {{\n    const NAME: &'static str = \"{}\";\n    const MIN_SIZE: usize = {min};",
            d.name
        );
        if members.is_empty() {
            o.push_str("    #[inline]\n    fn read(_r: &mut Reader<'_>) -> Result<Self, DecodeError> { Ok(Self) }\n");
            o.push_str("    #[inline]\n    fn write(&self, _out: &mut Vec<u8>) -> Result<(), EncodeError> { Ok(()) }\n");
            o.push_str("    #[inline]\n    fn wire_len(&self) -> usize { 0 }\n}\n\n");
        } else {
            o.push_str("    #[inline]\n    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {\n        Ok(Self {\n");
            for m in members {
                let _ = writeln!(
                    o,
                    "            {}: <{} as Wire>::read(r).map_err(|e| e.at(PathSeg::Field(\"{}\")))?,",
                    rust_ident(&m.name),
                    self.owned_ty(&m.ty),
                    m.name
                );
            }
            o.push_str("        })\n    }\n    #[inline]\n    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {\n");
            for m in members {
                let _ = writeln!(
                    o,
                    "        Wire::write(&self.{}, out).map_err(|e| e.at(PathSeg::Field(\"{}\")))?;",
                    rust_ident(&m.name),
                    m.name
                );
            }
            o.push_str("        Ok(())\n    }\n    #[inline]\n    fn wire_len(&self) -> usize {\n        0");
            for m in members {
                let _ = write!(o, " + Wire::wire_len(&self.{})", rust_ident(&m.name));
            }
            o.push_str("\n    }\n}\n\n");
        }
        let has = self.has_ids(&ty);
        let _ = writeln!(
            o,
            "impl VisitIds for {name} {{\n    const HAS_IDS: bool = {has};\n    #[allow(unused_variables)]\n    fn visit_ids_mut(&mut self, f: &mut dyn FnMut(IdMut<'_>)) {{"
        );
        for m in members {
            self.visit_member(o, &d.name, &m.ty, &format!("self.{}", rust_ident(&m.name)));
        }
        o.push_str("    }\n}\n");
    }

    fn gen_enum(&self, o: &mut String, d: &Decl) {
        let DeclKind::Enum { base, members } = &d.kind else {
            return;
        };
        let name = rust_type_name(&d.name);
        let b = base.rust();
        let _ = writeln!(
            o,
            "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]\n#[repr({b})]\npub enum {name} {{"
        );
        for m in members {
            let def = if m.is_default {
                " Default for unknown values."
            } else {
                ""
            };
            let _ = writeln!(o, "    /// Jaw `{}` = {}.{def}", m.name, m.value);
            let _ = writeln!(o, "    {} = {},", enum_member_name(&m.name), m.value);
        }
        o.push_str("}\n\n");
        let default_member = members.iter().find(|m| m.is_default);
        let dflt = default_member
            .map(|m| format!("Some(Self::{})", enum_member_name(&m.name)))
            .unwrap_or_else(|| "None".to_string());
        let first = enum_member_name(&default_member.unwrap_or(&members[0]).name);
        let _ = writeln!(
            o,
            "impl Default for {name} {{\n    fn default() -> Self {{ Self::{first} }}\n}}\n"
        );
        let _ = writeln!(
            o,
            "impl WireEnum for {name} {{\n    type Repr = {b};\n    const DEFAULT: Option<Self> = {dflt};\n    #[inline]\n    fn from_repr(v: {b}) -> Option<Self> {{\n        match v {{"
        );
        for m in members {
            let _ = writeln!(
                o,
                "            {} => Some(Self::{}),",
                m.value,
                enum_member_name(&m.name)
            );
        }
        let _ = writeln!(
            o,
            "            _ => None,
        }}
    }}
    #[inline]
    fn to_repr(self) -> {b} {{ self as {b} }}
    #[inline]
    fn from_repr_lossy(v: {b}) -> Self {{ Self::from_repr(v).unwrap_or(Self::{first}) }}
}}

impl Wire for {name} {{
    const NAME: &'static str = \"{}\";
    const MIN_SIZE: usize = {};
    #[inline]
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {{
        let v = <{b} as Wire>::read(r)?;
        match Self::from_repr(v) {{
            Some(e) => Ok(e),
            None => match Self::DEFAULT {{
                Some(e) => Ok(e),
                None => Err(DecodeError::new(DecodeErrorKind::UnknownEnumValue {{ value: v as u64 }})),
            }},
        }}
    }}
    #[inline]
    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {{ Wire::write(&(*self as {b}), out) }}
    #[inline]
    fn wire_len(&self) -> usize {{ {} }}
}}

impl VisitIds for {name} {{
    const HAS_IDS: bool = false;
    #[inline]
    fn visit_ids_mut(&mut self, _f: &mut dyn FnMut(IdMut<'_>)) {{}}
}}",
            d.name,
            base.size(),
            base.size()
        );
    }

    fn gen_bits(&self, o: &mut String, d: &Decl) {
        let DeclKind::Bits { base, fields } = &d.kind else {
            return;
        };
        let name = rust_type_name(&d.name);
        let storage = self.schema.bits_storage(base).expect("checked");
        let le = storage.le();
        let raw_t = storage.rust();
        let size = storage.size();
        let _ = writeln!(
            o,
            "#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]\n#[repr(transparent)]\npub struct {name}(pub {le});\n"
        );
        let get_raw = if size > 1 { "self.0.get()" } else { "self.0" };
        let from_raw = if size > 1 {
            format!("Self({le}::new(v))")
        } else {
            "Self(v)".to_string()
        };
        let _ = writeln!(
            o,
            "impl {name} {{\n    /// From the raw {raw_t} (unmapped bits are kept).\n    #[inline]\n    pub fn from_raw(v: {raw_t}) -> Self {{ {from_raw} }}\n    /// The raw {raw_t}.\n    #[inline]\n    pub fn raw(&self) -> {raw_t} {{ {get_raw} }}"
        );
        for f in fields {
            let width = f.hi - f.lo + 1;
            let mask: u64 = if width == 64 {
                u64::MAX
            } else {
                (1u64 << width) - 1
            };
            let (ret, conv_out, conv_in) = match &f.ty {
                TypeRef::Builtin(b) => (
                    b.rust().to_string(),
                    format!("x as {}", b.rust()),
                    "v as u64".to_string(),
                ),
                TypeRef::Named(n) => {
                    let eb = self
                        .enum_base(&f.ty)
                        .expect("checked: bits fields are integers or enums");
                    let en = rust_type_name(n);
                    (
                        en.clone(),
                        format!("<{en} as WireEnum>::from_repr_lossy(x as {})", eb.rust()),
                        "v.to_repr() as u64".to_string(),
                    )
                }
                TypeRef::Void => continue,
            };
            let fname = f.name.as_str();
            let getter = rust_ident(fname);
            let _ = writeln!(
                o,
                "    /// Bits {}..={} (`{fname}`).
    #[inline]
    pub fn {getter}(&self) -> {ret} {{ let x = ((self.raw() as u64) >> {}) & {mask:#x}; {conv_out} }}
    /// Set bits {}..={} (`{fname}`), masked to the field width.
    #[inline]
    pub fn set_{fname}(&mut self, v: {ret}) {{
        let m: u64 = {mask:#x} << {};
        let r = ((self.raw() as u64) & !m) | ((({conv_in}) << {}) & m);
        *self = Self::from_raw(r as {raw_t});
    }}
    /// Builder form of [`Self::set_{fname}`].
    #[inline]
    pub fn with_{fname}(mut self, v: {ret}) -> Self {{ self.set_{fname}(v); self }}",
                f.lo, f.hi, f.lo, f.lo, f.hi, f.lo, f.lo
            );
        }
        o.push_str("}\n\n");
        let needs = self.needs_validation(&TypeRef::Named(d.name.clone()));
        let _ = writeln!(
            o,
            "impl Validate for {name} {{\n    const NEEDS_VALIDATION: bool = {needs};\n    #[inline]\n    fn validate(&self) -> Result<(), DecodeError> {{"
        );
        for f in fields {
            if self.is_enum(&f.ty) && !self.enum_has_default(&f.ty) {
                let TypeRef::Named(n) = &f.ty else { continue };
                let eb = self.enum_base(&f.ty).expect("enum");
                let width = f.hi - f.lo + 1;
                let mask: u64 = if width == 64 {
                    u64::MAX
                } else {
                    (1u64 << width) - 1
                };
                let _ = writeln!(
                    o,
                    "        {{ let x = ((self.raw() as u64) >> {}) & {mask:#x}; if <{} as WireEnum>::from_repr(x as {}).is_none() {{ return Err(DecodeError::new(DecodeErrorKind::UnknownEnumValue {{ value: x }}).at(PathSeg::Field(\"{}\"))); }} }}",
                    f.lo,
                    rust_type_name(n),
                    eb.rust(),
                    f.name
                );
            }
        }
        o.push_str("        Ok(())\n    }\n}\n\n");
        self.gen_pod_wire(o, &name, &d.name, size);
        let _ = writeln!(
            o,
            "impl VisitIds for {name} {{\n    const HAS_IDS: bool = false;\n    #[inline]\n    fn visit_ids_mut(&mut self, _f: &mut dyn FnMut(IdMut<'_>)) {{}}\n}}"
        );
    }

    fn gen_variant(&self, o: &mut String, d: &Decl) {
        let DeclKind::Variant { base, options } = &d.kind else {
            return;
        };
        let name = rust_type_name(&d.name);
        let names = self.option_names(d);
        let ty = TypeRef::Named(d.name.clone());
        let _ = writeln!(o, "#[derive(Clone, Debug, PartialEq)]\npub enum {name} {{");
        for (opt, on) in options.iter().zip(&names) {
            let _ = writeln!(o, "    /// Discriminant {}.", opt.disc);
            match &opt.ty {
                TypeRef::Void => {
                    let _ = writeln!(o, "    {on},");
                }
                t => {
                    let _ = writeln!(o, "    {on}({}),", self.owned_ty(t));
                }
            }
        }
        o.push_str("}\n\n");
        if self.has_default(&ty) {
            let first = match &options[0].ty {
                TypeRef::Void => format!("Self::{}", names[0]),
                _ => format!("Self::{}(Default::default())", names[0]),
            };
            let _ = writeln!(
                o,
                "impl Default for {name} {{\n    fn default() -> Self {{ {first} }}\n}}\n"
            );
        }
        // From impls for option types that appear once.
        for (i, (opt, on)) in options.iter().zip(&names).enumerate() {
            if opt.ty == TypeRef::Void {
                continue;
            }
            if options
                .iter()
                .enumerate()
                .any(|(j, p)| j != i && p.ty == opt.ty)
            {
                continue;
            }
            let t = self.owned_ty(&opt.ty);
            let _ = writeln!(
                o,
                "impl From<{t}> for {name} {{\n    fn from(v: {t}) -> Self {{ Self::{on}(v) }}\n}}\n"
            );
        }
        let recursive = options
            .iter()
            .any(|opt| self.schema.reaches(&opt.ty, &d.name));
        let b = base.rust();
        let min = self.min_size(&ty);
        let _ = writeln!(
            o,
            "impl {name} {{\n    /// The discriminant of this option.\n    pub fn discriminant(&self) -> {b} {{\n        match self {{"
        );
        for (opt, on) in options.iter().zip(&names) {
            let pat = if opt.ty == TypeRef::Void {
                format!("Self::{on}")
            } else {
                format!("Self::{on}(_)")
            };
            let _ = writeln!(o, "            {pat} => {},", opt.disc);
        }
        o.push_str("        }\n    }\n    /// The name of this option (for logs).\n    pub fn option_name(&self) -> &'static str {\n        match self {\n");
        for (opt, on) in options.iter().zip(&names) {
            let pat = if opt.ty == TypeRef::Void {
                format!("Self::{on}")
            } else {
                format!("Self::{on}(_)")
            };
            let _ = writeln!(o, "            {pat} => \"{on}\",");
        }
        o.push_str("        }\n    }\n}\n\n");
        let _ = writeln!(
            o,
            "impl Wire for {name} {{\n    const NAME: &'static str = \"{}\";\n    const MIN_SIZE: usize = {min};\n    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {{",
            d.name
        );
        if recursive {
            o.push_str("        r.enter()?;\n");
        }
        let _ = writeln!(
            o,
            "        let d = <{b} as Wire>::read(r)?;\n        let v = match d {{"
        );
        for (opt, on) in options.iter().zip(&names) {
            match &opt.ty {
                TypeRef::Void => {
                    let _ = writeln!(o, "            {} => Self::{on},", opt.disc);
                }
                t => {
                    let _ = writeln!(
                        o,
                        "            {} => Self::{on}(<{} as Wire>::read(r).map_err(|e| e.at(PathSeg::Variant(\"{on}\")))?),",
                        opt.disc,
                        self.owned_ty(t)
                    );
                }
            }
        }
        o.push_str("            other => return Err(DecodeError::new(DecodeErrorKind::UnknownDiscriminant { value: other as u64 })),\n        };\n");
        if recursive {
            o.push_str("        r.leave();\n");
        }
        o.push_str("        Ok(v)\n    }\n    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {\n");
        let _ = writeln!(
            o,
            "        Wire::write(&self.discriminant(), out)?;\n        match self {{"
        );
        for (opt, on) in options.iter().zip(&names) {
            if opt.ty == TypeRef::Void {
                let _ = writeln!(o, "            Self::{on} => Ok(()),");
            } else {
                let _ = writeln!(
                    o,
                    "            Self::{on}(v) => Wire::write(v, out).map_err(|e| e.at(PathSeg::Variant(\"{on}\"))),"
                );
            }
        }
        let _ = writeln!(
            o,
            "        }}\n    }}\n    fn wire_len(&self) -> usize {{\n        {} + match self {{",
            base.size()
        );
        for (opt, on) in options.iter().zip(&names) {
            if opt.ty == TypeRef::Void {
                let _ = writeln!(o, "            Self::{on} => 0,");
            } else {
                let _ = writeln!(o, "            Self::{on}(v) => Wire::wire_len(v),");
            }
        }
        o.push_str("        }\n    }\n}\n\n");
        let has = self.has_ids(&ty);
        let _ = writeln!(
            o,
            "impl VisitIds for {name} {{\n    const HAS_IDS: bool = {has};\n    #[allow(unused_variables)]\n    fn visit_ids_mut(&mut self, f: &mut dyn FnMut(IdMut<'_>)) {{"
        );
        if has {
            o.push_str("        match self {\n");
            for (opt, on) in options.iter().zip(&names) {
                if opt.ty == TypeRef::Void || !self.has_ids(&opt.ty) {
                    continue;
                }
                if opt.ty == TypeRef::Named("AssetID".to_string()) {
                    let _ = writeln!(
                        o,
                        "            Self::{on}(v) => f(IdMut::Asset {{ within: \"{}\", id: v }}),",
                        d.name
                    );
                } else {
                    let _ = writeln!(
                        o,
                        "            Self::{on}(v) => VisitIds::visit_ids_mut(v, f),"
                    );
                }
            }
            o.push_str(
                "            #[allow(unreachable_patterns)]\n            _ => {}\n        }\n",
            );
        }
        o.push_str("    }\n}\n");
    }

    fn gen_dyn_array(&self, o: &mut String, d: &Decl) {
        let DeclKind::DynArray { count, elem, utf8 } = &d.kind else {
            return;
        };
        let name = rust_type_name(&d.name);
        let ct = count.rust();
        let max = count.max_unsigned();
        let is_u8 = *elem == TypeRef::Builtin(Builtin::U8);
        let (inner, deref_target) = if *utf8 {
            ("::std::string::String".to_string(), "str".to_string())
        } else if is_u8 {
            ("::bytes::Bytes".to_string(), "[u8]".to_string())
        } else {
            let t = self.owned_ty(elem);
            (
                format!("::std::vec::Vec<{t}>"),
                format!("::std::vec::Vec<{t}>"),
            )
        };
        let eq = if *utf8 || is_u8 { ", Eq, Hash" } else { "" };
        let _ = writeln!(
            o,
            "#[derive(Clone, Debug, PartialEq{eq}, Default)]\npub struct {name}(pub {inner});\n"
        );
        let _ = writeln!(
            o,
            "impl ::core::ops::Deref for {name} {{\n    type Target = {deref_target};\n    fn deref(&self) -> &{deref_target} {{ &self.0 }}\n}}\n"
        );
        if *utf8 {
            let _ = writeln!(
                o,
                "impl From<&str> for {name} {{\n    fn from(s: &str) -> Self {{ Self(s.to_owned()) }}\n}}\n"
            );
            let _ = writeln!(
                o,
                "impl From<::std::string::String> for {name} {{\n    fn from(s: ::std::string::String) -> Self {{ Self(s) }}\n}}\n"
            );
            let _ = writeln!(
                o,
                "impl ::core::fmt::Display for {name} {{\n    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {{ f.write_str(&self.0) }}\n}}\n"
            );
        } else if is_u8 {
            let _ = writeln!(
                o,
                "impl From<::bytes::Bytes> for {name} {{\n    fn from(b: ::bytes::Bytes) -> Self {{ Self(b) }}\n}}\n"
            );
            let _ = writeln!(
                o,
                "impl From<::std::vec::Vec<u8>> for {name} {{\n    fn from(b: ::std::vec::Vec<u8>) -> Self {{ Self(b.into()) }}\n}}\n"
            );
            let _ = writeln!(
                o,
                "impl From<&[u8]> for {name} {{\n    fn from(b: &[u8]) -> Self {{ Self(::bytes::Bytes::copy_from_slice(b)) }}\n}}\n"
            );
        } else {
            let t = self.owned_ty(elem);
            let _ = writeln!(
                o,
                "impl ::core::ops::DerefMut for {name} {{\n    fn deref_mut(&mut self) -> &mut {inner} {{ &mut self.0 }}\n}}\n"
            );
            let _ = writeln!(
                o,
                "impl From<{inner}> for {name} {{\n    fn from(v: {inner}) -> Self {{ Self(v) }}\n}}\n"
            );
            let _ = writeln!(
                o,
                "impl FromIterator<{t}> for {name} {{\n    fn from_iter<I: IntoIterator<Item = {t}>>(i: I) -> Self {{ Self(i.into_iter().collect()) }}\n}}\n"
            );
        }
        let elem_min = self.min_size(elem);
        let _ = writeln!(
            o,
            "impl Wire for {name} {{\n    const NAME: &'static str = \"{}\";\n    const MIN_SIZE: usize = {};\n    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {{\n        let n = read_count::<{ct}>(r)?;\n        let n = r.check_count(n, {elem_min})?;",
            d.name,
            count.size()
        );
        let elem_t = self.owned_ty(elem);
        if *utf8 {
            o.push_str("        Ok(Self(read_utf8(r, n)?))\n");
        } else if is_u8 {
            o.push_str("        Ok(Self(r.take_bytes(n)?))\n");
        } else if matches!(elem, TypeRef::Builtin(_)) {
            o.push_str("        Ok(Self(read_scalars(r, n)?))\n");
        } else if self.is_pod_aggregate(elem) {
            let _ = writeln!(
                o,
                "        let v: ::std::vec::Vec<{elem_t}> = read_packs(r, n)?;\n        if <{elem_t} as Validate>::NEEDS_VALIDATION {{\n            for (i, x) in v.iter().enumerate() {{\n                x.validate().map_err(|e| e.at(PathSeg::Index(i)))?;\n            }}\n        }}\n        Ok(Self(v))"
            );
        } else {
            let _ = writeln!(
                o,
                "        let mut v = ::std::vec::Vec::with_capacity(n);\n        for i in 0..n {{\n            v.push(<{elem_t} as Wire>::read(r).map_err(|e| e.at(PathSeg::Index(i)))?);\n        }}\n        Ok(Self(v))"
            );
        }
        let _ = writeln!(
            o,
            "    }}\n    fn write(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {{\n        write_count::<{ct}>(self.0.len(), {max}, out)?;"
        );
        if *utf8 {
            o.push_str("        out.extend_from_slice(self.0.as_bytes());\n");
        } else if is_u8 {
            o.push_str("        out.extend_from_slice(&self.0);\n");
        } else if self.is_pod_aggregate(elem) {
            o.push_str("        out.extend_from_slice(IntoBytes::as_bytes(self.0.as_slice()));\n");
        } else {
            o.push_str("        for (i, x) in self.0.iter().enumerate() {\n            Wire::write(x, out).map_err(|e| e.at(PathSeg::Index(i)))?;\n        }\n");
        }
        let _ = writeln!(
            o,
            "        Ok(())\n    }}\n    fn wire_len(&self) -> usize {{"
        );
        if *utf8 || is_u8 {
            let _ = writeln!(o, "        {} + self.0.len()", count.size());
        } else if self.schema.is_pod(elem) {
            let _ = writeln!(
                o,
                "        {} + self.0.len() * {}",
                count.size(),
                self.schema.pod_size(elem)
            );
        } else {
            let _ = writeln!(
                o,
                "        {} + self.0.iter().map(Wire::wire_len).sum::<usize>()",
                count.size()
            );
        }
        o.push_str("    }\n}\n\n");
        let has = self.has_ids(elem);
        let _ = writeln!(
            o,
            "impl VisitIds for {name} {{\n    const HAS_IDS: bool = {has};\n    #[allow(unused_variables)]\n    fn visit_ids_mut(&mut self, f: &mut dyn FnMut(IdMut<'_>)) {{"
        );
        if has && !is_u8 {
            if *elem == TypeRef::Named("AssetID".to_string()) {
                let _ = writeln!(
                    o,
                    "        for x in self.0.iter_mut() {{ f(IdMut::Asset {{ within: \"{}\", id: x }}); }}",
                    d.name
                );
            } else {
                o.push_str(
                    "        for x in self.0.iter_mut() { VisitIds::visit_ids_mut(x, f); }\n",
                );
            }
        }
        o.push_str("    }\n}\n");
    }

    // ------------------------------------------------------------------ strategies

    /// proptest strategies for every type, as functions `strat_<Name>(depth)`.
    pub fn strategies(&self) -> String {
        let mut o = String::new();
        o.push_str(
            "// @generated by build.rs from jaw/. Proptest strategies for every codec type.\n",
        );
        o.push_str("#[allow(unused_imports, non_snake_case, clippy::all)]\npub mod strategies {\n    use proptest::prelude::*;\n    use bevy_noodles2::codec::*;\n    use bevy_noodles2::codec::rt::*;\n\n");
        let mut all = Vec::new();
        for f in &self.schema.files {
            for d in &f.decls {
                if matches!(d.kind, DeclKind::Const { .. }) {
                    continue;
                }
                let tn = rust_type_name(&d.name);
                let body = self.strategy_body(d);
                let _ = writeln!(
                    o,
                    "    pub fn strat_{}(depth: u32) -> BoxedStrategy<{tn}> {{\n        let _ = depth;\n        {body}\n    }}\n",
                    d.name
                );
                all.push(d.name.clone());
            }
        }
        // The macro is emitted after the module, at the top level of the included file, and is not
        // `#[macro_export]`ed: a macro-expanded (here `include!`d) exported macro cannot be named by
        // path from its own crate, while a plain `macro_rules!` is in textual scope after the include.
        o.push_str("}\n\n/// Calls `$m!(TypeName, strategy_fn)` for every generated type (`strategy_fn` is a function of\n/// `strategies`; bring them into scope with `use strategies::*`).\n#[allow(unused_macros)]\nmacro_rules! for_every_codec_type {\n    ($m:ident) => {\n");
        for n in &all {
            let _ = writeln!(o, "        $m!({}, strat_{n});", rust_type_name(n));
        }
        o.push_str("    };\n}\n");
        o
    }

    fn strat_of(&self, ty: &TypeRef, pack_ctx: bool, depth: &str) -> String {
        match ty {
            TypeRef::Builtin(b) => {
                if pack_ctx && b.size() > 1 {
                    format!("any::<{}>().prop_map({}::new).boxed()", b.rust(), b.le())
                } else {
                    format!("any::<{}>().boxed()", b.rust())
                }
            }
            TypeRef::Void => "Just(()).boxed()".to_string(),
            TypeRef::Named(n) => {
                if pack_ctx && self.is_enum(ty) {
                    let base = self.enum_base(ty).expect("enum");
                    if base.size() > 1 {
                        format!(
                            "strat_{n}({depth}).prop_map(|e| {}::new(e.to_repr())).boxed()",
                            base.le()
                        )
                    } else {
                        format!("strat_{n}({depth}).prop_map(|e| e.to_repr()).boxed()")
                    }
                } else {
                    format!("strat_{n}({depth})")
                }
            }
        }
    }

    /// Build a strategy for a list of member strategies, nested in tuples of at most 8.
    fn tuple_strategy(parts: &[String]) -> (String, String) {
        if parts.len() <= 8 {
            let pat: Vec<String> = (0..parts.len()).map(|i| format!("a{i}")).collect();
            return (
                format!("({},)", parts.join(", ")),
                format!("({},)", pat.join(", ")),
            );
        }
        let mut strat = Vec::new();
        let mut pats = Vec::new();
        for (ci, chunk) in parts.chunks(8).enumerate() {
            strat.push(format!("({},)", chunk.join(", ")));
            let p: Vec<String> = (0..chunk.len())
                .map(|i| format!("a{}", ci * 8 + i))
                .collect();
            pats.push(format!("({},)", p.join(", ")));
        }
        (
            format!("({},)", strat.join(", ")),
            format!("({},)", pats.join(", ")),
        )
    }

    fn strategy_body(&self, d: &Decl) -> String {
        let tn = rust_type_name(&d.name);
        match &d.kind {
            DeclKind::Pack(ms) | DeclKind::Seq(ms) => {
                let pack = matches!(d.kind, DeclKind::Pack(_));
                if ms.is_empty() {
                    return format!("Just({tn}).boxed()");
                }
                let parts: Vec<String> = ms
                    .iter()
                    .map(|m| self.strat_of(&m.ty, pack, "depth"))
                    .collect();
                let (s, p) = Self::tuple_strategy(&parts);
                let fields: Vec<String> = ms
                    .iter()
                    .enumerate()
                    .map(|(i, m)| format!("{}: a{i}", rust_ident(&m.name)))
                    .collect();
                format!(
                    "{s}.prop_map(|{p}| {tn} {{ {} }}).boxed()",
                    fields.join(", ")
                )
            }
            DeclKind::Enum { members, .. } => {
                let opts: Vec<String> = members
                    .iter()
                    .map(|m| format!("Just({tn}::{})", enum_member_name(&m.name)))
                    .collect();
                format!("prop_oneof![{}].boxed()", opts.join(", "))
            }
            DeclKind::Bits { base, fields } => {
                let storage = self.schema.bits_storage(base).expect("checked");
                let mut s = format!(
                    "any::<{}>().prop_map({tn}::from_raw).boxed()",
                    storage.rust()
                );
                for f in fields {
                    if self.is_enum(&f.ty) {
                        let TypeRef::Named(n) = &f.ty else { continue };
                        s = format!(
                            "({s}, strat_{n}(depth)).prop_map(|(b, e)| b.with_{}(e)).boxed()",
                            f.name
                        );
                    }
                }
                s
            }
            DeclKind::FixedArray { count, elem } => {
                let es = self.strat_of(elem, self.schema.is_pod(elem), "depth");
                format!(
                    "proptest::collection::vec({es}, {count}).prop_map(|v| match <{tn}>::try_from(v) {{ Ok(a) => a, Err(_) => unreachable!() }}).boxed()"
                )
            }
            DeclKind::DynArray { elem, utf8, .. } => {
                if *utf8 {
                    format!("\"\\\\PC{{0,12}}\".prop_map(|s: String| {tn}(s)).boxed()")
                } else if *elem == TypeRef::Builtin(Builtin::U8) {
                    format!(
                        "proptest::collection::vec(any::<u8>(), 0..24).prop_map(|v| {tn}(v.into())).boxed()"
                    )
                } else {
                    let es = self.strat_of(elem, false, "depth");
                    let es = if let TypeRef::Named(_) = elem { es } else { es };
                    format!(
                        "if depth == 0 {{ Just({tn}(Vec::new())).boxed() }} else {{ proptest::collection::vec({es}, 0..4).prop_map({tn}).boxed() }}"
                    )
                }
            }
            DeclKind::Variant { options, .. } => {
                let names = self.option_names(d);
                let recursive_opts: Vec<bool> = options
                    .iter()
                    .map(|o| self.schema.reaches(&o.ty, &d.name))
                    .collect();
                let mut leaves = Vec::new();
                let mut all = Vec::new();
                for ((opt, on), rec) in options.iter().zip(&names).zip(&recursive_opts) {
                    let s = match &opt.ty {
                        TypeRef::Void => format!("Just({tn}::{on}).boxed()"),
                        t => format!(
                            "{}.prop_map({tn}::{on}).boxed()",
                            self.strat_of(t, false, "depth.saturating_sub(1)")
                        ),
                    };
                    if !rec {
                        leaves.push(s.clone());
                    }
                    all.push(s);
                }
                if leaves.len() == all.len() {
                    format!("prop_oneof![{}].boxed()", all.join(", "))
                } else {
                    format!(
                        "if depth == 0 {{ prop_oneof![{}].boxed() }} else {{ prop_oneof![{}].boxed() }}",
                        leaves.join(", "),
                        all.join(", ")
                    )
                }
            }
            DeclKind::Const { .. } => String::new(),
        }
    }
}
