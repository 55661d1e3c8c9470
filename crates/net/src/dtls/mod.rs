//! DTLS 1.2 for the datagram listeners (CoAP 5684, LwM2M 5784, MQTT-SN 1885): one server task
//! per socket terminates DTLS for every peer of that socket, demultiplexed by source address,
//! and hands the gateway's unchanged UDP path the decrypted datagrams through a
//! [`crate::DatagramSocket`]; replies go back the same way and are encrypted. The gateways never
//! see a record.
//!
//! Owns: the listener's handshake configuration (pre-shared keys from a [`PskStore`],
//! ECDSA certificates from PEM files, client-certificate verification), the per-peer
//! associations behind our sans-I/O [`association::Association`] trait (today over `rtc-dtls`),
//! handshake limits (`max_handshakes` peers in handshake, the listener's `max_conn_rate` on new
//! handshakes, `handshake_timeout`), retransmission timers, close_notify, and the counters
//! ([`DtlsStats`]).
//! Must not know: any protocol above DTLS, the config crate, the bus.
//!
//! Limits of the library, stated once: `rtc-dtls` keeps a connection object (with its random
//! cookie) from the first ClientHello on, so no state-free HelloVerifyRequest is possible; a
//! peer in handshake costs one entry, bounded by `max_handshakes`, and only a datagram that
//! looks like a ClientHello creates one. There is no Connection ID (RFC 9146): a peer whose
//! address changes must handshake again.

pub mod association;
pub mod client;
#[doc(hidden)]
pub mod fuzzing;
mod server;

pub(crate) use server::serve;

use parking_lot::{Mutex, RwLock};
use rtc_dtls::cipher_suite::CipherSuiteId;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::crypto_provider::{RTCCryptoProvider, SignatureScheme};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Default most peers in handshake per socket.
pub const DEFAULT_MAX_HANDSHAKES: usize = 1000;

/// The cipher suites offered when the listener names none: the two that CoAP (RFC 7252 §9.1.3)
/// and LwM2M mandate first, then their CCM and GCM siblings. PSK suites must be listed
/// explicitly: the library's own default list has none.
pub const DEFAULT_CIPHERS: &[&str] = &[
    "TLS_PSK_WITH_AES_128_CCM_8",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    "TLS_PSK_WITH_AES_128_CCM",
    "TLS_PSK_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
];

/// What a listener's DTLS needs.
#[derive(Debug, Clone)]
pub struct DtlsSettings {
    /// PEM certificate chain (ECDSA P-256); with `keyfile`, certificate suites are offered.
    pub certfile: Option<PathBuf>,
    /// PEM PKCS#8 private key of `certfile`.
    pub keyfile: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to (with `verify_peer`).
    pub cacertfile: Option<PathBuf>,
    /// Request and verify client certificates.
    pub verify_peer: bool,
    /// With `verify_peer`: refuse a client without a certificate.
    pub fail_if_no_peer_cert: bool,
    /// IANA cipher suite names; empty = [`DEFAULT_CIPHERS`].
    pub ciphers: Vec<String>,
    /// A peer's handshake must complete within this.
    pub handshake_timeout: Duration,
    /// Most peers in handshake at once per socket.
    pub max_handshakes: usize,
    /// Pre-shared keys; `None` = no PSK suites.
    pub psk: Option<PskStore>,
    /// A client certificate's CN becomes the username (`peer_cert_as_username = "cn"`).
    pub cn_as_username: bool,
}

/// Why a DTLS listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// the file
        path: PathBuf,
        /// what went wrong
        reason: String,
    },
    /// The options do not make a usable server (e.g. neither a certificate nor PSK).
    #[error("DTLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl ToString) -> DtlsError {
    DtlsError::File {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Who a peer proved to be in its handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerIdentity {
    /// A PSK handshake with this identity.
    Psk(String),
    /// A certificate handshake; the client certificate's CN, when it sent one.
    Certificate {
        /// Subject CN.
        common_name: Option<String>,
        /// Whether the listener makes the CN the username (`peer_cert_as_username = "cn"`).
        cn_as_username: bool,
    },
    /// A certificate handshake without a client certificate.
    Anonymous,
}

impl PeerIdentity {
    /// The username this identity stands for, replacing the one the protocol carries: the PSK
    /// identity always (the key proved it), the certificate's CN only when the listener maps
    /// it (`peer_cert_as_username = "cn"`).
    pub fn username(&self) -> Option<&str> {
        match self {
            PeerIdentity::Psk(id) => Some(id),
            PeerIdentity::Certificate {
                common_name: Some(cn),
                cn_as_username: true,
            } => Some(cn),
            _ => None,
        }
    }

    /// Whether the identity is proven by the handshake alone (PSK), so no password check follows.
    pub fn is_psk(&self) -> bool {
        matches!(self, PeerIdentity::Psk(_))
    }
}

fn common_name(der: &[u8]) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_string())
}

/// The node's pre-shared keys by identity, in memory: the library's PSK callback is synchronous
/// and runs on the socket task, so keys must be at hand. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct PskStore {
    keys: Arc<RwLock<KeysByIdentity>>,
}

type KeysByIdentity = HashMap<Vec<u8>, Arc<[u8]>>;

impl std::fmt::Debug for PskStore {
    // Never print keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PskStore")
            .field("identities", &self.keys.read().len())
            .finish()
    }
}

impl PskStore {
    /// An empty store.
    pub fn new() -> Self {
        PskStore::default()
    }

    /// Sets the key of `identity`.
    pub fn insert(&self, identity: &[u8], key: &[u8]) {
        self.keys.write().insert(identity.to_vec(), Arc::from(key));
    }

    /// Removes `identity`; true if it was there.
    pub fn remove(&self, identity: &[u8]) -> bool {
        self.keys.write().remove(identity).is_some()
    }

    /// The key of `identity`.
    pub fn get(&self, identity: &[u8]) -> Option<Arc<[u8]>> {
        self.keys.read().get(identity).cloned()
    }

    /// Every identity, sorted (keys are never listed).
    pub fn identities(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self.keys.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// Loads EMQX's PSK file: one `identity<separator>key` per line, the key being the raw bytes
    /// after the first separator; blank lines are skipped. Returns how many were loaded.
    pub fn load_file(&self, path: &Path, separator: &str) -> Result<usize, DtlsError> {
        let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
        if separator.is_empty() {
            return Err(DtlsError::Config("the PSK separator is empty".into()));
        }
        let mut n = 0;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((identity, key)) = line.split_once(separator) else {
                let why = format!("line {}: no separator {separator:?}", i + 1);
                return Err(file_error(path, why));
            };
            if identity.is_empty() || key.is_empty() {
                return Err(file_error(
                    path,
                    format!("line {}: empty identity or key", i + 1),
                ));
            }
            self.insert(identity.as_bytes(), key.as_bytes());
            n += 1;
        }
        Ok(n)
    }
}

/// A listener's handshake counters (Prometheus: `switchyard_dtls_*`).
#[derive(Debug, Default)]
pub struct DtlsStats {
    /// Handshakes completed.
    pub handshakes_ok: AtomicU64,
    /// Handshakes failed because the client named an identity we have no key for.
    pub failed_unknown_identity: AtomicU64,
    /// Handshakes that did not complete within `handshake_timeout` (or ran out of
    /// retransmissions).
    pub failed_timeout: AtomicU64,
    /// Handshakes that failed otherwise: wrong key (Finished does not verify), a certificate
    /// refused or missing, a fatal alert from the peer, a malformed record.
    pub failed_error: AtomicU64,
    /// New handshakes dropped: `max_handshakes` peers were in handshake, or over `max_conn_rate`
    /// / `max_connections`.
    pub refused: AtomicU64,
    /// Peers with an association now (in handshake or established).
    pub peers: AtomicU64,
    /// Of which in handshake.
    pub handshaking: AtomicU64,
    /// The established peers of each of the listener's sockets, for the admin API.
    tables: Mutex<Vec<crate::PeerTable>>,
}

impl DtlsStats {
    pub(crate) fn add_table(&self, table: crate::PeerTable) {
        self.tables.lock().push(table);
    }

    /// Up to `limit` established peers and what they proved, by address.
    pub fn established_peers(&self, limit: usize) -> Vec<(std::net::SocketAddr, PeerIdentity)> {
        let mut out = Vec::new();
        for t in self.tables.lock().iter() {
            out.extend(t.snapshot(limit.saturating_sub(out.len())));
        }
        out.sort_by_key(|(a, _)| *a);
        out
    }

    /// `(name, value)` of every counter, for the metrics endpoints.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("handshakes_ok", g(&self.handshakes_ok)),
            (
                "handshakes_failed_unknown_identity",
                g(&self.failed_unknown_identity),
            ),
            ("handshakes_failed_timeout", g(&self.failed_timeout)),
            ("handshakes_failed_error", g(&self.failed_error)),
            ("handshakes_refused", g(&self.refused)),
            ("peers", g(&self.peers)),
            ("handshaking", g(&self.handshaking)),
        ]
    }
}

/// Every DTLS listener's counters by listener id, for the admin API (which knows no gateway and
/// is not handed the listeners). A restarted listener replaces its entry.
static REGISTRY: Mutex<Vec<(String, Arc<DtlsStats>)>> = Mutex::new(Vec::new());

/// Every DTLS listener started so far and its counters.
pub fn all_stats() -> Vec<(String, Arc<DtlsStats>)> {
    REGISTRY.lock().clone()
}

/// A DTLS listener's configuration, built (and its files read) once at start-up.
#[derive(Clone)]
pub struct DtlsListener {
    pub(crate) config: Arc<HandshakeConfig>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) max_handshakes: usize,
    pub(crate) cn_as_username: bool,
    pub(crate) stats: Arc<DtlsStats>,
}

impl std::fmt::Debug for DtlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsListener")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_handshakes", &self.max_handshakes)
            .finish()
    }
}

thread_local! {
    /// Set by the PSK callback when a client names an unknown identity. The callback runs
    /// synchronously inside `Association::handle_datagram` on the socket task's thread, which
    /// reads and clears it right after, so the failure is counted under its own reason.
    static UNKNOWN_IDENTITY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn take_unknown_identity() -> bool {
    UNKNOWN_IDENTITY.with(|c| c.replace(false))
}

impl DtlsListener {
    /// Builds the listener `id`'s handshake configuration; a missing or unreadable file is an
    /// error naming it.
    pub fn new(id: &str, s: &DtlsSettings) -> Result<DtlsListener, DtlsError> {
        // The library never picks a provider by itself (a known sharp edge): name ring.
        let provider: Arc<dyn RTCCryptoProvider> = rtc_dtls::crypto_provider::default_provider()
            .map_err(|e| DtlsError::Config(format!("crypto provider: {e}")))?;
        let mut builder = ConfigBuilder::default()
            .with_crypto_provider(provider.clone())
            .with_cipher_suites(cipher_ids(&s.ciphers)?)
            // EMS is requested, not required: tinydtls and older mbed TLS do not send it.
            .with_extended_master_secret(ExtendedMasterSecretType::Request);
        match (&s.certfile, &s.keyfile) {
            (Some(cert), Some(key)) => {
                builder = builder.with_certificates(vec![load_certificate(cert, key, &*provider)?]);
            }
            (None, None) => {}
            _ => return Err(DtlsError::Config("certfile and keyfile go together".into())),
        }
        if s.verify_peer {
            let ca = s
                .cacertfile
                .as_deref()
                .ok_or_else(|| DtlsError::Config("verify = verify_peer needs cacertfile".into()))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| file_error(ca, e))?;
            }
            let auth = if s.fail_if_no_peer_cert {
                ClientAuthType::RequireAndVerifyClientCert
            } else {
                ClientAuthType::VerifyClientCertIfGiven
            };
            builder = builder.with_client_cas(roots).with_client_auth(auth);
        }
        if let Some(store) = s.psk.clone() {
            let callback = move |identity: &[u8]| match store.get(identity) {
                Some(key) => Ok(key.to_vec()),
                None => {
                    UNKNOWN_IDENTITY.with(|c| c.set(true));
                    Err(rtc_shared::error::Error::Other(
                        "unknown PSK identity".into(),
                    ))
                }
            };
            builder = builder.with_psk(Some(Arc::new(callback)));
        }
        if s.psk.is_none() && s.certfile.is_none() {
            return Err(DtlsError::Config(
                "neither a certificate (certfile, keyfile) nor psk_authentication".into(),
            ));
        }
        let config = builder
            .build(false, None)
            .map_err(|e| DtlsError::Config(e.to_string()))?;
        let stats = Arc::new(DtlsStats::default());
        {
            let mut reg = REGISTRY.lock();
            reg.retain(|(k, _)| k != id);
            reg.push((id.to_string(), stats.clone()));
        }
        Ok(DtlsListener {
            config: Arc::new(config),
            handshake_timeout: s.handshake_timeout,
            max_handshakes: s.max_handshakes.max(1),
            cn_as_username: s.cn_as_username,
            stats,
        })
    }

    /// This listener's counters.
    pub fn stats(&self) -> &Arc<DtlsStats> {
        &self.stats
    }
}

fn cipher_ids(names: &[String]) -> Result<Vec<CipherSuiteId>, DtlsError> {
    let names: Vec<&str> = if names.is_empty() {
        DEFAULT_CIPHERS.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    names
        .into_iter()
        .map(|n| {
            let id = match n {
                "TLS_PSK_WITH_AES_128_CCM_8" => CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8,
                "TLS_PSK_WITH_AES_128_CCM" => CipherSuiteId::Tls_Psk_With_Aes_128_Ccm,
                "TLS_PSK_WITH_AES_128_GCM_SHA256" => CipherSuiteId::Tls_Psk_With_Aes_128_Gcm_Sha256,
                "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8" => {
                    CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8
                }
                "TLS_ECDHE_ECDSA_WITH_AES_128_CCM" => {
                    CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm
                }
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
                    CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256
                }
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
                    CipherSuiteId::Tls_Ecdhe_Ecdsa_With_ChaCha20_Poly1305_Sha256
                }
                other => {
                    return Err(DtlsError::Config(format!(
                        "unsupported cipher suite {other}"
                    )))
                }
            };
            Ok(id)
        })
        .collect()
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, DtlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn load_certificate(
    cert: &Path,
    key: &Path,
    provider: &dyn RTCCryptoProvider,
) -> Result<Certificate, DtlsError> {
    let chain = read_certs(cert)?;
    let pkcs8 = PrivatePkcs8KeyDer::from_pem_file(key)
        .map_err(|e| file_error(key, format!("{e} (a PKCS#8 \"PRIVATE KEY\" is needed)")))?;
    let crypto = provider.crypto();
    let signing_key = [SignatureScheme::EcdsaP256Sha256, SignatureScheme::Ed25519]
        .into_iter()
        .find_map(|scheme| {
            crypto
                .import_signing_key(scheme, pkcs8.secret_pkcs8_der())
                .ok()
        })
        .ok_or_else(|| file_error(key, "not an ECDSA P-256 or Ed25519 PKCS#8 key"))?;
    Ok(Certificate::from_signing_key(chain, signing_key))
}

#[cfg(test)]
mod tests;
