//! The connector and action operations of the REST API (`http` type), and the counters
//! Prometheus reads. An action hangs off a connector of its type; changing a connector restarts
//! the actions on it.

use super::*;

impl RuleEngine {
    pub(super) fn connector_doc(
        &self,
        ty: &str,
        name: &str,
        body: &Value,
    ) -> Result<Map<String, Value>, RulesError> {
        if ty != "http" {
            return Err(RulesError::BadRequest(format!(
                "unknown connector type: {ty}"
            )));
        }
        model::check_name(name)?;
        let mut b = body.clone();
        if let Value::Object(m) = &mut b {
            m.remove("type");
            m.remove("name");
        }
        let mut doc = model::http_connector(&b)?;
        doc.insert("type".into(), json!(ty));
        doc.insert("name".into(), json!(name));
        Ok(doc)
    }

    pub(super) fn install_connector(
        &self,
        id: &str,
        doc: Map<String, Value>,
        origin: Origin,
    ) -> Result<(), RulesError> {
        let enable = doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
        let cancel = self.cancel.child_token();
        let running = if enable {
            Some(HttpConnector::start(&doc, cancel.clone())?)
        } else {
            None
        };
        let old = self.connectors.lock().insert(
            id.to_string(),
            ConnectorEntry {
                doc,
                running,
                cancel,
                origin,
            },
        );
        if let Some(old) = old {
            old.cancel.cancel();
        }
        // Actions on this connector restart on the new one.
        let dependents: Vec<(String, Map<String, Value>, Origin)> = self
            .actions
            .read()
            .iter()
            .filter(|(_, a)| connector_key(&a.doc) == id)
            .map(|(k, a)| (k.clone(), a.doc.clone(), a.origin))
            .collect();
        for (k, doc, origin) in dependents {
            self.install_action(&k, doc, origin)?;
        }
        Ok(())
    }

    pub(super) fn connector_json(&self, id: &str, e: &ConnectorEntry) -> Value {
        let mut v = e.doc.clone();
        let (status, reason) = match &e.running {
            Some(c) => {
                let (s, r) = c.status();
                (s.as_str(), r)
            }
            None => ("stopped", None),
        };
        v.insert("status".into(), json!(status));
        if let Some(r) = &reason {
            v.insert("status_reason".into(), json!(r));
        }
        let mut ns = json!({"node": self.node, "status": status});
        if let Some(r) = reason {
            ns["status_reason"] = json!(r);
        }
        v.insert("node_status".into(), json!([ns]));
        let users: Vec<Value> = self
            .actions
            .read()
            .iter()
            .filter(|(_, a)| connector_key(&a.doc) == id)
            .map(|(_, a)| a.doc.get("name").cloned().unwrap_or(Value::Null))
            .collect();
        v.insert("actions".into(), Value::Array(users));
        v.insert("sources".into(), json!([]));
        Value::Object(v)
    }

    /// `GET /connectors`.
    pub fn list_connectors(&self) -> Vec<Value> {
        let c = self.connectors.lock();
        c.iter().map(|(id, e)| self.connector_json(id, e)).collect()
    }

    /// `GET /connectors/{id}`.
    pub fn get_connector(&self, id: &str) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "connector")?;
        let key = format!("{ty}:{name}");
        let c = self.connectors.lock();
        c.get(&key)
            .map(|e| self.connector_json(&key, e))
            .ok_or_else(|| RulesError::NotFound(format!("Connector {key} not found")))
    }

    /// `POST /connectors`.
    pub fn create_connector(&self, body: &Value) -> Result<Value, RulesError> {
        let ty = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = format!("{ty}:{name}");
        let mut doc = self.connector_doc(&ty, &name, body)?;
        if self.connectors.lock().contains_key(&key) {
            return Err(RulesError::AlreadyExists("connector already exists".into()));
        }
        stamp(&mut doc, None);
        self.persist(KIND_CONNECTORS, &key, Some(&doc))?;
        self.install_connector(&key, doc, Origin::Api)?;
        self.get_connector(&key)
    }

    /// `PUT /connectors/{id}`.
    pub fn update_connector(&self, id: &str, body: &Value) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "connector")?;
        let key = format!("{ty}:{name}");
        let old = self
            .connectors
            .lock()
            .get(&key)
            .map(|e| e.doc.clone())
            .ok_or_else(|| RulesError::NotFound(format!("Connector {key} not found")))?;
        let mut doc = self.connector_doc(&ty, &name, body)?;
        stamp(&mut doc, old.get("created_at").and_then(Value::as_i64));
        self.persist(KIND_CONNECTORS, &key, Some(&doc))?;
        self.install_connector(&key, doc, Origin::Api)?;
        self.get_connector(&key)
    }

    /// `DELETE /connectors/{id}`: refused while actions use it.
    pub fn delete_connector(&self, id: &str) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "connector")?;
        let key = format!("{ty}:{name}");
        if !self.connectors.lock().contains_key(&key) {
            return Err(RulesError::NotFound(format!("Connector {key} not found")));
        }
        if self
            .actions
            .read()
            .values()
            .any(|a| connector_key(&a.doc) == key)
        {
            return Err(RulesError::BadRequest(
                "Cannot delete connector while there are active channels defined for this connector".into(),
            ));
        }
        self.persist(KIND_CONNECTORS, &key, None)?;
        if let Some(e) = self.connectors.lock().remove(&key) {
            e.cancel.cancel();
        }
        Ok(())
    }

    /// `PUT /connectors/{id}/enable/{bool}`.
    pub fn enable_connector(&self, id: &str, enable: bool) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "connector")?;
        let key = format!("{ty}:{name}");
        let mut doc = self
            .connectors
            .lock()
            .get(&key)
            .map(|e| e.doc.clone())
            .ok_or_else(|| RulesError::NotFound(format!("Connector {key} not found")))?;
        doc.insert("enable".into(), json!(enable));
        let created = doc.get("created_at").and_then(Value::as_i64);
        stamp(&mut doc, created);
        self.persist(KIND_CONNECTORS, &key, Some(&doc))?;
        self.install_connector(&key, doc, Origin::Api)
    }

    /// `POST /connectors_probe`: whether the body's server answers.
    pub async fn probe_connector(&self, body: &Value) -> Result<(), RulesError> {
        let ty = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("probe")
            .to_string();
        let doc = self.connector_doc(&ty, &name, body)?;
        let url = doc.get("url").and_then(Value::as_str).unwrap_or_default();
        let url = reqwest::Url::parse(url).map_err(|e| RulesError::BadRequest(e.to_string()))?;
        let timeout =
            model::duration(&doc["connect_timeout"])?.unwrap_or(std::time::Duration::from_secs(15));
        crate::http::probe(&url, timeout)
            .await
            .map_err(RulesError::BadRequest)
    }

    pub(super) fn action_doc(
        &self,
        ty: &str,
        name: &str,
        body: &Value,
    ) -> Result<Map<String, Value>, RulesError> {
        if ty != "http" {
            return Err(RulesError::BadRequest(format!("unknown action type: {ty}")));
        }
        model::check_name(name)?;
        let mut b = body.clone();
        if let Value::Object(m) = &mut b {
            m.remove("type");
            m.remove("name");
        }
        let mut doc = model::http_action(&b)?;
        doc.insert("type".into(), json!(ty));
        doc.insert("name".into(), json!(name));
        Ok(doc)
    }

    pub(super) fn install_action(
        &self,
        id: &str,
        doc: Map<String, Value>,
        origin: Origin,
    ) -> Result<(), RulesError> {
        let ckey = connector_key(&doc);
        let connector = self.connectors.lock().get(&ckey).map(|c| c.running.clone());
        let Some(connector) = connector else {
            return Err(RulesError::BadRequest(
                json!({"kind": "validation_error", "reason": "connector_not_found_or_wrong_type",
                       "connector": ckey})
                .to_string(),
            ));
        };
        let enable = doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
        let mut actions = self.actions.write();
        let metrics = actions
            .get(id)
            .map(|a| a.metrics.clone())
            .unwrap_or_default();
        let cancel = self.cancel.child_token();
        let running = match (enable, connector) {
            (true, Some(c)) => Some(HttpAction::start(&doc, c, metrics.clone(), cancel.clone())?),
            _ => None,
        };
        if let Some(old) = actions.insert(
            id.to_string(),
            ActionEntry {
                doc,
                running,
                cancel,
                metrics,
                origin,
            },
        ) {
            old.cancel.cancel();
        }
        Ok(())
    }

    pub(super) fn rules_using(&self, id: &str) -> Vec<String> {
        self.rules
            .lock()
            .iter()
            .filter(|(_, r)| {
                r.doc
                    .get("actions")
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(id)))
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub(super) fn action_json(&self, id: &str, e: &ActionEntry) -> Value {
        let mut v = e.doc.clone();
        let (status, reason) = match &e.running {
            Some(a) => {
                let (s, r) = a.status();
                (s.as_str(), r)
            }
            None if !e.doc.get("enable").and_then(Value::as_bool).unwrap_or(true) => (
                Status::Disconnected.as_str(),
                Some("Not installed".to_string()),
            ),
            None => (
                Status::Disconnected.as_str(),
                Some("connector stopped".to_string()),
            ),
        };
        v.insert("status".into(), json!(status));
        if let Some(r) = &reason {
            v.insert("status_reason".into(), json!(r));
        }
        let mut ns = json!({"node": self.node, "status": status});
        if let Some(r) = reason {
            ns["status_reason"] = json!(r);
        }
        v.insert("node_status".into(), json!([ns]));
        v.insert("rules".into(), json!(self.rules_using(id)));
        Value::Object(v)
    }

    /// `GET /actions`.
    pub fn list_actions(&self) -> Vec<Value> {
        let a = self.actions.read();
        a.iter().map(|(id, e)| self.action_json(id, e)).collect()
    }

    /// `GET /actions/{id}`.
    pub fn get_action(&self, id: &str) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let a = self.actions.read();
        a.get(&key)
            .map(|e| self.action_json(&key, e))
            .ok_or_else(|| {
                RulesError::NotFound(format!(
                    "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
                ))
            })
    }

    /// `POST /actions`.
    pub fn create_action(&self, body: &Value) -> Result<Value, RulesError> {
        let ty = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = format!("{ty}:{name}");
        let mut doc = self.action_doc(&ty, &name, body)?;
        if self.actions.read().contains_key(&key) {
            return Err(RulesError::AlreadyExists("bridge already exists".into()));
        }
        if !self.connectors.lock().contains_key(&connector_key(&doc)) {
            return Err(RulesError::BadRequest(
                json!({"kind": "validation_error", "reason": "connector_not_found_or_wrong_type"})
                    .to_string(),
            ));
        }
        stamp(&mut doc, None);
        self.persist(KIND_ACTIONS, &key, Some(&doc))?;
        self.install_action(&key, doc, Origin::Api)?;
        self.get_action(&key)
    }

    /// `PUT /actions/{id}`.
    pub fn update_action(&self, id: &str, body: &Value) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let old = self.actions.read().get(&key).map(|e| e.doc.clone());
        let old = old.ok_or_else(|| {
            RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            ))
        })?;
        let mut doc = self.action_doc(&ty, &name, body)?;
        if !self.connectors.lock().contains_key(&connector_key(&doc)) {
            return Err(RulesError::BadRequest(
                json!({"kind": "validation_error", "reason": "connector_not_found_or_wrong_type"})
                    .to_string(),
            ));
        }
        stamp(&mut doc, old.get("created_at").and_then(Value::as_i64));
        self.persist(KIND_ACTIONS, &key, Some(&doc))?;
        self.install_action(&key, doc, Origin::Api)?;
        self.get_action(&key)
    }

    /// `DELETE /actions/{id}`; with `also_delete_dep_actions` the references are removed from
    /// the rules first.
    pub fn delete_action(&self, id: &str, also_delete_dep_actions: bool) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        if !self.actions.read().contains_key(&key) {
            return Err(RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            )));
        }
        let users = self.rules_using(&key);
        if !users.is_empty() {
            if !also_delete_dep_actions {
                return Err(RulesError::InUse(users));
            }
            for r in users {
                let doc = self.rules.lock().get(&r).map(|e| e.doc.clone());
                if let Some(doc) = doc {
                    let kept: Vec<Value> = doc
                        .get("actions")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter(|x| x.as_str() != Some(key.as_str()))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    self.update_rule(&r, &json!({"actions": kept}))?;
                }
            }
        }
        self.persist(KIND_ACTIONS, &key, None)?;
        if let Some(e) = self.actions.write().remove(&key) {
            e.cancel.cancel();
        }
        Ok(())
    }

    /// `PUT /actions/{id}/enable/{bool}`.
    pub fn enable_action(&self, id: &str, enable: bool) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let doc = self.actions.read().get(&key).map(|e| e.doc.clone());
        let mut doc = doc.ok_or_else(|| {
            RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            ))
        })?;
        doc.insert("enable".into(), json!(enable));
        let created = doc.get("created_at").and_then(Value::as_i64);
        stamp(&mut doc, created);
        self.persist(KIND_ACTIONS, &key, Some(&doc))?;
        self.install_action(&key, doc, Origin::Api)
    }

    /// `GET /actions/{id}/metrics`.
    pub fn action_metrics(&self, id: &str) -> Result<Value, RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let a = self.actions.read();
        let e = a.get(&key).ok_or_else(|| {
            RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            ))
        })?;
        let (q, qb, inf) = e.running.as_ref().map(|r| r.gauges()).unwrap_or_default();
        let m = e.metrics.json(q, qb, inf);
        Ok(json!({"metrics": m, "node_metrics": [{"node": self.node, "metrics": m}]}))
    }

    /// `PUT /actions/{id}/metrics/reset`.
    pub fn reset_action_metrics(&self, id: &str) -> Result<(), RulesError> {
        let (ty, name) = split_id(id, "bridge")?;
        let key = format!("{ty}:{name}");
        let a = self.actions.read();
        let e = a.get(&key).ok_or_else(|| {
            RulesError::NotFound(format!(
                "Bridge lookup failed: bridge named '{name}' of type {ty} does not exist."
            ))
        })?;
        e.metrics.reset();
        Ok(())
    }

    /// `POST /actions_probe`: the action's body is valid and its connector's server answers.
    pub async fn probe_action(&self, body: &Value) -> Result<(), RulesError> {
        let ty = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("probe")
            .to_string();
        let doc = self.action_doc(&ty, &name, body)?;
        let ckey = connector_key(&doc);
        let url = self
            .connectors
            .lock()
            .get(&ckey)
            .and_then(|c| c.doc.get("url").cloned());
        let url = url.ok_or_else(|| {
            RulesError::BadRequest(
                json!({"kind": "validation_error", "reason": "connector_not_found_or_wrong_type"})
                    .to_string(),
            )
        })?;
        let url = reqwest::Url::parse(url.as_str().unwrap_or_default())
            .map_err(|e| RulesError::BadRequest(e.to_string()))?;
        crate::http::probe(&url, std::time::Duration::from_secs(5))
            .await
            .map_err(RulesError::BadRequest)
    }

    /// For Prometheus: every action's state and counters.
    pub fn all_action_metrics(&self) -> Vec<ActionStat> {
        self.actions
            .read()
            .iter()
            .map(|(id, e)| {
                let enable = e.doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
                let connected = e
                    .running
                    .as_ref()
                    .is_some_and(|r| r.status().0 == Status::Connected);
                let (queuing, _, inflight) =
                    e.running.as_ref().map(|r| r.gauges()).unwrap_or_default();
                ActionStat {
                    id: id.clone(),
                    enable,
                    connected,
                    counters: e.metrics.values(),
                    queuing,
                    inflight,
                }
            })
            .collect()
    }

    /// For Prometheus: every connector's (id, enabled, connected).
    pub fn all_connector_status(&self) -> Vec<(String, bool, bool)> {
        self.connectors
            .lock()
            .iter()
            .map(|(id, e)| {
                let enable = e.doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
                let connected = e
                    .running
                    .as_ref()
                    .is_some_and(|c| c.status().0 == Status::Connected);
                (id.clone(), enable, connected)
            })
            .collect()
    }

    /// Rule→action references (EMQX's `emqx_actions_count`).
    pub fn action_references(&self) -> usize {
        self.rules
            .lock()
            .values()
            .map(|r| {
                r.doc
                    .get("actions")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            })
            .sum()
    }

    pub(super) fn origin_of(&self, kind: &str, key: &str) -> Option<Origin> {
        match kind {
            KIND_RULES => self.rules.lock().get(key).map(|e| e.origin),
            KIND_CONNECTORS => self.connectors.lock().get(key).map(|e| e.origin),
            _ => self.actions.read().get(key).map(|e| e.origin),
        }
    }

    pub(super) fn current_doc(&self, kind: &str, key: &str) -> Option<Map<String, Value>> {
        match kind {
            KIND_RULES => self.rules.lock().get(key).map(|e| e.doc.clone()),
            KIND_CONNECTORS => self.connectors.lock().get(key).map(|e| e.doc.clone()),
            _ => self.actions.read().get(key).map(|e| e.doc.clone()),
        }
    }
}
