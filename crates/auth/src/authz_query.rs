//! The asynchronous half of an authorization check: what a gateway awaits, on the client's own
//! task, when an HTTP source may have to answer.
//!
//! Owns: [`AuthzQuery`] (the operations a [`crate::ClientAcl`] could not settle from the
//! client's own rules, its cache or answers already fetched) and [`AuthzAnswers`] (their
//! decisions, handed back with [`crate::ClientAcl::accept`]). A query owns everything it needs,
//! so awaiting it borrows no channel: the gateway's sans-I/O channel stays synchronous.
//! Must not know: any protocol.
//!
//! Invariant: a query never waits longer than the HTTP sources' `request_timeout`s (a silent
//! server is ignore, then the next source, then `no_match`).

use crate::authz::{Authorizer, ClientCtx, Decision};
use crate::client_acl::CacheKey;
use std::sync::Arc;

/// Operations to decide with every source, network ones included.
#[derive(Debug)]
pub struct AuthzQuery {
    pub(crate) authz: Arc<Authorizer>,
    pub(crate) ctx: ClientCtx,
    pub(crate) attrs: Option<Arc<crate::backend::ClientAttrs>>,
    pub(crate) actions: Vec<CacheKey>,
}

/// The decisions of an [`AuthzQuery`].
#[derive(Debug, Default)]
pub struct AuthzAnswers(pub(crate) Vec<(CacheKey, Decision)>);

impl AuthzQuery {
    /// Asks the sources about each operation in turn (the client's own task awaits this).
    pub async fn run(self) -> AuthzAnswers {
        let mut out = Vec::with_capacity(self.actions.len());
        for key in self.actions {
            let d = self
                .authz
                .decide(&self.ctx, &key.action(), self.attrs.as_deref())
                .await;
            out.push((key, d));
        }
        AuthzAnswers(out)
    }

    /// How many operations it asks about.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// Whether it asks about nothing.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}
