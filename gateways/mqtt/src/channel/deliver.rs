//! Outbound deliveries: take from the session's outbox while the QoS engine gives credit, turn
//! each into a PUBLISH, and resend what is due (MQTT 3.1.1 §4.4, MQTT 5 §4.9 flow control).

use super::Channel;
use crate::codec::{encoded_len, Ack, Packet, Publish, PublishProperties};
use std::time::Instant;
use switchyard_bus::{Delivery, Metrics, Resend};
use switchyard_core::{PacketId, QoS};

/// At most this many deliveries are turned into packets per wakeup, so one busy subscriber
/// cannot starve its own socket reads.
const MAX_BATCH: usize = 256;

impl Channel {
    /// Moves deliveries from the outbox to the outbound packets while there is inflight credit.
    /// Returns how many were taken.
    pub fn pull_deliveries(&mut self, now: Instant) -> usize {
        self.clock = now;
        if self.close.is_some() {
            return 0;
        }
        let Some(session) = self.session.as_ref() else {
            return 0;
        };
        let mut taken = Vec::new();
        session.take_deliveries(now, MAX_BATCH, &mut taken);
        let n = taken.len();
        for d in taken {
            self.send_delivery(d, now);
        }
        n
    }

    fn send_delivery(&mut self, d: Delivery, now: Instant) {
        if self.session.is_none() {
            return;
        }
        // Built once; a QoS 1/2 PUBLISH gets its real packet id only after the size check, so
        // a dropped message never takes one (any id has the same size).
        let placeholder = (d.qos != QoS::AtMostOnce).then_some(PacketId::MAX);
        let mut packet = publish_packet(&d, placeholder, false, now, self.version.is_v5());
        if let Some(max) = self.client_max_packet {
            // MQTT-3.1.2-25: never send a packet larger than the client accepts; drop it. The
            // size counts a topic alias when aliases are on, the largest form
            // `apply_outbound_alias` may produce (full topic plus alias).
            let alias = (self.client_alias_max > 0).then_some(self.client_alias_max);
            if let Packet::Publish(p) = &mut packet {
                p.properties.topic_alias = alias;
            }
            let size = encoded_len(&packet, self.version);
            if let Packet::Publish(p) = &mut packet {
                p.properties.topic_alias = None;
            }
            if size > max {
                tracing::debug!(topic = %d.message.topic, "delivery larger than client's maximum packet size dropped");
                Metrics::inc(&self.bus.metrics().messages_dropped);
                return;
            }
        }
        let topic = d.message.topic.clone();
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let send = session.qos.send(d, now);
        if let Packet::Publish(p) = &mut packet {
            p.pkid = send.pkid;
        }
        self.apply_outbound_alias(&mut packet, topic);
        Metrics::inc(&self.bus.metrics().messages_sent);
        self.outbound.push(packet);
    }

    /// MQTT 5 §3.3.2.3.4: the first PUBLISH on a topic carries the topic and a new alias;
    /// later ones carry only the alias. Once the client's maximum is used up, topics are sent
    /// in full. Retransmissions never use aliases, since they may follow a new connection.
    fn apply_outbound_alias(&mut self, packet: &mut Packet, topic: switchyard_core::TopicName) {
        if self.client_alias_max == 0 {
            return;
        }
        let Packet::Publish(p) = packet else { return };
        if let Some(alias) = self.outbound_aliases.get(&topic) {
            p.properties.topic_alias = Some(*alias);
            p.topic = bytestring::ByteString::new();
            return;
        }
        let next = self.outbound_aliases.len() + 1;
        if let Ok(alias) = u16::try_from(next) {
            if alias <= self.client_alias_max {
                self.outbound_aliases.insert(topic, alias);
                p.properties.topic_alias = Some(alias);
            }
        }
    }

    pub(crate) fn push_resend(&mut self, r: Resend) {
        let v5 = self.version.is_v5();
        match r {
            Resend::Publish(s) => {
                Metrics::inc(&self.bus.metrics().messages_retransmitted);
                let packet = publish_packet(&s.delivery, s.pkid, s.dup, self.clock, v5);
                self.outbound.push(packet);
            }
            Resend::PubRel(pkid) => self.outbound.push(Packet::PubRel(Ack::new(pkid))),
        }
    }

    pub(crate) fn resend_due(&mut self, now: Instant) {
        let due = match self.session.as_mut() {
            Some(s) => s.qos.poll_retry(now),
            None => return,
        };
        for r in due {
            self.push_resend(r);
        }
    }
}

/// The PUBLISH for a delivery. MQTT 5 gets the end-to-end properties, the remaining expiry
/// (MQTT-3.3.2-6) and every matching subscription identifier.
fn publish_packet(
    d: &Delivery,
    pkid: Option<PacketId>,
    dup: bool,
    now: Instant,
    v5: bool,
) -> Packet {
    let m = &d.message;
    let mut p = Publish {
        dup,
        qos: d.qos,
        retain: d.retain,
        topic: m.topic.as_bytestring().clone(),
        pkid,
        payload: m.payload.clone(),
        properties: PublishProperties::default(),
    };
    if v5 {
        if let Some(props) = &m.properties {
            p.properties = PublishProperties {
                payload_format_indicator: props.payload_format_indicator,
                message_expiry_interval: m.remaining_expiry(now),
                topic_alias: None,
                response_topic: props.response_topic.clone(),
                correlation_data: props.correlation_data.clone(),
                user_properties: props.user_properties.clone(),
                subscription_identifiers: Vec::new(),
                content_type: props.content_type.clone(),
            };
        }
        p.properties.subscription_identifiers = d.subscription_ids.clone();
    }
    Packet::Publish(p)
}
