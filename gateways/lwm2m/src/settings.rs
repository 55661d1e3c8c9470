//! The LwM2M gateway's settings, filled in by the binary from `[gateway.lwm2m]`.

use std::time::Duration;
use switchyard_coap_transport::TransportConfig;
use switchyard_core::{render_topic, QoS, TemplateError, TemplateVars};

/// One translator: a topic below the mountpoint and the QoS of what is published there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translator {
    /// Topic (or filter, for `command`) appended to the mountpoint as a plain string.
    pub topic: String,
    /// QoS.
    pub qos: QoS,
}

impl Translator {
    /// A translator.
    pub fn new(topic: &str, qos: QoS) -> Self {
        Translator {
            topic: topic.into(),
            qos,
        }
    }
}

/// When an Update publishes the update event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateCondition {
    /// Every Update.
    Always,
    /// Only an Update that carries an object list.
    ContainsObjectList,
}

/// Protocol switches and limits of the LwM2M gateway.
#[derive(Debug, Clone)]
pub struct Lwm2mSettings {
    /// RFC 7252 transmission parameters.
    pub transport: TransportConfig,
    /// A shorter `lt` is raised to this.
    pub lifetime_min: Duration,
    /// A longer `lt` is capped to this; `lt=0` means it.
    pub lifetime_max: Duration,
    /// Queue mode: commands are held once the device was silent this long (docs/lwm2m.md
    /// §4.9).
    pub qmode_time_window: Duration,
    /// Observe every listed object at Register (docs/lwm2m.md §4.10).
    pub auto_observe: bool,
    /// When the update event is published.
    pub update_msg_publish_condition: UpdateCondition,
    /// Topic prefix (`${endpoint_name}`, `${clientid}`, `${username}`).
    pub mountpoint: String,
    /// Downlink command filter.
    pub command: Translator,
    /// Command responses and transport events.
    pub response: Translator,
    /// Notifications.
    pub notify: Translator,
    /// Register events.
    pub register: Translator,
    /// Update events.
    pub update: Translator,
    /// Check `imei`/`password` at Register.
    pub enable_authn: bool,
    /// Who may register (the broker's authenticator: `imei` is the username).
    pub security: switchyard_auth::Security,
    /// Commands waiting per device beyond which new ones are refused.
    pub max_queue: usize,
}

impl Default for Lwm2mSettings {
    fn default() -> Self {
        Lwm2mSettings {
            transport: TransportConfig::default(),
            lifetime_min: Duration::from_secs(15),
            lifetime_max: Duration::from_secs(86_400),
            qmode_time_window: Duration::from_secs(22),
            auto_observe: false,
            update_msg_publish_condition: UpdateCondition::Always,
            mountpoint: "lwm2m/${endpoint_name}/".into(),
            command: Translator::new("dn/#", QoS::AtMostOnce),
            response: Translator::new("up/resp", QoS::AtMostOnce),
            notify: Translator::new("up/notify", QoS::AtMostOnce),
            register: Translator::new("up/resp", QoS::AtMostOnce),
            update: Translator::new("up/resp", QoS::AtMostOnce),
            enable_authn: false,
            security: switchyard_auth::Security::default(),
            max_queue: 1000,
        }
    }
}

impl Lwm2mSettings {
    /// The lifetime in force for a requested `lt` (seconds): 0 means `lifetime_max`, then
    /// clamped to [`lifetime_min`, `lifetime_max`] (EMQX enforces neither bound;
    /// docs/lwm2m.md §4.13.10).
    pub fn lifetime(&self, lt: u64) -> Duration {
        if lt == 0 {
            return self.lifetime_max;
        }
        Duration::from_secs(lt)
            .max(self.lifetime_min)
            .min(self.lifetime_max.max(self.lifetime_min))
    }
}

/// The device's topic prefix: `${endpoint_name}`, `${clientid}` and `${username}` rendered by
/// the shared topic template, which refuses values that would escape the prefix.
pub fn render(
    template: &str,
    endpoint: &str,
    client_id: &str,
    username: Option<&str>,
) -> Result<String, TemplateError> {
    let vars = TemplateVars {
        clientid: Some(client_id),
        username,
        endpoint_name: Some(endpoint),
    };
    render_topic(template, &vars)
}
