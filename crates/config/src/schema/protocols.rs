//! One shape for every protocol's listeners, whatever table they live in: MQTT's
//! `[listeners.<kind>.default]` and each gateway's `[gateway.<name>.listeners.<kind>.default]`
//! are read as [`ListenerView`]s grouped in [`ProtocolSection`]s, so validation, start-up and
//! the admin API walk one list instead of naming each table.
//!
//! Must not know: sockets or protocol behaviour; this is the schema seen from another angle.
//! The binary checks that its gateway table and [`Config::protocols`] name the same
//! protocols and listener kinds.

use std::net::SocketAddr;

use super::dtls::DtlsView;
use super::gateway::UdpGatewayListenersConfig;
use super::listeners::ListenersConfig;
use super::{Config, TlsOptions};

/// One listener's keys, gathered from its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerView {
    /// Its table, e.g. `listeners.tcp.default` or `gateway.coap.listeners.udp.default`; an
    /// issue about one of its keys is `<key>.<field>`.
    pub key: String,
    /// Its transport: `tcp`, `ws`, `ssl`, `wss` or `udp`.
    pub kind: &'static str,
    /// Its name within the kind: `default`.
    pub name: &'static str,
    /// Its own `enable` (true for listeners without the key; see also
    /// [`ProtocolSection::enable`]).
    pub enable: bool,
    /// `bind`.
    pub bind: SocketAddr,
    /// `max_connections`.
    pub max_connections: u32,
    /// `max_conn_rate`.
    pub max_conn_rate: u32,
    /// `max_conn_burst`.
    pub max_conn_burst: u32,
    /// `enable_authn`, when the listener has the key (MQTT's listeners).
    pub enable_authn: Option<bool>,
    /// `path`, on WebSocket listeners.
    pub ws_path: Option<String>,
    /// The TLS keys, on TLS listeners.
    pub tls: Option<TlsOptions>,
    /// The DTLS keys, on DTLS listeners.
    pub dtls: Option<DtlsView>,
}

/// One protocol's part of the config: its listeners and whether it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolSection {
    /// The protocol's name, as in the binary's gateway table: `mqtt`, `mqttsn`, `coap`, ...
    pub name: &'static str,
    /// Its table: `listeners` for MQTT, `gateway.<name>` for a gateway.
    pub key: &'static str,
    /// Whether it starts with the node (`gateway.<name>.enable`; MQTT: always, each listener
    /// has its own `enable`).
    pub enable: bool,
    /// Its listeners, in start order.
    pub listeners: Vec<ListenerView>,
}

impl ProtocolSection {
    /// Its listener of `kind`.
    pub fn listener(&self, kind: &str) -> Option<&ListenerView> {
        self.listeners.iter().find(|l| l.kind == kind)
    }

    /// Listeners that bind when the node starts: the section and the listener are enabled.
    pub fn enabled_listeners(&self) -> impl Iterator<Item = &ListenerView> {
        self.listeners
            .iter()
            .filter(move |l| self.enable && l.enable)
    }
}

impl Config {
    /// Every protocol's section: MQTT, then each `[gateway.*]` in display order.
    pub fn protocols(&self) -> Vec<ProtocolSection> {
        let mut out = vec![self.listeners.section()];
        out.extend(self.gateway.sections());
        out
    }

    /// The section of protocol `name`.
    pub fn protocol(&self, name: &str) -> Option<ProtocolSection> {
        self.protocols().into_iter().find(|p| p.name == name)
    }
}

impl ListenersConfig {
    /// MQTT's section: `[listeners.tcp|ws|ssl|wss.default]`.
    pub fn section(&self) -> ProtocolSection {
        let (tcp, ws, ssl, wss) = (
            &self.tcp.default,
            &self.ws.default,
            &self.ssl.default,
            &self.wss.default,
        );
        let view =
            |kind: &'static str, enable, bind, limits: (u32, u32, u32), authn| ListenerView {
                key: format!("listeners.{kind}.default"),
                kind,
                name: "default",
                enable,
                bind,
                max_connections: limits.0,
                max_conn_rate: limits.1,
                max_conn_burst: limits.2,
                enable_authn: Some(authn),
                ws_path: None,
                tls: None,
                dtls: None,
            };
        let listeners = vec![
            view(
                "tcp",
                tcp.enable,
                tcp.bind,
                (tcp.max_connections, tcp.max_conn_rate, tcp.max_conn_burst),
                tcp.enable_authn,
            ),
            ListenerView {
                ws_path: Some(ws.path.clone()),
                ..view(
                    "ws",
                    ws.enable,
                    ws.bind,
                    (ws.max_connections, ws.max_conn_rate, ws.max_conn_burst),
                    ws.enable_authn,
                )
            },
            ListenerView {
                tls: Some(ssl.tls()),
                ..view(
                    "ssl",
                    ssl.enable,
                    ssl.bind,
                    (ssl.max_connections, ssl.max_conn_rate, ssl.max_conn_burst),
                    ssl.enable_authn,
                )
            },
            ListenerView {
                ws_path: Some(wss.path.clone()),
                tls: Some(wss.tls()),
                ..view(
                    "wss",
                    wss.enable,
                    wss.bind,
                    (wss.max_connections, wss.max_conn_rate, wss.max_conn_burst),
                    wss.enable_authn,
                )
            },
        ];
        ProtocolSection {
            name: "mqtt",
            key: "listeners",
            enable: true,
            listeners,
        }
    }
}

impl UdpGatewayListenersConfig {
    /// The section of gateway `name` (table `key`, `gateway.<name>`) with these listeners.
    pub fn section(&self, name: &'static str, key: &'static str, enable: bool) -> ProtocolSection {
        let (udp, dtls) = (&self.udp.default, &self.dtls.default);
        ProtocolSection {
            name,
            key,
            enable,
            listeners: vec![
                ListenerView {
                    key: format!("{key}.listeners.udp.default"),
                    kind: "udp",
                    name: "default",
                    enable: true,
                    bind: udp.bind,
                    max_connections: udp.max_connections,
                    max_conn_rate: udp.max_conn_rate,
                    max_conn_burst: udp.max_conn_burst,
                    enable_authn: None,
                    ws_path: None,
                    tls: None,
                    dtls: None,
                },
                ListenerView {
                    key: format!("{key}.listeners.dtls.default"),
                    kind: "dtls",
                    name: "default",
                    enable: dtls.enable,
                    bind: dtls.bind,
                    max_connections: dtls.max_connections,
                    max_conn_rate: dtls.max_conn_rate,
                    max_conn_burst: dtls.max_conn_burst,
                    enable_authn: None,
                    ws_path: None,
                    tls: None,
                    dtls: Some(DtlsView {
                        max_handshakes: dtls.max_handshakes,
                        peer_cert_as_username: dtls.peer_cert_as_username,
                        options: dtls.dtls_options.clone(),
                    }),
                },
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MQTT's four listener tables come first, then one section per `[gateway.<name>]` whose
    /// listener keys sit under its own table (no gateway is named here: adding one needs no
    /// change to this test).
    #[test]
    fn every_listener_table_is_one_view() {
        let c = Config::default();
        let all = c.protocols();
        let mqtt = &all[0];
        let keys: Vec<&str> = mqtt.listeners.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(
            (mqtt.name, mqtt.key, keys),
            (
                "mqtt",
                "listeners",
                vec![
                    "listeners.tcp.default",
                    "listeners.ws.default",
                    "listeners.ssl.default",
                    "listeners.wss.default"
                ]
            )
        );
        assert_eq!(all.len(), 1 + c.gateway.sections().len());
        for g in &all[1..] {
            assert_eq!(g.key, format!("gateway.{}", g.name));
            assert!(!g.listeners.is_empty(), "{}", g.name);
            for l in &g.listeners {
                assert_eq!(l.key, format!("{}.listeners.{}.{}", g.key, l.kind, l.name));
            }
        }
        let wss = mqtt.listener("wss").expect("wss");
        assert_eq!(wss.ws_path.as_deref(), Some("/mqtt"));
        assert!(wss.tls.is_some() && !wss.enable);
        assert_eq!(mqtt.enabled_listeners().count(), 2, "tcp and ws by default");
        let coap = c.protocol("coap").expect("coap");
        assert_eq!(coap.listener("udp").map(|l| l.max_conn_rate), Some(1000));
        assert!(c.protocol("stomp").is_none());
    }

    #[test]
    fn a_disabled_gateway_binds_nothing_but_keeps_its_listener() {
        let mut c = Config::default();
        c.gateway.lwm2m.enable = false;
        let lwm2m = c.protocol("lwm2m").expect("lwm2m");
        assert_eq!(lwm2m.enabled_listeners().count(), 0);
        assert_eq!(
            lwm2m.listeners.len(),
            2,
            "still there for a start at run time"
        );
    }
}
