//! LwM2M REST helpers (docs/lwm2m.md §4.11): `POST /api/v5/gateways/lwm2m/clients/{clientid}/{read|
//! write|observe}` enqueue a downlink command exactly as an MQTT application would: a JSON
//! command published on the device's command topic (`{mountpoint}` + `translators.command`
//! without its trailing `/#`). They answer 204; the result arrives on the response topic.
//! `GET …/{clientid}/lookup?path=&action=read|discover` is synchronous: it sends the command,
//! waits (up to 10 s) for the device's answer on the response topic through a short-lived bus
//! session of its own, and returns it.

use super::{no_content, St, State};
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_bool, opt_str, Params};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_bus::Namespace;
use switchyard_core::{ClientId, Message, QoS, TopicName};

static REQ_ID: AtomicU64 = AtomicU64::new(1);

/// The device's command topic, from the gateway config and its identity.
fn command_topic(st: &State, endpoint: &str, username: Option<&str>) -> ApiResult<String> {
    let g = &st.ctx.config.gateway.lwm2m;
    let mount = mount_prefix(&g.mountpoint, endpoint, username)?;
    let filter = g.translators.command.topic.as_str();
    let base = filter
        .strip_suffix("/#")
        .or_else(|| filter.strip_suffix('#'))
        .unwrap_or(filter);
    if base.is_empty() || base.contains(['+', '#']) {
        return Err(ApiError::internal(format!(
            "cannot derive a command topic from translators.command = {filter:?}"
        )));
    }
    Ok(format!("{mount}{base}"))
}

fn path_param(q: &Params) -> ApiResult<String> {
    let path = opt_str(q, "path").ok_or_else(|| ApiError::bad_request("path is required"))?;
    let ok = path.starts_with('/')
        && path
            .trim_start_matches('/')
            .split('/')
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(path.to_owned())
    } else {
        Err(ApiError::bad_request(format!(
            "path {path:?}: expected /Object[/Instance[/Resource]]"
        )))
    }
}

fn command(action: &str, q: &Params) -> ApiResult<Value> {
    let path = path_param(q)?;
    let req_id = REQ_ID.fetch_add(1, Ordering::Relaxed);
    Ok(match action {
        "read" => json!({ "reqID": req_id, "msgType": "read", "data": { "path": path } }),
        "write" => {
            let kind =
                opt_str(q, "type").ok_or_else(|| ApiError::bad_request("type is required"))?;
            let value =
                opt_str(q, "value").ok_or_else(|| ApiError::bad_request("value is required"))?;
            json!({ "reqID": req_id, "msgType": "write",
                    "data": { "path": path, "type": kind, "value": value } })
        }
        "observe" => {
            let enable = opt_bool(q, "enable")?.unwrap_or(true);
            let kind = if enable { "observe" } else { "cancel-observe" };
            json!({ "reqID": req_id, "msgType": kind, "data": { "path": path } })
        }
        _ => return Err(ApiError::not_found(format!("no action {action}"))),
    })
}

/// `POST /api/v5/gateways/{name}/clients/{clientid}/{action}`: the LwM2M helpers.
pub async fn action(
    st: St,
    Path((name, id, action)): Path<(String, String, String)>,
    Query(q): Query<Params>,
) -> ApiResult<Response> {
    if name != "lwm2m" {
        return Err(ApiError::not_found(format!(
            "no action {action} for gateway {name}"
        )));
    }
    if st.0.protocol("lwm2m").is_none() {
        return Err(ApiError::not_found("gateway lwm2m is not loaded"));
    }
    let cmd = command(&action, &q)?;
    let client =
        st.0.ctx
            .bus
            .client(Namespace("lwm2m"), &ClientId::new(id.as_str()))
            .filter(|c| c.connected)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "CLIENT_NOT_FOUND",
                    "Client not found",
                )
            })?;
    let topic = command_topic(&st.0, &id, client.info.username.as_deref())?;
    let topic = TopicName::new(topic.as_str())
        .map_err(|e| ApiError::internal(format!("command topic {topic:?}: {e}")))?;
    st.0.ctx
        .bus
        .publish(Message::new(topic, cmd.to_string(), QoS::AtMostOnce, false));
    Ok(no_content())
}

/// How long a lookup waits for the device.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The device's response topic (`{mountpoint}` + `translators.response`).
fn response_topic(st: &State, endpoint: &str, username: Option<&str>) -> ApiResult<String> {
    let g = &st.ctx.config.gateway.lwm2m;
    let mount = mount_prefix(&g.mountpoint, endpoint, username)?;
    Ok(format!("{mount}{}", g.translators.response.topic))
}

/// The device's mountpoint, rendered by the same topic template as the gateway's (the API
/// addresses a device by its client id, which it uses for `${endpoint_name}` too).
fn mount_prefix(template: &str, endpoint: &str, username: Option<&str>) -> ApiResult<String> {
    let vars = switchyard_core::TemplateVars {
        clientid: Some(endpoint),
        username,
        endpoint_name: Some(endpoint),
    };
    switchyard_core::render_topic(template, &vars)
        .map_err(|e| ApiError::internal(format!("mountpoint {template:?}: {e}")))
}

/// `GET /api/v5/gateways/lwm2m/clients/{clientid}/lookup?path=/3/0/0&action=read|discover`.
pub async fn lookup(
    st: St,
    Path((name, id, action)): Path<(String, String, String)>,
    Query(q): Query<Params>,
) -> ApiResult<axum::Json<Value>> {
    if name != "lwm2m" || action != "lookup" {
        return Err(ApiError::not_found(format!(
            "no {action} for gateway {name}"
        )));
    }
    let path = path_param(&q)?;
    let kind = opt_str(&q, "action").unwrap_or("read");
    if kind != "read" && kind != "discover" {
        return Err(ApiError::bad_request("action must be read or discover"));
    }
    let bus = &st.0.ctx.bus;
    let client = bus
        .client(Namespace("lwm2m"), &ClientId::new(id.as_str()))
        .filter(|c| c.connected)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "CLIENT_NOT_FOUND",
                "Client not found",
            )
        })?;
    let username = client.info.username.as_deref();
    let command_topic = command_topic(&st.0, &id, username)?;
    let command_topic = TopicName::new(command_topic.as_str())
        .map_err(|e| ApiError::internal(format!("command topic {command_topic:?}: {e}")))?;
    let filter =
        switchyard_core::SubscriptionFilter::parse(&response_topic(&st.0, &id, username)?, 0)
            .map_err(|e| ApiError::internal(format!("response topic: {e}")))?;
    let req_id = REQ_ID.fetch_add(1, Ordering::Relaxed);
    let cmd = json!({ "reqID": req_id, "msgType": kind, "data": { "path": path } });

    // A short-lived clean session of the admin API's own namespace receives the answer.
    const NS: Namespace = Namespace("admin");
    let info = std::sync::Arc::new(switchyard_bus::ClientInfo {
        namespace: NS,
        client_id: ClientId::new(format!("lookup-{req_id}")),
        username: None,
        peer: None,
        proto_name: "HTTP",
        proto_ver: 0,
        keepalive: 0,
        clean_start: true,
        expiry_interval: 0,
        connected_at: std::time::SystemTime::now(),
    });
    let opened = bus
        .open_session(switchyard_bus::OpenSession {
            info,
            clean_start: true,
            expiry: std::time::Duration::ZERO,
            max_inflight: 1,
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut session = opened.session;
    let subscribed = bus.subscribe(&mut session, filter, switchyard_bus::SubOptions::default());
    let answer = match subscribed {
        Ok(_) => {
            bus.publish(Message::new(
                command_topic,
                cmd.to_string(),
                QoS::AtMostOnce,
                false,
            ));
            wait_for_answer(&session, req_id).await
        }
        Err(e) => Err(ApiError::internal(e.to_string())),
    };
    // Not a client's connection: released without a connect or disconnect report.
    opened.attachment.release(session);
    let data = answer?;
    Ok(axum::Json(json!({
        "clientid": id,
        "path": path,
        "action": kind,
        "code": data["code"],
        "codeMsg": data["codeMsg"],
        "content": data.get("content").cloned().unwrap_or(Value::Null),
    })))
}

async fn wait_for_answer(session: &switchyard_bus::Session, req_id: u64) -> ApiResult<Value> {
    let deadline = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
    loop {
        let mut out = Vec::new();
        session
            .outbox
            .drain(std::time::Instant::now(), |_| true, &mut out);
        for d in out {
            let Ok(v) = serde_json::from_slice::<Value>(&d.message.payload) else {
                continue;
            };
            if v["reqID"] == json!(req_id) {
                return Ok(v["data"].clone());
            }
        }
        tokio::select! {
            _ = session.outbox.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {
                return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "DEVICE_TIMEOUT", "the device did not answer in time"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn commands_follow_the_emqx_json() {
        let v = command("read", &q(&[("path", "/3/0/0")])).expect("read");
        assert_eq!(v["msgType"], "read");
        assert_eq!(v["data"]["path"], "/3/0/0");
        let v = command(
            "write",
            &q(&[("path", "/3/0/13"), ("type", "Integer"), ("value", "5")]),
        )
        .expect("write");
        assert_eq!(v["data"]["type"], "Integer");
        let v = command("observe", &q(&[("path", "/3/0"), ("enable", "false")])).expect("observe");
        assert_eq!(v["msgType"], "cancel-observe");
        assert!(command("read", &q(&[("path", "3/x")])).is_err());
        assert!(command("read", &q(&[])).is_err());
        assert!(command("write", &q(&[("path", "/3/0/13")])).is_err());
        assert!(command("explode", &q(&[("path", "/3")])).is_err());
    }
}
