//! Authentication against the built-in user database (`[authentication]`).
//!
//! Users are keyed by username or client id (`user_id_type`) and hold a salted hash (see
//! [`crate::hash`]) and a superuser flag. They are durable in the API-state store (kind
//! [`USERS_KIND`], one document per user id, see `authn_store.rs`) and served from an in-memory
//! view, so a login never queries the store: the view is loaded at start, updated by every write
//! after the store has it, and by changes arriving on the store's feed. At start the bootstrap
//! CSV adds the users the store does not have yet, so changes made through the REST API survive
//! restarts; a user file of an earlier version (`<data_dir>/authn_users.json`) is imported once.
//!
//! Decision table (for a listener with authentication enabled):
//! - the user id is known: the password must verify, else `BadCredentials` (even when
//!   anonymous login is allowed);
//! - unknown user id or no credentials: anonymous; allowed when `allow_anonymous`, else
//!   `BadCredentials` if a username or password was presented, `NotAuthorized` if none was.

use crate::bootstrap::{self, BootstrapUser};
use crate::hash::{self, HashAlgorithm};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use switchyard_state::{SharedState, StateError};

#[path = "authn_store.rs"]
mod store;

pub use store::{LEGACY_USERS_FILE, USERS_KIND};

/// Errors of loading, importing and managing users.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The bootstrap CSV is malformed.
    #[error("bootstrap file: {0}")]
    Bootstrap(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The user file of an earlier version is not valid.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A hash could not be computed (e.g. an argon2 salt shorter than 8 bytes).
    #[error("password hash: {0}")]
    Hash(String),
    /// `add_user` for an existing user id.
    #[error("user {0:?} already exists")]
    AlreadyExists(String),
    /// `update_user` / `delete_user` for an unknown user id.
    #[error("user {0:?} not found")]
    NotFound(String),
    /// An empty user id.
    #[error("user_id must not be empty")]
    EmptyUserId,
    /// The state store failed, or holds a user document that is not one.
    #[error(transparent)]
    State(#[from] StateError),
}

/// `authentication.user_id_type`: what identifies a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdType {
    /// The username of CONNECT (or the gateway's equivalent).
    #[default]
    Username,
    /// The client id.
    Clientid,
}

/// `authentication.bootstrap_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapType {
    /// `user_id,password,is_superuser` with plain passwords.
    #[default]
    Plain,
    /// `user_id,password_hash,salt,is_superuser`.
    Hash,
}

/// What the binary configures.
#[derive(Debug, Clone)]
pub struct AuthnSettings {
    /// Accept clients that are not in the database (or present no credentials).
    pub allow_anonymous: bool,
    /// What identifies a user.
    pub user_id_type: UserIdType,
    /// Algorithm for new hashes (existing users keep theirs).
    pub algorithm: HashAlgorithm,
    /// Where a user file of an earlier version (`authn_users.json`) is looked for, to be
    /// imported into the state store once; `None` for nowhere.
    pub data_dir: Option<PathBuf>,
    /// CSV of users to add at start; `None` for none.
    pub bootstrap_file: Option<PathBuf>,
    /// Format of `bootstrap_file`.
    pub bootstrap_type: BootstrapType,
}

impl Default for AuthnSettings {
    /// The config defaults: anonymous allowed, keyed by username, argon2, in memory.
    fn default() -> Self {
        AuthnSettings {
            allow_anonymous: true,
            user_id_type: UserIdType::Username,
            algorithm: HashAlgorithm::Argon2,
            data_dir: None,
            bootstrap_file: None,
            bootstrap_type: BootstrapType::Plain,
        }
    }
}

/// What a client presented.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The client id.
    pub client_id: &'a str,
    /// The username, if any.
    pub username: Option<&'a str>,
    /// The password, if any (never logged).
    pub password: Option<&'a [u8]>,
    /// The client's address.
    pub peer_ip: Option<IpAddr>,
    /// Whether the listener authenticates at all (`enable_authn`); false accepts everyone.
    pub listener_authn_enabled: bool,
}

/// Why a client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// Credentials were presented and are wrong (MQTT 0x04 / 0x86).
    BadCredentials,
    /// No credentials and anonymous login is off (MQTT 0x05 / 0x87).
    NotAuthorized,
}

impl DenyReason {
    /// A short snake_case name, for logs and `Login Failed: <reason>` payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::BadCredentials => "bad_username_or_password",
            DenyReason::NotAuthorized => "not_authorized",
        }
    }
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The answer to [`Authenticator::authenticate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Let the client in.
    Allow {
        /// A superuser bypasses the ACL.
        superuser: bool,
    },
    /// Refuse it.
    Deny(DenyReason),
}

/// What the built-in database says about one user's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserCheck {
    /// No such user (or no user id): the authenticator ignores the client.
    Unknown,
    /// The password verifies; the flag is `is_superuser`.
    Allow(bool),
    /// The user exists and the password is wrong or missing.
    Bad,
    /// Only a hash can tell (asked with `may_hash` false).
    Slow,
}

/// How a client nobody accepted is refused when anonymous login is off: bad credentials if it
/// presented any, not authorized if none.
pub(crate) fn anonymous_refusal(c: &Credentials<'_>) -> DenyReason {
    if c.username.is_some() || c.password.is_some() {
        DenyReason::BadCredentials
    } else {
        DenyReason::NotAuthorized
    }
}

/// A user as the REST API shows it (no hash, no salt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Username or client id, per `user_id_type`.
    pub user_id: String,
    /// Bypasses the ACL.
    pub is_superuser: bool,
}

/// One stored user: the document of kind [`USERS_KIND`] keyed by its user id.
#[derive(Clone, Serialize, Deserialize)]
struct UserRecord {
    algorithm: HashAlgorithm,
    /// Hex.
    password_hash: String,
    salt: String,
    is_superuser: bool,
}

/// The built-in database and the anonymous policy.
pub struct Authenticator {
    settings: AuthnSettings,
    /// The view: every user in the store, by user id.
    users: RwLock<BTreeMap<String, UserRecord>>,
    /// Where users are durable; `None` keeps them in memory only.
    state: Option<SharedState>,
    /// Held across "write the store, then the view" and across applying a change from the feed,
    /// so the view always ends as the store is.
    write: parking_lot::Mutex<()>,
    /// Recent successful password checks (see `verified`).
    verified: crate::verified::Verified,
}

impl std::fmt::Debug for Authenticator {
    // Never print hashes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.settings)
            .field("users", &self.users.read().len())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator with no store behind it (tests, or a gateway without the binary).
    pub fn in_memory(mut settings: AuthnSettings) -> Self {
        settings.data_dir = None;
        Authenticator {
            settings,
            users: RwLock::new(BTreeMap::new()),
            state: None,
            write: parking_lot::Mutex::new(()),
            verified: crate::verified::Verified::new(),
        }
    }

    /// Imports a user file of an earlier version from `data_dir` when the store has no users,
    /// loads the users from `state`, then adds the bootstrap users it lacks.
    pub fn open(settings: AuthnSettings, state: SharedState) -> Result<Self, AuthError> {
        if let Some(dir) = &settings.data_dir {
            store::import_legacy(dir, state.as_ref())?;
        }
        let users = store::load(state.as_ref())?;
        let auth = Authenticator {
            settings,
            users: RwLock::new(users),
            state: Some(state),
            write: parking_lot::Mutex::new(()),
            verified: crate::verified::Verified::new(),
        };
        if let Some(path) = auth.settings.bootstrap_file.clone() {
            let added = auth.import_file(&path)?;
            tracing::info!(file = %path.display(), added, "authentication bootstrap users imported");
        }
        Ok(auth)
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthnSettings {
        &self.settings
    }

    /// Adds the users of a bootstrap CSV that the database does not have; returns how many.
    pub fn import_file(&self, path: &Path) -> Result<usize, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.import_csv(&text, self.settings.bootstrap_type)
    }

    /// Adds the users of CSV text that the database does not have; returns how many.
    pub fn import_csv(&self, text: &str, kind: BootstrapType) -> Result<usize, AuthError> {
        let rows = bootstrap::parse(text, kind)?;
        let alg = self.settings.algorithm;
        let mut new = Vec::new();
        {
            let users = self.users.read();
            for row in rows {
                let (id, record) = match row {
                    BootstrapUser::Plain {
                        user_id,
                        password,
                        is_superuser,
                    } => {
                        if users.contains_key(&user_id) {
                            continue;
                        }
                        let record = new_record(alg, password.as_bytes(), is_superuser)?;
                        (user_id, record)
                    }
                    BootstrapUser::Hashed {
                        user_id,
                        password_hash,
                        salt,
                        is_superuser,
                    } => {
                        if hash::from_hex(&password_hash).is_none() {
                            return Err(AuthError::Bootstrap(format!(
                                "user {user_id:?}: password_hash is not hex"
                            )));
                        }
                        (
                            user_id,
                            UserRecord {
                                algorithm: alg,
                                password_hash: password_hash.to_ascii_lowercase(),
                                salt,
                                is_superuser,
                            },
                        )
                    }
                };
                new.push((id, record));
            }
        }
        let _write = self.write.lock();
        let new: BTreeMap<String, UserRecord> = {
            let users = self.users.read();
            new.into_iter()
                .filter(|(id, _)| !users.contains_key(id))
                .collect()
        };
        if new.is_empty() {
            return Ok(0);
        }
        self.save_many(&new)?;
        let added = new.len();
        self.users.write().extend(new);
        Ok(added)
    }

    /// Decides whether a client may connect with the built-in database alone and the
    /// anonymous policy. May take tens of milliseconds (argon2). The chain of authenticators
    /// ([`crate::Chain`]) is what gateways ask; this is its behaviour with no
    /// `[[authentication.authenticators]]` configured.
    pub fn authenticate(&self, c: &Credentials<'_>) -> AuthResult {
        if !c.listener_authn_enabled {
            return AuthResult::Allow { superuser: false };
        }
        match self.check_user(self.user_id(c, None), c.password, true) {
            UserCheck::Allow(superuser) => AuthResult::Allow { superuser },
            UserCheck::Bad | UserCheck::Slow => {
                tracing::info!(client_id = c.client_id, username = ?c.username,
                    peer = ?c.peer_ip, "authentication failed: bad password");
                AuthResult::Deny(DenyReason::BadCredentials)
            }
            UserCheck::Unknown if self.settings.allow_anonymous => {
                AuthResult::Allow { superuser: false }
            }
            UserCheck::Unknown => {
                if let Some(pw) = c.password {
                    // Spend the same work as for a known user, so response time does not
                    // tell which user ids exist.
                    let _ = hash::verify(self.settings.algorithm, pw, b"timing-equaliser", &[]);
                }
                tracing::info!(client_id = c.client_id, username = ?c.username,
                    peer = ?c.peer_ip, "authentication failed: unknown user, anonymous off");
                AuthResult::Deny(anonymous_refusal(c))
            }
        }
    }

    /// The user id of `c` under `kind` (the store's `user_id_type` when `None`).
    pub(crate) fn user_id<'a>(
        &self,
        c: &Credentials<'a>,
        kind: Option<UserIdType>,
    ) -> Option<&'a str> {
        match kind.unwrap_or(self.settings.user_id_type) {
            UserIdType::Username => c.username,
            UserIdType::Clientid => Some(c.client_id),
        }
    }

    /// Checks `password` for `user_id`. With `may_hash` false a check that needs a hash (no
    /// recent verification of this password) answers [`UserCheck::Slow`] instead of hashing.
    pub(crate) fn check_user(
        &self,
        user_id: Option<&str>,
        password: Option<&[u8]>,
        may_hash: bool,
    ) -> UserCheck {
        let Some(id) = user_id else {
            return UserCheck::Unknown;
        };
        let Some(r) = self.users.read().get(id).cloned() else {
            return UserCheck::Unknown;
        };
        let (Some(pw), Some(expected)) = (password, hash::from_hex(&r.password_hash)) else {
            return UserCheck::Bad;
        };
        let now = std::time::Instant::now();
        let digest = self.verified.digest(pw);
        if self.verified.hit(id, &digest, &r.password_hash, now) {
            return UserCheck::Allow(r.is_superuser);
        }
        if !may_hash {
            return UserCheck::Slow;
        }
        if hash::verify(r.algorithm, pw, r.salt.as_bytes(), &expected) {
            self.verified.put(id, digest, &r.password_hash, now);
            UserCheck::Allow(r.is_superuser)
        } else {
            UserCheck::Bad
        }
    }

    /// Every user, ordered by id.
    pub fn list_users(&self) -> Vec<UserInfo> {
        self.users
            .read()
            .iter()
            .map(|(id, r)| UserInfo {
                user_id: id.clone(),
                is_superuser: r.is_superuser,
            })
            .collect()
    }

    /// One user.
    pub fn get_user(&self, user_id: &str) -> Option<UserInfo> {
        self.users.read().get(user_id).map(|r| UserInfo {
            user_id: user_id.to_owned(),
            is_superuser: r.is_superuser,
        })
    }

    /// Adds a user; `AlreadyExists` if the id is taken.
    pub fn add_user(
        &self,
        user_id: &str,
        password: &str,
        is_superuser: bool,
    ) -> Result<UserInfo, AuthError> {
        if user_id.is_empty() {
            return Err(AuthError::EmptyUserId);
        }
        let record = new_record(self.settings.algorithm, password.as_bytes(), is_superuser)?;
        let _write = self.write.lock();
        if self.users.read().contains_key(user_id) {
            return Err(AuthError::AlreadyExists(user_id.to_owned()));
        }
        self.save(user_id, &record)?;
        self.users.write().insert(user_id.to_owned(), record);
        Ok(UserInfo {
            user_id: user_id.to_owned(),
            is_superuser,
        })
    }

    /// Changes a user's password and/or superuser flag; `NotFound` if unknown.
    pub fn update_user(
        &self,
        user_id: &str,
        password: Option<&str>,
        is_superuser: Option<bool>,
    ) -> Result<UserInfo, AuthError> {
        let fresh = password
            .map(|p| new_record(self.settings.algorithm, p.as_bytes(), false))
            .transpose()?;
        let _write = self.write.lock();
        let mut r = self
            .users
            .read()
            .get(user_id)
            .cloned()
            .ok_or_else(|| AuthError::NotFound(user_id.to_owned()))?;
        if let Some(f) = fresh {
            r.algorithm = f.algorithm;
            r.password_hash = f.password_hash;
            r.salt = f.salt;
        }
        if let Some(su) = is_superuser {
            r.is_superuser = su;
        }
        self.save(user_id, &r)?;
        let info = UserInfo {
            user_id: user_id.to_owned(),
            is_superuser: r.is_superuser,
        };
        self.set_user(user_id, Some(r));
        Ok(info)
    }

    /// Removes a user; `NotFound` if unknown.
    pub fn delete_user(&self, user_id: &str) -> Result<(), AuthError> {
        let _write = self.write.lock();
        if !self.users.read().contains_key(user_id) {
            return Err(AuthError::NotFound(user_id.to_owned()));
        }
        self.remove(user_id)?;
        self.set_user(user_id, None);
        Ok(())
    }

    /// Puts `record` (or removes the user) in the view; a changed or removed password forgets
    /// the user's remembered verifications. The caller holds `write`.
    fn set_user(&self, user_id: &str, record: Option<UserRecord>) {
        let new_hash = record.as_ref().map(|r| r.password_hash.clone());
        let old = {
            let mut users = self.users.write();
            match record {
                Some(r) => users.insert(user_id.to_owned(), r),
                None => users.remove(user_id),
            }
        };
        if old.is_some_and(|o| Some(o.password_hash) != new_hash) {
            self.verified.forget(user_id);
        }
    }
}

fn new_record(
    alg: HashAlgorithm,
    password: &[u8],
    is_superuser: bool,
) -> Result<UserRecord, AuthError> {
    let salt = hash::new_salt();
    let h = hash::derive(alg, password, salt.as_bytes())?;
    Ok(UserRecord {
        algorithm: alg,
        password_hash: hash::to_hex(&h),
        salt,
        is_superuser,
    })
}

#[cfg(test)]
#[path = "authn_tests.rs"]
mod tests;
