//! TLS for every stream listener that offers it (MQTT's `ssl` and `wss`, the dashboard's
//! HTTPS), with rustls: TLS 1.2 and 1.3, the server chain and key from PEM files, optional
//! client certificate verification against a CA bundle, the handshake under a deadline, and
//! the client certificate's Common Name for gateways that use it as the username.
//!
//! A missing or unreadable file, a file without a certificate or key, or a key that does not
//! match is a start-up error naming the file (never a listener that silently fails handshakes).
//!
//! Must not know: any protocol; what runs over the TLS stream is the caller's.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::TcpStream;
pub use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;

/// The TLS files and options of a listener.
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

/// A TLS listener's acceptor and options, as the binary hands it to a gateway.
#[derive(Clone)]
pub struct TlsListener {
    /// The rustls acceptor built by [`acceptor`].
    pub acceptor: TlsAcceptor,
    /// Use the client certificate's Common Name as the username.
    pub cn_as_username: bool,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("cn_as_username", &self.cn_as_username)
            .finish()
    }
}

impl TlsListener {
    /// The listener for `settings`: its acceptor, and whether the CN becomes the username.
    pub fn new(settings: &TlsSettings) -> Result<TlsListener, TlsError> {
        Ok(TlsListener {
            acceptor: acceptor(settings)?,
            cn_as_username: settings.peer_cert_as_username,
        })
    }

    /// Runs the server handshake on `stream` within `timeout`; with `cn_as_username`, also
    /// returns the client certificate's Common Name when it presented one.
    pub async fn handshake(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Result<(TlsStream<TcpStream>, Option<String>), HandshakeError> {
        let stream = accept(&self.acceptor, stream, timeout).await?;
        let cn = if self.cn_as_username {
            peer_common_name(stream.get_ref().1)
        } else {
            None
        };
        Ok((stream, cn))
    }
}

/// Why a TLS handshake did not complete (one connection's problem, never the listener's).
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// The peer sent something rustls refused, or the connection failed.
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] std::io::Error),
    /// The peer did not finish within the deadline.
    #[error("TLS handshake timed out")]
    TimedOut,
}

/// Runs the server handshake on `stream` with `acceptor` within `timeout`.
pub async fn accept(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, HandshakeError> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(HandshakeError::Failed(e)),
        Err(_) => Err(HandshakeError::TimedOut),
    }
}
