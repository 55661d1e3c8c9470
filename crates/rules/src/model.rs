//! The objects an operator defines, in EMQX's JSON shapes (spec §2.2, §3, §4.2, §5.1): rules,
//! `http` connectors and `http` actions, with their defaults filled and checked.
//!
//! Owns: validating a request body (an unknown key is named in the error; the read-only keys a
//! GET returns are ignored so scripts can round-trip), filling defaults, parsing EMQX's
//! duration and size texts. The stored document is the filled JSON object, so a GET answers
//! what was stored and a restart reads it back unchanged.

use serde_json::{json, Map, Value};
use std::time::Duration;
use thiserror::Error;

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// A key the object does not have.
    #[error("unknown field '{0}'")]
    UnknownField(String),
    /// A field is missing or has the wrong type or value.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(s: impl Into<String>) -> ModelError {
    ModelError::Invalid(s.into())
}

/// Keys a GET answer carries that a PUT may send back; they are dropped, not refused.
pub const READ_ONLY: &[&str] = &[
    "status",
    "status_reason",
    "node_status",
    "rules",
    "actions_ref",
    "sources",
    "metrics",
    "node_metrics",
    "from",
    "created_at",
    "last_modified_at",
    "node",
];

/// Refuses keys outside `allowed` (ignoring [`READ_ONLY`] ones and `extra_ignored`).
pub fn check_keys(
    body: &Map<String, Value>,
    allowed: &[&str],
    extra_ignored: &[&str],
) -> Result<(), ModelError> {
    for k in body.keys() {
        let k = k.as_str();
        if !allowed.contains(&k) && !READ_ONLY.contains(&k) && !extra_ignored.contains(&k) {
            return Err(ModelError::UnknownField(k.to_string()));
        }
    }
    Ok(())
}

/// Parses `"15s"`, `"100ms"`, `"1m"`, `"2h"`, `"1d"` or a number of milliseconds; `"infinity"`
/// is `None`.
pub fn duration(v: &Value) -> Result<Option<Duration>, ModelError> {
    if let Some(n) = v.as_u64() {
        return Ok(Some(Duration::from_millis(n)));
    }
    let s = v
        .as_str()
        .ok_or_else(|| invalid(format!("bad duration {v}")))?
        .trim();
    if s == "infinity" {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| invalid(format!("bad duration {s}")))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" | "" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => return Err(invalid(format!("bad duration {s}"))),
    };
    ms.map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| invalid(format!("duration too long: {s}")))
}

/// Parses `"256MB"`, `"1KB"`, `"10B"` or a number of bytes.
pub fn size(v: &Value) -> Result<u64, ModelError> {
    if let Some(n) = v.as_u64() {
        return Ok(n);
    }
    let s = v
        .as_str()
        .ok_or_else(|| invalid(format!("bad size {v}")))?
        .trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| invalid(format!("bad size {s}")))?;
    let mul = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return Err(invalid(format!("bad size {s}"))),
    };
    n.checked_mul(mul)
        .ok_or_else(|| invalid(format!("size too large: {s}")))
}

/// Names of connectors and actions (spec §1).
pub fn check_name(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() < 255
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "Invalid name format. The name must begin with a letter or number and contain only letters, numbers, '-' and '_': {name}"
        )))
    }
}

/// Fills `obj`'s missing keys from `defaults` (one level; objects merge recursively).
pub fn fill(obj: &mut Map<String, Value>, defaults: &Value) {
    if let Value::Object(d) = defaults {
        for (k, dv) in d {
            match obj.get_mut(k) {
                None => {
                    obj.insert(k.clone(), dv.clone());
                }
                Some(Value::Object(inner)) if dv.is_object() => fill(inner, dv),
                Some(_) => {}
            }
        }
    }
}

/// Headers EMQX's HTTP connector and action send by default.
pub fn default_headers() -> Value {
    json!({
        "accept": "application/json",
        "cache-control": "no-cache",
        "connection": "keep-alive",
        "content-type": "application/json",
        "keep-alive": "timeout=5"
    })
}

const RULE_KEYS: &[&str] = &[
    "id",
    "sql",
    "actions",
    "enable",
    "name",
    "description",
    "metadata",
];
const CONNECTOR_KEYS: &[&str] = &[
    "type",
    "name",
    "url",
    "headers",
    "connect_timeout",
    "pool_type",
    "pool_size",
    "enable_pipelining",
    "ssl",
    "enable",
    "description",
    "tags",
    "resource_opts",
];
const ACTION_KEYS: &[&str] = &[
    "type",
    "name",
    "connector",
    "parameters",
    "enable",
    "description",
    "tags",
    "local_topic",
    "resource_opts",
];
const HTTP_PARAMETERS: &[&str] = &[
    "path",
    "method",
    "headers",
    "body",
    "max_retries",
    "request_timeout",
];
const ACTION_RESOURCE_OPTS: &[&str] = &[
    "worker_pool_size",
    "query_mode",
    "batch_size",
    "batch_time",
    "inflight_window",
    "request_ttl",
    "request_timeout",
    "max_buffer_bytes",
    "max_queue_bytes",
    "health_check_interval",
    "buffer_mode",
    "buffer_seg_bytes",
    "resume_interval",
    "metrics_flush_interval",
    "start_after_created",
    "start_timeout",
];
const CONNECTOR_RESOURCE_OPTS: &[&str] = &[
    "health_check_interval",
    "start_after_created",
    "start_timeout",
];

fn object(v: &Value, what: &str) -> Result<Map<String, Value>, ModelError> {
    v.as_object()
        .cloned()
        .ok_or_else(|| invalid(format!("{what} must be a JSON object")))
}

/// A rule body (POST: `is_new`; PUT bodies are merged into the stored rule first), checked and
/// filled; the SQL is parsed by the caller.
pub fn rule(body: &Value) -> Result<Map<String, Value>, ModelError> {
    let mut r = object(body, "the rule")?;
    check_keys(&r, RULE_KEYS, &["id"])?;
    for k in READ_ONLY {
        r.remove(*k);
    }
    if !r.get("sql").is_some_and(Value::is_string) {
        return Err(invalid("sql: a string is required"));
    }
    fill(
        &mut r,
        &json!({"actions": [], "enable": true, "name": "", "description": ""}),
    );
    if !r.get("enable").is_some_and(Value::is_boolean) {
        return Err(invalid("enable: expected a boolean"));
    }
    for k in ["name", "description"] {
        if !r.get(k).is_some_and(Value::is_string) {
            return Err(invalid(format!("{k}: expected a string")));
        }
    }
    let actions = r
        .get("actions")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("actions: expected an array"))?
        .iter()
        .map(action_ref)
        .collect::<Result<Vec<_>, _>>()?;
    r.insert("actions".into(), Value::Array(actions));
    Ok(r)
}

/// One element of a rule's `actions`, normalised (`webhook:` → `http:`, `args` filled).
fn action_ref(v: &Value) -> Result<Value, ModelError> {
    match v {
        Value::String(s) => {
            let (ty, name) = s
                .split_once(':')
                .ok_or_else(|| invalid(format!("unknown action type: {s}")))?;
            let ty = if ty == "webhook" { "http" } else { ty };
            check_name(name)?;
            Ok(Value::String(format!("{ty}:{name}")))
        }
        Value::Object(m) => {
            check_keys(m, &["function", "args"], &[])?;
            let f = m.get("function").and_then(Value::as_str).unwrap_or("");
            match f {
                "console" => Ok(json!({"function": "console", "args": {}})),
                "republish" => {
                    let mut args = m
                        .get("args")
                        .map(|a| object(a, "args"))
                        .transpose()?
                        .unwrap_or_default();
                    check_keys(
                        &args,
                        &[
                            "topic",
                            "qos",
                            "retain",
                            "payload",
                            "mqtt_properties",
                            "user_properties",
                            "direct_dispatch",
                        ],
                        &[],
                    )?;
                    if !args.get("topic").is_some_and(Value::is_string) {
                        return Err(invalid("republish: args.topic is required"));
                    }
                    fill(
                        &mut args,
                        &json!({"qos": "${qos}", "retain": "${retain}", "payload": "${payload}",
                                "mqtt_properties": {}, "user_properties": "${user_properties}",
                                "direct_dispatch": false}),
                    );
                    Ok(json!({"function": "republish", "args": args}))
                }
                other => Err(invalid(format!("unknown action function: {other}"))),
            }
        }
        other => Err(invalid(format!("unknown action type: {other}"))),
    }
}

/// An `http` connector body, checked and filled (type and name given separately on PUT).
pub fn http_connector(body: &Value) -> Result<Map<String, Value>, ModelError> {
    let mut c = object(body, "the connector")?;
    check_keys(&c, CONNECTOR_KEYS, &[])?;
    for k in READ_ONLY {
        c.remove(*k);
    }
    c.remove("actions");
    let url = c
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("url: a string is required"))?;
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(format!("url: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("url: the scheme must be http or https"));
    }
    fill(
        &mut c,
        &json!({"enable": true, "description": "", "tags": [], "headers": default_headers(),
                "connect_timeout": "15s", "pool_type": "random", "pool_size": 8,
                "enable_pipelining": 100, "ssl": {"enable": false},
                "resource_opts": {"health_check_interval": "15s", "start_after_created": true,
                                  "start_timeout": "5s"}}),
    );
    if let Some(ro) = c.get("resource_opts").and_then(Value::as_object) {
        check_keys(ro, CONNECTOR_RESOURCE_OPTS, &[])?;
    }
    duration(&c["connect_timeout"])?;
    duration(&c["resource_opts"]["health_check_interval"])?;
    if !c["pool_size"].as_u64().is_some_and(|n| n >= 1) {
        return Err(invalid("pool_size: an integer >= 1"));
    }
    if !c["headers"].is_object() {
        return Err(invalid("headers: expected an object"));
    }
    Ok(c)
}

/// An `http` action body, checked and filled.
pub fn http_action(body: &Value) -> Result<Map<String, Value>, ModelError> {
    let mut a = object(body, "the action")?;
    check_keys(&a, ACTION_KEYS, &[])?;
    for k in READ_ONLY {
        a.remove(*k);
    }
    if !a.get("connector").is_some_and(Value::is_string) {
        return Err(invalid("connector: a connector name is required"));
    }
    let params = a
        .get("parameters")
        .ok_or_else(|| invalid("parameters: required"))
        .and_then(|p| object(p, "parameters"))?;
    check_keys(&params, HTTP_PARAMETERS, &[])?;
    fill(
        &mut a,
        &json!({"enable": true, "description": "", "tags": [],
                "parameters": {"method": "post", "headers": default_headers(), "max_retries": 2},
                "resource_opts": {"worker_pool_size": 16, "query_mode": "async",
                                  "inflight_window": 100, "request_ttl": "45s",
                                  "max_buffer_bytes": "256MB", "health_check_interval": "15s"}}),
    );
    let p = &a["parameters"];
    let method = p["method"].as_str().unwrap_or("");
    if !matches!(method, "post" | "put" | "get" | "delete") {
        return Err(invalid("parameters.method: one of post, put, get, delete"));
    }
    if p["max_retries"].as_u64().is_none() {
        return Err(invalid("parameters.max_retries: an integer >= 0"));
    }
    let ro = a["resource_opts"]
        .as_object()
        .ok_or_else(|| invalid("resource_opts: expected an object"))?;
    check_keys(ro, ACTION_RESOURCE_OPTS, &[])?;
    let ro = Value::Object(ro.clone());
    duration(ro.get("request_ttl").unwrap_or(&json!("45s")))?;
    duration(ro.get("health_check_interval").unwrap_or(&json!("15s")))?;
    size(ro.get("max_buffer_bytes").unwrap_or(&json!("256MB")))?;
    if !ro["inflight_window"].as_u64().is_some_and(|n| n >= 1) {
        return Err(invalid("resource_opts.inflight_window: an integer >= 1"));
    }
    Ok(a)
}

/// Current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_sizes_names() {
        assert_eq!(duration(&json!("15s")), Ok(Some(Duration::from_secs(15))));
        assert_eq!(
            duration(&json!("20ms")),
            Ok(Some(Duration::from_millis(20)))
        );
        assert_eq!(duration(&json!("infinity")), Ok(None));
        assert!(duration(&json!("5 parsecs")).is_err());
        assert_eq!(size(&json!("256MB")), Ok(256 << 20));
        assert_eq!(size(&json!(10)), Ok(10));
        assert!(check_name("hook_1").is_ok());
        assert!(check_name("_x").is_err());
        assert!(check_name("a:b").is_err());
    }

    #[test]
    fn unknown_keys_are_named_read_only_ones_ignored() {
        let e = rule(&json!({"sql": "SELECT * FROM \"t\"", "bogus": 1}));
        assert_eq!(e, Err(ModelError::UnknownField("bogus".into())));
        let r = rule(&json!({"sql": "x", "status": "connected", "from": ["t"]}));
        assert!(r.is_ok_and(|r| !r.contains_key("status") && r["enable"] == json!(true)));
        let e = http_action(&json!({"connector": "c", "parameters": {"methd": "post"}}));
        assert_eq!(e, Err(ModelError::UnknownField("methd".into())));
    }

    #[test]
    fn action_refs_normalise() {
        let r = rule(&json!({"sql": "x", "actions": ["webhook:h",
            {"function": "republish", "args": {"topic": "a/${clientid}"}}, {"function": "console"}]}));
        let r = r.unwrap_or_default();
        assert_eq!(r["actions"][0], json!("http:h"));
        assert_eq!(r["actions"][1]["args"]["qos"], json!("${qos}"));
        assert_eq!(r["actions"][2], json!({"function": "console", "args": {}}));
        assert!(rule(&json!({"sql": "x", "actions": [{"function": "mod:fun"}]})).is_err());
        assert!(rule(&json!({"sql": "x", "actions": ["nocolon"]})).is_err());
    }
}
