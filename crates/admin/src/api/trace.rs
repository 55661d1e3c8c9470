//! `/api/v5/trace`: log traces as EMQX 5 manages them. A trace names one client id, one topic
//! filter or one peer IP address and a time window; while it runs, everything logged about a
//! matching client at debug level goes to the trace's own file, whatever the log level.
//!
//! Owns: the HTTP side (EMQX's body and answer shapes, validation) and the vocabulary the
//! binary implements ([`TraceSpec`], [`TraceControl`]). The binary owns the traces themselves
//! (kind `traces` in the API-state store, the tracing layer, the files under
//! `node.data_dir/trace/`); a binary without them passes no [`TraceControl`] and every route
//! answers 404.
//!
//! Differences from EMQX: the download is the trace's log file itself (text), not a zip of
//! one file per node; times are answered in UTC.

use super::{body, no_content, St};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_num, Params};
use crate::time::rfc3339;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most traces kept at once (EMQX's limit).
pub const MAX_TRACES: usize = 30;
/// A trace without `end_at` runs this long after its start (EMQX's default).
const DEFAULT_DURATION_SECS: u64 = 10 * 60;
/// Longest trace name: it names a file, `<name>.log`.
const MAX_NAME_LEN: usize = 200;
/// Most bytes one `GET /trace/{name}/log` returns.
const MAX_LOG_READ: usize = 1 << 20;

/// What a trace matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceKind {
    /// Events of the connection whose client id is the filter.
    #[serde(rename = "clientid")]
    ClientId,
    /// Events about a topic that the filter (a topic filter, wildcards allowed) matches.
    #[serde(rename = "topic")]
    Topic,
    /// Events of connections from the filter's IP address.
    #[serde(rename = "ip_address")]
    IpAddress,
}

impl TraceKind {
    /// EMQX's name, which is also the body key holding the filter.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceKind::ClientId => "clientid",
            TraceKind::Topic => "topic",
            TraceKind::IpAddress => "ip_address",
        }
    }

    fn parse(s: &str) -> Option<TraceKind> {
        [TraceKind::ClientId, TraceKind::Topic, TraceKind::IpAddress]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// How a message payload appears in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadEncode {
    /// As text (invalid UTF-8 replaced).
    #[default]
    Text,
    /// As hexadecimal.
    Hex,
    /// Not shown (`******`).
    Hidden,
}

/// The line format of a trace file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceFormatter {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A trace, as created through the API and kept in the API-state store (kind `traces`, keyed by
/// name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceSpec {
    /// Unique name: a letter, then letters, digits, `-` and `_`.
    pub name: String,
    /// What `filter` is.
    #[serde(rename = "type")]
    pub kind: TraceKind,
    /// The client id, topic filter or IP address (validated for its kind).
    pub filter: String,
    /// Start of the window, seconds since the Unix epoch.
    pub start_at: u64,
    /// End of the window (exclusive), seconds since the Unix epoch.
    pub end_at: u64,
    /// How payloads appear.
    #[serde(default)]
    pub payload_encode: PayloadEncode,
    /// Line format.
    #[serde(default)]
    pub formatter: TraceFormatter,
    /// False once stopped (`PUT /trace/{name}/stop`).
    pub enable: bool,
}

impl TraceSpec {
    /// "waiting" before the window, "running" in it, "stopped" after it or once stopped.
    pub fn status(&self, now_secs: u64) -> &'static str {
        if !self.enable || now_secs >= self.end_at {
            "stopped"
        } else if now_secs < self.start_at {
            "waiting"
        } else {
            "running"
        }
    }

    /// Whether the trace records events at `now_secs`.
    pub fn is_running(&self, now_secs: u64) -> bool {
        self.status(now_secs) == "running"
    }
}

/// A trace and the size of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceInfo {
    /// The trace.
    pub spec: TraceSpec,
    /// Bytes in its file.
    pub log_size: u64,
}

/// Why a trace operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    /// No trace of that name: 404.
    #[error("trace not found")]
    NotFound,
    /// A trace of that name exists: 409 ALREADY_EXISTS.
    #[error("trace already exists")]
    AlreadyExists,
    /// An unstopped trace already has the same type and filter: 409 DUPLICATE_CONDITION.
    #[error("trace {0} has the same type and filter")]
    DuplicateCondition(String),
    /// [`MAX_TRACES`] exist: 400.
    #[error("at most {0} traces")]
    Limit(usize),
    /// The store or the file system failed: 500.
    #[error("{0}")]
    Io(String),
}

/// What the binary lets the API do with its traces. Calls may block on the store and the file
/// system: handlers make them on the blocking pool.
pub trait TraceControl: Send + Sync {
    /// Every trace, by name.
    fn list(&self) -> Vec<TraceInfo>;
    /// Stores `spec` and starts tracing (an empty file is created at once).
    fn create(&self, spec: TraceSpec) -> Result<TraceInfo, TraceError>;
    /// Stops a trace (it stays listed and downloadable).
    fn stop(&self, name: &str) -> Result<TraceInfo, TraceError>;
    /// Deletes a trace and its file.
    fn delete(&self, name: &str) -> Result<(), TraceError>;
    /// The trace's file.
    fn file(&self, name: &str) -> Result<PathBuf, TraceError>;
}

impl std::fmt::Debug for dyn TraceControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceControl")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn at(secs: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

fn trace_json(info: &TraceInfo, node: &str, now: u64) -> Value {
    let s = &info.spec;
    let mut v = json!({
        "name": s.name,
        "type": s.kind.as_str(),
        "start_at": at(s.start_at),
        "end_at": at(s.end_at),
        "status": s.status(now),
        "enable": s.enable,
        "payload_encode": s.payload_encode,
        "formatter": s.formatter,
        "log_size": { node: info.log_size },
    });
    v[s.kind.as_str()] = Value::String(s.filter.clone());
    v
}

fn trace_error(e: TraceError) -> ApiError {
    match e {
        TraceError::NotFound => ApiError::not_found("trace not found"),
        TraceError::AlreadyExists => {
            ApiError::new(StatusCode::CONFLICT, "ALREADY_EXISTS", e.to_string())
        }
        TraceError::DuplicateCondition(_) => {
            ApiError::new(StatusCode::CONFLICT, "DUPLICATE_CONDITION", e.to_string())
        }
        TraceError::Limit(_) => ApiError::bad_request(e.to_string()),
        TraceError::Io(m) => {
            tracing::error!(error = %m, "trace: operation failed");
            ApiError::internal(m)
        }
    }
}

fn control(st: &St) -> ApiResult<Arc<dyn TraceControl>> {
    st.0.ctx
        .traces
        .clone()
        .ok_or_else(|| ApiError::not_found("log traces are not available"))
}

/// Runs a trace operation on the blocking pool.
async fn blocking<T: Send + 'static>(
    st: &St,
    f: impl FnOnce(&dyn TraceControl) -> Result<T, TraceError> + Send + 'static,
) -> ApiResult<T> {
    let c = control(st)?;
    tokio::task::spawn_blocking(move || f(c.as_ref()))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(trace_error)
}

/// A time in the body: seconds since the Unix epoch, or RFC 3339 text.
#[derive(Deserialize)]
#[serde(untagged)]
enum When {
    Secs(u64),
    Text(String),
}

fn parse_when(field: &str, w: &When) -> ApiResult<u64> {
    match w {
        When::Secs(s) => Ok(*s),
        When::Text(t) => {
            let parsed =
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        ApiError::bad_request(format!("{field}: not an RFC 3339 time: {e}"))
                    })?;
            u64::try_from(parsed.unix_timestamp())
                .map_err(|_| ApiError::bad_request(format!("{field}: before 1970")))
        }
    }
}

/// EMQX's create body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTrace {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    clientid: Option<String>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    start_at: Option<When>,
    #[serde(default)]
    end_at: Option<When>,
    #[serde(default)]
    payload_encode: Option<PayloadEncode>,
    #[serde(default)]
    formatter: Option<TraceFormatter>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= MAX_NAME_LEN
}

/// Validates EMQX's body into a spec, `now` being the default start.
fn spec_from(b: NewTrace, now: u64) -> ApiResult<TraceSpec> {
    if !valid_name(&b.name) {
        return Err(ApiError::bad_request(format!(
            "name: a letter, then letters, digits, '-' or '_', at most {MAX_NAME_LEN} characters"
        )));
    }
    let kind = TraceKind::parse(&b.kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "type: must be clientid, topic or ip_address, got {:?}",
            b.kind
        ))
    })?;
    let given = match kind {
        TraceKind::ClientId => b.clientid,
        TraceKind::Topic => b.topic,
        TraceKind::IpAddress => b.ip_address,
    };
    let filter = given
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{}: required", kind.as_str())))?;
    match kind {
        TraceKind::ClientId => {}
        TraceKind::Topic => {
            switchyard_core::TopicFilter::new(filter.clone())
                .map_err(|e| ApiError::bad_request(format!("topic: {e}")))?;
        }
        TraceKind::IpAddress => {
            filter
                .parse::<IpAddr>()
                .map_err(|_| ApiError::bad_request(format!("ip_address: {filter:?}")))?;
        }
    }
    let start_at = match &b.start_at {
        Some(w) => parse_when("start_at", w)?,
        None => now,
    };
    let end_at = match &b.end_at {
        Some(w) => parse_when("end_at", w)?,
        None => start_at.saturating_add(DEFAULT_DURATION_SECS),
    };
    if end_at <= start_at {
        return Err(ApiError::bad_request("end_at: must be after start_at"));
    }
    if end_at <= now {
        return Err(ApiError::bad_request("end_at: already passed"));
    }
    Ok(TraceSpec {
        name: b.name,
        kind,
        filter,
        start_at,
        end_at,
        payload_encode: b.payload_encode.unwrap_or_default(),
        formatter: b.formatter.unwrap_or_default(),
        enable: true,
    })
}

/// `GET /api/v5/trace` → every trace: `[{name, type, clientid|topic|ip_address, start_at,
/// end_at, status, log_size: {node: bytes}, payload_encode, formatter}]`.
pub async fn list(st: St) -> ApiResult<Json<Value>> {
    let items = blocking(&st, |c| Ok(c.list())).await?;
    let now = now_secs();
    let node = st.0.node();
    Ok(Json(Value::Array(
        items.iter().map(|i| trace_json(i, node, now)).collect(),
    )))
}

/// `POST /api/v5/trace` with EMQX's body → 200 with the trace; 400 for a bad body, 409
/// ALREADY_EXISTS or DUPLICATE_CONDITION.
pub async fn create(
    st: St,
    Extension(principal): Extension<Principal>,
    raw: Bytes,
) -> ApiResult<Response> {
    let now = now_secs();
    let spec = spec_from(body(&raw)?, now)?;
    let (name, kind, filter) = (spec.name.clone(), spec.kind.as_str(), spec.filter.clone());
    let info = blocking(&st, move |c| c.create(spec)).await?;
    tracing::info!(
        by = principal.name(),
        name,
        kind,
        filter,
        "log trace created"
    );
    Ok(Json(trace_json(&info, st.0.node(), now)).into_response())
}

/// `DELETE /api/v5/trace` → 204: every trace and its file deleted.
pub async fn clear(st: St, Extension(principal): Extension<Principal>) -> ApiResult<Response> {
    blocking(&st, |c| {
        for t in c.list() {
            match c.delete(&t.spec.name) {
                Ok(()) | Err(TraceError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .await?;
    tracing::info!(by = principal.name(), "every log trace deleted");
    Ok(no_content())
}

/// `DELETE /api/v5/trace/{name}` → 204, or 404.
pub async fn delete(
    st: St,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let n = name.clone();
    blocking(&st, move |c| c.delete(&n)).await?;
    tracing::info!(by = principal.name(), name, "log trace deleted");
    Ok(no_content())
}

/// `PUT /api/v5/trace/{name}/stop` → 200 with the stopped trace, or 404.
pub async fn stop(
    st: St,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let n = name.clone();
    let info = blocking(&st, move |c| c.stop(&n)).await?;
    tracing::info!(by = principal.name(), name, "log trace stopped");
    Ok(Json(trace_json(&info, st.0.node(), now_secs())))
}

/// `GET /api/v5/trace/{name}/download` → the trace's file as an attachment `<name>.log`.
pub async fn download(st: St, Path(name): Path<String>) -> ApiResult<Response> {
    let n = name.clone();
    let bytes = blocking(&st, move |c| {
        let path = c.file(&n)?;
        std::fs::read(&path).map_err(|e| TraceError::Io(format!("{}: {e}", path.display())))
    })
    .await?;
    let disposition = format!("attachment; filename=\"{name}.log\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/v5/trace/{name}/log?position=&bytes=` → `{items: text, meta: {position, bytes}}`:
/// up to `bytes` (default 1000, at most 1MB) of the file from `position`; `meta.position` is
/// where the next read starts (EMQX's `log` view, which the dashboard polls).
pub async fn log(
    st: St,
    Path(name): Path<String>,
    Query(q): Query<Params>,
) -> ApiResult<Json<Value>> {
    let position = opt_num(&q, "position")?.unwrap_or(0);
    let want = opt_num(&q, "bytes")?.unwrap_or(1000).min(MAX_LOG_READ);
    let chunk = blocking(&st, move |c| {
        let path = c.file(&name)?;
        read_at(&path, position, want)
            .map_err(|e| TraceError::Io(format!("{}: {e}", path.display())))
    })
    .await?;
    let read = chunk.len();
    Ok(Json(json!({
        "items": String::from_utf8_lossy(&chunk),
        "meta": { "position": position.saturating_add(read), "bytes": read },
    })))
}

/// Up to `want` bytes of `path` from `position` (none past the end).
fn read_at(path: &std::path::Path, position: usize, want: usize) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(u64::try_from(position).unwrap_or(u64::MAX)))?;
    let mut out = Vec::new();
    f.take(u64::try_from(want).unwrap_or(u64::MAX))
        .read_to_end(&mut out)?;
    Ok(out)
}

/// `GET /api/v5/trace/{name}/log_detail` → `[{node, size, mtime}]` (one node).
pub async fn log_detail(st: St, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let meta = blocking(&st, move |c| {
        let path = c.file(&name)?;
        std::fs::metadata(&path).map_err(|e| TraceError::Io(format!("{}: {e}", path.display())))
    })
    .await?;
    let mtime = meta.modified().map_or(Value::Null, |t| {
        Value::from(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    });
    Ok(Json(
        json!([{ "node": st.0.node(), "size": meta.len(), "mtime": mtime }]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(v: Value) -> ApiResult<TraceSpec> {
        let b: NewTrace =
            serde_json::from_value(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
        spec_from(b, 1_000)
    }

    #[test]
    fn emqx_bodies_become_specs() {
        let s = new(json!({"name": "t-1", "type": "clientid", "clientid": "c1"})).expect("ok");
        assert_eq!((s.kind, s.filter.as_str()), (TraceKind::ClientId, "c1"));
        assert_eq!((s.start_at, s.end_at), (1_000, 1_600));
        assert!(s.enable);
        let s = new(json!({"name": "t", "type": "topic", "topic": "a/+/#",
            "start_at": "1970-01-01T00:20:00Z", "end_at": 5_000, "payload_encode": "hex"}))
        .expect("ok");
        assert_eq!((s.start_at, s.end_at), (1_200, 5_000));
        assert_eq!(s.payload_encode, PayloadEncode::Hex);
        let s = new(json!({"name": "ip", "type": "ip_address", "ip_address": "::1"})).expect("ok");
        assert_eq!(s.kind.as_str(), "ip_address");
    }

    #[test]
    fn bad_bodies_are_refused() {
        for v in [
            json!({"name": "1t", "type": "clientid", "clientid": "c"}),
            json!({"name": "a b", "type": "clientid", "clientid": "c"}),
            json!({"name": "t", "type": "username", "clientid": "c"}),
            json!({"name": "t", "type": "clientid", "topic": "c"}),
            json!({"name": "t", "type": "topic", "topic": "a/#/b"}),
            json!({"name": "t", "type": "ip_address", "ip_address": "1.2.3"}),
            json!({"name": "t", "type": "clientid", "clientid": "c", "end_at": 999}),
            json!({"name": "t", "type": "clientid", "clientid": "c", "start_at": 2000,
                "end_at": 2000}),
            json!({"name": "t", "type": "clientid", "clientid": "c", "colour": "red"}),
        ] {
            assert!(new(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn status_follows_the_window() {
        let mut s = new(json!({"name": "t", "type": "clientid", "clientid": "c",
            "start_at": 2_000, "end_at": 3_000}))
        .expect("ok");
        assert_eq!(s.status(1_999), "waiting");
        assert_eq!(s.status(2_000), "running");
        assert_eq!(s.status(3_000), "stopped");
        s.enable = false;
        assert_eq!(s.status(2_500), "stopped");
    }
}
