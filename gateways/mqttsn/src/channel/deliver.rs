//! Gateway → client (docs/mqtt-sn.md §2.10): deliveries from the session's outbox with inflight
//! 1, the outbound topic choice predefined > registered > short > REGISTER first (§2.5), gateway
//! REGISTERs one at a time (§2.7), and retransmission of PUBLISH, PUBREL and REGISTER every
//! `retry_interval` up to `max_retries`, after which the client is disconnected (EMQX never
//! retransmits by default: docs/mqtt-sn.md §2.17.1).

use super::connect::sn_qos;
use super::{Channel, RegInflight, State, ACCEPTED};
use crate::codec::{rc, Flags, Packet, Publish, TopicIdType};
use crate::registry::RegisterError;
use std::time::Instant;
use switchyard_bus::{Delivery, Metrics, Resend, SendPublish};
use switchyard_core::{CloseReason, QoS};

/// Deliveries turned into packets per wakeup, so one busy client cannot starve the others.
const MAX_BATCH: usize = 64;

impl Channel {
    /// Whether deliveries may go out now (connected, or awake after PINGREQ).
    pub fn can_deliver(&self) -> bool {
        self.close.is_none() && matches!(self.state, State::Connected | State::Awake { .. })
    }

    /// Moves deliveries to the outbound packets while the window and the REGISTER flow allow.
    /// Returns how many PUBLISHes were produced.
    pub fn pull_deliveries(&mut self, now: Instant) -> usize {
        self.clock = now;
        if !self.can_deliver() {
            return 0;
        }
        let mut sent = 0;
        while sent < MAX_BATCH && self.reg_inflight.is_none() {
            if let Some(name) = self.reg_queue.pop_front() {
                self.start_register(name, false, now);
                break;
            }
            if self.held.is_empty() && !self.refill_held(now) {
                break;
            }
            let Some(front) = self.held.front() else {
                break;
            };
            if front.qos != QoS::AtMostOnce
                && !self.session.as_ref().is_some_and(|s| s.qos.has_credit())
            {
                break;
            }
            let topic = self.unmount(front.message.topic.as_str()).to_owned();
            match self.outbound_topic(&topic) {
                Some((kind, id)) => {
                    if let Some(d) = self.held.pop_front() {
                        self.send_delivery(d, kind, id, topic, now);
                        sent += 1;
                    }
                }
                None => {
                    self.start_register(topic, false, now);
                }
            }
        }
        self.maybe_back_to_sleep(now);
        sent
    }

    /// Takes the next deliveries from the outbox: QoS 0 freely, QoS 1/2 within the window.
    fn refill_held(&mut self, now: Instant) -> bool {
        let Some(session) = self.session.as_ref() else {
            return false;
        };
        let mut taken = Vec::new();
        session.take_deliveries(now, MAX_BATCH, &mut taken);
        let any = !taken.is_empty();
        self.held.extend(taken);
        any
    }

    /// docs/mqtt-sn.md §2.5: predefined id, else registered id, else a 2-byte short name; `None`
    /// means a REGISTER must come first.
    pub(crate) fn outbound_topic(&self, topic: &str) -> Option<(TopicIdType, u16)> {
        if let Some(id) = self.settings.predefined.id(topic) {
            return Some((TopicIdType::Predefined, id));
        }
        if let Some(id) = self.topics.id(topic) {
            return Some((TopicIdType::Normal, id));
        }
        if let [a, b] = topic.as_bytes() {
            return Some((TopicIdType::Short, u16::from_be_bytes([*a, *b])));
        }
        None
    }

    fn send_delivery(
        &mut self,
        d: Delivery,
        kind: TopicIdType,
        id: u16,
        topic: String,
        now: Instant,
    ) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let send = session.qos.send(d, now);
        if let Some(pkid) = send.pkid {
            self.retries = 0;
            self.inflight_topic = Some((pkid.get(), topic));
        }
        Metrics::inc(&self.bus.metrics().messages_sent);
        self.outbound.push(publish_packet(&send, kind, id));
    }

    /// Sends REGISTER for `name` (allocating its id) and waits for REGACK before anything else.
    pub(crate) fn start_register(&mut self, name: String, resend_inflight: bool, now: Instant) {
        let topic_id = match self.topics.register(&name) {
            Ok(id) => id,
            Err(RegisterError::Full | RegisterError::Wildcard) => {
                tracing::warn!(topic = name, "no topic id left: delivery dropped");
                self.drop_held_for(&name);
                return;
            }
        };
        self.next_reg_msg_id = self.next_reg_msg_id.wrapping_add(1).max(1);
        let msg_id = self.next_reg_msg_id;
        self.outbound.push(Packet::Register {
            topic_id,
            msg_id,
            topic_name: bytes::Bytes::copy_from_slice(name.as_bytes()),
        });
        self.reg_inflight = Some(RegInflight {
            msg_id,
            topic_id,
            name,
            sent_at: now,
            retries: 0,
            resend_inflight,
        });
    }

    fn drop_held_for(&mut self, name: &str) {
        let mp = self.mountpoint.clone();
        let before = self.held.len();
        self.held.retain(|d| {
            let t = d.message.topic.as_str();
            t.strip_prefix(mp.as_str()).unwrap_or(t) != name
        });
        let dropped = (before - self.held.len()) as u64;
        self.bus
            .metrics()
            .messages_dropped
            .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
    }

    /// REGACK for our REGISTER (docs/mqtt-sn.md §2.7): accepted → go on; congestion → wait for the
    /// retry; anything else → skip this topic. A REGACK matching nothing is ignored.
    pub(crate) fn handle_regack(&mut self, _topic_id: u16, msg_id: u16, code: u8, now: Instant) {
        let Some(reg) = self.reg_inflight.as_ref() else {
            return;
        };
        if reg.msg_id != msg_id {
            return;
        }
        match code {
            ACCEPTED => {
                let resend = reg.resend_inflight;
                self.reg_inflight = None;
                if resend {
                    let again = match self.session.as_mut() {
                        Some(s) => s.qos.resume(now),
                        None => Vec::new(),
                    };
                    for r in again {
                        self.push_resend(r);
                    }
                }
            }
            rc::CONGESTION => {}
            _ => {
                let name = reg.name.clone();
                tracing::debug!(topic = name, code, "client refused REGISTER: topic skipped");
                self.reg_inflight = None;
                self.topics.forget(&name);
                self.drop_held_for(&name);
            }
        }
    }

    /// Puts a retransmission (or a resumed session's inflight message) on the wire.
    pub(crate) fn push_resend(&mut self, r: Resend) {
        match r {
            Resend::Publish(s) => {
                let topic = self.unmount(s.delivery.message.topic.as_str()).to_owned();
                let (kind, id) = match self.outbound_topic(&topic) {
                    Some(t) => t,
                    // The id was forgotten (REGACK refused): register again, then resend.
                    None => {
                        self.start_register(topic, true, self.clock);
                        return;
                    }
                };
                if let Some(pkid) = s.pkid {
                    self.inflight_topic = Some((pkid.get(), topic));
                }
                Metrics::inc(&self.bus.metrics().messages_retransmitted);
                self.outbound.push(publish_packet(&s, kind, id));
            }
            Resend::PubRel(pkid) => self.outbound.push(Packet::PubRel { msg_id: pkid.get() }),
        }
    }

    /// Retransmits what is due; past `max_retries` the client is disconnected.
    pub(crate) fn retry_due(&mut self, now: Instant) {
        let max = self.settings.max_retries;
        let retry = self.settings.retry_interval;
        if let Some(reg) = self.reg_inflight.as_mut() {
            if now.saturating_duration_since(reg.sent_at) >= retry {
                if reg.retries >= max {
                    self.fail(
                        CloseReason::ProtocolError("REGISTER retries exhausted".into()),
                        true,
                    );
                    return;
                }
                reg.retries += 1;
                reg.sent_at = now;
                let again = Packet::Register {
                    topic_id: reg.topic_id,
                    msg_id: reg.msg_id,
                    topic_name: bytes::Bytes::copy_from_slice(reg.name.as_bytes()),
                };
                self.outbound.push(again);
            }
        }
        let due = match self.session.as_mut() {
            Some(s) => s.qos.poll_retry(now),
            None => return,
        };
        if due.is_empty() {
            return;
        }
        if self.retries >= max {
            self.fail(
                CloseReason::ProtocolError("delivery retries exhausted".into()),
                true,
            );
            return;
        }
        self.retries += 1;
        for r in due {
            self.push_resend(r);
        }
    }
}

/// The PUBLISH for a delivery: QoS 0 has MsgId 0 (docs/mqtt-sn.md §2.10); RETAIN is the
/// delivery's flag, so a retained message sent because of a new subscription carries it
/// (docs/mqtt-sn.md §2.17.9).
fn publish_packet(s: &SendPublish, kind: TopicIdType, id: u16) -> Packet {
    let d = &s.delivery;
    Packet::Publish(Publish {
        flags: Flags {
            dup: s.dup,
            qos: sn_qos(d.qos),
            retain: d.retain,
            topic_id_type: kind,
            ..Flags::default()
        },
        topic_id: id,
        msg_id: s.pkid.map_or(0, |p| p.get()),
        data: d.message.payload.clone(),
    })
}
