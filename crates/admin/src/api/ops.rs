//! EMQX v5's operations endpoints beyond clients and messages: delayed publish
//! (`/api/v5/mqtt/delayed`, `/api/v5/mqtt/delayed/messages`), auto-subscribe
//! (`/api/v5/mqtt/auto_subscribe`) and topic rewrite (`/api/v5/mqtt/topic_rewrite`). Changes
//! through these endpoints apply at once to new operations and last until the next restart
//! (the file's `[delayed]`, `[auto_subscribe]` and `rewrite` are the durable settings).

use super::{body, no_content, St};
use crate::error::{ApiError, ApiResult};
use crate::json::{Page, Params};
use crate::time::rfc3339;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};
use switchyard_auth::{RewriteAction, RewriteRule};
use switchyard_bus::{AutoSubscription, DelayedRecord, RetainHandling, SubOptions};
use switchyard_core::QoS;

fn at_ms(ms: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_millis(ms))
}

fn delayed_json(st: &St, r: &DelayedRecord, with_payload: bool) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut v = json!({
        "msgid": format!("{:X}", r.id),
        "node": st.0.node(),
        "publish_at": at_ms(r.received_at_ms),
        "delayed_interval": r.delay_secs,
        "delayed_remaining": r.publish_at_ms.saturating_sub(now) / 1000,
        "expected_at": at_ms(r.publish_at_ms),
        "topic": r.topic,
        "qos": r.qos as u8,
        "from_clientid": r.from_clientid,
    });
    if with_payload {
        v["payload"] = json!(base64::engine::general_purpose::STANDARD.encode(&r.payload));
    }
    v
}

/// `GET /api/v5/mqtt/delayed` → `{enable, max_delayed_messages}`.
pub async fn delayed_settings(st: St) -> Json<Value> {
    let (enable, max) = st.0.ctx.bus.delayed().settings();
    Json(json!({ "enable": enable, "max_delayed_messages": max }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DelayedSettings {
    enable: Option<bool>,
    max_delayed_messages: Option<u64>,
}

/// `PUT /api/v5/mqtt/delayed` `{enable?, max_delayed_messages?}` → the settings now.
pub async fn put_delayed_settings(st: St, raw: Bytes) -> ApiResult<Json<Value>> {
    let b: DelayedSettings = body(&raw)?;
    let d = st.0.ctx.bus.delayed();
    let (enable, max) = d.settings();
    d.set_settings(
        b.enable.unwrap_or(enable),
        b.max_delayed_messages.unwrap_or(max),
    );
    Ok(delayed_settings(st).await)
}

/// `GET /api/v5/mqtt/delayed/messages?page=&limit=` → the held messages, due order.
pub async fn delayed_messages(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    let page = Page::from(&q)?;
    let items =
        st.0.ctx
            .bus
            .delayed()
            .list()
            .iter()
            .map(|r| delayed_json(&st, r, false))
            .collect();
    Ok(Json(page.wrap(items)))
}

fn msgid(s: &str) -> ApiResult<u64> {
    u64::from_str_radix(s, 16).map_err(|_| ApiError::not_found("Delayed message not found"))
}

/// `GET /api/v5/mqtt/delayed/messages/{msgid}` → the message with its payload (base64).
pub async fn delayed_message(st: St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let r =
        st.0.ctx
            .bus
            .delayed()
            .get(msgid(&id)?)
            .ok_or_else(|| ApiError::not_found("Delayed message not found"))?;
    Ok(Json(delayed_json(&st, &r, true)))
}

/// `DELETE /api/v5/mqtt/delayed/messages/{msgid}` → 204, or 404.
pub async fn delete_delayed_message(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    let id = msgid(&id)?;
    let bus = st.0.ctx.bus.clone();
    let deleted = tokio::task::spawn_blocking(move || bus.delayed().delete(id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if deleted {
        Ok(no_content())
    } else {
        Err(ApiError::not_found("Delayed message not found"))
    }
}

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct AutoTopic {
    topic: String,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    rh: u8,
    #[serde(default)]
    rap: u8,
    #[serde(default)]
    nl: u8,
}

fn auto_json(s: &AutoSubscription) -> Value {
    json!({
        "topic": s.topic,
        "qos": s.opts.qos as u8,
        "rh": match s.opts.retain_handling {
            RetainHandling::OnSubscribe => 0,
            RetainHandling::OnNewSubscribe => 1,
            RetainHandling::Never => 2,
        },
        "rap": u8::from(s.opts.retain_as_published),
        "nl": u8::from(s.opts.no_local),
    })
}

/// `GET /api/v5/mqtt/auto_subscribe` → `[{topic, qos, rh, rap, nl}]`.
pub async fn auto_subscribe(st: St) -> Json<Value> {
    let subs = st.0.ctx.bus.auto_subscriptions();
    Json(Value::Array(subs.iter().map(auto_json).collect()))
}

/// `PUT /api/v5/mqtt/auto_subscribe` with the whole list → the list now; 400 for a value out
/// of range or an empty topic.
pub async fn put_auto_subscribe(st: St, raw: Bytes) -> ApiResult<Json<Value>> {
    let topics: Vec<AutoTopic> = body(&raw)?;
    let mut subs = Vec::with_capacity(topics.len());
    for (i, t) in topics.into_iter().enumerate() {
        if t.topic.is_empty() || t.rh > 2 || t.rap > 1 || t.nl > 1 {
            return Err(ApiError::bad_request(format!(
                "[{i}]: topic must not be empty; rh 0-2, rap and nl 0-1"
            )));
        }
        let qos = QoS::try_from(t.qos)
            .map_err(|_| ApiError::bad_request(format!("[{i}].qos: must be 0, 1 or 2")))?;
        subs.push(AutoSubscription {
            topic: t.topic,
            opts: SubOptions {
                qos,
                no_local: t.nl == 1,
                retain_as_published: t.rap == 1,
                retain_handling: match t.rh {
                    1 => RetainHandling::OnNewSubscribe,
                    2 => RetainHandling::Never,
                    _ => RetainHandling::OnSubscribe,
                },
                subscription_id: None,
            },
        });
    }
    st.0.ctx.bus.set_auto_subscriptions(subs);
    Ok(auto_subscribe(st).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    action: String,
    source_topic: String,
    re: String,
    dest_topic: String,
}

fn rule_json(r: &RewriteRule) -> Value {
    json!({
        "action": r.action.as_str(),
        "source_topic": r.source_topic,
        "re": r.re,
        "dest_topic": r.dest_topic,
    })
}

/// `GET /api/v5/mqtt/topic_rewrite` → the rules in order.
pub async fn topic_rewrite(st: St) -> Json<Value> {
    let rules = st.0.ctx.rewrite.rules();
    Json(Value::Array(rules.iter().map(rule_json).collect()))
}

/// `PUT /api/v5/mqtt/topic_rewrite` with the whole list → the rules now; 400 naming the rule
/// that does not compile (nothing changes then).
pub async fn put_topic_rewrite(st: St, raw: Bytes) -> ApiResult<Json<Value>> {
    let rules: Vec<Rule> = body(&raw)?;
    let mut out = Vec::with_capacity(rules.len());
    for (i, r) in rules.into_iter().enumerate() {
        let action = match r.action.as_str() {
            "publish" => RewriteAction::Publish,
            "subscribe" => RewriteAction::Subscribe,
            "all" => RewriteAction::All,
            other => {
                return Err(ApiError::bad_request(format!(
                    "[{i}].action: publish, subscribe or all, got {other:?}"
                )))
            }
        };
        out.push(RewriteRule {
            action,
            source_topic: r.source_topic,
            re: r.re,
            dest_topic: r.dest_topic,
        });
    }
    st.0.ctx.rewrite.set(out).map_err(ApiError::bad_request)?;
    Ok(topic_rewrite(st).await)
}
