//! A session's outbox: the one bounded FIFO between every publisher and one subscriber.
//!
//! Publishers push without waiting (a short std `Mutex`, never held across `.await`); the
//! owning connection task drains it while it has inflight credit. The same queue holds messages
//! for an offline persistent session. Invariant: its length never exceeds `max_len` (when set):
//! a push into a full queue drops the oldest QoS 0 message first, else the oldest message, and
//! counts the drop (EMQX's mqueue policy).

use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::store::{StoreLink, StoreOp};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use switchyard_core::{ClientId, QoS, SessionId};
use tokio::sync::Notify;

/// What happened to a pushed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued; nothing was dropped.
    Queued,
    /// Queued, and an older message was dropped to make room.
    QueuedDroppedOldest,
    /// Not queued: QoS 0 for an offline session with `mqueue_store_qos0 = false`.
    DroppedQoS0Offline,
    /// Not queued: the session is gone.
    Closed,
}

#[derive(Debug)]
struct Inner {
    queue: VecDeque<Delivery>,
    closed: bool,
    /// Set while the session is persistent: QoS 1/2 pushes and removals are mirrored to it.
    store: Option<StoreLink>,
    next_seq: u64,
}

/// The queue of deliveries for one session.
#[derive(Debug)]
pub struct Outbox {
    session: SessionId,
    client_id: ClientId,
    inner: Mutex<Inner>,
    notify: Notify,
    online: AtomicBool,
    max_len: usize,
    store_qos0: bool,
    dropped: AtomicU64,
    metrics: Arc<Metrics>,
    /// Where deliveries are reported (`message_delivered`); `None` outside a bus (tests, bench).
    events: Option<Arc<crate::events::EventHub>>,
}

impl Outbox {
    /// A new, empty outbox. `max_len == 0` means unbounded (not recommended).
    pub fn new(
        session: SessionId,
        client_id: ClientId,
        max_len: usize,
        store_qos0: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        Outbox {
            session,
            client_id,
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                closed: false,
                store: None,
                next_seq: 1,
            }),
            notify: Notify::new(),
            online: AtomicBool::new(false),
            max_len,
            store_qos0,
            dropped: AtomicU64::new(0),
            metrics,
            events: None,
        }
    }

    /// Reports the deliveries it hands out to the bus's event tap.
    pub(crate) fn with_events(mut self, hub: Arc<crate::events::EventHub>) -> Self {
        self.events = Some(hub);
        self
    }

    /// The session this outbox belongs to.
    pub fn session(&self) -> SessionId {
        self.session
    }

    /// The owning client's id.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// Whether a connection currently drains this outbox.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }

    /// Marks whether a connection drains this outbox.
    pub fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Release);
    }

    /// Queues a delivery. Never blocks on the subscriber.
    pub fn push(&self, d: Delivery) -> PushOutcome {
        let outcome = {
            let mut inner = self.inner.lock();
            if inner.closed {
                return PushOutcome::Closed;
            }
            if d.qos == QoS::AtMostOnce && !self.store_qos0 && !self.is_online() {
                self.count_drop();
                return PushOutcome::DroppedQoS0Offline;
            }
            let mut outcome = PushOutcome::Queued;
            if self.max_len > 0 && inner.queue.len() >= self.max_len {
                let victim = inner
                    .queue
                    .iter()
                    .position(|q| q.qos == QoS::AtMostOnce)
                    .unwrap_or(0);
                if let Some(v) = inner.queue.remove(victim) {
                    forget(&inner, &v);
                }
                self.count_drop();
                outcome = PushOutcome::QueuedDroppedOldest;
            }
            let mut d = d;
            if let Some(link) = &inner.store {
                if d.qos != QoS::AtMostOnce && d.message_id > 0 {
                    d.seq = inner.next_seq;
                    // Submitted under the queue lock, so the store sees the push before any
                    // removal of the same entry.
                    link.submit(StoreOp::QueuePush {
                        session: self.session,
                        seq: d.seq,
                        message_id: d.message_id,
                        qos: d.qos.as_u8(),
                        retain: d.retain,
                        subscription_ids: d.subscription_ids.clone(),
                    });
                }
            }
            inner.next_seq += 1;
            inner.queue.push_back(d);
            outcome
        };
        self.notify.notify_one();
        outcome
    }

    /// Takes deliveries from the front while `take` accepts them. Expired messages are dropped
    /// and counted on the way. `take` sees each delivery and returns false to stop (e.g. no
    /// inflight credit for a QoS 1 message); the refused delivery stays at the front, keeping
    /// order.
    pub fn drain(
        &self,
        now: Instant,
        mut take: impl FnMut(&Delivery) -> bool,
        out: &mut Vec<Delivery>,
    ) {
        let first = out.len();
        let mut inner = self.inner.lock();
        while let Some(front) = inner.queue.front() {
            if front.message.is_expired(now) {
                inner.queue.pop_front();
                self.metrics
                    .messages_expired
                    .fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if !take(front) {
                break;
            }
            if let Some(d) = inner.queue.pop_front() {
                out.push(d);
            }
        }
        drop(inner);
        // After the lock is released: a listener may publish (republish), and that publish may
        // push into this very outbox.
        if let Some(hub) = &self.events {
            if hub.wants(crate::events::EventKind::MessageDelivered) {
                for d in out.iter().skip(first) {
                    hub.emit(crate::events::BusEvent::MessageDelivered {
                        client_id: &self.client_id,
                        delivery: d,
                    });
                }
            }
        }
        // In the subscriber's task, so inside its connection's span (log traces).
        if tracing::level_enabled!(tracing::Level::DEBUG) {
            for d in out.iter().skip(first) {
                tracing::debug!(topic = %d.message.topic, qos = d.qos.as_u8(), retain = d.retain,
                    payload = d.message.payload.as_ref(), "message delivered");
            }
        }
    }

    /// Puts deliveries back at the front in their original order (used when a connection ends
    /// with deliveries taken but not yet sent).
    pub fn requeue_front(&self, items: Vec<Delivery>) {
        let mut inner = self.inner.lock();
        for d in items.into_iter().rev() {
            inner.queue.push_front(d);
        }
    }

    /// Mirrors QoS 1/2 pushes to the store from now on (`None`: stop, the session is not
    /// persistent).
    pub fn set_store(&self, link: Option<StoreLink>) {
        self.inner.lock().store = link;
    }

    /// Whether pushes are mirrored to a store.
    pub fn is_stored(&self) -> bool {
        self.inner.lock().store.is_some()
    }

    /// Restores a stored delivery at the back of the queue (start-up only).
    pub(crate) fn restore(&self, d: Delivery) {
        let mut inner = self.inner.lock();
        inner.next_seq = inner.next_seq.max(d.seq + 1);
        inner.queue.push_back(d);
    }

    /// Makes sure new queue positions come after `seq` (start-up only).
    pub(crate) fn reserve_seq(&self, seq: u64) {
        let mut inner = self.inner.lock();
        inner.next_seq = inner.next_seq.max(seq + 1);
    }

    /// Number of queued deliveries.
    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages dropped from this outbox so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until something is pushed (or the outbox is closed). Cancel-safe.
    pub async fn notified(&self) {
        self.notify.notified().await;
    }

    /// Refuses further pushes and empties the queue; used when the session ends.
    pub fn close(&self) {
        let mut inner = self.inner.lock();
        inner.closed = true;
        inner.queue.clear();
        drop(inner);
        self.notify.notify_waiters();
    }

    fn count_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .messages_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Tells the store a queued delivery is gone.
fn forget(inner: &Inner, d: &Delivery) {
    if let (Some(link), true) = (&inner.store, d.seq > 0) {
        link.submit(StoreOp::QueueRemove {
            session: link.session,
            seq: d.seq,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{Message, TopicName};

    fn d(qos: QoS, n: u8) -> Delivery {
        let t = TopicName::new("t").unwrap_or_else(|e| panic!("{e}"));
        Delivery::new(Arc::new(Message::new(t, vec![n], qos, false)), qos, false)
    }

    fn payloads(o: &Outbox) -> Vec<u8> {
        let mut out = Vec::new();
        o.drain(Instant::now(), |_| true, &mut out);
        out.iter().map(|d| d.message.payload[0]).collect()
    }

    #[test]
    fn full_queue_drops_oldest_qos0_first_then_oldest() {
        let m = Arc::new(Metrics::default());
        let o = Outbox::new(SessionId(1), "c".into(), 3, true, m.clone());
        assert_eq!(o.push(d(QoS::AtLeastOnce, 1)), PushOutcome::Queued);
        o.push(d(QoS::AtMostOnce, 2));
        o.push(d(QoS::AtLeastOnce, 3));
        assert_eq!(
            o.push(d(QoS::AtLeastOnce, 4)),
            PushOutcome::QueuedDroppedOldest
        );
        assert_eq!(o.len(), 3);
        o.push(d(QoS::AtLeastOnce, 5));
        assert_eq!(payloads(&o), vec![3, 4, 5]);
        assert_eq!(o.dropped(), 2);
        assert_eq!(m.messages_dropped.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn offline_qos0_respects_store_flag() {
        let o = Outbox::new(
            SessionId(1),
            "c".into(),
            10,
            false,
            Arc::new(Metrics::default()),
        );
        assert_eq!(
            o.push(d(QoS::AtMostOnce, 1)),
            PushOutcome::DroppedQoS0Offline
        );
        o.set_online(true);
        assert_eq!(o.push(d(QoS::AtMostOnce, 2)), PushOutcome::Queued);
        assert_eq!(payloads(&o), vec![2]);
    }

    #[test]
    fn drain_stops_without_credit_and_keeps_order() {
        let o = Outbox::new(
            SessionId(1),
            "c".into(),
            0,
            true,
            Arc::new(Metrics::default()),
        );
        for i in 0..5 {
            o.push(d(QoS::AtLeastOnce, i));
        }
        let mut credit = 2;
        let mut out = Vec::new();
        o.drain(
            Instant::now(),
            |_| {
                if credit == 0 {
                    return false;
                }
                credit -= 1;
                true
            },
            &mut out,
        );
        assert_eq!(out.len(), 2);
        o.requeue_front(out);
        assert_eq!(payloads(&o), vec![0, 1, 2, 3, 4]);
        o.close();
        assert_eq!(o.push(d(QoS::AtLeastOnce, 9)), PushOutcome::Closed);
    }
}
