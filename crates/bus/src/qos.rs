//! The QoS engine: packet ids, the outgoing inflight window, QoS 1/2 state both ways,
//! redelivery and retry timers. Sans-I/O: every input carries `now`, every output is a value the
//! gateway turns into its own packets, so MQTT and MQTT-SN share it and tests run on a simulated
//! clock. (Every session has one, but CoAP and LwM2M do not use it: they pace deliveries with
//! their own CoAP-level windows, one unacknowledged CON notification or one outstanding
//! command.)
//!
//! Invariants: a packet id is in use at most once per direction; the outgoing window never holds
//! more than `max_inflight` entries; entries stay in send order, so redelivery keeps order
//! (MQTT-4.6.0-1).

use crate::delivery::Delivery;
use crate::store::{StoreLink, StoreOp, StoredStage};
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU16;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::{PacketId, QoS};
use thiserror::Error;

/// Engine limits, taken from the bus config and the peer's own limits.
#[derive(Debug, Clone, Copy)]
pub struct QosConfig {
    /// Outgoing window (already the minimum of ours and the client's receive maximum).
    pub max_inflight: u16,
    /// Resend unacked messages on a live connection after this long (None = never).
    pub retry_interval: Option<Duration>,
    /// Incoming QoS 2 ids awaiting PUBREL (0 = unlimited).
    pub max_awaiting_rel: usize,
    /// How long an incoming QoS 2 id may wait for PUBREL.
    pub await_rel_timeout: Duration,
}

/// A peer acknowledged something we do not have in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AckError {
    /// No outgoing message with this packet id (MQTT 5 reason 0x92 for PUBREL/PUBCOMP).
    #[error("packet id {0} not in flight")]
    UnknownPacketId(u16),
    /// The ack does not fit the stage (e.g. PUBACK for a QoS 2 message).
    #[error("packet id {0}: acknowledgement does not match the QoS flow")]
    WrongStage(u16),
}

/// A publish to put on the wire now.
#[derive(Debug, Clone)]
pub struct SendPublish {
    /// `None` for QoS 0.
    pub pkid: Option<PacketId>,
    /// What to send.
    pub delivery: Delivery,
    /// Whether this is a redelivery.
    pub dup: bool,
}

/// Something to send again.
#[derive(Debug, Clone)]
pub enum Resend {
    /// The PUBLISH again, with DUP set.
    Publish(SendPublish),
    /// The PUBREL again (QoS 2 after PUBREC).
    PubRel(PacketId),
}

/// The answer to an incoming QoS 2 PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming2 {
    /// First time: publish it, then answer PUBREC.
    New,
    /// A retransmission of an id awaiting PUBREL: answer PUBREC, do not publish again.
    Duplicate,
    /// `max_awaiting_rel` reached: refuse (MQTT 5 reason 0x93 / MQTT-SN congestion).
    TooMany,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What the peer owes us next.
enum Stage {
    Ack,
    Rec,
    Comp,
}

#[derive(Debug, Clone)]
struct Inflight {
    pkid: PacketId,
    delivery: Delivery,
    stage: Stage,
    sent_at: Instant,
}

/// Per-session QoS state. Owned by the connection task while online, by the registry while
/// offline.
#[derive(Debug, Clone)]
pub struct QosEngine {
    cfg: QosConfig,
    next_pkid: u16,
    outgoing: VecDeque<Inflight>,
    /// Packet ids in `outgoing` as a bitmap, kept only while the window holds at least
    /// [`INDEX_FROM`] entries: allocating an id then costs O(1) instead of a scan of the whole
    /// window (a quadratic cost at 65,535 in flight). Small windows stay allocation-free.
    in_use: Option<Box<[u64; 1024]>>,
    incoming: HashMap<u16, Instant>,
    /// Set while the session is persistent: state changes are mirrored to the store.
    store: Option<StoreLink>,
    /// Outgoing entries in flight, readable by the admin API.
    gauge: Arc<AtomicUsize>,
    /// Where acknowledgements are reported (`message_acked`); `None` outside a bus.
    events: Option<crate::events::EventLink>,
}

impl QosEngine {
    /// An empty engine.
    pub fn new(cfg: QosConfig) -> Self {
        QosEngine {
            cfg,
            next_pkid: 0,
            outgoing: VecDeque::new(),
            in_use: None,
            incoming: HashMap::new(),
            store: None,
            gauge: Arc::new(AtomicUsize::new(0)),
            events: None,
        }
    }

    /// Reports acknowledged deliveries to the bus's event tap.
    pub(crate) fn set_events(&mut self, link: crate::events::EventLink) {
        self.events = Some(link);
    }

    fn report_acked(&self, d: &Delivery) {
        if let Some(link) = &self.events {
            if link.wants(crate::events::EventKind::MessageAcked) {
                link.hub.emit(crate::events::BusEvent::MessageAcked {
                    client_id: &link.client_id,
                    delivery: d,
                });
            }
        }
    }

    /// The shared in-flight gauge.
    pub(crate) fn gauge(&self) -> Arc<AtomicUsize> {
        self.gauge.clone()
    }

    fn update_gauge(&self) {
        self.gauge
            .store(self.outgoing.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Mirrors state changes to the store from now on (`None`: stop).
    pub fn set_store(&mut self, link: Option<StoreLink>) {
        self.store = link;
    }

    fn journal(&self, op: impl FnOnce(&StoreLink) -> StoreOp) {
        if let Some(link) = &self.store {
            link.submit(op(link));
        }
    }

    fn journal_remove(&self, seq: u64) {
        if seq > 0 {
            self.journal(|l| StoreOp::QueueRemove {
                session: l.session,
                seq,
            });
        }
    }

    /// Restores an in-flight entry (start-up only): `released` for QoS 2 after PUBREC.
    pub(crate) fn restore_inflight(
        &mut self,
        pkid: PacketId,
        delivery: Delivery,
        released: bool,
        now: Instant,
    ) {
        let stage = match (delivery.qos, released) {
            (_, true) => Stage::Comp,
            (QoS::ExactlyOnce, false) => Stage::Rec,
            _ => Stage::Ack,
        };
        self.next_pkid = self.next_pkid.max(pkid.get());
        self.track(Inflight {
            pkid,
            delivery,
            stage,
            sent_at: now,
        });
        self.update_gauge();
    }

    /// Restores an incoming QoS 2 id awaiting PUBREL (start-up only).
    pub(crate) fn restore_incoming(&mut self, pkid: PacketId, now: Instant) {
        self.incoming.insert(pkid.get(), now);
    }

    /// Changes the window (e.g. a resumed session whose new connection has another receive
    /// maximum). Entries already in flight stay.
    pub fn set_max_inflight(&mut self, max: u16) {
        self.cfg.max_inflight = max.max(1);
    }

    /// Changes the retry interval.
    pub fn set_retry_interval(&mut self, retry: Option<Duration>) {
        self.cfg.retry_interval = retry;
    }

    /// Whether a QoS 1/2 publish may be sent now.
    pub fn has_credit(&self) -> bool {
        self.outgoing.len() < usize::from(self.cfg.max_inflight)
    }

    /// How many more QoS 1/2 publishes the window takes now.
    pub fn credit(&self) -> usize {
        usize::from(self.cfg.max_inflight).saturating_sub(self.outgoing.len())
    }

    /// Outgoing messages in flight.
    pub fn inflight_len(&self) -> usize {
        self.outgoing.len()
    }

    /// Incoming QoS 2 ids awaiting PUBREL.
    pub fn awaiting_rel_len(&self) -> usize {
        self.incoming.len()
    }

    /// Whether `delivery` can be sent now: QoS 0 always, QoS 1/2 with credit.
    pub fn can_send(&self, delivery: &Delivery) -> bool {
        delivery.qos == QoS::AtMostOnce || self.has_credit()
    }

    /// Assigns a packet id (QoS 1/2) and records the message as in flight. The caller must have
    /// checked [`QosEngine::can_send`]; without credit the message is still tracked, so nothing
    /// is lost, but the window is exceeded.
    pub fn send(&mut self, delivery: Delivery, now: Instant) -> SendPublish {
        if delivery.qos == QoS::AtMostOnce {
            return SendPublish {
                pkid: None,
                delivery,
                dup: false,
            };
        }
        let pkid = self.alloc_pkid();
        let stage = if delivery.qos == QoS::AtLeastOnce {
            Stage::Ack
        } else {
            Stage::Rec
        };
        self.track(Inflight {
            pkid,
            delivery: delivery.clone(),
            stage,
            sent_at: now,
        });
        self.update_gauge();
        if delivery.seq > 0 {
            let seq = delivery.seq;
            self.journal(|l| StoreOp::QueueInflight {
                session: l.session,
                seq,
                pkid,
                stage: StoredStage::Sent,
            });
        }
        SendPublish {
            pkid: Some(pkid),
            delivery,
            dup: false,
        }
    }

    fn alloc_pkid(&mut self) -> PacketId {
        // At most 65535 ids; the window is at most 65535 entries, so a free id exists whenever
        // the caller respected the window. The loop is bounded by the id space either way.
        for _ in 0..u16::MAX {
            self.next_pkid = self.next_pkid.wrapping_add(1);
            let Some(id) = NonZeroU16::new(self.next_pkid) else {
                continue;
            };
            if !self.id_in_use(id) {
                return id;
            }
        }
        NonZeroU16::MIN
    }

    fn id_in_use(&self, id: PacketId) -> bool {
        let id = usize::from(id.get());
        match &self.in_use {
            Some(bits) => bits[id / 64] & (1 << (id % 64)) != 0,
            None => self
                .outgoing
                .iter()
                .any(|e| usize::from(e.pkid.get()) == id),
        }
    }

    fn mark(&mut self, id: PacketId, used: bool) {
        if let Some(bits) = &mut self.in_use {
            let id = usize::from(id.get());
            if used {
                bits[id / 64] |= 1 << (id % 64);
            } else {
                bits[id / 64] &= !(1 << (id % 64));
            }
        }
    }

    /// Appends an in-flight entry, indexing ids once the window is large.
    fn track(&mut self, entry: Inflight) {
        if self.in_use.is_none() && self.outgoing.len() + 1 >= INDEX_FROM {
            let mut bits = Box::new([0u64; 1024]);
            for e in &self.outgoing {
                let id = usize::from(e.pkid.get());
                bits[id / 64] |= 1 << (id % 64);
            }
            self.in_use = Some(bits);
        }
        self.mark(entry.pkid, true);
        self.outgoing.push_back(entry);
    }

    /// Removes entry `i`; the index goes when the window empties.
    fn untrack(&mut self, i: usize) -> Option<Inflight> {
        let e = self.outgoing.remove(i)?;
        self.mark(e.pkid, false);
        if self.outgoing.is_empty() {
            self.in_use = None;
        }
        Some(e)
    }

    fn position(&self, pkid: PacketId) -> Result<usize, AckError> {
        // Ids are handed out in increasing order (mod 2^16) and entries stay in send order, so
        // an entry sits at most its id's distance from the front id into the window: with acks
        // in order, exactly there or a few places before. Search backwards from that guess,
        // then the rest, so a full window of QoS 2 costs O(1) per ack instead of a scan of
        // up to 65,535 entries; ids reused out of order or restored are still found.
        let front = self.outgoing.front().map_or(0, |e| e.pkid.get());
        let len = self.outgoing.len();
        let guess = usize::from(pkid.get().wrapping_sub(front)).min(len.saturating_sub(1));
        // An empty window has no index 0: `get` keeps a stray ack from indexing out of bounds.
        (0..=guess)
            .rev()
            .chain(guess + 1..len)
            .find(|&i| self.outgoing.get(i).is_some_and(|e| e.pkid == pkid))
            .ok_or(AckError::UnknownPacketId(pkid.get()))
    }

    /// PUBACK for a QoS 1 message: frees its slot.
    pub fn on_puback(&mut self, pkid: PacketId) -> Result<Delivery, AckError> {
        let i = self.position(pkid)?;
        if self.outgoing[i].stage != Stage::Ack {
            return Err(AckError::WrongStage(pkid.get()));
        }
        let d = self
            .untrack(i)
            .map(|e| e.delivery)
            .ok_or(AckError::UnknownPacketId(pkid.get()))?;
        self.journal_remove(d.seq);
        self.update_gauge();
        self.report_acked(&d);
        Ok(d)
    }

    /// PUBREC for a QoS 2 message. With `accepted` the caller sends PUBREL; a failure reason
    /// (MQTT 5, ≥ 0x80) ends the flow and frees the slot (MQTT 5 §4.3.3).
    pub fn on_pubrec(
        &mut self,
        pkid: PacketId,
        accepted: bool,
        now: Instant,
    ) -> Result<(), AckError> {
        let i = self.position(pkid)?;
        match self.outgoing[i].stage {
            Stage::Rec if accepted => {
                self.outgoing[i].stage = Stage::Comp;
                self.outgoing[i].sent_at = now;
                let seq = self.outgoing[i].delivery.seq;
                if seq > 0 {
                    // Durable before PUBREL: after a crash the flow resumes with PUBREL.
                    self.journal(|l| StoreOp::QueueInflight {
                        session: l.session,
                        seq,
                        pkid,
                        stage: StoredStage::Released,
                    });
                }
                Ok(())
            }
            Stage::Rec => {
                if let Some(e) = self.untrack(i) {
                    self.journal_remove(e.delivery.seq);
                }
                self.update_gauge();
                Ok(())
            }
            // A repeated PUBREC: answer PUBREL again.
            Stage::Comp => Ok(()),
            Stage::Ack => Err(AckError::WrongStage(pkid.get())),
        }
    }

    /// PUBCOMP for a QoS 2 message: frees its slot.
    pub fn on_pubcomp(&mut self, pkid: PacketId) -> Result<Delivery, AckError> {
        let i = self.position(pkid)?;
        if self.outgoing[i].stage != Stage::Comp {
            return Err(AckError::WrongStage(pkid.get()));
        }
        let d = self
            .untrack(i)
            .map(|e| e.delivery)
            .ok_or(AckError::UnknownPacketId(pkid.get()))?;
        self.journal_remove(d.seq);
        self.update_gauge();
        self.report_acked(&d);
        Ok(d)
    }

    /// Everything unacknowledged, in send order, to resend when a session resumes
    /// (MQTT-4.4.0-1): PUBLISH with DUP, or PUBREL for messages already PUBREC'd.
    pub fn resume(&mut self, now: Instant) -> Vec<Resend> {
        self.outgoing
            .iter_mut()
            .map(|e| {
                e.sent_at = now;
                resend_of(e)
            })
            .collect()
    }

    /// Entries unacknowledged for `retry_interval`, resent on a live connection.
    pub fn poll_retry(&mut self, now: Instant) -> Vec<Resend> {
        let Some(retry) = self.cfg.retry_interval else {
            return Vec::new();
        };
        self.outgoing
            .iter_mut()
            .filter(|e| now.saturating_duration_since(e.sent_at) >= retry)
            .map(|e| {
                e.sent_at = now;
                resend_of(e)
            })
            .collect()
    }

    /// When the next retry or awaiting-rel expiry is due, for the driver's timer.
    pub fn next_timeout(&self) -> Option<Instant> {
        let retry = self
            .cfg
            .retry_interval
            .and_then(|r| self.outgoing.iter().map(|e| e.sent_at + r).min());
        let rel = self
            .incoming
            .values()
            .map(|t| *t + self.cfg.await_rel_timeout)
            .min();
        match (retry, rel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// An incoming QoS 2 PUBLISH (method B of MQTT 3.1.1 §4.3.3: the message is published on
    /// first receipt; the id blocks duplicates until PUBREL).
    pub fn on_incoming_qos2(&mut self, pkid: PacketId, now: Instant) -> Incoming2 {
        if self.incoming.contains_key(&pkid.get()) {
            return Incoming2::Duplicate;
        }
        if self.cfg.max_awaiting_rel > 0 && self.incoming.len() >= self.cfg.max_awaiting_rel {
            return Incoming2::TooMany;
        }
        self.incoming.insert(pkid.get(), now);
        self.journal(|l| StoreOp::IncomingPut {
            session: l.session,
            pkid,
        });
        Incoming2::New
    }

    /// PUBREL for an incoming QoS 2 id. Returns whether it was known (MQTT 5 PUBCOMP 0x92
    /// otherwise); PUBCOMP is sent either way (MQTT-4.3.3-12).
    pub fn on_pubrel(&mut self, pkid: PacketId) -> bool {
        let known = self.incoming.remove(&pkid.get()).is_some();
        if known {
            self.journal(|l| StoreOp::IncomingDelete {
                session: l.session,
                pkid,
            });
        }
        known
    }

    /// Forgets incoming QoS 2 ids older than `await_rel_timeout`; returns how many.
    pub fn expire_awaiting_rel(&mut self, now: Instant) -> usize {
        let timeout = self.cfg.await_rel_timeout;
        let expired: Vec<u16> = self
            .incoming
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.incoming.remove(id);
            if let Some(pkid) = NonZeroU16::new(*id) {
                self.journal(|l| StoreOp::IncomingDelete {
                    session: l.session,
                    pkid,
                });
            }
        }
        expired.len()
    }

    /// Drops every outgoing entry and returns the deliveries not yet PUBREC'd, for requeueing
    /// (used when a clean session ends or a gateway abandons its window).
    pub fn take_unacked(&mut self) -> Vec<Delivery> {
        self.in_use = None;
        let out = self
            .outgoing
            .drain(..)
            .filter(|e| e.stage != Stage::Comp)
            .map(|e| e.delivery)
            .collect();
        self.update_gauge();
        out
    }
}

/// Window size from which packet ids are indexed (see `QosEngine::in_use`).
const INDEX_FROM: usize = 64;

fn resend_of(e: &Inflight) -> Resend {
    match e.stage {
        Stage::Ack | Stage::Rec => Resend::Publish(SendPublish {
            pkid: Some(e.pkid),
            delivery: e.delivery.clone(),
            dup: true,
        }),
        Stage::Comp => Resend::PubRel(e.pkid),
    }
}

#[cfg(test)]
#[path = "qos_model_tests.rs"]
mod model_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use switchyard_core::{Message, TopicName};

    fn cfg(window: u16, retry: Option<Duration>) -> QosConfig {
        QosConfig {
            max_inflight: window,
            retry_interval: retry,
            max_awaiting_rel: 2,
            await_rel_timeout: Duration::from_secs(300),
        }
    }
    fn d(qos: QoS) -> Delivery {
        let t = TopicName::new("t").unwrap_or_else(|e| panic!("{e}"));
        Delivery::new(Arc::new(Message::new(t, "x", qos, false)), qos, false)
    }
    fn pkid(n: u16) -> PacketId {
        NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
    }

    #[test]
    fn full_window_reuses_only_freed_ids() {
        let mut e = QosEngine::new(cfg(u16::MAX, None));
        let now = Instant::now();
        for n in 1..=u16::MAX {
            assert_eq!(e.send(d(QoS::AtLeastOnce), now).pkid, Some(pkid(n)));
        }
        assert!(!e.has_credit());
        // Out-of-order acks in the middle of a full window: exactly those ids come back.
        assert!(e.on_puback(pkid(40_000)).is_ok());
        assert!(e.on_puback(pkid(7)).is_ok());
        let mut again = [
            e.send(d(QoS::AtLeastOnce), now).pkid,
            e.send(d(QoS::AtLeastOnce), now).pkid,
        ];
        again.sort();
        assert_eq!(again, [Some(pkid(7)), Some(pkid(40_000))]);
        // Draining below the index threshold and refilling keeps ids unique.
        for n in 1..=u16::MAX {
            assert!(e.on_puback(pkid(n)).is_ok(), "{n}");
        }
        assert_eq!(e.inflight_len(), 0);
        let ids: std::collections::HashSet<_> = (0..200)
            .map(|_| e.send(d(QoS::ExactlyOnce), now).pkid)
            .collect();
        assert_eq!(ids.len(), 200);
        assert_eq!(e.take_unacked().len(), 200);
        assert!(e.send(d(QoS::AtLeastOnce), now).pkid.is_some());
    }

    #[test]
    fn acks_find_entries_wherever_ids_were_reused() {
        let mut e = QosEngine::new(cfg(u16::MAX, None));
        let now = Instant::now();
        for _ in 1..=u16::MAX {
            e.send(d(QoS::ExactlyOnce), now);
        }
        // Free 1 and 2, refill: the reused ids land at the back, far from their "distance".
        assert!(e.on_pubrec(pkid(1), false, now).is_ok());
        assert!(e.on_pubrec(pkid(2), false, now).is_ok());
        assert_eq!(e.send(d(QoS::ExactlyOnce), now).pkid, Some(pkid(1)));
        assert_eq!(e.send(d(QoS::ExactlyOnce), now).pkid, Some(pkid(2)));
        for n in [2, 65535, 3, 1, 40_000] {
            assert!(e.on_pubrec(pkid(n), true, now).is_ok(), "{n}");
            assert!(e.on_pubcomp(pkid(n)).is_ok(), "{n}");
            assert_eq!(
                e.on_pubcomp(pkid(n)).err(),
                Some(AckError::UnknownPacketId(n))
            );
        }
        assert_eq!(e.inflight_len(), usize::from(u16::MAX) - 5);
    }

    #[tokio::test(start_paused = true)]
    async fn qos1_window_and_ack() {
        let mut e = QosEngine::new(cfg(2, None));
        let now = tokio::time::Instant::now().into_std();
        let a = e.send(d(QoS::AtLeastOnce), now);
        let b = e.send(d(QoS::AtLeastOnce), now);
        assert_eq!((a.pkid, b.pkid), (Some(pkid(1)), Some(pkid(2))));
        assert!(!e.has_credit());
        assert!(e.can_send(&d(QoS::AtMostOnce)));
        assert_eq!(
            e.on_puback(pkid(3)).err(),
            Some(AckError::UnknownPacketId(3))
        );
        assert!(e.on_puback(pkid(1)).is_ok());
        assert!(e.has_credit());
        assert_eq!(
            e.on_puback(pkid(1)).err(),
            Some(AckError::UnknownPacketId(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn qos2_flow_resume_and_retry_on_paused_clock() {
        let mut e = QosEngine::new(cfg(10, Some(Duration::from_secs(5))));
        let t0 = tokio::time::Instant::now().into_std();
        let p = e
            .send(d(QoS::ExactlyOnce), t0)
            .pkid
            .unwrap_or(NonZeroU16::MIN);
        let q = e
            .send(d(QoS::AtLeastOnce), t0)
            .pkid
            .unwrap_or(NonZeroU16::MIN);
        assert_eq!(e.on_puback(p).err(), Some(AckError::WrongStage(p.get())));
        tokio::time::advance(Duration::from_secs(2)).await;
        let t2 = tokio::time::Instant::now().into_std();
        assert!(e.on_pubrec(p, true, t2).is_ok());
        assert!(e.poll_retry(t2).is_empty());
        assert_eq!(e.next_timeout(), Some(t0 + Duration::from_secs(5)));
        tokio::time::advance(Duration::from_secs(3)).await;
        let t5 = tokio::time::Instant::now().into_std();
        let r = e.poll_retry(t5);
        assert_eq!(r.len(), 1, "only the QoS 1 publish is due");
        assert!(matches!(&r[0], Resend::Publish(s) if s.dup && s.pkid == Some(q)));
        let resumed = e.resume(t5);
        assert!(matches!(resumed[0], Resend::PubRel(id) if id == p));
        assert!(matches!(&resumed[1], Resend::Publish(s) if s.dup));
        assert!(e.on_pubcomp(p).is_ok());
        assert!(e.on_puback(q).is_ok());
        assert_eq!(e.inflight_len(), 0);
    }

    #[test]
    fn incoming_qos2_dedup_limit_and_expiry() {
        let mut e = QosEngine::new(cfg(10, None));
        let t0 = Instant::now();
        assert_eq!(e.on_incoming_qos2(pkid(1), t0), Incoming2::New);
        assert_eq!(e.on_incoming_qos2(pkid(1), t0), Incoming2::Duplicate);
        assert_eq!(e.on_incoming_qos2(pkid(2), t0), Incoming2::New);
        assert_eq!(e.on_incoming_qos2(pkid(3), t0), Incoming2::TooMany);
        assert!(e.on_pubrel(pkid(1)));
        assert!(!e.on_pubrel(pkid(1)));
        assert_eq!(e.expire_awaiting_rel(t0 + Duration::from_secs(301)), 1);
        assert_eq!(e.awaiting_rel_len(), 0);
    }

    #[test]
    fn pkid_wraps_and_skips_ids_in_use() {
        let mut e = QosEngine::new(cfg(u16::MAX, None));
        let now = Instant::now();
        e.next_pkid = u16::MAX - 1;
        let a = e.send(d(QoS::AtLeastOnce), now).pkid;
        let b = e.send(d(QoS::AtLeastOnce), now).pkid;
        assert_eq!((a, b), (Some(pkid(u16::MAX)), Some(pkid(1))));
        e.next_pkid = u16::MAX - 1;
        let c = e.send(d(QoS::AtLeastOnce), now).pkid;
        assert_eq!(c, Some(pkid(2)), "skips 65535 and 1, still in flight");
    }
}
