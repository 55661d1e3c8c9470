//! The admins and API keys in the API-state store: documents of kind [`ADMIN_USERS_KIND`]
//! (a [`User`], keyed by username) and [`API_KEYS_KIND`] (an [`ApiKey`], keyed by name); the
//! [`StateView`] that keeps the [`AuthStore`]'s view in step with the store's feed; the one-time
//! import of `<data_dir>/admin.json`, the file earlier versions kept them in.
//!
//! Invariants: the store is written before the view, under the `write` lock, and a change from
//! the feed is applied by re-reading its document under the same lock, so the view never ends
//! older than the store; each kind is imported from the legacy file only when the store has none
//! of it (one transaction per kind); the file is then renamed to `admin.json.imported`.

use super::{ApiKey, AuthStore, User, View};
use crate::error::{ApiError, ApiResult};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use switchyard_state::{decode, Change, StateError, StateStore, StateView};

/// The store's kind for dashboard admins, keyed by username.
pub const ADMIN_USERS_KIND: &str = "admin_users";

/// The store's kind for API keys, keyed by key name.
pub const API_KEYS_KIND: &str = "api_keys";

/// The admin file of earlier versions under `node.data_dir`; imported once, then renamed with
/// `.imported` appended.
pub const LEGACY_ADMIN_FILE: &str = "admin.json";

/// Why the admin store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The state store failed, or holds a document that is not an admin or a key.
    #[error(transparent)]
    State(#[from] StateError),
    /// The legacy `admin.json` cannot be read or is not valid.
    #[error("{path}: {message}")]
    Legacy {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The default admin's password could not be hashed.
    #[error("cannot hash the default admin's password: {0}")]
    Hash(String),
}

/// The legacy file's layout.
#[derive(Deserialize)]
struct AdminFile {
    #[serde(default)]
    users: Vec<User>,
    #[serde(default)]
    api_keys: Vec<ApiKey>,
}

fn encode<T: serde::Serialize>(
    kind: &str,
    key: &str,
    doc: &T,
) -> Result<serde_json::Value, StateError> {
    serde_json::to_value(doc).map_err(|e| StateError::Invalid {
        kind: kind.to_owned(),
        key: key.to_owned(),
        error: e.to_string(),
    })
}

/// A stored admin; the key is its username.
fn decode_user(key: &str, doc: serde_json::Value) -> Result<User, StateError> {
    let mut user: User = decode(ADMIN_USERS_KIND, key, doc)?;
    key.clone_into(&mut user.username);
    Ok(user)
}

/// A stored key; the store's key is its name.
fn decode_key(key: &str, doc: serde_json::Value) -> Result<ApiKey, StateError> {
    let mut api_key: ApiKey = decode(API_KEYS_KIND, key, doc)?;
    key.clone_into(&mut api_key.name);
    Ok(api_key)
}

/// Every admin and key in `state`.
pub(super) fn load(state: &dyn StateStore) -> Result<View, StateError> {
    let mut view = View::default();
    for (key, doc) in state.list(ADMIN_USERS_KIND)? {
        let user = decode_user(&key, doc)?;
        view.users.insert(key, user);
    }
    for (key, doc) in state.list(API_KEYS_KIND)? {
        let api_key = decode_key(&key, doc)?;
        view.api_keys.insert(key, api_key);
    }
    Ok(view)
}

/// Stores `docs` as `kind` unless the store already has documents of that kind; how many.
fn import_kind(
    state: &dyn StateStore,
    kind: &str,
    docs: Vec<(String, serde_json::Value)>,
    path: &Path,
) -> Result<usize, StateError> {
    if docs.is_empty() {
        return Ok(0);
    }
    if !state.list(kind)?.is_empty() {
        tracing::warn!(file = %path.display(), kind, skipped = docs.len(),
            "the state store already has documents of this kind; those of the file are not imported");
        return Ok(0);
    }
    state.put_many(kind, &docs)?;
    Ok(docs.len())
}

/// Imports `dir/admin.json` into `state` (each kind only if the store has none of it), then
/// renames the file. A missing file is nothing to do.
pub(super) fn import_legacy(dir: &Path, state: &dyn StateStore) -> Result<(), OpenError> {
    let path = dir.join(LEGACY_ADMIN_FILE);
    let legacy = |message: String| OpenError::Legacy {
        path: path.clone(),
        message,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(legacy(e.to_string())),
    };
    let file: AdminFile = serde_json::from_str(&text).map_err(|e| legacy(e.to_string()))?;
    let users = file
        .users
        .iter()
        .map(|u| {
            Ok((
                u.username.clone(),
                encode(ADMIN_USERS_KIND, &u.username, u)?,
            ))
        })
        .collect::<Result<Vec<_>, StateError>>()?;
    let keys = file
        .api_keys
        .iter()
        .map(|k| Ok((k.name.clone(), encode(API_KEYS_KIND, &k.name, k)?)))
        .collect::<Result<Vec<_>, StateError>>()?;
    let users = import_kind(state, ADMIN_USERS_KIND, users, &path)?;
    let api_keys = import_kind(state, API_KEYS_KIND, keys, &path)?;
    let imported = path.with_file_name(format!("{LEGACY_ADMIN_FILE}.imported"));
    match std::fs::rename(&path, &imported) {
        Ok(()) => tracing::info!(file = %path.display(), renamed = %imported.display(),
            users, api_keys, "dashboard admins and API keys imported into the state store"),
        // What was imported is in the store; the next start imports nothing more from it.
        Err(error) => tracing::warn!(file = %path.display(), users, api_keys, %error,
            "dashboard admins and API keys imported into the state store, but the file could not be renamed"),
    }
    Ok(())
}

/// A store failure as the API answers it (500), logged once here.
fn store_failed(kind: &str, key: &str, error: StateError) -> ApiError {
    tracing::error!(kind, key, %error, "admin state: change not saved");
    ApiError::internal(error.to_string())
}

impl AuthStore {
    /// Writes one admin to the store. The caller holds `write`.
    pub(super) fn put_user(&self, user: &User) -> Result<(), StateError> {
        let key = user.username.as_str();
        self.state
            .put(ADMIN_USERS_KIND, key, &encode(ADMIN_USERS_KIND, key, user)?)
    }

    /// [`AuthStore::put_user`] for a request: a failure is a 500.
    pub(super) fn save_user(&self, user: &User) -> ApiResult<()> {
        self.put_user(user)
            .map_err(|e| store_failed(ADMIN_USERS_KIND, &user.username, e))
    }

    /// Writes one API key to the store. The caller holds `write`.
    pub(super) fn save_key(&self, api_key: &ApiKey) -> ApiResult<()> {
        let key = api_key.name.as_str();
        encode(API_KEYS_KIND, key, api_key)
            .and_then(|doc| self.state.put(API_KEYS_KIND, key, &doc))
            .map_err(|e| store_failed(API_KEYS_KIND, key, e))
    }

    /// Removes one document from the store. The caller holds `write`.
    pub(super) fn delete_doc(&self, kind: &str, key: &str) -> ApiResult<()> {
        self.state
            .delete(kind, key)
            .map(drop)
            .map_err(|e| store_failed(kind, key, e))
    }
}

impl StateView for AuthStore {
    fn name(&self) -> &'static str {
        "admin"
    }

    fn apply(&self, change: &Change) -> Result<(), StateError> {
        let (kind, key) = (change.kind.as_str(), change.key.as_str());
        if kind != ADMIN_USERS_KIND && kind != API_KEYS_KIND {
            return Ok(());
        }
        let _write = self.write.lock();
        // The store, not the change: a local write may already have put something newer.
        let doc = self.state.get(kind, key)?;
        if kind == ADMIN_USERS_KIND {
            let user = doc.map(|d| decode_user(key, d)).transpose()?;
            let removed = user.is_none();
            let mut view = self.view.lock();
            match user {
                Some(u) => view.users.insert(key.to_owned(), u),
                None => view.users.remove(key),
            };
            drop(view);
            if removed {
                self.tokens.lock().retain(|_, t| t.username != key);
            }
        } else {
            let api_key = doc.map(|d| decode_key(key, d)).transpose()?;
            let mut view = self.view.lock();
            match api_key {
                Some(k) => view.api_keys.insert(key.to_owned(), k),
                None => view.api_keys.remove(key),
            };
        }
        Ok(())
    }

    fn resync(&self) -> Result<(), StateError> {
        let _write = self.write.lock();
        let fresh = load(self.state.as_ref())?;
        self.tokens
            .lock()
            .retain(|_, t| fresh.users.contains_key(&t.username));
        *self.view.lock() = fresh;
        Ok(())
    }
}
