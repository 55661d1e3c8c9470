//! Authentication and authorization for every gateway, protocol-neutral.
//!
//! Owns: the chain of authenticators ([`Chain`]: built-in users, HTTP, JWT, PostgreSQL, tried
//! in order, configured by `[[authentication.authenticators]]` or the REST API; gateways await
//! [`Security::authenticate`] on the client's own task), the built-in user database ([`Authenticator`]: salted argon2 or PBKDF2-SHA256 hashes,
//! durable in the API-state store (`switchyard_state`, kind [`USERS_KIND`]) and served from an
//! in-memory view the store's feed keeps current, seeded from a bootstrap CSV), authorization
//! ([`Authorizer`]: the sources asked in order, `file` (first-match `[[rule]]` tables) and
//! `http`, configured by `[[authorization.sources]]` or the REST API (kind [`AUTHZ_KIND`]);
//! [`ClientAcl`], one client's view with its own `acl` and decision cache; an HTTP source is
//! awaited through an [`AuthzQuery`] on the client's own task, so checks stay synchronous) and
//! a token-bucket [`RateLimiter`] for per-client message rates.
//! Must not know: any protocol. A gateway maps its own credentials into [`Credentials`] and its
//! own operations into [`Action`], and maps the answers onto its own wire codes.
//! Invariants: passwords are never logged or stored in clear; hashes are compared in constant
//! time; a known user with a wrong password is refused even when anonymous login is allowed;
//! superusers bypass the ACL.

mod acl_list;
mod authn;
mod authz;
mod authz_api;
mod authz_query;
mod authz_sources;
mod backend;
mod banned;
mod bootstrap;
mod chain;
mod client_acl;
mod hash;
mod offload;
mod passwd;
mod ratelimit;
mod rewrite;
mod template;
mod topic;
mod verified;

pub use acl_list::ClientRules;
pub use authn::{
    AuthError, AuthResult, Authenticator, AuthnSettings, BootstrapType, Credentials, DenyReason,
    UserIdType, UserInfo, LEGACY_USERS_FILE, USERS_KIND,
};
pub use authz::{
    authorize, parse_rules, will_allowed, AclCacheSettings, AclError, Action, Authorizer,
    AuthzSettings, ClientAcl, ClientCtx, Decision, DenyAction, Permission, Rule,
};
pub use authz_query::{AuthzAnswers, AuthzQuery};
pub use authz_sources::{
    parse_settings, settings_json, SourceError, SourceStatus, AUTHZ_KIND, SETTINGS_KEY, SOURCES_KEY,
};
pub use backend::{ClientAttrs, Grant};
pub use banned::{BanEntry, BanError, BanKind, Banned, FlappingSettings, BANNED_KIND};
pub use chain::{
    AuthnStatus, CacheSettings, Chain, ChainError, Verdict, AUTHENTICATORS_KIND, BUILT_IN_ID,
    CHAIN_KEY, MASK,
};
pub use hash::HashAlgorithm;
pub use offload::{authenticate_off_task, OwnedCredentials, HASH_SLOTS};
pub use passwd::{MacFun, PasswdError, PasswordHash, SaltPosition};
pub use ratelimit::RateLimiter;
pub use rewrite::{RewriteAction, RewriteRule, Rewriter};

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
    /// Topic rewrite rules, applied before authorization.
    pub rewrite: Arc<Rewriter>,
    /// The chain of authenticators (the built-in database in `authn` is one of them).
    pub chain: Arc<Chain>,
}

impl Security {
    /// Decides whether a client may connect: the whole chain, awaited on the client's own task
    /// (a network back-end never blocks a worker or another client).
    pub async fn authenticate(&self, creds: &OwnedCredentials) -> Verdict {
        // A banned client is refused at connect anyway: it never reaches a back-end.
        let banned = self
            .banned
            .check(&creds.client_id, creds.username.as_deref(), creds.peer_ip);
        if banned.is_some() {
            return Verdict::refused(DenyReason::NotAuthorized);
        }
        self.chain.authenticate(&self.authn, creds).await
    }

    /// The chain without waiting for a network, for code that cannot await: network
    /// back-ends answer from the cache (the asynchronous check of the same credentials just
    /// before included), else ignore. See [`Chain::authenticate_now`].
    pub fn authenticate_now(&self, creds: &Credentials<'_>) -> Verdict {
        self.chain.authenticate_now(&self.authn, creds)
    }

    /// The ACL view of a client accepted by `verdict`: its own `acl` first, then the rules.
    pub fn client_acl(&self, ctx: ClientCtx, verdict: &Verdict) -> ClientAcl {
        self.authz
            .client_with(ctx, verdict.grant.acl.clone())
            .with_expiry(verdict.grant.expire_at)
            .with_attrs(verdict.grant.client_attrs.clone())
    }

    /// What a gateway does with a connect's verdict: the client's ACL view when it is allowed
    /// (superuser or not, as the verdict says), or the reason it is refused, which the gateway
    /// maps to its own wire code and counts.
    pub fn admit(
        &self,
        verdict: &Verdict,
        client_id: &str,
        username: Option<&str>,
        peer_ip: Option<std::net::IpAddr>,
    ) -> Result<ClientAcl, DenyReason> {
        match verdict.result {
            AuthResult::Allow { superuser } => {
                let ctx = ClientCtx {
                    client_id: client_id.to_owned(),
                    username: username.map(str::to_owned),
                    peer_ip,
                    superuser,
                };
                Ok(self.client_acl(ctx, verdict))
            }
            AuthResult::Deny(reason) => Err(reason),
        }
    }
}

impl Default for Security {
    /// Anonymous allowed, no users, no rules, no match → allow: everything permitted.
    fn default() -> Self {
        Security {
            authn: Arc::new(Authenticator::in_memory(AuthnSettings::default())),
            authz: Arc::new(Authorizer::new(Vec::new(), AuthzSettings::default())),
            banned: Arc::new(Banned::in_memory(FlappingSettings::default())),
            rewrite: Arc::new(Rewriter::default()),
            chain: Arc::new(Chain::default()),
        }
    }
}
