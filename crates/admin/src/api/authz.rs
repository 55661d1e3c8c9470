//! `/api/v5/authorization`: the sources every gateway's checks ask, with EMQX 5.8's paths and
//! bodies (shared/specs/emqx-auth-api.md §9.2): list, create (at the front), get, update,
//! delete, status, move, order; the settings (`no_match`, `deny_action`, `cache`); emptying
//! every client's decision cache.
//!
//! Changes go to the API-state store (fsynced, so on the blocking pool) before they take
//! effect, and from then on take precedence over `[[authorization.sources]]` and the
//! `[authorization]` settings. The `file` source shows its rules as TOML text (Switchyard's ACL
//! format, not EMQX's Erlang terms); a `file` source created or updated with `rules` keeps that
//! text in the store, never in `authorization.file`.

use super::{body, no_content, St};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::Path;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use switchyard_auth::{settings_json, Authorizer, SourceError, SourceStatus};

fn source_error(e: SourceError) -> ApiError {
    match e {
        SourceError::Invalid(m) => ApiError::bad_request(m),
        SourceError::Duplicated(t) => ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            format!("duplicated_authz_source_type: {t}"),
        ),
        e @ SourceError::NotFound(_) => ApiError::not_found(e.to_string()),
        SourceError::State(e) => {
            tracing::error!(error = %e, "authorization: change not saved");
            ApiError::internal(e.to_string())
        }
    }
}

/// Runs a change (a store write) on the blocking pool.
async fn blocking<T: Send + 'static>(
    authz: Arc<Authorizer>,
    f: impl FnOnce(&Authorizer) -> Result<T, SourceError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&authz))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(source_error)
}

/// `GET /api/v5/authorization/sources` → `{"sources": [...]}`, in order.
pub async fn sources(st: St) -> Json<Value> {
    Json(json!({ "sources": st.0.ctx.authz.list_sources() }))
}

/// `POST /api/v5/authorization/sources` → 204; the new source goes first.
pub async fn create(
    st: St,
    Extension(who): Extension<Principal>,
    raw: Bytes,
) -> ApiResult<Response> {
    let config: Value = body(&raw)?;
    let kind = config.get("type").cloned().unwrap_or(Value::Null);
    blocking(st.0.ctx.authz.clone(), move |a| a.create_source(&config)).await?;
    tracing::info!(by = who.name(), source = %kind, "authorization source created");
    Ok(no_content())
}

/// `GET /api/v5/authorization/sources/{type}`.
pub async fn source(st: St, Path(kind): Path<String>) -> ApiResult<Json<Value>> {
    st.0.ctx
        .authz
        .get_source(&kind)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Not found: {kind}")))
}

/// `PUT /api/v5/authorization/sources/{type}` (the full config) → 204.
pub async fn update(
    st: St,
    Extension(who): Extension<Principal>,
    Path(kind): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let config: Value = body(&raw)?;
    let k = kind.clone();
    blocking(st.0.ctx.authz.clone(), move |a| {
        a.update_source(&k, &config)
    })
    .await?;
    tracing::info!(by = who.name(), source = %kind, "authorization source updated");
    Ok(no_content())
}

/// `DELETE /api/v5/authorization/sources/{type}` → 204.
pub async fn delete(
    st: St,
    Extension(who): Extension<Principal>,
    Path(kind): Path<String>,
) -> ApiResult<Response> {
    let k = kind.clone();
    blocking(st.0.ctx.authz.clone(), move |a| a.delete_source(&k)).await?;
    tracing::info!(by = who.name(), source = %kind, "authorization source deleted");
    Ok(no_content())
}

#[derive(Deserialize)]
struct MoveBody {
    position: String,
}

/// `POST /api/v5/authorization/sources/{type}/move` `{"position": …}` → 204.
pub async fn move_to(
    st: St,
    Extension(who): Extension<Principal>,
    Path(kind): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let m: MoveBody = body(&raw)?;
    let (k, pos) = (kind.clone(), m.position.clone());
    blocking(st.0.ctx.authz.clone(), move |a| a.move_source(&k, &pos)).await?;
    tracing::info!(by = who.name(), source = %kind, position = %m.position, "authorization source moved");
    Ok(no_content())
}

#[derive(Deserialize)]
struct OrderItem {
    #[serde(rename = "type")]
    kind: String,
}

/// `PUT /api/v5/authorization/sources/order` `[{"type": …}, …]` → 204.
pub async fn order(
    st: St,
    Extension(who): Extension<Principal>,
    raw: Bytes,
) -> ApiResult<Response> {
    let items: Vec<OrderItem> = body(&raw)?;
    let kinds: Vec<String> = items.into_iter().map(|i| i.kind).collect();
    let shown = kinds.join(",");
    blocking(st.0.ctx.authz.clone(), move |a| a.reorder_sources(&kinds)).await?;
    tracing::info!(by = who.name(), order = %shown, "authorization sources reordered");
    Ok(no_content())
}

fn metrics(s: &SourceStatus) -> Value {
    json!({
        "total": s.total, "allow": s.allow, "deny": s.deny, "nomatch": s.nomatch,
        "ignore": s.ignore, "rate": 0.0, "rate_max": 0.0, "rate_last5m": 0.0,
    })
}

/// `GET /api/v5/authorization/sources/{type}/status` → EMQX's status body, plus Switchyard's
/// `timeouts`.
pub async fn status(st: St, Path(kind): Path<String>) -> ApiResult<Json<Value>> {
    let s =
        st.0.ctx
            .authz
            .source_status(&kind)
            .ok_or_else(|| ApiError::not_found(format!("Not found: {kind}")))?;
    let node = st.0.node().to_owned();
    let m = metrics(&s);
    Ok(Json(json!({
        "status": s.status,
        "metrics": m,
        "node_status": [{"node": node, "status": s.status}],
        "node_metrics": [{"node": node, "metrics": m}],
        "resource_metrics": {},
        "node_resource_metrics": [],
        "node_error": [],
        "timeouts": s.timeouts,
    })))
}

/// `GET /api/v5/authorization/settings`.
pub async fn settings(st: St) -> Json<Value> {
    Json(settings_json(&st.0.ctx.authz.settings()))
}

/// `PUT /api/v5/authorization/settings` (all of `no_match`, `deny_action`, `cache`) → 200 with
/// the settings now in force.
pub async fn put_settings(
    st: St,
    Extension(who): Extension<Principal>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    let v: Value = body(&raw)?;
    let s = blocking(st.0.ctx.authz.clone(), move |a| a.put_settings(&v)).await?;
    tracing::info!(by = who.name(), "authorization settings changed");
    Ok(Json(settings_json(&s)))
}

/// `DELETE /api/v5/authorization/cache` → 204: every client's cached decisions are dropped.
pub async fn clean_cache(st: St, Extension(who): Extension<Principal>) -> Response {
    st.0.ctx.authz.clear_cache();
    tracing::info!(by = who.name(), "authorization cache cleaned");
    no_content()
}
