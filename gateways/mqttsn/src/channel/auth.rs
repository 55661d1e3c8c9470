//! Security at the MQTT-SN channel: authentication at CONNECT with the `clientinfo_override`
//! credentials (docs/mqtt-sn.md §2.1; MQTT-SN CONNECT carries none of its own) when
//! `enable_authn` is set, and the ACL on PUBLISH, SUBSCRIBE and the will (docs/mqtt-sn.md §2.4:
//! 0x80 on deny), always.

use super::Channel;
use crate::settings::render;
use std::time::Instant;
use switchyard_auth::{Action, AuthResult, ClientCtx, Credentials, Decision, DenyAction};
use switchyard_bus::Metrics;
use switchyard_core::{CloseReason, Message};

impl Channel {
    /// Authenticates the pending CONNECT; on success sets up the client's ACL view. A failure
    /// is counted; the caller answers CONNACK 0x80.
    pub(crate) fn authenticate(&mut self, client_id: &str, username: Option<&str>) -> bool {
        let s = self.settings.clone();
        let password = s
            .password
            .as_deref()
            .map(|t| render(t, client_id, username));
        let creds = Credentials {
            client_id,
            username,
            password: password.as_deref().map(str::as_bytes),
            peer_ip: Some(self.peer.ip()),
            listener_authn_enabled: s.enable_authn,
        };
        match s.security.authn.authenticate(&creds) {
            AuthResult::Allow { superuser } => {
                self.acl = Some(s.security.authz.client(ClientCtx {
                    client_id: client_id.to_owned(),
                    username: username.map(str::to_owned),
                    peer_ip: Some(self.peer.ip()),
                    superuser,
                }));
                true
            }
            AuthResult::Deny(reason) => {
                Metrics::inc(&self.bus.metrics().auth_failures);
                tracing::info!(peer = %self.peer, client_id, reason = %reason,
                    "CONNECT refused: authentication failed");
                false
            }
        }
    }

    /// Checks a PUBLISH or SUBSCRIBE (client-visible topic, before the mountpoint) against the
    /// ACL. With `deny_action = "disconnect"` a denial also closes the client (DISCONNECT).
    pub(crate) fn authorize(&mut self, action: Action<'_>, now: Instant) -> Decision {
        let Some(acl) = self.acl.as_mut() else {
            return Decision::Deny;
        };
        let decision = acl.check(&action, now);
        if decision == Decision::Deny {
            tracing::info!(action = ?action, "denied by the ACL");
            Metrics::inc(&self.bus.metrics().authz_denials);
            if acl.deny_action() == DenyAction::Disconnect {
                self.fail(CloseReason::NotAuthorized, true);
            }
        }
        decision
    }

    /// The will is authorized when it is published (docs/mqtt-sn.md §2.4); a denied will is
    /// dropped, and counted.
    pub(crate) fn will_authorized(&mut self, m: &Message) -> bool {
        let (denials, now) = (&self.bus.metrics().authz_denials, self.clock);
        self.acl
            .as_mut()
            .is_some_and(|acl| acl.will_allowed(m, now, denials))
    }
}
