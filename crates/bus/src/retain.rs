//! Retained messages: one per topic, set by a retained publish, cleared by an empty retained
//! payload (MQTT-3.3.1-10/11), handed to new subscriptions.
//!
//! Stored ordered by topic, so a subscription filter scans only the topics that start with the
//! filter's literal head (the part before its first wildcard), not every retained message.

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::Arc;
use switchyard_core::{Message, TopicFilter, TopicName};

/// The retained-message store.
#[derive(Debug, Default)]
pub struct RetainStore {
    // Ordered so that listing is stable and filter lookups are a range scan.
    messages: RwLock<BTreeMap<TopicName, (Arc<Message>, u64)>>,
}

impl RetainStore {
    /// Stores or clears (empty payload) the retained message for its topic, with its id in the
    /// durable store (0: not stored). Returns the change in count: +1, 0 or -1.
    pub fn set(&self, msg: Arc<Message>, store_id: u64) -> i64 {
        let mut map = self.messages.write();
        if msg.payload.is_empty() {
            return if map.remove(&msg.topic).is_some() {
                -1
            } else {
                0
            };
        }
        if map.insert(msg.topic.clone(), (msg, store_id)).is_some() {
            0
        } else {
            1
        }
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
            .filter(|(t, (m, _))| filter.matches(t) && !now.is_some_and(|n| m.is_expired(n)))
            .map(|(_, (m, id))| (m.clone(), *id))
            .collect()
    }

    /// The retained message on one topic.
    pub fn get(&self, topic: &str) -> Option<Arc<Message>> {
        let topic = TopicName::new(topic).ok()?;
        self.messages.read().get(&topic).map(|(m, _)| m.clone())
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
            .map(|(m, _)| m.clone())
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
