//! The rule engine: the installed rules, connectors and actions, the bus listener that runs
//! rules on events, and the operations the REST API performs.
//!
//! Owns: the in-memory view of kinds `rules`, `connectors` and `actions` of the API-state store
//! (written before the view, as every view does), the objects from the config file (which the
//! API may override by key), and dispatching a rule's outputs to its actions.
//! Invariants: the listener reads a snapshot (`Arc<Vec<…>>`) of the rules, swapped whole on a
//! change, so the publisher's task takes no lock longer than an `Arc` clone. A republish runs in
//! the same task as the event that caused it; a thread-local list of the rules whose actions
//! are running keeps that publish from re-entering them (spec §2.3).

use crate::columns::{self, Directory};
use crate::eval::{run, EvalError, Outcome};
use crate::http::{HttpAction, HttpConnector, Status};
use crate::metrics::{inc, ActionMetrics, RuleMetrics};
use crate::model::{self, ModelError};
use crate::sql::{self, ast, SqlError};
use crate::template::Template;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchyard_bus::{BusEvent, BusHandle, EventKind, EventTap};
use switchyard_state::{Change, SharedState, StateError, StateView};
use thiserror::Error;
use tokio_util::sync::CancellationToken;

mod rules_api;
mod sinks_api;

/// State-store kinds this engine owns.
pub const KIND_RULES: &str = "rules";
/// Connectors, keyed `type:name`.
pub const KIND_CONNECTORS: &str = "connectors";
/// Actions, keyed `type:name`.
pub const KIND_ACTIONS: &str = "actions";

/// Why an operation was refused.
#[derive(Debug, Error)]
pub enum RulesError {
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// A connector or action of that type and name exists (`ALREADY_EXISTS`).
    #[error("{0}")]
    AlreadyExists(String),
    /// The body or the request is wrong (`BAD_REQUEST`).
    #[error("{0}")]
    BadRequest(String),
    /// The SQL does not parse.
    #[error("Bad Arguments: {0}")]
    Sql(#[from] SqlError),
    /// An action still used by rules cannot be deleted.
    #[error("Cannot delete action while active rules are depending on it")]
    InUse(Vec<String>),
    /// The store failed.
    #[error("{0}")]
    State(#[from] StateError),
}

impl From<ModelError> for RulesError {
    fn from(e: ModelError) -> Self {
        RulesError::BadRequest(e.to_string())
    }
}

/// Why a dry run did not produce output.
#[derive(Debug, Error)]
pub enum TestError {
    /// The SQL does not parse.
    #[error("{0}")]
    Sql(#[from] SqlError),
    /// The input topic does not match FROM, or WHERE was not true (`NOT_MATCH`, 412).
    #[error("SQL Not Match")]
    NotMatch,
    /// An expression failed (`{"select_and_transform_error": …}`).
    #[error("{0}")]
    Eval(#[from] EvalError),
}

/// One rule's counters, for Prometheus.
#[derive(Debug, Clone)]
pub struct RuleStat {
    /// Rule id.
    pub id: String,
    /// Whether it is enabled.
    pub enable: bool,
    /// Counters by dotted name.
    pub counters: Vec<(&'static str, u64)>,
}

/// One action's state and counters, for Prometheus.
#[derive(Debug, Clone)]
pub struct ActionStat {
    /// `type:name`.
    pub id: String,
    /// Whether it is enabled.
    pub enable: bool,
    /// Whether its connector is connected.
    pub connected: bool,
    /// Counters by dotted name.
    pub counters: Vec<(&'static str, u64)>,
    /// Requests buffered.
    pub queuing: u64,
    /// Requests sent, not answered.
    pub inflight: u64,
}

/// Where an object came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Config,
    Api,
}

/// A parsed element of a rule's `actions`.
enum ActionRef {
    Republish(Republish),
    Console,
    Named(String),
}

struct Republish {
    topic: Template,
    qos: crate::republish::Typed,
    retain: crate::republish::Typed,
    payload: Template,
    properties: Vec<(String, Template)>,
    user_properties: Option<Template>,
}

/// A rule as the listener runs it.
struct Installed {
    id: Arc<str>,
    sql: ast::Rule,
    /// Message topic filters (FROM entries that are not `$events/…`).
    filters: Vec<String>,
    /// Event topics named in FROM.
    events: Vec<String>,
    enable: bool,
    actions: Vec<ActionRef>,
    metrics: Arc<RuleMetrics>,
    /// The columns the SQL reads (`None`: all of them).
    columns: Option<std::collections::BTreeSet<String>>,
}

struct RuleEntry {
    doc: Map<String, Value>,
    installed: Arc<Installed>,
    origin: Origin,
}

struct ConnectorEntry {
    doc: Map<String, Value>,
    running: Option<Arc<HttpConnector>>,
    cancel: CancellationToken,
    origin: Origin,
}

struct ActionEntry {
    doc: Map<String, Value>,
    running: Option<Arc<HttpAction>>,
    cancel: CancellationToken,
    metrics: Arc<ActionMetrics>,
    origin: Origin,
}

thread_local! {
    /// Rules whose actions run on this thread right now (republish loop guard).
    static ACTIVE: RefCell<Vec<Arc<str>>> = const { RefCell::new(Vec::new()) };
}

/// The engine.
pub struct RuleEngine {
    bus: BusHandle,
    node: String,
    state: Option<SharedState>,
    ignore_sys_message: bool,
    dir: Directory,
    snapshot: RwLock<Arc<Vec<Arc<Installed>>>>,
    rules: Mutex<BTreeMap<String, RuleEntry>>,
    connectors: Mutex<BTreeMap<String, ConnectorEntry>>,
    actions: RwLock<BTreeMap<String, ActionEntry>>,
    cancel: CancellationToken,
}

fn split_id(id: &str, what: &str) -> Result<(String, String), RulesError> {
    match id.split_once(':') {
        Some((t, n)) => Ok((
            if t == "webhook" { "http" } else { t }.to_string(),
            n.to_string(),
        )),
        None => Err(RulesError::NotFound(format!(
            "Invalid {what} ID, should be of pattern {{type}}:{{name}}, but got: {id}"
        ))),
    }
}

fn rfc3339_ms(ms: i64) -> String {
    crate::funcs::rfc3339_ms(ms)
}

impl RuleEngine {
    /// An engine on `bus`, persisting API-made objects in `state` (none: in memory only). Call
    /// [`RuleEngine::attach`] to start listening.
    pub fn new(
        bus: BusHandle,
        node: &str,
        state: Option<SharedState>,
        ignore_sys_message: bool,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(RuleEngine {
            bus,
            node: node.to_string(),
            state,
            ignore_sys_message,
            dir: Directory::default(),
            snapshot: RwLock::new(Arc::new(Vec::new())),
            rules: Mutex::new(BTreeMap::new()),
            connectors: Mutex::new(BTreeMap::new()),
            actions: RwLock::new(BTreeMap::new()),
            cancel,
        })
    }

    /// Installs the engine as the bus's event listener.
    pub fn attach(self: &Arc<Self>) {
        self.bus.events().set_tap(Some(self.clone()));
        self.refresh();
        // Rates (`matched.rate`, an action's `rate`) are sampled here, off the publish path.
        let me = Arc::downgrade(self);
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            let secs = crate::metrics::SAMPLE_EVERY.as_secs_f64();
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(crate::metrics::SAMPLE_EVERY) => {}
                }
                let Some(me) = me.upgrade() else { return };
                me.sample_rates(secs);
            }
        });
    }

    fn sample_rates(&self, secs: f64) {
        for r in self.rules.lock().values() {
            let m = &r.installed.metrics;
            m.rate
                .sample(m.matched.load(std::sync::atomic::Ordering::Relaxed), secs);
        }
        for a in self.actions.read().values() {
            let m = &a.metrics;
            m.rate
                .sample(m.matched.load(std::sync::atomic::Ordering::Relaxed), secs);
        }
    }

    /// Loads objects from the config file (`[rule_engine.rules.<id>]`, `[connectors.http.<n>]`,
    /// `[actions.http.<n>]`, given here as JSON) and then from the store, which wins by key.
    pub fn load(
        &self,
        rules: Vec<(String, Value)>,
        connectors: Vec<(String, Value)>,
        actions: Vec<(String, Value)>,
    ) -> Result<(), RulesError> {
        for (name, body) in connectors {
            let doc = self.connector_doc("http", &name, &body)?;
            self.install_connector(&format!("http:{name}"), doc, Origin::Config)?;
        }
        for (name, body) in actions {
            let doc = self.action_doc("http", &name, &body)?;
            self.install_action(&format!("http:{name}"), doc, Origin::Config)?;
        }
        for (id, body) in rules {
            let mut doc = model::rule(&body)?;
            doc.insert("id".into(), json!(id));
            stamp(&mut doc, None);
            self.install_rule(&id, doc, Origin::Config)?;
        }
        if let Some(state) = &self.state {
            for (key, doc) in state.list(KIND_CONNECTORS)? {
                if let Value::Object(doc) = doc {
                    self.install_connector(&key, doc, Origin::Api)?;
                }
            }
            for (key, doc) in state.list(KIND_ACTIONS)? {
                if let Value::Object(doc) = doc {
                    self.install_action(&key, doc, Origin::Api)?;
                }
            }
            for (key, doc) in state.list(KIND_RULES)? {
                if let Value::Object(doc) = doc {
                    if let Err(e) = self.install_rule(&key, doc, Origin::Api) {
                        tracing::error!(rule = %key, error = %e, "stored rule not loaded");
                    }
                }
            }
        }
        self.refresh();
        Ok(())
    }

    // ----- the listener -----

    /// Rebuilds the snapshot and the bus interest from the rules.
    fn refresh(&self) {
        let list: Vec<Arc<Installed>> = self
            .rules
            .lock()
            .values()
            .map(|e| e.installed.clone())
            .collect();
        let mut kinds = Vec::new();
        for r in list.iter().filter(|r| r.enable) {
            if !r.filters.is_empty() {
                kinds.push(EventKind::MessagePublish);
            }
            for e in &r.events {
                kinds.push(match e.as_str() {
                    "$events/message_delivered" => EventKind::MessageDelivered,
                    "$events/message_acked" => EventKind::MessageAcked,
                    "$events/message_dropped" => EventKind::MessageDropped,
                    "$events/client_connected" => EventKind::ClientConnected,
                    "$events/client_disconnected" => EventKind::ClientDisconnected,
                    "$events/session_subscribed" => EventKind::SessionSubscribed,
                    _ => EventKind::SessionUnsubscribed,
                });
            }
        }
        if !kinds.is_empty() {
            // The directory of clients gives message events their publisher's username/peer.
            kinds.push(EventKind::ClientConnected);
            kinds.push(EventKind::ClientDisconnected);
        }
        *self.snapshot.write() = Arc::new(list);
        self.bus.events().set_interest(kinds);
    }

    fn dispatch(&self, event: &BusEvent<'_>) {
        let rules = self.snapshot.read().clone();
        let (is_publish, topic): (bool, &str) = match event {
            BusEvent::MessagePublish(m) => (true, m.topic.as_str()),
            BusEvent::MessageDelivered { .. } => (false, "$events/message_delivered"),
            BusEvent::MessageAcked { .. } => (false, "$events/message_acked"),
            BusEvent::MessageDropped { .. } => (false, "$events/message_dropped"),
            BusEvent::ClientConnected(_) => (false, "$events/client_connected"),
            BusEvent::ClientDisconnected { .. } => (false, "$events/client_disconnected"),
            BusEvent::SessionSubscribed { .. } => (false, "$events/session_subscribed"),
            BusEvent::SessionUnsubscribed { .. } => (false, "$events/session_unsubscribed"),
        };
        if is_publish && self.ignore_sys_message && topic.starts_with("$SYS/") {
            return;
        }
        let mut hits: Vec<&Arc<Installed>> = Vec::new();
        for r in rules.iter() {
            if !r.enable {
                continue;
            }
            let hit = if is_publish {
                r.filters.iter().any(|f| crate::eval::topic_match(topic, f))
            } else {
                r.events.iter().any(|e| e == topic)
            };
            if !hit {
                continue;
            }
            // Whatever a rule's own actions cause on this thread (its republish, or that
            // message being dropped) does not run the rule again: no loops.
            if ACTIVE.with(|a| a.borrow().iter().any(|id| *id == r.id)) {
                tracing::debug!(rule = %r.id, topic, "recursive republish detected; skipped");
                continue;
            }
            hits.push(r);
        }
        let connect_event = matches!(
            event,
            BusEvent::ClientConnected(_) | BusEvent::ClientDisconnected { .. }
        );
        if hits.is_empty() && !connect_event {
            return;
        }
        // Only the columns some matching rule reads are built (a rule on topic and payload
        // does not pay for ids, properties or the publisher's username). A connect or
        // disconnect always goes through, to keep the client directory current.
        let all = hits.iter().any(|r| r.columns.is_none());
        let want = |k: &str| {
            all || hits
                .iter()
                .any(|r| r.columns.as_ref().is_some_and(|c| c.contains(k)))
        };
        let Some((_, cols)) = columns::columns(event, &self.dir, &self.node, &want) else {
            return;
        };
        for r in hits {
            self.apply_rule(r, &cols);
        }
    }

    /// Runs one rule on one event's columns and hands its outputs to its actions.
    fn apply_rule(&self, r: &Installed, cols: &Map<String, Value>) {
        inc(&r.metrics.matched);
        let outputs = match run(&r.sql, cols) {
            Ok(Outcome::Outputs(o)) if !o.is_empty() => o,
            Ok(_) => {
                inc(&r.metrics.failed);
                inc(&r.metrics.failed_no_result);
                return;
            }
            Err(e) => {
                inc(&r.metrics.failed);
                inc(&r.metrics.failed_exception);
                tracing::debug!(rule = %r.id, error = %e, "rule failed on an event");
                return;
            }
        };
        inc(&r.metrics.passed);
        ACTIVE.with(|a| a.borrow_mut().push(r.id.clone()));
        for out in &outputs {
            for a in &r.actions {
                inc(&r.metrics.actions_total);
                match self.run_action(&r.id, a, out) {
                    Ok(()) => inc(&r.metrics.actions_success),
                    Err(out_of_service) => {
                        inc(&r.metrics.actions_failed);
                        if out_of_service {
                            inc(&r.metrics.actions_failed_out_of_service);
                        } else {
                            inc(&r.metrics.actions_failed_unknown);
                        }
                    }
                }
            }
        }
        ACTIVE.with(|a| {
            a.borrow_mut().pop();
        });
    }

    /// `Err(true)`: the action is missing or disabled; `Err(false)`: it failed.
    fn run_action(&self, rule: &str, a: &ActionRef, out: &Value) -> Result<(), bool> {
        match a {
            ActionRef::Console => {
                tracing::info!(rule, output = %out, "rule console action");
                Ok(())
            }
            ActionRef::Republish(p) => {
                crate::republish::publish(&self.bus, rule, p.as_parts(), out).map_err(|e| {
                    tracing::warn!(rule, error = %e, "republish failed");
                    false
                })
            }
            ActionRef::Named(id) => {
                let actions = self.actions.read();
                match actions.get(id).and_then(|e| e.running.clone()) {
                    Some(action) => {
                        drop(actions);
                        action.push(out);
                        Ok(())
                    }
                    None => Err(true),
                }
            }
        }
    }
}

fn connector_key(action_doc: &Map<String, Value>) -> String {
    format!(
        "{}:{}",
        action_doc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("http"),
        action_doc
            .get("connector")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

/// Sets `created_at` (kept when given) and `last_modified_at`, epoch milliseconds.
fn stamp(doc: &mut Map<String, Value>, created: Option<i64>) {
    let now = model::now_ms();
    doc.insert("created_at".into(), json!(created.unwrap_or(now)));
    doc.insert("last_modified_at".into(), json!(now));
}

fn action_ref(v: &Value) -> Option<ActionRef> {
    match v {
        Value::String(s) => Some(ActionRef::Named(s.clone())),
        Value::Object(m) => match m.get("function").and_then(Value::as_str)? {
            "console" => Some(ActionRef::Console),
            "republish" => {
                let args = m.get("args")?;
                let t = |k: &str, d: &str| {
                    Template::parse(args.get(k).and_then(Value::as_str).unwrap_or(d))
                };
                Some(ActionRef::Republish(Republish {
                    topic: t("topic", ""),
                    qos: crate::republish::Typed::new(args.get("qos").unwrap_or(&json!("${qos}"))),
                    retain: crate::republish::Typed::new(
                        args.get("retain").unwrap_or(&json!("${retain}")),
                    ),
                    payload: t("payload", "${payload}"),
                    properties: args
                        .get("mqtt_properties")
                        .and_then(Value::as_object)
                        .map(|p| {
                            p.iter()
                                .map(|(k, v)| {
                                    (k.clone(), Template::parse(&crate::funcs::to_text(v)))
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    user_properties: args
                        .get("user_properties")
                        .and_then(Value::as_str)
                        .map(Template::parse),
                }))
            }
            _ => None,
        },
        _ => None,
    }
}

impl Republish {
    fn as_parts(&self) -> crate::republish::Parts<'_> {
        crate::republish::Parts {
            topic: &self.topic,
            qos: &self.qos,
            retain: &self.retain,
            payload: &self.payload,
            properties: &self.properties,
            user_properties: self.user_properties.as_ref(),
        }
    }
}

impl EventTap for RuleEngine {
    fn on_event(&self, event: &BusEvent<'_>) {
        self.dispatch(event);
    }
}

impl StateView for RuleEngine {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn apply(&self, change: &Change) -> Result<(), StateError> {
        let kind = change.kind.as_str();
        if ![KIND_RULES, KIND_CONNECTORS, KIND_ACTIONS].contains(&kind) {
            return Ok(());
        }
        let Some(state) = &self.state else {
            return Ok(());
        };
        // Re-read: the feed entry may be older than what a local write already installed.
        let doc = state.get(kind, &change.key)?;
        let current = self.current_doc(kind, &change.key);
        let installed = match (doc, current) {
            (Some(Value::Object(d)), Some(c)) if d == c => return Ok(()),
            (Some(Value::Object(d)), _) => match kind {
                KIND_RULES => self.install_rule(&change.key, d, Origin::Api),
                KIND_CONNECTORS => self.install_connector(&change.key, d, Origin::Api),
                _ => self.install_action(&change.key, d, Origin::Api),
            },
            (None, Some(_)) if self.origin_of(kind, &change.key) == Some(Origin::Api) => {
                match kind {
                    KIND_RULES => {
                        self.rules.lock().remove(&change.key);
                    }
                    KIND_CONNECTORS => {
                        if let Some(e) = self.connectors.lock().remove(&change.key) {
                            e.cancel.cancel();
                        }
                    }
                    _ => {
                        if let Some(e) = self.actions.write().remove(&change.key) {
                            e.cancel.cancel();
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = installed {
            return Err(StateError::Invalid {
                kind: kind.to_string(),
                key: change.key.clone(),
                error: e.to_string(),
            });
        }
        self.refresh();
        Ok(())
    }

    fn resync(&self) -> Result<(), StateError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        for kind in [KIND_CONNECTORS, KIND_ACTIONS, KIND_RULES] {
            for (key, value) in state.list(kind)? {
                StateView::apply(
                    self,
                    &Change {
                        kind: kind.to_string(),
                        key,
                        value: Some(value),
                    },
                )?;
            }
        }
        Ok(())
    }
}
