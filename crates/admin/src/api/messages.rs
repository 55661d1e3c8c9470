//! Messages and routes: `/publish`, `/publish/bulk`, `/subscriptions`, `/topics`, and the
//! retained store under `/mqtt/retainer`.

use super::{body, no_content, St, State};
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_num, opt_str, Page, Params};
use crate::view;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use switchyard_core::{ByteString, Message, Properties, QoS, TopicFilter, TopicName};

/// A publish request (EMQX's `/publish` body).
#[derive(Deserialize)]
struct PublishReq {
    topic: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    retain: bool,
    /// `plain` (default) or `base64`.
    #[serde(default)]
    payload_encoding: Option<String>,
    #[serde(default)]
    properties: Option<PublishProps>,
}

#[derive(Deserialize, Default)]
struct PublishProps {
    payload_format_indicator: Option<u8>,
    message_expiry_interval: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation_data: Option<String>,
    #[serde(default)]
    user_properties: HashMap<String, String>,
}

fn message_id() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn build(st: &State, r: PublishReq) -> ApiResult<Message> {
    let topic = TopicName::with_max_levels(r.topic.as_str(), st.ctx.bus.config().max_topic_levels)
        .map_err(|e| ApiError::bad_request(format!("topic {:?}: {e}", r.topic)))?;
    let qos = QoS::try_from(r.qos).map_err(|_| ApiError::bad_request("qos must be 0, 1 or 2"))?;
    let payload = match r.payload_encoding.as_deref() {
        None | Some("plain") => Bytes::from(r.payload.into_bytes()),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(r.payload.as_bytes())
            .map(Bytes::from)
            .map_err(|e| ApiError::bad_request(format!("payload is not base64: {e}")))?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "payload_encoding must be plain or base64, not {other:?}"
            )))
        }
    };
    let mut msg = Message::new(topic, payload, qos, r.retain);
    if let Some(p) = r.properties {
        let props = Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.map(ByteString::from),
            response_topic: p.response_topic.map(ByteString::from),
            correlation_data: p.correlation_data.map(|s| Bytes::from(s.into_bytes())),
            user_properties: p
                .user_properties
                .into_iter()
                .map(|(k, v)| (ByteString::from(k), ByteString::from(v)))
                .collect(),
        };
        if !props.is_empty() {
            msg.properties = Some(Arc::new(props));
        }
    }
    Ok(msg)
}

/// 200 `{"id"}` when someone received it, 202 with EMQX's "no matching subscribers" otherwise.
fn publish_one(st: &State, r: PublishReq) -> ApiResult<(StatusCode, Value)> {
    let msg = build(st, r)?;
    let delivered = st.ctx.bus.publish(msg);
    let id = message_id();
    if delivered == 0 {
        Ok((
            StatusCode::ACCEPTED,
            json!({ "id": id, "reason_code": 16, "message": "no_matching_subscribers" }),
        ))
    } else {
        Ok((StatusCode::OK, json!({ "id": id })))
    }
}

/// `POST /api/v5/publish`.
pub async fn publish(st: St, raw: Bytes) -> ApiResult<Response> {
    let r: PublishReq = body(&raw)?;
    let (status, v) = publish_one(&st.0, r)?;
    Ok((status, Json(v)).into_response())
}

/// `POST /api/v5/publish/bulk` `[{...}, ...]`: all validated before any is published.
pub async fn publish_bulk(st: St, raw: Bytes) -> ApiResult<Response> {
    let rs: Vec<PublishReq> = body(&raw)?;
    let msgs = rs
        .into_iter()
        .map(|r| build(&st.0, r))
        .collect::<ApiResult<Vec<_>>>()?;
    let out: Vec<Value> = msgs
        .into_iter()
        .map(|m| {
            let n = st.0.ctx.bus.publish(m);
            if n == 0 {
                json!({ "id": message_id(), "reason_code": 16, "message": "no_matching_subscribers" })
            } else {
                json!({ "id": message_id() })
            }
        })
        .collect();
    Ok((StatusCode::OK, Json(json!(out))).into_response())
}

/// `GET /api/v5/subscriptions`: filters `clientid`, `topic`, `qos`, `share_group`,
/// `match_topic` (subscriptions whose filter matches that topic), `namespace`.
pub async fn subscriptions(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    let page = Page::from(&q)?;
    let qos = opt_num(&q, "qos")?;
    let match_topic = match opt_str(&q, "match_topic") {
        Some(t) => Some(
            TopicName::new(t).map_err(|e| ApiError::bad_request(format!("match_topic: {e}")))?,
        ),
        None => None,
    };
    let node = st.0.node();
    let mut subs = st.0.ctx.bus.all_subscriptions();
    subs.sort_by(|a, b| (a.1.as_str(), a.2.to_string()).cmp(&(b.1.as_str(), b.2.to_string())));
    let items = subs
        .iter()
        .filter(|(_, id, _, _)| opt_str(&q, "clientid").map_or(true, |c| id.as_str() == c))
        .filter(|(ns, _, _, _)| opt_str(&q, "namespace").map_or(true, |n| ns.0 == n))
        .filter(|(_, _, sf, _)| opt_str(&q, "topic").map_or(true, |t| sf.to_string() == t))
        .filter(|(_, _, _, o)| qos.map_or(true, |x| usize::from(o.qos.as_u8()) == x))
        .filter(|(_, _, sf, _)| {
            opt_str(&q, "share_group")
                .map_or(true, |g| sf.group.as_ref().is_some_and(|sg| sg.name() == g))
        })
        .filter(|(_, _, sf, _)| match_topic.as_ref().map_or(true, |t| sf.filter.matches(t)))
        .map(|(ns, id, sf, o)| view::subscription(node, *ns, id.as_str(), sf, o))
        .collect();
    Ok(Json(page.wrap(items)))
}

/// `GET /api/v5/topics`: the route table (distinct filters) with how many sessions hold each;
/// `topic` filters exactly, `like_topic` by substring.
pub async fn topics(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    let page = Page::from(&q)?;
    let mut routes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, sf, _) in st.0.ctx.bus.all_subscriptions() {
        let e = routes.entry(sf.filter.as_str().to_owned()).or_insert(0);
        *e = e.saturating_add(1);
    }
    let node = st.0.node();
    let items = routes
        .into_iter()
        .filter(|(t, _)| opt_str(&q, "topic").map_or(true, |x| t == x))
        .filter(|(t, _)| view::like(Some(t), opt_str(&q, "like_topic")))
        .map(|(topic, n)| json!({ "topic": topic, "node": node, "session_count": n }))
        .collect();
    Ok(Json(page.wrap(items)))
}

/// `GET /api/v5/mqtt/retainer/messages`: `topic` may be a filter (`a/#`); without one,
/// `$`-topics are left out.
pub async fn retained_list(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    let page = Page::from(&q)?;
    let filter = match opt_str(&q, "topic") {
        Some(t) => {
            Some(TopicFilter::new(t).map_err(|e| ApiError::bad_request(format!("topic: {e}")))?)
        }
        None => None,
    };
    let retained = st.0.ctx.bus.retained();
    let all = retained.list(0, retained.len());
    let items = all
        .iter()
        // Like `#`, the unfiltered list leaves out `$SYS/...` (MQTT-4.7.2-1); ask for them by
        // filter.
        .filter(|m| match &filter {
            Some(f) => f.matches(&m.topic),
            None => !m.topic.is_system(),
        })
        .map(|m| view::retained(m, false))
        .collect();
    Ok(Json(page.wrap(items)))
}

/// `GET /api/v5/mqtt/retainer/message/{topic}` (topic may contain `/`; URL-encode the rest).
pub async fn retained_get(st: St, Path(topic): Path<String>) -> ApiResult<Json<Value>> {
    st.0.ctx
        .bus
        .retained()
        .get(&topic)
        .map(|m| Json(view::retained(&m, true)))
        .ok_or_else(|| ApiError::not_found("Viewed message not found"))
}

/// `DELETE /api/v5/mqtt/retainer/message/{topic}` → 204, 404 when absent.
pub async fn retained_delete(st: St, Path(topic): Path<String>) -> ApiResult<Response> {
    if st.0.ctx.bus.delete_retained(&topic) {
        Ok(no_content())
    } else {
        Err(ApiError::not_found("Viewed message not found"))
    }
}
