//! Translation of the loaded config into each component's own settings type, so that neither
//! the bus nor a gateway depends on how configuration is loaded; and, for the gateway table
//! (`gateways.rs`), one function per gateway that builds it from the config.

use std::sync::Arc;
use switchyard_auth::Security;
use switchyard_bus::{BusConfig, SharedStrategy};
use switchyard_coap_transport::demux::UdpDemux;
use switchyard_config::{Config, SharedSubscriptionStrategy};
use switchyard_core::QoS;
use switchyard_mqtt::{MqttGateway, MqttSettings};
use switchyard_net::{Gateway, ListenerLimits};

use crate::gateways::BuildContext;

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
        retain_limits: switchyard_bus::RetainLimits {
            max_messages: usize::try_from(c.retainer.max_retained_messages).unwrap_or(usize::MAX),
            max_payload: usize::try_from(c.retainer.max_payload_size.0).unwrap_or(usize::MAX),
            expiry: c.retainer.msg_expiry_interval.map(|d| d.as_std()),
        },
        retain_clear_interval: c.retainer.msg_clear_interval.as_std(),
        delayed_enable: c.delayed.enable,
        delayed_max: c.delayed.max_delayed_messages,
        auto_subscribe: c
            .auto_subscribe
            .topics
            .iter()
            .map(auto_subscription)
            .collect(),
    }
}

/// One `auto_subscribe.topics` entry as the bus takes it (validation bounded the numbers).
pub fn auto_subscription(
    t: &switchyard_config::AutoSubscribeTopic,
) -> switchyard_bus::AutoSubscription {
    use switchyard_bus::{RetainHandling, SubOptions};
    switchyard_bus::AutoSubscription {
        topic: t.topic.clone(),
        opts: SubOptions {
            qos: switchyard_core::QoS::try_from(t.qos.min(2))
                .unwrap_or(switchyard_core::QoS::AtMostOnce),
            no_local: t.nl == 1,
            retain_as_published: t.rap == 1,
            retain_handling: match t.rh {
                1 => RetainHandling::OnNewSubscribe,
                2 => RetainHandling::Never,
                _ => RetainHandling::OnSubscribe,
            },
            subscription_id: None,
        },
    }
}

/// Authentication (the built-in users in the API-state store, seeded from the bootstrap file)
/// and authorization (the rules of `authorization.file`), shared by every gateway. A bad
/// bootstrap or rules file is a start-up error naming the file.
pub fn security(c: &Config, state: switchyard_state::SharedState) -> anyhow::Result<Security> {
    use switchyard_auth as auth;
    let a = &c.authentication;
    let path = |p: &std::path::Path| (!p.as_os_str().is_empty()).then(|| p.to_path_buf());
    let authn = auth::Authenticator::open(
        auth::AuthnSettings {
            allow_anonymous: a.allow_anonymous,
            user_id_type: match a.user_id_type {
                switchyard_config::UserIdType::Username => auth::UserIdType::Username,
                switchyard_config::UserIdType::Clientid => auth::UserIdType::Clientid,
            },
            algorithm: match a.password_hash_algorithm {
                switchyard_config::PasswordHashAlgorithm::Argon2 => auth::HashAlgorithm::Argon2,
                switchyard_config::PasswordHashAlgorithm::Pbkdf2Sha256 => {
                    auth::HashAlgorithm::Pbkdf2Sha256
                }
            },
            data_dir: Some(c.node.data_dir.clone()),
            bootstrap_file: path(&a.bootstrap_file),
            bootstrap_type: match a.bootstrap_type {
                switchyard_config::BootstrapType::Plain => auth::BootstrapType::Plain,
                switchyard_config::BootstrapType::Hash => auth::BootstrapType::Hash,
            },
        },
        state.clone(),
    )
    .map_err(|e| anyhow::anyhow!("authentication: {e}"))?;
    let z = &c.authorization;
    let sources = z
        .sources
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("authorization.sources: {e}"))?;
    // Sources changed through the REST API live in the API-state store and take precedence.
    let authz = auth::Authorizer::open(
        path(&z.file).as_deref(),
        sources,
        auth::AuthzSettings {
            no_match: match z.no_match {
                switchyard_config::AuthzDecision::Allow => auth::Decision::Allow,
                switchyard_config::AuthzDecision::Deny => auth::Decision::Deny,
            },
            deny_action: match z.deny_action {
                switchyard_config::DenyAction::Ignore => auth::DenyAction::Ignore,
                switchyard_config::DenyAction::Disconnect => auth::DenyAction::Disconnect,
            },
            cache: auth::AclCacheSettings {
                enable: z.cache.enable,
                max_size: z.cache.max_size as usize,
                ttl: z.cache.ttl.as_std(),
            },
        },
        Some(state.clone()),
    )
    .map_err(|e| anyhow::anyhow!("authorization: {e}"))?;
    tracing::info!(
        allow_anonymous = a.allow_anonymous,
        users = authn.list_users().len(),
        acl_rules = authz.rule_count(),
        "security configured"
    );
    let f = &c.flapping_detect;
    let flapping = auth::FlappingSettings {
        enable: f.enable,
        max_count: f.max_count,
        window: f.window_time.as_std(),
        ban_time: f.ban_time.as_std(),
    };
    let chain_state = state.clone();
    let banned =
        auth::Banned::open(state, flapping).map_err(|e| anyhow::anyhow!("banned clients: {e}"))?;
    let rules = c
        .rewrite
        .iter()
        .map(|r| auth::RewriteRule {
            action: match r.action {
                switchyard_config::RewriteAction::Publish => auth::RewriteAction::Publish,
                switchyard_config::RewriteAction::Subscribe => auth::RewriteAction::Subscribe,
                switchyard_config::RewriteAction::All => auth::RewriteAction::All,
            },
            source_topic: r.source_topic.clone(),
            re: r.re.clone(),
            dest_topic: r.dest_topic.clone(),
        })
        .collect();
    let rewrite = auth::Rewriter::new(rules).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Security {
        authn: Arc::new(authn),
        authz: Arc::new(authz),
        banned: Arc::new(banned),
        rewrite: Arc::new(rewrite),
        chain: Arc::new(authn_chain(c, chain_state)?),
    })
}

/// The chain of authenticators: `[[authentication.authenticators]]` (checked here, so a bad
/// table is a start-up error naming it), unless the API-state store holds a chain made through
/// the REST API.
fn authn_chain(
    c: &Config,
    state: switchyard_state::SharedState,
) -> anyhow::Result<switchyard_auth::Chain> {
    let a = &c.authentication;
    let file = a
        .authenticators
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("authentication.authenticators: {e}"))?;
    let cache = switchyard_auth::CacheSettings {
        enable: a.cache.enable,
        max_size: a.cache.max_size as usize,
        ttl: a.cache.ttl.as_std(),
    };
    let chain = switchyard_auth::Chain::open(file, cache, Some(state))
        .map_err(|e| anyhow::anyhow!("authentication: {e}"))?;
    tracing::info!(chain = ?chain, "authentication chain configured");
    Ok(chain)
}

/// The MQTT gateway (`[mqtt]`; each listener's own `enable_authn` applies when it is served).
pub fn mqtt_gateway(ctx: &BuildContext) -> anyhow::Result<Arc<dyn Gateway>> {
    Ok(Arc::new(MqttGateway {
        bus: ctx.bus.clone(),
        settings: Arc::new(mqtt_settings(&ctx.config, &ctx.security)),
    }))
}

/// The MQTT-SN gateway (`[gateway.mqttsn]`).
pub fn mqttsn_gateway(ctx: &BuildContext) -> anyhow::Result<Arc<dyn Gateway>> {
    Ok(Arc::new(switchyard_mqttsn::MqttSnGateway {
        bus: ctx.bus.clone(),
        settings: Arc::new(mqttsn_settings(&ctx.config, &ctx.security)),
    }))
}

/// The CoAP gateway (`[gateway.coap]`) on the CoAP demux, answering the admin API's requests
/// through the runner's shared requester.
pub fn coap_gateway(ctx: &BuildContext) -> anyhow::Result<Arc<dyn Gateway>> {
    Ok(Arc::new(UdpDemux(switchyard_coap::CoapGateway {
        bus: ctx.bus.clone(),
        settings: Arc::new(coap_settings(&ctx.config, &ctx.security)?),
        requests: ctx.coap_requests.clone(),
    })))
}

/// The LwM2M gateway (`[gateway.lwm2m]`) on the CoAP demux, with its object definitions.
pub fn lwm2m_gateway(ctx: &BuildContext) -> anyhow::Result<Arc<dyn Gateway>> {
    Ok(Arc::new(UdpDemux(switchyard_lwm2m::Lwm2mGateway {
        bus: ctx.bus.clone(),
        settings: Arc::new(lwm2m_settings(&ctx.config, &ctx.security)?),
        objects: Arc::new(crate::startup::lwm2m_objects(&ctx.config.gateway.lwm2m)?),
    })))
}

/// The MQTT gateway's settings.
pub fn mqtt_settings(c: &Config, security: &Security) -> MqttSettings {
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
        max_keepalive: m
            .max_keepalive
            .map(|d| u16::try_from(d.as_secs()).unwrap_or(u16::MAX)),
        idle_timeout: m.idle_timeout.as_std(),
        max_awaiting_rel: m.max_awaiting_rel as usize,
        max_inflight: m.max_inflight,
        retry_interval: m.retry_interval.map(|d| d.as_std()),
        security: security.clone(),
        enable_authn: true,
        max_publish_rate: m.max_publish_rate,
    }
}

/// Admission limits of any listener, stream or datagram.
pub fn limits(l: &switchyard_config::ListenerView) -> ListenerLimits {
    ListenerLimits {
        max_connections: usize::try_from(l.max_connections).unwrap_or(usize::MAX),
        max_conn_rate: l.max_conn_rate,
        max_conn_burst: l.max_conn_burst,
    }
}

/// The MQTT-SN gateway's settings (`[gateway.mqttsn]`; session expiry and keepalive factor
/// come from `[mqtt]`, as EMQX's gateways take them from the zone).
pub fn mqttsn_settings(c: &Config, security: &Security) -> switchyard_mqttsn::MqttSnSettings {
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
        enable_authn: g.enable_authn,
        username: template(&g.clientinfo_override.username),
        password: template(&g.clientinfo_override.password),
        security: security.clone(),
    }
}

/// The CoAP gateway's settings (`[gateway.coap]`), checked: values the schema cannot
/// constrain are start-up errors here.
pub fn coap_settings(
    c: &Config,
    security: &Security,
) -> anyhow::Result<switchyard_coap::CoapSettings> {
    use switchyard_coap::{NotifyType, QosMode};
    use switchyard_config::{CoapNotifyType, CoapQosMode};
    let g = &c.gateway.coap;
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
        transport: switchyard_coap_transport::TransportConfig {
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
        security: security.clone(),
        max_topic_levels: usize::from(c.mqtt.max_topic_levels),
    })
}

/// The LwM2M gateway's settings (`[gateway.lwm2m]`), checked: values the schema cannot
/// constrain are start-up errors here.
pub fn lwm2m_settings(
    c: &Config,
    security: &Security,
) -> anyhow::Result<switchyard_lwm2m::Lwm2mSettings> {
    use switchyard_config::{Lwm2mUpdateCondition, TranslatorConfig};
    use switchyard_lwm2m::{Translator, UpdateCondition};
    let g = &c.gateway.lwm2m;
    if !(g.ack_random_factor.is_finite() && g.ack_random_factor >= 1.0) {
        anyhow::bail!("gateway.lwm2m.ack_random_factor: must be a number >= 1.0");
    }
    if g.max_retransmit > 10 {
        anyhow::bail!("gateway.lwm2m.max_retransmit: must be 0..=10");
    }
    if g.ack_timeout.is_zero() {
        anyhow::bail!("gateway.lwm2m.ack_timeout: must be above zero");
    }
    if g.lifetime_min.as_std() > g.lifetime_max.as_std() {
        anyhow::bail!("gateway.lwm2m.lifetime_min: must not exceed lifetime_max");
    }
    let t = |name: &str, t: &TranslatorConfig| -> anyhow::Result<Translator> {
        let qos = QoS::try_from(t.qos).map_err(|_| {
            anyhow::anyhow!("gateway.lwm2m.translators.{name}.qos: must be 0, 1 or 2")
        })?;
        if t.topic.is_empty() {
            anyhow::bail!("gateway.lwm2m.translators.{name}.topic: must not be empty");
        }
        Ok(Translator::new(&t.topic, qos))
    };
    let tr = &g.translators;
    Ok(switchyard_lwm2m::Lwm2mSettings {
        transport: switchyard_coap_transport::TransportConfig {
            ack_timeout: g.ack_timeout.as_std(),
            ack_random_factor: g.ack_random_factor,
            max_retransmit: g.max_retransmit,
            ..Default::default()
        },
        lifetime_min: g.lifetime_min.as_std(),
        lifetime_max: g.lifetime_max.as_std(),
        qmode_time_window: g.qmode_time_window.as_std(),
        auto_observe: g.auto_observe,
        update_msg_publish_condition: match g.update_msg_publish_condition {
            Lwm2mUpdateCondition::Always => UpdateCondition::Always,
            Lwm2mUpdateCondition::ContainsObjectList => UpdateCondition::ContainsObjectList,
        },
        mountpoint: g.mountpoint.clone(),
        command: t("command", &tr.command)?,
        response: t("response", &tr.response)?,
        notify: t("notify", &tr.notify)?,
        register: t("register", &tr.register)?,
        update: t("update", &tr.update)?,
        enable_authn: g.enable_authn,
        security: security.clone(),
        max_queue: c.mqtt.max_mqueue_len.max(1) as usize,
    })
}
