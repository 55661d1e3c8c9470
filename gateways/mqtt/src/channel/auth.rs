//! Security at the channel: authentication at CONNECT (CONNACK 0x04/0x05 on MQTT 3.x,
//! 0x86/0x87 on MQTT 5), the ACL on PUBLISH, SUBSCRIBE and the will, and the per-client publish
//! rate (`mqtt.max_publish_rate`). What is allowed is decided by `switchyard-auth`; this file
//! only maps its answers onto MQTT.

use super::codes::{v3, v5};
use super::{Channel, ConnectDecision, Violation};
use crate::codec::{ConnAck, Connect, Packet};
use std::time::Instant;
use switchyard_auth::{
    authorize, will_allowed, Action, AuthzAnswers, AuthzQuery, Credentials, Decision, DenyReason,
    OwnedCredentials, RateLimiter, Verdict,
};
use switchyard_bus::Metrics;
use switchyard_core::{ClientId, CloseReason, Message, QoS, SubscriptionFilter};

impl Channel {
    /// What CONNECT presents to the chain of authenticators (the certificate's name as the
    /// username when the listener says so). The driver awaits the chain with these on the
    /// connection's own task and hands the verdict over with [`Channel::set_verdict`], so a
    /// network back-end never blocks a worker. A client that asks for an assigned id is checked
    /// with an empty `${clientid}`.
    pub fn connect_credentials(&self, c: &Connect) -> OwnedCredentials {
        let username = match &self.cert_username {
            Some(cn) => Some(cn.clone()),
            None => c.username.as_ref().map(|u| u.to_string()),
        };
        OwnedCredentials {
            client_id: c.client_id.to_string(),
            username,
            password: c.password.as_ref().map(|p| p.to_vec()),
            peer_ip: Some(self.peer.ip()),
            listener_authn_enabled: self.settings.enable_authn,
        }
    }

    /// The chain's verdict for this connection's CONNECT, used instead of a synchronous check.
    pub fn set_verdict(&mut self, verdict: Verdict) {
        self.verdict = Some(verdict);
    }

    /// Authenticates CONNECT. On success the client's ACL view and rate limiter are set up; on
    /// failure a refusing CONNACK is queued and the failure counted.
    pub(crate) fn authenticate(
        &mut self,
        c: &Connect,
        client_id: &ClientId,
        now: Instant,
    ) -> Result<(), ConnectDecision> {
        let s = self.settings.clone();
        let creds = Credentials {
            client_id: client_id.as_str(),
            username: c.username.as_deref(),
            password: c.password.as_deref(),
            peer_ip: Some(self.peer.ip()),
            listener_authn_enabled: s.enable_authn,
        };
        let verdict = match self.verdict.take() {
            Some(v) => v,
            None => s.security.authenticate_now(&creds),
        };
        let username = c.username.as_deref();
        match s
            .security
            .admit(&verdict, client_id.as_str(), username, Some(self.peer.ip()))
        {
            Ok(acl) => {
                self.acl = Some(acl);
                let rate = s.max_publish_rate;
                self.publish_rate = (rate > 0).then(|| RateLimiter::new(rate, rate, now));
                Ok(())
            }
            Err(reason) => {
                Metrics::inc(&self.bus.metrics().auth_failures);
                tracing::info!(peer = %self.peer, client_id = %client_id, reason = %reason,
                    "CONNECT refused: authentication failed");
                // MQTT 3.1.1 §3.2.2.3 / MQTT 5 §3.2.2.2.
                let code = match (self.version.is_v5(), reason) {
                    (false, DenyReason::BadCredentials) => v3::BAD_USERNAME_PASSWORD,
                    (false, DenyReason::NotAuthorized) => v3::NOT_AUTHORIZED,
                    (true, DenyReason::BadCredentials) => v5::BAD_USERNAME_OR_PASSWORD,
                    (true, DenyReason::NotAuthorized) => v5::NOT_AUTHORIZED,
                };
                self.outbound
                    .push(Packet::ConnAck(ConnAck::new(code, false)));
                self.close = Some(CloseReason::NotAuthorized);
                Err(ConnectDecision::Refused)
            }
        }
    }

    /// Checks a PUBLISH or SUBSCRIBE against the ACL. A client that never authenticated is
    /// denied. With `deny_action = "disconnect"` a denial also closes the connection (MQTT 5
    /// DISCONNECT 0x87).
    pub(crate) fn authorize(&mut self, action: Action<'_>, now: Instant) -> Decision {
        let denials = &self.bus.metrics().authz_denials;
        let (decision, disconnect) = authorize(self.acl.as_mut(), &action, now, denials);
        if disconnect {
            self.fail(CloseReason::NotAuthorized);
        }
        decision
    }

    /// What must be asked of a network authorization source (HTTP) before `packet` can be
    /// handled: the driver awaits it on this connection's task and hands the answers over with
    /// [`Channel::accept_authz`], then handles the packet, whose checks find them. `None` (the
    /// fast path: no HTTP source, a superuser, a cached decision) costs one flag test. The
    /// topics are the ones the checks will see: alias resolved, `[[rewrite]]` applied.
    pub fn authz_query(&self, packet: &Packet, now: Instant) -> Option<AuthzQuery> {
        let acl = self.acl.as_ref().filter(|a| a.may_query())?;
        let rewrite = &self.settings.security.rewrite;
        match packet {
            Packet::Publish(p) => {
                let topic = if p.topic.is_empty() {
                    let alias = p.properties.topic_alias?;
                    self.inbound_aliases.get(&alias)?.as_str().to_owned()
                } else {
                    p.topic.to_string()
                };
                let topic = rewrite.publish(&topic);
                let action = Action::Publish {
                    topic: &topic,
                    qos: p.qos,
                    retain: p.retain,
                };
                acl.query(&[action], now)
            }
            Packet::Subscribe(s) => {
                let levels = self.settings.max_topic_levels;
                let filters: Vec<(SubscriptionFilter, QoS)> = s
                    .filters
                    .iter()
                    .filter_map(|(f, o)| {
                        let f = rewrite.subscribe(f);
                        SubscriptionFilter::parse(&f, levels)
                            .ok()
                            .map(|sf| (sf, o.qos))
                    })
                    .collect();
                let actions: Vec<Action<'_>> = filters
                    .iter()
                    .map(|(sf, qos)| Action::Subscribe {
                        filter: sf.filter.as_str(),
                        qos: *qos,
                    })
                    .collect();
                acl.query(&actions, now)
            }
            _ => None,
        }
    }

    /// What must be asked of a network source before the will can be checked at close.
    pub fn will_query(&self, now: Instant) -> Option<AuthzQuery> {
        if !self.close.as_ref().is_some_and(CloseReason::publishes_will) {
            return None;
        }
        let will = self.will.as_ref()?;
        let acl = self.acl.as_ref().filter(|a| a.may_query())?;
        let m = &will.message;
        let action = Action::Publish {
            topic: m.topic.as_str(),
            qos: m.qos,
            retain: m.retain,
        };
        acl.query(&[action], now)
    }

    /// The answers of an [`AuthzQuery`] this channel asked for.
    pub fn accept_authz(&mut self, answers: AuthzAnswers) {
        if let Some(acl) = self.acl.as_mut() {
            acl.accept(answers);
        }
    }

    /// When the client's credentials expire (a JWT's `exp`, an HTTP authenticator's
    /// `expire_at`): the driver closes the connection then (MQTT 5 DISCONNECT 0x87, as EMQX).
    pub fn credentials_expire_at(&self) -> Option<std::time::SystemTime> {
        self.acl.as_ref().and_then(|a| a.expire_at())
    }

    /// The will is authorized when it is published (it may have been allowed at CONNECT and
    /// denied since); a denied will is dropped, and counted.
    pub(crate) fn will_authorized(&mut self, m: &Message) -> bool {
        let denials = &self.bus.metrics().authz_denials;
        will_allowed(self.acl.as_mut(), m, self.clock, denials)
    }

    /// Takes one PUBLISH from the client's rate budget; above `mqtt.max_publish_rate` the
    /// connection is closed (MQTT 5 DISCONNECT 0x96 Message rate too high) and false returned.
    pub(crate) fn publish_rate_ok(&mut self, now: Instant) -> bool {
        let Some(rate) = self.publish_rate.as_mut() else {
            return true;
        };
        if rate.try_acquire(now) {
            return true;
        }
        tracing::warn!(
            limit = self.settings.max_publish_rate,
            "publish rate above mqtt.max_publish_rate; disconnecting"
        );
        self.violation(Violation::MessageRateTooHigh);
        false
    }
}
