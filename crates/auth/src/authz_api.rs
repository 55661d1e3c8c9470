//! What `/api/v5/authorization/sources` and `/settings` change (shared/specs/emqx-auth-api.md
//! §9.2), and the store's feed applied to the authorizer.
//!
//! Owns: list, get, create (at the front, as EMQX), update, delete, move, reorder and the
//! settings, each written to the API-state store (kind [`AUTHZ_KIND`]) before it takes effect,
//! under one lock. Must not know: HTTP routes or status codes (the admin crate maps
//! [`SourceError`] onto them), any protocol.

use crate::authz::{Authorizer, AuthzSettings};
use crate::authz_sources::{
    kind_of, parse_settings, settings_json, SourceError, SourceStatus, AUTHZ_KIND, SETTINGS_KEY,
    SOURCES_KEY,
};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use switchyard_state::{Change, StateError, StateView};

impl Authorizer {
    /// Every source as GET shows it, in order.
    pub fn list_sources(&self) -> Vec<Value> {
        self.sources.read().iter().map(|s| s.shown()).collect()
    }

    /// One source as GET shows it.
    pub fn get_source(&self, kind: &str) -> Option<Value> {
        self.sources
            .read()
            .iter()
            .find(|s| s.kind == kind)
            .map(|s| s.shown())
    }

    /// Counters and state of one source.
    pub fn source_status(&self, kind: &str) -> Option<SourceStatus> {
        self.source_statuses().into_iter().find(|s| s.kind == kind)
    }

    /// Counters and state of every source, in order.
    pub fn source_statuses(&self) -> Vec<SourceStatus> {
        self.sources.read().iter().map(|s| s.status()).collect()
    }

    /// `POST /authorization/sources`: a new type, put at the front.
    pub fn create_source(&self, config: &Value) -> Result<(), SourceError> {
        let kind = kind_of(config)
            .ok_or_else(|| SourceError::Invalid("a source needs a \"type\"".into()))?
            .to_owned();
        self.change(|specs| {
            if specs.iter().any(|s| kind_of(s) == Some(kind.as_str())) {
                return Err(SourceError::Duplicated(kind.clone()));
            }
            specs.insert(0, config.clone());
            Ok(())
        })
    }

    /// `PUT /authorization/sources/{type}`: the full config, same type.
    pub fn update_source(&self, kind: &str, config: &Value) -> Result<(), SourceError> {
        if kind_of(config).is_some_and(|k| k != kind) {
            return Err(SourceError::Invalid("Type mismatch".into()));
        }
        let mut config = config.clone();
        if let Value::Object(m) = &mut config {
            m.insert("type".into(), json!(kind));
        }
        self.change(|specs| {
            let i = index(specs, kind)?;
            specs[i] = config;
            Ok(())
        })
    }

    /// `DELETE /authorization/sources/{type}`.
    pub fn delete_source(&self, kind: &str) -> Result<(), SourceError> {
        self.change(|specs| {
            let i = index(specs, kind)?;
            specs.remove(i);
            Ok(())
        })
    }

    /// `POST /authorization/sources/{type}/move`: `front`, `rear`, `before:{type}`,
    /// `after:{type}`.
    pub fn move_source(&self, kind: &str, pos: &str) -> Result<(), SourceError> {
        let invalid = || SourceError::Invalid(format!("Invalid value for 'position': {pos:?}"));
        let (before, target) = match pos {
            "front" | "rear" => (pos == "front", None),
            _ => match pos.split_once(':') {
                Some(("before", t)) if !t.is_empty() => (true, Some(t)),
                Some(("after", t)) if !t.is_empty() => (false, Some(t)),
                _ => return Err(invalid()),
            },
        };
        self.change(|specs| {
            let i = index(specs, kind)?;
            if let Some(t) = target {
                index(specs, t)?;
            }
            let spec = specs.remove(i);
            let at = match target {
                None if before => 0,
                None => specs.len(),
                Some(t) => {
                    let j = index(specs, t).unwrap_or(specs.len());
                    if before {
                        j
                    } else {
                        j + 1
                    }
                }
            };
            specs.insert(at.min(specs.len()), spec);
            Ok(())
        })
    }

    /// `PUT /authorization/sources/order`: every source exactly once, in the new order.
    pub fn reorder_sources(&self, kinds: &[String]) -> Result<(), SourceError> {
        self.change(|specs| {
            let known = |k: &String| specs.iter().any(|s| kind_of(s) == Some(k.as_str()));
            if let Some(k) = kinds.iter().find(|k| !known(k)) {
                return Err(SourceError::NotFound(k.clone()));
            }
            let mut seen: Vec<&String> = kinds.iter().collect();
            seen.sort();
            seen.dedup();
            if seen.len() != kinds.len() || kinds.len() != specs.len() {
                return Err(SourceError::Invalid(
                    "the order must name every source exactly once".into(),
                ));
            }
            specs.sort_by_key(|s| kinds.iter().position(|k| kind_of(s) == Some(k.as_str())));
            Ok(())
        })
    }

    /// `PUT /authorization/settings`: stored, then in force (cached decisions dropped).
    pub fn put_settings(&self, body: &Value) -> Result<AuthzSettings, SourceError> {
        let s = parse_settings(body)?;
        let _write = self.write.lock();
        if let Some(state) = &self.state {
            state.put(AUTHZ_KIND, SETTINGS_KEY, &settings_json(&s))?;
        }
        self.apply_settings(s.clone());
        Ok(s)
    }

    fn apply_settings(&self, s: AuthzSettings) {
        tracing::info!(no_match = ?s.no_match, deny_action = ?s.deny_action,
            cache = s.cache.enable, "authorization settings in force");
        *self.settings.write() = s;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The sources as the store keeps them (the configured JSON forms).
    fn specs(&self) -> Vec<Value> {
        self.sources.read().iter().map(|s| s.json.clone()).collect()
    }

    /// Applies `f` to the list: builds it, stores it, then installs it.
    fn change(
        &self,
        f: impl FnOnce(&mut Vec<Value>) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        let _write = self.write.lock();
        let mut specs = self.specs();
        f(&mut specs)?;
        let built = self.build(&specs)?;
        if let Some(state) = &self.state {
            state.put(AUTHZ_KIND, SOURCES_KEY, &json!({ "sources": specs }))?;
        }
        self.install(built);
        Ok(())
    }

    /// Re-reads sources and settings from the store (the config's where it has none).
    fn reload(&self) -> Result<(), StateError> {
        let _write = self.write.lock();
        let invalid = |e: SourceError| match e {
            SourceError::State(e) => e,
            e => StateError::Invalid {
                kind: AUTHZ_KIND.into(),
                key: SOURCES_KEY.into(),
                error: e.to_string(),
            },
        };
        let specs = self
            .stored_specs()
            .map_err(invalid)?
            .unwrap_or_else(|| self.file_specs());
        let built = self.build(&specs).map_err(invalid)?;
        self.install(built);
        let settings = self
            .stored_settings()
            .map_err(invalid)?
            .unwrap_or_else(|| self.file_settings.clone());
        self.apply_settings(settings);
        Ok(())
    }
}

fn index(specs: &[Value], kind: &str) -> Result<usize, SourceError> {
    specs
        .iter()
        .position(|s| kind_of(s) == Some(kind))
        .ok_or_else(|| SourceError::NotFound(kind.to_owned()))
}

impl StateView for Authorizer {
    fn name(&self) -> &'static str {
        AUTHZ_KIND
    }

    fn apply(&self, change: &Change) -> Result<(), StateError> {
        if change.kind != AUTHZ_KIND || self.state.is_none() {
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
#[path = "authz_api_tests.rs"]
mod tests;
