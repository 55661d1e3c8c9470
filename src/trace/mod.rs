//! Log traces (EMQX's `/api/v5/trace`): one client id, topic filter or peer IP traced at debug
//! level into its own file while the rest of the log stays at its level.
//!
//! Owns: the traces (kind [`KIND`] in the API-state store, keyed by name, each document a
//! `switchyard_admin::TraceSpec`), their files (`<node.data_dir>/trace/<name>.log`), and the
//! [`TraceHub`] that the tracing layer ([`layer`]) reads and the admin API changes through
//! `switchyard_admin::TraceControl`.
//! Invariants: a change is written to the store before the hub's view (and the view follows the
//! store's feed, idempotently); the layer reads only [`TraceHub::snapshot`], a list swapped
//! whole, so it never waits on a store write; `any` (whether some trace may run) changes
//! together with the snapshot, and the call-site interest cache is rebuilt whenever it flips,
//! so with no trace the debug call sites cost what they cost without this feature.

pub mod layer;

use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_admin::{TraceControl, TraceError, TraceInfo, TraceKind, TraceSpec, MAX_TRACES};
use switchyard_core::{TopicFilter, TopicName};
use switchyard_state::{Change, SharedState, StateError, StateView};
use tokio_util::sync::CancellationToken;

/// The API-state store kind of the traces.
pub const KIND: &str = "traces";
/// How often the hub drops traces whose window has ended from what the layer checks.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a trace matches, parsed from its spec.
#[derive(Debug)]
enum Matcher {
    ClientId(String),
    Topic(TopicFilter),
    Ip(IpAddr),
}

impl Matcher {
    fn of(spec: &TraceSpec) -> Result<Matcher, String> {
        match spec.kind {
            TraceKind::ClientId => Ok(Matcher::ClientId(spec.filter.clone())),
            TraceKind::Topic => TopicFilter::new(spec.filter.clone())
                .map(Matcher::Topic)
                .map_err(|e| format!("topic {:?}: {e}", spec.filter)),
            TraceKind::IpAddress => spec
                .filter
                .parse()
                .map(Matcher::Ip)
                .map_err(|_| format!("ip_address {:?}", spec.filter)),
        }
    }
}

/// A trace the hub holds: its spec, matcher and file.
#[derive(Debug)]
pub struct Active {
    spec: TraceSpec,
    matcher: Matcher,
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl Active {
    /// Opens (`fresh`: truncating) the trace's file under `dir`.
    fn open(spec: TraceSpec, dir: &Path, fresh: bool) -> Result<Active, String> {
        let matcher = Matcher::of(&spec)?;
        if !file_safe(&spec.name) {
            return Err(format!("name {:?} cannot name a file", spec.name));
        }
        let path = dir.join(format!("{}.log", spec.name));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(!fresh)
            .truncate(fresh)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Active {
            spec,
            matcher,
            path,
            file: Mutex::new(Some(file)),
        })
    }

    /// Whether an event with `keys`, in the connection `conn`, is about what this trace names.
    fn matches(&self, conn: Option<&layer::ConnInfo>, keys: &layer::EventKeys) -> bool {
        match &self.matcher {
            Matcher::ClientId(id) => {
                conn.and_then(|c| c.client_id.as_deref()) == Some(id.as_str())
                    || keys.client_id.as_deref() == Some(id.as_str())
            }
            Matcher::Ip(ip) => conn.and_then(|c| c.ip) == Some(*ip) || keys.ip == Some(*ip),
            Matcher::Topic(filter) => keys.topic.as_deref().is_some_and(|t| {
                match TopicName::new(t.to_owned()) {
                    Ok(name) => filter.matches(&name),
                    // A subscription's filter: traced when it is the trace's filter.
                    Err(_) => filter.as_str() == t,
                }
            }),
        }
    }

    /// Appends one line; a failed write closes the file (the trace goes quiet, and its
    /// download shows what was written).
    fn write(&self, line: &[u8]) {
        let mut file = self.file.lock();
        if let Some(f) = file.as_mut() {
            if f.write_all(line).is_err() {
                *file = None;
            }
        }
    }

    fn info(&self) -> TraceInfo {
        TraceInfo {
            spec: self.spec.clone(),
            log_size: std::fs::metadata(&self.path).map_or(0, |m| m.len()),
        }
    }
}

/// A trace name is a letter then letters, digits, `-`, `_` (the API checks it; a document
/// from elsewhere is checked again before it names a file).
fn file_safe(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[derive(Default)]
struct Inner {
    state: Option<SharedState>,
    dir: PathBuf,
    traces: BTreeMap<String, Arc<Active>>,
}

/// Every trace; created with the tracing subscriber, attached to the store at start-up.
#[derive(Default)]
pub struct TraceHub {
    /// What the layer checks: the enabled traces whose window has not ended.
    snapshot: RwLock<Arc<Vec<Arc<Active>>>>,
    /// Whether `snapshot` is non-empty.
    any: AtomicBool,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for TraceHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceHub")
            .field("any", &self.any())
            .finish_non_exhaustive()
    }
}

impl TraceHub {
    /// An empty hub (no store yet: traces arrive with [`TraceHub::attach`]).
    pub fn new() -> Arc<TraceHub> {
        Arc::new(TraceHub::default())
    }

    /// What the layer checks.
    pub(crate) fn snapshot(&self) -> Arc<Vec<Arc<Active>>> {
        self.snapshot.read().clone()
    }

    /// Whether some trace may run.
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Loads the traces kept in `state`; their files live in `<data_dir>/trace`.
    pub fn attach(&self, state: SharedState, data_dir: &Path) -> anyhow::Result<()> {
        let dir = data_dir.join("trace");
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        {
            let mut inner = self.inner.lock();
            inner.state = Some(state);
            inner.dir = dir;
        }
        self.reload()?;
        Ok(())
    }

    /// Re-reads every trace from the store (a trace whose file stays open keeps it).
    fn reload(&self) -> Result<(), StateError> {
        let mut inner = self.inner.lock();
        let Some(state) = inner.state.clone() else {
            return Ok(());
        };
        let mut traces = BTreeMap::new();
        for (key, value) in state.list(KIND)? {
            let spec: TraceSpec = switchyard_state::decode(KIND, &key, value)?;
            match inner.traces.get(&key) {
                Some(a) if a.spec == spec => {
                    traces.insert(key, a.clone());
                }
                _ => match Active::open(spec, &inner.dir, false) {
                    Ok(a) => {
                        traces.insert(key, Arc::new(a));
                    }
                    Err(error) => tracing::warn!(trace = key, error, "log trace not loaded"),
                },
            }
        }
        inner.traces = traces;
        self.publish(&inner);
        Ok(())
    }

    /// Swaps in the layer's snapshot; rebuilds the call-site interest when `any` flips.
    fn publish(&self, inner: &Inner) {
        let now = now_secs();
        let live: Vec<Arc<Active>> = inner
            .traces
            .values()
            .filter(|a| a.spec.enable && a.spec.end_at > now)
            .cloned()
            .collect();
        let any = !live.is_empty();
        *self.snapshot.write() = Arc::new(live);
        if self.any.swap(any, Ordering::AcqRel) != any {
            tracing::callsite::rebuild_interest_cache();
        }
    }

    /// Drops traces whose window has ended from the snapshot, every [`SWEEP_INTERVAL`], until
    /// `cancel`.
    pub async fn sweep(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = now_secs();
            if self.snapshot().iter().any(|a| a.spec.end_at <= now) {
                let inner = self.inner.lock();
                self.publish(&inner);
            }
        }
    }

    fn store(inner: &Inner) -> Result<&SharedState, TraceError> {
        inner
            .state
            .as_ref()
            .ok_or_else(|| TraceError::Io("the trace store is not open".into()))
    }
}

fn io(e: impl std::fmt::Display) -> TraceError {
    TraceError::Io(e.to_string())
}

impl TraceControl for TraceHub {
    fn list(&self) -> Vec<TraceInfo> {
        self.inner
            .lock()
            .traces
            .values()
            .map(|a| a.info())
            .collect()
    }

    fn create(&self, spec: TraceSpec) -> Result<TraceInfo, TraceError> {
        let mut inner = self.inner.lock();
        if inner.traces.contains_key(&spec.name) {
            return Err(TraceError::AlreadyExists);
        }
        let now = now_secs();
        if let Some(same) = inner.traces.values().find(|a| {
            a.spec.enable
                && a.spec.end_at > now
                && a.spec.kind == spec.kind
                && a.spec.filter == spec.filter
        }) {
            return Err(TraceError::DuplicateCondition(same.spec.name.clone()));
        }
        if inner.traces.len() >= MAX_TRACES {
            return Err(TraceError::Limit(MAX_TRACES));
        }
        let active = Active::open(spec.clone(), &inner.dir, true).map_err(TraceError::Io)?;
        let doc = serde_json::to_value(&spec).map_err(io)?;
        Self::store(&inner)?
            .put(KIND, &spec.name, &doc)
            .map_err(io)?;
        let active = Arc::new(active);
        let info = active.info();
        inner.traces.insert(spec.name, active);
        self.publish(&inner);
        Ok(info)
    }

    fn stop(&self, name: &str) -> Result<TraceInfo, TraceError> {
        let mut inner = self.inner.lock();
        let old = inner.traces.get(name).ok_or(TraceError::NotFound)?.clone();
        let mut spec = old.spec.clone();
        spec.enable = false;
        let doc = serde_json::to_value(&spec).map_err(io)?;
        Self::store(&inner)?.put(KIND, name, &doc).map_err(io)?;
        let stopped = Arc::new(Active {
            matcher: Matcher::of(&spec).map_err(TraceError::Io)?,
            spec,
            path: old.path.clone(),
            file: Mutex::new(None),
        });
        let info = stopped.info();
        inner.traces.insert(name.to_owned(), stopped);
        self.publish(&inner);
        Ok(info)
    }

    fn delete(&self, name: &str) -> Result<(), TraceError> {
        let mut inner = self.inner.lock();
        let Some(old) = inner.traces.get(name).cloned() else {
            return Err(TraceError::NotFound);
        };
        Self::store(&inner)?.delete(KIND, name).map_err(io)?;
        inner.traces.remove(name);
        self.publish(&inner);
        remove_file(&old.path);
        Ok(())
    }

    fn file(&self, name: &str) -> Result<PathBuf, TraceError> {
        let inner = self.inner.lock();
        let a = inner.traces.get(name).ok_or(TraceError::NotFound)?;
        Ok(a.path.clone())
    }
}

fn remove_file(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "trace file not removed");
        }
        _ => {}
    }
}

impl StateView for TraceHub {
    fn name(&self) -> &'static str {
        KIND
    }

    fn apply(&self, change: &Change) -> Result<(), StateError> {
        if change.kind != KIND {
            return Ok(());
        }
        let mut inner = self.inner.lock();
        let Some(state) = inner.state.clone() else {
            return Ok(());
        };
        // The store's document now, not the feed's copy, which may be older than a local write.
        match state.get(KIND, &change.key)? {
            Some(value) => {
                let spec: TraceSpec = switchyard_state::decode(KIND, &change.key, value)?;
                if inner
                    .traces
                    .get(&change.key)
                    .is_some_and(|a| a.spec == spec)
                {
                    return Ok(());
                }
                let active =
                    Active::open(spec, &inner.dir, false).map_err(|error| StateError::Invalid {
                        kind: KIND.into(),
                        key: change.key.clone(),
                        error,
                    })?;
                inner.traces.insert(change.key.clone(), Arc::new(active));
            }
            None => {
                if let Some(old) = inner.traces.remove(&change.key) {
                    remove_file(&old.path);
                }
            }
        }
        self.publish(&inner);
        Ok(())
    }

    fn resync(&self) -> Result<(), StateError> {
        self.reload()
    }
}

#[cfg(test)]
mod tests;
