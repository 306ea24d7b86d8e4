//! Generate Rust from Jaw schemas: the parser and generator that write this crate's codec, for an
//! application extension's own schema, called from its `build.rs` (as `prost-build` does for
//! protobuf).
//!
//! ```no_run
//! // In `fn main` of an application's build.rs, with `noodles2 = { ..., features = ["codegen"] }`
//! // in its [build-dependencies]:
//! noodles2::codegen::compile("jaw").unwrap_or_else(|e| panic!("{e}"));
//! ```
//!
//! ```text
//! // src/schema.rs of the same application: the generated modules and their types.
//! noodles2::include_schema!();
//! ```
//!
//! Every `.jaw` file under the given directory is generated (one module each, named after its
//! path: `components/marker.jaw` becomes `components_marker`, and every item is also re-exported
//! at the top). The protocol's and the Core extension's schemas are available to import under the
//! prefix `noodles2/`, relative to the schema directory's root like any other import:
//! `from "noodles2/common.jaw" use {EntityID, Vec3}` in a file at the root,
//! `from "../noodles2/common.jaw" use {...}` in a subdirectory. Their types are not generated
//! again: the generated code names them in this crate (`noodles2::codec::...`), so they are the
//! same types the codec and `bevy_noodles2` use.
//!
//! The generated code needs only this crate at run time (it reaches `bytes` and `zerocopy`
//! through [`crate::codec::rt`]). If the application reaches `noodles2` under another path (for
//! example through `bevy_noodles2::noodles2`), say so with [`Builder::crate_path`].

#![expect(missing_docs, reason = "the parser's and generator's internals")]

pub mod r#gen;
pub mod jaw;

use std::path::{Path, PathBuf};

/// The schemas of this crate (`jaw/` at the repository root), as files an application's schema
/// can import under [`NOODLES2_PREFIX`].
pub mod embedded {
    include!(concat!(env!("OUT_DIR"), "/jaw_files.rs"));
}

/// The import prefix under which this crate's schemas are visible to an application's schema.
pub const NOODLES2_PREFIX: &str = "noodles2/";

/// The folder of `$OUT_DIR` the generated modules are written to (see [`crate::include_schema`]).
pub const OUT_SUBDIR: &str = "noodles2_schema";

/// What went wrong while generating: the schema directory, a schema error (file and line), or
/// writing the output.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The schema directory or a file in it could not be read.
    #[error("reading the schemas: {0}")]
    Io(#[from] std::io::Error),
    /// A schema does not parse or does not resolve.
    #[error("{dir}/{error}")]
    Schema {
        /// The schema directory.
        dir: String,
        /// The error, naming the file and line.
        error: jaw::JawError,
    },
    /// No `.jaw` file under the schema directory.
    #[error("no .jaw file under {0}")]
    Empty(String),
    /// `OUT_DIR` is not set (not run from a build script) and no output folder was given.
    #[error("OUT_DIR is not set: run from a build script, or give Builder::out_dir")]
    NoOutDir,
}

/// Options for [`compile`].
#[derive(Debug, Clone)]
pub struct Builder {
    crate_path: String,
    out_dir: Option<PathBuf>,
    emit_rerun: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            crate_path: "::noodles2".into(),
            out_dir: None,
            emit_rerun: true,
        }
    }
}

impl Builder {
    /// Default options: the crate is `::noodles2`, output goes to `$OUT_DIR/noodles2_schema/`,
    /// and cargo is told to rerun the build script when a schema file changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The path under which the generated code reaches this crate (default `::noodles2`; for an
    /// application that depends only on `bevy_noodles2`: `::bevy_noodles2::noodles2`).
    pub fn crate_path(mut self, path: impl Into<String>) -> Self {
        self.crate_path = path.into();
        self
    }

    /// Write to this folder instead of `$OUT_DIR/noodles2_schema/` (the index `mod.rs` still
    /// includes the modules from `$OUT_DIR/noodles2_schema/`, so this is for inspecting output).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines (default: yes).
    pub fn emit_rerun_if_changed(mut self, yes: bool) -> Self {
        self.emit_rerun = yes;
        self
    }

    /// Generate every `.jaw` file under `dir`.
    pub fn compile(&self, dir: impl AsRef<Path>) -> Result<(), CodegenError> {
        let dir = dir.as_ref();
        let shown = dir.display().to_string();
        let mut files = Vec::new();
        jaw::jaw_files(dir, dir, &mut files)?;
        files.retain(|f| !f.starts_with(NOODLES2_PREFIX));
        if files.is_empty() {
            return Err(CodegenError::Empty(shown));
        }
        if self.emit_rerun {
            println!("cargo:rerun-if-changed={shown}");
            for f in &files {
                println!("cargo:rerun-if-changed={}", dir.join(f).display());
            }
        }
        let entries: Vec<&str> = files.iter().map(String::as_str).collect();
        let schema = jaw::load_schema(
            &entries,
            &mut |rel| match rel.strip_prefix(NOODLES2_PREFIX) {
                Some(ours) => embedded::FILES
                    .iter()
                    .find(|(path, _)| *path == ours)
                    .map(|(_, text)| text.to_string()),
                None => std::fs::read_to_string(dir.join(rel)).ok(),
            },
        )
        .map_err(|error| CodegenError::Schema {
            dir: shown.clone(),
            error,
        })?;
        let codec = format!("{}::codec", self.crate_path);
        let generator = r#gen::Generator {
            schema: &schema,
            extern_files: Some((NOODLES2_PREFIX.into(), codec.clone())),
            runtime: format!("{codec}::rt"),
        };
        let out = match &self.out_dir {
            Some(d) => d.clone(),
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or(CodegenError::NoOutDir)?)
                .join(OUT_SUBDIR),
        };
        generator.write_modules(&out, OUT_SUBDIR)?;
        Ok(())
    }
}

/// Generate every `.jaw` file under `dir` (relative to the crate's manifest when run from a build
/// script) with default options; see the [module docs](self).
pub fn compile(dir: impl AsRef<Path>) -> Result<(), CodegenError> {
    Builder::new().compile(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary directory.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("noodles2-codegen-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    fn quiet() -> Builder {
        Builder::new().emit_rerun_if_changed(false)
    }

    const MARKER: &str = "from \"noodles2/common.jaw\" use {EntityID}\n\npack Marker\n- target : EntityID\n- weight : f32\n";

    #[test]
    fn a_schema_importing_the_protocol_names_its_types_in_the_crate() {
        let dir = scratch("ok");
        std::fs::write(dir.join("marker.jaw"), MARKER).unwrap();
        let out = dir.join("out");
        quiet()
            .crate_path("::bevy_noodles2::noodles2")
            .out_dir(&out)
            .compile(&dir)
            .expect("generates");
        let module = std::fs::read_to_string(out.join("marker.rs")).expect("marker.rs");
        assert!(
            module.contains("use ::bevy_noodles2::noodles2::codec::rt::*;"),
            "{module}"
        );
        assert!(
            module.contains("pub use ::bevy_noodles2::noodles2::codec::common::{EntityID};"),
            "{module}"
        );
        assert!(
            module.contains(
                "#[zerocopy(crate = \"::bevy_noodles2::noodles2::codec::rt::zerocopy\")]"
            ),
            "{module}"
        );
        assert!(module.contains("pub struct Marker"), "{module}");
        // The protocol's own files are not generated again.
        assert!(!out.join("common.rs").exists());
        let index = std::fs::read_to_string(out.join("mod.rs")).expect("mod.rs");
        assert!(index.contains("pub mod marker {"), "{index}");
        assert!(index.contains("/noodles2_schema/marker.rs"), "{index}");
        assert!(!index.contains("pub mod common"), "{index}");
    }

    #[test]
    fn errors_name_the_directory_the_file_and_the_line() {
        let empty = scratch("empty");
        match quiet().out_dir(empty.join("out")).compile(&empty) {
            Err(CodegenError::Empty(d)) => assert!(d.contains("noodles2-codegen"), "{d}"),
            other => panic!("expected Empty, got {other:?}"),
        }

        let bad = scratch("bad");
        std::fs::write(bad.join("bad.jaw"), "pack Broken\n- x : NoSuchType\n").unwrap();
        let e = quiet().out_dir(bad.join("out")).compile(&bad).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CodegenError::Schema { .. }), "{e:?}");
        assert!(
            text.contains("bad.jaw") && text.contains("NoSuchType"),
            "{text}"
        );

        let missing = scratch("missing");
        std::fs::write(
            missing.join("m.jaw"),
            "from \"noodles2/no_such.jaw\" use {Thing}\n",
        )
        .unwrap();
        let text = quiet()
            .out_dir(missing.join("out"))
            .compile(&missing)
            .unwrap_err()
            .to_string();
        assert!(text.contains("noodles2/no_such.jaw"), "{text}");

        let nowhere = quiet().compile(missing.join("not a folder")).unwrap_err();
        assert!(matches!(nowhere, CodegenError::Io(_)), "{nowhere:?}");
    }
}
