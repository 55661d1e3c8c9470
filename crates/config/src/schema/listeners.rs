//! `[listeners.*]` (MQTT over TCP, WebSocket, TLS, secure WebSocket) and
//! `[dashboard.listeners.http]`.
//!
//! Each transport has one listener named `default`; the fixed name keeps
//! `deny_unknown_fields` catching a misspelt listener table. serde's `flatten` cannot be
//! combined with `deny_unknown_fields`, so the common keys are repeated per struct; the TLS
//! keys are gathered again by [`SslListenerConfig::tls`] / [`WssListenerConfig::tls`].

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::units;

/// Default `max_connections` for every listener.
pub(crate) const DEFAULT_MAX_CONNECTIONS: u32 = 1_024_000;
/// Default `max_conn_rate` of the UDP gateway listeners, which refuse new clients over it.
pub(crate) const DEFAULT_UDP_MAX_CONN_RATE: u32 = 1000;
/// Default `max_conn_rate` of the MQTT stream listeners: unlimited, as in EMQX 5. Over a
/// configured rate they pause accepting (connections wait in the backlog), never refuse.
pub(crate) const DEFAULT_STREAM_MAX_CONN_RATE: u32 = 0;
/// Default `max_conn_burst` of every listener: 0 means "equal to `max_conn_rate`".
pub(crate) const DEFAULT_MAX_CONN_BURST: u32 = 0;

/// `0.0.0.0:<port>`
pub(crate) fn any_v4(port: u16) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], port))
}

/// `[listeners]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenersConfig {
    /// `[listeners.tcp.*]`: MQTT over plain TCP.
    pub tcp: TcpListenersConfig,
    /// `[listeners.ws.*]`: MQTT over WebSocket.
    pub ws: WsListenersConfig,
    /// `[listeners.ssl.*]`: MQTT over TLS.
    pub ssl: SslListenersConfig,
    /// `[listeners.wss.*]`: MQTT over WebSocket over TLS.
    pub wss: WssListenersConfig,
}

/// `[listeners.tcp]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpListenersConfig {
    /// `[listeners.tcp.default]`
    pub default: TcpListenerConfig,
}

/// `[listeners.tcp.default]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpListenerConfig {
    /// Whether to listen. Default true.
    pub enable: bool,
    /// Address to listen on, `IP:port` (port 0 = any free port). Default 0.0.0.0:1883.
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    /// Most concurrent connections; further ones are refused. Default 1024000.
    pub max_connections: u32,
    /// New connections accepted per second on average; over it the listener stops accepting
    /// until the rate allows (connections wait in the accept backlog; none is refused).
    /// 0 = unlimited. Default 0.
    pub max_conn_rate: u32,
    /// Connections accepted at once after a quiet spell, before `max_conn_rate` paces them
    /// (the token bucket's size); 0 = equal to `max_conn_rate`. Default 0.
    pub max_conn_burst: u32,
    /// Whether clients on this listener are authenticated. Default true.
    pub enable_authn: bool,
}

impl Default for TcpListenerConfig {
    fn default() -> Self {
        TcpListenerConfig {
            enable: true,
            bind: any_v4(1883),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_conn_rate: DEFAULT_STREAM_MAX_CONN_RATE,
            max_conn_burst: DEFAULT_MAX_CONN_BURST,
            enable_authn: true,
        }
    }
}

/// `[listeners.ws]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsListenersConfig {
    /// `[listeners.ws.default]`
    pub default: WsListenerConfig,
}

/// `[listeners.ws.default]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsListenerConfig {
    /// Whether to listen. Default true.
    pub enable: bool,
    /// Address to listen on, `IP:port`. Default 0.0.0.0:8083.
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    /// HTTP path of the WebSocket upgrade; must start with `/`. Default "/mqtt".
    pub path: String,
    /// Most concurrent connections. Default 1024000.
    pub max_connections: u32,
    /// New connections accepted per second on average; over it the listener stops accepting
    /// until the rate allows (connections wait in the accept backlog; none is refused).
    /// 0 = unlimited. Default 0.
    pub max_conn_rate: u32,
    /// Connections accepted at once after a quiet spell, before `max_conn_rate` paces them
    /// (the token bucket's size); 0 = equal to `max_conn_rate`. Default 0.
    pub max_conn_burst: u32,
    /// Whether clients on this listener are authenticated. Default true.
    pub enable_authn: bool,
}

impl Default for WsListenerConfig {
    fn default() -> Self {
        WsListenerConfig {
            enable: true,
            bind: any_v4(8083),
            path: "/mqtt".to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_conn_rate: DEFAULT_STREAM_MAX_CONN_RATE,
            max_conn_burst: DEFAULT_MAX_CONN_BURST,
            enable_authn: true,
        }
    }
}

/// `verify` on TLS listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsVerify {
    /// Do not request a client certificate.
    #[default]
    VerifyNone,
    /// Request a client certificate and verify it against `cacertfile`.
    VerifyPeer,
}

/// The TLS keys of an ssl or wss listener, gathered for the code that builds the acceptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM certificate chain presented to clients.
    pub certfile: PathBuf,
    /// PEM private key for `certfile`.
    pub keyfile: PathBuf,
    /// PEM CA bundle that client certificates are verified against.
    pub cacertfile: PathBuf,
    /// Whether client certificates are requested and verified.
    pub verify: TlsVerify,
    /// With `verify_peer`: refuse clients that present no certificate.
    pub fail_if_no_peer_cert: bool,
    /// Whether the client certificate's CN replaces the MQTT username.
    pub peer_cert_as_username: PeerCertAsUsername,
}

/// `peer_cert_as_username`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerCertAsUsername {
    /// The username from CONNECT is used.
    #[default]
    Disabled,
    /// The client certificate's Common Name is the username.
    Cn,
}

/// `[listeners.ssl]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SslListenersConfig {
    /// `[listeners.ssl.default]`
    pub default: SslListenerConfig,
}

/// `[listeners.ssl.default]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SslListenerConfig {
    /// Whether to listen; needs `certfile` and `keyfile`. Default false.
    pub enable: bool,
    /// Address to listen on, `IP:port`. Default 0.0.0.0:8883.
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    /// Most concurrent connections. Default 1024000.
    pub max_connections: u32,
    /// New connections accepted per second on average; over it the listener stops accepting
    /// until the rate allows (connections wait in the accept backlog; none is refused).
    /// 0 = unlimited. Default 0.
    pub max_conn_rate: u32,
    /// Connections accepted at once after a quiet spell, before `max_conn_rate` paces them
    /// (the token bucket's size); 0 = equal to `max_conn_rate`. Default 0.
    pub max_conn_burst: u32,
    /// Whether clients on this listener are authenticated. Default true.
    pub enable_authn: bool,
    /// PEM certificate chain presented to clients. Default "" (required when enabled).
    pub certfile: PathBuf,
    /// PEM private key for `certfile`. Default "" (required when enabled).
    pub keyfile: PathBuf,
    /// PEM CA bundle for verifying client certificates. Default "" (required with
    /// verify_peer).
    pub cacertfile: PathBuf,
    /// Client certificate verification. Default verify_none.
    pub verify: TlsVerify,
    /// With verify_peer: refuse clients that present no certificate. Default false.
    pub fail_if_no_peer_cert: bool,
    /// Use the client certificate's Common Name as the MQTT username: disabled | cn.
    /// Default disabled.
    pub peer_cert_as_username: PeerCertAsUsername,
}

impl Default for SslListenerConfig {
    fn default() -> Self {
        SslListenerConfig {
            enable: false,
            bind: any_v4(8883),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_conn_rate: DEFAULT_STREAM_MAX_CONN_RATE,
            max_conn_burst: DEFAULT_MAX_CONN_BURST,
            enable_authn: true,
            certfile: PathBuf::new(),
            keyfile: PathBuf::new(),
            cacertfile: PathBuf::new(),
            verify: TlsVerify::VerifyNone,
            fail_if_no_peer_cert: false,
            peer_cert_as_username: PeerCertAsUsername::Disabled,
        }
    }
}

impl SslListenerConfig {
    /// This listener's TLS keys.
    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            cacertfile: self.cacertfile.clone(),
            verify: self.verify,
            fail_if_no_peer_cert: self.fail_if_no_peer_cert,
            peer_cert_as_username: self.peer_cert_as_username,
        }
    }
}

/// `[listeners.wss]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WssListenersConfig {
    /// `[listeners.wss.default]`
    pub default: WssListenerConfig,
}

/// `[listeners.wss.default]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WssListenerConfig {
    /// Whether to listen; needs `certfile` and `keyfile`. Default false.
    pub enable: bool,
    /// Address to listen on, `IP:port`. Default 0.0.0.0:8084.
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    /// HTTP path of the WebSocket upgrade; must start with `/`. Default "/mqtt".
    pub path: String,
    /// Most concurrent connections. Default 1024000.
    pub max_connections: u32,
    /// New connections accepted per second on average; over it the listener stops accepting
    /// until the rate allows (connections wait in the accept backlog; none is refused).
    /// 0 = unlimited. Default 0.
    pub max_conn_rate: u32,
    /// Connections accepted at once after a quiet spell, before `max_conn_rate` paces them
    /// (the token bucket's size); 0 = equal to `max_conn_rate`. Default 0.
    pub max_conn_burst: u32,
    /// Whether clients on this listener are authenticated. Default true.
    pub enable_authn: bool,
    /// PEM certificate chain presented to clients. Default "" (required when enabled).
    pub certfile: PathBuf,
    /// PEM private key for `certfile`. Default "" (required when enabled).
    pub keyfile: PathBuf,
    /// PEM CA bundle for verifying client certificates. Default "" (required with
    /// verify_peer).
    pub cacertfile: PathBuf,
    /// Client certificate verification. Default verify_none.
    pub verify: TlsVerify,
    /// With verify_peer: refuse clients that present no certificate. Default false.
    pub fail_if_no_peer_cert: bool,
    /// Use the client certificate's Common Name as the MQTT username: disabled | cn.
    /// Default disabled.
    pub peer_cert_as_username: PeerCertAsUsername,
}

impl Default for WssListenerConfig {
    fn default() -> Self {
        WssListenerConfig {
            enable: false,
            bind: any_v4(8084),
            path: "/mqtt".to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_conn_rate: DEFAULT_STREAM_MAX_CONN_RATE,
            max_conn_burst: DEFAULT_MAX_CONN_BURST,
            enable_authn: true,
            certfile: PathBuf::new(),
            keyfile: PathBuf::new(),
            cacertfile: PathBuf::new(),
            verify: TlsVerify::VerifyNone,
            fail_if_no_peer_cert: false,
            peer_cert_as_username: PeerCertAsUsername::Disabled,
        }
    }
}

impl WssListenerConfig {
    /// This listener's TLS keys.
    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            cacertfile: self.cacertfile.clone(),
            verify: self.verify,
            fail_if_no_peer_cert: self.fail_if_no_peer_cert,
            peer_cert_as_username: self.peer_cert_as_username,
        }
    }
}

/// `[dashboard.listeners]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpListenersConfig {
    /// `[dashboard.listeners.http]`
    pub http: HttpListenerConfig,
    /// `[dashboard.listeners.https]`
    pub https: HttpsListenerConfig,
}

/// `[dashboard.listeners.https]`: the admin API and dashboard over TLS (EMQX's 18084).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpsListenerConfig {
    /// Whether to serve over HTTPS; needs `certfile` and `keyfile`. Default false.
    pub enable: bool,
    /// Address to listen on, `IP:port`. Default 0.0.0.0:18084.
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    /// PEM certificate chain presented to browsers. Default "" (required when enabled).
    pub certfile: PathBuf,
    /// PEM private key for `certfile`. Default "" (required when enabled).
    pub keyfile: PathBuf,
}

impl Default for HttpsListenerConfig {
    fn default() -> Self {
        HttpsListenerConfig {
            enable: false,
            bind: any_v4(18084),
            certfile: PathBuf::new(),
            keyfile: PathBuf::new(),
        }
    }
}

impl HttpsListenerConfig {
    /// This listener's TLS keys (no client certificates).
    pub fn tls(&self) -> TlsOptions {
        TlsOptions {
            certfile: self.certfile.clone(),
            keyfile: self.keyfile.clone(),
            cacertfile: PathBuf::new(),
            verify: TlsVerify::VerifyNone,
            fail_if_no_peer_cert: false,
            peer_cert_as_username: PeerCertAsUsername::Disabled,
        }
    }
}

/// `[dashboard.listeners.http]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpListenerConfig {
    /// Whether to serve the admin API and dashboard. Default true.
    pub enable: bool,
    /// Address to listen on, `IP:port`. Default 0.0.0.0:18083.
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
}

impl Default for HttpListenerConfig {
    fn default() -> Self {
        HttpListenerConfig {
            enable: true,
            bind: any_v4(18083),
        }
    }
}
