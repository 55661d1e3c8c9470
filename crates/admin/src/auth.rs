//! Dashboard admins and API keys: who may call the API.
//!
//! Owns the admins (kind [`ADMIN_USERS_KIND`] in the API-state store, keyed by username, with
//! argon2 password hashes) and the API keys (kind [`API_KEYS_KIND`], keyed by name, with a keyed
//! BLAKE2 hash of their secret), served from an in-memory view (see `auth_store.rs` for the store
//! side, the feed and the import of the `admin.json` of earlier versions); the live bearer
//! tokens (memory only: a restart logs everyone out) and the per-IP failed-login counters.
//!
//! Invariants: no password or secret is ever stored or logged in clear; every change is in the
//! store before the view shows it, under one write lock; a user created from the config's
//! default credentials must change its password before the token lets it do anything else.

use crate::error::{ApiError, ApiResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use blake2::{Blake2b512, Digest};
use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};
use switchyard_state::SharedState;

#[path = "auth_store.rs"]
mod store;

pub use store::{OpenError, ADMIN_USERS_KIND, API_KEYS_KIND, LEGACY_ADMIN_FILE};

/// One dashboard admin as stored (kind [`ADMIN_USERS_KIND`], keyed by `username`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub username: String,
    /// PHC-format argon2id hash.
    pub password_hash: String,
    /// Set for the default admin until its first password change.
    #[serde(default)]
    pub must_change_password: bool,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Unix milliseconds.
    #[serde(default)]
    pub created_at: u64,
}

/// One API key as stored (kind [`API_KEYS_KIND`], keyed by `name`; the secret is shown once, at
/// creation).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    /// Display name, unique.
    pub name: String,
    /// The public half (HTTP Basic username).
    pub api_key: String,
    /// Hex BLAKE2b of the secret, keyed by the key.
    pub secret_hash: String,
    /// Disabled keys are refused.
    #[serde(default = "yes")]
    pub enable: bool,
    /// Free text.
    #[serde(default)]
    pub desc: String,
    /// Unix milliseconds.
    #[serde(default)]
    pub created_at: u64,
}

fn yes() -> bool {
    true
}

/// The view: every admin and key in the store.
#[derive(Debug, Default)]
struct View {
    /// By username.
    users: BTreeMap<String, User>,
    /// By name.
    api_keys: BTreeMap<String, ApiKey>,
}

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A dashboard user with a bearer token.
    User {
        /// Login name.
        username: String,
        /// The token used (for logout).
        token: String,
        /// Still on the default password: only password change and logout are allowed.
        must_change_password: bool,
    },
    /// A script with an API key.
    ApiKey(String),
}

impl Principal {
    /// Who, for logs: the username or the API key's name.
    pub fn name(&self) -> &str {
        match self {
            Principal::User { username, .. } => username,
            Principal::ApiKey(name) => name,
        }
    }
}

struct Token {
    username: String,
    expires: Instant,
}

struct Failures {
    window_start: Instant,
    count: u32,
}

const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Users, keys, tokens and login throttling.
pub struct AuthStore {
    state: SharedState,
    view: Mutex<View>,
    /// Held across "write the store, then the view" and across applying a change from the feed,
    /// so the view always ends as the store is.
    write: Mutex<()>,
    tokens: Mutex<HashMap<String, Token>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    token_ttl: Duration,
    max_failures: u32,
}

/// What a successful login returns.
pub struct Login {
    /// The bearer token.
    pub token: String,
    /// The user must change its password first.
    pub must_change_password: bool,
}

fn now_millis() -> u64 {
    crate::time::millis(SystemTime::now())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_password(password: &str) -> ApiResult<String> {
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| ApiError::internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("cannot hash password: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn hash_secret(key: &str, secret: &str) -> String {
    let mut h = Blake2b512::new();
    h.update(key.as_bytes());
    h.update([0u8]);
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time comparison of two strings of public length.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Password rules: the default one is refused as a new password, and so is anything short.
pub fn check_new_password(password: &str) -> ApiResult<()> {
    let n = password.chars().count();
    if !(8..=64).contains(&n) {
        return Err(ApiError::bad_request(
            "password must be 8 to 64 characters long",
        ));
    }
    Ok(())
}

fn check_username(username: &str) -> ApiResult<()> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "username: 1 to 64 characters of A-Z a-z 0-9 - _ . @",
        ))
    }
}

impl AuthStore {
    /// Loads the admins and keys from `state` (first importing the `admin.json` of an earlier
    /// version from `legacy_dir`, if the store has none), creating the default admin when there
    /// is no admin at all.
    pub fn open(
        state: SharedState,
        legacy_dir: Option<&Path>,
        default_user: &str,
        default_password: &str,
        token_ttl: Duration,
        max_failures: u32,
    ) -> Result<AuthStore, OpenError> {
        if let Some(dir) = legacy_dir {
            store::import_legacy(dir, state.as_ref())?;
        }
        let view = store::load(state.as_ref())?;
        let store = AuthStore {
            state,
            view: Mutex::new(view),
            write: Mutex::new(()),
            tokens: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            token_ttl,
            max_failures,
        };
        if store.view.lock().users.is_empty() {
            let hash = hash_password(default_password).map_err(|e| OpenError::Hash(e.message))?;
            let user = User {
                username: default_user.to_owned(),
                password_hash: hash,
                must_change_password: true,
                description: "default administrator".into(),
                created_at: now_millis(),
            };
            let _write = store.write.lock();
            store.put_user(&user)?;
            store.view.lock().users.insert(user.username.clone(), user);
            tracing::info!(
                username = default_user,
                "created the default dashboard admin"
            );
        }
        Ok(store)
    }

    /// Checks a login; counts failures per IP (429 past the limit, 401 for a bad login).
    pub fn login(&self, ip: IpAddr, username: &str, password: &str) -> ApiResult<Login> {
        {
            let failures = self.failures.lock();
            if let Some(f) = failures.get(&ip) {
                if f.window_start.elapsed() < FAILURE_WINDOW && f.count >= self.max_failures {
                    return Err(ApiError::new(
                        axum::http::StatusCode::TOO_MANY_REQUESTS,
                        "LOGIN_LOCKED",
                        "too many failed logins; try again in a minute",
                    ));
                }
            }
        }
        let user = self.view.lock().users.get(username).cloned();
        let ok = match &user {
            Some(u) => verify_password(password, &u.password_hash),
            None => {
                // Same work for an unknown user, so timing does not reveal which names exist.
                let _ = hash_password(password);
                false
            }
        };
        let user = match (ok, user) {
            (true, Some(u)) => u,
            _ => {
                let mut failures = self.failures.lock();
                let f = failures.entry(ip).or_insert(Failures {
                    window_start: Instant::now(),
                    count: 0,
                });
                if f.window_start.elapsed() >= FAILURE_WINDOW {
                    f.window_start = Instant::now();
                    f.count = 0;
                }
                f.count = f.count.saturating_add(1);
                tracing::warn!(%ip, username, "dashboard login failed");
                return Err(ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "BAD_USERNAME_OR_PWD",
                    "Auth failed",
                ));
            }
        };
        self.failures.lock().remove(&ip);
        let token = random_hex(32);
        let mut tokens = self.tokens.lock();
        tokens.retain(|_, t| t.expires > Instant::now());
        tokens.insert(
            token.clone(),
            Token {
                username: user.username.clone(),
                expires: Instant::now() + self.token_ttl,
            },
        );
        tracing::info!(%ip, username, "dashboard login");
        Ok(Login {
            token,
            must_change_password: user.must_change_password,
        })
    }

    /// The token's lifetime, for the login answer.
    pub fn token_ttl(&self) -> Duration {
        self.token_ttl
    }

    /// Resolves a bearer token.
    pub fn check_token(&self, token: &str) -> Option<Principal> {
        let username = {
            let tokens = self.tokens.lock();
            let t = tokens.get(token)?;
            if t.expires <= Instant::now() {
                return None;
            }
            t.username.clone()
        };
        let must = self.view.lock().users.get(&username)?.must_change_password;
        Some(Principal::User {
            username,
            token: token.to_owned(),
            must_change_password: must,
        })
    }

    /// Resolves HTTP Basic key:secret.
    pub fn check_api_key(&self, key: &str, secret: &str) -> Option<Principal> {
        let view = self.view.lock();
        let k = view.api_keys.values().find(|k| k.api_key == key)?;
        (k.enable && same(&k.secret_hash, &hash_secret(key, secret)))
            .then(|| Principal::ApiKey(k.name.clone()))
    }

    /// Ends a token.
    pub fn logout(&self, token: &str) {
        self.tokens.lock().remove(token);
    }

    /// Every user (no hashes), oldest first.
    pub fn users(&self) -> Vec<serde_json::Value> {
        let mut users: Vec<User> = self.view.lock().users.values().cloned().collect();
        users.sort_by_key(|u| u.created_at);
        users
            .iter()
            .map(|u| {
                serde_json::json!({
                    "username": u.username,
                    "description": u.description,
                    "must_change_password": u.must_change_password,
                    "created_at": crate::time::rfc3339(
                        std::time::UNIX_EPOCH + Duration::from_millis(u.created_at)),
                })
            })
            .collect()
    }

    /// Adds a user.
    pub fn add_user(&self, username: &str, password: &str, description: &str) -> ApiResult<()> {
        check_username(username)?;
        check_new_password(password)?;
        let hash = hash_password(password)?;
        let _write = self.write.lock();
        if self.view.lock().users.contains_key(username) {
            return Err(ApiError::bad_request(format!(
                "user {username} already exists"
            )));
        }
        let user = User {
            username: username.to_owned(),
            password_hash: hash,
            must_change_password: false,
            description: description.to_owned(),
            created_at: now_millis(),
        };
        self.save_user(&user)?;
        self.view.lock().users.insert(username.to_owned(), user);
        Ok(())
    }

    /// Removes a user and its tokens; the last user cannot be removed.
    pub fn delete_user(&self, username: &str) -> ApiResult<()> {
        let _write = self.write.lock();
        {
            let view = self.view.lock();
            if !view.users.contains_key(username) {
                return Err(ApiError::not_found(format!("user {username} not found")));
            }
            if view.users.len() <= 1 {
                return Err(ApiError::bad_request("cannot delete the last admin"));
            }
        }
        self.delete_doc(ADMIN_USERS_KIND, username)?;
        self.view.lock().users.remove(username);
        self.tokens.lock().retain(|_, t| t.username != username);
        Ok(())
    }

    /// Changes a password after checking the old one; other sessions of the user are ended.
    pub fn change_password(
        &self,
        username: &str,
        old: &str,
        new: &str,
        keep_token: Option<&str>,
    ) -> ApiResult<()> {
        let hash = self
            .view
            .lock()
            .users
            .get(username)
            .map(|u| u.password_hash.clone())
            .ok_or_else(|| ApiError::not_found(format!("user {username} not found")))?;
        if !verify_password(old, &hash) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "BAD_USERNAME_OR_PWD",
                "old password is wrong",
            ));
        }
        check_new_password(new)?;
        if old == new {
            return Err(ApiError::bad_request(
                "the new password must differ from the old one",
            ));
        }
        let new_hash = hash_password(new)?;
        let _write = self.write.lock();
        let mut user = self
            .view
            .lock()
            .users
            .get(username)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("user {username} not found")))?;
        user.password_hash = new_hash;
        user.must_change_password = false;
        self.save_user(&user)?;
        self.view.lock().users.insert(username.to_owned(), user);
        self.tokens
            .lock()
            .retain(|tok, t| t.username != username || Some(tok.as_str()) == keep_token);
        Ok(())
    }

    /// Every API key (no secrets), oldest first.
    pub fn api_keys(&self) -> Vec<serde_json::Value> {
        let mut keys: Vec<ApiKey> = self.view.lock().api_keys.values().cloned().collect();
        keys.sort_by_key(|k| k.created_at);
        keys.iter().map(key_json).collect()
    }

    /// Creates a key; the answer holds the secret, the only time it is shown.
    pub fn add_api_key(
        &self,
        name: &str,
        desc: &str,
        enable: bool,
    ) -> ApiResult<serde_json::Value> {
        check_username(name)?;
        let api_key = random_hex(8);
        let secret = random_hex(24);
        let key = ApiKey {
            name: name.to_owned(),
            api_key: api_key.clone(),
            secret_hash: hash_secret(&api_key, &secret),
            enable,
            desc: desc.to_owned(),
            created_at: now_millis(),
        };
        let mut answer = key_json(&key);
        let _write = self.write.lock();
        if self.view.lock().api_keys.contains_key(name) {
            return Err(ApiError::bad_request(format!(
                "api key {name} already exists"
            )));
        }
        self.save_key(&key)?;
        self.view.lock().api_keys.insert(name.to_owned(), key);
        answer["api_secret"] = serde_json::Value::String(secret);
        Ok(answer)
    }

    /// Deletes a key by name.
    pub fn delete_api_key(&self, name: &str) -> ApiResult<()> {
        let _write = self.write.lock();
        if !self.view.lock().api_keys.contains_key(name) {
            return Err(ApiError::not_found(format!("api key {name} not found")));
        }
        self.delete_doc(API_KEYS_KIND, name)?;
        self.view.lock().api_keys.remove(name);
        Ok(())
    }
}

fn key_json(k: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "name": k.name,
        "api_key": k.api_key,
        "enable": k.enable,
        "desc": k.desc,
        "created_at": crate::time::rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(k.created_at)),
    })
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
