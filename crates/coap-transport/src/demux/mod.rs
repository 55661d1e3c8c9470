//! The one UDP driver of the CoAP-based gateways (DESIGN: UDP gateways): a socket task owns the
//! socket and the [`Transport`], demultiplexes requests to one task per client by a key the
//! gateway picks (client id, endpoint name, source address), and sends what those tasks ask
//! for ([`Transmit`]); every client task runs the same loop ([`ClientLink::drive`]) over the
//! gateway's sans-I/O channel ([`ClientChannel`]).
//!
//! A gateway plugs in with [`DemuxGateway`] (and is served as [`UdpDemux`], declaring its one
//! socket with [`listener`]): how a request is routed to a key or answered on
//! the spot, whether a request for a key with no live client may create one (a cheap check: no
//! password hash runs on the socket task, which serves every client), how a new client's task
//! starts, and what a client does with what it receives ([`Inbound`]). Requests we originate go
//! two ways: a client's own ([`Transmit::Request`], whose response and outcome come back to its
//! task by the id it chose), and requests whose response goes straight to a waiting caller
//! ([`Uplink::request`], e.g. CoAP's admin API), resolved on the socket task.
//!
//! Invariants: every channel between tasks is bounded, except the outcomes (ACK, RST, timeout)
//! of what a client sent, which must never be dropped (a lost ACK of a CON notification would
//! block the client's notifications for good) and are bounded by what the transport has in
//! flight for it; a full client queue drops the request (the client's CON retransmission brings
//! it back); the socket task never waits on a client; a panic while handling one datagram drops
//! that datagram, never the listener (`switchyard_bus::contain`); new clients are admitted under
//! the listener's limits (`switchyard_net::Admission`) or refused with 5.03.
//! Must not know: any gateway's protocol above CoAP.

mod client;

pub use client::{open_session, ChannelBase, ClientChannel, ClientLink, Uplink};

use crate::wire::code;
use crate::{error_response, Event, Exchange, Outcome, Request, Transport, TransportConfig};
use coap_lite::Packet;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::net::SocketAddr;
use switchyard_bus::{contain, Metrics};
use switchyard_net::clock::{now, sleep_until};
use switchyard_net::{
    Admission, BoundListener, DatagramSender, DatagramSocket, Gateway, ListenerKind,
    ListenerLimits, ListenerSpec, Permit, ServeError, ServeFuture,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;
/// Queue from the socket task to one client.
const CLIENT_QUEUE: usize = 256;
/// Queue from every client to the socket task.
const SOCKET_QUEUE: usize = 4096;
/// The slot in the tag of requests resolved on the socket task (client slots start at 1).
const DIRECT_SLOT: u64 = 0;

/// The transport's tag: (client slot, the id the client gave what it sent).
type Tag = (u64, u64);

/// What a client task asks the socket task to send.
#[derive(Debug)]
pub enum Transmit {
    /// The answer to a request the client received.
    Reply {
        /// The request's exchange.
        exchange: Exchange,
        /// Code, options, payload.
        packet: Packet,
    },
    /// A server-originated response such as an RFC 7641 notification.
    Notify {
        /// Where the observer is.
        peer: SocketAddr,
        /// Code, token, Observe, payload.
        packet: Packet,
        /// CON or NON.
        confirmable: bool,
        /// The client's id for it: its outcome comes back as [`Inbound::Outcome`] with it.
        id: u64,
        /// The observed resource, for Block2 follow-ups.
        resource: String,
    },
    /// A CON request we originate (e.g. an LwM2M command).
    Request {
        /// To whom.
        peer: SocketAddr,
        /// Code, options, payload.
        packet: Packet,
        /// Keep the token for notifications.
        observe: bool,
        /// The token (an empty one is replaced by a fresh one).
        token: Vec<u8>,
        /// The client's id for it: responses and outcomes come back with it.
        id: u64,
    },
    /// Forget a request or observation we originated (later responses get RST).
    Forget {
        /// To whom it was sent.
        peer: SocketAddr,
        /// Its token.
        token: Vec<u8>,
    },
}

/// What a client task receives.
#[derive(Debug)]
pub enum Inbound<L> {
    /// A request routed to this client.
    Request(Box<Request>),
    /// A response (or a notification) to a [`Transmit::Request`] of this client.
    Response {
        /// The request's id.
        id: u64,
        /// The response.
        packet: Box<Packet>,
    },
    /// What became of a [`Transmit::Notify`] or [`Transmit::Request`] of this client.
    Outcome {
        /// Its id.
        id: u64,
        /// ACK, RST or timeout.
        outcome: Outcome,
    },
    /// Something the gateway sends its own clients (e.g. a server-initiated request from the
    /// admin API), through the client's queue.
    Local(L),
}

/// The sender of a client's queue, for whoever sends it [`Inbound::Local`] messages.
pub type ClientSender<L> = mpsc::Sender<Inbound<L>>;

/// A request sent with [`Uplink::request`] got no response: RST, or never acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("request rejected with RST or never acknowledged")]
pub struct Unanswered;

/// Whoever waits for the response to a request sent with [`Uplink::request`].
pub trait PendingReply: Send + 'static {
    /// Whether the waiter gave up (its request is then forgotten: a late response gets RST).
    fn is_abandoned(&self) -> bool;
    /// Hands over the response, or why there is none.
    fn complete(self: Box<Self>, response: Result<Packet, Unanswered>);
}

/// What a gateway tells the demux about its protocol.
pub trait DemuxGateway: Clone + Send + Sync + 'static {
    /// How requests find their client (client id, endpoint name, source address).
    type Key: Clone + Eq + Hash + Send + Sync + 'static;
    /// What the gateway sends its clients through their queues besides transport traffic.
    type Local: Send + 'static;
    /// One client's protocol state.
    type Channel: ClientChannel;
    /// The protocol's name in logs (`CoAP`, `LwM2M`).
    const PROTO: &'static str;

    /// The transport's parameters.
    fn transport_config(&self) -> TransportConfig;
    /// Where a contained panic is counted.
    fn metrics(&self) -> &Metrics;
    /// The key `req` is routed by, or the reply when it cannot be routed. Runs on the socket
    /// task: cheap, no I/O.
    fn route(&self, req: &Request) -> Result<Self::Key, Packet>;
    /// Whether `req`, for a key with no live client, may create one (`Err`: the reply). Runs on
    /// the socket task: no password check here (that is the new client's task's job).
    fn may_create(&self, req: &Request) -> Result<(), Packet>;
    /// A new client's task, from its first request to its end; the demux reaps the client when
    /// it returns.
    fn run_client(&self, link: ClientLink<Self>, first: Request)
        -> impl Future<Output = ()> + Send;
    /// Feeds `msg` to the client's channel (called by [`ClientLink::drive`]).
    fn handle(
        &self,
        ch: &mut Self::Channel,
        msg: Inbound<Self::Local>,
        uplink: &Uplink,
    ) -> impl Future<Output = ()> + Send;
}

/// What client tasks send the socket task.
enum ToSocket {
    Transmit(u64, Transmit),
    /// A request whose response goes to `reply` (see [`Uplink::request`]).
    Direct {
        peer: SocketAddr,
        packet: Packet,
        token: Vec<u8>,
        reply: Box<dyn PendingReply>,
    },
    /// The client of this slot ended.
    Closed(u64),
}

/// The listener a gateway on the demux declares in its descriptor: UDP on `port`, one socket
/// (the transport's exchange state lives in the one socket task).
pub const fn listener(port: u16) -> ListenerSpec {
    ListenerSpec::default_on(ListenerKind::Udp, port)
}

/// The DTLS listener a gateway on the demux may declare too: one socket on `port`, whose
/// decrypted datagrams take the same path as [`listener`]'s.
pub const fn dtls_listener(port: u16) -> ListenerSpec {
    ListenerSpec::default_on(ListenerKind::Dtls, port)
}

/// A CoAP-based gateway served on the demux: what the binary's gateway table holds for it.
#[derive(Debug, Clone)]
pub struct UdpDemux<G>(pub G);

impl<G: DemuxGateway> Gateway for UdpDemux<G> {
    fn serve(
        &self,
        listener: BoundListener,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<ServeFuture, ServeError> {
        if !matches!(listener.kind, ListenerKind::Udp | ListenerKind::Dtls) {
            return Err(ServeError::Unsupported {
                id: listener.id,
                kind: listener.kind,
            });
        }
        // Plain, or the decrypted side of the listener's DTLS server: the same path below.
        let (mut sockets, parts) = listener.into_datagram_sockets(&cancel, &tracker)?;
        // The descriptor asks for one socket ([`listener`]); `into_datagram` guarantees at least
        // one.
        let socket = sockets.swap_remove(0);
        let gw = self.0.clone();
        Ok(Box::pin(serve(
            socket,
            parts.id,
            gw,
            parts.limits,
            cancel,
            tracker,
        )))
    }
}

/// Serves `gw` on `socket` (bound by `switchyard_net`, with its receive buffer; plain or DTLS)
/// until `cancel`, admitting new clients under `limits` (over them: 5.03).
pub async fn serve<G: DemuxGateway>(
    mut socket: DatagramSocket,
    name: String,
    gw: G,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let mut transport: Transport<Tag> = Transport::new(gw.transport_config());
    let (to_socket, mut from_clients) = mpsc::channel(SOCKET_QUEUE);
    let sender = socket.sender();
    let mut demux = Demux {
        sender: sender.clone(),
        admission: Admission::new(limits, tokio::time::Instant::now()),
        gw,
        slots: HashMap::new(),
        keys: HashMap::new(),
        next_slot: DIRECT_SLOT + 1,
        to_socket,
        cancel: cancel.clone(),
        tracker,
        direct: HashMap::new(),
        next_direct: 0,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some((addr, bytes)) = transport.poll_transmit() {
            if let Err(e) = sender.send_to(&bytes, addr).await {
                tracing::debug!(%addr, error = %e, proto = G::PROTO, "send failed");
            }
        }
        let deadline = transport.next_deadline();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(msg) = from_clients.recv() => demux.on_client_message(msg, &mut transport),
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, peer)) => {
                    demux.datagram(peer, buf.get(..n).unwrap_or_default(), &mut transport);
                }
                Err(e) => {
                    tracing::debug!(listener = %name, error = %e, proto = G::PROTO, "recv failed");
                }
            },
            _ = sleep_until(deadline) => {
                for ev in transport.poll(now()) {
                    demux.dispatch(ev, &mut transport);
                }
            }
        }
    }
    tracing::debug!(listener = %name, proto = G::PROTO, "listener stopped");
}

/// A live client, by slot.
struct Slot<G: DemuxGateway> {
    key: G::Key,
    tx: ClientSender<G::Local>,
    /// Outcomes of what the client sent: unbounded, see the module's invariants.
    outcomes: mpsc::UnboundedSender<(u64, Outcome)>,
    /// The client's place among `max_connections`, free again when its slot closes.
    _permit: Permit,
}

/// A request resolved on the socket task, waiting for its response.
struct Direct {
    peer: SocketAddr,
    token: Vec<u8>,
    reply: Box<dyn PendingReply>,
}

/// The socket task's state besides the transport.
struct Demux<G: DemuxGateway> {
    gw: G,
    /// The socket's sending side, and on DTLS the peers' proven identities.
    sender: DatagramSender,
    slots: HashMap<u64, Slot<G>>,
    keys: HashMap<G::Key, u64>,
    next_slot: u64,
    /// New clients' admission (`max_connections`, `max_conn_rate`, `max_conn_burst`).
    admission: Admission,
    to_socket: mpsc::Sender<ToSocket>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    direct: HashMap<u64, Direct>,
    next_direct: u64,
}

impl<G: DemuxGateway> Demux<G> {
    /// One datagram. This task serves every client of the socket: a panic here drops that
    /// datagram (logged and counted), never the listener.
    fn datagram(&mut self, peer: SocketAddr, data: &[u8], transport: &mut Transport<Tag>) {
        let handled = contain(|| {
            for ev in transport.handle_datagram(peer, data, now()) {
                self.dispatch(ev, transport);
            }
        });
        if let Err(p) = handled {
            p.report(self.gw.metrics(), &peer.to_string());
        }
    }

    fn on_client_message(&mut self, msg: ToSocket, transport: &mut Transport<Tag>) {
        match msg {
            ToSocket::Transmit(slot, t) => transmit(transport, slot, t),
            ToSocket::Direct {
                peer,
                packet,
                token,
                reply,
            } => self.send_direct(peer, packet, token, reply, transport),
            ToSocket::Closed(slot) => self.closed(slot),
        }
    }

    fn dispatch(&mut self, ev: Event<Tag>, transport: &mut Transport<Tag>) {
        let ((slot, id), result) = match ev {
            Event::Request(req) => return self.request(req, transport),
            Event::Response { tag, packet, .. } => (tag, Ok(packet)),
            Event::Acked { tag, .. } => (tag, Err(Outcome::Acked)),
            Event::Reset { tag, .. } => (tag, Err(Outcome::Reset)),
            Event::Timeout { tag, .. } => (tag, Err(Outcome::Timeout)),
        };
        if slot == DIRECT_SLOT {
            return self.direct_done(id, result);
        }
        let Some(s) = self.slots.get(&slot) else {
            return;
        };
        match result {
            Ok(packet) => {
                let msg = Inbound::Response {
                    id,
                    packet: Box::new(packet),
                };
                if s.tx.try_send(msg).is_err() {
                    tracing::warn!(id, proto = G::PROTO, "client queue full: response dropped");
                }
            }
            // A closed receiver means the client is gone: nothing waits for the outcome.
            Err(outcome) => {
                let _ = s.outcomes.send((id, outcome));
            }
        }
    }

    fn request(&mut self, mut req: Request, transport: &mut Transport<Tag>) {
        // Every request carries what its sender proved, so a client task can refuse one from
        // another identity that names its key (client id, endpoint).
        req.peer_identity = self.sender.peer_identity(&req.peer);
        let key = match self.gw.route(&req) {
            Ok(k) => k,
            Err(reply) => return transport.respond(&req.exchange, reply, now()),
        };
        if let Some(slot) = self.keys.get(&key).copied() {
            match self
                .slots
                .get(&slot)
                .map(|s| s.tx.try_send(Inbound::Request(Box::new(req))))
            {
                Some(Ok(())) => return,
                Some(Err(mpsc::error::TrySendError::Full(_))) => {
                    tracing::debug!(proto = G::PROTO, "client queue full: request dropped");
                    return;
                }
                // The client's task ended and is not reaped yet: the request starts a new one.
                Some(Err(mpsc::error::TrySendError::Closed(Inbound::Request(r)))) => {
                    self.closed(slot);
                    req = *r;
                }
                _ => return,
            }
        }
        if let Err(reply) = self.gw.may_create(&req) {
            return transport.respond(&req.exchange, reply, now());
        }
        match self.admission.try_admit(tokio::time::Instant::now()) {
            Ok(permit) => self.spawn(key, req, permit),
            Err(refusal) => {
                tracing::debug!(peer = %req.peer, limit = refusal.limit(), proto = G::PROTO,
                    "new client refused");
                let reply = error_response(code::SERVICE_UNAVAILABLE, "too many clients");
                transport.respond(&req.exchange, reply, now());
            }
        }
    }

    fn spawn(&mut self, key: G::Key, first: Request, permit: Permit) {
        let slot = self.next_slot;
        self.next_slot = self.next_slot.wrapping_add(1).max(DIRECT_SLOT + 1);
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        let uplink = Uplink::new(slot, self.to_socket.clone());
        let link = ClientLink::new(
            key.clone(),
            uplink,
            rx,
            outcomes_rx,
            tx.downgrade(),
            self.cancel.clone(),
            self.sender.peer_identity(&first.peer),
        );
        self.keys.insert(key.clone(), slot);
        self.slots.insert(
            slot,
            Slot {
                key,
                tx,
                outcomes,
                _permit: permit,
            },
        );
        let gw = self.gw.clone();
        let to_socket = self.to_socket.clone();
        self.tracker.spawn(async move {
            gw.run_client(link, first).await;
            let _ = to_socket.send(ToSocket::Closed(slot)).await;
        });
    }

    fn closed(&mut self, slot: u64) {
        if let Some(s) = self.slots.remove(&slot) {
            if self.keys.get(&s.key) == Some(&slot) {
                self.keys.remove(&s.key);
            }
        }
    }

    /// Sends a request whose response comes back through `dispatch` to `reply`.
    fn send_direct(
        &mut self,
        peer: SocketAddr,
        packet: Packet,
        token: Vec<u8>,
        reply: Box<dyn PendingReply>,
        transport: &mut Transport<Tag>,
    ) {
        // Callers that gave up (timed out) leave entries behind: forget them now, so responses
        // nobody waits for are answered with RST and the map stays small.
        self.direct.retain(|_, p| {
            let live = !p.reply.is_abandoned();
            if !live {
                transport.cancel_request(p.peer, &p.token);
            }
            live
        });
        let id = self.next_direct;
        self.next_direct = self.next_direct.wrapping_add(1);
        let tag = (DIRECT_SLOT, id);
        let token = transport.request_with_token(peer, packet, true, false, token, tag, now());
        tracing::debug!(%peer, id, proto = G::PROTO, "server-initiated request sent");
        self.direct.insert(id, Direct { peer, token, reply });
    }

    fn direct_done(&mut self, id: u64, result: Result<Packet, Outcome>) {
        let response = match result {
            Ok(packet) => Ok(packet),
            // An empty ACK: the response follows separately.
            Err(Outcome::Acked) => return,
            Err(Outcome::Reset | Outcome::Timeout) => Err(Unanswered),
        };
        if let Some(p) = self.direct.remove(&id) {
            p.reply.complete(response);
        }
    }
}

fn transmit(transport: &mut Transport<Tag>, slot: u64, t: Transmit) {
    match t {
        Transmit::Reply { exchange, packet } => transport.respond(&exchange, packet, now()),
        Transmit::Notify {
            peer,
            packet,
            confirmable,
            id,
            resource,
        } => {
            transport.notify(peer, packet, confirmable, (slot, id), &resource, now());
        }
        Transmit::Request {
            peer,
            packet,
            observe,
            token,
            id,
        } => {
            transport.request_with_token(peer, packet, true, observe, token, (slot, id), now());
        }
        Transmit::Forget { peer, token } => transport.cancel_request(peer, &token),
    }
}

#[cfg(test)]
mod tests;
