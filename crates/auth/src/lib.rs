//! Authentication and authorization for every gateway, protocol-neutral.
//!
//! Owns: the built-in user database ([`Authenticator`]: salted argon2 or PBKDF2-SHA256 hashes,
//! durable in the API-state store (`switchyard_state`, kind [`USERS_KIND`]) and served from an
//! in-memory view the store's feed keeps current, seeded from a bootstrap CSV), the ACL
//! ([`Authorizer`]: first-match `[[rule]]` tables from `authorization.file`, with a per-client
//! decision cache in [`ClientAcl`]) and a token-bucket [`RateLimiter`] for per-client message
//! rates.
//! Must not know: any protocol. A gateway maps its own credentials into [`Credentials`] and its
//! own operations into [`Action`], and maps the answers onto its own wire codes.
//! Invariants: passwords are never logged or stored in clear; hashes are compared in constant
//! time; a known user with a wrong password is refused even when anonymous login is allowed;
//! superusers bypass the ACL.

mod authn;
mod authz;
mod banned;
mod bootstrap;
mod hash;
mod offload;
mod ratelimit;
mod topic;
mod verified;

pub use authn::{
    AuthError, AuthResult, Authenticator, AuthnSettings, BootstrapType, Credentials, DenyReason,
    UserIdType, UserInfo, LEGACY_USERS_FILE, USERS_KIND,
};
pub use authz::{
    parse_rules, AclCacheSettings, AclError, Action, Authorizer, AuthzSettings, ClientAcl,
    ClientCtx, Decision, DenyAction, Permission, Rule,
};
pub use banned::{BanEntry, BanError, BanKind, Banned, FlappingSettings, BANNED_KIND};
pub use hash::HashAlgorithm;
pub use offload::{authenticate_off_task, OwnedCredentials, HASH_SLOTS};
pub use ratelimit::RateLimiter;

use std::sync::Arc;

/// What every gateway gets from the binary: who may connect and what they may do.
#[derive(Debug, Clone)]
pub struct Security {
    /// Authentication.
    pub authn: Arc<Authenticator>,
    /// Authorization.
    pub authz: Arc<Authorizer>,
    /// Banned clients and flapping detection, checked at connect before authentication.
    pub banned: Arc<Banned>,
}

impl Default for Security {
    /// Anonymous allowed, no users, no rules, no match → allow: everything permitted.
    fn default() -> Self {
        Security {
            authn: Arc::new(Authenticator::in_memory(AuthnSettings::default())),
            authz: Arc::new(Authorizer::new(Vec::new(), AuthzSettings::default())),
            banned: Arc::new(Banned::in_memory(FlappingSettings::default())),
        }
    }
}
