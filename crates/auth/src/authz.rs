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
//! Decisions are cached per client ([`ClientAcl`]) for `cache.ttl`, at most `cache.max_size`
//! entries, and dropped when the rules change.

use crate::topic::{covers, unshare};
use ipnet::IpNet;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::QoS;

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

/// The rules and the policy around them.
#[derive(Debug)]
pub struct Authorizer {
    rules: RwLock<Arc<Vec<Rule>>>,
    settings: AuthzSettings,
    /// Bumped when the rules change, so cached decisions are dropped.
    generation: AtomicU64,
}

impl Authorizer {
    /// An authorizer with these rules.
    pub fn new(rules: Vec<Rule>, settings: AuthzSettings) -> Self {
        Authorizer {
            rules: RwLock::new(Arc::new(rules)),
            settings,
            generation: AtomicU64::new(0),
        }
    }

    /// Loads `path`; a missing file means no rules (every check gets `no_match`).
    pub fn load(path: Option<&Path>, settings: AuthzSettings) -> Result<Self, AclError> {
        let Some(path) = path else {
            return Ok(Authorizer::new(Vec::new(), settings));
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Authorizer::new(parse_rules(&text, path)?, settings)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(file = %path.display(), "ACL file not found: no rules");
                Ok(Authorizer::new(Vec::new(), settings))
            }
            Err(source) => Err(AclError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthzSettings {
        &self.settings
    }

    /// What a gateway does on a denied operation.
    pub fn deny_action(&self) -> DenyAction {
        self.settings.deny_action
    }

    /// How many rules are loaded.
    pub fn rule_count(&self) -> usize {
        self.rules.read().len()
    }

    /// Replaces the rules (e.g. from the REST API); cached decisions are dropped.
    pub fn set_rules(&self, rules: Vec<Rule>) {
        *self.rules.write() = Arc::new(rules);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Empties every client's decision cache (`DELETE /api/v5/authorization/cache`): each
    /// client's next check asks the rules again.
    pub fn clear_cache(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Decides one operation, uncached.
    pub fn check(&self, ctx: &ClientCtx, action: &Action<'_>) -> Decision {
        if ctx.superuser {
            return Decision::Allow;
        }
        let rules = self.rules.read().clone();
        let first = rules.iter().find_map(|r| r.decide(ctx, action));
        match first {
            Some(Permission::Allow) => Decision::Allow,
            Some(Permission::Deny) => Decision::Deny,
            None => self.settings.no_match,
        }
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
        ClientAcl {
            generation: self.generation.load(Ordering::Acquire),
            authz: self.clone(),
            ctx,
            own,
            cache: HashMap::new(),
            last: None,
        }
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

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    subscribe: bool,
    topic: String,
    qos: u8,
    retain: bool,
}

/// One client's view of the ACL, with its decision cache.
#[derive(Debug)]
pub struct ClientAcl {
    authz: Arc<Authorizer>,
    ctx: ClientCtx,
    /// The client's own rules from its authentication, checked first.
    own: Option<Arc<crate::acl_list::ClientRules>>,
    cache: HashMap<CacheKey, (Decision, Instant)>,
    /// The last decision, compared without building a key: a sensor asks about the same topic
    /// for every message, and the map lookup would allocate the key each time.
    last: Option<(CacheKey, Decision, Instant)>,
    generation: u64,
}

impl CacheKey {
    fn is(&self, action: &Action<'_>) -> bool {
        match *action {
            Action::Publish { topic, qos, retain } => {
                !self.subscribe
                    && self.qos == qos.as_u8()
                    && self.retain == retain
                    && self.topic == topic
            }
            Action::Subscribe { filter, qos } => {
                self.subscribe && self.qos == qos.as_u8() && !self.retain && self.topic == filter
            }
        }
    }
}

impl ClientAcl {
    /// Who this is.
    pub fn ctx(&self) -> &ClientCtx {
        &self.ctx
    }

    /// What to do on a denied operation.
    pub fn deny_action(&self) -> DenyAction {
        self.authz.deny_action()
    }

    /// Decides one operation, from the cache when a fresh decision is there.
    pub fn check(&mut self, action: &Action<'_>, now: Instant) -> Decision {
        if self.ctx.superuser {
            return Decision::Allow;
        }
        if let Some(own) = &self.own {
            match own.decide(&self.ctx, action, std::time::SystemTime::now()) {
                crate::acl_list::Own::Decided(Permission::Allow) => return Decision::Allow,
                crate::acl_list::Own::Decided(Permission::Deny) => return Decision::Deny,
                crate::acl_list::Own::NoMatch => {}
            }
        }
        let c = &self.authz.settings.cache;
        if !c.enable || c.max_size == 0 || self.ctx.superuser {
            return self.authz.check(&self.ctx, action);
        }
        let generation = self.authz.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.cache.clear();
            self.last = None;
            self.generation = generation;
        }
        if let Some((k, d, at)) = &self.last {
            if k.is(action) && now.saturating_duration_since(*at) < c.ttl {
                return *d;
            }
        }
        let key = match *action {
            Action::Publish { topic, qos, retain } => CacheKey {
                subscribe: false,
                topic: topic.to_owned(),
                qos: qos.as_u8(),
                retain,
            },
            Action::Subscribe { filter, qos } => CacheKey {
                subscribe: true,
                topic: filter.to_owned(),
                qos: qos.as_u8(),
                retain: false,
            },
        };
        if let Some(&(d, at)) = self.cache.get(&key) {
            if now.saturating_duration_since(at) < c.ttl {
                self.last = Some((key, d, at));
                return d;
            }
        }
        let d = self.authz.check(&self.ctx, action);
        if self.cache.len() >= c.max_size && !self.cache.contains_key(&key) {
            self.cache
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < c.ttl);
            if self.cache.len() >= c.max_size {
                let oldest = self.cache.iter().min_by_key(|(_, (_, at))| *at);
                if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                    self.cache.remove(&k);
                }
            }
        }
        self.cache.insert(key.clone(), (d, now));
        self.last = Some((key, d, now));
        d
    }

    /// Cached decisions held (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Whether the client's will may be published now: checked as a publish of its topic, QoS
    /// and retain flag when it is published, since a will allowed at connect may be denied by
    /// then. A denied will is logged and counted in `denials` (the node's `authorization.deny`
    /// metric); the gateway drops it.
    pub fn will_allowed(
        &mut self,
        will: &switchyard_core::Message,
        now: Instant,
        denials: &AtomicU64,
    ) -> bool {
        let action = Action::Publish {
            topic: will.topic.as_str(),
            qos: will.qos,
            retain: will.retain,
        };
        let allowed = self.check(&action, now) == Decision::Allow;
        if !allowed {
            tracing::info!(topic = %will.topic, "will denied by the ACL; dropped");
            denials.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }

    /// A gateway's check of a PUBLISH or SUBSCRIBE: the decision, logged and counted in
    /// `denials` when it is a denial, and whether the client must then be disconnected
    /// (`deny_action = "disconnect"`). The gateway maps both onto its wire.
    pub fn authorize(
        &mut self,
        action: &Action<'_>,
        now: Instant,
        denials: &AtomicU64,
    ) -> (Decision, bool) {
        let decision = self.check(action, now);
        if decision == Decision::Deny {
            tracing::info!(action = ?action, "denied by the ACL");
            denials.fetch_add(1, Ordering::Relaxed);
            return (decision, self.deny_action() == DenyAction::Disconnect);
        }
        (decision, false)
    }
}

/// [`ClientAcl::authorize`] for a client that may not have authenticated (no ACL view: denied,
/// never disconnected for it).
pub fn authorize(
    acl: Option<&mut ClientAcl>,
    action: &Action<'_>,
    now: Instant,
    denials: &AtomicU64,
) -> (Decision, bool) {
    acl.map_or((Decision::Deny, false), |acl| {
        acl.authorize(action, now, denials)
    })
}

/// [`ClientAcl::will_allowed`] for a client that may not have authenticated (its will is
/// dropped).
pub fn will_allowed(
    acl: Option<&mut ClientAcl>,
    will: &switchyard_core::Message,
    now: Instant,
    denials: &AtomicU64,
) -> bool {
    acl.is_some_and(|acl| acl.will_allowed(will, now, denials))
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
