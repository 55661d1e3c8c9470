//! `password_based:built_in_database`: the users of [`crate::Authenticator`] as one link of the
//! chain (shared/specs/emqx-auth-api.md §3.1).
//!
//! Unknown user → ignore; known user, wrong or missing password → `bad_username_or_password`.
//! The asynchronous check hashes on the bounded blocking pool (`offload::on_hash_pool`), so the
//! client's task waits and no worker stalls; a password verified recently needs no hash at all.

use super::{Backend, BoxFut, Outcome, Request};
use crate::authn::{DenyReason, UserCheck, UserIdType};
use crate::Grant;
use serde::{Deserialize, Serialize};

/// The body fields of a built-in authenticator. New users are hashed with
/// `authentication.password_hash_algorithm`; `password_hash_algorithm` here is kept for EMQX
/// compatibility of the REST bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BuiltInConfig {
    /// Which client field is the user id; default `authentication.user_id_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id_type: Option<UserIdType>,
    /// Accepted, not used (see the type's doc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) password_hash_algorithm: Option<serde_json::Value>,
    /// Accepted, not used: the bootstrap file is `authentication.bootstrap_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bootstrap_file: Option<String>,
    /// Accepted, not used: see `bootstrap_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bootstrap_type: Option<String>,
}

/// The built-in back-end.
#[derive(Debug)]
pub(crate) struct BuiltIn {
    user_id_type: Option<UserIdType>,
}

impl BuiltIn {
    pub(crate) fn new(c: &BuiltInConfig) -> Self {
        BuiltIn {
            user_id_type: c.user_id_type,
        }
    }
}

fn outcome(check: UserCheck) -> Outcome {
    match check {
        UserCheck::Unknown => Outcome::Ignore("unknown user"),
        UserCheck::Allow(superuser) => Outcome::Ok(Grant {
            superuser,
            ..Grant::default()
        }),
        UserCheck::Bad | UserCheck::Slow => Outcome::Error(DenyReason::BadCredentials),
    }
}

impl Backend for BuiltIn {
    fn check<'a>(&'a self, req: Request<'a>) -> BoxFut<'a, Outcome> {
        Box::pin(async move {
            let authn = req.builtin;
            let id = authn.user_id(&req.creds, self.user_id_type);
            match authn.check_user(id, req.creds.password, false) {
                UserCheck::Slow => {}
                done => return outcome(done),
            }
            let (authn, id) = (authn.clone(), id.map(str::to_owned));
            let pw = req.creds.password.map(<[u8]>::to_vec);
            let check = crate::offload::on_hash_pool(move || {
                authn.check_user(id.as_deref(), pw.as_deref(), true)
            });
            match check.await {
                Some(c) => outcome(c),
                None => Outcome::Ignore("shutting down"),
            }
        })
    }

    fn check_now(&self, req: Request<'_>) -> Option<Outcome> {
        let id = req.builtin.user_id(&req.creds, self.user_id_type);
        Some(outcome(req.builtin.check_user(
            id,
            req.creds.password,
            true,
        )))
    }
}
