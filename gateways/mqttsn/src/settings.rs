//! The MQTT-SN gateway's settings, filled in by the binary from `[gateway.mqttsn]`.

use crate::registry::Predefined;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard_auth::Security;

/// Protocol switches and limits of the MQTT-SN gateway.
#[derive(Debug, Clone)]
pub struct MqttSnSettings {
    /// Put in GWINFO and ADVERTISE.
    pub gateway_id: u8,
    /// Send ADVERTISE to this address every `broadcast_interval` (None = broadcast off).
    pub broadcast: Option<SocketAddr>,
    /// Interval between ADVERTISEs, also their Duration field (in seconds).
    pub broadcast_interval: Duration,
    /// Accept QoS −1 PUBLISH (flags `11`).
    pub enable_qos3: bool,
    /// On a resumed session, REGISTER every non-wildcard subscribed topic before replaying.
    pub subs_resume: bool,
    /// Predefined topic ids (1..1024), shared by every client.
    pub predefined: Arc<Predefined>,
    /// Topic prefix for publish and subscribe, stripped on delivery (`${clientid}` and
    /// `${username}` are replaced).
    pub mountpoint: String,
    /// Resend an unacknowledged PUBLISH, PUBREL or REGISTER after this long.
    pub retry_interval: Duration,
    /// Resends of one message before the client is disconnected.
    pub max_retries: u32,
    /// Time a client has to finish the CONNECT handshake.
    pub idle_timeout: Duration,
    /// How long a CleanSession=0 session outlives its client (EMQX: 2 h).
    pub session_expiry_interval: Duration,
    /// Keepalive (and sleep) tolerance factor: 1.5 as in MQTT.
    pub keepalive_multiplier: f64,
    /// 0 = unlimited.
    pub max_topic_levels: usize,
    /// Authenticate at CONNECT (`enable_authn`) with the `clientinfo_override` credentials;
    /// CONNACK 0x80 on failure (docs/mqtt-sn.md §2.4, §2.6).
    pub enable_authn: bool,
    /// Username template (`clientinfo_override.username`), e.g. `${clientid}`.
    pub username: Option<String>,
    /// Password template (`clientinfo_override.password`), for the authenticator.
    pub password: Option<String>,
    /// Authentication and ACL, shared with every gateway (the ACL applies whether or not
    /// `enable_authn` is set).
    pub security: Security,
}

impl Default for MqttSnSettings {
    fn default() -> Self {
        MqttSnSettings {
            gateway_id: 1,
            broadcast: None,
            broadcast_interval: Duration::from_secs(15 * 60),
            enable_qos3: true,
            subs_resume: false,
            predefined: Arc::new(Predefined::default()),
            mountpoint: String::new(),
            retry_interval: Duration::from_secs(10),
            max_retries: 4,
            idle_timeout: Duration::from_secs(30),
            session_expiry_interval: Duration::from_secs(2 * 3600),
            keepalive_multiplier: 1.5,
            max_topic_levels: 128,
            enable_authn: false,
            username: None,
            password: None,
            security: Security::default(),
        }
    }
}

/// Replaces `${clientid}` and `${username}` in a template; unknown placeholders stay as they
/// are (docs/gateways.md §1.4).
pub(crate) fn render(template: &str, client_id: &str, username: Option<&str>) -> String {
    let out = template.replace("${clientid}", client_id);
    match username {
        Some(u) => out.replace("${username}", u),
        None => out,
    }
}
