//! The session registry: which sessions exist per (namespace, client id), who owns each, and
//! when offline ones expire.
//!
//! Invariant: an entry is either `Online` (a connection task owns the `Session`, the registry
//! holds only its control mailbox) or `Offline` (the registry owns the `Session`). Takeover
//! replaces the entry and sends a takeover request to the old owner inside one critical section,
//! so a connection that finds its entry replaced when it ends always finds the request waiting
//! in its mailbox (or already read, its reply kept there: attachment.rs).

use crate::attachment::{Attachment, ControlTx};
use crate::session::Session;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use switchyard_core::ClientId;

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
}

/// The result of opening a session.
#[derive(Debug)]
pub struct Opened {
    /// The session, now owned by the caller until it gives it back through the attachment.
    pub session: Session,
    /// Whether an existing session was resumed (CONNACK session present).
    pub present: bool,
    /// The client's hold on the session: control events in, one finish out.
    pub attachment: Attachment,
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
