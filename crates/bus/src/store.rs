//! Durable state behind a trait. The bus describes every change a restart must survive as a
//! [`StoreOp`] and submits it to the [`SessionStore`]; the store applies ops in submission order
//! and reports, through a watch channel, the highest ticket that is durable. A gateway holds an
//! acknowledgement until the ticket of the ops it caused is durable (see [`durability_scope`]).
//!
//! Only persistent sessions (non-zero expiry), their QoS 1/2 messages and retained messages are
//! submitted: clean sessions and QoS 0 never touch the store. [`MemoryStore`] keeps nothing and
//! never makes anyone wait.

use crate::delivery::SubOptions;
use std::cell::Cell;
use std::sync::Arc;
use std::time::SystemTime;
use switchyard_core::{Message, PacketId, SessionId, SubscriptionFilter};
use tokio::sync::watch;

/// Identifies a submitted op; durable once the store's watch reaches it.
pub type Ticket = u64;

/// Where an outgoing QoS 2 message is in its flow, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredStage {
    /// Sent, waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent,
    /// PUBREC received, PUBREL sent, waiting for PUBCOMP.
    Released,
}

/// One durable change.
#[derive(Debug, Clone)]
pub enum StoreOp {
    /// A message referenced by queues or the retained store; stored once however many sessions
    /// queue it.
    MessagePut { id: u64, message: Arc<Message> },
    /// A persistent session exists (created, resumed, or its expiry changed).
    SessionPut {
        session: SessionId,
        namespace: &'static str,
        client_id: String,
        expiry_secs: u64,
        created_at: SystemTime,
    },
    /// The session went offline at this time (its expiry runs from here).
    SessionOffline { session: SessionId, at: SystemTime },
    /// The session is gone with everything it held.
    SessionDelete { session: SessionId },
    /// The will of a persistent session, published after a crash if the session is still
    /// within its expiry. `None` clears it.
    WillPut {
        session: SessionId,
        will: Option<(u64, u32)>,
    },
    /// A subscription was added or changed.
    SubscriptionPut {
        session: SessionId,
        filter: SubscriptionFilter,
        opts: SubOptions,
    },
    /// A subscription was removed.
    SubscriptionDelete {
        session: SessionId,
        filter: SubscriptionFilter,
    },
    /// A delivery was queued for the session.
    QueuePush {
        session: SessionId,
        seq: u64,
        message_id: u64,
        qos: u8,
        retain: bool,
        subscription_ids: Vec<u32>,
    },
    /// A queued delivery was sent with this packet id, or moved to another stage.
    QueueInflight {
        session: SessionId,
        seq: u64,
        pkid: PacketId,
        stage: StoredStage,
    },
    /// A delivery is done (acknowledged, dropped or expired).
    QueueRemove { session: SessionId, seq: u64 },
    /// An incoming QoS 2 packet id awaits PUBREL.
    IncomingPut { session: SessionId, pkid: PacketId },
    /// An incoming QoS 2 packet id was released.
    IncomingDelete { session: SessionId, pkid: PacketId },
    /// The retained message on a topic is this message; `durable` when its publisher's
    /// acknowledgement waits for it (QoS 1/2).
    RetainPut {
        topic: String,
        message_id: u64,
        durable: bool,
    },
    /// The topic has no retained message any more.
    RetainDelete { topic: String },
}

impl StoreOp {
    /// Whether an acknowledgement the op is behind must wait until it is durable. Removals and
    /// bookkeeping are lazy: losing them in a crash only causes a redelivery (MQTT allows it).
    pub fn requires_durability(&self) -> bool {
        !matches!(
            self,
            StoreOp::QueueRemove { .. }
                | StoreOp::SessionOffline { .. }
                | StoreOp::QueueInflight {
                    stage: StoredStage::Sent,
                    ..
                }
                | StoreOp::RetainPut { durable: false, .. }
        )
    }
}

/// Durable storage of sessions, queues and retained messages.
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Queues an op for the writer, in order; never blocks on I/O. Returns its ticket.
    fn submit(&self, op: StoreOp) -> Ticket;
    /// The highest ticket that is durable.
    fn durable(&self) -> watch::Receiver<Ticket>;
    /// Whether acknowledgements wait for durability at all.
    fn is_persistent(&self) -> bool;
}

/// Keeps nothing; every ticket is durable at once.
#[derive(Debug)]
pub struct MemoryStore {
    durable: watch::Sender<Ticket>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            durable: watch::Sender::new(0),
        }
    }
}

impl SessionStore for MemoryStore {
    fn submit(&self, _op: StoreOp) -> Ticket {
        0
    }
    fn durable(&self) -> watch::Receiver<Ticket> {
        self.durable.subscribe()
    }
    fn is_persistent(&self) -> bool {
        false
    }
}

/// A persistent session's connection to the store: which session the ops are about.
#[derive(Debug, Clone)]
pub struct StoreLink {
    /// The session.
    pub session: SessionId,
    /// The store.
    pub store: Arc<dyn SessionStore>,
}

impl StoreLink {
    /// Submits an op about this session (see [`durability_scope`]).
    pub(crate) fn submit(&self, op: StoreOp) {
        submit(self.store.as_ref(), op);
    }
}

thread_local! {
    static SCOPE: Cell<Option<Ticket>> = const { Cell::new(None) };
}

/// Runs `f` (synchronous protocol handling: no `.await` inside) and returns the highest ticket
/// of the ops it submitted that require durability. A gateway holds the acknowledgements `f`
/// produced until that ticket is durable.
pub fn durability_scope<R>(f: impl FnOnce() -> R) -> (R, Option<Ticket>) {
    let outer = SCOPE.with(|s| s.replace(Some(0)));
    let r = f();
    let ticket = SCOPE.with(|s| s.replace(outer));
    let ticket = ticket.filter(|t| *t > 0);
    if let (Some(o), Some(t)) = (outer, ticket) {
        // Nested scopes: the outer one waits for the inner ops too.
        SCOPE.with(|s| s.set(Some(o.max(t))));
    }
    (r, ticket)
}

/// Submits an op and records its ticket in the current durability scope if it must be durable
/// before an acknowledgement.
pub(crate) fn submit(store: &dyn SessionStore, op: StoreOp) {
    let required = op.requires_durability();
    let ticket = store.submit(op);
    if required && ticket > 0 {
        SCOPE.with(|s| {
            if let Some(t) = s.get() {
                s.set(Some(t.max(ticket)));
            }
        });
    }
}

/// What a store loaded at start-up: enough to rebuild every persistent session.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sessions, each with its subscriptions, queue and QoS 2 state.
    pub sessions: Vec<StoredSession>,
    /// Retained messages.
    pub retained: Vec<(u64, Message)>,
    /// The highest message id in use.
    pub max_message_id: u64,
}

/// One stored session.
#[derive(Debug)]
pub struct StoredSession {
    /// Its id.
    pub session: SessionId,
    /// Namespace label.
    pub namespace: String,
    /// Client id.
    pub client_id: String,
    /// Expiry in seconds.
    pub expiry_secs: u64,
    /// Creation time.
    pub created_at: SystemTime,
    /// When it went offline; `None` if it was online when the broker stopped.
    pub offline_at: Option<SystemTime>,
    /// Its will (message, delay seconds), if any.
    pub will: Option<(Message, u32)>,
    /// Subscriptions.
    pub subscriptions: Vec<(SubscriptionFilter, SubOptions)>,
    /// Queued and inflight deliveries in queue order.
    pub queue: Vec<StoredDelivery>,
    /// Incoming QoS 2 packet ids awaiting PUBREL.
    pub incoming: Vec<PacketId>,
}

/// One stored delivery.
#[derive(Debug)]
pub struct StoredDelivery {
    /// Queue position.
    pub seq: u64,
    /// The message id and message.
    pub message_id: u64,
    /// The message.
    pub message: Message,
    /// Delivery QoS.
    pub qos: u8,
    /// Delivery retain flag.
    pub retain: bool,
    /// Subscription identifiers.
    pub subscription_ids: Vec<u32>,
    /// Packet id and stage when it was in flight.
    pub inflight: Option<(PacketId, StoredStage)>,
}
