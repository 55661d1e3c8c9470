//! The `republish` action: publish a rule's output on the local bus (spec §2.3).
//!
//! Owns: turning the action's templates into a `Message`. A missing variable renders as
//! `undefined`; a topic that is not a valid topic name, or a QoS outside 0..2, fails the action
//! (counted on the rule as `actions.failed`).

use crate::template::Template;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_core::{Message, Properties, QoS, TopicName};
use thiserror::Error;

/// Why a republish was not made.
#[derive(Debug, Error)]
pub enum RepublishError {
    /// The rendered topic is not a valid topic name.
    #[error("bad topic {0:?}")]
    Topic(String),
    /// The QoS did not render to 0, 1 or 2.
    #[error("bad qos {0}")]
    Qos(String),
}

/// The action's templates.
pub struct Parts<'a> {
    /// Topic template.
    pub topic: &'a Template,
    /// QoS: a number or a template.
    pub qos: &'a Typed,
    /// Retain: a bool or a template.
    pub retain: &'a Typed,
    /// Payload template.
    pub payload: &'a Template,
    /// `mqtt_properties` by EMQX name.
    pub properties: &'a [(String, Template)],
    /// `user_properties` template (must render to a map or a list of pairs).
    pub user_properties: Option<&'a Template>,
}

/// A value given as itself (`1`, `true`) or as a template (`"${qos}"`), parsed once.
#[derive(Debug, Clone)]
pub enum Typed {
    /// A literal.
    Lit(Value),
    /// A template, rendered per message.
    Tpl(Template),
}

impl Typed {
    /// From the action's JSON argument.
    pub fn new(v: &Value) -> Typed {
        match v {
            Value::String(s) => Typed::Tpl(Template::parse(s)),
            other => Typed::Lit(other.clone()),
        }
    }
}

fn typed(v: &Typed, out: &Value) -> Value {
    match v {
        Typed::Tpl(t) => t.value(out).unwrap_or(Value::Null),
        Typed::Lit(v) => v.clone(),
    }
}

/// Publishes `out` as `p` says. Runs in the caller's task.
pub fn publish(
    bus: &BusHandle,
    rule: &str,
    p: Parts<'_>,
    out: &Value,
) -> Result<(), RepublishError> {
    let (topic, missing_in_topic) = p.topic.render(out, "undefined");
    let topic_name =
        TopicName::new(topic.as_str()).map_err(|_| RepublishError::Topic(topic.clone()))?;
    let qos = match typed(p.qos, out) {
        // An event without a QoS (a client event) republishes at QoS 0.
        Value::Null => QoS::AtMostOnce,
        v => {
            let n = match &v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            n.and_then(|n| u8::try_from(n).ok())
                .and_then(|n| QoS::try_from(n).ok())
                .ok_or_else(|| RepublishError::Qos(v.to_string()))?
        }
    };
    let retain = match typed(p.retain, out) {
        Value::Bool(b) => b,
        Value::String(s) => s == "true",
        Value::Number(n) => n.as_u64() == Some(1),
        _ => false,
    };
    let (payload, missing_in_payload) = p.payload.render(out, "undefined");
    let missing = missing_in_topic + missing_in_payload;
    if missing > 0 {
        // EMQX renders a missing variable as "undefined"; say so, a typo is the usual cause.
        tracing::debug!(rule, topic = %topic, missing, "republish: template variables missing");
    }
    let mut msg = Message::new(topic_name, Bytes::from(payload), qos, retain);
    let mut props = Properties::default();
    for (k, t) in p.properties {
        let (v, _) = t.render(out, "undefined");
        match k.as_str() {
            "Payload-Format-Indicator" => props.payload_format_indicator = v.parse().ok(),
            "Message-Expiry-Interval" => props.message_expiry_interval = v.parse().ok(),
            "Content-Type" => props.content_type = Some(v.into()),
            "Response-Topic" => props.response_topic = Some(v.into()),
            "Correlation-Data" => props.correlation_data = Some(Bytes::from(v)),
            _ => {}
        }
    }
    if let Some(t) = p.user_properties {
        let v = t.value(out).unwrap_or(Value::Null);
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    props
                        .user_properties
                        .push((k.into(), crate::funcs::to_text(&v).into()));
                }
            }
            Value::Array(pairs) => {
                for pair in pairs {
                    if let (Some(k), Some(v)) = (pair.get(0), pair.get(1)) {
                        props.user_properties.push((
                            crate::funcs::to_text(k).into(),
                            crate::funcs::to_text(v).into(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    if !props.is_empty() {
        msg.properties = Some(Arc::new(props));
    }
    tracing::debug!(rule, topic = %topic, qos = qos.as_u8(), retain, "rule republish");
    bus.publish(msg);
    Ok(())
}
