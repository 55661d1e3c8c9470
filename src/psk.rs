//! The node's pre-shared keys for the DTLS listeners: `psk_authentication.init_file` imported
//! into the API-state store (kind `switchyard_admin::PSK_KIND`) at start, as EMQX imports it
//! into its database, and a view of that kind that keeps `switchyard_net::dtls::PskStore` (what
//! the handshakes read, synchronously) equal to the store, including changes made through
//! `/api/v5/psk`.
//!
//! Must not know: DTLS itself or any gateway.

use anyhow::Context;
use serde_json::{json, Value};
use switchyard_admin::PSK_KIND;
use switchyard_config::PskAuthenticationConfig;
use switchyard_net::dtls::PskStore;
use switchyard_state::{Change, SharedState, StateError, StateView};

/// Builds the key table: imports the init file into the store (a missing or unreadable file is
/// a start-up error naming it), then loads every stored key. `None` when PSK is disabled.
pub fn open(
    config: &PskAuthenticationConfig,
    state: &SharedState,
) -> anyhow::Result<Option<PskView>> {
    if !config.enable {
        return Ok(None);
    }
    if !config.init_file.as_os_str().is_empty() {
        let file = PskStore::new();
        let n = file
            .load_file(&config.init_file, &config.separator)
            .context("psk_authentication.init_file")?;
        let docs: Vec<(String, Value)> = file
            .identities()
            .into_iter()
            .filter_map(|id| {
                let key = file.get(&id)?;
                let doc = json!({ "key": String::from_utf8_lossy(&key) });
                Some((String::from_utf8_lossy(&id).into_owned(), doc))
            })
            .collect();
        state
            .put_many(PSK_KIND, &docs)
            .context("psk_authentication.init_file: cannot import into the API-state store")?;
        tracing::info!(file = %config.init_file.display(), identities = n, "PSK file imported");
    }
    let view = PskView {
        keys: PskStore::new(),
        state: state.clone(),
    };
    view.resync().context("pre-shared keys")?;
    Ok(Some(view))
}

/// The in-memory key table, following the API-state store.
#[derive(Clone)]
pub struct PskView {
    /// What the DTLS listeners read.
    pub keys: PskStore,
    state: SharedState,
}

fn key_of(doc: &Value) -> Option<&str> {
    doc.get("key").and_then(Value::as_str)
}

impl StateView for PskView {
    fn name(&self) -> &'static str {
        "psk"
    }

    fn apply(&self, change: &Change) -> Result<(), StateError> {
        if change.kind != PSK_KIND {
            return Ok(());
        }
        match change.value.as_ref().and_then(key_of) {
            Some(key) => self.keys.insert(change.key.as_bytes(), key.as_bytes()),
            None => {
                self.keys.remove(change.key.as_bytes());
            }
        }
        Ok(())
    }

    fn resync(&self) -> Result<(), StateError> {
        let docs = self.state.list(PSK_KIND)?;
        for id in self.keys.identities() {
            if !docs.iter().any(|(k, _)| k.as_bytes() == id.as_slice()) {
                self.keys.remove(&id);
            }
        }
        for (id, doc) in &docs {
            if let Some(key) = key_of(doc) {
                self.keys.insert(id.as_bytes(), key.as_bytes());
            }
        }
        Ok(())
    }
}
