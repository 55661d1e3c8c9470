//! The session registry: which sessions exist per (namespace, client id), who owns each, and
//! when offline ones expire.
//!
//! Invariant: an entry is either `Online` (a connection task owns the `Session`, the registry
//! holds only its control channel) or `Offline` (the registry owns the `Session`). Takeover
//! replaces the entry and sends `Control::Takeover` to the old owner inside one critical
//! section, so a connection that finds its entry replaced when it ends always finds the takeover
//! request waiting in its control channel.

use crate::session::Session;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use switchyard_core::ClientId;
use tokio::sync::oneshot;

/// Client-id namespace: MQTT clients share one, each gateway has its own (as EMQX does).
/// An opaque label chosen by the gateway; the bus never interprets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(pub &'static str);

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What the registry and `$SYS` know about a connected client. Protocol-neutral: the gateway
/// fills in its own protocol name and version.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Namespace of the client id.
    pub namespace: Namespace,
    /// The client id.
    pub client_id: ClientId,
    /// Username, if the protocol has one.
    pub username: Option<String>,
    /// Peer address.
    pub peer: Option<SocketAddr>,
    /// e.g. "MQTT", "MQTT-SN".
    pub proto_name: &'static str,
    /// Protocol version as the gateway numbers it.
    pub proto_ver: u8,
    /// Keepalive in seconds.
    pub keepalive: u16,
    /// Whether the client asked for a fresh session.
    pub clean_start: bool,
    /// Session expiry in seconds.
    pub expiry_interval: u64,
    /// When the connection was accepted.
    pub connected_at: SystemTime,
}

/// Requests the registry sends to the task owning a session.
#[derive(Debug)]
pub enum Control {
    /// Another connection takes the client id: close (reason takeover) and hand the session
    /// over through `reply`.
    Takeover {
        /// Where the session goes.
        reply: oneshot::Sender<Option<Session>>,
    },
    /// An operator kicked the client.
    Kick,
}

/// How many control requests may wait; more means the connection is not reading them.
const CONTROL_CAPACITY: usize = 8;

/// A connection's control mailbox: a few rare requests (takeover, kick), so a small shared slot
/// rather than a channel whose first block alone costs ~1 KiB per idle connection.
#[derive(Debug, Default)]
struct ControlSlot {
    queue: parking_lot::Mutex<std::collections::VecDeque<Control>>,
    notify: tokio::sync::Notify,
    closed: std::sync::atomic::AtomicBool,
}

/// Sender side of a connection's control mailbox.
#[derive(Debug, Clone)]
pub struct ControlTx(Arc<ControlSlot>);

/// Receiver side of a connection's control mailbox.
#[derive(Debug)]
pub struct ControlRx(Arc<ControlSlot>);

/// A new control mailbox for a connection.
pub fn control_channel() -> (ControlTx, ControlRx) {
    let slot = Arc::new(ControlSlot::default());
    (ControlTx(slot.clone()), ControlRx(slot))
}

impl ControlTx {
    /// Queues a request; gives it back when the mailbox is closed or full.
    pub fn try_send(&self, c: Control) -> Result<(), Control> {
        if self.0.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(c);
        }
        {
            let mut q = self.0.queue.lock();
            if q.len() >= CONTROL_CAPACITY {
                return Err(c);
            }
            q.push_back(c);
        }
        self.0.notify.notify_one();
        Ok(())
    }
}

impl ControlRx {
    /// The next request; `None` once closed and drained. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Control> {
        loop {
            if let Some(c) = self.0.queue.lock().pop_front() {
                return Some(c);
            }
            if self.0.closed.load(std::sync::atomic::Ordering::Acquire) {
                return None;
            }
            self.0.notify.notified().await;
        }
    }

    /// A waiting request, if any.
    pub fn try_recv(&mut self) -> Option<Control> {
        self.0.queue.lock().pop_front()
    }

    /// Refuses further requests; those already queued can still be taken.
    pub fn close(&mut self) {
        self.0
            .closed
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.0.queue.lock().is_empty()
    }
}

/// A gateway's request to open (or resume) a session for a new connection.
#[derive(Debug)]
pub struct OpenSession {
    /// Who is connecting.
    pub info: Arc<ClientInfo>,
    /// Discard any existing session.
    pub clean_start: bool,
    /// How long the session outlives the connection.
    pub expiry: std::time::Duration,
    /// Outgoing window for this connection.
    pub max_inflight: u16,
    /// Where the registry reaches this connection.
    pub control: ControlTx,
}

/// The result of opening a session.
#[derive(Debug)]
pub struct Opened {
    /// The session, now owned by the caller.
    pub session: Session,
    /// Whether an existing session was resumed (CONNACK session present).
    pub present: bool,
    /// Identifies this ownership; pass it back on release.
    pub generation: u64,
}

pub(crate) type Key = (Namespace, ClientId);

#[derive(Debug)]
pub(crate) enum Entry {
    Online {
        generation: u64,
        control: ControlTx,
        info: Arc<ClientInfo>,
        /// Set once the session is open: what the admin API reads while the connection owns it.
        attached: Option<Attached>,
    },
    Offline {
        generation: u64,
        session: Box<Session>,
        expires_at: Instant,
        /// The client as it was last connected.
        info: Arc<ClientInfo>,
    },
}

/// The shared handles of an online session.
#[derive(Debug, Clone)]
pub(crate) struct Attached {
    pub(crate) session: switchyard_core::SessionId,
    pub(crate) outbox: Arc<crate::outbox::Outbox>,
    pub(crate) shared: Arc<crate::session::SessionShared>,
    pub(crate) expiry: std::time::Duration,
    pub(crate) created_at: std::time::SystemTime,
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) entries: HashMap<Key, Entry>,
    pub(crate) expiries: BTreeSet<(Instant, u64, Key)>,
}
