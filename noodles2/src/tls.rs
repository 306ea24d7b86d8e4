//! TLS for `wss://` links and out-of-band channels, with rustls (ring as the crypto provider; no
//! OpenSSL).
//!
//! - [`ServerTls`]: a listener's certificate chain and private key, from PEM.
//! - [`ClientTls`]: the roots a client trusts: the Mozilla roots of `webpki-roots`, plus extra
//!   roots from PEM (a private CA, or a self-signed certificate).
//!
//! Both are cheap to clone (an `Arc` of the rustls configuration).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {}: {reason}", path.display())]
    File {
        /// Which PEM it was (`certificate chain`, `private key`, `root certificates`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O or PEM error.
        reason: String,
    },
    /// The PEM holds no item of the expected kind, or a malformed one.
    #[error("invalid {what} PEM: {reason}")]
    Pem {
        /// Which PEM it was.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// rustls refused the certificate, key or root.
    #[error("{what} refused by rustls: {source}")]
    Rustls {
        /// What was being configured.
        what: &'static str,
        /// rustls' error.
        source: rustls::Error,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn certificates(what: &'static str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            reason: "no CERTIFICATE section".into(),
        });
    }
    Ok(certs)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::File {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A listener's TLS identity: it serves `wss://` (and its out-of-band channels use TLS too).
#[derive(Clone)]
pub struct ServerTls(pub(crate) Arc<rustls::ServerConfig>);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// From a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<ServerTls, TlsError> {
        let chain = certificates("certificate chain", cert_chain)?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Pem {
            what: "private key",
            reason: e.to_string(),
        })?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                what: "protocol versions",
                source,
            })?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|source| TlsError::Rustls {
                what: "certificate and key",
                source,
            })?;
        Ok(ServerTls(Arc::new(config)))
    }

    /// From PEM files (as `--tls-cert` and `--tls-key` in the examples).
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerTls, TlsError> {
        let chain = read("certificate chain", cert_chain.as_ref())?;
        let key = read("private key", key.as_ref())?;
        ServerTls::from_pem(&chain, &key)
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.0.clone())
    }
}

/// The roots a client trusts for `wss://`. [`ClientTls::default`] trusts the Mozilla roots
/// (`webpki-roots`), which is what a `wss://` URL uses when no `ClientTls` is given.
#[derive(Clone)]
pub struct ClientTls(pub(crate) Arc<rustls::ClientConfig>);

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl Default for ClientTls {
    fn default() -> Self {
        static DEFAULT: OnceLock<ClientTls> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                // ring supports the safe default protocol versions and no extra root is added:
                // this cannot fail.
                ClientTls::build(Vec::new()).expect("the Mozilla roots with ring")
            })
            .clone()
    }
}

impl ClientTls {
    /// Trust the Mozilla roots and the certificates in `pem` (a private CA, or a server's
    /// self-signed certificate).
    pub fn with_roots_pem(pem: &[u8]) -> Result<ClientTls, TlsError> {
        ClientTls::build(certificates("root certificates", pem)?)
    }

    /// [`ClientTls::with_roots_pem`] from a file (as `--ca` in the examples).
    pub fn with_roots_pem_file(path: impl AsRef<Path>) -> Result<ClientTls, TlsError> {
        ClientTls::with_roots_pem(&read("root certificates", path.as_ref())?)
    }

    fn build(extra: Vec<CertificateDer<'static>>) -> Result<ClientTls, TlsError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in extra {
            roots.add(cert).map_err(|source| TlsError::Rustls {
                what: "root certificate",
                source,
            })?;
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rustls {
                what: "protocol versions",
                source,
            })?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientTls(Arc::new(config)))
    }

    pub(crate) fn connector(&self) -> tokio_tungstenite::Connector {
        tokio_tungstenite::Connector::Rustls(self.0.clone())
    }
}
