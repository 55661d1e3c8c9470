//! The built-in users in the API-state store: one document of kind [`USERS_KIND`] per user id
//! (`{algorithm, password_hash, salt, is_superuser}`), the [`StateView`] that keeps the
//! authenticator's view in step with the store's feed, and the one-time import of the JSON file
//! earlier versions wrote (`<data_dir>/authn_users.json`).
//!
//! Invariants: the store is written before the view, under the authenticator's `write` lock, and
//! a change from the feed is applied by re-reading its document under the same lock, so the view
//! never ends older than the store; the legacy file is imported only into a store without users,
//! in one transaction, and then renamed to `authn_users.json.imported`.

use super::{AuthError, Authenticator, UserRecord};
use std::collections::BTreeMap;
use std::path::Path;
use switchyard_state::{decode, Change, StateError, StateStore, StateView};

/// The store's kind for built-in users, keyed by user id.
pub const USERS_KIND: &str = "authn_users";

/// The user file of earlier versions under `node.data_dir`; imported once, then renamed with
/// `.imported` appended.
pub const LEGACY_USERS_FILE: &str = "authn_users.json";

/// The legacy file's layout.
#[derive(serde::Deserialize)]
struct UsersFile {
    users: BTreeMap<String, UserRecord>,
}

fn encode(user_id: &str, record: &UserRecord) -> Result<serde_json::Value, StateError> {
    serde_json::to_value(record).map_err(|e| StateError::Invalid {
        kind: USERS_KIND.to_owned(),
        key: user_id.to_owned(),
        error: e.to_string(),
    })
}

/// Every user in `state`.
pub(super) fn load(state: &dyn StateStore) -> Result<BTreeMap<String, UserRecord>, StateError> {
    state
        .list(USERS_KIND)?
        .into_iter()
        .map(|(id, doc)| Ok((id.clone(), decode(USERS_KIND, &id, doc)?)))
        .collect()
}

/// Imports `dir/authn_users.json` into `state` if the store has no users yet, then renames the
/// file. A missing file is nothing to do; a file that is not valid is an error (as it was when
/// it was the database).
pub(super) fn import_legacy(dir: &Path, state: &dyn StateStore) -> Result<(), AuthError> {
    let path = dir.join(LEGACY_USERS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(AuthError::Io { path, source }),
    };
    if !state.list(USERS_KIND)?.is_empty() {
        tracing::warn!(file = %path.display(),
            "built-in user file of an earlier version left alone: the state store already has users");
        return Ok(());
    }
    let file: UsersFile = serde_json::from_str(&text).map_err(|e| AuthError::Corrupt {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let docs = file
        .users
        .iter()
        .map(|(id, r)| Ok((id.clone(), encode(id, r)?)))
        .collect::<Result<Vec<_>, StateError>>()?;
    state.put_many(USERS_KIND, &docs)?;
    let imported = path.with_file_name(format!("{LEGACY_USERS_FILE}.imported"));
    match std::fs::rename(&path, &imported) {
        Ok(()) => tracing::info!(file = %path.display(), renamed = %imported.display(),
            users = docs.len(), "built-in users imported into the state store"),
        // The users are in the store, which is what counts; the next start leaves the file.
        Err(error) => tracing::warn!(file = %path.display(), users = docs.len(), %error,
            "built-in users imported into the state store, but the file could not be renamed"),
    }
    Ok(())
}

impl Authenticator {
    /// Writes one user to the store (nothing without a store). The caller holds `write`.
    pub(super) fn save(&self, user_id: &str, record: &UserRecord) -> Result<(), AuthError> {
        if let Some(state) = &self.state {
            state.put(USERS_KIND, user_id, &encode(user_id, record)?)?;
        }
        Ok(())
    }

    /// Writes several users in one transaction. The caller holds `write`.
    pub(super) fn save_many(&self, users: &BTreeMap<String, UserRecord>) -> Result<(), AuthError> {
        if let Some(state) = &self.state {
            let docs = users
                .iter()
                .map(|(id, r)| Ok((id.clone(), encode(id, r)?)))
                .collect::<Result<Vec<_>, StateError>>()?;
            state.put_many(USERS_KIND, &docs)?;
        }
        Ok(())
    }

    /// Removes one user from the store. The caller holds `write`.
    pub(super) fn remove(&self, user_id: &str) -> Result<(), AuthError> {
        if let Some(state) = &self.state {
            state.delete(USERS_KIND, user_id)?;
        }
        Ok(())
    }
}

impl StateView for Authenticator {
    fn name(&self) -> &'static str {
        USERS_KIND
    }

    fn apply(&self, change: &Change) -> Result<(), StateError> {
        let Some(state) = self.state.as_ref().filter(|_| change.kind == USERS_KIND) else {
            return Ok(());
        };
        let _write = self.write.lock();
        // The store, not the change: a local write may already have put something newer.
        let record = state
            .get(USERS_KIND, &change.key)?
            .map(|doc| decode::<UserRecord>(USERS_KIND, &change.key, doc))
            .transpose()?;
        self.set_user(&change.key, record);
        Ok(())
    }

    fn resync(&self) -> Result<(), StateError> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let _write = self.write.lock();
        let users = load(state.as_ref())?;
        let gone: Vec<String> = self
            .users
            .read()
            .keys()
            .filter(|id| !users.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            self.set_user(&id, None);
        }
        for (id, record) in users {
            self.set_user(&id, Some(record));
        }
        Ok(())
    }
}
