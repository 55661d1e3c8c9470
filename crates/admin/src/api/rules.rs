//! `/api/v5` rules, connectors and actions (EMQX 5.8's data-integration API,
//! specs/emqx-data-integration-api.md), and `/api/v5/prometheus/data_integration`.
//!
//! Owns: the HTTP side only — paths, query filters, status codes, EMQX's error shapes. The
//! objects, their validation and persistence belong to `switchyard_rules::RuleEngine`, which
//! the binary hands over in `AdminContext::rules`; without it every route answers 404.

use super::{body, no_content, St};
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_bool, opt_str, Page, Params};
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::fmt::Write;
use std::sync::Arc;
use switchyard_rules::{RuleEngine, RulesError, TestError};

/// The routes of this module, for the OpenAPI document: (method, path, tag, summary, auth).
pub const ROUTES: &[(&str, &str, &str, &str, bool)] = &[
    ("get", "/api/v5/rules", "rules", "Rules, paged; filters enable, from, like_id, like_from, like_description, match_from, action", true),
    ("post", "/api/v5/rules", "rules", "Create a rule {id?, sql, actions, enable, name, description} (201; bad SQL → 400 with line and column)", true),
    ("get", "/api/v5/rules/{id}", "rules", "One rule", true),
    ("put", "/api/v5/rules/{id}", "rules", "Change a rule: the body is merged into the stored rule ({\"enable\": false} disables it)", true),
    ("delete", "/api/v5/rules/{id}", "rules", "Delete a rule (204)", true),
    ("get", "/api/v5/rules/{id}/metrics", "rules", "matched, passed, failed, failed.exception, failed.no_result, actions.*", true),
    ("put", "/api/v5/rules/{id}/metrics/reset", "rules", "Zero a rule's counters (204)", true),
    ("post", "/api/v5/rules/{id}/test", "rules", "Run a stored rule on {context} (200 output; 412 NOT_MATCH; 404 RULE_NOT_FOUND)", true),
    ("post", "/api/v5/rule_test", "rules", "Dry run {sql, context} (context.event_type defaults to message_publish; 412 NOT_MATCH)", true),
    ("get", "/api/v5/rule_events", "rules", "The event topics a rule can select from, with their columns", true),
    ("get", "/api/v5/rule_engine", "rules", "{ignore_sys_message, jq_function_default_timeout}", true),
    ("get", "/api/v5/connectors", "connectors", "Connectors (array) with status", true),
    ("post", "/api/v5/connectors", "connectors", "Create a connector {type: http, name, url, headers, pool_size, …} (201; 400 ALREADY_EXISTS)", true),
    ("get", "/api/v5/connectors/{id}", "connectors", "One connector, id type:name", true),
    ("put", "/api/v5/connectors/{id}", "connectors", "Replace a connector's config", true),
    ("delete", "/api/v5/connectors/{id}", "connectors", "Delete a connector no action uses (204)", true),
    ("put", "/api/v5/connectors/{id}/enable/{enable}", "connectors", "Enable or disable (204)", true),
    ("post", "/api/v5/connectors/{id}/start", "connectors", "Start (204; 400 when disabled)", true),
    ("post", "/api/v5/connectors_probe", "connectors", "Test a connector body: 204 when the server answers, 400 TEST_FAILED", true),
    ("get", "/api/v5/actions", "actions", "Actions (array) with status and the rules using them", true),
    ("post", "/api/v5/actions", "actions", "Create an action {type: http, name, connector, parameters, resource_opts} (201)", true),
    ("get", "/api/v5/actions/{id}", "actions", "One action, id type:name", true),
    ("put", "/api/v5/actions/{id}", "actions", "Replace an action's config", true),
    ("delete", "/api/v5/actions/{id}", "actions", "Delete (204; 400 with rules while rules use it unless ?also_delete_dep_actions=true)", true),
    ("put", "/api/v5/actions/{id}/enable/{enable}", "actions", "Enable or disable (204)", true),
    ("post", "/api/v5/actions/{id}/start", "actions", "Start (204; 400 when disabled)", true),
    ("get", "/api/v5/actions/{id}/metrics", "actions", "matched, success, failed, dropped.*, queuing, inflight, retried", true),
    ("put", "/api/v5/actions/{id}/metrics/reset", "actions", "Zero an action's counters (204)", true),
    ("post", "/api/v5/actions_probe", "actions", "Test an action body: 204, or 400 TEST_FAILED", true),
    ("get", "/api/v5/actions_summary", "actions", "Short list {type, name, enable, status, rules, …}", true),
    ("get", "/api/v5/action_types", "actions", "Action types this node has", true),
    ("get", "/api/v5/prometheus/data_integration", "metrics", "Rule, action and connector metrics, Prometheus text (Accept: application/json for JSON)", true),
];

/// The authenticated routes of this module.
pub fn routes() -> Router<Arc<super::State>> {
    Router::new()
        .route("/api/v5/rules", get(list_rules).post(create_rule))
        .route(
            "/api/v5/rules/:id",
            get(get_rule).put(update_rule).delete(delete_rule),
        )
        .route("/api/v5/rules/:id/metrics", get(rule_metrics))
        .route("/api/v5/rules/:id/metrics/reset", put(reset_rule_metrics))
        .route("/api/v5/rules/:id/test", post(test_rule))
        .route("/api/v5/rule_test", post(rule_test))
        .route("/api/v5/rule_events", get(rule_events))
        .route("/api/v5/rule_engine", get(rule_engine))
        .route(
            "/api/v5/connectors",
            get(list_connectors).post(create_connector),
        )
        .route(
            "/api/v5/connectors/:id",
            get(get_connector)
                .put(update_connector)
                .delete(delete_connector),
        )
        .route(
            "/api/v5/connectors/:id/enable/:enable",
            put(enable_connector),
        )
        .route("/api/v5/connectors/:id/:op", post(start_connector))
        .route("/api/v5/connectors_probe", post(probe_connector))
        .route("/api/v5/actions", get(list_actions).post(create_action))
        .route(
            "/api/v5/actions/:id",
            get(get_action).put(update_action).delete(delete_action),
        )
        .route("/api/v5/actions/:id/enable/:enable", put(enable_action))
        .route("/api/v5/actions/:id/metrics", get(action_metrics))
        .route(
            "/api/v5/actions/:id/metrics/reset",
            put(reset_action_metrics),
        )
        .route("/api/v5/actions/:id/:op", post(start_action))
        .route("/api/v5/actions_probe", post(probe_action))
        .route("/api/v5/actions_summary", get(actions_summary))
        .route("/api/v5/action_types", get(action_types))
}

fn engine(st: &St) -> ApiResult<Arc<RuleEngine>> {
    st.0.ctx
        .rules
        .clone()
        .ok_or_else(|| ApiError::not_found("the rule engine is not running on this node"))
}

fn err(e: RulesError) -> Response {
    match e {
        RulesError::NotFound(m) => ApiError::not_found(m).into_response(),
        RulesError::AlreadyExists(m) => {
            ApiError::new(StatusCode::BAD_REQUEST, "ALREADY_EXISTS", m).into_response()
        }
        RulesError::InUse(rules) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": "BAD_REQUEST",
                        "message": "Cannot delete action while active rules are depending on it",
                        "rules": rules})),
        )
            .into_response(),
        RulesError::State(e) => ApiError::internal(e.to_string()).into_response(),
        e @ (RulesError::BadRequest(_) | RulesError::Sql(_)) => {
            ApiError::bad_request(e.to_string()).into_response()
        }
    }
}

fn answer(r: Result<Value, RulesError>, ok: StatusCode) -> Response {
    match r {
        Ok(v) => (ok, Json(v)).into_response(),
        Err(e) => err(e),
    }
}

fn done(r: Result<(), RulesError>) -> Response {
    match r {
        Ok(()) => no_content(),
        Err(e) => err(e),
    }
}

fn contains(v: &Value, key: &str, needle: &str) -> bool {
    v.get(key)
        .and_then(Value::as_str)
        .is_some_and(|s| s.contains(needle))
}

async fn list_rules(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    let e = engine(&st)?;
    let page = Page::from(&q)?;
    let enable = opt_bool(&q, "enable")?;
    let from = opt_str(&q, "from");
    let like_id = opt_str(&q, "like_id");
    let like_from = opt_str(&q, "like_from");
    let like_desc = opt_str(&q, "like_description");
    let match_from = opt_str(&q, "match_from");
    let action = opt_str(&q, "action");
    let froms = |r: &Value| -> Vec<String> {
        r["from"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let items: Vec<Value> = e
        .list_rules()
        .into_iter()
        .filter(|r| enable.map_or(true, |en| r["enable"] == json!(en)))
        .filter(|r| from.map_or(true, |f| froms(r).iter().any(|x| x == f)))
        .filter(|r| like_id.map_or(true, |s| contains(r, "id", s)))
        .filter(|r| like_from.map_or(true, |s| froms(r).iter().any(|x| x.contains(s))))
        .filter(|r| like_desc.map_or(true, |s| contains(r, "description", s)))
        .filter(|r| {
            match_from.map_or(true, |t| {
                froms(r)
                    .iter()
                    .any(|f| switchyard_rules::eval::topic_match(t, f))
            })
        })
        .filter(|r| {
            action.map_or(true, |a| {
                r["actions"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x.as_str() == Some(a)))
            })
        })
        .collect();
    Ok(Json(page.wrap(items)))
}

async fn create_rule(st: St, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    Ok(answer(e.create_rule(&b), StatusCode::CREATED))
}

async fn get_rule(st: St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    engine(&st)?
        .get_rule(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Rule Id Not Found"))
}

async fn update_rule(st: St, Path(id): Path<String>, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    Ok(answer(e.update_rule(&id, &b), StatusCode::OK))
}

async fn delete_rule(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(done(engine(&st)?.delete_rule(&id)))
}

async fn rule_metrics(st: St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    engine(&st)?
        .rule_metrics(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Rule Id Not Found"))
}

async fn reset_rule_metrics(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    if engine(&st)?.reset_rule_metrics(&id) {
        Ok(no_content())
    } else {
        Err(ApiError::not_found("Rule Id Not Found"))
    }
}

fn test_answer(r: Result<Value, TestError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(TestError::NotMatch) => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "NOT_MATCH",
            "SQL Not Match",
        )
        .into_response(),
        Err(TestError::Sql(e)) => {
            ApiError::bad_request(format!("Bad Arguments: {e}")).into_response()
        }
        Err(TestError::Eval(e)) => {
            let reason = match e {
                switchyard_rules::EvalError::DecodeJson => "decode_json_failed".to_string(),
                other => other.to_string(),
            };
            ApiError::bad_request(json!({"select_and_transform_error": reason}).to_string())
                .into_response()
        }
    }
}

fn json_content(headers: &HeaderMap) -> ApiResult<()> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "content-type:application/json Required",
        ))
    }
}

async fn rule_test(st: St, headers: HeaderMap, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    json_content(&headers)?;
    let b: Value = body(&raw)?;
    if let Some(m) = b.as_object() {
        switchyard_rules::model::check_keys(m, &["sql", "context"], &[])
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let sql = b["sql"]
        .as_str()
        .ok_or_else(|| ApiError::bad_request("sql: a string is required"))?;
    Ok(test_answer(e.test_sql(sql, &b["context"])))
}

async fn test_rule(st: St, Path(id): Path<String>, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    let rule = e.get_rule(&id).ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "RULE_NOT_FOUND", "Rule Id Not Found")
    })?;
    let sql = rule["sql"].as_str().unwrap_or_default();
    Ok(test_answer(e.test_sql(sql, &b["context"])))
}

async fn rule_events(st: St) -> ApiResult<Json<Value>> {
    engine(&st)?;
    let mut out = vec![
        json!({"event": "$events/message_publish", "event_type": "message_publish",
        "title": {"en": "Message publish", "zh": "消息发布"},
        "columns": switchyard_rules::columns::test_columns("message_publish", st.0.node())
            .keys().cloned().collect::<Vec<_>>()}),
    ];
    for (topic, ty) in switchyard_rules::columns::EVENTS {
        out.push(json!({"event": topic, "event_type": ty,
            "columns": switchyard_rules::columns::test_columns(ty, st.0.node())
                .keys().cloned().collect::<Vec<_>>()}));
    }
    Ok(Json(Value::Array(out)))
}

async fn rule_engine(st: St) -> ApiResult<Json<Value>> {
    engine(&st)?;
    Ok(Json(json!({
        "ignore_sys_message": st.0.ctx.config.rule_engine.ignore_sys_message,
        "jq_function_default_timeout": "10s"
    })))
}

async fn list_connectors(st: St) -> ApiResult<Json<Value>> {
    Ok(Json(Value::Array(engine(&st)?.list_connectors())))
}

async fn create_connector(st: St, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    Ok(answer(e.create_connector(&b), StatusCode::CREATED))
}

async fn get_connector(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(answer(engine(&st)?.get_connector(&id), StatusCode::OK))
}

async fn update_connector(st: St, Path(id): Path<String>, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    Ok(answer(e.update_connector(&id, &b), StatusCode::OK))
}

async fn delete_connector(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(done(engine(&st)?.delete_connector(&id)))
}

async fn enable_connector(
    st: St,
    Path((id, enable)): Path<(String, String)>,
) -> ApiResult<Response> {
    let enable = parse_bool(&enable)?;
    Ok(done(engine(&st)?.enable_connector(&id, enable)))
}

fn parse_bool(s: &str) -> ApiResult<bool> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "enable must be true or false, got {s}"
        ))),
    }
}

/// `POST …/{id}/start`: the only operation in 5.8; an enabled object is already running.
fn start(found: Result<Value, RulesError>, op: &str, what: &str) -> Response {
    if op != "start" {
        return ApiError::bad_request(format!("unknown operation {op}")).into_response();
    }
    match found {
        Ok(v) if v["enable"] == json!(false) => {
            ApiError::bad_request(format!("Forbidden operation, {what} not enabled"))
                .into_response()
        }
        Ok(_) => no_content(),
        Err(e) => err(e),
    }
}

async fn start_connector(st: St, Path((id, op)): Path<(String, String)>) -> ApiResult<Response> {
    Ok(start(engine(&st)?.get_connector(&id), &op, "connector"))
}

async fn probe_connector(st: St, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    Ok(match e.probe_connector(&b).await {
        Ok(()) => no_content(),
        Err(RulesError::BadRequest(m)) => {
            ApiError::new(StatusCode::BAD_REQUEST, "TEST_FAILED", m).into_response()
        }
        Err(other) => err(other),
    })
}

async fn list_actions(st: St) -> ApiResult<Json<Value>> {
    Ok(Json(Value::Array(engine(&st)?.list_actions())))
}

async fn create_action(st: St, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    Ok(answer(e.create_action(&b), StatusCode::CREATED))
}

async fn get_action(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(answer(engine(&st)?.get_action(&id), StatusCode::OK))
}

async fn update_action(st: St, Path(id): Path<String>, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    Ok(answer(e.update_action(&id, &b), StatusCode::OK))
}

async fn delete_action(
    st: St,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> ApiResult<Response> {
    let also = opt_bool(&q, "also_delete_dep_actions")?.unwrap_or(false);
    Ok(done(engine(&st)?.delete_action(&id, also)))
}

async fn enable_action(st: St, Path((id, enable)): Path<(String, String)>) -> ApiResult<Response> {
    let enable = parse_bool(&enable)?;
    Ok(done(engine(&st)?.enable_action(&id, enable)))
}

async fn start_action(st: St, Path((id, op)): Path<(String, String)>) -> ApiResult<Response> {
    Ok(start(engine(&st)?.get_action(&id), &op, "bridge"))
}

async fn action_metrics(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(answer(engine(&st)?.action_metrics(&id), StatusCode::OK))
}

async fn reset_action_metrics(st: St, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(done(engine(&st)?.reset_action_metrics(&id)))
}

async fn probe_action(st: St, raw: Bytes) -> ApiResult<Response> {
    let e = engine(&st)?;
    let b: Value = body(&raw)?;
    Ok(match e.probe_action(&b).await {
        Ok(()) => no_content(),
        Err(RulesError::BadRequest(m)) => {
            ApiError::new(StatusCode::BAD_REQUEST, "TEST_FAILED", m).into_response()
        }
        Err(other) => err(other),
    })
}

async fn actions_summary(st: St) -> ApiResult<Json<Value>> {
    let keys = [
        "type",
        "name",
        "enable",
        "description",
        "created_at",
        "last_modified_at",
        "status",
        "status_reason",
        "node_status",
        "rules",
    ];
    let list = engine(&st)?
        .list_actions()
        .into_iter()
        .map(|a| {
            let mut m = serde_json::Map::new();
            for k in keys {
                if let Some(v) = a.get(k) {
                    m.insert(k.into(), v.clone());
                }
            }
            Value::Object(m)
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

async fn action_types(st: St) -> ApiResult<Json<Value>> {
    engine(&st)?;
    Ok(Json(json!(["http"])))
}

/// `GET /api/v5/prometheus/data_integration` (spec §7): text, or JSON with
/// `Accept: application/json`.
pub async fn prometheus(st: St, headers: HeaderMap) -> ApiResult<Response> {
    let e = engine(&st)?;
    let mut series: Vec<(String, &'static str, String, u64)> = Vec::new();
    let rules = e.all_rule_metrics();
    let actions = e.all_action_metrics();
    let connectors = e.all_connector_status();
    series.push((
        "emqx_rules_count".into(),
        "gauge",
        String::new(),
        rules.len() as u64,
    ));
    series.push((
        "emqx_actions_count".into(),
        "gauge",
        String::new(),
        e.action_references() as u64,
    ));
    series.push((
        "emqx_connectors_count".into(),
        "gauge",
        String::new(),
        connectors.len() as u64,
    ));
    for r in &rules {
        series.push((
            "emqx_rule_enable".into(),
            "gauge",
            r.id.clone(),
            u64::from(r.enable),
        ));
        for (k, v) in &r.counters {
            series.push((
                format!("emqx_rule_{}", k.replace('.', "_")),
                "counter",
                r.id.clone(),
                *v,
            ));
        }
    }
    for a in &actions {
        series.push((
            "emqx_action_enable".into(),
            "gauge",
            a.id.clone(),
            u64::from(a.enable),
        ));
        series.push((
            "emqx_action_status".into(),
            "gauge",
            a.id.clone(),
            u64::from(a.connected),
        ));
        series.push((
            "emqx_action_inflight".into(),
            "gauge",
            a.id.clone(),
            a.inflight,
        ));
        series.push((
            "emqx_action_queuing".into(),
            "gauge",
            a.id.clone(),
            a.queuing,
        ));
        for (k, v) in &a.counters {
            series.push((
                format!("emqx_action_{}", k.replace('.', "_")),
                "counter",
                a.id.clone(),
                *v,
            ));
        }
    }
    for (id, enable, connected) in &connectors {
        series.push((
            "emqx_connector_enable".into(),
            "gauge",
            id.clone(),
            u64::from(*enable),
        ));
        series.push((
            "emqx_connector_status".into(),
            "gauge",
            id.clone(),
            u64::from(*connected),
        ));
    }
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        let list: Vec<Value> = series
            .iter()
            .map(|(n, _, id, v)| json!({"name": n, "id": id, "value": v}))
            .collect();
        return Ok(Json(Value::Array(list)).into_response());
    }
    let mut out = String::new();
    let mut last = String::new();
    let mut sorted = series;
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind, id, v) in sorted {
        if name != last {
            let _ = writeln!(out, "# TYPE {name} {kind}");
            last = name.clone();
        }
        if id.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let id = id.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "{name}{{id=\"{id}\"}} {v}");
        }
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
