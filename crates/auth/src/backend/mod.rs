//! The authenticators a chain is made of: the built-in database, HTTP, JWT and PostgreSQL.
//!
//! Owns: the [`Backend`] trait (one asynchronous check, an optional synchronous one for
//! back-ends that need no network), the [`Outcome`] each answers (ok / error / ignore, shared/
//! specs/emqx-auth-api.md §1.1, §1.2) and the settings shared by the network back-ends
//! (durations, TLS). Invariants: a back-end never panics on what a client or a server sends; an
//! unreachable, slow or confused server is `ignore`, never a hang: every network call has a
//! timeout.

pub(crate) mod builtin;
pub(crate) mod http;
pub(crate) mod jwt;
pub(crate) mod postgres;

use crate::acl_list::ClientRules;
use crate::authn::{Authenticator, Credentials, DenyReason};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A boxed future, so [`Backend`] stays object-safe.
pub(crate) type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an accepted client brings from its authenticator.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grant {
    /// Bypasses every authorization check.
    pub superuser: bool,
    /// Rules checked before the authorization sources.
    pub acl: Option<Arc<ClientRules>>,
    /// When the credentials stop being valid (HTTP `expire_at`, JWT `exp`).
    pub expire_at: Option<SystemTime>,
    /// Attributes the authenticator gave the client (HTTP reply's or JWT's `client_attrs`),
    /// usable as `${client_attrs.NAME}` in the HTTP authorization source's templates.
    pub client_attrs: Option<Arc<ClientAttrs>>,
}

/// A client's attributes: name → text.
pub type ClientAttrs = std::collections::BTreeMap<String, String>;

/// Reads a `client_attrs` value: an object whose string, number and boolean values are kept as
/// text (anything else is skipped); `None` when absent, not an object or empty.
pub(crate) fn client_attrs(v: Option<&serde_json::Value>) -> Option<Arc<ClientAttrs>> {
    use serde_json::Value;
    let Some(Value::Object(m)) = v else {
        return None;
    };
    let attrs: ClientAttrs = m
        .iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Number(n) => Some((k.clone(), n.to_string())),
            Value::Bool(b) => Some((k.clone(), b.to_string())),
            _ => None,
        })
        .collect();
    (!attrs.is_empty()).then(|| Arc::new(attrs))
}

/// One authenticator's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// Accepted: stop here.
    Ok(Grant),
    /// Refused: stop here.
    Error(DenyReason),
    /// No opinion (unknown user, unreachable server, token not ours): ask the next one.
    Ignore(&'static str),
}

impl Outcome {
    /// Whether a network back-end's answer may be cached (a server's real answer, not the
    /// absence of one).
    pub(crate) fn cacheable(&self) -> bool {
        !matches!(self, Outcome::Ignore(_))
    }
}

/// What a back-end is asked with.
#[derive(Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) creds: Credentials<'a>,
    /// The built-in user database (used by the built-in back-end only).
    pub(crate) builtin: &'a Arc<Authenticator>,
}

/// Status of a back-end's external resource (`GET /authentication/{id}/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// Last call reached the server (or there is none).
    Connected,
    /// Last call could not reach it.
    Disconnected,
    /// Not tried yet.
    Connecting,
}

impl Health {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Health::Connected => "connected",
            Health::Disconnected => "disconnected",
            Health::Connecting => "connecting",
        }
    }
}

/// One authenticator.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// The full check, awaited on the client's own task.
    fn check<'a>(&'a self, req: Request<'a>) -> BoxFut<'a, Outcome>;
    /// The check without waiting for a network (`None`: this back-end needs one).
    fn check_now(&self, req: Request<'_>) -> Option<Outcome>;
    /// Whether answers come from a server (and may be cached by the chain).
    fn is_network(&self) -> bool {
        false
    }
    /// The external resource's state.
    fn health(&self) -> Health {
        Health::Connected
    }
    /// Checks that ran into the back-end's timeout.
    fn timeouts(&self) -> u64 {
        0
    }
}

/// A duration as EMQX writes it: `"5s"`, `"500ms"`, `"1m"`, `"1h"`, or a number of
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub(crate) Duration);

impl Dur {
    pub(crate) const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
}

/// Parses `"5s"`, `"500ms"`, `"1m"`, `"2h"`, `"1d"`.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    }?;
    Some(Duration::from_millis(ms))
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(ms) => Ok(Dur(Duration::from_millis(ms))),
            Raw::Text(t) => parse_duration(&t).map(Dur).ok_or_else(|| {
                serde::de::Error::custom(format!("{t:?} is not a duration like \"5s\""))
            }),
        }
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.0.as_millis();
        if (ms / 1000) * 1000 == ms {
            s.serialize_str(&format!("{}s", ms / 1000))
        } else {
            s.serialize_str(&format!("{ms}ms"))
        }
    }
}

/// `ssl` of a network back-end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ssl {
    /// Use TLS.
    #[serde(default)]
    pub(crate) enable: bool,
    /// `verify_peer` (default) or `verify_none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) verify: Option<String>,
    /// PEM file of the CAs to trust (default: the web PKI roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cacertfile: Option<String>,
    /// Client certificate (PEM), with `keyfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) certfile: Option<String>,
    /// Client key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) keyfile: Option<String>,
    /// The server name to check (default: the URL's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) server_name_indication: Option<String>,
}

impl Ssl {
    pub(crate) fn verify_none(&self) -> bool {
        self.verify.as_deref() == Some("verify_none")
    }

    /// Applies these settings to an HTTP client.
    pub(crate) fn apply(
        &self,
        mut b: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, String> {
        if !self.enable {
            return Ok(b);
        }
        if let Some(v) = self.verify.as_deref() {
            if v != "verify_peer" && v != "verify_none" {
                return Err(format!(
                    "ssl.verify must be verify_peer or verify_none, not {v:?}"
                ));
            }
        }
        if self.verify_none() {
            b = b.danger_accept_invalid_certs(true);
        }
        if let Some(path) = &self.cacertfile {
            let pem = std::fs::read(path).map_err(|e| format!("ssl.cacertfile {path}: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ssl.cacertfile {path}: {e}"))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        match (&self.certfile, &self.keyfile) {
            (Some(cert), Some(key)) => {
                let mut pem =
                    std::fs::read(cert).map_err(|e| format!("ssl.certfile {cert}: {e}"))?;
                pem.extend(std::fs::read(key).map_err(|e| format!("ssl.keyfile {key}: {e}"))?);
                let id = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| format!("ssl.certfile/keyfile: {e}"))?;
                b = b.identity(id);
            }
            (None, None) => {}
            _ => return Err("ssl.certfile and ssl.keyfile go together".into()),
        }
        Ok(b)
    }
}

/// Reads EMQX's loose booleans (`true`, `"true"`, `"1"`, integers ≥ 1; else false).
pub(crate) fn loose_bool(v: Option<&serde_json::Value>) -> bool {
    use serde_json::Value;
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().is_some_and(|i| i >= 1),
        Some(Value::String(s)) => {
            matches!(s.as_str(), "true" | "1") || s.parse::<i64>().is_ok_and(|i| i >= 1)
        }
        _ => false,
    }
}
