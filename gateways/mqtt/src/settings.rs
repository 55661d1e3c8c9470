//! The MQTT gateway's settings, filled in by the binary from the `[mqtt]` config section, the
//! listener's `enable_authn`, and the shared authentication and ACL.

use std::time::Duration;
use switchyard_auth::Security;
use switchyard_core::QoS;

/// Protocol limits and switches of the MQTT gateway.
#[derive(Debug, Clone)]
pub struct MqttSettings {
    /// Largest packet accepted (and, for MQTT 5, announced).
    pub max_packet_size: usize,
    /// Longest client id accepted (CONNACK 0x02 / 0x85 beyond).
    pub max_clientid_len: usize,
    /// 0 = unlimited.
    pub max_topic_levels: usize,
    /// Highest QoS granted or accepted.
    pub max_qos_allowed: QoS,
    /// MQTT 5 topic alias maximum announced to clients.
    pub max_topic_alias: u16,
    /// Whether retained messages are supported.
    pub retain_available: bool,
    /// Whether wildcard subscriptions are allowed.
    pub wildcard_subscription: bool,
    /// Whether shared subscriptions are allowed.
    pub shared_subscription: bool,
    /// Session expiry for MQTT 3.x persistent sessions, and the cap for MQTT 5.
    pub session_expiry_interval: Duration,
    /// Keepalive tolerance factor (MQTT-3.1.2-24: 1.5).
    pub keepalive_multiplier: f64,
    /// MQTT 5 server keep alive that overrides the client's (None = client's value).
    pub server_keepalive: Option<u16>,
    /// Cap on a client's keep alive (seconds): a client asking for more, or for 0, is held to
    /// it; `server_keepalive` wins for MQTT 5 clients. None = no cap.
    pub max_keepalive: Option<u16>,
    /// Time a new connection has to send CONNECT.
    pub idle_timeout: Duration,
    /// Incoming QoS 2 messages awaiting PUBREL (MQTT 5 receive maximum we announce).
    pub max_awaiting_rel: usize,
    /// Outgoing window.
    pub max_inflight: u16,
    /// Resend unacked messages on a live MQTT 3.x connection (None = only on resume).
    pub retry_interval: Option<Duration>,
    /// Authentication and ACL, shared by every listener.
    pub security: Security,
    /// Whether this listener authenticates (`listeners.*.enable_authn`); false lets every
    /// client in as a non-superuser (the ACL still applies).
    pub enable_authn: bool,
    /// Most PUBLISH packets per second from one client (bursts of one second's worth);
    /// 0 = unlimited. Above it the client is disconnected (MQTT 5 reason 0x96).
    pub max_publish_rate: u32,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            max_packet_size: 1024 * 1024,
            max_clientid_len: 65535,
            max_topic_levels: 128,
            max_qos_allowed: QoS::ExactlyOnce,
            max_topic_alias: 65535,
            retain_available: true,
            wildcard_subscription: true,
            shared_subscription: true,
            session_expiry_interval: Duration::from_secs(7200),
            keepalive_multiplier: 1.5,
            server_keepalive: None,
            max_keepalive: None,
            idle_timeout: Duration::from_secs(15),
            max_awaiting_rel: 100,
            max_inflight: 32,
            retry_interval: None,
            security: Security::default(),
            enable_authn: true,
            max_publish_rate: 0,
        }
    }
}
