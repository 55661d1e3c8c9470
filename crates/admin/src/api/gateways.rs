//! `/api/v5/gateways`: the gateways of the binary's gateway table that EMQX lists as gateways
//! (MQTT-SN, CoAP, LwM2M; not MQTT, the broker itself) with their status (`running` or
//! `stopped`), listeners and clients, and enabling or disabling a gateway at run time (the
//! binary's `GatewayControl` binds or closes its listeners; without one, a change answers 409).
//! `/api/v5/protocols` is the whole table, for the dashboard. Nothing here names a protocol:
//! names, namespaces and listener ids come from the table, keys from the config's sections.

use super::clients::{self, SubReq};
use super::{body, no_content, St, State};
use crate::error::{ApiError, ApiResult};
use crate::json::Params;
use crate::time::rfc3339;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use switchyard_bus::Namespace;
use switchyard_config::ProtocolSection;
use switchyard_net::GatewayDescriptor;

/// A gateway of the table with its config section.
struct Gw {
    desc: &'static GatewayDescriptor,
    section: ProtocolSection,
}

impl Gw {
    fn name(&self) -> &'static str {
        self.desc.name
    }
}

/// The gateway `name`, if the table has it and lists it under `/gateways`.
fn gateway(st: &State, name: &str) -> Option<Gw> {
    let desc = st.protocol(name).filter(|d| d.emqx_gateway)?;
    let section = st.ctx.config.protocol(desc.name)?;
    Some(Gw { desc, section })
}

fn status(st: &State, gw: &Gw) -> &'static str {
    let running = match &st.ctx.gateway_control {
        Some(c) => c.is_running(gw.name()),
        None => gw.section.enable,
    };
    if running {
        "running"
    } else {
        "stopped"
    }
}

fn gateway_json(st: &State, gw: &Gw) -> Value {
    let status = status(st, gw);
    let ns = Namespace(gw.desc.namespace);
    let current = st
        .ctx
        .bus
        .clients()
        .iter()
        .filter(|c| c.info.namespace == ns && c.connected)
        .count();
    let running = status == "running";
    let listeners: Vec<Value> = gw
        .desc
        .listeners
        .iter()
        .filter_map(|spec| {
            let config = gw.section.listener(spec.kind.as_str())?;
            let id = gw.desc.listener_id(spec);
            let bound = st.ctx.listeners.get(&id);
            let mut v = json!({
                "id": id,
                "type": spec.kind.as_str(),
                "name": spec.name,
                "bind": bound.cloned().unwrap_or_else(|| config.bind.to_string()),
                "running": bound.is_some(),
                "max_connections": config.max_connections,
                "max_conn_rate": config.max_conn_rate,
            });
            // A DTLS listener also shows its peers and handshakes (switchyard_net's counters).
            if let Some((_, stats)) = switchyard_net::dtls::all_stats()
                .into_iter()
                .find(|(l, _)| *l == id)
            {
                for (name, value) in stats.snapshot() {
                    v[format!("dtls_{name}")] = json!(value);
                }
                // The established peers (at most 100) and what each proved.
                let peers: Vec<Value> = stats
                    .established_peers(100)
                    .into_iter()
                    .map(|(addr, id)| {
                        let (kind, name) = match id {
                            switchyard_net::PeerIdentity::Psk(i) => ("psk", Some(i)),
                            switchyard_net::PeerIdentity::Certificate { common_name, .. } => {
                                ("certificate", common_name)
                            }
                            switchyard_net::PeerIdentity::Anonymous => ("anonymous", None),
                        };
                        json!({ "peer": addr.to_string(), "auth": kind, "identity": name })
                    })
                    .collect();
                v["dtls_peer_list"] = json!(peers);
            }
            Some(v)
        })
        .collect();
    let max_connections = gw
        .section
        .listeners
        .iter()
        .fold(0u64, |n, l| n.saturating_add(u64::from(l.max_connections)));
    json!({
        "name": gw.name(),
        "status": status,
        "created_at": rfc3339(st.started_at),
        "started_at": running.then(|| rfc3339(st.started_at)),
        "stopped_at": (!running).then(|| rfc3339(st.started_at)),
        "max_connections": max_connections,
        "current_connections": current,
        "listeners": listeners,
        "node_status": [{ "node": st.node(), "status": status, "current_connections": current }],
    })
}

/// A listed gateway and its namespace, for the client routes: 404 when unknown.
fn known(st: &State, name: &str) -> ApiResult<(Gw, Namespace)> {
    let gw = gateway(st, name)
        .ok_or_else(|| ApiError::not_found(format!("gateway {name} not found")))?;
    let ns = Namespace(gw.desc.namespace);
    Ok((gw, ns))
}

/// A loaded gateway's namespace, for the client routes: 404 when unknown (every gateway of
/// the table is loaded).
fn loaded(st: &State, name: &str) -> ApiResult<Namespace> {
    known(st, name).map(|(_, ns)| ns)
}

/// `GET /api/v5/gateways[?status=running|stopped|unloaded]` (`unloaded` is EMQX's status of a
/// gateway not in the build; every gateway listed here is built, so it lists none).
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
    let out: Vec<Value> =
        st.0.ctx
            .gateways
            .iter()
            .filter_map(|d| gateway(&st.0, d.name))
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

/// `GET /api/v5/protocols`: the binary's gateway table, MQTT included, in display order:
/// name, client-id namespace, `proto_name` (the clients filter and metric label), display name,
/// whether `/gateways` lists it, and its listener ids and kinds.
pub async fn protocols(st: St) -> Json<Value> {
    let out: Vec<Value> =
        st.0.ctx
            .gateways
            .iter()
            .map(|d| {
                let listeners: Vec<Value> = d
                .listeners
                .iter()
                .map(|l| json!({ "id": d.listener_id(l), "type": l.kind.as_str(), "name": l.name }))
                .collect();
                json!({
                    "name": d.name,
                    "namespace": d.namespace,
                    "proto_name": d.proto_name,
                    "display_name": d.display_name,
                    "gateway": d.emqx_gateway,
                    "listeners": listeners,
                })
            })
            .collect();
    Json(json!(out))
}

/// `PUT /api/v5/gateways/{name}/enable/{true|false}`: starts or stops the gateway, 204; 404
/// when unknown; 409 `REQUIRES_RESTART` when the binary offers no run-time control; 500 when
/// its listener cannot be bound.
pub async fn enable(st: St, Path((name, enable)): Path<(String, String)>) -> ApiResult<Response> {
    let want = match enable.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(ApiError::bad_request("enable must be true or false")),
    };
    let (gw, _) = known(&st.0, &name)?;
    if let Some(control) = st.0.ctx.gateway_control.clone() {
        control.set_enabled(gw.name(), want).await.map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "GATEWAY_START_FAILED", e)
        })?;
        tracing::info!(
            gateway = gw.name(),
            enable = want,
            "gateway state changed through the admin API"
        );
        return Ok(no_content());
    }
    if gw.section.enable == want {
        return Ok(no_content());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "REQUIRES_RESTART",
        format!(
            "set {}.enable = {want} in the config and restart the node",
            gw.section.key
        ),
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
