//! Drift checks: the codec compiled into this binary is what `jaw/` generates now (so a schema or
//! generator change that did not reach the build fails here), and `jaw/` is layout-identical to the
//! spec's schemas (same text once comments and blank lines are dropped).

use std::path::{Path, PathBuf};

use super::r#gen;
use super::jaw;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fail with the first differing line (the texts are long).
pub fn assert_same_text(what: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let line = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    panic!(
        "{what} differs at line {}:\n  expected: {:?}\n  actual:   {:?}\n({} vs {} lines)",
        line + 1,
        e.get(line),
        a.get(line),
        e.len(),
        a.len()
    );
}

#[test]
fn compiled_codec_matches_the_schemas() {
    let root = manifest().join("../jaw");
    let mut files = Vec::new();
    jaw::jaw_files(&root, &root, &mut files).expect("jaw/ is readable");
    let entries: Vec<&str> = files.iter().map(String::as_str).collect();
    let schema = jaw::load_schema(&entries, &mut |rel| {
        std::fs::read_to_string(root.join(rel)).ok()
    })
    .unwrap_or_else(|e| panic!("jaw/{e}"));
    assert_eq!(schema.files.len(), files.len(), "every jaw/ file is loaded");
    let generator = r#gen::Generator::new(&schema);
    let out = PathBuf::from(env!("OUT_DIR")).join("codec");
    let mut modules = Vec::new();
    for file in &schema.files {
        let m = r#gen::module_name(&file.rel);
        let compiled = std::fs::read_to_string(out.join(format!("{m}.rs"))).unwrap_or_else(|e| {
            panic!(
                "{m}.rs (from jaw/{}) is not in OUT_DIR/codec: {e}",
                file.rel
            )
        });
        assert_same_text(
            &format!("OUT_DIR/codec/{m}.rs vs jaw/{}", file.rel),
            &generator.module(file),
            &compiled,
        );
        modules.push(m);
    }
    let compiled = std::fs::read_to_string(out.join("strategies.rs")).expect("strategies.rs");
    assert_same_text(
        "OUT_DIR/codec/strategies.rs",
        &generator.strategies(),
        &compiled,
    );
    // The index includes exactly these modules.
    let index = std::fs::read_to_string(out.join("mod.rs")).expect("mod.rs");
    let mut listed: Vec<String> = index
        .lines()
        .filter_map(|l| {
            l.strip_prefix("pub mod ")
                .and_then(|r| r.strip_suffix(" {"))
                .map(str::to_string)
        })
        .collect();
    listed.sort();
    modules.sort();
    assert_eq!(listed, modules, "modules listed in OUT_DIR/codec/mod.rs");
}

/// A schema's text without comments, trailing blanks and empty lines.
fn strip_comments(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn jaw_is_layout_identical_to_the_spec() {
    // The spec's schemas: `NOODLES2_SPEC_DIR` (the spec repository's root), else the checkout
    // next to this repository. CI sets `NOODLES2_REQUIRE_SPEC`, so a missing spec fails there
    // instead of skipping the comparison.
    let spec = match std::env::var_os("NOODLES2_SPEC_DIR") {
        Some(dir) => std::path::PathBuf::from(dir).join("noodles2/spec"),
        None => manifest().join("../../shared/spec/noodles2/spec"),
    };
    if !spec.is_dir() {
        assert!(
            std::env::var_os("NOODLES2_REQUIRE_SPEC").is_none(),
            "NOODLES2_REQUIRE_SPEC is set but the spec is not at {} (set NOODLES2_SPEC_DIR)",
            spec.display()
        );
        println!(
            "note: {} is absent, so jaw/ is not compared with the spec",
            spec.display()
        );
        return;
    }
    let root = manifest().join("../jaw");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    jaw::jaw_files(&root, &root, &mut ours).expect("jaw/ is readable");
    jaw::jaw_files(&spec, &spec, &mut theirs).expect("the spec is readable");
    assert_eq!(ours, theirs, "the same .jaw files in jaw/ and in the spec");
    for rel in &ours {
        let a = strip_comments(&std::fs::read_to_string(root.join(rel)).expect("read"));
        let b = strip_comments(&std::fs::read_to_string(spec.join(rel)).expect("read"));
        assert_same_text(
            &format!("jaw/{rel} vs spec/{rel} (comments stripped)"),
            &b.join("\n"),
            &a.join("\n"),
        );
    }
    // Comments carry one thing the generator reads: a `# UTF-8` mark makes a byte array a string.
    // jaw/ marks more arrays than the spec does (every text the spec's prose calls UTF-8), but it
    // must not drop a mark the spec has.
    for rel in &ours {
        let parse = |dir: &Path| {
            jaw::parse_file(rel, &std::fs::read_to_string(dir.join(rel)).expect("read"))
                .expect("parses")
        };
        let (a, b) = (parse(&root), parse(&spec));
        for d in &b.decls {
            if let jaw::DeclKind::DynArray { utf8: true, .. } = d.kind {
                let ours = a
                    .decls
                    .iter()
                    .find(|x| x.name == d.name)
                    .expect("same declarations");
                assert!(
                    matches!(ours.kind, jaw::DeclKind::DynArray { utf8: true, .. }),
                    "spec/{rel} marks `{}` UTF-8 but jaw/{rel} does not",
                    d.name
                );
            }
        }
    }
}

#[test]
fn comment_stripping_keeps_layout_and_drops_prose() {
    let a = "# doc\npack A # trailing\n- x : u8   # note\n\n";
    let b = "pack A\n- x : u8\n";
    assert_eq!(strip_comments(a), strip_comments(b));
    assert_ne!(strip_comments("pack A\n- x : u16"), strip_comments(b));
}
