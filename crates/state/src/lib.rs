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
//! Invariants: a `put` or `delete` is durable (SQLite WAL, `synchronous = FULL`) before it
//! returns and before its [`Change`] is sent; `list` returns a kind's documents ordered by key.

mod sqlite;

pub use sqlite::SqliteState;

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
    /// Removes `kind`/`key`; whether it existed. Durable when this returns.
    fn delete(&self, kind: &str, key: &str) -> Result<bool, StateError>;
    /// Every document of `kind`, ordered by key.
    fn list(&self, kind: &str) -> Result<Vec<(String, Value)>, StateError>;
    /// Changes from now on. A receiver that falls behind by more than the feed's capacity gets
    /// `Lagged` and should re-read what it cares about with [`StateStore::list`].
    fn changes(&self) -> broadcast::Receiver<Change>;
}

/// A shared store.
pub type SharedState = Arc<dyn StateStore>;
