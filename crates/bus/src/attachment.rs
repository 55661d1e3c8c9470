//! The session attachment: what a gateway holds for one client from the moment its session is
//! open until the connection ends, the same for every protocol.
//!
//! Owns: the connection's control mailbox (the registry's takeover requests and operators'
//! kicks, yielded as [`ControlEvent`]s through [`ControlEvents`]), the ownership generation, and
//! the end of the connection: [`Attachment::finish`] hands the session back (to the connection
//! that took it over, to the registry while persistent, or discards it), reports the disconnect,
//! counts the close reason and writes the one close log line ([`log_close`], also written for a
//! connection refused before its session opened).
//!
//! Invariants: a takeover request is answered exactly once. Whichever [`ControlEvents`] clone
//! yields it keeps its reply in the mailbox, so the finish hands the session over; a request the
//! connection never read is found by the release, which closes the mailbox and drains it (the
//! registry's invariant, registry.rs).

use crate::handle::BusHandle;
use crate::registry::ClientInfo;
use crate::session::Session;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switchyard_core::CloseReason;
use tokio::sync::{oneshot, Notify};

/// Where a taken-over session goes.
pub(crate) type TakeoverReply = oneshot::Sender<Option<Session>>;

/// What the registry sends to the task owning a session.
#[derive(Debug)]
pub(crate) enum Request {
    /// Another connection takes the client id: close and hand the session over through `reply`.
    Takeover { reply: TakeoverReply },
    /// An operator kicked the client.
    Kick,
}

/// Something outside the connection that ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlEvent {
    /// Another connection opened a session for the same client id (MQTT-3.1.4-3): close; the
    /// session goes to it when the connection finishes.
    Takeover,
    /// An operator kicked the client.
    Kick,
}

impl ControlEvent {
    /// The close reason this event gives the connection.
    pub fn close_reason(self) -> CloseReason {
        match self {
            ControlEvent::Takeover => CloseReason::Takeover,
            ControlEvent::Kick => CloseReason::Kicked,
        }
    }
}

/// How many control requests may wait; more means the connection is not reading them.
const CONTROL_CAPACITY: usize = 8;

/// A connection's control mailbox: a few rare requests (takeover, kick), so a small shared slot
/// rather than a channel whose first block alone costs ~1 KiB per idle connection.
#[derive(Debug, Default)]
struct ControlSlot {
    queue: Mutex<VecDeque<Request>>,
    notify: Notify,
    closed: AtomicBool,
    /// The reply of a takeover already yielded as an event, until the finish uses it.
    takeover: Mutex<Option<TakeoverReply>>,
}

/// The registry's side of a connection's control mailbox.
#[derive(Debug, Clone)]
pub(crate) struct ControlTx(Arc<ControlSlot>);

/// The connection's side of its control mailbox: yields [`ControlEvent`]s. Cheap to clone (a
/// driver keeps one next to its outbox handle while the channel owns the [`Attachment`]); every
/// clone reads the same mailbox.
#[derive(Debug, Clone)]
pub struct ControlEvents(Arc<ControlSlot>);

/// A new control mailbox.
pub(crate) fn control_channel() -> (ControlTx, ControlEvents) {
    let slot = Arc::new(ControlSlot::default());
    (ControlTx(slot.clone()), ControlEvents(slot))
}

impl ControlTx {
    /// Queues a request; gives it back when the mailbox is closed or full.
    pub(crate) fn try_send(&self, r: Request) -> Result<(), Request> {
        if self.0.closed.load(Ordering::Acquire) {
            return Err(r);
        }
        {
            let mut q = self.0.queue.lock();
            if q.len() >= CONTROL_CAPACITY {
                return Err(r);
            }
            q.push_back(r);
        }
        self.0.notify.notify_one();
        Ok(())
    }
}

impl ControlEvents {
    /// The next event. Cancel-safe; never resolves once the session has been released.
    pub async fn recv(&self) -> ControlEvent {
        loop {
            if let Some(event) = self.try_recv() {
                return event;
            }
            if self.0.closed.load(Ordering::Acquire) {
                std::future::pending::<()>().await;
            }
            self.0.notify.notified().await;
        }
    }

    /// A waiting event, if any (for a caller that cannot await, such as a test harness).
    pub fn try_recv(&self) -> Option<ControlEvent> {
        match self.pop()? {
            Request::Takeover { reply } => {
                // Kept for the finish; a newer request replaces an older one, whose opener then
                // sees no session (it has been superseded anyway).
                *self.0.takeover.lock() = Some(reply);
                Some(ControlEvent::Takeover)
            }
            Request::Kick => Some(ControlEvent::Kick),
        }
    }

    /// Whether nothing is waiting.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.queue.lock().is_empty()
    }

    pub(crate) fn pop(&self) -> Option<Request> {
        self.0.queue.lock().pop_front()
    }

    /// The reply of a takeover already yielded as an event.
    pub(crate) fn take_takeover(&self) -> Option<TakeoverReply> {
        self.0.takeover.lock().take()
    }

    /// Refuses further requests; those already queued can still be taken.
    pub(crate) fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
    }
}

/// The next control event of a connection, or never while it has none (its session is not open
/// yet, so nothing can reach it). The control branch of every driver's `select!`.
pub async fn next_control(events: Option<&ControlEvents>) -> ControlEvent {
    match events {
        Some(e) => e.recv().await,
        None => std::future::pending().await,
    }
}

/// One client's hold on its open session, returned by [`BusHandle::open_session`] (in
/// [`Opened`](crate::Opened)) and kept until the connection ends: the channel owns it, the
/// driver listens to its [`ControlEvents`], and [`Attachment::finish`] ends it.
#[derive(Debug)]
pub struct Attachment {
    bus: BusHandle,
    info: Arc<ClientInfo>,
    generation: u64,
    present: bool,
    control: ControlEvents,
    connected: bool,
}

impl Attachment {
    pub(crate) fn new(
        bus: BusHandle,
        info: Arc<ClientInfo>,
        generation: u64,
        present: bool,
        control: ControlEvents,
    ) -> Self {
        Attachment {
            bus,
            info,
            generation,
            present,
            control,
            connected: false,
        }
    }

    /// The client, as given when the session was opened.
    pub fn info(&self) -> &Arc<ClientInfo> {
        &self.info
    }

    /// The connection's control events (takeover, kick), for the driver's `select!`.
    pub fn control(&self) -> ControlEvents {
        self.control.clone()
    }

    /// Reports the client connected (counted, `$SYS` presence event), once its protocol has
    /// accepted it. A connection that never reports is counted as refused at its finish.
    pub fn report_connected(&mut self) {
        if self.connected {
            return;
        }
        self.connected = true;
        self.bus.client_connected(&self.info);
        let (client_id, present) = (&self.info.client_id, self.present);
        tracing::debug!(%client_id, present, "client connected");
    }

    /// Ends the connection: hands `session` back (to the connection that took the client id
    /// over, whether or not this one read the request; else kept offline while persistent, or
    /// discarded), reports the disconnect, counts `reason` and writes the close log line. The
    /// gateway publishes its will, if any, before.
    pub fn finish(self, session: Session, reason: &CloseReason) {
        self.bus
            .release_session(self.info.namespace, session, self.generation, &self.control);
        if self.connected {
            self.bus.client_disconnected(&self.info, reason);
        } else {
            self.bus.connection_refused(reason);
        }
    }

    /// Hands `session` back without reporting anything: for a session that is not a client's
    /// connection (the admin API's short-lived lookup session).
    pub fn release(self, session: Session) {
        self.bus
            .release_session(self.info.namespace, session, self.generation, &self.control);
    }
}

impl BusHandle {
    /// Ends a connection exactly once, whatever became of it: through its attachment when its
    /// session opened ([`Attachment::finish`]), else as refused
    /// ([`BusHandle::connection_refused`]). A channel's finish, after its will.
    pub fn end_connection(&self, open: Option<(Attachment, Session)>, reason: &CloseReason) {
        match open {
            Some((attachment, session)) => attachment.finish(session, reason),
            None => self.connection_refused(reason),
        }
    }
}

/// The one close log line of a connection (ARCHITECTURE.md habit 6), written inside its span by
/// [`BusHandle::connection_refused`] or, through [`Attachment::finish`], by
/// `client_disconnected`.
pub(crate) fn log_close(reason: &CloseReason) {
    match reason.detail() {
        Some(detail) => tracing::info!(reason = reason.as_str(), detail, "connection closed"),
        None => tracing::info!(reason = reason.as_str(), "connection closed"),
    }
}
