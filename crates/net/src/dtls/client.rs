//! A small DTLS client over a tokio UDP socket, on the same library as the server: what the
//! simulated devices, the load generator and the tests use to speak DTLS to a listener. Not used
//! by the broker itself.
//!
//! Owns: one association to one server. Must not know: what the datagrams mean.

use super::DtlsError;
use rtc_dtls::cipher_suite::CipherSuiteId;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// How the client proves itself.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// A pre-shared key with its identity (suite `TLS_PSK_WITH_AES_128_CCM_8` unless `suite`).
    Psk {
        /// identity
        identity: Vec<u8>,
        /// key
        key: Vec<u8>,
    },
    /// ECDSA certificate suites; with `cert_pem` (certificate then PKCS#8 key, PEM) it presents
    /// a client certificate. The server's certificate is not verified (test client).
    Certificate {
        /// certificate chain and key, PEM
        cert_pem: Option<(String, String)>,
    },
}

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Socket trouble.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The handshake failed or the association broke.
    #[error("dtls: {0}")]
    Dtls(String),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// Bad client configuration.
    #[error(transparent)]
    Config(#[from] DtlsError),
}

fn dtls(e: impl ToString) -> ClientError {
    ClientError::Dtls(e.to_string())
}

/// One DTLS association to a server.
pub struct DtlsClient {
    socket: UdpSocket,
    endpoint: Endpoint,
    server: SocketAddr,
    inbox: VecDeque<Vec<u8>>,
    closed: bool,
}

impl DtlsClient {
    /// Handshakes with `server` from a fresh local port within `timeout`.
    pub async fn connect(
        server: SocketAddr,
        auth: &ClientAuth,
        suite: Option<&str>,
        timeout: Duration,
    ) -> Result<DtlsClient, ClientError> {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(dtls)?;
        let socket = UdpSocket::bind(bind).await?;
        Self::connect_on(socket, server, auth, suite, timeout).await
    }

    /// Handshakes with `server` over `socket`.
    pub async fn connect_on(
        socket: UdpSocket,
        server: SocketAddr,
        auth: &ClientAuth,
        suite: Option<&str>,
        timeout: Duration,
    ) -> Result<DtlsClient, ClientError> {
        let provider = rtc_dtls::crypto_provider::default_provider().map_err(dtls)?;
        let mut builder = ConfigBuilder::default()
            .with_crypto_provider(provider.clone())
            .with_extended_master_secret(ExtendedMasterSecretType::Request);
        let suites: Vec<CipherSuiteId> = match suite {
            Some(name) => super::cipher_ids(&[name.to_string()])?,
            None => Vec::new(),
        };
        match auth {
            ClientAuth::Psk { identity, key } => {
                let key = key.clone();
                builder = builder
                    .with_psk(Some(Arc::new(move |_hint: &[u8]| Ok(key.clone()))))
                    .with_psk_identity_hint(Some(identity.clone()))
                    .with_cipher_suites(if suites.is_empty() {
                        vec![CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8]
                    } else {
                        suites
                    });
            }
            ClientAuth::Certificate { cert_pem } => {
                builder = builder.with_insecure_skip_verify(true).with_cipher_suites(
                    if suites.is_empty() {
                        vec![CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Ccm_8]
                    } else {
                        suites
                    },
                );
                if let Some((cert, key)) = cert_pem {
                    let c = client_certificate(cert, key, &*provider)?;
                    builder = builder.with_certificates(vec![c]);
                }
            }
        }
        let config = Arc::new(builder.build(true, Some(server)).map_err(dtls)?);
        let local = socket.local_addr()?;
        let mut endpoint = Endpoint::new(local, rtc_shared::TransportProtocol::UDP, None);
        endpoint
            .connect(std::time::Instant::now(), server, config, None)
            .map_err(dtls)?;
        let mut client = DtlsClient {
            socket,
            endpoint,
            server,
            inbox: VecDeque::new(),
            closed: false,
        };
        let established = tokio::time::timeout(timeout, client.run_until(true)).await;
        match established {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one datagram of application data.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.endpoint
            .write(std::time::Instant::now(), self.server, data)
            .map_err(dtls)?;
        self.flush().await
    }

    /// Receives one datagram of application data within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>, ClientError> {
        if let Some(d) = self.inbox.pop_front() {
            return Ok(d);
        }
        match tokio::time::timeout(timeout, self.run_until(false)).await {
            Ok(Ok(())) => self.inbox.pop_front().ok_or(ClientError::Timeout),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Timeout),
        }
    }

    /// Sends `data` as is, outside the association (tests: a forged or repeated record).
    pub async fn send_raw(&self, data: &[u8]) -> Result<(), ClientError> {
        self.socket.send_to(data, self.server).await?;
        Ok(())
    }

    /// Sends close_notify.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let _ = self.endpoint.stop(std::time::Instant::now(), self.server);
        self.flush().await
    }

    /// Whether the server closed the association.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.socket.send_to(&t.message, self.server).await?;
        }
        Ok(())
    }

    /// Drives the association until it is established (`handshake`) or data arrived.
    async fn run_until(&mut self, handshake: bool) -> Result<(), ClientError> {
        let mut buf = vec![0u8; 65_535];
        loop {
            self.flush().await?;
            let deadline = self.endpoint.poll_timeout(&self.server);
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => {
                    let (n, from) = r?;
                    if from != self.server {
                        continue;
                    }
                    let data = bytes::BytesMut::from(buf.get(..n).unwrap_or_default());
                    let events = self
                        .endpoint
                        .read(std::time::Instant::now(), from, None, data)
                        .map_err(dtls)?;
                    let mut done = false;
                    for e in events {
                        match e {
                            EndpointEvent::HandshakeComplete => done |= handshake,
                            EndpointEvent::ApplicationData(d) => {
                                self.inbox.push_back(d.to_vec());
                                done |= !handshake;
                            }
                            EndpointEvent::PeerClosed => {
                                self.closed = true;
                                self.flush().await?;
                                return Err(dtls("closed by the server"));
                            }
                            _ => {}
                        }
                    }
                    if done {
                        self.flush().await?;
                        return Ok(());
                    }
                }
                _ = sleep => {
                    self.endpoint
                        .handle_timeout(self.server, std::time::Instant::now())
                        .map_err(dtls)?;
                }
            }
        }
    }
}

/// The first datagram a PSK client sends `server` (its ClientHello), for load and flood tests
/// that must look like real clients to the server without completing a handshake.
pub fn client_hello(server: SocketAddr, identity: &[u8]) -> Result<Vec<u8>, ClientError> {
    let provider = rtc_dtls::crypto_provider::default_provider().map_err(dtls)?;
    let config = ConfigBuilder::default()
        .with_crypto_provider(provider)
        .with_psk(Some(Arc::new(|_hint: &[u8]| Ok(vec![0u8; 16]))))
        .with_psk_identity_hint(Some(identity.to_vec()))
        .with_cipher_suites(vec![CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8])
        .build(true, Some(server))
        .map_err(dtls)?;
    let local: SocketAddr = "127.0.0.1:1".parse().map_err(dtls)?;
    let mut endpoint = Endpoint::new(local, rtc_shared::TransportProtocol::UDP, None);
    endpoint
        .connect(std::time::Instant::now(), server, Arc::new(config), None)
        .map_err(dtls)?;
    endpoint
        .poll_transmit()
        .map(|t| t.message.to_vec())
        .ok_or_else(|| dtls("no ClientHello produced"))
}

fn client_certificate(
    cert: &str,
    key: &str,
    provider: &dyn rtc_dtls::crypto_provider::RTCCryptoProvider,
) -> Result<Certificate, ClientError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(dtls)?;
    let key = PrivatePkcs8KeyDer::from_pem_slice(key.as_bytes()).map_err(dtls)?;
    let signing_key = provider
        .crypto()
        .import_signing_key(
            rtc_dtls::crypto_provider::SignatureScheme::EcdsaP256Sha256,
            key.secret_pkcs8_der(),
        )
        .map_err(dtls)?;
    Ok(Certificate::from_signing_key(chain, signing_key))
}
