//! `/api/v5/banned`: the banned-clients list, as EMQX 5 manages it. Entries ban a client id,
//! a username or a peer host (an address or CIDR block) until an optional time; every gateway
//! checks the list at connect, before authentication. Kept in the API-state store.

use super::{body, no_content, St};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{Page, Params};
use crate::time::rfc3339;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_auth::{BanEntry, BanError, BanKind};

fn at(secs: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

fn entry_json(e: &BanEntry) -> Value {
    json!({
        "as": e.kind.as_str(),
        "who": e.who,
        "by": e.by,
        "reason": e.reason,
        "at": at(e.at),
        "until": e.until.map_or(Value::String("infinity".into()), |u| Value::String(at(u))),
    })
}

/// A time in the body: RFC 3339 text, or seconds since the Unix epoch.
#[derive(Deserialize)]
#[serde(untagged)]
enum When {
    Secs(u64),
    Text(String),
}

fn parse_when(field: &str, w: &When) -> ApiResult<Option<u64>> {
    match w {
        When::Secs(s) => Ok(Some(*s)),
        When::Text(t) if t == "infinity" => Ok(None),
        When::Text(t) => {
            let parsed =
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        ApiError::bad_request(format!("{field}: not an RFC 3339 time: {e}"))
                    })?;
            u64::try_from(parsed.unix_timestamp())
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{field}: before 1970")))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBan {
    #[serde(rename = "as")]
    kind: String,
    who: String,
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    at: Option<When>,
    #[serde(default)]
    until: Option<When>,
}

fn kind(s: &str) -> ApiResult<BanKind> {
    BanKind::parse(s).ok_or_else(|| {
        ApiError::bad_request(format!(
            "as: must be clientid, username or peerhost, got {s:?}"
        ))
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn store_error(e: BanError) -> ApiError {
    match e {
        BanError::Invalid(m) => ApiError::bad_request(m),
        BanError::State(e) => {
            tracing::error!(error = %e, "banned list: change not saved");
            ApiError::internal(e.to_string())
        }
    }
}

/// `GET /api/v5/banned?page=&limit=` → `{data: [{as, who, by, reason, at, until}], meta}`.
pub async fn list(st: St, Query(q): Query<Params>) -> ApiResult<Json<Value>> {
    let page = Page::from(&q)?;
    let banned = st.0.ctx.banned.clone();
    let items = tokio::task::spawn_blocking(move || banned.list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(page.wrap(items.iter().map(entry_json).collect())))
}

/// `POST /api/v5/banned` `{as, who, reason?, by?, at?, until?}` → 200 with the entry (EMQX 5
/// answers 200); 400 for a bad `as`, `who` or time, or an `until` already past.
pub async fn create(
    st: St,
    Extension(principal): Extension<Principal>,
    raw: Bytes,
) -> ApiResult<Response> {
    let b: NewBan = body(&raw)?;
    let now = now_secs();
    let at = match &b.at {
        Some(w) => parse_when("at", w)?.unwrap_or(now),
        None => now,
    };
    let until = match &b.until {
        Some(w) => parse_when("until", w)?,
        None => None,
    };
    if until.is_some_and(|u| u <= now) {
        return Err(ApiError::bad_request("until: must be in the future"));
    }
    let entry = BanEntry {
        kind: kind(&b.kind)?,
        who: b.who,
        reason: b.reason.unwrap_or_default(),
        by: b.by.unwrap_or_else(|| principal.name().to_owned()),
        at,
        until,
    };
    let banned = st.0.ctx.banned.clone();
    let stored = entry.clone();
    tokio::task::spawn_blocking(move || banned.add(stored))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(store_error)?;
    tracing::info!(
        by = principal.name(),
        kind = entry.kind.as_str(),
        who = entry.who,
        "client banned"
    );
    Ok((StatusCode::OK, Json(entry_json(&entry))).into_response())
}

/// `DELETE /api/v5/banned/{as}/{who}` → 204, or 404 NOT_FOUND.
pub async fn delete(
    st: St,
    Extension(principal): Extension<Principal>,
    Path((kind_name, who)): Path<(String, String)>,
) -> ApiResult<Response> {
    let k = kind(&kind_name)?;
    let banned = st.0.ctx.banned.clone();
    let who2 = who.clone();
    let had = tokio::task::spawn_blocking(move || banned.remove(k, &who2))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(store_error)?;
    if !had {
        return Err(ApiError::not_found("Banned entry not found"));
    }
    tracing::info!(by = principal.name(), kind = kind_name, who, "ban lifted");
    Ok(no_content())
}
