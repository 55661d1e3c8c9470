//! `/api/v5/psk`: the pre-shared keys of the DTLS listeners (Switchyard's own API; EMQX has
//! none for PSK). Identities are listed, added and deleted; keys are write-only and never
//! returned. Kept in the API-state store, kind [`PSK_KIND`] (key: the identity, document
//! `{"key": "<raw key>"}`); the binary's view of that kind feeds the DTLS listeners' in-memory
//! key table, and `psk_authentication.init_file` is imported into the same kind at start.
//!
//! Must not know: DTLS; this is a table of strings.

use super::{body, no_content, St};
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// The API-state store kind of pre-shared keys.
pub const PSK_KIND: &str = "psk";

/// Longest identity or key accepted (RFC 4279 §5.3: identities up to 2^16-1 bytes; keys of a
/// few dozen bytes in practice). Bounds what one request can store.
const MAX_LEN: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPsk {
    identity: String,
    key: String,
}

fn state_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "psk: API-state store failed");
    ApiError::internal(e.to_string())
}

/// `GET /api/v5/psk` → `{data: [{identity}]}`, sorted; keys are never returned.
pub async fn list(st: St) -> ApiResult<Json<Value>> {
    let state = st.0.ctx.state.clone();
    let docs = tokio::task::spawn_blocking(move || state.list(PSK_KIND))
        .await
        .map_err(state_error)?
        .map_err(state_error)?;
    let mut ids: Vec<String> = docs.into_iter().map(|(k, _)| k).collect();
    ids.sort();
    let data: Vec<Value> = ids.iter().map(|i| json!({ "identity": i })).collect();
    Ok(Json(json!({ "data": data })))
}

/// `POST /api/v5/psk` `{identity, key}` → 201 `{identity}`; an existing identity gets the new
/// key (new handshakes use it; established associations keep theirs).
pub async fn create(st: St, raw: Bytes) -> ApiResult<Response> {
    let b: NewPsk = body(&raw)?;
    if b.identity.is_empty() || b.key.is_empty() {
        return Err(ApiError::bad_request("identity and key must not be empty"));
    }
    if b.identity.len() > MAX_LEN || b.key.len() > MAX_LEN {
        return Err(ApiError::bad_request(format!(
            "identity and key are at most {MAX_LEN} bytes"
        )));
    }
    let state = st.0.ctx.state.clone();
    let identity = b.identity.clone();
    let doc = json!({ "key": b.key });
    tokio::task::spawn_blocking(move || state.put(PSK_KIND, &identity, &doc))
        .await
        .map_err(state_error)?
        .map_err(state_error)?;
    tracing::info!(psk_identity = %b.identity, "PSK identity set through the API");
    Ok((StatusCode::CREATED, Json(json!({ "identity": b.identity }))).into_response())
}

/// `DELETE /api/v5/psk/{identity}` → 204, or 404 if there is no such identity. Peers that
/// already completed a handshake with it keep their association until it ends.
pub async fn delete(st: St, Path(identity): Path<String>) -> ApiResult<Response> {
    let state = st.0.ctx.state.clone();
    let id = identity.clone();
    let removed = tokio::task::spawn_blocking(move || state.delete(PSK_KIND, &id))
        .await
        .map_err(state_error)?
        .map_err(state_error)?;
    if !removed {
        return Err(ApiError::not_found(format!("no PSK identity {identity:?}")));
    }
    tracing::info!(psk_identity = %identity, "PSK identity deleted through the API");
    Ok(no_content())
}
