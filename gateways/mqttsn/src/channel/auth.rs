//! Security at the MQTT-SN channel: authentication at CONNECT with the `clientinfo_override`
//! credentials (docs/mqtt-sn.md §2.1; MQTT-SN CONNECT carries none of its own) when
//! `enable_authn` is set, and the ACL on PUBLISH, SUBSCRIBE and the will (docs/mqtt-sn.md §2.4:
//! 0x80 on deny), always.

use super::Channel;
use crate::codec::{Packet, SubTopic, TopicIdType};
use crate::settings::render;
use std::time::Instant;
use switchyard_auth::{
    authorize, will_allowed, Action, AuthzAnswers, AuthzQuery, Credentials, Decision,
    OwnedCredentials, Verdict,
};
use switchyard_bus::Metrics;
use switchyard_core::{CloseReason, Message};

impl Channel {
    /// Whether the pending CONNECT must first be checked by a network authenticator: the
    /// chain then waits on the driver's task (never under the client's lock, never on the
    /// receiver that serves every client), which takes the request with
    /// [`Channel::take_auth_request`] and answers with [`Channel::on_verdict`].
    pub(crate) fn wants_async_check(&mut self, client_id: &str, username: Option<&str>) -> bool {
        let s = &self.settings;
        if self.verdict.is_some() || !s.enable_authn || s.security.chain.is_local() {
            return false;
        }
        let password = s
            .password
            .as_deref()
            .map(|t| render(t, client_id, username));
        self.auth_request = Some(OwnedCredentials {
            client_id: client_id.to_owned(),
            username: username.map(str::to_owned),
            password: password.map(String::into_bytes),
            peer_ip: Some(self.peer.ip()),
            listener_authn_enabled: true,
        });
        true
    }

    /// Whether the driver has a check to run before the pending CONNECT goes on.
    pub fn auth_request_pending(&self) -> bool {
        self.auth_request.is_some()
    }

    /// The credentials to check with the chain (see [`Channel::wants_async_check`]).
    pub fn take_auth_request(&mut self) -> Option<OwnedCredentials> {
        self.auth_request.take()
    }

    /// The chain's verdict: the pending CONNECT goes on with it.
    pub fn on_verdict(&mut self, verdict: Verdict) {
        self.verdict = Some(verdict);
        self.request_open();
    }

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
        let verdict = match self.verdict.take() {
            Some(v) => v,
            None => s.security.authenticate_now(&creds),
        };
        match s
            .security
            .admit(&verdict, client_id, username, Some(self.peer.ip()))
        {
            Ok(acl) => {
                self.acl = Some(acl);
                true
            }
            Err(reason) => {
                Metrics::inc(&self.bus.metrics().auth_failures);
                tracing::info!(peer = %self.peer, client_id, reason = %reason,
                    "CONNECT refused: authentication failed");
                false
            }
        }
    }

    /// Admits a client whose DTLS-PSK handshake proved its identity: its ACL view, never a
    /// superuser.
    pub(crate) fn admit_proven(&mut self, client_id: &str, username: Option<&str>) {
        let ctx = switchyard_auth::ClientCtx {
            client_id: client_id.to_owned(),
            username: username.map(str::to_owned),
            peer_ip: Some(self.peer.ip()),
            superuser: false,
        };
        self.acl = Some(self.settings.security.authz.client(ctx));
    }

    /// Checks a PUBLISH or SUBSCRIBE (client-visible topic, before the mountpoint) against the
    /// ACL. With `deny_action = "disconnect"` a denial also closes the client (DISCONNECT).
    pub(crate) fn authorize(&mut self, action: Action<'_>, now: Instant) -> Decision {
        let denials = &self.bus.metrics().authz_denials;
        let (decision, disconnect) = authorize(self.acl.as_mut(), &action, now, denials);
        if disconnect {
            self.fail(CloseReason::NotAuthorized, true);
        }
        decision
    }

    /// What must be asked of a network authorization source (HTTP) before `packet` can be
    /// handled: the client's driver awaits it on the client's own task (never the listener's,
    /// which serves every client) and hands the answers over with [`Channel::accept_authz`].
    /// `None` (no HTTP source, a superuser, a cached decision, not a PUBLISH or SUBSCRIBE)
    /// costs one flag test. Topics are the client-visible names with `[[rewrite]]` applied, as
    /// the checks see them.
    pub(crate) fn authz_query(&self, packet: &Packet, now: Instant) -> Option<AuthzQuery> {
        let acl = self.acl.as_ref().filter(|a| a.may_query())?;
        let rewrite = &self.settings.security.rewrite;
        match packet {
            Packet::Publish(p) => {
                let name = self.inbound_topic(p.flags.topic_id_type, p.topic_id).ok()?;
                let name = rewrite.publish(&name);
                let action = Action::Publish {
                    topic: &name,
                    qos: p.flags.qos.to_qos(),
                    retain: p.flags.retain,
                };
                acl.query(&[action], now)
            }
            Packet::Subscribe(s) => {
                let name = match &s.topic {
                    SubTopic::Name(b) => std::str::from_utf8(b).ok()?.to_owned(),
                    SubTopic::Short(b) => std::str::from_utf8(b).ok()?.to_owned(),
                    SubTopic::Predefined(id) => {
                        self.inbound_topic(TopicIdType::Predefined, *id).ok()?
                    }
                    SubTopic::Reserved(_) => return None,
                };
                let name = rewrite.subscribe(&name);
                let action = Action::Subscribe {
                    filter: &name,
                    qos: s.flags.qos.to_qos(),
                };
                acl.query(&[action], now)
            }
            _ => None,
        }
    }

    /// Whether a check may need an HTTP source's answer at all (one flag test): the receiver's
    /// hot path asks this before it reads the clock for [`Channel::authz_query`].
    pub(crate) fn authz_may_query(&self) -> bool {
        self.acl.as_ref().is_some_and(|a| a.may_query())
    }

    /// What must be asked of a network source before the will can be checked at close (the
    /// driver awaits it before `finish`).
    pub(crate) fn will_query(&self, now: Instant) -> Option<AuthzQuery> {
        if !self.close.as_ref().is_some_and(CloseReason::publishes_will) {
            return None;
        }
        let will = self.will.as_ref()?;
        let acl = self.acl.as_ref().filter(|a| a.may_query())?;
        let action = Action::Publish {
            topic: will.topic.as_str(),
            qos: will.qos,
            retain: will.retain,
        };
        acl.query(&[action], now)
    }

    /// When the client's credentials expire (a JWT's `exp`, an HTTP authenticator's
    /// `expire_at`): the driver disconnects the client then (DISCONNECT, as EMQX's MQTT does).
    pub(crate) fn credentials_expire_at(&self) -> Option<std::time::SystemTime> {
        self.acl.as_ref().and_then(|a| a.expire_at())
    }

    /// The answers of an [`AuthzQuery`] this channel asked for.
    pub(crate) fn accept_authz(&mut self, answers: AuthzAnswers) {
        if let Some(acl) = self.acl.as_mut() {
            acl.accept(answers);
        }
    }

    /// The will is authorized when it is published (docs/mqtt-sn.md §2.4); a denied will is
    /// dropped, and counted.
    pub(crate) fn will_authorized(&mut self, m: &Message) -> bool {
        let denials = &self.bus.metrics().authz_denials;
        will_allowed(self.acl.as_mut(), m, self.clock, denials)
    }
}
