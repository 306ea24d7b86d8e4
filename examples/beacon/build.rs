//! Generates the Rust types of `jaw/` (this extension's schema) into `$OUT_DIR`.

fn main() {
    noodles2::codegen::Builder::new()
        // This crate reaches the protocol crate through bevy_noodles2's re-export.
        .crate_path("::bevy_noodles2::noodles2")
        .compile("jaw")
        .unwrap_or_else(|e| panic!("{e}"));
}
