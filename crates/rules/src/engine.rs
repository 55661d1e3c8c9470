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
    qos: Value,
    retain: Value,
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
        let mut cols: Option<Map<String, Value>> = None;
        let connect_event = matches!(
            event,
            BusEvent::ClientConnected(_) | BusEvent::ClientDisconnected { .. }
        );
        if connect_event {
            // Always, to keep the directory current.
            cols = columns::columns(event, &self.dir, &self.node).map(|(_, c)| c);
        }
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
            if cols.is_none() {
                cols = columns::columns(event, &self.dir, &self.node).map(|(_, c)| c);
            }
            let Some(c) = &cols else { return };
            self.apply_rule(r, c);
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

    // ----- rules -----

    fn install_rule(
        &self,
        id: &str,
        doc: Map<String, Value>,
        origin: Origin,
    ) -> Result<(), RulesError> {
        let text = doc.get("sql").and_then(Value::as_str).unwrap_or_default();
        let parsed = sql::parse(text)?;
        let enable = doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
        let mut filters = Vec::new();
        let mut events = Vec::new();
        for f in &parsed.from {
            if f.starts_with("$events/") {
                if !columns::EVENTS.iter().any(|(t, _)| t == f) {
                    return Err(RulesError::BadRequest(format!(
                        "Bad Arguments: unsupported event topic {f}"
                    )));
                }
                events.push(f.clone());
            } else {
                filters.push(f.clone());
            }
        }
        let actions = doc
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(action_ref).collect())
            .unwrap_or_default();
        let mut rules = self.rules.lock();
        // Metrics survive an update, but disabling a rule resets them (EMQX).
        let metrics = match rules.get(id) {
            Some(old) if enable => old.installed.metrics.clone(),
            _ => Arc::new(RuleMetrics::default()),
        };
        let installed = Arc::new(Installed {
            id: Arc::from(id),
            sql: parsed,
            filters,
            events,
            enable,
            actions,
            metrics,
        });
        rules.insert(
            id.to_string(),
            RuleEntry {
                doc,
                installed,
                origin,
            },
        );
        Ok(())
    }

    /// The rule as the API shows it.
    fn rule_json(doc: &Map<String, Value>) -> Value {
        let mut v = doc.clone();
        let from = doc
            .get("sql")
            .and_then(Value::as_str)
            .and_then(|s| sql::parse(s).ok())
            .map(|r| r.from)
            .unwrap_or_default();
        v.insert("from".into(), json!(from));
        for k in ["created_at", "last_modified_at"] {
            if let Some(ms) = doc.get(k).and_then(Value::as_i64) {
                v.insert(k.into(), json!(rfc3339_ms(ms)));
            }
        }
        Value::Object(v)
    }

    /// Every rule, ordered by id.
    pub fn list_rules(&self) -> Vec<Value> {
        self.rules
            .lock()
            .values()
            .map(|e| Self::rule_json(&e.doc))
            .collect()
    }

    /// One rule.
    pub fn get_rule(&self, id: &str) -> Option<Value> {
        self.rules.lock().get(id).map(|e| Self::rule_json(&e.doc))
    }

    fn persist(
        &self,
        kind: &str,
        key: &str,
        doc: Option<&Map<String, Value>>,
    ) -> Result<(), RulesError> {
        if let Some(state) = &self.state {
            match doc {
                Some(d) => state.put(kind, key, &Value::Object(d.clone()))?,
                None => {
                    state.delete(kind, key)?;
                }
            }
        }
        Ok(())
    }

    /// `POST /rules`.
    pub fn create_rule(&self, body: &Value) -> Result<Value, RulesError> {
        let id = match body.get("id") {
            None => format!("{:08x}", rand::random::<u32>()),
            Some(Value::String(s)) if s.is_empty() => {
                return Err(RulesError::BadRequest(
                    "empty rule id is not allowed".into(),
                ))
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(RulesError::BadRequest("rule id must be a string".into())),
        };
        if self.rules.lock().contains_key(&id) {
            return Err(RulesError::BadRequest("rule id already exists".into()));
        }
        let mut doc = model::rule(body)?;
        sql::parse(doc.get("sql").and_then(Value::as_str).unwrap_or_default())?;
        doc.insert("id".into(), json!(id));
        stamp(&mut doc, None);
        self.warn_missing_actions(&id, &doc);
        self.persist(KIND_RULES, &id, Some(&doc))?;
        self.install_rule(&id, doc, Origin::Api)?;
        self.refresh();
        Ok(self.get_rule(&id).unwrap_or(Value::Null))
    }

    fn warn_missing_actions(&self, id: &str, doc: &Map<String, Value>) {
        let actions = self.actions.read();
        for a in doc
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = a.as_str() {
                if !actions.contains_key(name) {
                    // EMQX accepts it; the reference works once the action exists.
                    tracing::warn!(
                        rule = id,
                        action = name,
                        "action_references_nonexistent_bridges"
                    );
                }
            }
        }
    }

    /// `PUT /rules/{id}`: the body is merged shallowly into the stored rule.
    pub fn update_rule(&self, id: &str, body: &Value) -> Result<Value, RulesError> {
        let old = self
            .rules
            .lock()
            .get(id)
            .map(|e| e.doc.clone())
            .ok_or_else(|| RulesError::NotFound("Rule Id Not Found".into()))?;
        let patch = body
            .as_object()
            .ok_or_else(|| RulesError::BadRequest("the rule must be a JSON object".into()))?;
        model::check_keys(
            patch,
            &[
                "sql",
                "actions",
                "enable",
                "name",
                "description",
                "metadata",
            ],
            &["id"],
        )?;
        let mut merged = old.clone();
        for (k, v) in patch {
            if k != "id" && !model::READ_ONLY.contains(&k.as_str()) {
                merged.insert(k.clone(), v.clone());
            }
        }
        let mut doc = model::rule(&Value::Object(merged))?;
        sql::parse(doc.get("sql").and_then(Value::as_str).unwrap_or_default())?;
        doc.insert("id".into(), json!(id));
        stamp(&mut doc, old.get("created_at").and_then(Value::as_i64));
        self.warn_missing_actions(id, &doc);
        self.persist(KIND_RULES, id, Some(&doc))?;
        self.install_rule(id, doc, Origin::Api)?;
        self.refresh();
        Ok(self.get_rule(id).unwrap_or(Value::Null))
    }

    /// `DELETE /rules/{id}`.
    pub fn delete_rule(&self, id: &str) -> Result<(), RulesError> {
        if !self.rules.lock().contains_key(id) {
            return Err(RulesError::NotFound("Rule Id Not Found".into()));
        }
        self.persist(KIND_RULES, id, None)?;
        self.rules.lock().remove(id);
        self.refresh();
        Ok(())
    }

    /// `GET /rules/{id}/metrics`.
    pub fn rule_metrics(&self, id: &str) -> Option<Value> {
        let rules = self.rules.lock();
        let m = rules.get(id)?.installed.metrics.json();
        Some(json!({"id": id, "metrics": m,
                    "node_metrics": [{"node": self.node, "metrics": m}]}))
    }

    /// `PUT /rules/{id}/metrics/reset`.
    pub fn reset_rule_metrics(&self, id: &str) -> bool {
        match self.rules.lock().get(id) {
            Some(e) => {
                e.installed.metrics.reset();
                true
            }
            None => false,
        }
    }

    /// Counters of every rule.
    pub fn all_rule_metrics(&self) -> Vec<RuleStat> {
        self.rules
            .lock()
            .iter()
            .map(|(id, e)| RuleStat {
                id: id.clone(),
                enable: e.installed.enable,
                counters: e.installed.metrics.values(),
            })
            .collect()
    }

    /// `POST /rule_test`: runs `sql` on `context` (missing columns filled with examples;
    /// `event_type` defaults to `message_publish`). Nothing is published, no action runs.
    pub fn test_sql(&self, sql_text: &str, context: &Value) -> Result<Value, TestError> {
        let rule = sql::parse(sql_text)?;
        let ctx = context.as_object().cloned().unwrap_or_default();
        let event_type = ctx
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or("message_publish")
            .to_string();
        let mut cols = columns::test_columns(&event_type, &self.node);
        for (k, v) in ctx {
            if k != "event_type" && k != "event_topic" {
                cols.insert(k, v);
            }
        }
        let input = match columns::event_topic(&event_type) {
            Some(t) => context
                .get("event_topic")
                .and_then(Value::as_str)
                .unwrap_or(t)
                .to_string(),
            None => cols
                .get("topic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        let matched = rule.from.iter().any(|f| {
            if f.starts_with("$events/") {
                *f == input
            } else {
                crate::eval::topic_match(&input, f)
            }
        });
        if !matched {
            return Err(TestError::NotMatch);
        }
        let foreach = matches!(rule.kind, ast::RuleKind::Foreach { .. });
        match run(&rule, &cols)? {
            Outcome::NoResult if foreach => Ok(json!([])),
            Outcome::NoResult => Err(TestError::NotMatch),
            Outcome::Outputs(o) if foreach => Ok(Value::Array(o)),
            Outcome::Outputs(mut o) => Ok(o.pop().unwrap_or(Value::Null)),
        }
    }

    // ----- connectors -----

    fn connector_doc(
        &self,
        ty: &str,
        name: &str,
        body: &Value,
    ) -> Result<Map<String, Value>, RulesError> {
        if ty != "http" {
            return Err(RulesError::BadRequest(format!(
                "unknown connector type: {ty}"
            )));
        }
        model::check_name(name)?;
        let mut b = body.clone();
        if let Value::Object(m) = &mut b {
            m.remove("type");
            m.remove("name");
        }
        let mut doc = model::http_connector(&b)?;
        doc.insert("type".into(), json!(ty));
        doc.insert("name".into(), json!(name));
        Ok(doc)
    }

    fn install_connector(
        &self,
        id: &str,
        doc: Map<String, Value>,
        origin: Origin,
    ) -> Result<(), RulesError> {
        let enable = doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
        let cancel = self.cancel.child_token();
        let running = if enable {
            Some(HttpConnector::start(&doc, cancel.clone())?)
        } else {
            None
        };
        let old = self.connectors.lock().insert(
            id.to_string(),
            ConnectorEntry {
                doc,
                running,
                cancel,
                origin,
            },
        );
        if let Some(old) = old {
            old.cancel.cancel();
        }
        // Actions on this connector restart on the new one.
        let dependents: Vec<(String, Map<String, Value>, Origin)> = self
            .actions
            .read()
            .iter()
            .filter(|(_, a)| connector_key(&a.doc) == id)
            .map(|(k, a)| (k.clone(), a.doc.clone(), a.origin))
            .collect();
        for (k, doc, origin) in dependents {
            self.install_action(&k, doc, origin)?;
        }
        Ok(())
    }

    fn connector_json(&self, id: &str, e: &ConnectorEntry) -> Value {
        let mut v = e.doc.clone();
        let (status, reason) = match &e.running {
            Some(c) => {
                let (s, r) = c.status();
                (s.as_str(), r)
            }
            None => ("stopped", None),
        };
        v.insert("status".into(), json!(status));
        if let Some(r) = &reason {
            v.insert("status_reason".into(), json!(r));
        }
        let mut ns = json!({"node": self.node, "status": status});
        if let Some(r) = reason {
            ns["status_reason"] = json!(r);
        }
        v.insert("node_status".into(), json!([ns]));
        let users: Vec<Value> = self
            .actions
            .read()
            .iter()
            .filter(|(_, a)| connector_key(&a.doc) == id)
            .map(|(_, a)| a.doc.get("name").cloned().unwrap_or(Value::Null))
            .collect();
        v.insert("actions".into(), Value::Array(users));
        v.insert("sources".into(), json!([]));
        Value::Object(v)
    }

    /// `GET /connectors`.
    pub fn list_connectors(&self) -> Vec<Value> {
        let c = self.connectors.lock();
        c.iter().map(|(id, e)| self.connector_json(id, e)).collect()
    }

    /// `GET /connectors/{id}`.
    pub fn get_connector(&self, id: &str) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "connector")?;
        let key = format!("{ty}:{name}");
        let c = self.connectors.lock();
        c.get(&key)
            .map(|e| self.connector_json(&key, e))
            .ok_or_else(|| RulesError::NotFound(format!("Connector {key} not found")))
    }

    /// `POST /connectors`.
    pub fn create_connector(&self, body: &Value) -> Result<Value, RulesError> {
        let ty = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = format!("{ty}:{name}");
        let mut doc = self.connector_doc(&ty, &name, body)?;
        if self.connectors.lock().contains_key(&key) {
            return Err(RulesError::AlreadyExists("connector already exists".into()));
        }
        stamp(&mut doc, None);
        self.persist(KIND_CONNECTORS, &key, Some(&doc))?;
        self.install_connector(&key, doc, Origin::Api)?;
        self.get_connector(&key)
    }

    /// `PUT /connectors/{id}`.
    pub fn update_connector(&self, id: &str, body: &Value) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "connector")?;
        let key = format!("{ty}:{name}");
        let old = self
            .connectors
            .lock()
            .get(&key)
            .map(|e| e.doc.clone())
            .ok_or_else(|| RulesError::NotFound(format!("Connector {key} not found")))?;
        let mut doc = self.connector_doc(&ty, &name, body)?;
        stamp(&mut doc, old.get("created_at").and_then(Value::as_i64));
        self.persist(KIND_CONNECTORS, &key, Some(&doc))?;
        self.install_connector(&key, doc, Origin::Api)?;
        self.get_connector(&key)
    }

    /// `DELETE /connectors/{id}`: refused while actions use it.
    pub fn delete_connector(&self, id: &str) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "connector")?;
        let key = format!("{ty}:{name}");
        if !self.connectors.lock().contains_key(&key) {
            return Err(RulesError::NotFound(format!("Connector {key} not found")));
        }
        if self
            .actions
            .read()
            .values()
            .any(|a| connector_key(&a.doc) == key)
        {
            return Err(RulesError::BadRequest(
                "Cannot delete connector while there are active channels defined for this connector".into(),
            ));
        }
        self.persist(KIND_CONNECTORS, &key, None)?;
        if let Some(e) = self.connectors.lock().remove(&key) {
            e.cancel.cancel();
        }
        Ok(())
    }

    /// `PUT /connectors/{id}/enable/{bool}`.
    pub fn enable_connector(&self, id: &str, enable: bool) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "connector")?;
        let key = format!("{ty}:{name}");
        let mut doc = self
            .connectors
            .lock()
            .get(&key)
            .map(|e| e.doc.clone())
            .ok_or_else(|| RulesError::NotFound(format!("Connector {key} not found")))?;
        doc.insert("enable".into(), json!(enable));
        let created = doc.get("created_at").and_then(Value::as_i64);
        stamp(&mut doc, created);
        self.persist(KIND_CONNECTORS, &key, Some(&doc))?;
        self.install_connector(&key, doc, Origin::Api)
    }

    /// `POST /connectors_probe`: whether the body's server answers.
    pub async fn probe_connector(&self, body: &Value) -> Result<(), RulesError> {
        let ty = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("probe")
            .to_string();
        let doc = self.connector_doc(&ty, &name, body)?;
        let url = doc.get("url").and_then(Value::as_str).unwrap_or_default();
        let url = reqwest::Url::parse(url).map_err(|e| RulesError::BadRequest(e.to_string()))?;
        let timeout =
            model::duration(&doc["connect_timeout"])?.unwrap_or(std::time::Duration::from_secs(15));
        crate::http::probe(&url, timeout)
            .await
            .map_err(RulesError::BadRequest)
    }

    // ----- actions -----

    fn action_doc(
        &self,
        ty: &str,
        name: &str,
        body: &Value,
    ) -> Result<Map<String, Value>, RulesError> {
        if ty != "http" {
            return Err(RulesError::BadRequest(format!("unknown action type: {ty}")));
        }
        model::check_name(name)?;
        let mut b = body.clone();
        if let Value::Object(m) = &mut b {
            m.remove("type");
            m.remove("name");
        }
        let mut doc = model::http_action(&b)?;
        doc.insert("type".into(), json!(ty));
        doc.insert("name".into(), json!(name));
        Ok(doc)
    }

    fn install_action(
        &self,
        id: &str,
        doc: Map<String, Value>,
        origin: Origin,
    ) -> Result<(), RulesError> {
        let ckey = connector_key(&doc);
        let connector = self.connectors.lock().get(&ckey).map(|c| c.running.clone());
        let Some(connector) = connector else {
            return Err(RulesError::BadRequest(
                json!({"kind": "validation_error", "reason": "connector_not_found_or_wrong_type",
                       "connector": ckey})
                .to_string(),
            ));
        };
        let enable = doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
        let mut actions = self.actions.write();
        let metrics = actions
            .get(id)
            .map(|a| a.metrics.clone())
            .unwrap_or_default();
        let cancel = self.cancel.child_token();
        let running = match (enable, connector) {
            (true, Some(c)) => Some(HttpAction::start(&doc, c, metrics.clone(), cancel.clone())?),
            _ => None,
        };
        if let Some(old) = actions.insert(
            id.to_string(),
            ActionEntry {
                doc,
                running,
                cancel,
                metrics,
                origin,
            },
        ) {
            old.cancel.cancel();
        }
        Ok(())
    }

    fn rules_using(&self, id: &str) -> Vec<String> {
        self.rules
            .lock()
            .iter()
            .filter(|(_, r)| {
                r.doc
                    .get("actions")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(id)))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn action_json(&self, id: &str, e: &ActionEntry) -> Value {
        let mut v = e.doc.clone();
        let (status, reason) = match &e.running {
            Some(a) => {
                let (s, r) = a.status();
                (s.as_str(), r)
            }
            None if !e.doc.get("enable").and_then(Value::as_bool).unwrap_or(true) => (
                Status::Disconnected.as_str(),
                Some("Not installed".to_string()),
            ),
            None => (
                Status::Disconnected.as_str(),
                Some("connector stopped".to_string()),
            ),
        };
        v.insert("status".into(), json!(status));
        if let Some(r) = &reason {
            v.insert("status_reason".into(), json!(r));
        }
        let mut ns = json!({"node": self.node, "status": status});
        if let Some(r) = reason {
            ns["status_reason"] = json!(r);
        }
        v.insert("node_status".into(), json!([ns]));
        v.insert("rules".into(), json!(self.rules_using(id)));
        Value::Object(v)
    }

    /// `GET /actions`.
    pub fn list_actions(&self) -> Vec<Value> {
        let a = self.actions.read();
        a.iter().map(|(id, e)| self.action_json(id, e)).collect()
    }

    /// `GET /actions/{id}`.
    pub fn get_action(&self, id: &str) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let a = self.actions.read();
        a.get(&key)
            .map(|e| self.action_json(&key, e))
            .ok_or_else(|| {
                RulesError::NotFound(format!(
                    "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
                ))
            })
    }

    /// `POST /actions`.
    pub fn create_action(&self, body: &Value) -> Result<Value, RulesError> {
        let ty = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = format!("{ty}:{name}");
        let mut doc = self.action_doc(&ty, &name, body)?;
        if self.actions.read().contains_key(&key) {
            return Err(RulesError::AlreadyExists("bridge already exists".into()));
        }
        if !self.connectors.lock().contains_key(&connector_key(&doc)) {
            return Err(RulesError::BadRequest(
                json!({"kind": "validation_error", "reason": "connector_not_found_or_wrong_type"})
                    .to_string(),
            ));
        }
        stamp(&mut doc, None);
        self.persist(KIND_ACTIONS, &key, Some(&doc))?;
        self.install_action(&key, doc, Origin::Api)?;
        self.get_action(&key)
    }

    /// `PUT /actions/{id}`.
    pub fn update_action(&self, id: &str, body: &Value) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let old = self.actions.read().get(&key).map(|e| e.doc.clone());
        let old = old.ok_or_else(|| {
            RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            ))
        })?;
        let mut doc = self.action_doc(&ty, &name, body)?;
        if !self.connectors.lock().contains_key(&connector_key(&doc)) {
            return Err(RulesError::BadRequest(
                json!({"kind": "validation_error", "reason": "connector_not_found_or_wrong_type"})
                    .to_string(),
            ));
        }
        stamp(&mut doc, old.get("created_at").and_then(Value::as_i64));
        self.persist(KIND_ACTIONS, &key, Some(&doc))?;
        self.install_action(&key, doc, Origin::Api)?;
        self.get_action(&key)
    }

    /// `DELETE /actions/{id}`; with `also_delete_dep_actions` the references are removed from
    /// the rules first.
    pub fn delete_action(&self, id: &str, also_delete_dep_actions: bool) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        if !self.actions.read().contains_key(&key) {
            return Err(RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            )));
        }
        let users = self.rules_using(&key);
        if !users.is_empty() {
            if !also_delete_dep_actions {
                return Err(RulesError::InUse(users));
            }
            for r in users {
                let doc = self.rules.lock().get(&r).map(|e| e.doc.clone());
                if let Some(doc) = doc {
                    let kept: Vec<Value> = doc
                        .get("actions")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter(|x| x.as_str() != Some(key.as_str()))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    self.update_rule(&r, &json!({"actions": kept}))?;
                }
            }
        }
        self.persist(KIND_ACTIONS, &key, None)?;
        if let Some(e) = self.actions.write().remove(&key) {
            e.cancel.cancel();
        }
        Ok(())
    }

    /// `PUT /actions/{id}/enable/{bool}`.
    pub fn enable_action(&self, id: &str, enable: bool) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let doc = self.actions.read().get(&key).map(|e| e.doc.clone());
        let mut doc = doc.ok_or_else(|| {
            RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            ))
        })?;
        doc.insert("enable".into(), json!(enable));
        let created = doc.get("created_at").and_then(Value::as_i64);
        stamp(&mut doc, created);
        self.persist(KIND_ACTIONS, &key, Some(&doc))?;
        self.install_action(&key, doc, Origin::Api)
    }

    /// `GET /actions/{id}/metrics`.
    pub fn action_metrics(&self, id: &str) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let a = self.actions.read();
        let e = a.get(&key).ok_or_else(|| {
            RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            ))
        })?;
        let (q, qb, inf) = e.running.as_ref().map(|r| r.gauges()).unwrap_or_default();
        let m = e.metrics.json(q, qb, inf);
        Ok(json!({"metrics": m, "node_metrics": [{"node": self.node, "metrics": m}]}))
    }

    /// `PUT /actions/{id}/metrics/reset`.
    pub fn reset_action_metrics(&self, id: &str) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let a = self.actions.read();
        let e = a.get(&key).ok_or_else(|| {
            RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            ))
        })?;
        e.metrics.reset();
        Ok(())
    }

    /// `POST /actions_probe`: the action's body is valid and its connector's server answers.
    pub async fn probe_action(&self, body: &Value) -> Result<(), RulesError> {
        let ty = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("probe")
            .to_string();
        let doc = self.action_doc(&ty, &name, body)?;
        let ckey = connector_key(&doc);
        let url = self
            .connectors
            .lock()
            .get(&ckey)
            .and_then(|c| c.doc.get("url").cloned());
        let url = url.ok_or_else(|| {
            RulesError::BadRequest(
                json!({"kind": "validation_error", "reason": "connector_not_found_or_wrong_type"})
                    .to_string(),
            )
        })?;
        let url = reqwest::Url::parse(url.as_str().unwrap_or_default())
            .map_err(|e| RulesError::BadRequest(e.to_string()))?;
        crate::http::probe(&url, std::time::Duration::from_secs(5))
            .await
            .map_err(RulesError::BadRequest)
    }

    /// For Prometheus: every action's state and counters.
    pub fn all_action_metrics(&self) -> Vec<ActionStat> {
        self.actions
            .read()
            .iter()
            .map(|(id, e)| {
                let enable = e.doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
                let connected = e
                    .running
                    .as_ref()
                    .is_some_and(|r| r.status().0 == Status::Connected);
                let (queuing, _, inflight) =
                    e.running.as_ref().map(|r| r.gauges()).unwrap_or_default();
                ActionStat {
                    id: id.clone(),
                    enable,
                    connected,
                    counters: e.metrics.values(),
                    queuing,
                    inflight,
                }
            })
            .collect()
    }

    /// For Prometheus: every connector's (id, enabled, connected).
    pub fn all_connector_status(&self) -> Vec<(String, bool, bool)> {
        self.connectors
            .lock()
            .iter()
            .map(|(id, e)| {
                let enable = e.doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
                let connected = e
                    .running
                    .as_ref()
                    .is_some_and(|c| c.status().0 == Status::Connected);
                (id.clone(), enable, connected)
            })
            .collect()
    }

    /// Rule→action references (EMQX's `emqx_actions_count`).
    pub fn action_references(&self) -> usize {
        self.rules
            .lock()
            .values()
            .map(|r| {
                r.doc
                    .get("actions")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            })
            .sum()
    }

    fn origin_of(&self, kind: &str, key: &str) -> Option<Origin> {
        match kind {
            KIND_RULES => self.rules.lock().get(key).map(|e| e.origin),
            KIND_CONNECTORS => self.connectors.lock().get(key).map(|e| e.origin),
            _ => self.actions.read().get(key).map(|e| e.origin),
        }
    }

    fn current_doc(&self, kind: &str, key: &str) -> Option<Map<String, Value>> {
        match kind {
            KIND_RULES => self.rules.lock().get(key).map(|e| e.doc.clone()),
            KIND_CONNECTORS => self.connectors.lock().get(key).map(|e| e.doc.clone()),
            _ => self.actions.read().get(key).map(|e| e.doc.clone()),
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
                    qos: args.get("qos").cloned().unwrap_or(json!("${qos}")),
                    retain: args.get("retain").cloned().unwrap_or(json!("${retain}")),
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
