//! `[mqtt]`: protocol limits and session/QoS behaviour shared by every MQTT listener (and
//! reused by the gateways that map onto MQTT sessions). Ranges are checked in `validate`.

use serde::{Deserialize, Serialize};

use crate::units::{self, ByteSize, Duration};

/// `[mqtt]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Largest MQTT packet accepted or sent, whole packet including the fixed header;
    /// 1B..=256MB. Default 1MB.
    pub max_packet_size: ByteSize,
    /// Longest client id accepted, in bytes; 23..=65535 (MQTT-3.1.3-5 requires at least 23).
    /// Default 65535.
    pub max_clientid_len: u16,
    /// Most `/`-separated levels in a topic name or filter; 0 = unlimited. Default 128.
    pub max_topic_levels: u16,
    /// Highest QoS granted or delivered; 0..=2. Default 2.
    pub max_qos_allowed: u8,
    /// MQTT 5 Topic Alias Maximum the broker offers; 0 disables topic aliases. Default 65535.
    pub max_topic_alias: u16,
    /// Whether retained messages are supported. Default true.
    pub retain_available: bool,
    /// Whether subscriptions may use `+` and `#`. Default true.
    pub wildcard_subscription: bool,
    /// Whether `$share/<group>/<filter>` subscriptions are supported. Default true.
    pub shared_subscription: bool,
    /// How a shared subscription group picks the member that gets a message.
    /// Default round_robin.
    pub shared_subscription_strategy: SharedSubscriptionStrategy,
    /// Upper bound on how long a disconnected persistent session is kept; a client's own
    /// (MQTT 5) expiry is capped to this. At most 4294967295s. Default 2h.
    pub session_expiry_interval: Duration,
    /// Most unacknowledged QoS 1/2 messages in flight to one client (the MQTT 5 Receive
    /// Maximum we honour); 1..=65535. Default 32.
    pub max_inflight: u16,
    /// When set, resend unacknowledged QoS 1/2 messages after this long on a live MQTT 3.x
    /// connection (MQTT 5 forbids resending except on reconnect, MQTT-4.4.0-1). `None` (off)
    /// resends only on reconnect. Default off.
    #[serde(with = "units::off")]
    pub retry_interval: Option<Duration>,
    /// Most incoming QoS 2 messages awaiting PUBREL per client; 0 = unlimited. Default 100.
    pub max_awaiting_rel: u32,
    /// How long an incoming QoS 2 message may wait for its PUBREL before it is dropped;
    /// must be non-zero. Default 300s.
    pub await_rel_timeout: Duration,
    /// Most messages queued for one session beyond its in-flight window (offline or slow);
    /// 0 = unlimited. Default 1000.
    pub max_mqueue_len: u32,
    /// Whether QoS 0 messages are queued for offline persistent sessions too. Default true.
    pub mqueue_store_qos0: bool,
    /// A connection is closed after `keepalive × keepalive_multiplier` without a packet
    /// (MQTT-3.1.2-24 says 1.5); must be >= 1.0. Default 1.5.
    pub keepalive_multiplier: f64,
    /// MQTT 5 Server Keep Alive that overrides the client's value; at most 65535s. `None`
    /// (off) accepts the client's keep-alive. Default off.
    #[serde(with = "units::off")]
    pub server_keepalive: Option<Duration>,
    /// Most keep-alive a client may have (Mosquitto's `max_keepalive`); at most 65535s. A
    /// client asking for more, or for 0 (none), is held to this value (MQTT 5 clients are told
    /// in the CONNACK's Server Keep Alive); a client asking for less keeps its own. MQTT 3.x
    /// clients are never refused for their keep-alive, but cannot be told either.
    /// `server_keepalive`, when set, wins for MQTT 5 clients. `None` (off) = no cap.
    /// Default off.
    #[serde(with = "units::off")]
    pub max_keepalive: Option<Duration>,
    /// Time a new connection has to send CONNECT before it is closed; must be non-zero.
    /// Default 15s.
    pub idle_timeout: Duration,
    /// Most subscriptions per client; 0 = unlimited. Default 0.
    pub max_subscriptions: u32,
    /// Deliver at the subscription's QoS even when the message was published at a lower one.
    /// Default false.
    pub upgrade_qos: bool,
    /// Most PUBLISH packets one client may send per second, averaged, with bursts of up to one
    /// second's worth; a client above it is disconnected (MQTT 5 reason 0x96, Message rate too
    /// high). 0 = unlimited. Default 0.
    pub max_publish_rate: u32,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            max_packet_size: ByteSize(ByteSize::MB),
            max_clientid_len: 65535,
            max_topic_levels: 128,
            max_qos_allowed: 2,
            max_topic_alias: 65535,
            retain_available: true,
            wildcard_subscription: true,
            shared_subscription: true,
            shared_subscription_strategy: SharedSubscriptionStrategy::RoundRobin,
            session_expiry_interval: Duration::from_secs(2 * 3600),
            max_inflight: 32,
            retry_interval: None,
            max_awaiting_rel: 100,
            await_rel_timeout: Duration::from_secs(300),
            max_mqueue_len: 1000,
            mqueue_store_qos0: true,
            keepalive_multiplier: 1.5,
            server_keepalive: None,
            max_keepalive: None,
            idle_timeout: Duration::from_secs(15),
            max_subscriptions: 0,
            upgrade_qos: false,
            max_publish_rate: 0,
        }
    }
}

/// `mqtt.shared_subscription_strategy`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedSubscriptionStrategy {
    /// Members take turns.
    #[default]
    RoundRobin,
    /// A uniformly random member.
    Random,
    /// The same member until it leaves the group.
    Sticky,
    /// A member chosen by hashing the publisher's client id, so one publisher's messages stay
    /// ordered on one member.
    HashClientid,
}
