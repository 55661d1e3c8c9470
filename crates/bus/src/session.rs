//! A session: the state that outlives a connection when the client asks for it — its
//! subscriptions, its outbox and its QoS state. Exactly one owner at a time: the connection task
//! while online, the registry while offline; takeover moves it.

use crate::delivery::{Delivery, SubOptions};
use crate::outbox::Outbox;
use crate::qos::QosEngine;
use parking_lot::Mutex;
use std::any::Any;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use switchyard_core::{ClientId, QoS, SessionId, SubscriptionFilter};

/// One session.
pub struct Session {
    /// Stable across reconnects.
    pub id: SessionId,
    /// The client's id.
    pub client_id: ClientId,
    /// Deliveries waiting for this session.
    pub outbox: Arc<Outbox>,
    /// QoS 1/2 state both ways.
    pub qos: QosEngine,
    /// How long the session outlives its connection (zero: ends with it).
    pub expiry: Duration,
    /// When the session was created.
    pub created_at: SystemTime,
    /// State a gateway keeps with the session (e.g. MQTT-SN's topic id registry), opaque to the
    /// bus; it moves with the session on resume and takeover.
    pub ext: Option<Box<dyn Any + Send + Sync>>,
    /// What the admin API reads while a connection owns the session.
    pub(crate) shared: Arc<SessionShared>,
}

/// The part of a session other tasks may read (admin API) or change (subscribe on a client's
/// behalf) while a connection owns it. Its subscription map is the authoritative one: it also
/// holds subscriptions made on the client's behalf.
#[derive(Debug, Default)]
pub struct SessionShared {
    pub(crate) subscriptions: Mutex<SubscriptionSet>,
    pub(crate) inflight: Arc<AtomicUsize>,
    pub(crate) disconnected_at: Mutex<Option<SystemTime>>,
}

impl Session {
    /// What the session is subscribed to, including subscriptions made on its behalf (a copy:
    /// the set itself is shared with the admin API).
    pub fn subscriptions(&self) -> SubscriptionSet {
        self.shared.subscriptions.lock().clone()
    }

    /// Moves at most `max` deliveries from the outbox to `out`, in order: QoS 0 freely, QoS 1/2
    /// only while the QoS engine's inflight window has credit (ARCHITECTURE.md habit 8). A QoS
    /// 1/2 message without credit stays at the front and holds back what follows, so the order
    /// holds; the outbox drops what has expired by `now`.
    pub fn take_deliveries(&self, now: Instant, max: usize, out: &mut Vec<Delivery>) {
        let mut credit = self.qos.credit();
        let mut batch = max;
        self.outbox.drain(
            now,
            |d| {
                if batch == 0 {
                    return false;
                }
                if d.qos != QoS::AtMostOnce {
                    if credit == 0 {
                        return false;
                    }
                    credit -= 1;
                }
                batch -= 1;
                true
            },
            out,
        );
    }

    /// The shared handles the registry keeps while a connection owns this session.
    pub(crate) fn attached(&self) -> crate::registry::Attached {
        crate::registry::Attached {
            session: self.id,
            outbox: self.outbox.clone(),
            shared: self.shared.clone(),
            expiry: self.expiry,
            created_at: self.created_at,
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("client_id", &self.client_id)
            .field("subscriptions", &self.shared.subscriptions.lock().len())
            .field("inflight", &self.qos.inflight_len())
            .field("queued", &self.outbox.len())
            .field("expiry", &self.expiry)
            .finish()
    }
}

/// A session's subscriptions: a small vector kept sorted by filter. Sessions hold a handful of
/// subscriptions, and a tree node per session (a `BTreeMap` allocates room for eleven) was the
/// largest part of an idle connection's memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionSet(Vec<(SubscriptionFilter, SubOptions)>);

impl SubscriptionSet {
    fn position(&self, sf: &SubscriptionFilter) -> Result<usize, usize> {
        self.0.binary_search_by(|(f, _)| f.cmp(sf))
    }

    /// Adds or replaces; returns the previous options.
    pub fn insert(&mut self, sf: SubscriptionFilter, opts: SubOptions) -> Option<SubOptions> {
        match self.position(&sf) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, opts)),
            Err(i) => {
                self.0.insert(i, (sf, opts));
                None
            }
        }
    }

    /// Removes; returns the options it had.
    pub fn remove(&mut self, sf: &SubscriptionFilter) -> Option<SubOptions> {
        self.position(sf).ok().map(|i| self.0.remove(i).1)
    }

    /// The options of one subscription.
    pub fn get(&self, sf: &SubscriptionFilter) -> Option<&SubOptions> {
        self.position(sf).ok().map(|i| &self.0[i].1)
    }

    /// Whether the filter is subscribed.
    pub fn contains_key(&self, sf: &SubscriptionFilter) -> bool {
        self.position(sf).is_ok()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The filters, in order.
    pub fn keys(&self) -> impl Iterator<Item = &SubscriptionFilter> {
        self.0.iter().map(|(f, _)| f)
    }

    /// Filters and options, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&SubscriptionFilter, &SubOptions)> {
        self.0.iter().map(|(f, o)| (f, o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::QoS;

    #[test]
    fn subscription_set_keeps_one_entry_per_filter_in_order() {
        let sf = |s: &str| SubscriptionFilter::parse(s, 0).unwrap_or_else(|e| panic!("{e}"));
        let o = |q| SubOptions {
            qos: q,
            ..Default::default()
        };
        let mut set = SubscriptionSet::default();
        assert_eq!(set.insert(sf("b"), o(QoS::AtMostOnce)), None);
        assert_eq!(set.insert(sf("a/#"), o(QoS::AtLeastOnce)), None);
        assert_eq!(
            set.insert(sf("b"), o(QoS::ExactlyOnce)),
            Some(o(QoS::AtMostOnce))
        );
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.keys().map(|k| k.to_string()).collect::<Vec<_>>(),
            vec!["a/#", "b"]
        );
        assert_eq!(set.get(&sf("b")), Some(&o(QoS::ExactlyOnce)));
        assert_eq!(set.remove(&sf("a/#")), Some(o(QoS::AtLeastOnce)));
        assert!(!set.contains_key(&sf("a/#")));
        assert_eq!(set.remove(&sf("a/#")), None);
    }
}
