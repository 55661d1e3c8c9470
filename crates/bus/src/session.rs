//! A session: the state that outlives a connection when the client asks for it — its
//! subscriptions, its outbox and its QoS state. Exactly one owner at a time: the connection task
//! while online, the registry while offline; takeover moves it.

use crate::delivery::SubOptions;
use crate::outbox::Outbox;
use crate::qos::QosEngine;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_core::{ClientId, SessionId, SubscriptionFilter};

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
    /// What the session is subscribed to.
    pub subscriptions: BTreeMap<SubscriptionFilter, SubOptions>,
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
    pub(crate) subscriptions: Mutex<BTreeMap<SubscriptionFilter, SubOptions>>,
    pub(crate) inflight: Arc<AtomicUsize>,
    pub(crate) disconnected_at: Mutex<Option<SystemTime>>,
}

impl Session {
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
            .field("subscriptions", &self.subscriptions.len())
            .field("inflight", &self.qos.inflight_len())
            .field("queued", &self.outbox.len())
            .field("expiry", &self.expiry)
            .finish()
    }
}
