//! The event tap: what happens on the bus (a message published, delivered, acknowledged or
//! dropped; a client connected or disconnected; a subscription made or removed), offered to one
//! listener — the rule engine — without the bus knowing what listens or why.
//!
//! Owns: [`BusEvent`], the [`EventTap`] trait and the [`EventHub`] the bus emits through.
//! Must not know: rules, SQL, actions, any protocol. Events carry the bus's own values
//! (`Message`, `Delivery`, `ClientInfo`); the listener names them (EMQX's field names live in
//! the rule engine).
//!
//! Cost when nothing listens: each emit point is one relaxed atomic load of the interest mask
//! and a branch; no allocation, no lock. The tap runs in the task of whoever caused the event
//! (the publisher, the subscriber, the connection), so it must not block: a listener that
//! sends events elsewhere queues them.

use crate::delivery::{Delivery, SubOptions};
use crate::registry::ClientInfo;
use parking_lot::RwLock;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use switchyard_core::{ClientId, CloseReason, Message, SubscriptionFilter};

/// The kinds of event, as bits of an interest mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum EventKind {
    /// A message was published (before routing).
    MessagePublish = 1,
    /// A message was handed to a subscriber's connection for sending.
    MessageDelivered = 1 << 1,
    /// A subscriber acknowledged a QoS 1/2 message (PUBACK, PUBCOMP).
    MessageAcked = 1 << 2,
    /// A message was dropped (e.g. no subscriber).
    MessageDropped = 1 << 3,
    /// A client connected.
    ClientConnected = 1 << 4,
    /// A connected client disconnected.
    ClientDisconnected = 1 << 5,
    /// A session subscribed to a filter.
    SessionSubscribed = 1 << 6,
    /// A session unsubscribed from a filter.
    SessionUnsubscribed = 1 << 7,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 8] = [
        EventKind::MessagePublish,
        EventKind::MessageDelivered,
        EventKind::MessageAcked,
        EventKind::MessageDropped,
        EventKind::ClientConnected,
        EventKind::ClientDisconnected,
        EventKind::SessionSubscribed,
        EventKind::SessionUnsubscribed,
    ];

    /// The kind's bit in an interest mask.
    pub fn bit(self) -> u32 {
        self as u32
    }
}

/// One event, borrowed from the code that caused it.
#[derive(Debug, Clone, Copy)]
pub enum BusEvent<'a> {
    /// A message was published; emitted before it is routed.
    MessagePublish(&'a Message),
    /// `client_id` is about to be sent `delivery`.
    MessageDelivered {
        /// The receiving client.
        client_id: &'a ClientId,
        /// What it receives (its QoS is the granted one).
        delivery: &'a Delivery,
    },
    /// `client_id` acknowledged `delivery`.
    MessageAcked {
        /// The receiving client.
        client_id: &'a ClientId,
        /// What it acknowledged.
        delivery: &'a Delivery,
    },
    /// A message went nowhere.
    MessageDropped {
        /// The message.
        message: &'a Message,
        /// Why, in EMQX's words (`no_subscribers`).
        reason: &'static str,
    },
    /// A client connected (after the protocol accepted it).
    ClientConnected(&'a ClientInfo),
    /// A connected client disconnected.
    ClientDisconnected {
        /// Who.
        info: &'a ClientInfo,
        /// Its one close reason.
        reason: &'a CloseReason,
    },
    /// A session subscribed (or replaced a subscription).
    SessionSubscribed {
        /// The session's client.
        client_id: &'a ClientId,
        /// The filter.
        filter: &'a SubscriptionFilter,
        /// Its options.
        opts: &'a SubOptions,
    },
    /// A session removed a subscription.
    SessionUnsubscribed {
        /// The session's client.
        client_id: &'a ClientId,
        /// The filter.
        filter: &'a SubscriptionFilter,
    },
}

impl BusEvent<'_> {
    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            BusEvent::MessagePublish(_) => EventKind::MessagePublish,
            BusEvent::MessageDelivered { .. } => EventKind::MessageDelivered,
            BusEvent::MessageAcked { .. } => EventKind::MessageAcked,
            BusEvent::MessageDropped { .. } => EventKind::MessageDropped,
            BusEvent::ClientConnected(_) => EventKind::ClientConnected,
            BusEvent::ClientDisconnected { .. } => EventKind::ClientDisconnected,
            BusEvent::SessionSubscribed { .. } => EventKind::SessionSubscribed,
            BusEvent::SessionUnsubscribed { .. } => EventKind::SessionUnsubscribed,
        }
    }
}

/// The one listener of a bus's events.
pub trait EventTap: Send + Sync {
    /// Called in the task that caused the event; must not block.
    fn on_event(&self, event: &BusEvent<'_>);
}

/// Where the bus emits events: the listener and the kinds it wants.
#[derive(Default)]
pub struct EventHub {
    mask: AtomicU32,
    tap: RwLock<Option<Arc<dyn EventTap>>>,
}

impl fmt::Debug for EventHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHub")
            .field("mask", &self.mask.load(Ordering::Relaxed))
            .finish()
    }
}

impl EventHub {
    /// Whether the listener wants `kind`: the hot path's only cost when nothing listens.
    #[inline]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.mask.load(Ordering::Relaxed) & kind.bit() != 0
    }

    /// Sends `event` to the listener if it wants its kind.
    #[inline]
    pub fn emit(&self, event: BusEvent<'_>) {
        if self.wants(event.kind()) {
            self.emit_slow(&event);
        }
    }

    #[cold]
    fn emit_slow(&self, event: &BusEvent<'_>) {
        let tap = self.tap.read().clone();
        if let Some(tap) = tap {
            tap.on_event(event);
        }
    }

    /// Installs (or, with `None`, removes) the listener.
    pub fn set_tap(&self, tap: Option<Arc<dyn EventTap>>) {
        let none = tap.is_none();
        *self.tap.write() = tap;
        if none {
            self.mask.store(0, Ordering::Relaxed);
        }
    }

    /// The kinds the listener wants (it changes them as its rules change).
    pub fn set_interest(&self, kinds: impl IntoIterator<Item = EventKind>) {
        let mask = kinds.into_iter().fold(0, |m, k| m | k.bit());
        self.mask.store(mask, Ordering::Relaxed);
    }
}

/// What a session's outbox and QoS engine need to report deliveries and acknowledgements.
#[derive(Debug, Clone)]
pub(crate) struct EventLink {
    pub(crate) hub: Arc<EventHub>,
    pub(crate) client_id: ClientId,
}

impl EventLink {
    #[inline]
    pub(crate) fn wants(&self, kind: EventKind) -> bool {
        self.hub.wants(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Namespace, OpenSession};
    use crate::BusHandle;
    use parking_lot::Mutex;
    use std::time::{Duration, Instant, SystemTime};
    use switchyard_core::{QoS, TopicName};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl EventTap for Recorder {
        fn on_event(&self, e: &BusEvent<'_>) {
            let line = match e {
                BusEvent::MessagePublish(m) => format!("publish {}", m.topic),
                BusEvent::MessageDelivered {
                    client_id,
                    delivery,
                } => format!("delivered {} {}", client_id, delivery.message.topic),
                BusEvent::MessageAcked {
                    client_id,
                    delivery,
                } => format!("acked {} {}", client_id, delivery.message.topic),
                BusEvent::MessageDropped { message, reason } => {
                    format!("dropped {} {reason}", message.topic)
                }
                BusEvent::ClientConnected(i) => format!("connected {}", i.client_id),
                BusEvent::ClientDisconnected { info, reason } => {
                    format!("disconnected {} {}", info.client_id, reason.as_str())
                }
                BusEvent::SessionSubscribed {
                    client_id, filter, ..
                } => format!("subscribed {client_id} {filter}"),
                BusEvent::SessionUnsubscribed { client_id, filter } => {
                    format!("unsubscribed {client_id} {filter}")
                }
            };
            self.0.lock().push(line);
        }
    }

    fn msg(topic: &str, qos: QoS) -> Message {
        Message::new(
            TopicName::new(topic).unwrap_or_else(|e| panic!("{e}")),
            "x",
            qos,
            false,
        )
    }

    #[tokio::test]
    async fn every_kind_reaches_the_tap_only_when_wanted() {
        let bus = BusHandle::new(Default::default());
        let rec = Arc::new(Recorder::default());
        bus.events().set_tap(Some(rec.clone()));
        // Nothing wanted yet: nothing heard.
        bus.publish(msg("a/b", QoS::AtMostOnce));
        assert!(rec.0.lock().is_empty());
        bus.events().set_interest(EventKind::ALL);
        let info = Arc::new(ClientInfo {
            namespace: Namespace("test"),
            client_id: "c1".into(),
            username: None,
            peer: None,
            proto_name: "TEST",
            proto_ver: 1,
            keepalive: 0,
            clean_start: true,
            expiry_interval: 0,
            connected_at: SystemTime::now(),
        });
        let mut opened = bus
            .open_session(OpenSession {
                info: info.clone(),
                clean_start: true,
                expiry: Duration::ZERO,
                max_inflight: 8,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut session = opened.session;
        opened.attachment.report_connected();
        let f =
            switchyard_core::SubscriptionFilter::parse("t/#", 0).unwrap_or_else(|e| panic!("{e}"));
        let opts = crate::SubOptions {
            qos: QoS::AtLeastOnce,
            ..Default::default()
        };
        let _ = bus.subscribe(&mut session, f.clone(), opts);
        bus.publish(msg("t/1", QoS::AtLeastOnce));
        bus.publish(msg("nobody/here", QoS::AtMostOnce));
        let mut out = Vec::new();
        session.take_deliveries(Instant::now(), 10, &mut out);
        for d in out {
            let sent = session.qos.send(d, Instant::now());
            if let Some(pkid) = sent.pkid {
                let _ = session.qos.on_puback(pkid);
            }
        }
        bus.unsubscribe(&mut session, &f);
        opened
            .attachment
            .finish(session, &CloseReason::ClientDisconnect);
        // $SYS presence messages are events too (a listener filters them if it wants).
        let heard: Vec<String> = rec
            .0
            .lock()
            .iter()
            .filter(|l| !l.contains("$SYS"))
            .cloned()
            .collect();
        assert_eq!(
            heard,
            vec![
                "connected c1",
                "subscribed c1 t/#",
                "publish t/1",
                "publish nobody/here",
                "dropped nobody/here no_subscribers",
                "delivered c1 t/1",
                "acked c1 t/1",
                "unsubscribed c1 t/#",
                "disconnected c1 client_disconnect",
            ]
        );
    }
}
