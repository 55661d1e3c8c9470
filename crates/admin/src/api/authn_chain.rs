//! `/api/v5/authentication`: the chain of authenticators every gateway uses, managed with EMQX
//! 5.8's paths and bodies (shared/specs/emqx-auth-api.md §2): list, create (appended), get,
//! update, delete, move (`/position/{position}` and the older `POST /move`), order, status.
//!
//! Changes go to the API-state store (fsynced, so on the blocking pool) before they take
//! effect, and from then on take precedence over `[[authentication.authenticators]]`. Secrets
//! are answered as `"******"`; a PUT that sends `"******"` back keeps the stored secret.

use super::{body, no_content, St};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use switchyard_auth::{AuthnStatus, Chain, ChainError};

fn chain_error(e: ChainError) -> ApiError {
    match e {
        ChainError::Invalid(m) => ApiError::bad_request(m),
        ChainError::AlreadyExists(id) => ApiError::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            format!("authenticator {id} already exists"),
        ),
        e @ ChainError::NotFound(_) => ApiError::not_found(e.to_string()),
        ChainError::State(e) => {
            tracing::error!(error = %e, "authentication chain: change not saved");
            ApiError::internal(e.to_string())
        }
    }
}

/// Runs a change of the chain (a store write) on the blocking pool.
async fn blocking<T: Send + 'static>(
    chain: Arc<Chain>,
    f: impl FnOnce(&Chain) -> Result<T, ChainError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || f(&chain))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(chain_error)
}

/// `GET /api/v5/authentication` → the chain, in order.
pub async fn list(st: St) -> Json<Value> {
    Json(Value::Array(st.0.ctx.chain.list()))
}

/// `POST /api/v5/authentication` → 200 with the stored config; 409 if its id is taken.
pub async fn create(
    st: St,
    Extension(who): Extension<Principal>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    let config: Value = body(&raw)?;
    let shown = blocking(st.0.ctx.chain.clone(), move |c| c.create(&config)).await?;
    tracing::info!(by = who.name(), id = %shown["id"], "authenticator created");
    Ok(Json(shown))
}

/// `GET /api/v5/authentication/{id}`.
pub async fn get(st: St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    st.0.ctx
        .chain
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Authenticator '{id}' does not exist")))
}

/// `PUT /api/v5/authentication/{id}` → 204.
pub async fn update(
    st: St,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let config: Value = body(&raw)?;
    let target = id.clone();
    blocking(st.0.ctx.chain.clone(), move |c| c.update(&target, &config)).await?;
    tracing::info!(by = who.name(), %id, "authenticator updated");
    Ok(no_content())
}

/// `DELETE /api/v5/authentication/{id}` → 204 (also for an id not in the chain).
pub async fn delete(
    st: St,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let target = id.clone();
    blocking(st.0.ctx.chain.clone(), move |c| c.delete(&target)).await?;
    tracing::info!(by = who.name(), %id, "authenticator deleted");
    Ok(no_content())
}

/// `PUT /api/v5/authentication/{id}/position/{position}` → 204.
pub async fn position(
    st: St,
    Extension(who): Extension<Principal>,
    Path((id, pos)): Path<(String, String)>,
) -> ApiResult<Response> {
    move_to(st, who, id, pos).await
}

#[derive(Deserialize)]
struct MoveBody {
    position: String,
}

/// `POST /api/v5/authentication/{id}/move` `{"position": …}` (EMQX 5.0's form) → 204.
pub async fn move_legacy(
    st: St,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let b: MoveBody = body(&raw)?;
    move_to(st, who, id, b.position).await
}

async fn move_to(st: St, who: Principal, id: String, pos: String) -> ApiResult<Response> {
    let (target, p) = (id.clone(), pos.clone());
    blocking(st.0.ctx.chain.clone(), move |c| c.move_to(&target, &p)).await?;
    tracing::info!(by = who.name(), %id, position = %pos, "authenticator moved");
    Ok(no_content())
}

#[derive(Deserialize)]
struct OrderItem {
    id: String,
}

/// `PUT /api/v5/authentication/order` `[{"id": …}, …]` → 204.
pub async fn order(
    st: St,
    Extension(who): Extension<Principal>,
    raw: Bytes,
) -> ApiResult<Response> {
    let items: Vec<OrderItem> = body(&raw)?;
    let ids: Vec<String> = items.into_iter().map(|i| i.id).collect();
    let shown = ids.join(",");
    blocking(st.0.ctx.chain.clone(), move |c| c.reorder(&ids)).await?;
    tracing::info!(by = who.name(), order = %shown, "authenticators reordered");
    Ok(no_content())
}

fn metrics(s: &AuthnStatus) -> Value {
    json!({
        "total": s.total, "success": s.success, "failed": s.failed, "nomatch": s.nomatch,
        "rate": 0.0, "rate_max": 0.0, "rate_last5m": 0.0,
    })
}

/// `GET /api/v5/authentication/{id}/status` → EMQX's status body (§2.3), plus Switchyard's
/// `cache_hits` and `timeouts`.
pub async fn status(st: St, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let s =
        st.0.ctx
            .chain
            .status(&id)
            .ok_or_else(|| ApiError::not_found(format!("Authenticator '{id}' does not exist")))?;
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
        "cache_hits": s.cache_hits,
        "timeouts": s.timeouts,
    })))
}
