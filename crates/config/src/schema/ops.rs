//! The operations features' tables: `[flapping_detect]`, `[retainer]`, `[delayed]`,
//! `[auto_subscribe]`, `[[rewrite]]` and `[prometheus]` (EMQX's names and defaults).

use serde::{Deserialize, Serialize};

use crate::units::{self, ByteSize, Duration};

/// `[flapping_detect]`: ban a client id that connects too often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlappingDetectConfig {
    /// Count connects per client id. Default false.
    pub enable: bool,
    /// More connects than this within `window_time` bans the client id. Default 15.
    pub max_count: u32,
    /// The counting window. Default 1m.
    pub window_time: Duration,
    /// How long the automatic ban lasts. Default 5m.
    pub ban_time: Duration,
}

impl Default for FlappingDetectConfig {
    fn default() -> Self {
        FlappingDetectConfig {
            enable: false,
            max_count: 15,
            window_time: Duration::from_secs(60),
            ban_time: Duration::from_secs(300),
        }
    }
}

/// `[retainer]`: limits of the retained-message store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetainerConfig {
    /// Most retained topics; a retained publish on a new topic beyond it is routed but not
    /// stored. 0 = unlimited. Default 0.
    pub max_retained_messages: u64,
    /// Largest retained payload stored; a larger one is routed but not stored. Default 1MB.
    pub max_payload_size: ByteSize,
    /// How long a retained message is kept (a message's own MQTT 5 expiry wins when shorter);
    /// "off" = until replaced or cleared. Default off.
    #[serde(with = "units::off")]
    pub msg_expiry_interval: Option<Duration>,
    /// How often expired retained messages are removed. Default 1s.
    pub msg_clear_interval: Duration,
}

impl Default for RetainerConfig {
    fn default() -> Self {
        RetainerConfig {
            max_retained_messages: 0,
            max_payload_size: ByteSize(1024 * 1024),
            msg_expiry_interval: None,
            msg_clear_interval: Duration::from_secs(1),
        }
    }
}

/// `[delayed]`: `$delayed/{seconds}/{topic}` publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DelayedConfig {
    /// Hold `$delayed/` publishes and publish them later. Off: such a publish is dropped with a
    /// log line. Default true.
    pub enable: bool,
    /// Most messages held at once; more are dropped with a log line. 0 = unlimited. Default 0.
    pub max_delayed_messages: u64,
}

impl Default for DelayedConfig {
    fn default() -> Self {
        DelayedConfig {
            enable: true,
            max_delayed_messages: 0,
        }
    }
}

/// `[auto_subscribe]`: subscriptions every client gets at connect, on every protocol.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoSubscribeConfig {
    /// The subscriptions; `topic` may use `${clientid}` and `${username}`. Default [].
    pub topics: Vec<AutoSubscribeTopic>,
}

/// One `auto_subscribe.topics` entry (EMQX's field names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoSubscribeTopic {
    /// Topic filter template.
    pub topic: String,
    /// Maximum QoS. Default 0.
    #[serde(default)]
    pub qos: u8,
    /// Retain handling (0, 1, 2). Default 0.
    #[serde(default)]
    pub rh: u8,
    /// Retain as published (0 or 1). Default 0.
    #[serde(default)]
    pub rap: u8,
    /// No local (0 or 1). Default 0.
    #[serde(default)]
    pub nl: u8,
}

/// What a `[[rewrite]]` rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RewriteAction {
    /// PUBLISH topics.
    Publish,
    /// SUBSCRIBE and UNSUBSCRIBE filters.
    Subscribe,
    /// Both.
    All,
}

/// One `[[rewrite]]` rule: topics matching `source_topic` (a filter) and the regex `re` become
/// `dest_topic`, where `$1`, `$2` … are `re`'s captures. Applied before authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteRule {
    /// publish | subscribe | all.
    pub action: RewriteAction,
    /// The filter a topic must match first.
    pub source_topic: String,
    /// The regular expression, with capture groups.
    pub re: String,
    /// The new topic, with `$N` for captures.
    pub dest_topic: String,
}

/// `[prometheus]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Require the API's credentials on `/api/v5/prometheus/*` (EMQX 5 scrapes without them).
    /// Default false.
    pub enable_basic_auth: bool,
}

impl crate::Config {
    /// Checks the operations tables (called by `Config::validate`).
    pub(crate) fn check_ops(&self, issues: &mut Vec<crate::Issue>) {
        use crate::Issue;
        let f = &self.flapping_detect;
        if f.enable {
            if f.max_count == 0 {
                issues.push(Issue::new(
                    "flapping_detect.max_count",
                    "must be at least 1",
                ));
            }
            for (key, d) in [("window_time", f.window_time), ("ban_time", f.ban_time)] {
                if d.as_std().is_zero() {
                    let key = format!("flapping_detect.{key}");
                    issues.push(Issue::new(key, "must be longer than 0s"));
                }
            }
        }
        if self.retainer.msg_clear_interval.as_std().is_zero() {
            let key = "retainer.msg_clear_interval";
            issues.push(Issue::new(key, "must be longer than 0s"));
        }
        for (i, t) in self.auto_subscribe.topics.iter().enumerate() {
            let key = |k: &str| format!("auto_subscribe.topics[{i}].{k}");
            if t.topic.is_empty() {
                issues.push(Issue::new(key("topic"), "must not be empty"));
            }
            for (k, v, max) in [
                ("qos", t.qos, 2),
                ("rh", t.rh, 2),
                ("rap", t.rap, 1),
                ("nl", t.nl, 1),
            ] {
                if v > max {
                    issues.push(Issue::new(key(k), format!("must be 0 to {max}, got {v}")));
                }
            }
        }
        for (i, r) in self.rewrite.iter().enumerate() {
            if r.source_topic.is_empty() || r.dest_topic.is_empty() {
                let key = format!("rewrite[{i}]");
                issues.push(Issue::new(
                    key,
                    "source_topic and dest_topic must not be empty",
                ));
            }
            if let Err(e) = regex::Regex::new(&r.re) {
                let key = format!("rewrite[{i}].re");
                issues.push(Issue::new(key, format!("not a regular expression: {e}")));
            }
        }
    }
}
