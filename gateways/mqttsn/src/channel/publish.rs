//! Client → gateway: PUBLISH with QoS 0/1/2/−1 (docs/mqtt-sn.md §2.8), REGISTER (§2.7),
//! SUBSCRIBE and UNSUBSCRIBE (§2.9), and the acks of our own downlinks (PUBACK, PUBREC,
//! PUBCOMP).
//! Errors always go back in PUBACK / REGACK / SUBACK return codes; none closes the client.

use super::{Channel, ACCEPTED};
use crate::codec::{rc, Flags, Packet, Publish, SnQos, SubTopic, Subscribe, TopicIdType};
use crate::registry::RegisterError;
use std::num::NonZeroU16;
use std::time::Instant;
use switchyard_auth::{Action, Decision};
use switchyard_bus::{BusError, Incoming2, Metrics, SubOptions};
use switchyard_core::{ClientId, Message, Origin, QoS, SubscriptionFilter, TopicFilter, TopicName};

/// Resolves a short (2-byte) topic name.
pub(crate) fn short_name(id: u16) -> Option<String> {
    String::from_utf8(id.to_be_bytes().to_vec()).ok()
}

impl Channel {
    /// The client-visible topic name of an inbound topic id (docs/mqtt-sn.md §2.5): normal and
    /// predefined ids share one table, predefined first; short names are the two bytes.
    pub(super) fn inbound_topic(&self, kind: TopicIdType, id: u16) -> Result<String, u8> {
        match kind {
            TopicIdType::Normal | TopicIdType::Predefined => self
                .settings
                .predefined
                .name(id)
                .or_else(|| self.topics.name(id))
                .map(str::to_owned)
                .ok_or(rc::INVALID_TOPIC_ID),
            TopicIdType::Short => {
                let name = short_name(id).ok_or(rc::NOT_SUPPORTED)?;
                if name.contains(['+', '#']) {
                    return Err(rc::NOT_SUPPORTED);
                }
                Ok(name)
            }
            TopicIdType::Reserved => Err(rc::NOT_SUPPORTED),
        }
    }

    pub(crate) fn handle_publish(&mut self, p: Publish, now: Instant) {
        let puback = |rc: u8| Packet::PubAck {
            topic_id: p.topic_id,
            msg_id: p.msg_id,
            rc,
        };
        if p.flags.qos == SnQos::Minus1 && !self.settings.enable_qos3 {
            self.outbound.push(puback(rc::NOT_SUPPORTED));
            return;
        }
        // A sensor publishes to the same topic id over and over: the last resolution is kept
        // (an id's name never changes within a channel: dynamic ids are never reused).
        let key = (p.flags.topic_id_type, p.topic_id);
        let (name, topic) = match self.last_topic.take() {
            Some((k, name, topic)) if k == key => (name, topic),
            _ => {
                let name = match self.inbound_topic(p.flags.topic_id_type, p.topic_id) {
                    // [[rewrite]] rules apply before authorization (EMQX's order).
                    Ok(n) => self.settings.security.rewrite.publish(&n).into_owned(),
                    Err(code) => {
                        tracing::debug!(topic_id = p.topic_id, code, "PUBLISH refused");
                        self.outbound.push(puback(code));
                        return;
                    }
                };
                let Ok(topic) =
                    TopicName::with_max_levels(self.mount(&name), self.settings.max_topic_levels)
                else {
                    self.outbound.push(puback(rc::NOT_SUPPORTED));
                    return;
                };
                (name, topic)
            }
        };
        self.handle_resolved_publish(p, &name, topic.clone(), now);
        self.last_topic = Some((key, name, topic));
    }

    fn handle_resolved_publish(&mut self, p: Publish, name: &str, topic: TopicName, now: Instant) {
        let puback = |rc: u8| Packet::PubAck {
            topic_id: p.topic_id,
            msg_id: p.msg_id,
            rc,
        };
        let qos = p.flags.qos.to_qos();
        let pkid = NonZeroU16::new(p.msg_id);
        if qos != QoS::AtMostOnce && pkid.is_none() {
            // MQTT-SN 1.2 §5.3.5: QoS 1/2 need a message id.
            self.outbound.push(puback(rc::NOT_SUPPORTED));
            return;
        }
        let action = Action::Publish {
            topic: name,
            qos,
            retain: p.flags.retain,
        };
        if self.authorize(action, now) == Decision::Deny {
            // docs/mqtt-sn.md §2.8: ACL deny → PUBACK 0x80 (unless deny_action closed the client).
            if self.close.is_none() {
                self.outbound.push(puback(rc::NOT_AUTHORIZED));
            }
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let mut msg = Message::new(topic, p.data.clone(), qos, p.flags.retain);
        msg.received = now;
        msg.origin = Some(Origin {
            session: session.id,
            client_id: session.client_id.clone(),
        });
        match (qos, pkid) {
            (QoS::ExactlyOnce, Some(id)) => match session.qos.on_incoming_qos2(id, now) {
                Incoming2::New => {
                    self.bus.publish(msg);
                    self.outbound.push(Packet::PubRec { msg_id: p.msg_id });
                }
                // A retransmission whose PUBREC was lost: PUBREC again, do not publish again
                // (EMQX answers PUBACK 0x03 here; not copied, docs/mqtt-sn.md §2.17.10).
                Incoming2::Duplicate => self.outbound.push(Packet::PubRec { msg_id: p.msg_id }),
                Incoming2::TooMany => self.outbound.push(puback(rc::CONGESTION)),
            },
            (QoS::AtLeastOnce, _) => {
                self.bus.publish(msg);
                self.outbound.push(puback(ACCEPTED));
            }
            _ => {
                self.bus.publish(msg);
            }
        }
    }

    pub(crate) fn handle_pubrel(&mut self, msg_id: u16) {
        if let (Some(s), Some(id)) = (self.session.as_mut(), NonZeroU16::new(msg_id)) {
            if !s.qos.on_pubrel(id) {
                tracing::debug!(msg_id, "PUBREL for an id not awaiting release");
                Metrics::inc(&self.bus.metrics().pubrel_missed);
            }
        }
        // PUBCOMP either way, so a lost PUBCOMP is recovered by the client's retry.
        self.outbound.push(Packet::PubComp { msg_id });
    }

    pub(crate) fn handle_puback(&mut self, topic_id: u16, msg_id: u16, code: u8, now: Instant) {
        let Some(id) = NonZeroU16::new(msg_id) else {
            return;
        };
        if code == rc::INVALID_TOPIC_ID {
            // docs/mqtt-sn.md §2.7: the client lost our id (e.g. resumed session): REGISTER the
            // name again and resend the same message once it is acknowledged.
            if let Some((m, name)) = self.inflight_topic.clone() {
                if m == msg_id && self.settings.predefined.id(&name).is_none() {
                    tracing::debug!(topic_id, name, "PUBACK invalid topic id: registering again");
                    self.start_register(name, true, now);
                    return;
                }
            }
        }
        if code != ACCEPTED {
            tracing::debug!(topic_id, msg_id, code, "client refused a delivery");
        }
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match s.qos.on_puback(id) {
            Ok(_) => self.on_acked(),
            Err(e) => {
                tracing::debug!(error = %e, "PUBACK ignored");
                Metrics::inc(&self.bus.metrics().puback_missed);
            }
        }
    }

    pub(crate) fn handle_pubrec(&mut self, msg_id: u16, now: Instant) {
        let Some(id) = NonZeroU16::new(msg_id) else {
            return;
        };
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match s.qos.on_pubrec(id, true, now) {
            Ok(()) => {
                self.retries = 0;
                self.outbound.push(Packet::PubRel { msg_id });
            }
            Err(e) => {
                tracing::debug!(error = %e, "PUBREC ignored");
                Metrics::inc(&self.bus.metrics().pubrec_missed);
            }
        }
    }

    pub(crate) fn handle_pubcomp(&mut self, msg_id: u16) {
        let Some(id) = NonZeroU16::new(msg_id) else {
            return;
        };
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match s.qos.on_pubcomp(id) {
            Ok(_) => self.on_acked(),
            Err(e) => {
                tracing::debug!(error = %e, "PUBCOMP ignored");
                Metrics::inc(&self.bus.metrics().pubcomp_missed);
            }
        }
    }

    fn on_acked(&mut self) {
        self.retries = 0;
        self.inflight_topic = None;
    }

    /// REGISTER from the client (docs/mqtt-sn.md §2.7): predefined names get their predefined id,
    /// others a dynamic id; wildcards and a full registry get 0x03. The ACL is not consulted.
    pub(crate) fn handle_register(&mut self, msg_id: u16, name: &[u8]) {
        let result = match std::str::from_utf8(name) {
            Ok(n) if TopicName::new(n).is_ok() || n.contains(['+', '#']) => {
                match self.settings.predefined.id(n) {
                    Some(id) => Ok(id),
                    None => self.topics.register(n),
                }
            }
            _ => Err(RegisterError::Wildcard),
        };
        let (topic_id, code) = match result {
            Ok(id) => (id, ACCEPTED),
            Err(_) => (0, rc::NOT_SUPPORTED),
        };
        self.outbound.push(Packet::RegAck {
            topic_id,
            msg_id,
            rc: code,
        });
    }

    pub(crate) fn handle_subscribe(&mut self, s: Subscribe) {
        let qos = s.flags.qos.to_qos();
        let (topic_id, code) = match &s.topic {
            SubTopic::Name(bytes) => match std::str::from_utf8(bytes) {
                Ok(name) if name.contains(['+', '#']) => (0, self.subscribe_filter(name, qos)),
                Ok(name) => {
                    let id = match self.settings.predefined.id(name) {
                        Some(id) => Ok(id),
                        None => self.topics.register(name),
                    };
                    match id {
                        Ok(id) => match self.subscribe_filter(name, qos) {
                            ACCEPTED => (id, ACCEPTED),
                            code => (0, code),
                        },
                        Err(_) => (0, rc::EXCEEDED_LIMITATION),
                    }
                }
                Err(_) => (0, rc::NOT_SUPPORTED),
            },
            SubTopic::Predefined(id) => match self.inbound_topic(TopicIdType::Predefined, *id) {
                Ok(name) => match self.subscribe_filter(&name, qos) {
                    ACCEPTED => (*id, ACCEPTED),
                    code => (0, code),
                },
                Err(_) => (0, rc::INVALID_TOPIC_ID),
            },
            SubTopic::Short(b) => match std::str::from_utf8(b) {
                Ok(name) => (0, self.subscribe_filter(name, qos)),
                Err(_) => (0, rc::NOT_SUPPORTED),
            },
            SubTopic::Reserved(_) => (0, rc::NOT_SUPPORTED),
        };
        if code != ACCEPTED {
            tracing::debug!(topic = ?s.topic, code, "subscription refused");
        }
        // docs/mqtt-sn.md §2.9: SUBACK flags carry only the granted QoS; the id type is always
        // 00.
        let flags = Flags {
            qos: SnQos::from_qos(qos),
            ..Flags::default()
        };
        self.outbound.push(Packet::SubAck {
            flags,
            topic_id,
            msg_id: s.msg_id,
            rc: code,
        });
    }

    /// The mounted subscription filter for a client filter.
    fn mounted_filter(&self, name: &str) -> Option<SubscriptionFilter> {
        let max = self.settings.max_topic_levels;
        let sf = SubscriptionFilter::parse(name, max).ok()?;
        if self.mountpoint.is_empty() {
            return Some(sf);
        }
        let filter = TopicFilter::with_max_levels(self.mount(sf.filter.as_str()), max).ok()?;
        Some(SubscriptionFilter {
            group: sf.group,
            filter,
        })
    }

    /// Subscribes the session; returns the SUBACK return code.
    fn subscribe_filter(&mut self, name: &str, qos: QoS) -> u8 {
        // [[rewrite]] rules apply before authorization (EMQX's order).
        let rewritten = self.settings.security.rewrite.clone();
        let name = &*rewritten.subscribe(name);
        let Some(sf) = self.mounted_filter(name) else {
            return rc::NOT_SUPPORTED;
        };
        let action = Action::Subscribe { filter: name, qos };
        if self.authorize(action, self.clock) == Decision::Deny {
            // docs/mqtt-sn.md §2.9: ACL deny → SUBACK 0x80.
            return rc::NOT_AUTHORIZED;
        }
        let Some(session) = self.session.as_mut() else {
            return rc::NOT_SUPPORTED;
        };
        // docs/mqtt-sn.md §2.9: rh=0 (retained on subscribe), rap=0, nl=0; granted = requested.
        let opts = SubOptions {
            qos,
            ..SubOptions::default()
        };
        match self.bus.subscribe(session, sf, opts) {
            Ok(_) => ACCEPTED,
            Err(BusError::QuotaExceeded(_)) => rc::EXCEEDED_LIMITATION,
            Err(_) => rc::NOT_SUPPORTED,
        }
    }

    /// UNSUBSCRIBE: always answered UNSUBACK, even when nothing matched (docs/mqtt-sn.md §2.9).
    pub(crate) fn handle_unsubscribe(&mut self, s: Subscribe) {
        let name = match &s.topic {
            SubTopic::Name(b) | SubTopic::Reserved(b) => {
                std::str::from_utf8(b).ok().map(str::to_owned)
            }
            SubTopic::Predefined(id) => self.inbound_topic(TopicIdType::Predefined, *id).ok(),
            SubTopic::Short(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        };
        if let Some(sf) = name.as_deref().and_then(|n| self.mounted_filter(n)) {
            if let Some(session) = self.session.as_mut() {
                self.bus.unsubscribe(session, &sf);
            }
        }
        self.outbound.push(Packet::UnsubAck { msg_id: s.msg_id });
    }
}

/// QoS −1 PUBLISH from an address without a client (docs/mqtt-sn.md §2.8): only predefined and
/// short topics; published as QoS 0 from `NegQoS-Client`, without the mountpoint (5.8.9
/// behaviour).
pub(crate) fn publish_negqos(gw: &crate::MqttSnGateway, p: &Publish) {
    let s = &gw.settings;
    let name = match p.flags.topic_id_type {
        TopicIdType::Predefined => s.predefined.name(p.topic_id).map(str::to_owned),
        TopicIdType::Short => short_name(p.topic_id),
        TopicIdType::Normal | TopicIdType::Reserved => None,
    };
    let Some(topic) = name.and_then(|n| TopicName::with_max_levels(n, s.max_topic_levels).ok())
    else {
        tracing::debug!(
            topic_id = p.topic_id,
            "QoS -1 PUBLISH on an unusable topic ignored"
        );
        return;
    };
    let mut msg = Message::new(topic, p.data.clone(), QoS::AtMostOnce, p.flags.retain);
    msg.origin = Some(Origin {
        session: switchyard_core::SessionId(0),
        client_id: ClientId::from("NegQoS-Client"),
    });
    gw.bus.publish(msg);
}
