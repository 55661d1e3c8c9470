//! `/api/v5/authorization`: the ACL as EMQX 5.8's API shows it (shared/specs/emqx-auth-api.md
//! §9.2): the sources (today the `file` source, `authorization.file`, whose `rules` carry the
//! TOML text of Switchyard's rules rather than EMQX's Erlang terms), the settings, and emptying
//! every client's decision cache.
//!
//! Read-only for now except the cache: sources and settings come from the configuration.

use super::{no_content, St};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use axum::extract::Path;
use axum::response::Response;
use axum::{Extension, Json};
use serde_json::{json, Value};
use switchyard_auth::{Decision, DenyAction};

/// The `file` source as GET shows it.
fn file_source(st: &St) -> Value {
    let path = &st.0.ctx.config.authorization.file;
    let rules = std::fs::read_to_string(path).unwrap_or_default();
    json!({"type": "file", "enable": true, "rules": rules, "path": path.display().to_string()})
}

/// `GET /api/v5/authorization/sources` → `{"sources": [...]}`.
pub async fn sources(st: St) -> Json<Value> {
    Json(json!({ "sources": [file_source(&st)] }))
}

/// `GET /api/v5/authorization/sources/{type}`.
pub async fn source(st: St, Path(kind): Path<String>) -> ApiResult<Json<Value>> {
    if kind == "file" {
        Ok(Json(file_source(&st)))
    } else {
        Err(ApiError::not_found(format!("Not found: {kind}")))
    }
}

/// `GET /api/v5/authorization/settings`.
pub async fn settings(st: St) -> Json<Value> {
    let s = st.0.ctx.authz.settings();
    let ttl = s.cache.ttl.as_millis();
    Json(json!({
        "no_match": if s.no_match == Decision::Allow { "allow" } else { "deny" },
        "deny_action": if s.deny_action == DenyAction::Ignore { "ignore" } else { "disconnect" },
        "cache": {
            "enable": s.cache.enable,
            "max_size": s.cache.max_size,
            "ttl": if (ttl / 1000) * 1000 == ttl { format!("{}s", ttl / 1000) } else { format!("{ttl}ms") },
            "excludes": [],
        },
    }))
}

/// `DELETE /api/v5/authorization/cache` → 204: every client's cached decisions are dropped.
pub async fn clean_cache(st: St, Extension(who): Extension<Principal>) -> Response {
    st.0.ctx.authz.clear_cache();
    tracing::info!(by = who.name(), "authorization cache cleaned");
    no_content()
}
