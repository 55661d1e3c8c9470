//! The CoAP gateway's settings, filled in by the binary from `[gateway.coap]`.

use crate::transport::TransportConfig;
use std::time::Duration;
use switchyard_core::QoS;

/// Message type of notifications (`notify_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyType {
    /// QoS 0 → NON, QoS 1/2 → CON (EMQX 5.8.9 ignores this key and sends NON; docs/coap.md
    /// §3.12.1).
    Qos,
    /// Always NON (still CON at least every 24 h, RFC 7641 §4.5).
    Non,
    /// Always CON.
    Con,
}

/// QoS of a publish or subscription when the request has no `qos` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosMode {
    /// CON → QoS 1, NON → QoS 0.
    Coap,
    /// Always this QoS.
    Fixed(QoS),
}

impl QosMode {
    /// The QoS for a request of the given type.
    pub fn resolve(self, confirmable: bool) -> QoS {
        match self {
            QosMode::Coap if confirmable => QoS::AtLeastOnce,
            QosMode::Coap => QoS::AtMostOnce,
            QosMode::Fixed(q) => q,
        }
    }
}

/// Protocol switches and limits of the CoAP gateway.
#[derive(Debug, Clone)]
pub struct CoapSettings {
    /// RFC 7252/7959 transmission parameters and limits.
    pub transport: TransportConfig,
    /// Connection mode (`/mqtt/connection` then `clientid` + `token` on every request).
    pub connection_required: bool,
    /// Keepalive K: a client silent for 1.5 × K is dropped (but see the README for observers).
    pub heartbeat: Duration,
    /// Notification message type.
    pub notify_type: NotifyType,
    /// QoS of POST publishes without `qos`.
    pub publish_qos: QosMode,
    /// QoS of observations without `qos`.
    pub subscribe_qos: QosMode,
    /// Topic prefix for publish and subscribe (`${clientid}`, `${username}` replaced).
    pub mountpoint: String,
    /// Authenticate clients (connection create, or every connectionless request).
    pub enable_authn: bool,
    /// Authentication and ACL, shared with every gateway (the ACL applies whether or not
    /// `enable_authn` is set).
    pub security: switchyard_auth::Security,
    /// 0 = unlimited.
    pub max_topic_levels: usize,
}

impl Default for CoapSettings {
    fn default() -> Self {
        CoapSettings {
            transport: TransportConfig::default(),
            connection_required: false,
            heartbeat: Duration::from_secs(30),
            notify_type: NotifyType::Qos,
            publish_qos: QosMode::Coap,
            subscribe_qos: QosMode::Coap,
            mountpoint: String::new(),
            enable_authn: false,
            security: switchyard_auth::Security::default(),
            max_topic_levels: 128,
        }
    }
}

/// The client's topic prefix: the mountpoint rendered by the shared topic template, which
/// refuses a client id or username that would escape it (or a placeholder without a value).
pub(crate) fn mount_prefix(
    template: &str,
    client_id: &str,
    username: Option<&str>,
) -> Result<String, switchyard_core::TemplateError> {
    let vars = switchyard_core::TemplateVars {
        clientid: Some(client_id),
        username,
        endpoint_name: None,
    };
    switchyard_core::render_topic(template, &vars)
}
