//! `[gateway.*]`: the UDP protocol gateways (MQTT-SN, CoAP, LwM2M). Each has one UDP listener
//! and one DTLS listener (off by default), both named `default`; other transports are rejected
//! as unknown keys.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::dtls::DtlsListenersConfig;
use super::listeners::{
    any_v4, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONN_BURST, DEFAULT_UDP_MAX_CONN_RATE,
};
use crate::units::{self, ByteSize, Duration};

/// `[gateway]` (not `Eq`: `gateway.coap.ack_random_factor` is a float)
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// `[gateway.mqttsn]`: MQTT-SN 1.2 over UDP.
    pub mqttsn: MqttSnGatewayConfig,
    /// `[gateway.coap]`: CoAP (RFC 7252) over UDP.
    pub coap: CoapGatewayConfig,
    /// `[gateway.lwm2m]`: LwM2M over CoAP over UDP.
    pub lwm2m: Lwm2mGatewayConfig,
}

impl GatewayConfig {
    /// Every gateway's section (its name, `enable` and listeners), in display order: what
    /// validation, start-up and the admin API walk. A new gateway adds its field above and its
    /// line here; the binary tests that its gateway table names the same gateways.
    pub fn sections(&self) -> Vec<super::ProtocolSection> {
        vec![
            self.mqttsn
                .listeners
                .section("mqttsn", "gateway.mqttsn", self.mqttsn.enable),
            self.coap
                .listeners
                .section("coap", "gateway.coap", self.coap.enable),
            self.lwm2m
                .listeners
                .section("lwm2m", "gateway.lwm2m", self.lwm2m.enable),
        ]
    }
}

/// `[gateway.mqttsn]` (EMQX-compatible keys, docs/mqtt-sn.md §2.1)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSnGatewayConfig {
    /// Whether to run the gateway. Default true.
    pub enable: bool,
    /// Gateway id sent in GWINFO and ADVERTISE. Default 1.
    pub gateway_id: u8,
    /// Send ADVERTISE periodically. Default false.
    pub broadcast: bool,
    /// Where ADVERTISE goes. Default 255.255.255.255:1884.
    #[serde(deserialize_with = "units::socket_addr")]
    pub broadcast_address: SocketAddr,
    /// Interval between ADVERTISEs (also their Duration field). Default 15m.
    pub broadcast_interval: Duration,
    /// Accept QoS -1 PUBLISH (from connected and unconnected clients). Default true.
    pub enable_qos3: bool,
    /// REGISTER every non-wildcard subscribed topic when a session is resumed. Default false.
    pub subs_resume: bool,
    /// Predefined topics `{id, topic}`, ids 1..1024, shared by every client. Default none.
    pub predefined: Vec<PredefinedTopicConfig>,
    /// Topic prefix for publish and subscribe (`${clientid}`, `${username}`). Default "".
    pub mountpoint: String,
    /// Resend unacknowledged QoS 1/2 downlinks and REGISTERs after this long. Default 10s.
    pub retry_interval: Duration,
    /// Resends before the client is disconnected. Default 4.
    pub max_retries: u32,
    /// Time a client has to finish CONNECT (with the will handshake). Default 30s.
    pub idle_timeout: Duration,
    /// Authenticate clients (with `clientinfo_override` credentials). Default false.
    pub enable_authn: bool,
    /// `[gateway.mqttsn.clientinfo_override]`
    pub clientinfo_override: ClientInfoOverrideConfig,
    /// `[gateway.mqttsn.listeners.*]`; the UDP listener defaults to 0.0.0.0:1884.
    pub listeners: UdpGatewayListenersConfig,
}

impl Default for MqttSnGatewayConfig {
    fn default() -> Self {
        MqttSnGatewayConfig {
            enable: true,
            gateway_id: 1,
            broadcast: false,
            broadcast_address: SocketAddr::from(([255, 255, 255, 255], 1884)),
            broadcast_interval: Duration::from_secs(15 * 60),
            enable_qos3: true,
            subs_resume: false,
            predefined: Vec::new(),
            mountpoint: String::new(),
            retry_interval: Duration::from_secs(10),
            max_retries: 4,
            idle_timeout: Duration::from_secs(30),
            enable_authn: false,
            clientinfo_override: ClientInfoOverrideConfig::default(),
            listeners: UdpGatewayListenersConfig::on_ports(1884, 1885),
        }
    }
}

impl MqttSnGatewayConfig {
    /// Highest predefined topic id (EMQX's schema range).
    pub const MAX_PREDEFINED_ID: u16 = 1024;

    /// Range and uniqueness checks the types cannot express.
    pub(crate) fn check(&self, issues: &mut Vec<crate::error::Issue>) {
        use crate::error::Issue;
        let mut seen = std::collections::HashSet::new();
        for (i, p) in self.predefined.iter().enumerate() {
            let key = format!("gateway.mqttsn.predefined[{i}]");
            if p.id == 0 || p.id > Self::MAX_PREDEFINED_ID {
                issues.push(Issue::new(
                    format!("{key}.id"),
                    format!("must be 1..1024, got {}", p.id),
                ));
            }
            if !seen.insert(p.id) {
                issues.push(Issue::new(
                    format!("{key}.id"),
                    format!("id {} is predefined twice", p.id),
                ));
            }
            if p.topic.is_empty() || p.topic.contains(['+', '#']) {
                issues.push(Issue::new(
                    format!("{key}.topic"),
                    format!("must be a topic name without wildcards, got {:?}", p.topic),
                ));
            }
        }
        for (key, d) in [
            ("gateway.mqttsn.retry_interval", self.retry_interval),
            ("gateway.mqttsn.idle_timeout", self.idle_timeout),
            ("gateway.mqttsn.broadcast_interval", self.broadcast_interval),
        ] {
            if d.is_zero() {
                issues.push(Issue::new(key, "must be greater than 0s"));
            }
        }
    }
}

/// One `[[gateway.mqttsn.predefined]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredefinedTopicConfig {
    /// Topic id, 1..1024.
    pub id: u16,
    /// Topic name (no wildcards).
    pub topic: String,
}

/// `[gateway.mqttsn.clientinfo_override]`: MQTT-SN CONNECT has no credentials, so they come
/// from these templates (`${clientid}` is replaced); "" = unset.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientInfoOverrideConfig {
    /// Username template. Default "" (none).
    pub username: String,
    /// Password template. Default "" (none).
    pub password: String,
}

/// `[gateway.coap]` (EMQX-compatible keys, docs/coap.md §3.1, plus the RFC 7252
/// transmission parameters and the RFC 7959 limits)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoapGatewayConfig {
    /// Whether to run the gateway. Default true.
    pub enable: bool,
    /// Connection mode: clients create a connection (`POST /mqtt/connection`) and send
    /// `clientid` + `token` on every request. Default false.
    pub connection_required: bool,
    /// Keepalive: a client silent for 1.5 x heartbeat is dropped, except a connectionless
    /// observer whose observation is alive. Default 30s.
    pub heartbeat: Duration,
    /// Notification message type: qos (QoS 0 -> NON, 1/2 -> CON), non or con. Default qos.
    pub notify_type: CoapNotifyType,
    /// QoS of a subscription without `qos`: coap (CON -> 1, NON -> 0), qos0, qos1, qos2.
    /// Default coap.
    pub subscribe_qos: CoapQosMode,
    /// QoS of a publish without `qos`, as `subscribe_qos`. Default coap.
    pub publish_qos: CoapQosMode,
    /// Topic prefix for publish and subscribe (`${clientid}`, `${username}`). Default "".
    pub mountpoint: String,
    /// Authenticate clients: the connection create, or each connectionless request
    /// (`username`/`password` query). Default false.
    pub enable_authn: bool,
    /// RFC 7252 ACK_TIMEOUT: first retransmission of a CON after this x random factor.
    /// Default 2s.
    pub ack_timeout: Duration,
    /// RFC 7252 ACK_RANDOM_FACTOR (>= 1.0). Default 1.5.
    pub ack_random_factor: f64,
    /// RFC 7252 MAX_RETRANSMIT (0..=10). EXCHANGE_LIFETIME is derived. Default 4.
    pub max_retransmit: u32,
    /// RFC 7959 largest block sent or accepted: 16, 32, 64, 128, 256, 512 or 1024 bytes.
    /// Default 1024.
    pub max_block_size: u32,
    /// RFC 7959 largest request body reassembled from Block1 blocks (4.13 beyond).
    /// Default 4MB.
    pub max_body_size: ByteSize,
    /// `[gateway.coap.listeners.*]`; the UDP listener defaults to 0.0.0.0:5683.
    pub listeners: UdpGatewayListenersConfig,
}

impl Default for CoapGatewayConfig {
    fn default() -> Self {
        CoapGatewayConfig {
            enable: true,
            connection_required: false,
            heartbeat: Duration::from_secs(30),
            notify_type: CoapNotifyType::Qos,
            subscribe_qos: CoapQosMode::Coap,
            publish_qos: CoapQosMode::Coap,
            mountpoint: String::new(),
            enable_authn: false,
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            max_block_size: 1024,
            max_body_size: ByteSize(4 * ByteSize::MB),
            listeners: UdpGatewayListenersConfig::on_ports(5683, 5684),
        }
    }
}

/// `gateway.coap.notify_type`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoapNotifyType {
    /// QoS 0 -> NON, QoS 1/2 -> CON.
    #[default]
    Qos,
    /// Always NON (CON at least every 24 h, RFC 7641 §4.5).
    Non,
    /// Always CON.
    Con,
}

/// `gateway.coap.subscribe_qos` / `publish_qos`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoapQosMode {
    /// CON -> QoS 1, NON -> QoS 0.
    #[default]
    Coap,
    /// QoS 0.
    Qos0,
    /// QoS 1.
    Qos1,
    /// QoS 2.
    Qos2,
}

/// `[gateway.lwm2m]` (EMQX-compatible keys, docs/lwm2m.md §4.1, plus the
/// RFC 7252 transmission parameters of the CoAP transport)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lwm2mGatewayConfig {
    /// Whether to run the gateway. Default true.
    pub enable: bool,
    /// Directory of OMA object definitions (`*.xml`), relative to the working directory.
    /// Default "config/lwm2m_xml".
    pub xml_dir: String,
    /// A shorter registration lifetime (`lt`) is raised to this. Default 15s.
    pub lifetime_min: Duration,
    /// A longer `lt` is capped to this; `lt=0` means it. Default 86400s.
    pub lifetime_max: Duration,
    /// Queue mode: commands are held once the device has been silent this long, and flushed
    /// at its next Update. Default 22s.
    pub qmode_time_window: Duration,
    /// Observe every object instance in the Register object list (objects 0-2, 4-7, 9, 15
    /// and undefined objects excepted). Default false.
    pub auto_observe: bool,
    /// When an Update publishes the update event: always, or contains_object_list.
    /// Default always.
    pub update_msg_publish_condition: Lwm2mUpdateCondition,
    /// Topic prefix of every translator (`${endpoint_name}`, `${clientid}`, `${username}`).
    /// Default "lwm2m/${endpoint_name}/".
    pub mountpoint: String,
    /// Check the `imei`/`password` query extras at Register. Default false.
    pub enable_authn: bool,
    /// RFC 7252 ACK_TIMEOUT for commands sent to devices. Default 2s.
    pub ack_timeout: Duration,
    /// RFC 7252 ACK_RANDOM_FACTOR (>= 1.0). Default 1.5.
    pub ack_random_factor: f64,
    /// RFC 7252 MAX_RETRANSMIT (0..=10); after it a command gets a coap_timeout event.
    /// Default 4.
    pub max_retransmit: u32,
    /// `[gateway.lwm2m.translators]`: MQTT topics (below the mountpoint) and QoS.
    pub translators: Lwm2mTranslatorsConfig,
    /// `[gateway.lwm2m.listeners.*]`; the UDP listener defaults to 0.0.0.0:5783.
    pub listeners: UdpGatewayListenersConfig,
}

impl Default for Lwm2mGatewayConfig {
    fn default() -> Self {
        Lwm2mGatewayConfig {
            enable: true,
            xml_dir: "config/lwm2m_xml".into(),
            lifetime_min: Duration::from_secs(15),
            lifetime_max: Duration::from_secs(86_400),
            qmode_time_window: Duration::from_secs(22),
            auto_observe: false,
            update_msg_publish_condition: Lwm2mUpdateCondition::Always,
            mountpoint: "lwm2m/${endpoint_name}/".into(),
            enable_authn: false,
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            translators: Lwm2mTranslatorsConfig::default(),
            listeners: UdpGatewayListenersConfig::on_ports(5783, 5784),
        }
    }
}

/// `gateway.lwm2m.update_msg_publish_condition`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lwm2mUpdateCondition {
    /// Every Update publishes the update event.
    #[default]
    Always,
    /// Only an Update carrying an object list.
    ContainsObjectList,
}

/// `[gateway.lwm2m.translators]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lwm2mTranslatorsConfig {
    /// Downlink commands: the filter subscribed for each device. Default "dn/#", qos 0.
    pub command: TranslatorConfig,
    /// Command responses and ack/coap_timeout/coap_reset events. Default "up/resp", qos 0.
    pub response: TranslatorConfig,
    /// Observe notifications. Default "up/notify", qos 0.
    pub notify: TranslatorConfig,
    /// Register events. Default "up/resp", qos 0.
    pub register: TranslatorConfig,
    /// Update events. Default "up/resp", qos 0.
    pub update: TranslatorConfig,
}

impl Default for Lwm2mTranslatorsConfig {
    fn default() -> Self {
        let t = |topic: &str| TranslatorConfig {
            topic: topic.into(),
            qos: 0,
        };
        Lwm2mTranslatorsConfig {
            command: t("dn/#"),
            response: t("up/resp"),
            notify: t("up/notify"),
            register: t("up/resp"),
            update: t("up/resp"),
        }
    }
}

/// `[gateway.lwm2m.translators.<name>]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranslatorConfig {
    /// Topic appended to the mountpoint as a plain string.
    pub topic: String,
    /// QoS (0..=2).
    pub qos: u8,
}

/// `[gateway.<name>.listeners]`
///
/// Its `Default` (and that of the types below it) binds port 0, because the real default
/// port depends on the gateway. Loading always layers files over
/// [`Config::default()`](crate::Config::default), where each gateway sets its own port, so a
/// file that sets only `max_connections` keeps the gateway's port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpGatewayListenersConfig {
    /// `[gateway.<name>.listeners.udp.*]`
    pub udp: UdpListenersConfig,
    /// `[gateway.<name>.listeners.dtls.*]`
    pub dtls: DtlsListenersConfig,
}

impl UdpGatewayListenersConfig {
    /// The listener set with the default UDP listener on `0.0.0.0:<port>` and the (disabled)
    /// DTLS listener on `0.0.0.0:<dtls_port>`.
    pub fn on_ports(port: u16, dtls_port: u16) -> Self {
        UdpGatewayListenersConfig {
            udp: UdpListenersConfig {
                default: UdpListenerConfig {
                    bind: any_v4(port),
                    ..UdpListenerConfig::default()
                },
            },
            dtls: DtlsListenersConfig {
                default: super::dtls::DtlsListenerConfig::on_port(dtls_port),
            },
        }
    }
}

/// `[gateway.<name>.listeners.udp]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpListenersConfig {
    /// `[gateway.<name>.listeners.udp.default]`
    pub default: UdpListenerConfig,
}

/// `[gateway.<name>.listeners.udp.default]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpListenerConfig {
    /// Address to listen on, `IP:port` (port 0 = any free port). Default: the gateway's port
    /// on 0.0.0.0 (mqttsn 1884, coap 5683, lwm2m 5783).
    #[serde(deserialize_with = "units::socket_addr")]
    pub bind: SocketAddr,
    /// Most concurrent clients (by client identity, not source address). Default 1024000.
    pub max_connections: u32,
    /// New clients accepted per second on average; over it a new client is refused with the
    /// protocol's answer (MQTT-SN CONNACK 0x01 congestion, CoAP and LwM2M 5.03), since a
    /// datagram cannot wait in a backlog. 0 = unlimited. Default 1000.
    pub max_conn_rate: u32,
    /// New clients accepted at once after a quiet spell before `max_conn_rate` applies (the
    /// token bucket's size); 0 = equal to `max_conn_rate`. Default 0.
    pub max_conn_burst: u32,
}

impl Default for UdpListenerConfig {
    /// Port 0: see [`UdpGatewayListenersConfig`] for why the real default lives one level up.
    fn default() -> Self {
        UdpListenerConfig {
            bind: any_v4(0),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_conn_rate: DEFAULT_UDP_MAX_CONN_RATE,
            max_conn_burst: DEFAULT_MAX_CONN_BURST,
        }
    }
}
