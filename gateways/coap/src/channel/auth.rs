//! The ACL at the CoAP channel (docs/coap.md §3.6, §3.7, §3.9): a denied publish or observe is
//! answered 4.01 Unauthorized, as EMQX does; with `deny_action = "disconnect"` the client is
//! dropped too. Topics are checked as the client wrote them, before the mountpoint. An HTTP
//! source's answer is fetched first by the client's task (`authz_query`), so the checks here
//! stay synchronous.

use super::request::{self, Resource};
use super::Channel;
use crate::transport::demux::ClientChannel;
use crate::transport::wire::{self, code};
use crate::transport::{Exchange, Request};
use std::net::SocketAddr;
use std::time::Instant;
use switchyard_auth::{
    Action, AuthzAnswers, AuthzQuery, ClientAcl, ClientCtx, Decision, DenyAction, Grant,
};
use switchyard_bus::Metrics;
use switchyard_core::CloseReason;

impl Channel {
    /// Records who this client is after a successful authentication (connection create, or
    /// each connectionless request), with what its authenticator granted (its own `acl`,
    /// checked first, its expiry and attributes); the decision cache survives while nothing
    /// changes.
    pub(super) fn set_acl(&mut self, username: Option<&str>, grant: &Grant, peer: SocketAddr) {
        let ctx = ClientCtx {
            client_id: self.info.client_id.to_string(),
            username: username.map(str::to_owned),
            peer_ip: Some(peer.ip()),
            superuser: grant.superuser,
        };
        let same = |a: &ClientAcl| *a.ctx() == ctx && a.expire_at() == grant.expire_at;
        if self.acl.as_ref().is_some_and(same) {
            return;
        }
        let acl = self
            .gw
            .settings
            .security
            .authz
            .client_with(ctx, grant.acl.clone())
            .with_expiry(grant.expire_at)
            .with_attrs(grant.client_attrs.clone());
        self.acl = Some(acl);
    }

    /// Whether the client's credentials (a JWT's `exp`, an HTTP authenticator's `expire_at`)
    /// have expired: the client is then closed at its next timer.
    pub(super) fn credentials_expired(&self) -> bool {
        let at = self.acl.as_ref().and_then(|a| a.expire_at());
        at.is_some_and(|at| at <= std::time::SystemTime::now())
    }

    /// When the credentials expire, on the drivers' clock (`switchyard_net::clock`): the
    /// wall-clock time left, added to its reading now.
    pub(super) fn expiry_deadline(&self) -> Option<Instant> {
        let at = self.acl.as_ref().and_then(|a| a.expire_at())?;
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        Some(switchyard_net::clock::now() + left)
    }

    /// What must be asked of a network authorization source (HTTP) before `req` can be
    /// handled: the driver awaits it on this client's own task (never the socket task) and
    /// hands the answers over with [`Channel::accept_authz`]. `None` (no HTTP source, a
    /// superuser, a cached decision, not a publish or observe) costs one flag test. A client
    /// with no ACL view yet gets the one `authorize` would use.
    pub fn authz_query(&mut self, req: &Request, now: Instant) -> Option<AuthzQuery> {
        let authz = &self.gw.settings.security.authz;
        if !authz.has_network() {
            return None;
        }
        let Ok(Resource::PubSub(topic)) = request::resource(&req.packet) else {
            return None;
        };
        let q = request::query(&req.packet).ok()?;
        let con = req.exchange.is_confirmable();
        let s = &self.gw.settings;
        let action = match wire::code_of(&req.packet) {
            code::POST => Action::Publish {
                topic: &topic,
                qos: match &q.qos {
                    Some(v) => request::parse_qos(v).ok()?,
                    None => s.publish_qos.resolve(con),
                },
                retain: match &q.retain {
                    Some(v) => request::parse_bool(v, "invalid retain").ok()?,
                    None => false,
                },
            },
            code::GET if request::observe(&req.packet) == Ok(Some(0)) => Action::Subscribe {
                filter: &topic,
                qos: match &q.qos {
                    Some(v) => request::parse_qos(v).ok()?,
                    None => s.subscribe_qos.resolve(con),
                },
            },
            _ => return None,
        };
        if self.acl.is_none() {
            let ctx = ClientCtx {
                client_id: self.info.client_id.to_string(),
                username: self.info.username.clone(),
                peer_ip: Some(self.peer.ip()),
                superuser: false,
            };
            self.acl = Some(authz.client(ctx));
        }
        self.acl.as_ref()?.query(&[action], now)
    }

    /// The answers of an [`AuthzQuery`] this channel asked for.
    pub fn accept_authz(&mut self, answers: AuthzAnswers) {
        if let Some(acl) = self.acl.as_mut() {
            acl.accept(answers);
        }
    }

    /// Checks a publish or observe; on deny answers 4.01 (and closes the client when
    /// `deny_action = "disconnect"`).
    pub(super) fn authorize(
        &mut self,
        ex: &Exchange,
        action: Action<'_>,
        now: Instant,
    ) -> Decision {
        let decision = match self.acl.as_mut() {
            Some(acl) => acl.check(&action, now),
            // Not authenticated through this channel yet (connection mode without a create on
            // it): decide with the client's identity as registered, never as a superuser.
            None => {
                let ctx = ClientCtx {
                    client_id: self.info.client_id.to_string(),
                    username: self.info.username.clone(),
                    peer_ip: Some(self.peer.ip()),
                    superuser: false,
                };
                self.gw.settings.security.authz.check(&ctx, &action)
            }
        };
        if decision == Decision::Deny {
            tracing::info!(action = ?action, "denied by the ACL");
            Metrics::inc(&self.gw.bus.metrics().authz_denials);
            self.refuse(ex, (code::UNAUTHORIZED, "not authorized"));
            if self.gw.settings.security.authz.deny_action() == DenyAction::Disconnect {
                self.fail(CloseReason::NotAuthorized);
            }
        }
        decision
    }
}
