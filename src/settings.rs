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

/// The MQTT-SN gateway's settings (`[gateway.mqttsn]`; session expiry and keepalive factor
/// come from `[mqtt]`, as EMQX's gateways take them from the zone).
pub fn mqttsn_settings(c: &Config) -> switchyard_mqttsn::MqttSnSettings {
    let g = &c.gateway.mqttsn;
    let template = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    switchyard_mqttsn::MqttSnSettings {
        gateway_id: g.gateway_id,
        broadcast: g.broadcast.then_some(g.broadcast_address),
        broadcast_interval: g.broadcast_interval.as_std(),
        enable_qos3: g.enable_qos3,
        subs_resume: g.subs_resume,
        predefined: std::sync::Arc::new(switchyard_mqttsn::Predefined::new(
            g.predefined.iter().map(|p| (p.id, p.topic.clone())),
        )),
        mountpoint: g.mountpoint.clone(),
        retry_interval: g.retry_interval.as_std(),
        max_retries: g.max_retries,
        idle_timeout: g.idle_timeout.as_std(),
        session_expiry_interval: c.mqtt.session_expiry_interval.as_std(),
        keepalive_multiplier: c.mqtt.keepalive_multiplier,
        max_topic_levels: usize::from(c.mqtt.max_topic_levels),
        reject_anonymous: g.enable_authn && !c.authentication.allow_anonymous,
        username: template(&g.clientinfo_override.username),
        password: template(&g.clientinfo_override.password),
    }
}

/// Limits of one UDP gateway listener.
pub fn udp_limits(max_connections: u32, max_conn_rate: u32) -> switchyard_mqttsn::ListenerLimits {
    switchyard_mqttsn::ListenerLimits {
        max_connections: max_connections as usize,
        max_conn_rate,
    }
}

/// The CoAP gateway's settings (`[gateway.coap]`), checked: values the schema cannot
/// constrain are start-up errors here.
pub fn coap_settings(c: &Config) -> anyhow::Result<switchyard_coap::CoapSettings> {
    use switchyard_coap::{NotifyType, QosMode};
    use switchyard_config::{CoapNotifyType, CoapQosMode};
    let g = &c.gateway.coap;
    let udp = &g.listeners.udp.default;
    if !(g.ack_random_factor.is_finite() && g.ack_random_factor >= 1.0) {
        anyhow::bail!("gateway.coap.ack_random_factor: must be a number >= 1.0");
    }
    if g.max_retransmit > 10 {
        anyhow::bail!("gateway.coap.max_retransmit: must be 0..=10");
    }
    if g.ack_timeout.is_zero() {
        anyhow::bail!("gateway.coap.ack_timeout: must be above zero");
    }
    if g.heartbeat.is_zero() {
        anyhow::bail!("gateway.coap.heartbeat: must be above zero");
    }
    if !(16..=1024).contains(&g.max_block_size) || !g.max_block_size.is_power_of_two() {
        anyhow::bail!("gateway.coap.max_block_size: must be 16, 32, 64, 128, 256, 512 or 1024");
    }
    let qos_mode = |m: CoapQosMode| match m {
        CoapQosMode::Coap => QosMode::Coap,
        CoapQosMode::Qos0 => QosMode::Fixed(QoS::AtMostOnce),
        CoapQosMode::Qos1 => QosMode::Fixed(QoS::AtLeastOnce),
        CoapQosMode::Qos2 => QosMode::Fixed(QoS::ExactlyOnce),
    };
    Ok(switchyard_coap::CoapSettings {
        transport: switchyard_coap::transport::TransportConfig {
            ack_timeout: g.ack_timeout.as_std(),
            ack_random_factor: g.ack_random_factor,
            max_retransmit: g.max_retransmit,
            max_block_size: g.max_block_size as usize,
            max_body_size: g.max_body_size.as_usize(),
        },
        connection_required: g.connection_required,
        heartbeat: g.heartbeat.as_std(),
        notify_type: match g.notify_type {
            CoapNotifyType::Qos => NotifyType::Qos,
            CoapNotifyType::Non => NotifyType::Non,
            CoapNotifyType::Con => NotifyType::Con,
        },
        publish_qos: qos_mode(g.publish_qos),
        subscribe_qos: qos_mode(g.subscribe_qos),
        mountpoint: g.mountpoint.clone(),
        enable_authn: g.enable_authn,
        reject_anonymous: g.enable_authn && !c.authentication.allow_anonymous,
        max_topic_levels: usize::from(c.mqtt.max_topic_levels),
        max_connections: udp.max_connections as usize,
        max_conn_rate: udp.max_conn_rate,
    })
}
