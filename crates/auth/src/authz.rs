//! Authorization (`[authorization]`): first-match ACL rules from a TOML file of `[[rule]]`
//! tables, `no_match` when none matches, superusers bypass.
//!
//! A rule: `permission` (allow | deny), `action` (publish | subscribe | all), `topics`
//! (filters with `${username}` / `${clientid}` placeholders; `eq <filter>` compares literally),
//! at most one of `username`, `clientid` or `ipaddr` (CIDR; none = everyone), and optionally
//! `qos` (a list) and `retain`. A publish matches a topic when the rule filter matches the topic
//! name; a subscribe when the rule filter covers the whole subscribed filter (`a/#` covers
//! `a/+/b`; `eq #` only the literal `#`). A placeholder whose value is missing or holds a
//! wildcard never matches, so a client cannot widen a rule through its own id.
//!
//! The rules are the `file` source; [`Authorizer`] asks its sources in order (`file`, `http`:
//! `authz_sources`) after the client's own `acl`, and `no_match` decides when none does.
//! Decisions are cached per client ([`ClientAcl`]) for `cache.ttl`, at most `cache.max_size`
//! entries, and dropped when the sources, the settings or the rules change. Checks are
//! synchronous; when an HTTP source is enabled a gateway first awaits an [`AuthzQuery`] on the
//! client's own task (never on a task that serves other clients) and hands its answers to the
//! client's [`ClientAcl`], so the fast path (file only, or a cache hit) never waits.

use crate::authz_sources::{
    kind_of, parse_settings, settle, Answer, Body, Source, SourceError, SourceMetrics, AUTHZ_KIND,
    SETTINGS_KEY, SOURCES_KEY,
};
pub use crate::client_acl::{authorize, will_allowed, ClientAcl};
use crate::topic::{covers, unshare};
use ipnet::IpNet;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::QoS;
use switchyard_state::SharedState;

/// Errors of loading the rules file.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file exists but cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An authorization source is invalid.
    #[error("authorization sources: {0}")]
    Source(String),
    /// A rule is invalid.
    #[error("{path}: rule {index}: {message}")]
    Rule {
        /// The file.
        path: PathBuf,
        /// 1-based position of the rule.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// A rule's `permission`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Permit.
    Allow,
    /// Refuse.
    Deny,
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Permitted.
    Allow,
    /// Refused.
    Deny,
}

/// `authorization.deny_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenyAction {
    /// Refuse the operation and keep the client.
    #[default]
    Ignore,
    /// Disconnect the client.
    Disconnect,
}

/// `[authorization.cache]`.
#[derive(Debug, Clone)]
pub struct AclCacheSettings {
    /// Cache decisions at all.
    pub enable: bool,
    /// Most cached decisions per client.
    pub max_size: usize,
    /// How long a cached decision holds.
    pub ttl: Duration,
}

impl Default for AclCacheSettings {
    fn default() -> Self {
        AclCacheSettings {
            enable: true,
            max_size: 32,
            ttl: Duration::from_secs(60),
        }
    }
}

/// What the binary configures.
#[derive(Debug, Clone)]
pub struct AuthzSettings {
    /// Decision when no rule matches.
    pub no_match: Decision,
    /// What a gateway does on a denied operation.
    pub deny_action: DenyAction,
    /// The per-client decision cache.
    pub cache: AclCacheSettings,
}

impl Default for AuthzSettings {
    fn default() -> Self {
        AuthzSettings {
            no_match: Decision::Allow,
            deny_action: DenyAction::Ignore,
            cache: AclCacheSettings::default(),
        }
    }
}

/// An operation to authorize.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Publish to a topic name.
    Publish {
        /// The topic name (after any mountpoint).
        topic: &'a str,
        /// Requested QoS.
        qos: QoS,
        /// Retain flag.
        retain: bool,
    },
    /// Subscribe to a filter (a shared subscription is checked by its inner filter).
    Subscribe {
        /// The filter (after any mountpoint).
        filter: &'a str,
        /// Requested QoS.
        qos: QoS,
    },
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCtx {
    /// Client id.
    pub client_id: String,
    /// Username, if any.
    pub username: Option<String>,
    /// Address.
    pub peer_ip: Option<IpAddr>,
    /// Superusers bypass every rule.
    pub superuser: bool,
}

/// A rule's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ActionKind {
    #[serde(alias = "pub")]
    Publish,
    #[serde(alias = "sub")]
    Subscribe,
    All,
}

/// One `[[rule]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    permission: Permission,
    action: ActionKind,
    topics: Vec<String>,
    username: Option<String>,
    clientid: Option<String>,
    ipaddr: Option<String>,
    qos: Option<Vec<u8>>,
    retain: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Clone, PartialEq)]
enum Who {
    All,
    Username(String),
    Clientid(String),
    Ipaddr(IpNet),
}

#[derive(Debug, Clone, PartialEq)]
enum RuleTopic {
    /// `eq <filter>`: literal comparison.
    Eq(String),
    /// A filter, maybe with placeholders.
    Filter(String),
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    permission: Permission,
    action: ActionKind,
    topics: Vec<RuleTopic>,
    who: Who,
    qos: Option<Vec<QoS>>,
    retain: Option<bool>,
}

impl Rule {
    /// A rule for everyone (an `acl` list from an authenticator or a source's reply).
    pub(crate) fn for_client(
        permission: Permission,
        action: ActionKind,
        topics: Vec<String>,
        qos: Option<Vec<u8>>,
        retain: Option<bool>,
    ) -> Result<Rule, String> {
        Rule::from_spec(RuleSpec {
            permission,
            action,
            topics,
            username: None,
            clientid: None,
            ipaddr: None,
            qos,
            retain,
        })
    }

    fn from_spec(s: RuleSpec) -> Result<Rule, String> {
        let who = match (s.username, s.clientid, s.ipaddr) {
            (None, None, None) => Who::All,
            (Some(u), None, None) => Who::Username(u),
            (None, Some(c), None) => Who::Clientid(c),
            (None, None, Some(ip)) => Who::Ipaddr(parse_cidr(&ip)?),
            _ => return Err("at most one of username, clientid, ipaddr".into()),
        };
        if s.topics.is_empty() {
            return Err("topics must not be empty".into());
        }
        let topics = s
            .topics
            .into_iter()
            .map(|t| match t.strip_prefix("eq ") {
                Some(lit) if !lit.is_empty() => Ok(RuleTopic::Eq(lit.to_owned())),
                _ if t.is_empty() => Err("a topic must not be empty".to_owned()),
                Some(_) => Err("\"eq \" needs a filter after it".to_owned()),
                None => Ok(RuleTopic::Filter(t)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let qos = s
            .qos
            .map(|l| {
                l.into_iter()
                    .map(|q| QoS::try_from(q).map_err(|_| format!("qos {q} is not 0, 1 or 2")))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Rule {
            permission: s.permission,
            action: s.action,
            topics,
            who,
            qos,
            retain: s.retain,
        })
    }

    /// `Some(permission)` when this rule matches.
    pub(crate) fn decide(&self, ctx: &ClientCtx, action: &Action<'_>) -> Option<Permission> {
        let who = match &self.who {
            Who::All => true,
            Who::Username(u) => ctx.username.as_deref() == Some(u.as_str()),
            Who::Clientid(c) => ctx.client_id == *c,
            Who::Ipaddr(net) => ctx.peer_ip.is_some_and(|ip| net.contains(&ip)),
        };
        if !who {
            return None;
        }
        let (target, qos) = match *action {
            Action::Publish { topic, qos, retain } => {
                if self.action == ActionKind::Subscribe || self.retain.is_some_and(|r| r != retain)
                {
                    return None;
                }
                (undelay(topic), qos)
            }
            Action::Subscribe { filter, qos } => {
                if self.action == ActionKind::Publish || self.retain.is_some() {
                    return None;
                }
                (unshare(filter), qos)
            }
        };
        if self.qos.as_ref().is_some_and(|l| !l.contains(&qos)) {
            return None;
        }
        let hit = self.topics.iter().any(|t| match t {
            RuleTopic::Eq(lit) => render(lit, ctx).is_some_and(|lit| lit == target),
            RuleTopic::Filter(f) => render(f, ctx).is_some_and(|f| covers(&f, target)),
        });
        hit.then_some(self.permission)
    }
}

fn parse_cidr(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("ipaddr {s:?} is not an address or CIDR"))
}

/// The topic a publish is authorized for: a delayed publish (`$delayed/{seconds}/{topic}`) is
/// checked against its target topic, as EMQX does.
fn undelay(topic: &str) -> &str {
    topic
        .strip_prefix("$delayed/")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(secs, t)| !t.is_empty() && secs.parse::<u64>().is_ok())
        .map_or(topic, |(_, t)| t)
}

/// Renders a rule's filter for this client with the shared topic template
/// ([`switchyard_core::render_topic`]); `None` (the rule does not match) when a placeholder has
/// no value or its value would inject levels or wildcards.
fn render(template: &str, ctx: &ClientCtx) -> Option<String> {
    let vars = switchyard_core::TemplateVars {
        clientid: Some(ctx.client_id.as_str()),
        username: ctx.username.as_deref(),
        endpoint_name: None,
    };
    switchyard_core::render_topic(template, &vars).ok()
}

/// The sources and the policy around them (see `authz_sources` for the sources themselves).
///
/// The effective list is the API's (kind [`crate::AUTHZ_KIND`] in the API-state store) when it
/// holds one, else `[[authorization.sources]]`, else the `file` source alone; the same for the
/// settings. Changes are written to the store before they take effect.
#[derive(Debug)]
pub struct Authorizer {
    pub(crate) sources: RwLock<Arc<Vec<Arc<Source>>>>,
    pub(crate) settings: RwLock<AuthzSettings>,
    /// Whether an enabled source needs a network (HTTP). While false every check is
    /// synchronous and gateways never build a query: the fast path of the file source alone.
    pub(crate) network: AtomicBool,
    /// Bumped when sources or settings change or the cache is cleaned, so cached decisions
    /// are dropped.
    pub(crate) generation: AtomicU64,
    /// `[[authorization.sources]]` as JSON (empty: the file source alone).
    pub(crate) file_sources: Vec<Value>,
    /// `authorization.file`: a file source without `path` or `rules` reads it.
    pub(crate) file_path: Option<PathBuf>,
    /// The settings of the config file, used while the store has none.
    pub(crate) file_settings: AuthzSettings,
    pub(crate) state: Option<SharedState>,
    /// Counters by source type, kept across changes of the list.
    pub(crate) metrics: Mutex<HashMap<String, Arc<SourceMetrics>>>,
    /// Held across "write the store, then install".
    pub(crate) write: Mutex<()>,
}

fn file_source_json() -> Value {
    serde_json::json!({"type": "file", "enable": true})
}

fn source_error(e: SourceError) -> AclError {
    AclError::Source(e.to_string())
}

impl Authorizer {
    /// An authorizer with these rules as its one `file` source, nothing stored.
    pub fn new(rules: Vec<Rule>, settings: AuthzSettings) -> Self {
        let a = Authorizer::empty(Vec::new(), None, settings, None);
        let metrics = a.metrics_of("file");
        let source = Source {
            kind: "file".into(),
            enable: true,
            json: file_source_json(),
            text: String::new(),
            path: None,
            body: Body::File(RwLock::new(Arc::new(rules))),
            metrics,
        };
        a.install(vec![Arc::new(source)]);
        a
    }

    fn empty(
        file_sources: Vec<Value>,
        file_path: Option<PathBuf>,
        settings: AuthzSettings,
        state: Option<SharedState>,
    ) -> Self {
        Authorizer {
            sources: RwLock::new(Arc::new(Vec::new())),
            settings: RwLock::new(settings.clone()),
            network: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            file_sources,
            file_path,
            file_settings: settings,
            state,
            metrics: Mutex::new(HashMap::new()),
            write: Mutex::new(()),
        }
    }

    /// Loads `path` as the one `file` source; a missing file means no rules (every check gets
    /// `no_match`).
    pub fn load(path: Option<&Path>, settings: AuthzSettings) -> Result<Self, AclError> {
        Authorizer::open(path, Vec::new(), settings, None)
    }

    /// The sources of `sources` (`[[authorization.sources]]` as JSON; empty: the file source
    /// of `path` alone) and `settings`, unless `state` holds ones made through the API. The
    /// config's sources are checked even when the store overrides them, so a broken file is an
    /// error at start. HTTP sources need a tokio runtime.
    pub fn open(
        path: Option<&Path>,
        sources: Vec<Value>,
        settings: AuthzSettings,
        state: Option<SharedState>,
    ) -> Result<Self, AclError> {
        let a = Authorizer::empty(sources, path.map(Path::to_path_buf), settings, state);
        let file = a.file_specs();
        let built_file = a.build(&file).map_err(source_error)?;
        let built = match a.stored_specs() {
            Ok(Some(specs)) => match a.build(&specs) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "authorization sources in the state store are invalid; using the config's");
                    built_file
                }
            },
            Ok(None) => built_file,
            Err(e) => return Err(source_error(e)),
        };
        if let Some(s) = a.stored_settings().map_err(source_error)? {
            *a.settings.write() = s;
        }
        a.install(built);
        Ok(a)
    }

    fn metrics_of(&self, kind: &str) -> Arc<SourceMetrics> {
        self.metrics
            .lock()
            .entry(kind.to_owned())
            .or_default()
            .clone()
    }

    pub(crate) fn file_specs(&self) -> Vec<Value> {
        if self.file_sources.is_empty() {
            vec![file_source_json()]
        } else {
            self.file_sources.clone()
        }
    }

    pub(crate) fn stored_specs(&self) -> Result<Option<Vec<Value>>, SourceError> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        let Some(doc) = state.get(AUTHZ_KIND, SOURCES_KEY)? else {
            return Ok(None);
        };
        let list = doc
            .get("sources")
            .and_then(Value::as_array)
            .ok_or_else(|| SourceError::Invalid("stored sources document has no list".into()))?;
        Ok(Some(list.clone()))
    }

    pub(crate) fn stored_settings(&self) -> Result<Option<AuthzSettings>, SourceError> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        match state.get(AUTHZ_KIND, SETTINGS_KEY)? {
            Some(doc) => Ok(Some(parse_settings(&doc)?)),
            None => Ok(None),
        }
    }

    /// Sources for `specs`, reusing unchanged ones (an HTTP source keeps its connections).
    pub(crate) fn build(&self, specs: &[Value]) -> Result<Vec<Arc<Source>>, SourceError> {
        let old = self.sources.read().clone();
        let mut out: Vec<Arc<Source>> = Vec::with_capacity(specs.len());
        for (i, v) in specs.iter().enumerate() {
            let kind = kind_of(v)
                .ok_or_else(|| SourceError::Invalid(format!("sources[{i}]: no \"type\"")))?;
            if out.iter().any(|s| s.kind == kind) {
                return Err(SourceError::Duplicated(kind.to_owned()));
            }
            // A file source that reads a path is re-read, so a changed file applies.
            let reads_file = kind == "file" && v.get("rules").is_none();
            if let Some(s) = old.iter().find(|s| s.json == *v && !reads_file) {
                out.push(s.clone());
                continue;
            }
            let s = Source::build(v, self.file_path.as_deref(), self.metrics_of(kind))
                .map_err(|e| SourceError::Invalid(format!("{kind} source: {e}")))?;
            out.push(Arc::new(s));
        }
        Ok(out)
    }

    pub(crate) fn install(&self, sources: Vec<Arc<Source>>) {
        let network = sources.iter().any(|s| s.enable && s.is_network());
        let kinds: Vec<&str> = sources.iter().map(|s| s.kind.as_str()).collect();
        tracing::info!(sources = ?kinds, network, "authorization sources in force");
        *self.sources.write() = Arc::new(sources);
        self.network.store(network, Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The settings in force.
    pub fn settings(&self) -> AuthzSettings {
        self.settings.read().clone()
    }

    /// What a gateway does on a denied operation.
    pub fn deny_action(&self) -> DenyAction {
        self.settings.read().deny_action
    }

    /// Whether an enabled source needs a network, so a gateway must build an
    /// [`crate::AuthzQuery`] and await it before a check can be complete.
    pub fn has_network(&self) -> bool {
        self.network.load(Ordering::Acquire)
    }

    /// How many rules the file source holds.
    pub fn rule_count(&self) -> usize {
        self.sources
            .read()
            .iter()
            .map(|s| match &s.body {
                Body::File(r) => r.read().len(),
                Body::Http(_) => 0,
            })
            .sum()
    }

    /// Replaces the file source's rules; cached decisions are dropped.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        let sources = self.sources.read().clone();
        if let Some(Body::File(r)) = sources
            .iter()
            .map(|s| &s.body)
            .find(|b| matches!(b, Body::File(_)))
        {
            *r.write() = Arc::new(rules);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Empties every client's decision cache (`DELETE /api/v5/authorization/cache`): each
    /// client's next check asks the sources again.
    pub fn clear_cache(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn enabled(&self) -> Vec<Arc<Source>> {
        self.sources
            .read()
            .iter()
            .filter(|s| s.enable)
            .cloned()
            .collect()
    }

    /// Decides one operation, uncached, without waiting for a network: an HTTP source counts
    /// as ignore here (gateways await [`crate::AuthzQuery::run`] first, whose answer the client's
    /// [`ClientAcl`] then holds).
    pub fn check(&self, ctx: &ClientCtx, action: &Action<'_>) -> Decision {
        if ctx.superuser {
            return Decision::Allow;
        }
        let sources = self.sources.read().clone();
        for s in sources.iter().filter(|s| s.enable) {
            let a = match s.answer_now(ctx, action) {
                Some(a) => a,
                None => {
                    tracing::debug!(source = %s.kind, client_id = %ctx.client_id,
                        "network source not asked on a synchronous path; ignored");
                    s.counted(Answer::Ignore)
                }
            };
            if let Some(d) = settle(a) {
                return d;
            }
        }
        self.settings.read().no_match
    }

    /// Decides one operation, uncached, asking every source (an HTTP request is awaited,
    /// bounded by its `request_timeout`). Run on the client's own task.
    /// `attrs` are the client's attributes from its authenticator (`${client_attrs.NAME}`).
    pub async fn decide(
        &self,
        ctx: &ClientCtx,
        action: &Action<'_>,
        attrs: Option<&crate::backend::ClientAttrs>,
    ) -> Decision {
        if ctx.superuser {
            return Decision::Allow;
        }
        for s in self.enabled() {
            if let Some(d) = settle(s.answer(ctx, action, attrs).await) {
                return d;
            }
        }
        self.settings.read().no_match
    }

    /// A per-client checker with its own decision cache.
    pub fn client(self: &Arc<Self>, ctx: ClientCtx) -> ClientAcl {
        self.client_with(ctx, None)
    }

    /// A per-client checker that first consults `own`, the rules the client's authentication
    /// brought (an HTTP reply's or a JWT's `acl`), as EMQX does.
    pub fn client_with(
        self: &Arc<Self>,
        ctx: ClientCtx,
        own: Option<Arc<crate::acl_list::ClientRules>>,
    ) -> ClientAcl {
        ClientAcl::new(self.clone(), ctx, own)
    }
}

/// Parses a rules file's text; `path` is for messages.
pub fn parse_rules(text: &str, path: &Path) -> Result<Vec<Rule>, AclError> {
    let file: RulesFile = toml::from_str(text).map_err(|e| AclError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    file.rule
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            Rule::from_spec(spec).map_err(|message| AclError::Rule {
                path: path.to_owned(),
                index: i + 1,
                message,
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
