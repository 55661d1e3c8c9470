//! TLS for the MQTT listeners (`listeners.ssl`, and `listeners.wss` under WebSocket) and, built
//! by the binary with the same [`acceptor`], for the dashboard's HTTPS listener
//! (`dashboard.listeners.https`), with rustls: TLS 1.2 and 1.3, the server chain and key from
//! PEM files, optional client certificate verification against a CA bundle, and (MQTT only)
//! the client certificate's Common Name as the username when configured.
//!
//! A missing or unreadable file, a file without a certificate or key, or a key that does not
//! match is a start-up error naming the file (never a listener that silently fails handshakes).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio_rustls::TlsAcceptor;

/// What a TLS listener needs.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub certfile: PathBuf,
    /// PEM private key.
    pub keyfile: PathBuf,
    /// PEM CA bundle for client certificates (required with `verify_peer`).
    pub cacertfile: Option<PathBuf>,
    /// Request and verify client certificates.
    pub verify_peer: bool,
    /// With `verify_peer`: refuse clients without a certificate.
    pub fail_if_no_peer_cert: bool,
    /// Use the client certificate's CN as the username.
    pub peer_cert_as_username: bool,
}

/// Why a TLS listener cannot start.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read or parsed as PEM.
    #[error("{path}: {reason}")]
    File {
        /// the file
        path: PathBuf,
        /// what went wrong
        reason: String,
    },
    /// rustls refused the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// Builds the acceptor for a listener.
pub fn acceptor(s: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    // One crypto provider for the process; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain = read_certs(&s.certfile)?;
    let key = PrivateKeyDer::from_pem_file(&s.keyfile).map_err(|e| file_error(&s.keyfile, e))?;
    let builder = ServerConfig::builder();
    let builder = if s.verify_peer {
        let ca = s
            .cacertfile
            .as_deref()
            .ok_or_else(|| TlsError::Config("verify_peer needs cacertfile".into()))?;
        let mut roots = RootCertStore::empty();
        for cert in read_certs(ca)? {
            roots.add(cert).map_err(|e| file_error(ca, e))?;
        }
        let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
        let verifier = if s.fail_if_no_peer_cert {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The Common Name of the client's certificate, if it presented one.
pub fn peer_common_name(conn: &ServerConnection) -> Option<String> {
    let cert = conn.peer_certificates()?.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(cn)
}
