//! The rule operations of the REST API: create, read, merge-update, delete, metrics, and the
//! dry run (`rule_test`). Validation is `crate::model`'s; the SQL is parsed before anything is
//! stored.

use super::*;

impl RuleEngine {
    pub(super) fn install_rule(
        &self,
        id: &str,
        doc: Map<String, Value>,
        origin: Origin,
    ) -> Result<(), RulesError> {
        let text = doc.get("sql").and_then(Value::as_str).unwrap_or_default();
        let parsed = sql::parse(text)?;
        let enable = doc.get("enable").and_then(Value::as_bool).unwrap_or(true);
        let mut filters = Vec::new();
        let mut events = Vec::new();
        for f in &parsed.from {
            if f.starts_with("$events/") {
                if !columns::EVENTS.iter().any(|(t, _)| t == f) {
                    return Err(RulesError::BadRequest(format!(
                        "Bad Arguments: unsupported event topic {f}"
                    )));
                }
                events.push(f.clone());
            } else {
                filters.push(f.clone());
            }
        }
        let actions = doc
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(action_ref).collect())
            .unwrap_or_default();
        let mut rules = self.rules.lock();
        // Metrics survive an update, but disabling a rule resets them (EMQX).
        let metrics = match rules.get(id) {
            Some(old) if enable => old.installed.metrics.clone(),
            _ => Arc::new(RuleMetrics::default()),
        };
        let columns = parsed.columns_used();
        let installed = Arc::new(Installed {
            id: Arc::from(id),
            columns,
            sql: parsed,
            filters,
            events,
            enable,
            actions,
            metrics,
        });
        rules.insert(
            id.to_string(),
            RuleEntry {
                doc,
                installed,
                origin,
            },
        );
        Ok(())
    }

    /// The rule as the API shows it.
    pub(super) fn rule_json(doc: &Map<String, Value>) -> Value {
        let mut v = doc.clone();
        let from = doc
            .get("sql")
            .and_then(Value::as_str)
            .and_then(|s| sql::parse(s).ok())
            .map(|r| r.from)
            .unwrap_or_default();
        v.insert("from".into(), json!(from));
        for k in ["created_at", "last_modified_at"] {
            if let Some(ms) = doc.get(k).and_then(Value::as_i64) {
                v.insert(k.into(), json!(rfc3339_ms(ms)));
            }
        }
        Value::Object(v)
    }

    /// Every rule, ordered by id.
    pub fn list_rules(&self) -> Vec<Value> {
        self.rules
            .lock()
            .values()
            .map(|e| Self::rule_json(&e.doc))
            .collect()
    }

    /// One rule.
    pub fn get_rule(&self, id: &str) -> Option<Value> {
        self.rules.lock().get(id).map(|e| Self::rule_json(&e.doc))
    }

    pub(super) fn persist(
        &self,
        kind: &str,
        key: &str,
        doc: Option<&Map<String, Value>>,
    ) -> Result<(), RulesError> {
        if let Some(state) = &self.state {
            match doc {
                Some(d) => state.put(kind, key, &Value::Object(d.clone()))?,
                None => {
                    state.delete(kind, key)?;
                }
            }
        }
        Ok(())
    }

    /// `POST /rules`.
    pub fn create_rule(&self, body: &Value) -> Result<Value, RulesError> {
        let id = match body.get("id") {
            None => format!("{:08x}", rand::random::<u32>()),
            Some(Value::String(s)) if s.is_empty() => {
                return Err(RulesError::BadRequest(
                    "empty rule id is not allowed".into(),
                ))
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(RulesError::BadRequest("rule id must be a string".into())),
        };
        if self.rules.lock().contains_key(&id) {
            return Err(RulesError::BadRequest("rule id already exists".into()));
        }
        let mut doc = model::rule(body)?;
        sql::parse(doc.get("sql").and_then(Value::as_str).unwrap_or_default())?;
        doc.insert("id".into(), json!(id));
        stamp(&mut doc, None);
        self.warn_missing_actions(&id, &doc);
        self.persist(KIND_RULES, &id, Some(&doc))?;
        self.install_rule(&id, doc, Origin::Api)?;
        self.refresh();
        Ok(self.get_rule(&id).unwrap_or(Value::Null))
    }

    pub(super) fn warn_missing_actions(&self, id: &str, doc: &Map<String, Value>) {
        let actions = self.actions.read();
        for a in doc
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = a.as_str() {
                if !actions.contains_key(name) {
                    // EMQX accepts it; the reference works once the action exists.
                    tracing::warn!(
                        rule = id,
                        action = name,
                        "action_references_nonexistent_bridges"
                    );
                }
            }
        }
    }

    /// `PUT /rules/{id}`: the body is merged shallowly into the stored rule.
    pub fn update_rule(&self, id: &str, body: &Value) -> Result<Value, RulesError> {
        let old = self
            .rules
            .lock()
            .get(id)
            .map(|e| e.doc.clone())
            .ok_or_else(|| RulesError::NotFound("Rule Id Not Found".into()))?;
        let patch = body
            .as_object()
            .ok_or_else(|| RulesError::BadRequest("the rule must be a JSON object".into()))?;
        model::check_keys(
            patch,
            &[
                "sql",
                "actions",
                "enable",
                "name",
                "description",
                "metadata",
            ],
            &["id"],
        )?;
        let mut merged = old.clone();
        for (k, v) in patch {
            if k != "id" && !model::READ_ONLY.contains(&k.as_str()) {
                merged.insert(k.clone(), v.clone());
            }
        }
        let mut doc = model::rule(&Value::Object(merged))?;
        sql::parse(doc.get("sql").and_then(Value::as_str).unwrap_or_default())?;
        doc.insert("id".into(), json!(id));
        stamp(&mut doc, old.get("created_at").and_then(Value::as_i64));
        self.warn_missing_actions(id, &doc);
        self.persist(KIND_RULES, id, Some(&doc))?;
        self.install_rule(id, doc, Origin::Api)?;
        self.refresh();
        Ok(self.get_rule(id).unwrap_or(Value::Null))
    }

    /// `DELETE /rules/{id}`.
    pub fn delete_rule(&self, id: &str) -> Result<(), RulesError> {
        if !self.rules.lock().contains_key(id) {
            return Err(RulesError::NotFound("Rule Id Not Found".into()));
        }
        self.persist(KIND_RULES, id, None)?;
        self.rules.lock().remove(id);
        self.refresh();
        Ok(())
    }

    /// `GET /rules/{id}/metrics`.
    pub fn rule_metrics(&self, id: &str) -> Option<Value> {
        let rules = self.rules.lock();
        let m = rules.get(id)?.installed.metrics.json();
        Some(json!({"id": id, "metrics": m,
                    "node_metrics": [{"node": self.node, "metrics": m}]}))
    }

    /// `PUT /rules/{id}/metrics/reset`.
    pub fn reset_rule_metrics(&self, id: &str) -> bool {
        match self.rules.lock().get(id) {
            Some(e) => {
                e.installed.metrics.reset();
                true
            }
            None => false,
        }
    }

    /// Counters of every rule.
    pub fn all_rule_metrics(&self) -> Vec<RuleStat> {
        self.rules
            .lock()
            .iter()
            .map(|(id, e)| RuleStat {
                id: id.clone(),
                enable: e.installed.enable,
                counters: e.installed.metrics.values(),
            })
            .collect()
    }

    /// `POST /rule_test`: runs `sql` on `context` (missing columns filled with examples;
    /// `event_type` defaults to `message_publish`). Nothing is published, no action runs.
    pub fn test_sql(&self, sql_text: &str, context: &Value) -> Result<Value, TestError> {
        let rule = sql::parse(sql_text)?;
        let ctx = context.as_object().cloned().unwrap_or_default();
        let event_type = ctx
            .get("event_type")
            .and_then(Value::as_str)
            .unwrap_or("message_publish")
            .to_string();
        let mut cols = columns::test_columns(&event_type, &self.node);
        for (k, v) in ctx {
            if k != "event_type" && k != "event_topic" {
                cols.insert(k, v);
            }
        }
        let input = match columns::event_topic(&event_type) {
            Some(t) => context
                .get("event_topic")
                .and_then(Value::as_str)
                .unwrap_or(t)
                .to_string(),
            None => cols
                .get("topic")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        };
        let matched = rule.from.iter().any(|f| {
            if f.starts_with("$events/") {
                *f == input
            } else {
                crate::eval::topic_match(&input, f)
            }
        });
        if !matched {
            return Err(TestError::NotMatch);
        }
        let foreach = matches!(rule.kind, ast::RuleKind::Foreach { .. });
        match run(&rule, &cols)? {
            Outcome::NoResult if foreach => Ok(json!([])),
            Outcome::NoResult => Err(TestError::NotMatch),
            Outcome::Outputs(o) if foreach => Ok(Value::Array(o)),
            Outcome::Outputs(mut o) => Ok(o.pop().unwrap_or(Value::Null)),
        }
    }
}
