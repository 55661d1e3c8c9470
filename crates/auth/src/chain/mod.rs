//! The chain of authenticators (`[[authentication.authenticators]]`, `/api/v5/authentication`):
//! tried in order, each answering ok, error or ignore (shared/specs/emqx-auth-api.md §1.1).
//!
//! Owns: the effective chain (the file's, or the one the REST API stored in the API-state
//! store under kind [`AUTHENTICATORS_KIND`], which takes precedence), the per-authenticator
//! metrics, the result cache of the network back-ends, and the two entry points: [`Chain::
//! authenticate`] (asynchronous, the one gateways await on the client's own task) and
//! [`Chain::authenticate_now`] (synchronous, for code that cannot wait: it runs the local
//! back-ends and takes a network back-end's answer only from the cache, else ignore).
//!
//! Decisions: no configured chain means the built-in database alone, as before the chain
//! existed; a disabled authenticator is skipped; when every authenticator ignored (or none is
//! enabled), `authentication.allow_anonymous` decides — a deliberate difference from EMQX 5,
//! which has no such switch (README, "Security").
//!
//! Invariants: changes are written to the store before they take effect, under one lock, and a
//! change arriving on the store's feed is applied by re-reading the store; an authenticator
//! whose configuration did not change keeps its connections and caches across a change.

mod cache;
mod spec;

pub use cache::CacheSettings;
pub use spec::{BUILT_IN_ID, MASK};

use crate::authn::{anonymous_refusal, AuthResult, Authenticator, Credentials, DenyReason};
use crate::backend::builtin::BuiltIn;
use crate::backend::http::HttpAuthn;
use crate::backend::jwt::Jwt;
use crate::backend::postgres::Postgres;
use crate::backend::{Backend, Grant, Outcome, Request};
use crate::OwnedCredentials;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use spec::{Kind, Spec};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use switchyard_state::{Change, SharedState, StateError, StateView};

/// The store's kind for the chain made through the API: one document, key [`CHAIN_KEY`].
pub const AUTHENTICATORS_KIND: &str = "authenticators";
/// The key of the chain document.
pub const CHAIN_KEY: &str = "chain";

/// Why a change to the chain was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The configuration is not valid (400).
    #[error("{0}")]
    Invalid(String),
    /// An authenticator with this id is already in the chain (409).
    #[error("authenticator {0:?} already exists")]
    AlreadyExists(String),
    /// No such authenticator (404).
    #[error("Authenticator '{0}' does not exist")]
    NotFound(String),
    /// The store failed (500).
    #[error(transparent)]
    State(#[from] StateError),
}

/// What the chain decided, with what the accepted client brings.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Allow or deny, as gateways map it onto their wire codes.
    pub result: AuthResult,
    /// What the accepting authenticator granted (none for an anonymous client).
    pub grant: Grant,
    /// The id of the authenticator that decided; `None` when the end of the chain did.
    pub by: Option<String>,
}

impl Verdict {
    /// A refusal no authenticator gave (e.g. a banned client).
    pub fn refused(reason: DenyReason) -> Verdict {
        Verdict::deny(reason, None)
    }

    fn allow(grant: Grant, by: Option<String>) -> Verdict {
        Verdict {
            result: AuthResult::Allow {
                superuser: grant.superuser,
            },
            grant,
            by,
        }
    }

    fn deny(reason: DenyReason, by: Option<String>) -> Verdict {
        Verdict {
            result: AuthResult::Deny(reason),
            grant: Grant::default(),
            by,
        }
    }
}

/// Counters of one authenticator (`GET /authentication/{id}/status`, Prometheus).
#[derive(Debug, Default)]
pub struct AuthnMetrics {
    total: AtomicU64,
    success: AtomicU64,
    failed: AtomicU64,
    nomatch: AtomicU64,
    cache_hits: AtomicU64,
}

/// A snapshot of one authenticator's state and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthnStatus {
    /// The authenticator id.
    pub id: String,
    /// `connected`, `disconnected` or `connecting`.
    pub status: &'static str,
    /// Times it was asked.
    pub total: u64,
    /// Its ok answers.
    pub success: u64,
    /// Its error answers.
    pub failed: u64,
    /// Its ignore answers (including timeouts and unreachable servers).
    pub nomatch: u64,
    /// Answers taken from the result cache.
    pub cache_hits: u64,
    /// Requests that ran into their timeout (network back-ends).
    pub timeouts: u64,
}

struct Entry {
    spec: Spec,
    backend: Arc<dyn Backend>,
    metrics: Arc<AuthnMetrics>,
}

/// See the module doc.
pub struct Chain {
    entries: RwLock<Arc<Vec<Arc<Entry>>>>,
    /// The file's chain (`[[authentication.authenticators]]`), used while the store has none.
    file: Vec<Value>,
    state: Option<SharedState>,
    metrics: Mutex<HashMap<String, Arc<AuthnMetrics>>>,
    cache: cache::Cache,
    /// Held across "write the store, then install".
    write: Mutex<()>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self
            .entries
            .read()
            .iter()
            .map(|e| e.spec.id.clone())
            .collect();
        f.debug_struct("Chain")
            .field("authenticators", &ids)
            .finish()
    }
}

impl Default for Chain {
    /// The built-in database alone, nothing stored.
    fn default() -> Self {
        let mut chain = Chain::empty(Vec::new(), CacheSettings::default(), None);
        if let Ok(specs) = chain.file_specs() {
            if let Ok(entries) = chain.build(specs) {
                chain.entries = RwLock::new(Arc::new(entries));
            }
        }
        chain
    }
}

fn builtin_default() -> Value {
    json!({"mechanism": "password_based", "backend": "built_in_database"})
}

fn build_backend(spec: &Spec) -> Result<Arc<dyn Backend>, String> {
    Ok(match &spec.kind {
        Kind::BuiltIn(c) => Arc::new(BuiltIn::new(c)),
        Kind::Http(c) => Arc::new(HttpAuthn::new(c)?),
        Kind::Jwt(c) => Arc::new(Jwt::new(c)?),
        Kind::Postgres(c) => Arc::new(Postgres::new(c)?),
    })
}

impl Chain {
    fn empty(file: Vec<Value>, cache: CacheSettings, state: Option<SharedState>) -> Chain {
        Chain {
            entries: RwLock::new(Arc::new(Vec::new())),
            file,
            state,
            metrics: Mutex::new(HashMap::new()),
            cache: cache::Cache::new(cache),
            write: Mutex::new(()),
        }
    }

    /// The chain of `file` (the `[[authentication.authenticators]]` tables as JSON; empty: the
    /// built-in database alone), unless `state` holds one made through the API. Network
    /// back-ends need a tokio runtime (JWKS refresh, connections).
    pub fn open(
        file: Vec<Value>,
        cache: CacheSettings,
        state: Option<SharedState>,
    ) -> Result<Chain, ChainError> {
        let chain = Chain::empty(file, cache, state);
        // The file is checked even when the store overrides it, so a broken file is found now.
        let file_specs = chain.file_specs()?;
        let specs = match chain.stored_specs() {
            Ok(Some(specs)) => specs,
            Ok(None) => file_specs,
            Err(e) => {
                tracing::error!(error = %e, "authenticators in the state store are invalid; using the file's");
                file_specs
            }
        };
        let entries = chain.build(specs)?;
        *chain.entries.write() = Arc::new(entries);
        Ok(chain)
    }

    fn file_specs(&self) -> Result<Vec<Spec>, ChainError> {
        if self.file.is_empty() {
            return Ok(vec![
                Spec::parse(&builtin_default()).map_err(ChainError::Invalid)?
            ]);
        }
        let specs = self
            .file
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Spec::parse(v).map_err(|e| {
                    ChainError::Invalid(format!("authentication.authenticators[{i}]: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(&specs)?;
        Ok(specs)
    }

    fn stored_specs(&self) -> Result<Option<Vec<Spec>>, ChainError> {
        let Some(state) = &self.state else {
            return Ok(None);
        };
        let Some(doc) = state.get(AUTHENTICATORS_KIND, CHAIN_KEY)? else {
            return Ok(None);
        };
        let list = doc
            .get("authenticators")
            .and_then(Value::as_array)
            .ok_or_else(|| ChainError::Invalid("stored chain has no authenticators list".into()))?;
        let specs = list
            .iter()
            .map(|v| Spec::parse(v).map_err(ChainError::Invalid))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(specs))
    }

    /// Entries for `specs`, reusing the back-ends of unchanged ones.
    fn build(&self, specs: Vec<Spec>) -> Result<Vec<Arc<Entry>>, ChainError> {
        let old = self.entries.read().clone();
        let mut out = Vec::with_capacity(specs.len());
        for spec in specs {
            if let Some(e) = old.iter().find(|e| e.spec == spec) {
                out.push(e.clone());
                continue;
            }
            let backend = build_backend(&spec)
                .map_err(|e| ChainError::Invalid(format!("{}: {e}", spec.id)))?;
            let metrics = self
                .metrics
                .lock()
                .entry(spec.id.clone())
                .or_default()
                .clone();
            out.push(Arc::new(Entry {
                spec,
                backend,
                metrics,
            }));
        }
        Ok(out)
    }

    fn current(&self) -> Arc<Vec<Arc<Entry>>> {
        self.entries.read().clone()
    }

    /// Whether every enabled authenticator answers without a network, so that
    /// [`Chain::authenticate_now`] is the whole check.
    pub fn is_local(&self) -> bool {
        self.current()
            .iter()
            .all(|e| !e.spec.enable || !e.backend.is_network())
    }

    /// Decides whether a client may connect: the full chain, awaited on the client's own task.
    /// Network calls are bounded by their back-ends' timeouts; hashes run on the bounded
    /// blocking pool.
    pub async fn authenticate(
        &self,
        builtin: &Arc<Authenticator>,
        creds: &OwnedCredentials,
    ) -> Verdict {
        let c = creds.as_credentials();
        if !c.listener_authn_enabled {
            return Verdict::allow(Grant::default(), None);
        }
        for e in self.current().iter().filter(|e| e.spec.enable) {
            e.metrics.total.fetch_add(1, Ordering::Relaxed);
            let req = Request { creds: c, builtin };
            let outcome = if e.backend.is_network() {
                let key = self
                    .cache
                    .key(&e.spec.id, c.client_id, c.username, c.password);
                match self.cache.cached(&key, Instant::now()) {
                    Some(hit) => {
                        e.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
                        hit
                    }
                    None => {
                        let o = e.backend.check(req).await;
                        self.cache.put(key, &o, Instant::now());
                        o
                    }
                }
            } else {
                e.backend.check(req).await
            };
            if let Some(v) = self.settle(e, outcome, &c) {
                return v;
            }
        }
        end_of_chain(builtin, &c)
    }

    /// The chain without waiting for a network: local back-ends run here (a hash may run in
    /// place, moving the worker's other tasks away); a network back-end answers from the cache
    /// (an answer the asynchronous path reached moments ago included), else ignore.
    pub fn authenticate_now(&self, builtin: &Arc<Authenticator>, c: &Credentials<'_>) -> Verdict {
        if !c.listener_authn_enabled {
            return Verdict::allow(Grant::default(), None);
        }
        for e in self.current().iter().filter(|e| e.spec.enable) {
            let req = Request { creds: *c, builtin };
            let outcome = match e.backend.check_now(req) {
                Some(o) => {
                    e.metrics.total.fetch_add(1, Ordering::Relaxed);
                    o
                }
                None => {
                    let key = self
                        .cache
                        .key(&e.spec.id, c.client_id, c.username, c.password);
                    match self.cache.recent(&key, Instant::now()) {
                        Some(o) => o,
                        None => {
                            tracing::debug!(authenticator = %e.spec.id, client_id = c.client_id,
                                "network authenticator not asked on a synchronous path; ignored");
                            continue;
                        }
                    }
                }
            };
            if let Some(v) = self.settle(e, outcome, c) {
                return v;
            }
        }
        end_of_chain(builtin, c)
    }

    /// Counts `outcome` and turns a final one into the verdict.
    fn settle(&self, e: &Entry, outcome: Outcome, c: &Credentials<'_>) -> Option<Verdict> {
        let m = &e.metrics;
        let id = &e.spec.id;
        match outcome {
            Outcome::Ok(grant) => {
                m.success.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(authenticator = %id, client_id = c.client_id, "authenticated");
                Some(Verdict::allow(grant, Some(id.clone())))
            }
            Outcome::Error(reason) => {
                m.failed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(authenticator = %id, client_id = c.client_id,
                    username = ?c.username, peer = ?c.peer_ip, %reason, "authentication refused");
                Some(Verdict::deny(reason, Some(id.clone())))
            }
            Outcome::Ignore(why) => {
                m.nomatch.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(authenticator = %id, client_id = c.client_id, why, "ignored");
                None
            }
        }
    }

    /// Every authenticator as GET answers it (secrets masked), in chain order.
    pub fn list(&self) -> Vec<Value> {
        self.current().iter().map(|e| e.spec.shown()).collect()
    }

    /// One authenticator as GET answers it.
    pub fn get(&self, id: &str) -> Option<Value> {
        self.current()
            .iter()
            .find(|e| e.spec.id == id)
            .map(|e| e.spec.shown())
    }

    /// Counters and state of one authenticator.
    pub fn status(&self, id: &str) -> Option<AuthnStatus> {
        self.statuses().into_iter().find(|s| s.id == id)
    }

    /// Counters and state of every authenticator, in chain order.
    pub fn statuses(&self) -> Vec<AuthnStatus> {
        self.current()
            .iter()
            .map(|e| {
                let m = &e.metrics;
                AuthnStatus {
                    id: e.spec.id.clone(),
                    status: e.backend.health().as_str(),
                    total: m.total.load(Ordering::Relaxed),
                    success: m.success.load(Ordering::Relaxed),
                    failed: m.failed.load(Ordering::Relaxed),
                    nomatch: m.nomatch.load(Ordering::Relaxed),
                    cache_hits: m.cache_hits.load(Ordering::Relaxed),
                    timeouts: e.backend.timeouts(),
                }
            })
            .collect()
    }

    /// `POST /authentication`: appends `config`; answers it as GET would.
    pub fn create(&self, config: &Value) -> Result<Value, ChainError> {
        let spec = Spec::parse(config).map_err(ChainError::Invalid)?;
        let shown = spec.shown();
        self.change(|specs| {
            if specs.iter().any(|s| s.id == spec.id) {
                return Err(ChainError::AlreadyExists(spec.id.clone()));
            }
            specs.push(spec);
            Ok(())
        })?;
        Ok(shown)
    }

    /// `PUT /authentication/{id}`: replaces the config (same mechanism and backend); a secret
    /// sent back as [`MASK`] keeps its stored value.
    pub fn update(&self, id: &str, config: &Value) -> Result<(), ChainError> {
        let mut config = config.clone();
        if let Value::Object(m) = &mut config {
            m.remove("id");
        }
        self.change(|specs| {
            let i = position(specs, id)?;
            if spec::id_of(&config).as_deref() != Some(id) {
                return Err(ChainError::Invalid(
                    "Change of authentication type is not allowed".into(),
                ));
            }
            spec::unmask(&mut config, &specs[i].json);
            specs[i] = Spec::parse(&config).map_err(ChainError::Invalid)?;
            Ok(())
        })
    }

    /// `DELETE /authentication/{id}`: removes it; an id not in the chain is fine
    /// (idempotent), unless the chain is empty.
    pub fn delete(&self, id: &str) -> Result<(), ChainError> {
        self.change(|specs| {
            if specs.is_empty() {
                return Err(ChainError::NotFound(id.to_owned()));
            }
            specs.retain(|s| s.id != id);
            Ok(())
        })
    }

    /// `PUT /authentication/{id}/position/{position}`: `front`, `rear`, `before:{id}`,
    /// `after:{id}`.
    pub fn move_to(&self, id: &str, pos: &str) -> Result<(), ChainError> {
        let invalid = || ChainError::Invalid("Invalid value for 'position'".into());
        let target = match pos {
            "front" | "rear" => None,
            _ => match pos.split_once(':') {
                Some(("before" | "after", t)) if !t.is_empty() => Some(t),
                _ => return Err(invalid()),
            },
        };
        self.change(|specs| {
            let i = position(specs, id)?;
            if let Some(t) = target {
                position(specs, t)?;
            }
            let spec = specs.remove(i);
            let at = match (pos, target) {
                ("front", _) => 0,
                ("rear", _) => specs.len(),
                (p, Some(t)) => {
                    let j = position(specs, t).unwrap_or(specs.len());
                    if p.starts_with("before:") {
                        j
                    } else {
                        j + 1
                    }
                }
                _ => return Err(invalid()),
            };
            specs.insert(at.min(specs.len()), spec);
            Ok(())
        })
    }

    /// `PUT /authentication/order`: every authenticator exactly once, in the new order.
    pub fn reorder(&self, ids: &[String]) -> Result<(), ChainError> {
        self.change(|specs| {
            let unknown: Vec<&str> = ids
                .iter()
                .filter(|id| !specs.iter().any(|s| &s.id == *id))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(ChainError::Invalid(format!(
                    "Authenticators: {} are not found",
                    unknown.join(", ")
                )));
            }
            let missing: Vec<&str> = specs
                .iter()
                .filter(|s| !ids.contains(&s.id))
                .map(|s| s.id.as_str())
                .collect();
            if !missing.is_empty() || ids.len() != specs.len() {
                return Err(ChainError::Invalid(format!(
                    "No positions are specified for authenticators: {}",
                    missing.join(", ")
                )));
            }
            specs.sort_by_key(|s| ids.iter().position(|id| *id == s.id));
            Ok(())
        })
    }

    /// Applies `f` to the chain: builds it, stores it, then installs it.
    fn change(
        &self,
        f: impl FnOnce(&mut Vec<Spec>) -> Result<(), ChainError>,
    ) -> Result<(), ChainError> {
        let _write = self.write.lock();
        let mut specs: Vec<Spec> = self.current().iter().map(|e| e.spec.clone()).collect();
        f(&mut specs)?;
        check_unique(&specs)?;
        let entries = self.build(specs)?;
        if let Some(state) = &self.state {
            let list: Vec<Value> = entries.iter().map(|e| e.spec.json.clone()).collect();
            state.put(
                AUTHENTICATORS_KIND,
                CHAIN_KEY,
                &json!({ "authenticators": list }),
            )?;
        }
        self.install(entries);
        Ok(())
    }

    fn install(&self, entries: Vec<Arc<Entry>>) {
        let ids: Vec<&str> = entries.iter().map(|e| e.spec.id.as_str()).collect();
        tracing::info!(authenticators = ?ids, "authentication chain in force");
        *self.entries.write() = Arc::new(entries);
        self.cache.clear();
    }

    /// Re-reads the chain from the store (the file's when the store has none).
    fn reload(&self) -> Result<(), StateError> {
        let _write = self.write.lock();
        let specs = match self.stored_specs() {
            Ok(Some(s)) => s,
            Ok(None) => self.file_specs().map_err(|e| invalid_doc(&e))?,
            Err(ChainError::State(e)) => return Err(e),
            Err(e) => return Err(invalid_doc(&e)),
        };
        let entries = self.build(specs).map_err(|e| invalid_doc(&e))?;
        self.install(entries);
        Ok(())
    }
}

fn invalid_doc(e: &ChainError) -> StateError {
    StateError::Invalid {
        kind: AUTHENTICATORS_KIND.into(),
        key: CHAIN_KEY.into(),
        error: e.to_string(),
    }
}

fn position(specs: &[Spec], id: &str) -> Result<usize, ChainError> {
    specs
        .iter()
        .position(|s| s.id == id)
        .ok_or_else(|| ChainError::NotFound(id.to_owned()))
}

fn check_unique(specs: &[Spec]) -> Result<(), ChainError> {
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|o| o.id == s.id) {
            return Err(ChainError::AlreadyExists(s.id.clone()));
        }
    }
    Ok(())
}

/// Everyone ignored: `allow_anonymous` decides.
fn end_of_chain(builtin: &Authenticator, c: &Credentials<'_>) -> Verdict {
    if builtin.settings().allow_anonymous {
        return Verdict::allow(Grant::default(), None);
    }
    tracing::info!(client_id = c.client_id, username = ?c.username, peer = ?c.peer_ip,
        "authentication failed: no authenticator accepted the client, anonymous off");
    Verdict::deny(anonymous_refusal(c), None)
}

impl StateView for Chain {
    fn name(&self) -> &'static str {
        AUTHENTICATORS_KIND
    }

    fn apply(&self, change: &Change) -> Result<(), StateError> {
        if change.kind != AUTHENTICATORS_KIND || self.state.is_none() {
            return Ok(());
        }
        self.reload()
    }

    fn resync(&self) -> Result<(), StateError> {
        if self.state.is_none() {
            return Ok(());
        }
        self.reload()
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
