//! Delayed publish: a message published to `$delayed/{seconds}/{topic}` is held and published
//! to `{topic}` when its time comes, from whichever protocol it arrived (EMQX's feature and
//! topic format).
//!
//! Owns: the held messages ordered by due time (wall clock, so they survive a restart), the
//! `[delayed]` settings, and the hand-off to a [`DelayedPersistence`] the binary provides (the
//! API-state store): a message is saved before the publisher is acknowledged and removed once
//! published. Must not know: any protocol, or how persistence stores a record.
//! Invariants: at most `max_delayed_messages` held (0 = unlimited; over it the message is
//! dropped, logged and counted); a message is published at most once per node.

use crate::metrics::Metrics;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_core::{Message, QoS, TopicName};
use thiserror::Error;

/// The topic prefix of delayed publishes.
pub const PREFIX: &str = "$delayed/";
/// The longest delay EMQX accepts, in seconds.
pub const MAX_DELAY_SECS: u64 = 4_294_967;

/// Why a `$delayed/` publish was not held.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DelayedError {
    /// The topic is not `$delayed/{seconds}/{topic}` with a valid delay and target topic.
    #[error("not $delayed/{{seconds ≤ 4294967}}/{{topic}}: {0}")]
    BadTopic(String),
    /// `delayed.enable` is off.
    #[error("delayed publish is disabled")]
    Disabled,
    /// `max_delayed_messages` are held already.
    #[error("{0} delayed messages held already (max_delayed_messages)")]
    Full(u64),
    /// The persistence refused the record.
    #[error("cannot save the delayed message: {0}")]
    Persist(String),
}

/// Splits `$delayed/{seconds}/{topic}` into the delay and the target topic.
pub fn parse(topic: &str) -> Result<(u64, TopicName), DelayedError> {
    let bad = || DelayedError::BadTopic(topic.to_owned());
    let rest = topic.strip_prefix(PREFIX).ok_or_else(bad)?;
    let (secs, target) = rest.split_once('/').ok_or_else(bad)?;
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    if secs > MAX_DELAY_SECS || target.is_empty() || target.starts_with(PREFIX) {
        return Err(bad());
    }
    let target = TopicName::new(target).map_err(|_| bad())?;
    Ok((secs, target))
}

/// One held message, as persisted and as the API lists it (times in ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelayedRecord {
    /// Node-unique id.
    pub id: u64,
    /// The target topic.
    pub topic: String,
    /// The payload.
    pub payload: Bytes,
    /// QoS of the publish.
    pub qos: QoS,
    /// Retain flag of the publish.
    pub retain: bool,
    /// When it was received.
    pub received_at_ms: u64,
    /// When it is due.
    pub publish_at_ms: u64,
    /// The delay asked for, in seconds.
    pub delay_secs: u64,
    /// Who published it.
    pub from_clientid: Option<String>,
}

impl DelayedRecord {
    /// As a JSON document (payload base64-free: bytes as an array would bloat; hex is fine).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "topic": self.topic,
            "payload_hex": hex(&self.payload),
            "qos": self.qos as u8,
            "retain": self.retain,
            "received_at_ms": self.received_at_ms,
            "publish_at_ms": self.publish_at_ms,
            "delay_secs": self.delay_secs,
            "from_clientid": self.from_clientid,
        })
    }

    /// From [`DelayedRecord::to_json`]'s document.
    pub fn from_json(v: &Value) -> Option<DelayedRecord> {
        Some(DelayedRecord {
            id: v["id"].as_u64()?,
            topic: v["topic"].as_str()?.to_owned(),
            payload: Bytes::from(unhex(v["payload_hex"].as_str()?)?),
            qos: QoS::try_from(u8::try_from(v["qos"].as_u64()?).ok()?).ok()?,
            retain: v["retain"].as_bool()?,
            received_at_ms: v["received_at_ms"].as_u64()?,
            publish_at_ms: v["publish_at_ms"].as_u64()?,
            delay_secs: v["delay_secs"].as_u64()?,
            from_clientid: v["from_clientid"].as_str().map(str::to_owned),
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// Where held messages are kept across restarts (the binary gives the API-state store).
pub trait DelayedPersistence: Send + Sync + std::fmt::Debug {
    /// Saves a held message; durable when this returns.
    fn save(&self, r: &DelayedRecord) -> Result<(), String>;
    /// Forgets a message (published or deleted).
    fn remove(&self, id: u64);
}

/// The held messages and the `[delayed]` settings.
#[derive(Debug, Default)]
pub struct Delayed {
    enable: AtomicBool,
    max: AtomicU64,
    held: Mutex<BTreeMap<(u64, u64), DelayedRecord>>,
    next_id: AtomicU64,
    persist: RwLock<Option<Arc<dyn DelayedPersistence>>>,
    /// Wakes the scheduler when an earlier message arrives.
    pub(crate) wake: tokio::sync::Notify,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Delayed {
    /// Held messages, `enable` and `max_delayed_messages` (0 = unlimited).
    pub fn new(enable: bool, max: u64) -> Self {
        Delayed {
            enable: AtomicBool::new(enable),
            max: AtomicU64::new(max),
            next_id: AtomicU64::new(1),
            ..Delayed::default()
        }
    }

    /// The settings now: (enable, max_delayed_messages).
    pub fn settings(&self) -> (bool, u64) {
        (
            self.enable.load(Ordering::Relaxed),
            self.max.load(Ordering::Relaxed),
        )
    }

    /// Changes the settings at run time (`PUT /api/v5/mqtt/delayed`).
    pub fn set_settings(&self, enable: bool, max: u64) {
        self.enable.store(enable, Ordering::Relaxed);
        self.max.store(max, Ordering::Relaxed);
    }

    /// Persists held messages from now on.
    pub fn set_persistence(&self, p: Arc<dyn DelayedPersistence>) {
        *self.persist.write() = Some(p);
    }

    /// Holds restored records (start-up), keeping their ids unique.
    pub fn restore(&self, records: Vec<DelayedRecord>) {
        let mut held = self.held.lock();
        for r in records {
            self.next_id
                .fetch_max(r.id.saturating_add(1), Ordering::Relaxed);
            held.insert((r.publish_at_ms, r.id), r);
        }
        drop(held);
        self.wake.notify_one();
    }

    /// Holds a `$delayed/` message; the error says why it was dropped instead.
    pub(crate) fn hold(
        &self,
        msg: &Message,
        metrics: &Metrics,
    ) -> Result<DelayedRecord, DelayedError> {
        let (delay, target) = parse(msg.topic.as_str())?;
        let (enable, max) = self.settings();
        if !enable {
            return Err(DelayedError::Disabled);
        }
        // The gateway's receive time: the engine does not read the clock itself.
        let received_at_ms = msg
            .timestamp
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let record = DelayedRecord {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            topic: target.as_str().to_owned(),
            payload: msg.payload.clone(),
            qos: msg.qos,
            retain: msg.retain,
            received_at_ms,
            publish_at_ms: received_at_ms.saturating_add(delay.saturating_mul(1000)),
            delay_secs: delay,
            from_clientid: msg.origin.as_ref().map(|o| o.client_id.as_str().to_owned()),
        };
        {
            let held = self.held.lock();
            if max > 0 && held.len() as u64 >= max {
                return Err(DelayedError::Full(max));
            }
        }
        if let Some(p) = self.persist.read().as_ref() {
            p.save(&record).map_err(DelayedError::Persist)?;
        }
        self.held
            .lock()
            .insert((record.publish_at_ms, record.id), record.clone());
        Metrics::inc(&metrics.delayed_held);
        self.wake.notify_one();
        Ok(record)
    }

    /// Takes the messages due at `now_ms`, in due order.
    pub(crate) fn take_due(&self, now_ms: u64) -> Vec<DelayedRecord> {
        let mut held = self.held.lock();
        let later = held.split_off(&(now_ms.saturating_add(1), 0));
        let due = std::mem::replace(&mut *held, later);
        due.into_values().collect()
    }

    /// Forgets a published message in the persistence.
    pub(crate) fn published(&self, id: u64) {
        if let Some(p) = self.persist.read().as_ref() {
            p.remove(id);
        }
    }

    /// When the next message is due (ms since the epoch).
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.held.lock().keys().next().map(|(due, _)| *due)
    }

    /// Every held message, due order.
    pub fn list(&self) -> Vec<DelayedRecord> {
        self.held.lock().values().cloned().collect()
    }

    /// One held message.
    pub fn get(&self, id: u64) -> Option<DelayedRecord> {
        self.held.lock().values().find(|r| r.id == id).cloned()
    }

    /// Deletes a held message; whether it was held.
    pub fn delete(&self, id: u64) -> bool {
        let key = {
            let held = self.held.lock();
            held.iter().find(|(_, r)| r.id == id).map(|(k, _)| *k)
        };
        let Some(key) = key else { return false };
        self.held.lock().remove(&key);
        self.published(id);
        true
    }

    /// How long until the next message is due, from `now_ms` (capped, so a changed wall clock
    /// is noticed within a second).
    pub(crate) fn sleep_for(&self, now_ms: u64) -> Duration {
        let cap = Duration::from_secs(1);
        match self.next_due() {
            Some(due) => Duration::from_millis(due.saturating_sub(now_ms)).min(cap),
            None => cap,
        }
    }
}

/// The message to publish for a due record.
pub(crate) fn message_of(r: &DelayedRecord) -> Option<Message> {
    let topic = TopicName::new(r.topic.as_str()).ok()?;
    Some(Message::new(topic, r.payload.clone(), r.qos, r.retain))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(topic: &str) -> Message {
        let t = TopicName::new(topic).unwrap_or_else(|e| panic!("{e}"));
        Message::new(t, "p", QoS::AtLeastOnce, false)
    }

    #[test]
    fn parses_the_delay_and_the_target() {
        assert_eq!(
            parse("$delayed/10/a/b").map(|(s, t)| (s, t.as_str().to_owned())),
            Ok((10, "a/b".into()))
        );
        for bad in [
            "$delayed/x/a",
            "$delayed/10",
            "$delayed/10/",
            "$delayed/4294968/a",
            "a/b",
            "$delayed/1/$delayed/2/a",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn holds_in_due_order_within_the_limit_and_round_trips_records() {
        let m = Metrics::default();
        let d = Delayed::new(true, 2);
        let a = d
            .hold(&msg("$delayed/5/a"), &m)
            .unwrap_or_else(|e| panic!("{e}"));
        let b = d
            .hold(&msg("$delayed/1/b"), &m)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.hold(&msg("$delayed/1/c"), &m), Err(DelayedError::Full(2)));
        assert!(d.take_due(b.received_at_ms).is_empty());
        let due = d.take_due(b.publish_at_ms);
        assert_eq!(
            due.iter().map(|r| r.topic.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(d.list().len(), 1);
        assert_eq!(DelayedRecord::from_json(&a.to_json()), Some(a.clone()));
        assert!(d.delete(a.id));
        assert!(!d.delete(a.id));
        d.set_settings(false, 0);
        assert_eq!(
            d.hold(&msg("$delayed/1/c"), &m),
            Err(DelayedError::Disabled)
        );
    }
}
