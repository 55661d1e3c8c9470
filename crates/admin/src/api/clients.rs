//! `/api/v5/clients`: every client of every protocol (one namespace per gateway), with kick and
//! subscribe/unsubscribe on a client's behalf. The gateway-scoped `/gateways/{name}/clients`
//! routes reuse these functions with a fixed namespace.

use super::{body, no_content, St, State};
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_bool, opt_str, Page, Params};
use crate::view;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_bus::{BusError, ClientSummary, Namespace, RetainHandling, SubOptions};
use switchyard_core::{ClientId, QoS, SubscriptionFilter};

/// Lists clients, optionally of one namespace, with EMQX's filters.
pub fn list_clients(st: &State, ns: Option<Namespace>, q: &Params) -> ApiResult<Value> {
    let page = Page::from(q)?;
    let conn_state = opt_str(q, "conn_state");
    if let Some(s) = conn_state {
        if s != "connected" && s != "disconnected" && s != "idle" {
            return Err(ApiError::bad_request(
                "conn_state: connected | disconnected | idle",
            ));
        }
    }
    let clean_start = opt_bool(q, "clean_start")?;
    let proto_ver = crate::json::opt_num(q, "proto_ver")?;
    let mut clients: Vec<ClientSummary> = st
        .ctx
        .bus
        .clients()
        .into_iter()
        .filter(|c| ns.map_or(true, |n| c.info.namespace == n))
        .filter(|c| opt_str(q, "clientid").map_or(true, |id| c.info.client_id.as_str() == id))
        .filter(|c| opt_str(q, "username").map_or(true, |u| c.info.username.as_deref() == Some(u)))
        .filter(|c| view::like(Some(c.info.client_id.as_str()), opt_str(q, "like_clientid")))
        .filter(|c| view::like(c.info.username.as_deref(), opt_str(q, "like_username")))
        .filter(|c| {
            opt_str(q, "proto_name").map_or(true, |p| c.info.proto_name.eq_ignore_ascii_case(p))
        })
        .filter(|c| {
            opt_str(q, "ip_address").map_or(true, |ip| {
                c.info.peer.is_some_and(|p| p.ip().to_string() == ip)
            })
        })
        .filter(|c| match conn_state {
            Some("connected") => c.connected,
            Some(_) => !c.connected,
            None => true,
        })
        .filter(|c| clean_start.map_or(true, |b| c.info.clean_start == b))
        .filter(|c| proto_ver.map_or(true, |v| usize::from(c.info.proto_ver) == v))
        .collect();
    clients.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| a.info.client_id.as_str().cmp(b.info.client_id.as_str()))
    });
    let node = st.node();
    Ok(page.wrap(clients.iter().map(|c| view::client(node, c)).collect()))
}

/// The client with this id: in `ns` when given, else the online one of any namespace first.
pub fn resolve(st: &State, ns: Option<Namespace>, id: &str) -> ApiResult<ClientSummary> {
    let cid = ClientId::new(id);
    let found = match ns {
        Some(n) => st.ctx.bus.client(n, &cid),
        None => {
            let mut all = st.ctx.bus.find_client(&cid);
            all.sort_by_key(|c| (!c.connected, c.info.namespace.0 != "mqtt"));
            all.into_iter().next()
        }
    };
    found.ok_or_else(|| ApiError::not_found("Client not found"))
}

/// Kicks `id` (in `ns`, or in every namespace where it exists).
pub fn kick_client(st: &State, ns: Option<Namespace>, id: &str) -> ApiResult<Response> {
    let cid = ClientId::new(id);
    let targets: Vec<Namespace> = match ns {
        Some(n) => st
            .ctx
            .bus
            .client(n, &cid)
            .map(|c| c.info.namespace)
            .into_iter()
            .collect(),
        None => st
            .ctx
            .bus
            .find_client(&cid)
            .iter()
            .map(|c| c.info.namespace)
            .collect(),
    };
    if targets.is_empty() {
        return Err(ApiError::not_found("Client not found"));
    }
    for n in targets {
        // EMQX's kick: a connected client is disconnected (its session follows its expiry);
        // an offline session is discarded.
        if st.ctx.bus.kick(n, &cid) {
            tracing::info!(namespace = %n, client_id = id, "client kicked through the admin API");
        } else if st.ctx.bus.discard_offline(n, &cid) {
            tracing::info!(namespace = %n, client_id = id, "offline session discarded through the admin API");
        }
    }
    Ok(no_content())
}

/// The subscriptions of one client.
pub fn client_subscriptions(st: &State, ns: Option<Namespace>, id: &str) -> ApiResult<Vec<Value>> {
    let c = resolve(st, ns, id)?;
    let n = c.info.namespace;
    let subs = st
        .ctx
        .bus
        .client_subscriptions(n, &c.info.client_id)
        .ok_or_else(|| ApiError::not_found("Client not found"))?;
    Ok(subs
        .iter()
        .map(|(sf, o)| view::subscription(st.node(), n, id, sf, o))
        .collect())
}

/// A subscription request as EMQX takes it.
#[derive(Deserialize)]
pub struct SubReq {
    /// The filter (may be `$share/g/...`).
    pub topic: String,
    /// Maximum QoS, default 0.
    #[serde(default)]
    pub qos: u8,
    /// No-local (0/1 or bool).
    #[serde(default)]
    pub nl: Flag,
    /// Retain-as-published.
    #[serde(default)]
    pub rap: Flag,
    /// Retain handling 0..=2.
    #[serde(default)]
    pub rh: u8,
}

/// EMQX sends 0/1; people send true/false.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(untagged)]
pub enum Flag {
    /// `0` / `1`.
    Num(u8),
    /// `false` / `true`.
    Bool(bool),
    /// Absent.
    #[default]
    #[serde(skip)]
    Unset,
}

impl Flag {
    fn on(self) -> bool {
        match self {
            Flag::Num(n) => n != 0,
            Flag::Bool(b) => b,
            Flag::Unset => false,
        }
    }
}

/// Validates and applies a subscription on a client's behalf.
pub fn subscribe_for(st: &State, ns: Option<Namespace>, id: &str, r: &SubReq) -> ApiResult<Value> {
    let c = resolve(st, ns, id)?;
    let n = c.info.namespace;
    let sf = SubscriptionFilter::parse(&r.topic, st.ctx.bus.config().max_topic_levels)
        .map_err(|e| ApiError::bad_request(format!("topic {:?}: {e}", r.topic)))?;
    let qos = QoS::try_from(r.qos).map_err(|_| ApiError::bad_request("qos must be 0, 1 or 2"))?;
    let retain_handling = match r.rh {
        0 => RetainHandling::OnSubscribe,
        1 => RetainHandling::OnNewSubscribe,
        2 => RetainHandling::Never,
        _ => return Err(ApiError::bad_request("rh must be 0, 1 or 2")),
    };
    let opts = SubOptions {
        qos,
        no_local: r.nl.on(),
        retain_as_published: r.rap.on(),
        retain_handling,
        subscription_id: None,
    };
    st.ctx
        .bus
        .subscribe_for(n, &c.info.client_id, sf.clone(), opts)
        .map_err(|e| match e {
            BusError::NotFound => ApiError::not_found("Client not found"),
            other => ApiError::bad_request(other.to_string()),
        })?;
    Ok(view::subscription(st.node(), n, id, &sf, &opts))
}

/// Removes a subscription; `Ok(false)` when the client had none on that filter.
pub fn unsubscribe_for(
    st: &State,
    ns: Option<Namespace>,
    id: &str,
    topic: &str,
) -> ApiResult<bool> {
    let c = resolve(st, ns, id)?;
    let sf = SubscriptionFilter::parse(topic, st.ctx.bus.config().max_topic_levels)
        .map_err(|e| ApiError::bad_request(format!("topic {topic:?}: {e}")))?;
    st.ctx
        .bus
        .unsubscribe_for(c.info.namespace, &c.info.client_id, &sf)
        .map_err(|e| match e {
            BusError::NotFound => ApiError::not_found("Client not found"),
            other => ApiError::bad_request(other.to_string()),
        })
}

/// `GET /api/v5/clients`.
pub async fn list(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    list_clients(&st.0, None, &q).map(Json)
}

/// `GET /api/v5/clients/{clientid}`.
pub async fn get(st: St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let c = resolve(&st.0, None, &id)?;
    Ok(Json(view::client(st.0.node(), &c)))
}

/// `DELETE /api/v5/clients/{clientid}` → 204 (kick).
pub async fn kick(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    kick_client(&st.0, None, &id)
}

/// `GET /api/v5/clients/{clientid}/subscriptions`.
pub async fn subscriptions(st: St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    client_subscriptions(&st.0, None, &id).map(|v| Json(json!(v)))
}

/// `POST /api/v5/clients/{clientid}/subscribe` `{topic, qos, nl, rap, rh}`.
pub async fn subscribe(st: St, Path(id): Path<String>, raw: Bytes) -> ApiResult<Json<Value>> {
    let r: SubReq = body(&raw)?;
    subscribe_for(&st.0, None, &id, &r).map(Json)
}

/// `POST /api/v5/clients/{clientid}/subscribe/bulk` `[{topic, qos, ...}]`.
pub async fn subscribe_bulk(st: St, Path(id): Path<String>, raw: Bytes) -> ApiResult<Json<Value>> {
    let rs: Vec<SubReq> = body(&raw)?;
    let mut out = Vec::with_capacity(rs.len());
    for r in &rs {
        out.push(subscribe_for(&st.0, None, &id, r)?);
    }
    Ok(Json(json!(out)))
}

#[derive(Deserialize)]
struct UnsubReq {
    topic: String,
}

/// `POST /api/v5/clients/{clientid}/unsubscribe` `{topic}` → 204.
pub async fn unsubscribe(st: St, Path(id): Path<String>, raw: Bytes) -> ApiResult<Response> {
    let r: UnsubReq = body(&raw)?;
    unsubscribe_for(&st.0, None, &id, &r.topic)?;
    Ok(no_content())
}
