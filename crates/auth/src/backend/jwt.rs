//! `jwt`: the client's password (or username) is a JSON Web Token (shared/specs/
//! emqx-auth-api.md §3.3, §6).
//!
//! Keys: an HMAC secret (optionally base64), a PEM public key (RSA or EC, text or a file path),
//! or a JWKS endpoint fetched at creation and every `refresh_interval` seconds by a task of its
//! own, keeping the last good key set when a fetch fails. Checks: the signature with the
//! algorithm the header names, which must fit the key (no `none`, no HMAC with a public key);
//! `exp` and `nbf` (numbers or numeric strings); `verify_claims` templates; the `acl` claim.
//!
//! Invariants: a token no key verifies is ignore (as EMQX: the chain's end decides); a verified
//! token with a bad claim is `bad_username_or_password`; no token (empty) is ignore; tokens are
//! never logged. Verification is local (no network on the check), so it also runs on
//! synchronous paths.

use super::{loose_bool, Backend, BoxFut, Health, Outcome, Request, Ssl};
use crate::acl_list::ClientRules;
use crate::authn::DenyReason;
use crate::template::{Template, Vars, JWT_CLAIM_VARS};
use crate::Grant;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum KeyKind {
    HmacBased,
    PublicKey,
}

/// `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum From {
    #[default]
    Password,
    Username,
}

/// `verify_claims`: a map, or EMQX's list of `{name, value}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Claims {
    Map(BTreeMap<String, String>),
    List(Vec<NamedClaim>),
}

impl Default for Claims {
    fn default() -> Self {
        Claims::Map(BTreeMap::new())
    }
}

/// One `{name, value}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamedClaim {
    name: String,
    value: String,
}

fn refresh() -> u64 {
    300
}
fn acl_claim() -> String {
    "acl".into()
}
fn yes() -> bool {
    true
}
fn pool() -> u32 {
    8
}

/// The body fields of a JWT authenticator (the three shapes of §3.3 in one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtConfig {
    #[serde(default)]
    pub(crate) use_jwks: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) algorithm: Option<KeyKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<String>,
    #[serde(default)]
    pub(crate) secret_base64_encoded: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) endpoint: Option<String>,
    #[serde(default = "refresh")]
    pub(crate) refresh_interval: u64,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    #[serde(default = "pool")]
    pub(crate) pool_size: u32,
    #[serde(default)]
    pub(crate) ssl: Ssl,
    #[serde(default)]
    pub(crate) from: From,
    #[serde(default)]
    pub(crate) verify_claims: Claims,
    #[serde(default = "acl_claim")]
    pub(crate) acl_claim_name: String,
    #[serde(default = "yes")]
    pub(crate) disconnect_after_expire: bool,
}

/// A key and the algorithms that may use it.
#[derive(Clone)]
struct Key {
    key: DecodingKey,
    algs: &'static [Algorithm],
}

const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];
const EC: &[Algorithm] = &[Algorithm::ES256, Algorithm::ES384];
const ED: &[Algorithm] = &[Algorithm::EdDSA];

/// The JWT authenticator.
pub(crate) struct Jwt {
    keys: Arc<RwLock<Vec<Key>>>,
    from: From,
    claims: Vec<(String, Template)>,
    acl_claim: String,
    disconnect_after_expire: bool,
    /// The JWKS refresher, stopped when the authenticator is dropped.
    refresher: Option<tokio::task::AbortHandle>,
    jwks: bool,
}

impl std::fmt::Debug for Jwt {
    // Never print keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("keys", &self.keys.read().len())
            .field("jwks", &self.jwks)
            .finish()
    }
}

impl Drop for Jwt {
    fn drop(&mut self) {
        if let Some(r) = &self.refresher {
            r.abort();
        }
    }
}

fn public_key(text: &str) -> Result<Key, String> {
    let pem = if text.contains("-----BEGIN") {
        text.as_bytes().to_vec()
    } else {
        std::fs::read(text).map_err(|e| format!("public_key file {text}: {e}"))?
    };
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok(Key { key, algs: RSA });
    }
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        return Ok(Key { key, algs: EC });
    }
    if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
        return Ok(Key { key, algs: ED });
    }
    Err("public_key is not an RSA, EC or Ed25519 public key in PEM".into())
}

/// The keys of a JWK set (keys it cannot use are skipped).
fn jwks_keys(body: &[u8]) -> Result<Vec<Key>, String> {
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let algs = match &jwk.algorithm {
            P::RSA(_) => RSA,
            P::EllipticCurve(_) => EC,
            P::OctetKeyPair(_) => ED,
            P::OctetKey(_) => HMAC,
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.push(Key { key, algs });
        }
    }
    Ok(keys)
}

impl Jwt {
    pub(crate) fn new(c: &JwtConfig) -> Result<Jwt, String> {
        let mut claims = Vec::new();
        let pairs: Vec<(String, String)> = match &c.verify_claims {
            Claims::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Claims::List(l) => l
                .iter()
                .map(|n| (n.name.clone(), n.value.clone()))
                .collect(),
        };
        for (name, value) in pairs {
            if matches!(name.as_str(), "" | "exp" | "iat" | "nbf") {
                return Err(format!("verify_claims: claim {name:?} cannot be verified"));
            }
            claims.push((name, Template::parse(&value, JWT_CLAIM_VARS)));
        }
        let keys = Arc::new(RwLock::new(Vec::new()));
        let mut refresher = None;
        if c.use_jwks {
            let endpoint = c.endpoint.clone().ok_or("use_jwks needs endpoint")?;
            for name in c.headers.keys() {
                if !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_ ".contains(ch))
                {
                    return Err(format!("headers: bad name {name:?}"));
                }
            }
            let builder = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(1);
            let client = c.ssl.apply(builder)?.build().map_err(|e| e.to_string())?;
            let mut headers = c.headers.clone();
            if headers.is_empty() {
                headers.insert("Accept".into(), "application/json".into());
            }
            let every = Duration::from_secs(c.refresh_interval.max(10));
            let handle = tokio::runtime::Handle::try_current()
                .map_err(|_| "JWKS needs a running runtime".to_owned())?;
            let task = handle.spawn(refresh_loop(
                client,
                endpoint,
                headers,
                every,
                Arc::downgrade(&keys),
            ));
            refresher = Some(task.abort_handle());
        } else {
            let key = match c.algorithm {
                Some(KeyKind::HmacBased) => {
                    let secret = c.secret.as_deref().ok_or("hmac-based needs secret")?;
                    let bytes = if c.secret_base64_encoded {
                        base64::engine::general_purpose::STANDARD
                            .decode(secret)
                            .map_err(|_| "secret is not valid base64".to_owned())?
                    } else {
                        secret.as_bytes().to_vec()
                    };
                    Key {
                        key: DecodingKey::from_secret(&bytes),
                        algs: HMAC,
                    }
                }
                Some(KeyKind::PublicKey) => public_key(
                    c.public_key
                        .as_deref()
                        .ok_or("public-key needs public_key")?,
                )?,
                None => return Err("give algorithm (hmac-based or public-key) or use_jwks".into()),
            };
            keys.write().push(key);
        }
        Ok(Jwt {
            keys,
            from: c.from,
            claims,
            acl_claim: c.acl_claim_name.clone(),
            disconnect_after_expire: c.disconnect_after_expire,
            refresher,
            jwks: c.use_jwks,
        })
    }

    /// Verifies `token` against every key that fits its algorithm.
    fn verified_claims(&self, token: &str) -> Option<serde_json::Map<String, Value>> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let keys = self.keys.read().clone();
        let mut v = Validation::new(header.alg);
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        keys.iter()
            .filter(|k| k.algs.contains(&header.alg))
            .find_map(|k| {
                jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &k.key, &v)
                    .ok()
                    .map(|d| d.claims)
            })
    }

    fn decide(&self, req: &Request<'_>, now: SystemTime) -> Outcome {
        let token = match self.from {
            From::Password => req.creds.password.and_then(|p| std::str::from_utf8(p).ok()),
            From::Username => req.creds.username,
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Outcome::Ignore("no token");
        };
        let Some(claims) = self.verified_claims(token) else {
            tracing::debug!(
                client_id = req.creds.client_id,
                "JWT not verified by any key; ignored"
            );
            return Outcome::Ignore("signature not verified");
        };
        let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let number = |name: &str| -> Result<Option<u64>, ()> {
            match claims.get(name) {
                None => Ok(None),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .or_else(|| n.as_f64().map(|f| f as u64))
                    .map(Some)
                    .ok_or(()),
                Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| ()),
                Some(_) => Err(()),
            }
        };
        let bad = Outcome::Error(DenyReason::BadCredentials);
        let exp = match number("exp") {
            Ok(e) => e,
            Err(()) => return bad,
        };
        if exp.is_some_and(|e| e <= now_s) {
            tracing::info!(client_id = req.creds.client_id, "JWT expired; refused");
            return bad;
        }
        match number("nbf") {
            Ok(Some(n)) if n > now_s => return bad,
            Ok(_) => {}
            Err(()) => return bad,
        }
        let vars = Vars {
            clientid: req.creds.client_id,
            username: req.creds.username,
            ..Vars::default()
        };
        for (name, template) in &self.claims {
            let want = template.render_raw(&vars);
            if claims.get(name).and_then(Value::as_str) != Some(want.as_str()) {
                tracing::info!(client_id = req.creds.client_id, claim = %name,
                    "JWT claim does not match; refused");
                return bad;
            }
        }
        let expire_at = exp
            .filter(|_| self.disconnect_after_expire)
            .map(|e| UNIX_EPOCH + Duration::from_secs(e));
        let acl = match claims.get(&self.acl_claim) {
            None | Some(Value::Null) => None,
            Some(v) => match ClientRules::parse(v, true) {
                Ok(r) => {
                    let until = exp.map(|e| UNIX_EPOCH + Duration::from_secs(e));
                    Some(Arc::new(r.expiring(until)))
                }
                Err(_) => return bad,
            },
        };
        Outcome::Ok(Grant {
            superuser: loose_bool(claims.get("is_superuser")),
            acl,
            expire_at,
            client_attrs: super::client_attrs(claims.get("client_attrs")),
        })
    }
}

async fn refresh_loop(
    client: reqwest::Client,
    endpoint: String,
    headers: BTreeMap<String, String>,
    every: Duration,
    keys: std::sync::Weak<RwLock<Vec<Key>>>,
) {
    loop {
        let mut req = client.get(&endpoint);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let fetched = async {
            let body = req.send().await.map_err(|e| e.to_string())?.bytes().await;
            jwks_keys(&body.map_err(|e| e.to_string())?)
        }
        .await;
        let Some(keys) = keys.upgrade() else {
            return;
        };
        match fetched {
            Ok(new) => {
                tracing::debug!(endpoint = %endpoint, keys = new.len(), "JWKS refreshed");
                *keys.write() = new;
            }
            Err(error) => tracing::warn!(endpoint = %endpoint, %error,
                "JWKS fetch failed; keeping the last good key set"),
        }
        drop(keys);
        tokio::time::sleep(every).await;
    }
}

impl Backend for Jwt {
    fn check<'a>(&'a self, req: Request<'a>) -> BoxFut<'a, Outcome> {
        Box::pin(async move { self.decide(&req, SystemTime::now()) })
    }

    fn check_now(&self, req: Request<'_>) -> Option<Outcome> {
        Some(self.decide(&req, SystemTime::now()))
    }

    fn health(&self) -> Health {
        if self.jwks && self.keys.read().is_empty() {
            Health::Connecting
        } else {
            Health::Connected
        }
    }
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
