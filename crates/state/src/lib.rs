//! The API-state store: one home for everything an operator creates at run time through the
//! REST API — built-in users, admin users and API keys, and what later features add (rules,
//! sinks, authenticators, PSK identities, banned clients, delayed messages).
//!
//! Owns: durable JSON documents addressed by a *kind* (a namespace such as `"authn_users"`) and
//! a *key* within it, and the feed of changes to them.
//! Must not know: what a document means, any protocol, the bus. Each feature owns its kind and
//! the shape of its documents; one store means one thing to back up and, for the cluster, one
//! thing to replicate (a replicating [`StateStore`] can wrap or replace [`SqliteState`]).
//!
//! Invariants: a `put`, `put_many` or `delete` is durable (SQLite WAL, `synchronous = FULL`)
//! before it returns and before its [`Change`]s are sent; `put_many` is all or nothing; `list`
//! returns a kind's documents ordered by key.
//!
//! Features keep in-memory views of their kinds (a login must not query SQLite) and implement
//! [`StateView`]; [`follow`] feeds them the change feed, so a change made elsewhere (another
//! task today, another node once the store is replicated) reaches the view the same way.

mod sqlite;
mod view;

pub use sqlite::{SqliteState, STATE_FILE};
pub use view::{follow, StateView};

use serde_json::Value;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::broadcast;

/// A change to one document, as the feed reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The document's kind.
    pub kind: String,
    /// Its key within the kind.
    pub key: String,
    /// The new document, or `None` when it was deleted.
    pub value: Option<Value>,
}

/// Why the store could not do what was asked.
#[derive(Debug, Error)]
pub enum StateError {
    /// The database failed (disk full, permissions, corruption).
    #[error("state store: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored document is not valid JSON (written by something else).
    #[error("state store: document {kind}/{key} is not JSON: {error}")]
    Corrupt {
        /// Kind of the bad document.
        kind: String,
        /// Its key.
        key: String,
        /// What the JSON parser said.
        error: String,
    },
    /// A stored document is JSON but not what the feature that owns its kind expects.
    #[error("state store: document {kind}/{key} is invalid: {error}")]
    Invalid {
        /// Kind of the bad document.
        kind: String,
        /// Its key.
        key: String,
        /// What is wrong with it.
        error: String,
    },
    /// The data directory could not be created.
    #[error("state store: cannot create {path}: {error}")]
    Dir {
        /// The directory.
        path: String,
        /// The error.
        error: std::io::Error,
    },
}

/// Durable documents by kind and key, with a feed of changes.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// The document `kind`/`key`, if any.
    fn get(&self, kind: &str, key: &str) -> Result<Option<Value>, StateError>;
    /// Stores `value` as `kind`/`key` (replacing it); durable when this returns.
    fn put(&self, kind: &str, key: &str, value: &Value) -> Result<(), StateError>;
    /// Stores every `(key, value)` of `docs` under `kind` in one transaction (all or none), e.g.
    /// an import; durable when this returns.
    fn put_many(&self, kind: &str, docs: &[(String, Value)]) -> Result<(), StateError>;
    /// Removes `kind`/`key`; whether it existed. Durable when this returns.
    fn delete(&self, kind: &str, key: &str) -> Result<bool, StateError>;
    /// Every document of `kind`, ordered by key.
    fn list(&self, kind: &str) -> Result<Vec<(String, Value)>, StateError>;
    /// Changes from now on. A receiver that falls behind by more than the feed's capacity gets
    /// `Lagged` and should re-read what it cares about with [`StateStore::list`].
    fn changes(&self) -> Feed;
}

/// A receiver of the change feed.
pub type Feed = broadcast::Receiver<Change>;

/// A shared store.
pub type SharedState = Arc<dyn StateStore>;

/// Reads document `kind`/`key` as the type its feature stores; [`StateError::Invalid`] if it
/// does not fit.
pub fn decode<T: serde::de::DeserializeOwned>(
    kind: &str,
    key: &str,
    value: Value,
) -> Result<T, StateError> {
    serde_json::from_value(value).map_err(|e| StateError::Invalid {
        kind: kind.to_owned(),
        key: key.to_owned(),
        error: e.to_string(),
    })
}
