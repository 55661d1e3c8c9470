//! One authenticator's configuration, as `[[authentication.authenticators]]` tables and the
//! REST bodies of `/api/v5/authentication` give it (shared/specs/emqx-auth-api.md §2.1, §2.4,
//! §3).
//!
//! Owns: parsing a JSON object into a typed [`Spec`] (unknown keys are errors), the id
//! (`mechanism:backend`, or `jwt`), the normalised form with defaults filled that GET answers,
//! and masking secrets (`"******"`) in answers and restoring them from a PUT that sends the mask
//! back.

use crate::backend::builtin::BuiltInConfig;
use crate::backend::http::HttpConfig;
use crate::backend::jwt::JwtConfig;
use crate::backend::postgres::PgConfig;
use serde_json::{Map, Value};

/// What GET answers instead of a secret.
pub const MASK: &str = "******";

/// Keys whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "password",
    "secret",
    "token",
    "jwt",
    "private_key",
    "secret_key",
];
/// Header names whose values are secrets.
const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization"];

/// The id of the built-in database.
pub const BUILT_IN_ID: &str = "password_based:built_in_database";

/// The typed configuration of one back-end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    BuiltIn(BuiltInConfig),
    Http(HttpConfig),
    Jwt(Box<JwtConfig>),
    Postgres(Box<PgConfig>),
}

/// One authenticator's configuration.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    pub(crate) id: String,
    pub(crate) enable: bool,
    pub(crate) kind: Kind,
    /// The normalised JSON (defaults filled, no `id`), as stored and answered (masked).
    pub(crate) json: Value,
}

fn typed<T: serde::de::DeserializeOwned>(rest: Map<String, Value>) -> Result<T, String> {
    serde_json::from_value(Value::Object(rest)).map_err(|e| e.to_string())
}

fn untyped<T: serde::Serialize>(t: &T) -> Result<Map<String, Value>, String> {
    match serde_json::to_value(t) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("not an object".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The id a config object names, without parsing the rest.
pub(crate) fn id_of(v: &Value) -> Option<String> {
    let mechanism = v.get("mechanism")?.as_str()?;
    Some(match v.get("backend").and_then(Value::as_str) {
        Some(b) => format!("{mechanism}:{b}"),
        None => mechanism.to_owned(),
    })
}

impl Spec {
    /// Parses one authenticator object.
    pub(crate) fn parse(v: &Value) -> Result<Spec, String> {
        let Value::Object(obj) = v else {
            return Err("an authenticator is an object".into());
        };
        let mut rest = obj.clone();
        let mechanism = match rest.remove("mechanism") {
            Some(Value::String(m)) => m,
            _ => return Err("mechanism is required".into()),
        };
        let backend = match rest.remove("backend") {
            Some(Value::String(b)) => Some(b),
            None => None,
            Some(_) => return Err("backend must be a string".into()),
        };
        let enable = match rest.remove("enable") {
            None => true,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err("enable must be true or false".into()),
        };
        let id = match &backend {
            Some(b) => format!("{mechanism}:{b}"),
            None => mechanism.clone(),
        };
        if let Some(given) = rest.remove("id") {
            if given.as_str() != Some(id.as_str()) {
                return Err(format!(
                    "id {given} does not match mechanism and backend ({id})"
                ));
            }
        }
        let ctx = |e: String| format!("{id}: {e}");
        let (kind, fields) = match id.as_str() {
            BUILT_IN_ID => {
                let c: BuiltInConfig = typed(rest).map_err(ctx)?;
                let m = untyped(&c).map_err(ctx)?;
                (Kind::BuiltIn(c), m)
            }
            "password_based:http" => {
                let mut c: HttpConfig = typed(rest).map_err(ctx)?;
                c.normalize();
                let m = untyped(&c).map_err(ctx)?;
                (Kind::Http(c), m)
            }
            "jwt" => {
                let c: JwtConfig = typed(rest).map_err(ctx)?;
                let m = untyped(&c).map_err(ctx)?;
                (Kind::Jwt(Box::new(c)), m)
            }
            "password_based:postgresql" => {
                let c: PgConfig = typed(rest).map_err(ctx)?;
                let m = untyped(&c).map_err(ctx)?;
                (Kind::Postgres(Box::new(c)), m)
            }
            other => {
                return Err(format!(
                "unknown authenticator {other:?}: password_based with backend built_in_database, \
                     http or postgresql, or jwt"
            ))
            }
        };
        let mut json = Map::new();
        json.insert("mechanism".into(), Value::String(mechanism));
        if let Some(b) = backend {
            json.insert("backend".into(), Value::String(b));
        }
        json.insert("enable".into(), Value::Bool(enable));
        json.extend(fields);
        Ok(Spec {
            id,
            enable,
            kind,
            json: Value::Object(json),
        })
    }

    /// The answer of GET: the config with `id` and secrets masked.
    pub(crate) fn shown(&self) -> Value {
        let mut v = self.json.clone();
        mask(&mut v);
        if let Value::Object(m) = &mut v {
            m.insert("id".into(), Value::String(self.id.clone()));
        }
        v
    }
}

/// Replaces secret values by [`MASK`], recursively.
pub(crate) fn mask(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SECRET_KEYS.contains(&lower.as_str()) && val.is_string() {
                    *val = Value::String(MASK.into());
                } else if lower == "headers" {
                    if let Value::Object(h) = val {
                        for (name, hv) in h.iter_mut() {
                            if SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                                *hv = Value::String(MASK.into());
                            }
                        }
                    }
                } else {
                    mask(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask),
        _ => {}
    }
}

/// Puts back, wherever `new` says [`MASK`], the value `old` has at the same place (a
/// GET-edit-PUT round trip keeps the secret).
pub(crate) fn unmask(new: &mut Value, old: &Value) {
    match (new, old) {
        (Value::Object(n), Value::Object(o)) => {
            for (k, v) in n.iter_mut() {
                match (v.as_str(), o.get(k)) {
                    (Some(MASK), Some(old_v)) => *v = old_v.clone(),
                    (_, Some(old_v)) => unmask(v, old_v),
                    _ => {}
                }
            }
        }
        (Value::Array(n), Value::Array(o)) => {
            for (nv, ov) in n.iter_mut().zip(o) {
                unmask(nv, ov);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_defaults_and_masks() {
        let s = Spec::parse(&json!({"mechanism": "password_based", "backend": "http",
            "method": "post", "url": "http://127.0.0.1:8080/auth",
            "headers": {"Authorization": "Bearer x"}}))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.id, "password_based:http");
        assert_eq!(s.json["request_timeout"], json!("5s"));
        assert_eq!(s.json["headers"]["authorization"], json!("Bearer x"));
        let shown = s.shown();
        assert_eq!(shown["headers"]["authorization"], json!(MASK));
        assert_eq!(shown["id"], json!("password_based:http"));
        let mut back = shown.clone();
        unmask(&mut back, &s.json);
        assert_eq!(back["headers"]["authorization"], json!("Bearer x"));

        let j = Spec::parse(&json!({"mechanism": "jwt", "algorithm": "hmac-based", "secret": "s"}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(j.id, "jwt");
        assert_eq!(j.shown()["secret"], json!(MASK));
        assert_eq!(j.json["acl_claim_name"], json!("acl"));
    }

    #[test]
    fn errors() {
        for bad in [
            json!({"backend": "http"}),
            json!({"mechanism": "password_based", "backend": "mongodb"}),
            json!({"mechanism": "password_based", "backend": "http", "method": "get", "url": "http://x/", "typo": 1}),
            json!({"mechanism": "jwt", "id": "password_based:http"}),
            json!("x"),
        ] {
            assert!(Spec::parse(&bad).is_err(), "{bad}");
        }
    }
}
