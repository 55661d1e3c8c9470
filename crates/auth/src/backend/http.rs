//! `password_based:http`: an HTTP service decides (shared/specs/emqx-auth-api.md §3.2, §4, §5).
//! The request part ([`HttpCall`]) also serves the HTTP authorization source.
//!
//! Request: `method` to `url` with the placeholders rendered (percent-encoded in the path,
//! form-encoded in the query), `headers` rendered, and `body` (a map, values rendered as JSON
//! strings; form-encoded for `application/x-www-form-urlencoded`; appended to the query string
//! for GET). Reply: 204 is ok; 200 with a JSON or form body is read (`result`, `is_superuser`,
//! `expire_at`, `acl`); anything else is ignore. A 200 whose body parses as JSON is read
//! whatever its content type (a deliberate difference from EMQX, which ignores it; README,
//! "Security").
//!
//! Invariants: every request has its own deadline (`request_timeout`) and its own connection
//! when the pooled ones are busy, so one silent request never delays another client's check
//! (no pipelining, no queue behind a stalled connection); at most [`MAX_IN_FLIGHT`] requests
//! run at once per authenticator, beyond that the check answers ignore at once; the password
//! is never logged.

use super::{loose_bool, Backend, BoxFut, Dur, Health, Outcome, Request, Ssl};
use crate::acl_list::ClientRules;
use crate::authn::DenyReason;
use crate::template::{encode_form, encode_path, Template, Vars};
use crate::Grant;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// Requests in flight per authenticator at most; past it a check is ignore (overload).
pub(crate) const MAX_IN_FLIGHT: usize = 4096;

/// `method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Method {
    Get,
    Post,
}

fn default_pool() -> u32 {
    8
}
fn default_pipelining() -> u32 {
    100
}
fn authn_timeout() -> Dur {
    Dur::secs(5)
}
fn connect_timeout() -> Dur {
    Dur::secs(15)
}

/// The body fields of an HTTP authenticator (and, with `type`, of the HTTP source).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpConfig {
    pub(crate) method: Method,
    pub(crate) url: String,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) body: Map<String, Value>,
    #[serde(default = "authn_timeout")]
    pub(crate) request_timeout: Dur,
    #[serde(default = "connect_timeout")]
    pub(crate) connect_timeout: Dur,
    #[serde(default = "default_pool")]
    pub(crate) pool_size: u32,
    #[serde(default = "default_pipelining")]
    pub(crate) enable_pipelining: u32,
    #[serde(default)]
    pub(crate) ssl: Ssl,
}

impl HttpConfig {
    /// Fills EMQX's default headers when none were given and lower-cases the names.
    pub(crate) fn normalize(&mut self) {
        if self.headers.is_empty() {
            for (k, v) in [
                ("accept", "application/json"),
                ("cache-control", "no-cache"),
                ("connection", "keep-alive"),
                ("keep-alive", "timeout=30, max=1000"),
            ] {
                self.headers.insert(k.into(), v.into());
            }
            if self.method == Method::Post {
                self.headers
                    .insert("content-type".into(), "application/json".into());
            }
        }
        self.headers = std::mem::take(&mut self.headers)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
    }
}

/// How a POST body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Json,
    Form,
}

/// A prepared request: templates parsed once, a client with its pool and timeouts.
#[derive(Debug)]
pub(crate) struct HttpCall {
    method: Method,
    path: Template,
    query: Option<Template>,
    headers: Vec<(reqwest::header::HeaderName, Template)>,
    body: Vec<(String, BodyValue)>,
    body_kind: BodyKind,
    client: reqwest::Client,
    timeout: Duration,
    in_flight: Semaphore,
    /// Checks that ran into `request_timeout`.
    pub(crate) timeouts: AtomicU64,
    /// Checks that could not reach the server or got no usable answer.
    pub(crate) failures: AtomicU64,
    health: AtomicU8,
}

#[derive(Debug)]
enum BodyValue {
    Text(Template),
    Map(Vec<(String, BodyValue)>),
    Other(Value),
}

fn body_value(v: &Value, allowed: &[&str]) -> BodyValue {
    match v {
        Value::String(s) => BodyValue::Text(Template::parse(s, allowed)),
        Value::Object(m) => BodyValue::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), body_value(v, allowed)))
                .collect(),
        ),
        other => BodyValue::Other(other.clone()),
    }
}

fn render_json(v: &BodyValue, vars: &Vars<'_>) -> Value {
    match v {
        BodyValue::Text(t) => Value::String(t.render_raw(vars)),
        BodyValue::Map(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), render_json(v, vars)))
                .collect(),
        ),
        BodyValue::Other(o) => o.clone(),
    }
}

fn flat_text(v: &BodyValue, vars: &Vars<'_>) -> String {
    match render_json(v, vars) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

impl HttpCall {
    /// Validates `c` and builds the client. `allowed` is the context's placeholder set.
    pub(crate) fn new(c: &HttpConfig, allowed: &[&str]) -> Result<HttpCall, String> {
        let parsed = url::Url::parse(&c.url.replace("${", "x{"))
            .map_err(|e| format!("url {:?}: {e}", c.url))?;
        match parsed.scheme() {
            "http" => {}
            "https" if c.ssl.enable => {}
            "https" => return Err("an https url needs ssl.enable = true".into()),
            s => return Err(format!("url scheme {s:?}: http or https only")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("url must not carry user info".into());
        }
        if parsed.fragment().is_some() {
            return Err("url must not have a fragment".into());
        }
        let (path, query) = match c.url.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (c.url.as_str(), None),
        };
        let mut headers = Vec::new();
        let mut body_kind = BodyKind::Json;
        for (name, value) in &c.headers {
            let h = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header {name:?}: {e}"))?;
            if h == reqwest::header::CONTENT_TYPE {
                if c.method == Method::Get {
                    return Err("a GET request has no content-type header".into());
                }
                if value.starts_with("application/x-www-form-urlencoded") {
                    body_kind = BodyKind::Form;
                } else if !value.starts_with("application/json") {
                    return Err(format!(
                        "content-type {value:?}: application/json or application/x-www-form-urlencoded"
                    ));
                }
            }
            headers.push((h, Template::parse(value, allowed)));
        }
        if c.pool_size == 0 {
            return Err("pool_size must be at least 1".into());
        }
        let builder = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(c.pool_size as usize)
            .connect_timeout(c.connect_timeout.0)
            .timeout(c.request_timeout.0)
            .redirect(reqwest::redirect::Policy::none());
        let client = c
            .ssl
            .apply(builder)?
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(HttpCall {
            method: c.method,
            path: Template::parse(path, allowed),
            query: query.map(|q| Template::parse(q, allowed)),
            headers,
            body: c
                .body
                .iter()
                .map(|(k, v)| (k.clone(), body_value(v, allowed)))
                .collect(),
            body_kind,
            client,
            timeout: c.request_timeout.0,
            in_flight: Semaphore::new(MAX_IN_FLIGHT),
            timeouts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            health: AtomicU8::new(2),
        })
    }

    fn url(&self, vars: &Vars<'_>) -> String {
        let mut url = self.path.render(vars, encode_path);
        let mut query = self
            .query
            .as_ref()
            .map(|q| q.render(vars, encode_form))
            .unwrap_or_default();
        if self.method == Method::Get {
            for (k, v) in &self.body {
                if !query.is_empty() {
                    query.push('&');
                }
                query.push_str(&encode_form(k));
                query.push('=');
                query.push_str(&encode_form(&flat_text(v, vars)));
            }
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        url
    }

    /// Sends the request; `Err` is the reason for ignore (already logged and counted).
    pub(crate) async fn send(&self, vars: &Vars<'_>) -> Result<Reply, &'static str> {
        let Ok(_permit) = self.in_flight.try_acquire() else {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                max = MAX_IN_FLIGHT,
                "HTTP back-end: too many requests in flight; ignored"
            );
            return Err("overloaded");
        };
        let url = self.url(vars);
        let mut req = match self.method {
            Method::Get => self.client.get(&url),
            Method::Post => self.client.post(&url),
        };
        for (name, value) in &self.headers {
            let Ok(v) = reqwest::header::HeaderValue::from_str(&value.render_raw(vars)) else {
                // A client value that cannot be a header (a newline): not sent, not spliced.
                self.failures.fetch_add(1, Ordering::Relaxed);
                return Err("header value not representable");
            };
            req = req.header(name.clone(), v);
        }
        if self.method == Method::Post {
            req = match self.body_kind {
                BodyKind::Json => {
                    let body: Map<String, Value> = self
                        .body
                        .iter()
                        .map(|(k, v)| (k.clone(), render_json(v, vars)))
                        .collect();
                    req.body(Value::Object(body).to_string())
                }
                BodyKind::Form => {
                    let mut form = url::form_urlencoded::Serializer::new(String::new());
                    for (k, v) in &self.body {
                        form.append_pair(k, &flat_text(v, vars));
                    }
                    req.body(form.finish())
                }
            };
        }
        let host = self.path.render_raw(&Vars::default());
        match tokio::time::timeout(self.timeout, async {
            let resp = req.send().await?;
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                content_type: ctype,
                body: body.to_vec(),
            })
        })
        .await
        {
            Ok(Ok(reply)) => {
                self.health.store(0, Ordering::Relaxed);
                Ok(reply)
            }
            Ok(Err(e)) if e.is_timeout() => self.timed_out(&host),
            Err(_) => self.timed_out(&host),
            Ok(Err(e)) => {
                self.health.store(1, Ordering::Relaxed);
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(url = %host, error = %e, "HTTP back-end unreachable; ignored");
                Err("unreachable")
            }
        }
    }

    fn timed_out(&self, host: &str) -> Result<Reply, &'static str> {
        self.health.store(1, Ordering::Relaxed);
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(url = %host, timeout_ms = self.timeout.as_millis() as u64,
            "HTTP back-end did not answer in time; ignored");
        Err("timeout")
    }

    pub(crate) fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            0 => Health::Connected,
            1 => Health::Disconnected,
            _ => Health::Connecting,
        }
    }
}

/// A server's reply.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as a JSON object: JSON (any content type: see the module doc) or a form.
    pub(crate) fn fields(&self) -> Option<Map<String, Value>> {
        let form = self
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if form {
            return Some(
                url::form_urlencoded::parse(&self.body)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                    .collect(),
            );
        }
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    }
}

/// The HTTP authenticator.
#[derive(Debug)]
pub(crate) struct HttpAuthn {
    call: HttpCall,
}

impl HttpAuthn {
    pub(crate) fn new(c: &HttpConfig) -> Result<Self, String> {
        Ok(HttpAuthn {
            call: HttpCall::new(c, crate::template::AUTHN_VARS)?,
        })
    }
}

/// Reads a 200's body fields (§5).
pub(crate) fn read_reply(fields: &Map<String, Value>, now: SystemTime) -> Outcome {
    match fields.get("result").and_then(Value::as_str) {
        Some("allow") => {}
        Some("deny") => return Outcome::Error(DenyReason::NotAuthorized),
        _ => return Outcome::Ignore("no result"),
    }
    let superuser = loose_bool(fields.get("is_superuser"));
    let expire_at = match fields.get("expire_at") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let Some(secs) = v.as_u64() else {
                return Outcome::Error(DenyReason::BadCredentials);
            };
            let now_ms = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            if secs > now_ms / 2 {
                // Looks like milliseconds.
                return Outcome::Error(DenyReason::BadCredentials);
            }
            let at = UNIX_EPOCH + Duration::from_secs(secs);
            if at <= now {
                return Outcome::Error(DenyReason::BadCredentials);
            }
            Some(at)
        }
    };
    let acl = match fields.get("acl") {
        None | Some(Value::Null) => None,
        Some(v) => match ClientRules::parse(v, false) {
            Ok(r) => Some(Arc::new(r.expiring(expire_at))),
            Err(e) => {
                tracing::info!(error = %e, "HTTP back-end: invalid acl in the reply; refused");
                return Outcome::Error(DenyReason::BadCredentials);
            }
        },
    };
    Outcome::Ok(Grant {
        superuser,
        acl,
        expire_at,
        client_attrs: super::client_attrs(fields.get("client_attrs")),
    })
}

pub(crate) fn vars_of<'a>(req: &Request<'a>) -> Vars<'a> {
    Vars {
        clientid: req.creds.client_id,
        username: req.creds.username,
        password: req.creds.password,
        peerhost: req.creds.peer_ip,
        ..Vars::default()
    }
}

impl Backend for HttpAuthn {
    fn check<'a>(&'a self, req: Request<'a>) -> BoxFut<'a, Outcome> {
        Box::pin(async move {
            let vars = vars_of(&req);
            let reply = match self.call.send(&vars).await {
                Ok(r) => r,
                Err(why) => return Outcome::Ignore(why),
            };
            match reply.status {
                204 => Outcome::Ok(Grant::default()),
                200 => match reply.fields() {
                    Some(f) => read_reply(&f, SystemTime::now()),
                    None => Outcome::Ignore("unreadable 200 body"),
                },
                _ => Outcome::Ignore("status not 200/204"),
            }
        })
    }

    fn check_now(&self, _req: Request<'_>) -> Option<Outcome> {
        None
    }

    fn is_network(&self) -> bool {
        true
    }

    fn health(&self) -> Health {
        self.call.health()
    }

    fn timeouts(&self) -> u64 {
        self.call.timeouts.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn reply_fields() {
        let now = SystemTime::now();
        assert!(matches!(
            read_reply(&obj(json!({"result": "allow", "is_superuser": "1"})), now),
            Outcome::Ok(Grant {
                superuser: true,
                ..
            })
        ));
        assert_eq!(
            read_reply(&obj(json!({"result": "deny"})), now),
            Outcome::Error(DenyReason::NotAuthorized)
        );
        assert!(matches!(
            read_reply(&obj(json!({"result": "ignore"})), now),
            Outcome::Ignore(_)
        ));
        assert!(matches!(
            read_reply(&obj(json!({"is_superuser": true})), now),
            Outcome::Ignore(_)
        ));
        for bad in [json!(1), json!("soon"), json!(4_102_444_800_000u64)] {
            assert_eq!(
                read_reply(&obj(json!({"result": "allow", "expire_at": bad})), now),
                Outcome::Error(DenyReason::BadCredentials)
            );
        }
        assert_eq!(
            read_reply(
                &obj(json!({"result": "allow", "acl": [{"permission": "x"}]})),
                now
            ),
            Outcome::Error(DenyReason::BadCredentials)
        );
        let ok = read_reply(
            &obj(json!({"result": "allow", "expire_at": 4_102_444_800u64,
                "acl": [{"permission": "allow", "action": "all", "topic": "#"}]})),
            now,
        );
        assert!(matches!(
            ok,
            Outcome::Ok(Grant {
                acl: Some(_),
                expire_at: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn client_attrs_are_kept_and_rendered() {
        let ok = read_reply(
            &obj(json!({"result": "allow",
                "client_attrs": {"group": "g1", "level": 3, "nested": {"x": 1}}})),
            SystemTime::now(),
        );
        let Outcome::Ok(grant) = ok else {
            panic!("{ok:?}")
        };
        let attrs = grant.client_attrs.unwrap_or_default();
        assert_eq!(attrs.get("group").map(String::as_str), Some("g1"));
        assert_eq!(attrs.get("level").map(String::as_str), Some("3"));
        assert!(!attrs.contains_key("nested"));
        let t = crate::template::Template::parse(
            "/authz/${client_attrs.group}/${client_attrs.none}",
            crate::template::AUTHZ_VARS,
        );
        let vars = Vars {
            client_attrs: Some(&attrs),
            ..Vars::default()
        };
        assert_eq!(t.render_raw(&vars), "/authz/g1/");
    }

    #[test]
    fn urls_encode_client_values() {
        let c: HttpConfig = serde_json::from_value(json!({
            "method": "get",
            "url": "http://127.0.0.1:1/auth/${username}?c=${clientid}",
            "body": {"p": "${password}"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let call = HttpCall::new(&c, crate::template::AUTHN_VARS).unwrap_or_else(|e| panic!("{e}"));
        let vars = Vars {
            clientid: "a&b=c",
            username: Some("' OR 1=1 --/.."),
            password: Some(b"p%00w"),
            ..Vars::default()
        };
        assert_eq!(
            call.url(&vars),
            "http://127.0.0.1:1/auth/%27%20OR%201%3D1%20--%2F..?c=a%26b%3Dc&p=p%2500w"
        );
    }

    #[test]
    fn config_errors() {
        for bad in [
            json!({"method": "get", "url": "ftp://x/"}),
            json!({"method": "get", "url": "https://x/"}),
            json!({"method": "get", "url": "http://u:p@x/"}),
            json!({"method": "get", "url": "http://x/", "headers": {"content-type": "application/json"}}),
        ] {
            let c: HttpConfig =
                serde_json::from_value(bad.clone()).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                HttpCall::new(&c, crate::template::AUTHN_VARS).is_err(),
                "{bad}"
            );
        }
        assert!(
            serde_json::from_value::<HttpConfig>(json!({"method": "put", "url": "http://x/"}))
                .is_err()
        );
    }
}
