//! The engine every protocol shares: subscription routing, retained messages, the session
//! registry, per-session outboxes and the sans-I/O QoS engine.
//!
//! Owns: who is subscribed to what, which sessions exist and who owns each, what is queued for
//! whom, and the QoS 1/2 bookkeeping both ways.
//! Must not know: any wire format or protocol. Gateways translate their packets into
//! [`Message`](switchyard_core::Message)s and calls on [`BusHandle`]; nothing here names MQTT,
//! MQTT-SN, CoAP or LwM2M (the `Namespace` is an opaque label they choose).
//!
//! The flow (ARCHITECTURE.md §2): a gateway calls [`BusHandle::publish`] in its own task; the [`Router`]
//! matches the topic against a read-mostly trie and pushes a [`Delivery`] into each matching
//! session's [`Outbox`]; the subscriber's task drains its outbox while the [`QosEngine`] gives it
//! inflight credit.

#[doc(hidden)]
pub mod accessors;
mod admin;
mod attachment;
mod autosub;
mod config;
mod contain;
mod delayed;
mod delivery;
mod error;
mod events;
#[doc(hidden)]
pub mod fuzzing;
mod handle;
mod keepalive;
mod metrics;
mod outbox;
mod peer;
mod qos;
mod registry;
mod restore;
mod retain;
mod router;
mod session;
mod sessions;
mod store;
mod sys;
mod trie;

pub use admin::ClientSummary;
pub use attachment::{next_control, Attachment, ControlEvent, ControlEvents};
pub use autosub::AutoSubscription;
pub use config::{BusConfig, SharedStrategy};
pub use contain::{contain, Panicked};
pub use delayed::{
    Delayed, DelayedError, DelayedPersistence, DelayedRecord, MAX_DELAY_SECS,
    PREFIX as DELAYED_PREFIX,
};
pub use delivery::{Delivery, RetainHandling, SubOptions};
pub use error::BusError;
pub use events::{BusEvent, EventHub, EventKind, EventTap};
pub use handle::{BusHandle, SubscribeOutcome};
pub use keepalive::Keepalive;
pub use metrics::{Metrics, MetricsSnapshot};
pub use outbox::{Outbox, PushOutcome};
pub use peer::{remote_origin, Peer, REMOTE_SESSION};
pub use qos::{AckError, Incoming2, QosConfig, QosEngine, Resend, SendPublish};
pub use registry::{ClientInfo, Namespace, OpenSession, Opened};
pub use restore::RestoreReport;
pub use retain::{NotStored, RetainLimits, RetainStore};
pub use router::Router;
pub use session::{Session, SessionShared, SubscriptionSet};
pub use store::{
    durability_scope, MemoryStore, SessionStore, Snapshot, StoreLink, StoreOp, StoredDelivery,
    StoredSession, StoredStage, Ticket,
};
