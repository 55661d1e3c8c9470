//! Authorization sources (`[[authorization.sources]]`, `/api/v5/authorization/sources`): the
//! `file` source (the TOML `[[rule]]` file of `authorization.file`, or rules text set through the
//! API) and the `http` source (shared/specs/emqx-auth-api.md §9.3), asked in list order after a
//! client's own `acl`.
//!
//! Owns: parsing a source's JSON (config and API share one form), how each source answers one
//! operation (allow, deny, nomatch, ignore), the per-source metrics, and the JSON of the
//! `settings` document (`no_match`, `deny_action`, `cache`). Must not know: any protocol, how a
//! gateway waits for an answer (see `authz_query`).
//!
//! Invariants: an HTTP source never answers on a synchronous path — there it is `ignore` unless
//! the asynchronous path already put the answer where the caller looks; a silent server is
//! `ignore` after `request_timeout`; a client value can only appear where a template asks for it
//! (placeholders of the authorization context only, `template::AUTHZ_VARS`).

use crate::authz::{parse_rules, Action, AuthzSettings, ClientCtx, Decision, DenyAction, Rule};
use crate::backend::http::{HttpCall, HttpConfig, Reply};
use crate::backend::{parse_duration, Health};
use crate::template::Vars;
use parking_lot::RwLock;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_state::StateError;

/// The store's kind for authorization made through the API: key [`SOURCES_KEY`] holds the
/// source list (`{"sources": [...]}`), key [`SETTINGS_KEY`] the settings.
pub const AUTHZ_KIND: &str = "authorization";
/// Key of the sources document.
pub const SOURCES_KEY: &str = "sources";
/// Key of the settings document.
pub const SETTINGS_KEY: &str = "settings";

/// EMQX's authz HTTP default `request_timeout` (authentication's is 5 s).
const HTTP_AUTHZ_TIMEOUT: &str = "30s";

/// Why a change to the sources or settings was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The configuration is not valid (400).
    #[error("{0}")]
    Invalid(String),
    /// A source of this type is already in the list (400 `duplicated_authz_source_type`).
    #[error("source type {0:?} already exists")]
    Duplicated(String),
    /// No source of this type (404).
    #[error("Not found: {0}")]
    NotFound(String),
    /// The store failed (500).
    #[error(transparent)]
    State(#[from] StateError),
}

/// What one source says about one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Allow,
    Deny,
    /// No rule matched / the server had no opinion: the next source.
    NoMatch,
    /// The source could not answer (timeout, unreachable, not asked): the next source.
    Ignore,
}

/// Counters of one source (`GET /authorization/sources/{type}/status`, Prometheus).
#[derive(Debug, Default)]
pub(crate) struct SourceMetrics {
    total: AtomicU64,
    allow: AtomicU64,
    deny: AtomicU64,
    nomatch: AtomicU64,
    ignore: AtomicU64,
}

impl SourceMetrics {
    fn count(&self, a: Answer) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let c = match a {
            Answer::Allow => &self.allow,
            Answer::Deny => &self.deny,
            Answer::NoMatch => &self.nomatch,
            Answer::Ignore => &self.ignore,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of one source's state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// The source type (`file`, `http`).
    pub kind: String,
    /// `connected`, `disconnected` or `connecting` (always `connected` for a file).
    pub status: &'static str,
    /// Operations it was asked about.
    pub total: u64,
    /// Its allow answers.
    pub allow: u64,
    /// Its deny answers.
    pub deny: u64,
    /// Its nomatch answers.
    pub nomatch: u64,
    /// Its ignore answers (timeouts, unreachable server, not asked on a synchronous path).
    pub ignore: u64,
    /// Requests that ran into `request_timeout` (HTTP).
    pub timeouts: u64,
}

pub(crate) enum Body {
    /// Rules, replaceable in place (`Authorizer::set_rules`).
    File(RwLock<Arc<Vec<Rule>>>),
    Http(HttpCall),
}

/// One source, built.
pub(crate) struct Source {
    pub(crate) kind: String,
    pub(crate) enable: bool,
    /// The form it was configured with (what the store keeps; compared to reuse a source).
    pub(crate) json: Value,
    /// The rules text a file source shows in GET.
    pub(crate) text: String,
    /// The file a file source read its rules from.
    pub(crate) path: Option<String>,
    pub(crate) body: Body,
    pub(crate) metrics: Arc<SourceMetrics>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("type", &self.kind)
            .field("enable", &self.enable)
            .finish()
    }
}

/// The source type a JSON config names.
pub(crate) fn kind_of(v: &Value) -> Option<&str> {
    v.get("type").and_then(Value::as_str)
}

impl Source {
    /// Builds a source from its JSON form. A `file` source without `rules` reads `path`, else
    /// `default_path` (`authorization.file`); a missing file means no rules.
    pub(crate) fn build(
        v: &Value,
        default_path: Option<&Path>,
        metrics: Arc<SourceMetrics>,
    ) -> Result<Source, String> {
        let Value::Object(map) = v else {
            return Err("a source is a JSON object".into());
        };
        let kind = kind_of(v).ok_or("a source needs a \"type\"")?.to_owned();
        let enable = match map.get("enable") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("enable must be a boolean".into()),
        };
        let mut rest: Map<String, Value> = map.clone();
        rest.remove("type");
        rest.remove("enable");
        let (body, text, path) = match kind.as_str() {
            "file" => file_body(&rest, default_path)?,
            "http" => {
                rest.entry("request_timeout")
                    .or_insert_with(|| json!(HTTP_AUTHZ_TIMEOUT));
                let mut c: HttpConfig = serde_json::from_value(Value::Object(rest))
                    .map_err(|e| format!("http source: {e}"))?;
                c.normalize();
                let call = HttpCall::new(&c, crate::template::AUTHZ_VARS)?;
                (Body::Http(call), String::new(), None)
            }
            other => {
                return Err(format!(
                    "source type {other:?} is not supported: file or http"
                ))
            }
        };
        Ok(Source {
            kind,
            enable,
            json: v.clone(),
            text,
            path,
            body,
            metrics,
        })
    }

    /// The source as `GET /authorization/sources` shows it.
    pub(crate) fn shown(&self) -> Value {
        match &self.body {
            Body::File(_) => {
                let mut v = json!({"type": "file", "enable": self.enable, "rules": self.text});
                if let Some(p) = &self.path {
                    v["path"] = json!(p);
                }
                v
            }
            Body::Http(_) => self.json.clone(),
        }
    }

    /// Counts `a` and returns it.
    pub(crate) fn counted(&self, a: Answer) -> Answer {
        self.metrics.count(a);
        a
    }

    /// The answer without waiting for a network; `None` for an HTTP source.
    pub(crate) fn answer_now(&self, ctx: &ClientCtx, action: &Action<'_>) -> Option<Answer> {
        match &self.body {
            Body::File(rules) => Some(self.counted(file_answer(&rules.read(), ctx, action))),
            Body::Http(_) => None,
        }
    }

    /// The full answer: an HTTP source's request is awaited (bounded by its timeout).
    pub(crate) async fn answer(
        &self,
        ctx: &ClientCtx,
        action: &Action<'_>,
        attrs: Option<&crate::backend::ClientAttrs>,
    ) -> Answer {
        let call = match &self.body {
            Body::File(rules) => {
                return self.counted(file_answer(&rules.read(), ctx, action));
            }
            Body::Http(call) => call,
        };
        let (kind, topic, qos, retain) = match *action {
            Action::Publish { topic, qos, retain } => ("publish", topic, qos, retain),
            Action::Subscribe { filter, qos } => ("subscribe", filter, qos, false),
        };
        let vars = Vars {
            clientid: &ctx.client_id,
            username: ctx.username.as_deref(),
            peerhost: ctx.peer_ip,
            topic: Some(topic),
            action: Some(kind),
            qos: Some(qos.as_u8()),
            retain: Some(retain),
            client_attrs: attrs,
            ..Vars::default()
        };
        let a = match call.send(&vars).await {
            Ok(reply) => http_answer(&reply),
            Err(_) => Answer::Ignore,
        };
        tracing::debug!(source = "http", client_id = %ctx.client_id, action = kind, topic,
            answer = ?a, "authorization source answered");
        self.counted(a)
    }

    pub(crate) fn is_network(&self) -> bool {
        matches!(self.body, Body::Http(_))
    }

    pub(crate) fn status(&self) -> SourceStatus {
        let m = &self.metrics;
        let (status, timeouts) = match &self.body {
            Body::File(_) => (Health::Connected, 0),
            Body::Http(c) => (c.health(), c.timeouts.load(Ordering::Relaxed)),
        };
        SourceStatus {
            kind: self.kind.clone(),
            status: status.as_str(),
            total: m.total.load(Ordering::Relaxed),
            allow: m.allow.load(Ordering::Relaxed),
            deny: m.deny.load(Ordering::Relaxed),
            nomatch: m.nomatch.load(Ordering::Relaxed),
            ignore: m.ignore.load(Ordering::Relaxed),
            timeouts,
        }
    }
}

/// A file source's rules, their text and the file they came from.
type FileBody = (Body, String, Option<String>);

fn file_body(rest: &Map<String, Value>, default_path: Option<&Path>) -> Result<FileBody, String> {
    for k in rest.keys() {
        if k != "rules" && k != "path" {
            return Err(format!("file source: unknown field {k:?}"));
        }
    }
    let (text, origin) = match rest.get("rules") {
        Some(Value::String(t)) => (t.clone(), PathBuf::from("<rules>")),
        Some(_) => {
            return Err("file source: rules must be the TOML text of [[rule]] tables".into())
        }
        None => {
            let path = match rest.get("path") {
                Some(Value::String(p)) => Some(PathBuf::from(p)),
                Some(_) => return Err("file source: path must be a string".into()),
                None => default_path.map(Path::to_path_buf),
            };
            match path {
                None => (String::new(), PathBuf::new()),
                Some(p) => match std::fs::read_to_string(&p) {
                    Ok(t) => (t, p),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        tracing::info!(file = %p.display(), "ACL file not found: no rules");
                        (String::new(), p)
                    }
                    Err(e) => return Err(format!("{}: {e}", p.display())),
                },
            }
        }
    };
    let rules = parse_rules(&text, &origin).map_err(|e| e.to_string())?;
    let path = (!origin.as_os_str().is_empty() && rest.get("rules").is_none())
        .then(|| origin.display().to_string());
    Ok((Body::File(RwLock::new(Arc::new(rules))), text, path))
}

fn file_answer(rules: &[Rule], ctx: &ClientCtx, action: &Action<'_>) -> Answer {
    match rules.iter().find_map(|r| r.decide(ctx, action)) {
        Some(crate::Permission::Allow) => Answer::Allow,
        Some(crate::Permission::Deny) => Answer::Deny,
        None => Answer::NoMatch,
    }
}

/// §9.3: 204 allow; 200 with `result` allow/deny/ignore; anything else nomatch. A 200 body that
/// parses as JSON is read whatever its content type, as the HTTP authenticator does (README,
/// "Security").
fn http_answer(reply: &Reply) -> Answer {
    match reply.status {
        204 => Answer::Allow,
        200 => match reply
            .fields()
            .as_ref()
            .and_then(|f| f.get("result"))
            .and_then(Value::as_str)
        {
            Some("allow") => Answer::Allow,
            Some("deny") => Answer::Deny,
            Some("ignore") => Answer::Ignore,
            _ => Answer::NoMatch,
        },
        _ => Answer::NoMatch,
    }
}

/// The answer a chain of sources came to: the first allow or deny, else `None` (no_match).
pub(crate) fn settle(a: Answer) -> Option<Decision> {
    match a {
        Answer::Allow => Some(Decision::Allow),
        Answer::Deny => Some(Decision::Deny),
        Answer::NoMatch | Answer::Ignore => None,
    }
}

/// The settings as `GET /authorization/settings` answers them.
pub fn settings_json(s: &AuthzSettings) -> Value {
    let ttl = s.cache.ttl.as_millis();
    json!({
        "no_match": if s.no_match == Decision::Allow { "allow" } else { "deny" },
        "deny_action": if s.deny_action == DenyAction::Ignore { "ignore" } else { "disconnect" },
        "cache": {
            "enable": s.cache.enable,
            "max_size": s.cache.max_size,
            "ttl": if ttl % 1000 == 0 { format!("{}s", ttl / 1000) } else { format!("{ttl}ms") },
            "excludes": [],
        },
    })
}

/// Reads a `PUT /authorization/settings` body (all three of `no_match`, `deny_action`, `cache`).
pub fn parse_settings(v: &Value) -> Result<AuthzSettings, SourceError> {
    let bad = |m: &str| SourceError::Invalid(m.to_owned());
    let no_match = match v.get("no_match").and_then(Value::as_str) {
        Some("allow") => Decision::Allow,
        Some("deny") => Decision::Deny,
        _ => return Err(bad("no_match must be allow or deny")),
    };
    let deny_action = match v.get("deny_action").and_then(Value::as_str) {
        Some("ignore") => DenyAction::Ignore,
        Some("disconnect") => DenyAction::Disconnect,
        _ => return Err(bad("deny_action must be ignore or disconnect")),
    };
    let c = v.get("cache").ok_or_else(|| bad("cache is required"))?;
    let enable = match c.get("enable") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("cache.enable must be a boolean")),
    };
    let max_size = match c.get("max_size") {
        None => 32,
        Some(n) => n
            .as_u64()
            .filter(|n| (1..=1_048_576).contains(n))
            .ok_or_else(|| bad("cache.max_size must be 1..1048576"))? as usize,
    };
    let ttl = match c.get("ttl") {
        None => Duration::from_secs(60),
        Some(Value::Number(n)) => Duration::from_millis(n.as_u64().unwrap_or(0)),
        Some(Value::String(s)) => {
            parse_duration(s).ok_or_else(|| bad("cache.ttl must be a duration like \"1m\""))?
        }
        Some(_) => return Err(bad("cache.ttl must be a duration like \"1m\"")),
    };
    match c.get("excludes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => return Err(bad("cache.excludes is not supported (must be empty)")),
    }
    Ok(AuthzSettings {
        no_match,
        deny_action,
        cache: crate::AclCacheSettings {
            enable,
            max_size,
            ttl,
        },
    })
}
