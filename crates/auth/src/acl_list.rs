//! The `acl` a client brings from its authentication (an HTTP reply's `acl` field, a JWT's
//! `acl` claim): rules checked before every authorization source (shared/specs/emqx-auth-api.md
//! §1.3, §9.1, §9.5).
//!
//! Owns: parsing the JSON rule list (`permission`, `action`, `topic`/`topics`, `qos`, `retain`)
//! and the JWT's older map form (`{"pub": [...], "sub": [...], "all": [...]}`), and deciding
//! with them. Invariants: an invalid rule makes the whole list invalid (the authenticator then
//! refuses the client, as EMQX); in the map form anything not listed is denied, whereas a list
//! without a matching rule defers to the sources; once `expire_at` has passed every operation is
//! denied.

use crate::authz::{Action, ActionKind, ClientCtx, Permission, Rule};
use serde_json::Value;
use std::time::SystemTime;

/// A client's own rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRules {
    rules: Vec<Rule>,
    /// The map form: what no rule allows is denied.
    deny_rest: bool,
    /// When the rules (and the client's credentials) stop being valid.
    expire_at: Option<SystemTime>,
}

/// What the client's own rules say about one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Own {
    /// A rule decided.
    Decided(Permission),
    /// No rule matched: ask the sources.
    NoMatch,
}

impl ClientRules {
    /// Parses an `acl` value: a list of rule objects, or (`map_form_ok`, JWT claims only) the
    /// map form.
    pub fn parse(v: &Value, map_form_ok: bool) -> Result<ClientRules, String> {
        match v {
            Value::Array(items) => Ok(ClientRules {
                rules: items.iter().map(rule).collect::<Result<_, _>>()?,
                deny_rest: false,
                expire_at: None,
            }),
            Value::Object(map) if map_form_ok => {
                let mut rules = Vec::new();
                for (key, filters) in map {
                    let action = match key.as_str() {
                        "pub" | "publish" => ActionKind::Publish,
                        "sub" | "subscribe" => ActionKind::Subscribe,
                        "all" => ActionKind::All,
                        other => return Err(format!("acl: unknown key {other:?}")),
                    };
                    let topics = strings(filters).ok_or("acl: expected a list of topics")?;
                    if !topics.is_empty() {
                        rules.push(Rule::for_client(
                            Permission::Allow,
                            action,
                            topics,
                            None,
                            None,
                        )?);
                    }
                }
                Ok(ClientRules {
                    rules,
                    deny_rest: true,
                    expire_at: None,
                })
            }
            _ => Err("acl: expected a list of rules".into()),
        }
    }

    /// These rules, valid until `at`.
    pub fn expiring(mut self, at: Option<SystemTime>) -> Self {
        self.expire_at = at;
        self
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides `action` for `ctx` at `now`.
    pub(crate) fn decide(&self, ctx: &ClientCtx, action: &Action<'_>, now: SystemTime) -> Own {
        if self.expire_at.is_some_and(|at| now >= at) {
            return Own::Decided(Permission::Deny);
        }
        if let Some(p) = self.rules.iter().find_map(|r| r.decide(ctx, action)) {
            return Own::Decided(p);
        }
        if self.deny_rest {
            Own::Decided(Permission::Deny)
        } else {
            Own::NoMatch
        }
    }
}

fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|t| t.as_str().map(str::to_owned)).collect(),
        _ => None,
    }
}

/// One rule object of §9.5.
pub(crate) fn rule(v: &Value) -> Result<Rule, String> {
    let o = v.as_object().ok_or("acl: a rule must be an object")?;
    let permission = match o.get("permission").and_then(Value::as_str) {
        Some("allow") => Permission::Allow,
        Some("deny") => Permission::Deny,
        _ => return Err("acl: permission must be allow or deny".into()),
    };
    let action = match o.get("action").and_then(Value::as_str) {
        Some("publish" | "pub") => ActionKind::Publish,
        Some("subscribe" | "sub") => ActionKind::Subscribe,
        Some("all") => ActionKind::All,
        _ => return Err("acl: action must be publish, subscribe or all".into()),
    };
    let topics = match (o.get("topic"), o.get("topics")) {
        (Some(Value::String(t)), None) => vec![t.clone()],
        (None, Some(list)) => strings(list).ok_or("acl: topics must be a list of strings")?,
        _ => return Err("acl: give topic or topics".into()),
    };
    let qos = match o.get("qos") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(vec![qos_of(n.as_u64())?]),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|q| qos_of(q.as_u64()))
                .collect::<Result<_, _>>()?,
        ),
        Some(Value::String(s)) => Some(
            s.split(',')
                .map(|q| qos_of(q.trim().parse().ok()))
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err("acl: bad qos".into()),
    };
    let retain = match o.get("retain") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Some(true),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Some(false),
        Some(Value::String(s)) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            "all" => None,
            _ => return Err("acl: bad retain".into()),
        },
        Some(_) => return Err("acl: bad retain".into()),
    };
    Rule::for_client(permission, action, topics, qos, retain)
}

fn qos_of(q: Option<u64>) -> Result<u8, String> {
    match q {
        Some(q @ 0..=2) => Ok(q as u8),
        _ => Err("acl: qos must be 0, 1 or 2".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_core::QoS;

    fn ctx() -> ClientCtx {
        ClientCtx {
            client_id: "dev-1".into(),
            username: Some("u".into()),
            peer_ip: None,
            superuser: false,
        }
    }

    fn publish(topic: &str) -> Action<'_> {
        Action::Publish {
            topic,
            qos: QoS::AtLeastOnce,
            retain: false,
        }
    }

    #[test]
    fn list_form_first_match_then_sources() {
        let r = ClientRules::parse(
            &json!([
                {"permission": "allow", "action": "publish", "topic": "dev/${clientid}/#"},
                {"permission": "deny", "action": "all", "topics": ["secret/#"], "qos": "0,1", "retain": "all"}
            ]),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let now = SystemTime::now();
        assert_eq!(
            r.decide(&ctx(), &publish("dev/dev-1/t"), now),
            Own::Decided(Permission::Allow)
        );
        assert_eq!(
            r.decide(&ctx(), &publish("secret/x"), now),
            Own::Decided(Permission::Deny)
        );
        assert_eq!(r.decide(&ctx(), &publish("other"), now), Own::NoMatch);
        let expired = r.expiring(Some(now - std::time::Duration::from_secs(1)));
        assert_eq!(
            expired.decide(&ctx(), &publish("dev/dev-1/t"), now),
            Own::Decided(Permission::Deny)
        );
    }

    #[test]
    fn map_form_denies_the_rest() {
        let r = ClientRules::parse(&json!({"pub": ["a/#"], "sub": []}), true)
            .unwrap_or_else(|e| panic!("{e}"));
        let now = SystemTime::now();
        assert_eq!(
            r.decide(&ctx(), &publish("a/b"), now),
            Own::Decided(Permission::Allow)
        );
        assert_eq!(
            r.decide(&ctx(), &publish("b"), now),
            Own::Decided(Permission::Deny)
        );
        assert!(ClientRules::parse(&json!({"pub": ["a"]}), false).is_err());
    }

    #[test]
    fn invalid_rules_are_refused() {
        for bad in [
            json!([{"permission": "maybe", "action": "all", "topic": "#"}]),
            json!([{"permission": "allow", "action": "all"}]),
            json!([{"permission": "allow", "action": "all", "topic": "#", "qos": 3}]),
            json!("x"),
        ] {
            assert!(ClientRules::parse(&bad, false).is_err(), "{bad}");
        }
    }
}
