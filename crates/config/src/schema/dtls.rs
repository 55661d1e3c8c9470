//! DTLS listeners of the UDP gateways (`[gateway.<name>.listeners.dtls.default]`, EMQX's names)
//! and the node's pre-shared keys (`[psk_authentication]`, EMQX's file format).
//!
//! Must not know: sockets or how DTLS is done; `switchyard-net` builds the listener from these.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::listeners::{
    any_v4, PeerCertAsUsername, TlsVerify, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONN_BURST,
    DEFAULT_UDP_MAX_CONN_RATE,
};
use crate::units::{self, Duration};

/// Default most peers in handshake per DTLS listener.
pub const DEFAULT_MAX_HANDSHAKES: u32 = 1000;

/// `[gateway.<name>.listeners.dtls]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DtlsListenersConfig {
    /// `[gateway.<name>.listeners.dtls.default]`
    pub default: DtlsListenerConfig,
}

/// `[gateway.<name>.listeners.dtls.default]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DtlsListenerConfig {
    /// Whether to listen. Default false: it needs a certificate or `psk_authentication`.
    pub enable: bool,
    /// Address to listen on, `IP:port`. Default: coap 0.0.0.0:5684, lwm2m 0.0.0.0:5784,
    /// mqttsn 0.0.0.0:1885.
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    /// Most peers with a DTLS association at once (and clients, as on UDP). Default 1024000.
    pub max_connections: u32,
    /// New handshakes (and new clients) accepted per second; over it a ClientHello is dropped.
    /// 0 = unlimited. Default 1000.
    pub max_conn_rate: u32,
    /// Burst of new handshakes before `max_conn_rate` applies; 0 = equal to it. Default 0.
    pub max_conn_burst: u32,
    /// Most peers in handshake at once (each costs state before its cookie returns); more
    /// ClientHellos are dropped until some finish or time out. Default 1000.
    pub max_handshakes: u32,
    /// `"cn"`: a client certificate's Common Name becomes the username; `"disabled"`: the
    /// protocol's own username. A PSK identity is always the username. Default "disabled".
    pub peer_cert_as_username: PeerCertAsUsername,
    /// `[...dtls.default.dtls_options]`
    pub dtls_options: DtlsOptions,
}

impl DtlsListenerConfig {
    /// The listener on `0.0.0.0:<port>`, disabled.
    pub fn on_port(port: u16) -> Self {
        DtlsListenerConfig {
            bind: any_v4(port),
            ..DtlsListenerConfig::default()
        }
    }
}

impl Default for DtlsListenerConfig {
    /// Port 0, like `UdpListenerConfig`: each gateway's default sets its own port.
    fn default() -> Self {
        DtlsListenerConfig {
            enable: false,
            bind: any_v4(0),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_conn_rate: DEFAULT_UDP_MAX_CONN_RATE,
            max_conn_burst: DEFAULT_MAX_CONN_BURST,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            peer_cert_as_username: PeerCertAsUsername::Disabled,
            dtls_options: DtlsOptions::default(),
        }
    }
}

/// `[gateway.<name>.listeners.dtls.default.dtls_options]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DtlsOptions {
    /// PEM certificate chain (ECDSA P-256 key); empty = PSK only. Default "".
    pub certfile: PathBuf,
    /// PEM PKCS#8 private key of `certfile`. Default "".
    pub keyfile: PathBuf,
    /// PEM CA bundle that client certificates must chain to (needed by `verify_peer`).
    /// Default "".
    pub cacertfile: PathBuf,
    /// `verify_none` | `verify_peer` (request and verify client certificates). Default
    /// "verify_none".
    pub verify: TlsVerify,
    /// With `verify_peer`: refuse a client without a certificate. Default false.
    pub fail_if_no_peer_cert: bool,
    /// IANA cipher suite names, e.g. ["TLS_PSK_WITH_AES_128_CCM_8"]; empty = the defaults
    /// (TLS_PSK_WITH_AES_128_CCM_8, TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, then their CCM and GCM
    /// siblings). Default [].
    pub ciphers: Vec<String>,
    /// A handshake not complete within this is dropped. Default 15s.
    pub handshake_timeout: Duration,
}

impl Default for DtlsOptions {
    fn default() -> Self {
        DtlsOptions {
            certfile: PathBuf::new(),
            keyfile: PathBuf::new(),
            cacertfile: PathBuf::new(),
            verify: TlsVerify::VerifyNone,
            fail_if_no_peer_cert: false,
            ciphers: Vec::new(),
            handshake_timeout: Duration::from_secs(15),
        }
    }
}

/// A DTLS listener's keys as the listener list carries them (see `ListenerView::dtls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtlsView {
    /// `max_handshakes`
    pub max_handshakes: u32,
    /// `peer_cert_as_username`
    pub peer_cert_as_username: PeerCertAsUsername,
    /// `dtls_options`
    pub options: DtlsOptions,
}

/// `[psk_authentication]`: the node's pre-shared keys for DTLS-PSK, shared by every DTLS
/// listener; more are added through `/api/v5/psk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PskAuthenticationConfig {
    /// Offer PSK cipher suites on DTLS listeners. Default false.
    pub enable: bool,
    /// File of `identity<separator>key` lines (EMQX's format, the key being the raw bytes after
    /// the first separator), loaded at start; empty = none. Default "".
    pub init_file: PathBuf,
    /// Separator between identity and key. Default ":".
    pub separator: String,
}

impl Default for PskAuthenticationConfig {
    fn default() -> Self {
        PskAuthenticationConfig {
            enable: false,
            init_file: PathBuf::new(),
            separator: ":".to_owned(),
        }
    }
}

/// Rules of an enabled DTLS listener the schema cannot express.
pub(crate) fn check(
    key: &str,
    d: &DtlsView,
    psk: &PskAuthenticationConfig,
    issues: &mut Vec<crate::error::Issue>,
) {
    use crate::error::Issue;
    let o = &d.options;
    let has_cert = !o.certfile.as_os_str().is_empty();
    let has_key = !o.keyfile.as_os_str().is_empty();
    if has_cert != has_key {
        issues.push(Issue::new(
            format!("{key}.dtls_options"),
            "certfile and keyfile go together",
        ));
    }
    if !has_cert && !psk.enable {
        issues.push(Issue::new(
            key.to_owned(),
            "a DTLS listener needs dtls_options.certfile/keyfile or psk_authentication.enable = true",
        ));
    }
    if o.verify == TlsVerify::VerifyPeer && o.cacertfile.as_os_str().is_empty() {
        issues.push(Issue::new(
            format!("{key}.dtls_options.cacertfile"),
            "verify = \"verify_peer\" needs cacertfile",
        ));
    }
    if d.max_handshakes == 0 {
        issues.push(Issue::new(
            format!("{key}.max_handshakes"),
            "must be at least 1, got 0",
        ));
    }
    if psk.enable && psk.separator.is_empty() {
        issues.push(Issue::new(
            "psk_authentication.separator",
            "must not be empty",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::{load_from, Config};

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_udp_gateway_has_a_disabled_dtls_listener_on_its_emqx_port() {
        let c = Config::default();
        for (name, port) in [("coap", 5684), ("lwm2m", 5784), ("mqttsn", 1885)] {
            let p = c.protocol(name).expect("section");
            let l = p.listener("dtls").expect("dtls listener");
            assert_eq!(l.bind.port(), port, "{name}");
            assert!(!l.enable, "{name} off until enabled");
            assert_eq!(l.dtls.as_ref().map(|d| d.max_handshakes), Some(1000));
        }
    }

    #[test]
    fn env_overrides_reach_the_dtls_options() {
        let vars = env(&[
            (
                "SWITCHYARD_GATEWAY__COAP__LISTENERS__DTLS__DEFAULT__DTLS_OPTIONS__CERTFILE",
                "/etc/switchyard/dtls.pem",
            ),
            (
                "SWITCHYARD_GATEWAY__COAP__LISTENERS__DTLS__DEFAULT__DTLS_OPTIONS__KEYFILE",
                "/etc/switchyard/dtls.key",
            ),
            (
                "SWITCHYARD_GATEWAY__COAP__LISTENERS__DTLS__DEFAULT__ENABLE",
                "true",
            ),
            (
                "SWITCHYARD_GATEWAY__COAP__LISTENERS__DTLS__DEFAULT__MAX_HANDSHAKES",
                "7",
            ),
            ("SWITCHYARD_PSK_AUTHENTICATION__SEPARATOR", "="),
        ]);
        let c = load_from(None, vars).expect("load");
        let d = &c.gateway.coap.listeners.dtls.default;
        assert!(d.enable);
        assert_eq!(d.max_handshakes, 7);
        assert_eq!(
            d.dtls_options.certfile,
            std::path::PathBuf::from("/etc/switchyard/dtls.pem")
        );
        assert_eq!(c.psk_authentication.separator, "=");
    }

    #[test]
    fn an_enabled_dtls_listener_needs_a_certificate_or_psk() {
        let err = crate::from_toml_str("[gateway.lwm2m.listeners.dtls.default]\nenable = true\n")
            .expect_err("nothing to handshake with");
        let text = err.to_string();
        assert!(
            text.contains("gateway.lwm2m.listeners.dtls.default"),
            "{text}"
        );
        assert!(text.contains("psk_authentication"), "{text}");
        let ok = crate::from_toml_str(
            "[psk_authentication]\nenable = true\n[gateway.lwm2m.listeners.dtls.default]\nenable = true\n",
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err = crate::from_toml_str(
            "[psk_authentication]\nenable = true\n\
             [gateway.coap.listeners.dtls.default]\nenable = true\n\
             [gateway.coap.listeners.dtls.default.dtls_options]\nverify = \"verify_peer\"\n",
        )
        .expect_err("verify_peer without a CA");
        assert!(err.to_string().contains("cacertfile"), "{err}");
    }
}
