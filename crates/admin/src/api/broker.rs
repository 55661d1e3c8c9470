//! Node-level reads: `/status` (health, no auth), `/stats`, `/metrics`, `/nodes`,
//! `/listeners`.

use super::{St, State};
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_bool, Params};
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// `GET /status`: 200 while the node runs (for load balancers); `?format=json` for JSON.
pub async fn status(st: St, Query(q): Query<Params>) -> Response {
    let node = st.0.node().to_owned();
    // Clustered: whether the link to the other nodes is up (the node serves its own clients
    // either way).
    let cluster = st.0.ctx.cluster.as_ref().map(|c| c.connected());
    if q.get("format").map(String::as_str) == Some("json") {
        let mut v = json!({
            "node_name": node,
            "rel_vsn": st.0.ctx.version,
            "status": "running",
            "uptime": st.0.ctx.bus.uptime().as_secs(),
        });
        if let Some(up) = cluster {
            v["cluster"] = json!(if up { "connected" } else { "disconnected" });
        }
        return Json(v).into_response();
    }
    let mut text = format!("Node {node} is started\nswitchyard is running\n");
    match cluster {
        Some(true) => text.push_str("cluster: connected to NATS\n"),
        Some(false) => {
            text.push_str("cluster: NATS unreachable, serving local clients only\n");
        }
        None => {}
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// Connections (online clients) and sessions per namespace: every namespace of the gateway
/// table, and any other a client is in.
pub fn per_namespace(st: &State) -> BTreeMap<&'static str, (u64, u64)> {
    let mut out: BTreeMap<&'static str, (u64, u64)> = st
        .ctx
        .gateways
        .iter()
        .map(|g| (g.namespace, (0, 0)))
        .collect();
    for c in st.ctx.bus.clients() {
        let e = out.entry(c.info.namespace.0).or_insert((0, 0));
        if c.connected {
            e.0 = e.0.saturating_add(1);
        }
        e.1 = e.1.saturating_add(1);
    }
    out
}

/// Distinct subscription filters (EMQX's "topics", the route table).
pub fn topic_count(st: &State) -> usize {
    st.ctx
        .bus
        .all_subscriptions()
        .into_iter()
        .map(|(_, _, sf, _)| sf.filter.as_str().to_owned())
        .collect::<BTreeSet<_>>()
        .len()
}

fn stats_object(st: &State) -> Map<String, Value> {
    let per = per_namespace(st);
    let live: u64 = per.values().map(|v| v.0).sum();
    let sessions: u64 = per.values().map(|v| v.1).sum();
    let subs = st.ctx.bus.all_subscriptions();
    let shared = subs.iter().filter(|s| s.2.is_shared()).count();
    let mut m = Map::new();
    m.insert("node".into(), json!(st.node()));
    m.insert("connections.count".into(), json!(live));
    m.insert("live_connections.count".into(), json!(live));
    m.insert("sessions.count".into(), json!(sessions));
    m.insert("subscriptions.count".into(), json!(subs.len()));
    m.insert("subscriptions.shared.count".into(), json!(shared));
    m.insert("topics.count".into(), json!(topic_count(st)));
    m.insert("retained.count".into(), json!(st.ctx.bus.retained().len()));
    for (ns, (conns, sess)) in per {
        m.insert(format!("{ns}.connections.count"), json!(conns));
        m.insert(format!("{ns}.sessions.count"), json!(sess));
    }
    m
}

/// Per-node list, or one object with `?aggregate=true` (EMQX's two shapes).
fn node_or_aggregate(q: &Params, obj: Map<String, Value>) -> ApiResult<Json<Value>> {
    if opt_bool(q, "aggregate")?.unwrap_or(false) {
        let mut obj = obj;
        obj.remove("node");
        Ok(Json(Value::Object(obj)))
    } else {
        Ok(Json(json!([obj])))
    }
}

/// `GET /api/v5/stats[?aggregate=true]`.
pub async fn stats(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    node_or_aggregate(&q, stats_object(&st.0))
}

/// `GET /api/v5/metrics[?aggregate=true]`: the bus counters with EMQX's dotted names.
pub async fn metrics(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    let mut m = Map::new();
    m.insert("node".into(), json!(st.0.node()));
    for (name, value) in st.0.ctx.bus.metrics().snapshot() {
        m.insert(name.into(), json!(value));
    }
    node_or_aggregate(&q, m)
}

fn node_json(st: &State) -> Value {
    let stats = stats_object(st);
    json!({
        "node": st.node(),
        "node_status": "running",
        "version": st.ctx.version,
        "uptime": u64::try_from(st.ctx.bus.uptime().as_millis()).unwrap_or(u64::MAX),
        "connections": stats.get("connections.count"),
        "live_connections": stats.get("live_connections.count"),
        "role": "core",
        "edition": "Opensource",
        "sys_path": std::env::current_dir().ok().map(|p| p.display().to_string()),
        "data_dir": st.ctx.config.node.data_dir.display().to_string(),
    })
}

/// Another cluster node in the same shape as this one's (what it last said of itself).
fn peer_json(p: &crate::PeerNode) -> Value {
    json!({
        "node": p.name,
        "node_status": if p.running { "running" } else { "stopped" },
        "version": p.version,
        "uptime": p.uptime_ms,
        "connections": p.connections,
        "role": "core",
        "edition": "Opensource",
    })
}

/// `GET /api/v5/nodes`: this node first, then every other node of the cluster.
pub async fn nodes(st: St) -> Json<Value> {
    let mut list = vec![node_json(&st.0)];
    if let Some(c) = &st.0.ctx.cluster {
        list.extend(c.peers().iter().map(peer_json));
    }
    Json(Value::Array(list))
}

/// `GET /api/v5/nodes/{node}`.
pub async fn node(st: St, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    if name == st.0.node() {
        return Ok(Json(node_json(&st.0)));
    }
    let peer =
        st.0.ctx
            .cluster
            .as_ref()
            .and_then(|c| c.peers().into_iter().find(|p| p.name == name));
    match peer {
        Some(p) => Ok(Json(peer_json(&p))),
        None => Err(ApiError::not_found(format!("node {name} not found"))),
    }
}

/// `GET /api/v5/listeners`: every bound listener with its address (the WebSocket tool reads
/// the `mqtt:ws:default` port and path here).
pub async fn listeners(st: St) -> Json<Value> {
    let c = &st.0.ctx.config;
    let list: Vec<Value> =
        st.0.ctx
            .listeners
            .iter()
            .map(|(id, bind)| {
                let mut parts = id.splitn(3, ':');
                let proto = parts.next().unwrap_or_default();
                let kind = parts.next().unwrap_or_default();
                let name = parts.next().unwrap_or_default();
                let mut v = json!({
                    "id": id, "type": kind, "name": name, "protocol": proto,
                    "bind": bind, "running": true,
                });
                let path = c
                    .protocol(proto)
                    .and_then(|p| p.listener(kind)?.ws_path.clone());
                if let Some(path) = path {
                    v["path"] = json!(path);
                }
                v
            })
            .collect();
    Json(json!(list))
}
