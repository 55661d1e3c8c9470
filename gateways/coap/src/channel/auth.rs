//! The ACL at the CoAP channel (docs/coap.md §3.6, §3.7, §3.9): a denied publish or observe is
//! answered 4.01 Unauthorized, as EMQX does; with `deny_action = "disconnect"` the client is
//! dropped too. Topics are checked as the client wrote them, before the mountpoint.

use super::Channel;
use crate::transport::demux::ClientChannel;
use crate::transport::wire::code;
use crate::transport::Exchange;
use std::net::SocketAddr;
use std::time::Instant;
use switchyard_auth::{Action, ClientCtx, Decision, DenyAction};
use switchyard_bus::Metrics;
use switchyard_core::CloseReason;

impl Channel {
    /// Records who this client is after a successful authentication (connection create, or
    /// each connectionless request); the decision cache survives while nothing changes.
    pub(super) fn set_acl(&mut self, username: Option<&str>, superuser: bool, peer: SocketAddr) {
        let ctx = ClientCtx {
            client_id: self.info.client_id.to_string(),
            username: username.map(str::to_owned),
            peer_ip: Some(peer.ip()),
            superuser,
        };
        if self.acl.as_ref().is_some_and(|a| *a.ctx() == ctx) {
            return;
        }
        self.acl = Some(self.gw.settings.security.authz.client(ctx));
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
