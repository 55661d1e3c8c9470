//! The `http` connector and action (spec §5.1): a webhook sink.
//!
//! Owns: the connector's client pool and health check (status connecting → connected ↔
//! disconnected), the action's in-memory buffer and its workers.
//! Invariants: a publisher only renders the request and pushes it into the buffer — it never
//! waits for the sink. The buffer is bounded by `max_buffer_bytes`; when full the oldest request
//! is dropped and counted (`dropped.queue_full`, EMQX's behaviour). Requests older than
//! `request_ttl` are dropped when their turn comes (`dropped.expired`). While the connector is
//! disconnected nothing is taken from the buffer; a request whose connection fails goes back to
//! the front and waits for the server (a `retried`), so an outage costs no message that the
//! buffer and the TTL can hold. A 429, a 503 or a timeout is retried up to `max_retries` with a
//! jittered exponential back-off; any other non-2xx status fails at once (`failed`).

use crate::metrics::{inc, ActionMetrics};
use crate::model::{duration, size, ModelError};
use crate::template::Template;
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// A connector's or action's state, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Started, first health check not done.
    Connecting = 0,
    /// The last health check reached the server.
    Connected = 1,
    /// The last health check or request could not reach it.
    Disconnected = 2,
}

impl Status {
    /// EMQX's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Connected => "connected",
            Status::Disconnected => "disconnected",
        }
    }

    fn from_u8(v: u8) -> Status {
        match v {
            1 => Status::Connected,
            2 => Status::Disconnected,
            _ => Status::Connecting,
        }
    }
}

/// A running `http` connector.
pub struct HttpConnector {
    base: reqwest::Url,
    headers: Vec<(String, String)>,
    client: reqwest::Client,
    status: AtomicU8,
    reason: Mutex<Option<String>>,
    connect_timeout: Duration,
    /// Wakes workers waiting for the server, and the health check when a request failed.
    changed: Notify,
    check_now: Notify,
    cancel: CancellationToken,
}

fn opt_duration(v: Option<&Value>, default: Duration) -> Result<Duration, ModelError> {
    match v {
        Some(v) => Ok(duration(v)?.unwrap_or(Duration::MAX)),
        None => Ok(default),
    }
}

fn header_list(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), crate::funcs::to_text(v)))
                .collect()
        })
        .unwrap_or_default()
}

impl HttpConnector {
    /// Starts a connector from its filled document (`model::http_connector`); its health
    /// check runs until `cancel`.
    pub fn start(
        doc: &Map<String, Value>,
        cancel: CancellationToken,
    ) -> Result<Arc<Self>, ModelError> {
        let url = doc.get("url").and_then(Value::as_str).unwrap_or_default();
        let base =
            reqwest::Url::parse(url).map_err(|e| ModelError::Invalid(format!("url: {e}")))?;
        let connect_timeout = opt_duration(doc.get("connect_timeout"), Duration::from_secs(15))?
            .min(Duration::from_secs(3600));
        let pool = doc.get("pool_size").and_then(Value::as_u64).unwrap_or(8) as usize;
        let verify_none = doc
            .get("ssl")
            .and_then(|s| s.get("verify"))
            .and_then(Value::as_str)
            == Some("verify_none");
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(pool.max(1))
            .danger_accept_invalid_certs(verify_none);
        // ssl.cacertfile: the CAs an https server's certificate must chain to (added to the
        // built-in web roots).
        let ca = doc
            .get("ssl")
            .and_then(|s| s.get("cacertfile"))
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty());
        if let Some(file) = ca {
            let pem = std::fs::read(file)
                .map_err(|e| ModelError::Invalid(format!("ssl.cacertfile {file}: {e}")))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ModelError::Invalid(format!("ssl.cacertfile {file}: {e}")))?;
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ModelError::Invalid(format!("http client: {e}")))?;
        let interval = opt_duration(
            doc.get("resource_opts")
                .and_then(|r| r.get("health_check_interval")),
            Duration::from_secs(15),
        )?
        .clamp(Duration::from_millis(1), Duration::from_secs(3600));
        let c = Arc::new(HttpConnector {
            base,
            headers: header_list(doc.get("headers")),
            client,
            status: AtomicU8::new(Status::Connecting as u8),
            reason: Mutex::new(None),
            connect_timeout,
            changed: Notify::new(),
            check_now: Notify::new(),
            cancel,
        });
        tokio::spawn(c.clone().health_loop(interval));
        Ok(c)
    }

    /// The current status and, when not connected, why.
    pub fn status(&self) -> (Status, Option<String>) {
        (
            Status::from_u8(self.status.load(Ordering::Relaxed)),
            self.reason.lock().clone(),
        )
    }

    fn set_status(&self, s: Status, reason: Option<String>) {
        let old = self.status.swap(s as u8, Ordering::Relaxed);
        *self.reason.lock() = reason;
        if old != s as u8 {
            tracing::info!(url = %self.base, status = s.as_str(), "http connector status");
            self.changed.notify_waiters();
        }
    }

    /// A request could not reach the server: disconnected until the next check says otherwise.
    fn unreachable(&self, why: String) {
        self.set_status(Status::Disconnected, Some(why));
        self.check_now.notify_one();
    }

    async fn health_loop(self: Arc<Self>, interval: Duration) {
        loop {
            let r = probe(&self.base, self.connect_timeout).await;
            match r {
                Ok(()) => self.set_status(Status::Connected, None),
                Err(e) => self.set_status(Status::Disconnected, Some(e)),
            }
            // After a failure the next check comes sooner, so a server back up is seen fast.
            let wait = if self.status().0 == Status::Connected {
                interval
            } else {
                interval.min(Duration::from_millis(500))
            };
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                () = self.check_now.notified() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    async fn wait_connected(&self) -> bool {
        loop {
            let notified = self.changed.notified();
            if self.status().0 == Status::Connected {
                return true;
            }
            tokio::select! {
                () = self.cancel.cancelled() => return false,
                () = notified => {}
            }
        }
    }
}

/// Opens a TCP connection to the URL's host and port (EMQX's HTTP health check).
pub async fn probe(url: &reqwest::Url, timeout: Duration) -> Result<(), String> {
    let host = url.host_str().ok_or("url has no host")?.to_string();
    let port = url.port_or_known_default().ok_or("url has no port")?;
    match tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{host}:{port}: {e}")),
        Err(_) => Err(format!("{host}:{port}: connect timeout")),
    }
}

/// One rendered request waiting in the buffer.
struct Queued {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: Vec<(String, String)>,
    body: String,
    at: Instant,
    bytes: u64,
}

/// A running `http` action.
pub struct HttpAction {
    connector: Arc<HttpConnector>,
    method: reqwest::Method,
    path: Option<Template>,
    headers: Vec<(String, Template)>,
    body: Option<Template>,
    max_retries: u32,
    request_timeout: Duration,
    ttl: Option<Duration>,
    max_bytes: u64,
    /// Counters, kept by the engine across restarts of the action.
    pub metrics: Arc<ActionMetrics>,
    queue: Mutex<VecDeque<Queued>>,
    queued_bytes: AtomicU64,
    inflight: AtomicU64,
    slots: Arc<Semaphore>,
    wake: Notify,
    cancel: CancellationToken,
}

impl HttpAction {
    /// Starts an action on `connector` from its filled document (`model::http_action`).
    pub fn start(
        doc: &Map<String, Value>,
        connector: Arc<HttpConnector>,
        metrics: Arc<ActionMetrics>,
        cancel: CancellationToken,
    ) -> Result<Arc<Self>, ModelError> {
        let empty = Value::Object(Map::new());
        let p = doc.get("parameters").unwrap_or(&empty);
        let ro = doc.get("resource_opts").unwrap_or(&empty);
        let method = match p.get("method").and_then(Value::as_str).unwrap_or("post") {
            "put" => reqwest::Method::PUT,
            "get" => reqwest::Method::GET,
            "delete" => reqwest::Method::DELETE,
            _ => reqwest::Method::POST,
        };
        // The action's headers are merged over the connector's, the action winning per key.
        let mut headers: Vec<(String, Template)> = connector
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Template::parse(v)))
            .collect();
        for (k, v) in header_list(p.get("headers")) {
            headers.retain(|(hk, _)| *hk != k);
            headers.push((k, Template::parse(&v)));
        }
        let ttl = match ro.get("request_ttl").or_else(|| ro.get("request_timeout")) {
            Some(v) => duration(v)?,
            None => Some(Duration::from_secs(45)),
        };
        let max_bytes = size(
            ro.get("max_buffer_bytes")
                .or_else(|| ro.get("max_queue_bytes"))
                .unwrap_or(&Value::from("256MB")),
        )?;
        let window = ro
            .get("inflight_window")
            .and_then(Value::as_u64)
            .unwrap_or(100)
            .clamp(1, 10_000) as usize;
        let a = Arc::new(HttpAction {
            connector,
            method,
            path: p.get("path").and_then(Value::as_str).map(Template::parse),
            headers,
            body: p.get("body").and_then(Value::as_str).map(Template::parse),
            max_retries: p.get("max_retries").and_then(Value::as_u64).unwrap_or(2) as u32,
            request_timeout: opt_duration(p.get("request_timeout"), Duration::from_secs(15))?
                .min(ttl.unwrap_or(Duration::MAX)),
            ttl,
            max_bytes,
            metrics,
            queue: Mutex::new(VecDeque::new()),
            queued_bytes: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(window)),
            wake: Notify::new(),
            cancel,
        });
        tokio::spawn(a.clone().worker());
        Ok(a)
    }

    /// The status of the action: its connector's.
    pub fn status(&self) -> (Status, Option<String>) {
        self.connector.status()
    }

    /// (queuing, queuing_bytes, inflight) gauges.
    pub fn gauges(&self) -> (u64, u64, u64) {
        (
            self.queue.lock().len() as u64,
            self.queued_bytes.load(Ordering::Relaxed),
            self.inflight.load(Ordering::Relaxed),
        )
    }

    /// Renders one request from a rule's output and queues it; never waits. Missing template
    /// variables render as `undefined` (spec §6); the count of those goes to the debug log.
    pub fn push(&self, output: &Value) {
        inc(&self.metrics.matched);
        let mut missing = 0;
        let mut url = self.connector.base.clone();
        if let Some(path) = &self.path {
            let (p, m) = path.render(output, "undefined");
            missing += m;
            let joined = format!(
                "{}/{}",
                url.path().trim_end_matches('/'),
                p.trim_start_matches('/')
            );
            match p.split_once('?') {
                Some(_) => match url.join(&joined) {
                    Ok(u) => url = u,
                    Err(_) => url.set_path(&joined),
                },
                None => url.set_path(&joined),
            }
        }
        let body = match &self.body {
            Some(t) => {
                let (b, m) = t.render(output, "undefined");
                missing += m;
                b
            }
            None => output.to_string(),
        };
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, t)| {
                let (v, m) = t.render(output, "undefined");
                missing += m;
                (k.clone(), v)
            })
            .collect();
        if missing > 0 {
            tracing::debug!(url = %url, missing, "http action: template variables missing");
        }
        let bytes = (body.len() + url.as_str().len()) as u64;
        let q = Queued {
            method: self.method.clone(),
            url,
            headers,
            body,
            at: Instant::now(),
            bytes,
        };
        {
            let mut queue = self.queue.lock();
            // Full: the oldest go first (EMQX's overflow behaviour), counted.
            while !queue.is_empty()
                && self.queued_bytes.load(Ordering::Relaxed) + bytes > self.max_bytes
            {
                if let Some(old) = queue.pop_front() {
                    self.queued_bytes.fetch_sub(old.bytes, Ordering::Relaxed);
                    inc(&self.metrics.dropped);
                    inc(&self.metrics.dropped_queue_full);
                }
            }
            self.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
            queue.push_back(q);
        }
        self.wake.notify_one();
    }

    fn pop(&self) -> Option<Queued> {
        let q = self.queue.lock().pop_front();
        if let Some(q) = &q {
            self.queued_bytes.fetch_sub(q.bytes, Ordering::Relaxed);
        }
        q
    }

    fn requeue(&self, q: Queued) {
        self.queued_bytes.fetch_add(q.bytes, Ordering::Relaxed);
        self.queue.lock().push_front(q);
    }

    /// Drops the requests at the front of the buffer that are older than `request_ttl`.
    fn expire(&self) {
        let Some(ttl) = self.ttl else { return };
        let mut queue = self.queue.lock();
        while queue.front().is_some_and(|q| q.at.elapsed() > ttl) {
            if let Some(old) = queue.pop_front() {
                self.queued_bytes.fetch_sub(old.bytes, Ordering::Relaxed);
                inc(&self.metrics.dropped);
                inc(&self.metrics.dropped_expired);
            }
        }
    }

    async fn worker(self: Arc<Self>) {
        loop {
            // While the server is away, requests past their TTL leave the buffer anyway (counted
            // as expired), so an outage longer than request_ttl does not keep stale requests.
            let connected = tokio::select! {
                () = self.cancel.cancelled() => return,
                up = self.connector.wait_connected() => up,
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    self.expire();
                    continue;
                }
            };
            if !connected {
                return;
            }
            let permit = tokio::select! {
                () = self.cancel.cancelled() => return,
                p = self.slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let wake = self.wake.notified();
            let Some(q) = self.pop() else {
                drop(permit);
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = wake => {}
                    // A disconnect while idle is seen at the top of the loop.
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            };
            if self.ttl.is_some_and(|ttl| q.at.elapsed() > ttl) {
                inc(&self.metrics.dropped);
                inc(&self.metrics.dropped_expired);
                continue;
            }
            self.inflight.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            tokio::spawn(async move {
                me.send(q).await;
                me.inflight.fetch_sub(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }

    async fn send(&self, q: Queued) {
        let mut attempt: u32 = 0;
        loop {
            let mut req = self
                .connector
                .client
                .request(q.method.clone(), q.url.clone())
                .timeout(self.request_timeout);
            for (k, v) in &q.headers {
                req = req.header(k.as_str(), v.as_str());
            }
            if q.method != reqwest::Method::GET {
                req = req.body(q.body.clone());
            }
            let outcome = req.send().await;
            let retry_why = match outcome {
                Ok(resp) if resp.status().is_success() => {
                    inc(&self.metrics.success);
                    if attempt > 0 {
                        inc(&self.metrics.retried_success);
                    }
                    return;
                }
                Ok(resp) if matches!(resp.status().as_u16(), 429 | 503) => {
                    format!("status {}", resp.status().as_u16())
                }
                Ok(resp) => {
                    tracing::warn!(url = %q.url, status = resp.status().as_u16(), "http action: request failed");
                    inc(&self.metrics.failed);
                    return;
                }
                Err(e) if e.is_connect() => {
                    // The server is gone: back to the front of the buffer, to wait for it.
                    self.connector.unreachable(e.to_string());
                    inc(&self.metrics.retried);
                    self.requeue(q);
                    self.wake.notify_one();
                    return;
                }
                Err(e) => e.to_string(),
            };
            if attempt >= self.max_retries {
                tracing::warn!(url = %q.url, reason = %retry_why, attempts = attempt + 1, "http action: giving up");
                inc(&self.metrics.failed);
                if attempt > 0 {
                    inc(&self.metrics.retried_failed);
                }
                return;
            }
            attempt += 1;
            inc(&self.metrics.retried);
            // Exponential back-off with full jitter, so retries of many requests spread out.
            let cap = 100u64.saturating_mul(1 << attempt.min(10));
            let wait = rand::thread_rng().gen_range(cap / 2..=cap);
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(wait)) => {}
            }
        }
    }
}
