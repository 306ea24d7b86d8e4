//! Write a self-signed certificate and its key (PEM, with rcgen) for trying `wss://` locally.
//!
//! ```text
//! cargo run -p noodles2 --example gen_cert -- [--out DIR] [NAME...]
//! ```
//! Writes `DIR/cert.pem` and `DIR/key.pem` (default DIR `.`) for the names given (default
//! `localhost 127.0.0.1`). Serve with `--tls-cert DIR/cert.pem --tls-key DIR/key.pem`; clients
//! trust it with `--ca DIR/cert.pem`. For anything public, use a certificate from a real CA.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = PathBuf::from(".");
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = args.next().ok_or("--out needs a directory")?.into(),
            "-h" | "--help" => {
                println!("usage: gen_cert [--out DIR] [NAME...]");
                return Ok(());
            }
            _ => names.push(arg),
        }
    }
    if names.is_empty() {
        names = vec!["localhost".into(), "127.0.0.1".into()];
    }
    let key = rcgen::generate_simple_self_signed(names.clone())?;
    std::fs::create_dir_all(&out)?;
    let (cert_path, key_path) = (out.join("cert.pem"), out.join("key.pem"));
    std::fs::write(&cert_path, key.cert.pem())?;
    std::fs::write(&key_path, key.signing_key.serialize_pem())?;
    println!(
        "wrote {} and {} for {}",
        cert_path.display(),
        key_path.display(),
        names.join(", ")
    );
    Ok(())
}
