//! Translation of the loaded config into each component's own settings type, so that neither
//! the bus nor a gateway depends on how configuration is loaded.

use switchyard_bus::{BusConfig, SharedStrategy};
use switchyard_config::{Config, SharedSubscriptionStrategy};
use switchyard_core::QoS;
use switchyard_mqtt::{ListenerLimits, MqttSettings};

/// The bus's settings.
pub fn bus_config(c: &Config) -> BusConfig {
    let m = &c.mqtt;
    BusConfig {
        node_name: c.node.name.clone(),
        max_topic_levels: usize::from(m.max_topic_levels),
        retain_available: m.retain_available,
        shared_strategy: match m.shared_subscription_strategy {
            SharedSubscriptionStrategy::RoundRobin => SharedStrategy::RoundRobin,
            SharedSubscriptionStrategy::Random => SharedStrategy::Random,
            SharedSubscriptionStrategy::Sticky => SharedStrategy::Sticky,
            SharedSubscriptionStrategy::HashClientid => SharedStrategy::HashClientId,
        },
        upgrade_qos: m.upgrade_qos,
        session_expiry_interval: m.session_expiry_interval.as_std(),
        max_inflight: m.max_inflight,
        retry_interval: m.retry_interval.map(|d| d.as_std()),
        max_awaiting_rel: m.max_awaiting_rel as usize,
        await_rel_timeout: m.await_rel_timeout.as_std(),
        max_mqueue_len: m.max_mqueue_len as usize,
        mqueue_store_qos0: m.mqueue_store_qos0,
        max_subscriptions: m.max_subscriptions as usize,
        sys_msg_interval: c.sys_topics.sys_msg_interval.map(|d| d.as_std()),
        sys_heartbeat_interval: c.sys_topics.sys_heartbeat_interval.map(|d| d.as_std()),
        sys_client_connected: c.sys_topics.client_connected,
        sys_client_disconnected: c.sys_topics.client_disconnected,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// The MQTT gateway's settings.
pub fn mqtt_settings(c: &Config) -> MqttSettings {
    let m = &c.mqtt;
    MqttSettings {
        max_packet_size: m.max_packet_size.as_usize(),
        max_clientid_len: usize::from(m.max_clientid_len),
        max_topic_levels: usize::from(m.max_topic_levels),
        max_qos_allowed: QoS::try_from(m.max_qos_allowed.min(2)).unwrap_or(QoS::ExactlyOnce),
        max_topic_alias: m.max_topic_alias,
        retain_available: m.retain_available,
        wildcard_subscription: m.wildcard_subscription,
        shared_subscription: m.shared_subscription,
        session_expiry_interval: m.session_expiry_interval.as_std(),
        keepalive_multiplier: m.keepalive_multiplier,
        server_keepalive: m
            .server_keepalive
            .map(|d| u16::try_from(d.as_secs()).unwrap_or(u16::MAX)),
        idle_timeout: m.idle_timeout.as_std(),
        max_awaiting_rel: m.max_awaiting_rel as usize,
        max_inflight: m.max_inflight,
        retry_interval: m.retry_interval.map(|d| d.as_std()),
    }
}

/// Limits of one TCP-side listener.
pub fn limits(max_connections: u32, max_conn_rate: u32) -> ListenerLimits {
    ListenerLimits {
        max_connections: max_connections as usize,
        max_conn_rate,
    }
}
