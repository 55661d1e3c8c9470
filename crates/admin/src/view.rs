//! Bus state as API JSON: clients, subscriptions, retained messages. Field names are EMQX's
//! (`clientid`, `proto_name`, `subscriptions_cnt`, ...); times are RFC 3339.

use crate::time::rfc3339;
use base64::Engine;
use serde_json::{json, Value};
use switchyard_bus::{ClientSummary, Namespace, RetainHandling, SubOptions};
use switchyard_core::{Message, SubscriptionFilter};

/// One client as EMQX shows it.
pub fn client(node: &str, c: &ClientSummary) -> Value {
    let i = &c.info;
    json!({
        "node": node,
        "clientid": i.client_id.as_str(),
        "username": i.username,
        "proto_name": i.proto_name,
        "proto_ver": i.proto_ver,
        "namespace": i.namespace.0,
        "ip_address": i.peer.map(|p| p.ip().to_string()),
        "port": i.peer.map(|p| p.port()),
        "connected": c.connected,
        "conn_state": if c.connected { "connected" } else { "disconnected" },
        "connected_at": rfc3339(i.connected_at),
        "created_at": rfc3339(c.created_at),
        "disconnected_at": c.disconnected_at.map(rfc3339),
        "keepalive": i.keepalive,
        "clean_start": i.clean_start,
        "expiry_interval": i.expiry_interval,
        "subscriptions_cnt": c.subscriptions,
        "inflight_cnt": c.inflight,
        "mqueue_len": c.mqueue_len,
        "mqueue_dropped": c.mqueue_dropped,
        "session_id": c.session.0,
    })
}

/// One subscription.
pub fn subscription(
    node: &str,
    ns: Namespace,
    clientid: &str,
    sf: &SubscriptionFilter,
    o: &SubOptions,
) -> Value {
    let rh = match o.retain_handling {
        RetainHandling::OnSubscribe => 0,
        RetainHandling::OnNewSubscribe => 1,
        RetainHandling::Never => 2,
    };
    let mut v = json!({
        "node": node,
        "clientid": clientid,
        "namespace": ns.0,
        "topic": sf.to_string(),
        "qos": o.qos.as_u8(),
        "nl": u8::from(o.no_local),
        "rap": u8::from(o.retain_as_published),
        "rh": rh,
    });
    if let Some(id) = o.subscription_id {
        v["sub_props"] = json!({ "subid": id });
    }
    v
}

/// A retained message; `with_payload` adds the base64 payload (EMQX omits it in lists).
pub fn retained(m: &Message, with_payload: bool) -> Value {
    let mut v = json!({
        "topic": m.topic.as_str(),
        "qos": m.qos.as_u8(),
        "publish_at": rfc3339(m.timestamp),
        "from_clientid": m.origin.as_ref().map(|o| o.client_id.as_str().to_owned()),
        "payload_size": m.payload.len(),
    });
    if with_payload {
        v["payload"] = json!(base64::engine::general_purpose::STANDARD.encode(&m.payload));
    }
    v
}

/// Case-sensitive substring filter used by `like_*` parameters.
pub fn like(value: Option<&str>, pattern: Option<&str>) -> bool {
    match pattern {
        None => true,
        Some(p) => value.is_some_and(|v| v.contains(p)),
    }
}
