//! `/api/v5/gateways`: the MQTT-SN, CoAP and LwM2M gateways with their status (`running` when
//! built and enabled, `stopped` when built and disabled, `unloaded` when not in this build),
//! listeners and clients, and enabling or disabling a gateway at run time (the binary's
//! `GatewayControl` binds or closes its listener; without one, a change answers 409).

use super::clients::{self, SubReq};
use super::{body, no_content, St, State};
use crate::error::{ApiError, ApiResult};
use crate::json::Params;
use crate::time::rfc3339;
use crate::view::namespace;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use switchyard_bus::Namespace;
use switchyard_config::UdpListenerConfig;

/// The gateways EMQX has and we list, in display order.
pub const GATEWAYS: [&str; 3] = ["mqttsn", "coap", "lwm2m"];

struct Gw<'a> {
    name: &'static str,
    enabled: bool,
    listener: &'a UdpListenerConfig,
}

fn gateway<'a>(st: &'a State, name: &str) -> Option<Gw<'a>> {
    let g = &st.ctx.config.gateway;
    match name {
        "mqttsn" => Some(Gw {
            name: "mqttsn",
            enabled: g.mqttsn.enable,
            listener: &g.mqttsn.listeners.udp.default,
        }),
        "coap" => Some(Gw {
            name: "coap",
            enabled: g.coap.enable,
            listener: &g.coap.listeners.udp.default,
        }),
        "lwm2m" => Some(Gw {
            name: "lwm2m",
            enabled: g.lwm2m.enable,
            listener: &g.lwm2m.listeners.udp.default,
        }),
        _ => None,
    }
}

fn status(st: &State, gw: &Gw<'_>) -> &'static str {
    let running = match &st.ctx.gateway_control {
        Some(c) => c.is_running(gw.name),
        None => gw.enabled,
    };
    if !st.ctx.gateways_built.contains(&gw.name) {
        "unloaded"
    } else if running {
        "running"
    } else {
        "stopped"
    }
}

fn gateway_json(st: &State, gw: &Gw<'_>) -> Value {
    let status = status(st, gw);
    if status == "unloaded" {
        return json!({ "name": gw.name, "status": "unloaded" });
    }
    let id = format!("{}:udp:default", gw.name);
    let bound = st.ctx.listeners.get(&id);
    let ns = namespace(gw.name).unwrap_or(Namespace("unknown"));
    let current = st
        .ctx
        .bus
        .clients()
        .iter()
        .filter(|c| c.info.namespace == ns && c.connected)
        .count();
    let running = status == "running";
    json!({
        "name": gw.name,
        "status": status,
        "created_at": rfc3339(st.started_at),
        "started_at": running.then(|| rfc3339(st.started_at)),
        "stopped_at": (!running).then(|| rfc3339(st.started_at)),
        "max_connections": gw.listener.max_connections,
        "current_connections": current,
        "listeners": [{
            "id": id,
            "type": "udp",
            "name": "default",
            "bind": bound.cloned().unwrap_or_else(|| gw.listener.bind.to_string()),
            "running": bound.is_some(),
            "max_connections": gw.listener.max_connections,
            "max_conn_rate": gw.listener.max_conn_rate,
        }],
        "node_status": [{ "node": st.node(), "status": status, "current_connections": current }],
    })
}

fn known<'a>(st: &'a State, name: &str) -> ApiResult<(Gw<'a>, Namespace)> {
    let gw = gateway(st, name)
        .ok_or_else(|| ApiError::not_found(format!("gateway {name} not found")))?;
    let ns =
        namespace(name).ok_or_else(|| ApiError::not_found(format!("gateway {name} not found")))?;
    Ok((gw, ns))
}

/// A loaded gateway's namespace, for the client routes: 404 when unknown or unloaded.
fn loaded(st: &State, name: &str) -> ApiResult<Namespace> {
    let (gw, ns) = known(st, name)?;
    if status(st, &gw) == "unloaded" {
        return Err(ApiError::not_found(format!("gateway {name} is not loaded")));
    }
    Ok(ns)
}

/// `GET /api/v5/gateways[?status=running|stopped|unloaded]`.
pub async fn list(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    let want = q
        .get("status")
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    if let Some(s) = want {
        if !["running", "stopped", "unloaded"].contains(&s) {
            return Err(ApiError::bad_request(
                "status: running | stopped | unloaded",
            ));
        }
    }
    let out: Vec<Value> = GATEWAYS
        .iter()
        .filter_map(|n| gateway(&st.0, n))
        .filter(|g| want.map_or(true, |s| status(&st.0, g) == s))
        .map(|g| gateway_json(&st.0, &g))
        .collect();
    Ok(Json(json!(out)))
}

/// `GET /api/v5/gateways/{name}`.
pub async fn get(st: St, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let (gw, _) = known(&st.0, &name)?;
    Ok(Json(gateway_json(&st.0, &gw)))
}

/// `PUT /api/v5/gateways/{name}/enable/{true|false}`: starts or stops the gateway, 204; 404
/// when unloaded; 409 `REQUIRES_RESTART` when the binary offers no run-time control; 500 when
/// its listener cannot be bound.
pub async fn enable(st: St, Path((name, enable)): Path<(String, String)>) -> ApiResult<Response> {
    let want = match enable.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(ApiError::bad_request("enable must be true or false")),
    };
    let (gw, _) = known(&st.0, &name)?;
    if status(&st.0, &gw) == "unloaded" {
        return Err(ApiError::not_found(format!("gateway {name} is not loaded")));
    }
    if let Some(control) = st.0.ctx.gateway_control.clone() {
        control.set_enabled(gw.name, want).await.map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "GATEWAY_START_FAILED", e)
        })?;
        tracing::info!(
            gateway = gw.name,
            enable = want,
            "gateway state changed through the admin API"
        );
        return Ok(no_content());
    }
    if gw.enabled == want {
        return Ok(no_content());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "REQUIRES_RESTART",
        format!("set gateway.{name}.enable = {want} in the config and restart the node"),
    ))
}

/// `GET /api/v5/gateways/{name}/clients`.
pub async fn clients(
    st: St,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> ApiResult<Json<Value>> {
    let ns = loaded(&st.0, &name)?;
    clients::list_clients(&st.0, Some(ns), &q).map(Json)
}

/// `GET /api/v5/gateways/{name}/clients/{clientid}`.
pub async fn client(st: St, Path((name, id)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let ns = loaded(&st.0, &name)?;
    let c = clients::resolve(&st.0, Some(ns), &id)?;
    Ok(Json(crate::view::client(st.0.node(), &c)))
}

/// `DELETE /api/v5/gateways/{name}/clients/{clientid}` → 204.
pub async fn kick(st: St, Path((name, id)): Path<(String, String)>) -> ApiResult<Response> {
    let ns = loaded(&st.0, &name)?;
    clients::kick_client(&st.0, Some(ns), &id)
}

/// `GET /api/v5/gateways/{name}/clients/{clientid}/subscriptions`.
pub async fn subscriptions(
    st: St,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ns = loaded(&st.0, &name)?;
    clients::client_subscriptions(&st.0, Some(ns), &id).map(|v| Json(json!(v)))
}

/// `POST /api/v5/gateways/{name}/clients/{clientid}/subscriptions` → 201.
pub async fn subscribe(
    st: St,
    Path((name, id)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult<Response> {
    let ns = loaded(&st.0, &name)?;
    let r: SubReq = body(&raw)?;
    let v = clients::subscribe_for(&st.0, Some(ns), &id, &r)?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `DELETE /api/v5/gateways/{name}/clients/{clientid}/subscriptions/{topic}` → 204, 404 if
/// not subscribed.
pub async fn unsubscribe(
    st: St,
    Path((name, id, topic)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let ns = loaded(&st.0, &name)?;
    if clients::unsubscribe_for(&st.0, Some(ns), &id, &topic)? {
        Ok(no_content())
    } else {
        Err(ApiError::not_found("Subscription not found"))
    }
}
