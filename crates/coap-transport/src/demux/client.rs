//! The client side of the demux: what one client task holds ([`ClientLink`]: its queue, its
//! outcomes, its way to the socket task) and the loop every client task runs over its sans-I/O
//! channel ([`ClientLink::drive`]), plus the session every client of a CoAP-based gateway has
//! ([`open_session`]).
//!
//! Owns: the client task's `select!` over shutdown, the session's control events (takeover,
//! kick), what arrives for the client, its outbox and its channel's next deadline; pulling
//! deliveries only as the channel's window allows, and sending everything the channel produced
//! after every wakeup.
//! Must not know: the protocol. The gateway opens the session, feeds the channel what arrives
//! ([`DemuxGateway::handle`]) and finishes the session (its attachment's one finish) once the
//! loop returns.

use super::{ClientSender, DemuxGateway, Inbound, PendingReply, ToSocket, Transmit};
use crate::{Exchange, Outcome};
use coap_lite::Packet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::{
    Attachment, BusError, BusHandle, ClientInfo, ControlEvents, OpenSession, Opened, Outbox,
    Session,
};
use switchyard_core::CloseReason;
use switchyard_net::clock::{now, sleep_until};
use switchyard_net::PeerIdentity;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One client's protocol state (the gateway's `Channel`, sans-I/O, `now` passed in) as
/// [`ClientLink::drive`] runs it.
pub trait ClientChannel: Send {
    /// What the channel asks the socket task to send.
    type Output: Into<Transmit> + Send;

    /// The part of the channel every CoAP-based channel holds alike.
    fn base(&self) -> &ChannelBase<Self::Output>;
    /// The same, to change.
    fn base_mut(&mut self) -> &mut ChannelBase<Self::Output>;
    /// Takes deliveries from the outbox as far as the protocol's window allows; returns how
    /// many.
    fn pull_deliveries(&mut self, now: Instant) -> usize;
    /// When [`tick`](Self::tick) has work next.
    fn next_deadline(&self) -> Option<Instant>;
    /// Timers: keepalive, lifetimes, retries.
    fn tick(&mut self, now: Instant);

    /// The session's outbox, while the channel holds a session.
    fn outbox(&self) -> Option<Arc<Outbox>> {
        self.base().session.as_ref().map(|s| s.outbox.clone())
    }
    /// What to send, in order.
    fn take_outputs(&mut self) -> Vec<Self::Output> {
        std::mem::take(&mut self.base_mut().out)
    }
    /// Why the client closes, once it does.
    fn close_reason(&self) -> Option<&CloseReason> {
        self.base().close.as_ref()
    }
    /// Closes the client with `reason` (the first reason wins: exactly one close reason,
    /// ARCHITECTURE.md habit 6).
    fn fail(&mut self, reason: CloseReason) {
        self.base_mut().close.get_or_insert(reason);
    }
}

/// The two [`ClientChannel`] accessors ([`base`](ClientChannel::base),
/// [`base_mut`](ClientChannel::base_mut)) of a channel that keeps its [`ChannelBase`] in the field
/// named: `channel_base!(base);` inside the channel's `impl ClientChannel`.
#[macro_export]
macro_rules! channel_base {
    ($field:ident) => {
        fn base(&self) -> &$crate::demux::ChannelBase<Self::Output> {
            &self.$field
        }
        fn base_mut(&mut self) -> &mut $crate::demux::ChannelBase<Self::Output> {
            &mut self.$field
        }
    };
}

/// What every [`ClientChannel`] holds alike: the client's bus session and its attachment while
/// open, what to send, and why the client closes.
pub struct ChannelBase<O> {
    /// The client's session, until [`finish`](Self::finish).
    pub session: Option<Session>,
    /// The hold on the session while it is open: control events, and the one finish.
    pub attachment: Option<Attachment>,
    /// What to send, in order.
    pub out: Vec<O>,
    /// Why the client closes, once it does (the first reason wins).
    pub close: Option<CloseReason>,
}

impl<O> ChannelBase<O> {
    /// The base of a channel whose session is open.
    pub fn new(session: Session, attachment: Attachment) -> Self {
        ChannelBase {
            session: Some(session),
            attachment: Some(attachment),
            out: Vec::new(),
            close: None,
        }
    }

    /// Ends the session: the attachment hands it back to the bus (to a taker-over too), reports
    /// the disconnect, counts and logs the reason. Returns the close reason.
    pub fn finish(&mut self, bus: &BusHandle) -> CloseReason {
        let reason = self.close.clone().unwrap_or(CloseReason::ServerShutdown);
        let open = self.attachment.take().zip(self.session.take());
        bus.end_connection(open, &reason);
        reason
    }
}

/// A client task's way to the socket task.
#[derive(Debug, Clone)]
pub struct Uplink {
    slot: u64,
    tx: mpsc::Sender<ToSocket>,
}

impl Uplink {
    pub(super) fn new(slot: u64, tx: mpsc::Sender<ToSocket>) -> Self {
        Uplink { slot, tx }
    }

    /// Asks the socket task to send `t`; false when the socket task is gone.
    pub async fn send(&self, t: Transmit) -> bool {
        self.tx.send(ToSocket::Transmit(self.slot, t)).await.is_ok()
    }

    /// Answers a request (e.g. the refusal of a first request); false when the socket task is
    /// gone.
    pub async fn reply(&self, exchange: Exchange, packet: Packet) -> bool {
        self.send(Transmit::Reply { exchange, packet }).await
    }

    /// Sends `packet` as a CON request to `peer` with `token` (an empty one is replaced by a
    /// fresh one); its response, or [`Unanswered`](super::Unanswered) on RST or timeout, goes to
    /// `reply` from the socket task, not through this client. A stopped socket task drops
    /// `reply` unanswered.
    pub async fn request(
        &self,
        peer: SocketAddr,
        packet: Packet,
        token: Vec<u8>,
        reply: Box<dyn PendingReply>,
    ) {
        let msg = ToSocket::Direct {
            peer,
            packet,
            token,
            reply,
        };
        let _ = self.tx.send(msg).await;
    }
}

/// What a client task holds, from the demux.
pub struct ClientLink<G: DemuxGateway> {
    key: G::Key,
    uplink: Uplink,
    rx: mpsc::Receiver<Inbound<G::Local>>,
    outcomes: mpsc::UnboundedReceiver<(u64, Outcome)>,
    /// The client's own queue, weakly: holding it would keep `rx` open after the socket task
    /// has gone.
    me: mpsc::WeakSender<Inbound<G::Local>>,
    cancel: CancellationToken,
    /// On a DTLS listener, who the client's handshake proved it is.
    peer_identity: Option<PeerIdentity>,
}

impl<G: DemuxGateway> ClientLink<G> {
    pub(super) fn new(
        key: G::Key,
        uplink: Uplink,
        rx: mpsc::Receiver<Inbound<G::Local>>,
        outcomes: mpsc::UnboundedReceiver<(u64, Outcome)>,
        me: mpsc::WeakSender<Inbound<G::Local>>,
        cancel: CancellationToken,
        peer_identity: Option<PeerIdentity>,
    ) -> Self {
        ClientLink {
            key,
            uplink,
            rx,
            outcomes,
            me,
            cancel,
            peer_identity,
        }
    }

    /// On a DTLS listener, what the client's handshake proved (a PSK identity, a certificate's
    /// CN); `None` over plain UDP.
    pub fn peer_identity(&self) -> Option<&PeerIdentity> {
        self.peer_identity.as_ref()
    }

    /// The key the demux routes this client's requests by.
    pub fn key(&self) -> &G::Key {
        &self.key
    }

    /// The way to the socket task.
    pub fn uplink(&self) -> &Uplink {
        &self.uplink
    }

    /// A sender into this client's queue, for [`Inbound::Local`] messages; `None` once the
    /// socket task has dropped the client.
    pub fn sender(&self) -> Option<ClientSender<G::Local>> {
        self.me.upgrade()
    }

    /// Runs `ch` until it closes: deliveries pulled as its window allows, what arrives fed to
    /// [`DemuxGateway::handle`], timers, shutdown (`ServerShutdown`) and the session's `control`
    /// events (an operator's kick, a takeover: their close reasons; the attachment's finish
    /// hands a taken-over session on). Everything the channel produced has been sent when it
    /// returns.
    pub async fn drive(&mut self, gw: &G, ch: &mut G::Channel, control: &ControlEvents) {
        if let Some(outbox) = ch.outbox() {
            self.run(gw, ch, &outbox, control).await;
        }
        flush(&self.uplink, ch).await;
    }

    async fn run(&mut self, gw: &G, ch: &mut G::Channel, outbox: &Outbox, control: &ControlEvents) {
        let ClientLink {
            uplink,
            rx,
            outcomes,
            cancel,
            ..
        } = self;
        loop {
            ch.pull_deliveries(now());
            flush(uplink, ch).await;
            if ch.close_reason().is_some() {
                return;
            }
            let deadline = ch.next_deadline();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => ch.fail(CloseReason::ServerShutdown),
                event = control.recv() => ch.fail(event.close_reason()),
                msg = rx.recv() => match msg {
                    Some(msg) => gw.handle(ch, msg, uplink).await,
                    None => ch.fail(CloseReason::ServerShutdown),
                },
                Some((id, outcome)) = outcomes.recv() => {
                    gw.handle(ch, Inbound::Outcome { id, outcome }, uplink).await;
                }
                _ = outbox.notified() => {}
                _ = sleep_until(deadline) => ch.tick(now()),
            }
        }
    }
}

/// Sends everything `ch` produced; a gone socket task closes the client.
async fn flush<C: ClientChannel>(uplink: &Uplink, ch: &mut C) {
    for o in ch.take_outputs() {
        if !uplink.send(o.into()).await {
            ch.fail(CloseReason::ServerShutdown);
            return;
        }
    }
}

/// Opens the session every client of a CoAP-based gateway has: clean start, discarded when the
/// client leaves, one message in flight.
pub async fn open_session(bus: &BusHandle, info: &Arc<ClientInfo>) -> Result<Opened, BusError> {
    bus.open_session(OpenSession {
        info: info.clone(),
        clean_start: true,
        expiry: Duration::ZERO,
        max_inflight: 1,
    })
    .await
}
