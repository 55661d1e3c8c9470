//! Retained messages: one per topic, set by a retained publish, cleared by an empty retained
//! payload (MQTT-3.3.1-10/11), handed to new subscriptions.
//!
//! Stored ordered by topic, so a subscription filter scans only the topics that start with the
//! filter's literal head (the part before its first wildcard), not every retained message.
//!
//! Limits (`[retainer]`): a store holds at most `max_messages` topics and payloads of at most
//! `max_payload` bytes (a retained publish beyond either is routed but not stored); an entry
//! may carry a deadline (`msg_expiry_interval` after it was received), after which the periodic
//! clear ([`RetainStore::clear_expired`]) removes it.

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::{Message, TopicFilter, TopicName};

/// The `[retainer]` limits; the default is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetainLimits {
    /// Most retained topics; 0 = unlimited.
    pub max_messages: usize,
    /// Largest payload stored, in bytes; 0 = unlimited.
    pub max_payload: usize,
    /// How long an entry is kept after it was received; `None` = until replaced.
    pub expiry: Option<Duration>,
}

/// Why a retained message was not stored (it is still routed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    /// The payload is larger than `max_payload_size`.
    TooLarge,
    /// The store holds `max_retained_messages` topics already.
    Full,
}

/// One stored message: the message, its id in the durable store, and when it is removed.
type Entry = (Arc<Message>, u64, Option<Instant>);

/// The retained-message store.
#[derive(Debug, Default)]
pub struct RetainStore {
    // Ordered so that listing is stable and filter lookups are a range scan.
    messages: RwLock<BTreeMap<TopicName, Entry>>,
    limits: RetainLimits,
}

impl RetainStore {
    /// An empty store with `limits`.
    pub fn with_limits(limits: RetainLimits) -> Self {
        RetainStore {
            messages: RwLock::default(),
            limits,
        }
    }

    /// Whether `msg` may be stored under the limits (an empty payload, a clear, always may).
    pub fn admits(&self, msg: &Message) -> Result<(), NotStored> {
        let l = self.limits;
        // The broker's own $SYS state is not client data: the limits do not apply to it.
        if msg.payload.is_empty() || msg.topic.as_str().starts_with("$SYS/") {
            return Ok(());
        }
        if l.max_payload > 0 && msg.payload.len() > l.max_payload {
            return Err(NotStored::TooLarge);
        }
        if l.max_messages > 0 {
            let map = self.messages.read();
            // $SYS entries (a handful, contiguous in topic order) do not count.
            let sys = map
                .keys()
                .skip_while(|t| t.as_str() < "$SYS/")
                .take_while(|t| t.as_str().starts_with("$SYS/"))
                .count();
            if map.len() - sys >= l.max_messages && !map.contains_key(&msg.topic) {
                return Err(NotStored::Full);
            }
        }
        Ok(())
    }

    /// Stores or clears (empty payload) the retained message for its topic, with its id in the
    /// durable store (0: not stored). Returns the change in count: +1, 0 or -1. The caller
    /// checked [`RetainStore::admits`].
    pub fn set(&self, msg: Arc<Message>, store_id: u64) -> i64 {
        let mut map = self.messages.write();
        if msg.payload.is_empty() {
            return if map.remove(&msg.topic).is_some() {
                -1
            } else {
                0
            };
        }
        let deadline = self.limits.expiry.map(|e| msg.received + e);
        if map
            .insert(msg.topic.clone(), (msg, store_id, deadline))
            .is_some()
        {
            0
        } else {
            1
        }
    }

    /// Removes the entries past their deadline (or their own MQTT 5 expiry) at `now`; returns
    /// their topics and store ids, for the durable store.
    pub fn clear_expired(&self, now: Instant) -> Vec<(TopicName, u64)> {
        let mut map = self.messages.write();
        let gone: Vec<(TopicName, u64)> = map
            .iter()
            .filter(|(_, (m, _, d))| d.is_some_and(|d| d <= now) || m.is_expired(now))
            .map(|(t, (_, id, _))| (t.clone(), *id))
            .collect();
        for (t, _) in &gone {
            map.remove(t);
        }
        gone
    }

    /// Every retained message whose topic matches `filter`, with its store id; with `now`,
    /// expired ones are skipped.
    pub fn matching(
        &self,
        filter: &TopicFilter,
        now: Option<std::time::Instant>,
    ) -> Vec<(Arc<Message>, u64)> {
        let map = self.messages.read();
        let literal_prefix = literal_prefix(filter.as_str());
        map.iter()
            .skip_while(|(t, _)| t.as_str() < literal_prefix)
            .take_while(|(t, _)| t.as_str().starts_with(literal_prefix))
            .filter(|(t, (m, _, _))| filter.matches(t) && !now.is_some_and(|n| m.is_expired(n)))
            .map(|(_, (m, id, _))| (m.clone(), *id))
            .collect()
    }

    /// The retained message on one topic.
    pub fn get(&self, topic: &str) -> Option<Arc<Message>> {
        let topic = TopicName::new(topic).ok()?;
        self.messages.read().get(&topic).map(|(m, _, _)| m.clone())
    }

    /// Removes the retained message on one topic; true if there was one. Not mirrored to the
    /// store: operators go through `BusHandle::delete_retained`.
    pub(crate) fn remove(&self, topic: &str) -> bool {
        match TopicName::new(topic) {
            Ok(t) => self.messages.write().remove(&t).is_some(),
            Err(_) => false,
        }
    }

    /// A page of retained messages in topic order.
    pub fn list(&self, skip: usize, limit: usize) -> Vec<Arc<Message>> {
        self.messages
            .read()
            .values()
            .skip(skip)
            .take(limit)
            .map(|(m, _, _)| m.clone())
            .collect()
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.messages.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The part of a filter before its first wildcard level, used to narrow the scan.
fn literal_prefix(filter: &str) -> &str {
    let cut = [filter.find('+'), filter.find('#')]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(filter.len());
    &filter[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::QoS;

    fn msg(topic: &str, payload: &'static str) -> Arc<Message> {
        let t = TopicName::new(topic).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Message::new(t, payload, QoS::AtMostOnce, true))
    }

    #[test]
    fn limits_refuse_large_payloads_and_new_topics_when_full_and_entries_expire() {
        let s = RetainStore::with_limits(RetainLimits {
            max_messages: 2,
            max_payload: 4,
            expiry: Some(Duration::from_secs(10)),
        });
        let big = msg("a/big", "12345");
        assert_eq!(s.admits(&big), Err(NotStored::TooLarge));
        for t in ["a/1", "a/2"] {
            let m = msg(t, "ok");
            assert_eq!(s.admits(&m), Ok(()));
            s.set(m, 0);
        }
        assert_eq!(s.admits(&msg("a/3", "no")), Err(NotStored::Full));
        assert_eq!(
            s.admits(&msg("a/1", "new")),
            Ok(()),
            "replacing is allowed when full"
        );
        assert_eq!(
            s.admits(&msg("a/3", "")),
            Ok(()),
            "a clear is always allowed"
        );
        let t0 = s
            .get("a/1")
            .map(|m| m.received)
            .unwrap_or_else(Instant::now);
        assert!(s.clear_expired(t0 + Duration::from_secs(9)).is_empty());
        assert_eq!(s.clear_expired(t0 + Duration::from_secs(11)).len(), 2);
        assert!(s.is_empty());
    }

    #[test]
    fn set_clear_match() {
        let s = RetainStore::default();
        assert_eq!(s.set(msg("a/b", "1"), 0), 1);
        assert_eq!(s.set(msg("a/c", "2"), 0), 1);
        assert_eq!(s.set(msg("a/b", "3"), 0), 0);
        assert_eq!(s.set(msg("$SYS/x", "4"), 0), 1);
        let f = TopicFilter::new("a/+").unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<_> = s
            .matching(&f, Some(std::time::Instant::now()))
            .iter()
            .map(|(m, _)| m.payload.clone())
            .collect();
        assert_eq!(got, vec!["3", "2"]);
        let all = TopicFilter::new("#").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.matching(&all, Some(std::time::Instant::now())).len(),
            2,
            "$SYS not matched by #"
        );
        assert_eq!(s.set(msg("a/b", ""), 0), -1);
        assert_eq!(s.len(), 2);
        assert_eq!(literal_prefix("a/b/+/c"), "a/b/");
    }
}
