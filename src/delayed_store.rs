//! Held `$delayed/` messages kept in the API-state store (kind [`KIND`], one document per
//! message keyed by its zero-padded id), so they survive a restart: saved before the publisher
//! is acknowledged, removed once published or deleted, restored at start-up.

use std::sync::Arc;
use switchyard_bus::{BusHandle, DelayedPersistence, DelayedRecord};
use switchyard_state::SharedState;

/// The API-state kind of held delayed messages.
pub const KIND: &str = "delayed";

fn key(id: u64) -> String {
    format!("{id:020}")
}

/// [`DelayedPersistence`] on the API-state store.
#[derive(Debug)]
pub struct StateDelayed(pub SharedState);

impl DelayedPersistence for StateDelayed {
    fn save(&self, r: &DelayedRecord) -> Result<(), String> {
        self.0
            .put(KIND, &key(r.id), &r.to_json())
            .map_err(|e| e.to_string())
    }

    fn remove(&self, id: u64) {
        if let Err(error) = self.0.delete(KIND, &key(id)) {
            tracing::error!(id, %error, "cannot forget a published delayed message");
        }
    }
}

/// Restores the held messages into the bus and persists new ones from now on.
pub fn attach(bus: &BusHandle, state: &SharedState) -> anyhow::Result<()> {
    let docs = state.list(KIND)?;
    let mut records = Vec::with_capacity(docs.len());
    for (k, doc) in docs {
        match DelayedRecord::from_json(&doc) {
            Some(r) => records.push(r),
            None => tracing::warn!(key = k, "unreadable delayed message skipped"),
        }
    }
    if !records.is_empty() {
        tracing::info!(count = records.len(), "delayed messages restored");
    }
    bus.delayed().restore(records);
    bus.delayed()
        .set_persistence(Arc::new(StateDelayed(state.clone())));
    Ok(())
}
