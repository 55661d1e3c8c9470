//! Inbound PUBLISH and the acknowledgements of both directions (MQTT 3.1.1 §4.3, MQTT 5 §4.3).
//! Incoming QoS 2 uses method B: the message is routed on first receipt and its packet id
//! blocks duplicates until PUBREL.

use super::codes::v5;
use super::{Channel, Violation};
use crate::codec::{Ack, Packet, Publish};
use std::sync::Arc;
use std::time::Instant;
use switchyard_auth::{Action, Decision};
use switchyard_bus::{AckError, Incoming2, Metrics};
use switchyard_core::{Message, Origin, Properties, QoS, TopicName};

impl Channel {
    pub(crate) fn handle_publish(&mut self, p: Publish, now: Instant) {
        if !self.publish_rate_ok(now) {
            return;
        }
        if p.qos > self.settings.max_qos_allowed {
            return self.violation(Violation::QosNotSupported);
        }
        if p.retain && !self.settings.retain_available {
            return self.violation(Violation::RetainNotSupported);
        }
        let Some(topic) = self.resolve_topic(&p) else {
            return;
        };
        // [[rewrite]] rules apply before authorization (EMQX's order).
        let topic = match self.settings.security.rewrite.publish(topic.as_str()) {
            std::borrow::Cow::Borrowed(_) => topic,
            std::borrow::Cow::Owned(t) => {
                match TopicName::with_max_levels(t, self.settings.max_topic_levels) {
                    Ok(t) => t,
                    Err(e) => return self.violation(Violation::TopicNameInvalid(e.to_string())),
                }
            }
        };
        let pkid = p.pkid;
        if topic.as_str().starts_with("$SYS/") || topic.as_str() == "$SYS" {
            // $SYS belongs to the broker: a client's publish there is answered and dropped.
            tracing::info!(topic = %topic, "publish to $SYS by a client dropped");
            let code = if self.version.is_v5() {
                v5::NOT_AUTHORIZED
            } else {
                0
            };
            self.ack_publish(p.qos, pkid, code);
            let why = self.reason_string("$SYS topics are reserved for the broker");
            if let Some(Packet::PubAck(a) | Packet::PubRec(a)) = self.outbound.last_mut() {
                a.properties.reason_string = why;
            }
            return;
        }
        let action = Action::Publish {
            topic: topic.as_str(),
            qos: p.qos,
            retain: p.retain,
        };
        if self.authorize(action, now) == Decision::Deny {
            // MQTT 5: PUBACK/PUBREC 0x87; MQTT 3.x has no code, so the publish is acked and
            // dropped. With deny_action = disconnect the channel is already closing.
            if self.close.is_none() {
                let code = if self.version.is_v5() {
                    v5::NOT_AUTHORIZED
                } else {
                    0
                };
                self.ack_publish(p.qos, pkid, code);
            }
            return;
        }
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if p.qos == QoS::ExactlyOnce {
            let Some(id) = pkid else { return };
            match session.qos.on_incoming_qos2(id, now) {
                Incoming2::New => {}
                Incoming2::Duplicate => return self.outbound.push(Packet::PubRec(Ack::new(id))),
                Incoming2::TooMany => {
                    // MQTT 5 §3.3.4: more unreleased QoS 2 than our Receive Maximum.
                    tracing::warn!(
                        limit = self.settings.max_awaiting_rel,
                        "too many QoS 2 messages awaiting PUBREL"
                    );
                    return self.violation(Violation::ReceiveMaximumExceeded);
                }
            }
        }
        let session_id = session.id;
        let message = self.build_message(
            topic,
            p.payload,
            p.qos,
            p.retain,
            p.properties,
            session_id,
            now,
        );
        let routed = self.bus.publish(message);
        let code = if self.version.is_v5() && routed == 0 {
            v5::NO_MATCHING_SUBSCRIBERS
        } else {
            v5::SUCCESS
        };
        self.ack_publish(p.qos, pkid, code);
    }

    fn ack_publish(&mut self, qos: QoS, pkid: Option<switchyard_core::PacketId>, code: u8) {
        match (qos, pkid) {
            (QoS::AtLeastOnce, Some(id)) => self
                .outbound
                .push(Packet::PubAck(Ack::with_reason(id, code))),
            (QoS::ExactlyOnce, Some(id)) => self
                .outbound
                .push(Packet::PubRec(Ack::with_reason(id, code))),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn build_message(
        &self,
        topic: TopicName,
        payload: bytes::Bytes,
        qos: QoS,
        retain: bool,
        props: crate::codec::PublishProperties,
        session: switchyard_core::SessionId,
        now: Instant,
    ) -> Message {
        let mut m = Message::new(topic, payload, qos, retain);
        m.received = now;
        m.origin = self.info.as_ref().map(|i| Origin {
            session,
            client_id: i.client_id.clone(),
        });
        let props = Properties {
            payload_format_indicator: props.payload_format_indicator,
            message_expiry_interval: props.message_expiry_interval,
            content_type: props.content_type,
            response_topic: props.response_topic,
            correlation_data: props.correlation_data,
            user_properties: props.user_properties,
        };
        if !props.is_empty() {
            m.properties = Some(Arc::new(props));
        }
        m
    }

    /// The topic of an inbound PUBLISH, applying MQTT 5 topic aliases (§3.3.2.3.4).
    fn resolve_topic(&mut self, p: &Publish) -> Option<TopicName> {
        let alias = if self.version.is_v5() {
            p.properties.topic_alias
        } else {
            None
        };
        if let Some(alias) = alias {
            if alias == 0 || alias > self.settings.max_topic_alias {
                self.violation(Violation::TopicAliasOutOfRange(alias));
                return None;
            }
            if p.topic.is_empty() {
                let known = self.inbound_aliases.get(&alias).cloned();
                if known.is_none() {
                    self.violation(Violation::UnknownTopicAlias(alias));
                }
                return known;
            }
        }
        match TopicName::with_max_levels(p.topic.clone(), self.settings.max_topic_levels) {
            Ok(t) => {
                if let Some(alias) = alias {
                    self.inbound_aliases.insert(alias, t.clone());
                }
                Some(t)
            }
            Err(e) => {
                self.violation(Violation::TopicNameInvalid(e.to_string()));
                None
            }
        }
    }

    pub(crate) fn handle_puback(&mut self, a: Ack) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if let Err(e) = session.qos.on_puback(a.pkid) {
            // A stray PUBACK (e.g. after a resume raced a late ack) is harmless; log and go on.
            tracing::debug!(error = %e, "PUBACK ignored");
            Metrics::inc(&self.bus.metrics().puback_missed);
        }
    }

    pub(crate) fn handle_pubrec(&mut self, a: Ack, now: Instant) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let accepted = a.reason_code < 0x80;
        match session.qos.on_pubrec(a.pkid, accepted, now) {
            Ok(()) if accepted => self.outbound.push(Packet::PubRel(Ack::new(a.pkid))),
            Ok(()) => {}
            Err(AckError::UnknownPacketId(_)) => {
                tracing::debug!(pkid = a.pkid.get(), "PUBREC for an id not in flight");
                Metrics::inc(&self.bus.metrics().pubrec_missed);
                let code = if self.version.is_v5() {
                    v5::PACKET_ID_NOT_FOUND
                } else {
                    0
                };
                self.outbound
                    .push(Packet::PubRel(Ack::with_reason(a.pkid, code)));
            }
            Err(e) => {
                tracing::debug!(error = %e, "PUBREC ignored");
                Metrics::inc(&self.bus.metrics().pubrec_missed);
            }
        }
    }

    pub(crate) fn handle_pubrel(&mut self, a: Ack) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let known = session.qos.on_pubrel(a.pkid);
        if !known {
            tracing::debug!(pkid = a.pkid.get(), "PUBREL for an id not awaiting release");
            Metrics::inc(&self.bus.metrics().pubrel_missed);
        }
        // MQTT-4.3.3-11: PUBCOMP even for an unknown id; MQTT 5 says which.
        let code = if known || !self.version.is_v5() {
            0
        } else {
            v5::PACKET_ID_NOT_FOUND
        };
        self.outbound
            .push(Packet::PubComp(Ack::with_reason(a.pkid, code)));
    }

    pub(crate) fn handle_pubcomp(&mut self, a: Ack) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        if let Err(e) = session.qos.on_pubcomp(a.pkid) {
            tracing::debug!(error = %e, "PUBCOMP ignored");
            Metrics::inc(&self.bus.metrics().pubcomp_missed);
        }
    }
}
