//! The protocol-neutral message every gateway turns its publishes into.
//!
//! A `Message` is built once by the publisher's gateway and shared (`Arc`) by every subscriber;
//! the payload is `Bytes`, so fan-out never copies it.

use crate::{ByteString, ClientId, QoS, SessionId, TopicName};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// MQTT 5 application properties that travel end to end with a message (MQTT 5 §3.3.2.3).
/// Hop-by-hop properties (topic alias, subscription identifiers) are not here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0 = unspecified bytes, 1 = UTF-8.
    pub payload_format_indicator: Option<u8>,
    /// Seconds the message stays valid after it was received.
    pub message_expiry_interval: Option<u32>,
    /// MIME-like content type.
    pub content_type: Option<ByteString>,
    /// Request/response: where to answer.
    pub response_topic: Option<ByteString>,
    /// Request/response: opaque correlation.
    pub correlation_data: Option<Bytes>,
    /// User properties, order preserved, duplicates allowed.
    pub user_properties: Vec<(ByteString, ByteString)>,
}

impl Properties {
    /// True when no property is set, so the wire can omit them.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }
}

/// Who published a message: used for no-local and for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The publishing session.
    pub session: SessionId,
    /// The publishing client's id.
    pub client_id: ClientId,
}

/// One application message on the bus.
#[derive(Debug, Clone)]
pub struct Message {
    /// Where it was published (already validated).
    pub topic: TopicName,
    /// The payload, shared between all deliveries.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The retain flag as published.
    pub retain: bool,
    /// MQTT 5 application properties; `None` when there are none, to keep the common case small.
    pub properties: Option<Arc<Properties>>,
    /// The publisher; `None` for messages the broker makes itself ($SYS, REST publish).
    pub origin: Option<Origin>,
    /// When the broker received it (monotonic, for expiry).
    pub received: Instant,
    /// When the broker received it (wall clock, for display).
    pub timestamp: SystemTime,
}

impl Message {
    /// A message received now with no properties and no origin.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Self {
        Message {
            topic,
            payload: payload.into(),
            qos,
            retain,
            properties: None,
            origin: None,
            received: Instant::now(),
            timestamp: SystemTime::now(),
        }
    }

    /// The message expiry interval, if the publisher set one.
    pub fn expiry_interval(&self) -> Option<u32> {
        self.properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval)
    }

    /// Whether the message has expired at `now` (MQTT 5 §3.3.2.3.3).
    pub fn is_expired(&self, now: Instant) -> bool {
        match self.expiry_interval() {
            Some(secs) => {
                now.saturating_duration_since(self.received) >= Duration::from_secs(u64::from(secs))
            }
            None => false,
        }
    }

    /// The expiry interval left at `now`, to be sent on delivery (MQTT-3.3.2-6).
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expiry_interval().map(|secs| {
            let elapsed = now.saturating_duration_since(self.received).as_secs();
            u32::try_from(u64::from(secs).saturating_sub(elapsed)).unwrap_or(0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_counts_down() {
        let mut m = Message::new(
            TopicName::new("a/b").unwrap_or_else(|e| panic!("{e}")),
            "x",
            QoS::AtLeastOnce,
            false,
        );
        m.properties = Some(Arc::new(Properties {
            message_expiry_interval: Some(10),
            ..Default::default()
        }));
        let t0 = m.received;
        assert!(!m.is_expired(t0));
        assert_eq!(m.remaining_expiry(t0 + Duration::from_secs(4)), Some(6));
        assert!(m.is_expired(t0 + Duration::from_secs(10)));
        assert_eq!(m.remaining_expiry(t0 + Duration::from_secs(20)), Some(0));
    }
}
