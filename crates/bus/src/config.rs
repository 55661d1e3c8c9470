//! The engine's settings, filled in by the binary from `switchyard-config` so that the bus does
//! not depend on how configuration is loaded.

use std::time::Duration;

/// How one member of a shared-subscription group is picked for each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SharedStrategy {
    /// Cycle through the members.
    #[default]
    RoundRobin,
    /// Pick a member at random.
    Random,
    /// Keep sending to one member while it stays subscribed.
    Sticky,
    /// Hash the publisher's client id, so one publisher always lands on the same member.
    HashClientId,
}

/// Settings of the routing and QoS engine.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Node name used in `$SYS/brokers/{node}/…`.
    pub node_name: String,
    /// 0 = unlimited.
    pub max_topic_levels: usize,
    /// Whether retained messages are stored.
    pub retain_available: bool,
    /// Shared-subscription member selection.
    pub shared_strategy: SharedStrategy,
    /// Deliver at the subscription's QoS even when the message was published lower (EMQX
    /// `upgrade_qos`).
    pub upgrade_qos: bool,
    /// Session expiry for persistent sessions of protocols that have no expiry of their own.
    pub session_expiry_interval: Duration,
    /// Outgoing QoS 1/2 window per session.
    pub max_inflight: u16,
    /// Resend unacked messages on a live connection after this long (None = only on resume).
    pub retry_interval: Option<Duration>,
    /// Incoming QoS 2 messages awaiting PUBREL per session (0 = unlimited).
    pub max_awaiting_rel: usize,
    /// How long an incoming QoS 2 packet id waits for PUBREL.
    pub await_rel_timeout: Duration,
    /// Queue length per session (0 = unlimited).
    pub max_mqueue_len: usize,
    /// Whether QoS 0 messages are queued for offline sessions.
    pub mqueue_store_qos0: bool,
    /// Subscriptions per session (0 = unlimited).
    pub max_subscriptions: usize,
    /// Interval of the `$SYS` stats messages (None = off).
    pub sys_msg_interval: Option<Duration>,
    /// Interval of the `$SYS` uptime heartbeat (None = off).
    pub sys_heartbeat_interval: Option<Duration>,
    /// Publish `$SYS/brokers/{node}/clients/{id}/connected`.
    pub sys_client_connected: bool,
    /// Publish `$SYS/brokers/{node}/clients/{id}/disconnected`.
    pub sys_client_disconnected: bool,
    /// Version string published on `$SYS/brokers/{node}/version`.
    pub version: String,
    /// `[retainer]` limits of the retained-message store.
    pub retain_limits: crate::retain::RetainLimits,
    /// How often expired retained messages are removed.
    pub retain_clear_interval: Duration,
    /// `delayed.enable`: hold `$delayed/` publishes.
    pub delayed_enable: bool,
    /// `delayed.max_delayed_messages` (0 = unlimited).
    pub delayed_max: u64,
    /// `[auto_subscribe]`: subscriptions every client gets when its session opens.
    pub auto_subscribe: Vec<crate::autosub::AutoSubscription>,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            node_name: "switchyard@127.0.0.1".into(),
            max_topic_levels: 128,
            retain_available: true,
            shared_strategy: SharedStrategy::RoundRobin,
            upgrade_qos: false,
            session_expiry_interval: Duration::from_secs(2 * 3600),
            max_inflight: 32,
            retry_interval: None,
            max_awaiting_rel: 100,
            await_rel_timeout: Duration::from_secs(300),
            max_mqueue_len: 1000,
            mqueue_store_qos0: true,
            max_subscriptions: 0,
            sys_msg_interval: Some(Duration::from_secs(60)),
            sys_heartbeat_interval: Some(Duration::from_secs(30)),
            sys_client_connected: true,
            sys_client_disconnected: true,
            version: env!("CARGO_PKG_VERSION").into(),
            retain_limits: crate::retain::RetainLimits::default(),
            retain_clear_interval: Duration::from_secs(1),
            delayed_enable: true,
            delayed_max: 0,
            auto_subscribe: Vec::new(),
        }
    }
}
