//! One client's view of the authorization: its own `acl` (from its authenticator) first, then
//! its per-client decision cache, then the [`Authorizer`]'s sources; and the answers of an HTTP
//! source fetched ahead by the client's own task ([`AuthzQuery`], [`ClientAcl::accept`]).
//!
//! Owns: the cache (`cache.max_size` entries for `cache.ttl`, dropped when the authorizer's
//! generation moves: sources, settings or rules changed, or the cache was cleaned), what the
//! client's authentication granted it (expiry, attributes), and the gateways' one-call checks
//! ([`authorize`], [`will_allowed`]). Must not know: any protocol.

use crate::authz::{
    AclCacheSettings, Action, Authorizer, ClientCtx, Decision, DenyAction, Permission,
};
use crate::authz_query::{AuthzAnswers, AuthzQuery};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use switchyard_core::QoS;

/// One operation, owned: the cache's key and what an [`AuthzQuery`] asks about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    subscribe: bool,
    topic: String,
    qos: QoS,
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
    /// The cache settings as of `generation` (the API may change them).
    cache_settings: AclCacheSettings,
    /// Decisions an [`AuthzQuery`] reached for operations about to be checked: each is used
    /// once by the check it was asked for (so they count even with the cache off).
    fresh: Vec<(CacheKey, Decision)>,
    /// When the client's credentials stop being valid (a JWT's `exp`, an HTTP authenticator's
    /// `expire_at`); the gateway closes the client then.
    expire_at: Option<std::time::SystemTime>,
    /// The client's attributes from its authenticator, for `${client_attrs.NAME}`.
    attrs: Option<Arc<crate::backend::ClientAttrs>>,
}

impl CacheKey {
    fn of(action: &Action<'_>) -> CacheKey {
        match *action {
            Action::Publish { topic, qos, retain } => CacheKey {
                subscribe: false,
                topic: topic.to_owned(),
                qos,
                retain,
            },
            Action::Subscribe { filter, qos } => CacheKey {
                subscribe: true,
                topic: filter.to_owned(),
                qos,
                retain: false,
            },
        }
    }

    pub(crate) fn action(&self) -> Action<'_> {
        if self.subscribe {
            Action::Subscribe {
                filter: &self.topic,
                qos: self.qos,
            }
        } else {
            Action::Publish {
                topic: &self.topic,
                qos: self.qos,
                retain: self.retain,
            }
        }
    }

    fn is(&self, action: &Action<'_>) -> bool {
        match *action {
            Action::Publish { topic, qos, retain } => {
                !self.subscribe && self.qos == qos && self.retain == retain && self.topic == topic
            }
            Action::Subscribe { filter, qos } => {
                self.subscribe && self.qos == qos && !self.retain && self.topic == filter
            }
        }
    }
}

impl ClientAcl {
    pub(crate) fn new(
        authz: Arc<Authorizer>,
        ctx: ClientCtx,
        own: Option<Arc<crate::acl_list::ClientRules>>,
    ) -> ClientAcl {
        let cache_settings = authz.settings.read().cache.clone();
        ClientAcl {
            generation: authz.generation.load(Ordering::Acquire),
            cache_settings,
            authz,
            ctx,
            own,
            cache: HashMap::new(),
            last: None,
            fresh: Vec::new(),
            expire_at: None,
            attrs: None,
        }
    }

    /// Who this is.
    pub fn ctx(&self) -> &ClientCtx {
        &self.ctx
    }

    /// What to do on a denied operation.
    pub fn deny_action(&self) -> DenyAction {
        self.authz.deny_action()
    }

    /// Sets when the client's credentials expire.
    pub fn with_expiry(mut self, at: Option<std::time::SystemTime>) -> Self {
        self.expire_at = at;
        self
    }

    /// When the client's credentials expire, if they do.
    pub fn expire_at(&self) -> Option<std::time::SystemTime> {
        self.expire_at
    }

    /// Keeps the attributes the client's authenticator gave it (`client_attrs`).
    pub fn with_attrs(mut self, attrs: Option<Arc<crate::backend::ClientAttrs>>) -> Self {
        self.attrs = attrs;
        self
    }

    /// The client's attributes from its authenticator.
    pub fn attrs(&self) -> Option<&crate::backend::ClientAttrs> {
        self.attrs.as_deref()
    }

    /// Whether a check of this client may need a network answer: the one cheap test a gateway
    /// makes before building an [`AuthzQuery`] (false for a superuser, and whenever no HTTP
    /// source is enabled).
    pub fn may_query(&self) -> bool {
        !self.ctx.superuser && self.authz.has_network()
    }

    /// What must be asked of a network source before `actions` can be checked: `None` when the
    /// client's own rules, a fresh cached decision or an answer already fetched decides each
    /// of them (or no source needs a network). The caller awaits [`AuthzQuery::run`] on the
    /// client's own task and hands the answers to [`ClientAcl::accept`] before it checks.
    pub fn query(&self, actions: &[Action<'_>], now: Instant) -> Option<AuthzQuery> {
        if !self.may_query() {
            return None;
        }
        let todo: Vec<CacheKey> = actions
            .iter()
            .filter(|a| !self.settled(a, now))
            .map(CacheKey::of)
            .collect();
        (!todo.is_empty()).then(|| AuthzQuery {
            authz: self.authz.clone(),
            ctx: self.ctx.clone(),
            attrs: self.attrs.clone(),
            actions: todo,
        })
    }

    fn settled(&self, action: &Action<'_>, now: Instant) -> bool {
        if self.own_decides(action).is_some() || self.fresh.iter().any(|(k, _)| k.is(action)) {
            return true;
        }
        let c = &self.cache_settings;
        if !c.enable || self.generation != self.authz.generation.load(Ordering::Acquire) {
            return false;
        }
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < c.ttl;
        if let Some((k, _, at)) = &self.last {
            if k.is(action) && fresh(at) {
                return true;
            }
        }
        self.cache
            .get(&CacheKey::of(action))
            .is_some_and(|(_, at)| fresh(at))
    }

    /// Takes the answers of a query run for this client.
    pub fn accept(&mut self, answers: AuthzAnswers) {
        self.fresh.extend(answers.0);
    }

    fn own_decides(&self, action: &Action<'_>) -> Option<Decision> {
        let own = self.own.as_ref()?;
        match own.decide(&self.ctx, action, std::time::SystemTime::now()) {
            crate::acl_list::Own::Decided(Permission::Allow) => Some(Decision::Allow),
            crate::acl_list::Own::Decided(Permission::Deny) => Some(Decision::Deny),
            crate::acl_list::Own::NoMatch => None,
        }
    }

    /// Decides one operation, from the cache when a fresh decision is there. An HTTP source
    /// answers only through an answer [`ClientAcl::accept`] took (else it is ignore here).
    pub fn check(&mut self, action: &Action<'_>, now: Instant) -> Decision {
        if self.ctx.superuser {
            return Decision::Allow;
        }
        if let Some(d) = self.own_decides(action) {
            return d;
        }
        let generation = self.authz.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.cache.clear();
            self.last = None;
            self.generation = generation;
            self.cache_settings = self.authz.settings.read().cache.clone();
        }
        let c = self.cache_settings.clone();
        let caching = c.enable && c.max_size > 0;
        if !self.fresh.is_empty() {
            if let Some(i) = self.fresh.iter().position(|(k, _)| k.is(action)) {
                let (key, d) = self.fresh.swap_remove(i);
                if caching {
                    self.remember(key, d, now, &c);
                }
                return d;
            }
        }
        if !caching {
            return self.authz.check(&self.ctx, action);
        }
        if let Some((k, d, at)) = &self.last {
            if k.is(action) && now.saturating_duration_since(*at) < c.ttl {
                return *d;
            }
        }
        let key = CacheKey::of(action);
        if let Some(&(d, at)) = self.cache.get(&key) {
            if now.saturating_duration_since(at) < c.ttl {
                self.last = Some((key, d, at));
                return d;
            }
        }
        let d = self.authz.check(&self.ctx, action);
        self.remember(key, d, now, &c);
        d
    }

    fn remember(&mut self, key: CacheKey, d: Decision, now: Instant, c: &AclCacheSettings) {
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
