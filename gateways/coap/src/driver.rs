//! The UDP side: one socket task owns the socket and the [`Transport`], demultiplexes requests
//! to per-client tasks by client identity ([`ClientKey`]), and sends what they produce; one
//! task per client owns its [`Channel`] and bus session (DESIGN: UDP gateways).
//!
//! Server-initiated requests (docs/coap.md §3.10) go caller → client task (which knows the client's
//! address and connection state) → socket task, which sends them with the reserved slot
//! `ADMIN_SLOT` in their tag and resolves the caller's reply from the transport's events.
//!
//! Invariants: every channel between tasks is bounded; a full client queue drops the request
//! (the client's CON retransmission brings it back); the socket task never waits on a client.

use crate::channel::{self, Channel, ClientKey, NotifyOutcome, Output};
use crate::requester::{self, Reply, RequestError, ServerRequest, ServerResponse};
use crate::transport::wire::code;
use crate::transport::{error_response, Event, Request, Transport};
use crate::CoapGateway;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use switchyard_bus::{contain, durability_scope, ControlEvents, OpenSession};
use switchyard_core::CloseReason;
use switchyard_net::clock::{now, sleep_until};
use switchyard_net::{Admission, ListenerLimits, Permit};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;
/// Queue from the socket task to one client.
const CLIENT_QUEUE: usize = 256;
/// Queue from every client to the socket task.
const SOCKET_QUEUE: usize = 4096;

type Tag = (u64, u64);

/// The slot in the tag of server-initiated requests (client slots start at 1).
const ADMIN_SLOT: u64 = 0;

/// What a client task receives.
pub(crate) enum ClientIn {
    Request(Box<Request>),
    /// A server-initiated request for this client (docs/coap.md §3.10).
    Admin(Box<ServerRequest>, Reply),
}

enum ToSocket {
    Out(Output),
    Closed(u64, ClientKey),
    /// Send a server-initiated request to `peer`.
    Request {
        peer: SocketAddr,
        request: Box<ServerRequest>,
        reply: Reply,
    },
}

/// A server-initiated request waiting for its response.
struct AdminPending {
    peer: SocketAddr,
    token: Vec<u8>,
    reply: Reply,
}

struct Slot {
    tx: mpsc::Sender<ClientIn>,
    /// Outcomes of the client's notifications (ACK, RST, timeout). Never dropped, so not on the
    /// bounded request queue: a CON notification whose ACK was lost to a full queue would block
    /// the client's notifications for good. Bounded in practice by the notifications the
    /// transport has in flight for this client (one CON at a time).
    outcomes: mpsc::UnboundedSender<(u64, NotifyOutcome)>,
}

struct Demux {
    gw: CoapGateway,
    slots: HashMap<u64, Slot>,
    keys: HashMap<ClientKey, u64>,
    next_slot: u64,
    /// New clients' admission (`max_connections`, `max_conn_rate`, `max_conn_burst`).
    admission: Admission,
    /// The admission permit of each live client, by slot: a client's place is free again when
    /// its slot closes.
    permits: HashMap<u64, Permit>,
    out_tx: mpsc::Sender<ToSocket>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    admin: HashMap<u64, AdminPending>,
    next_admin: u64,
}

/// Serves the CoAP gateway on `socket` (bound by `switchyard_net`) until `cancel`, admitting
/// new clients under `limits` (over them: 5.03).
pub(crate) async fn serve_udp(
    socket: UdpSocket,
    name: String,
    gw: CoapGateway,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let mut transport: Transport<Tag> = Transport::new(gw.settings.transport.clone());
    let (out_tx, mut out_rx) = mpsc::channel(SOCKET_QUEUE);
    let mut demux = Demux {
        gw,
        slots: HashMap::new(),
        keys: HashMap::new(),
        next_slot: 1,
        admission: Admission::new(limits, tokio::time::Instant::now()),
        permits: HashMap::new(),
        out_tx,
        cancel: cancel.clone(),
        tracker,
        admin: HashMap::new(),
        next_admin: 1,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some((addr, bytes)) = transport.poll_transmit() {
            if let Err(e) = socket.send_to(&bytes, addr).await {
                tracing::debug!(%addr, error = %e, "CoAP send failed");
            }
        }
        let deadline = transport.next_deadline();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(msg) = out_rx.recv() => match msg {
                ToSocket::Out(Output::Reply { exchange, packet }) => {
                    transport.respond(&exchange, packet, now());
                }
                ToSocket::Out(Output::Notify { peer, packet, confirmable, nid, resource }) => {
                    // The slot is in the tag so transport events find the client again.
                    let slot = demux.slot_of_peer_notify(nid);
                    transport.notify(peer, packet, confirmable, (slot, nid), &resource, now());
                }
                ToSocket::Closed(slot, key) => demux.closed(slot, &key),
                ToSocket::Request { peer, request, reply } => {
                    demux.send_request(peer, *request, reply, &mut transport);
                }
            },
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, peer)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    // This task serves every client of the socket: a panic on one datagram
                    // drops that datagram (logged and counted), never the listener.
                    let handled = contain(|| {
                        for ev in transport.handle_datagram(peer, data, now()) {
                            demux.dispatch(ev, &mut transport);
                        }
                    });
                    if let Err(p) = handled {
                        p.report(demux.gw.bus.metrics(), &peer.to_string());
                    }
                }
                Err(e) => tracing::debug!(listener = %name, error = %e, "CoAP recv failed"),
            },
            _ = sleep_until(deadline) => {
                for ev in transport.poll(now()) {
                    demux.dispatch(ev, &mut transport);
                }
            }
        }
    }
    tracing::debug!(listener = %name, "CoAP listener stopped");
}

impl Demux {
    /// Notifications carry their slot in the high bits of `nid` (see `run_client`).
    fn slot_of_peer_notify(&self, nid: u64) -> u64 {
        nid >> 40
    }

    fn dispatch(&mut self, ev: Event<Tag>, transport: &mut Transport<Tag>) {
        let (tag, outcome) = match ev {
            Event::Request(req) => return self.request(req, transport),
            Event::Response { tag, packet, .. } if tag.0 == ADMIN_SLOT => {
                let r = Ok(ServerResponse::from_packet(&packet));
                return self.admin_done(tag.1, r);
            }
            Event::Reset { tag, .. } | Event::Timeout { tag, .. } if tag.0 == ADMIN_SLOT => {
                return self.admin_done(tag.1, Err(RequestError::Unanswered));
            }
            Event::Acked { tag, .. } => (tag, NotifyOutcome::Acked),
            Event::Reset { tag, .. } => (tag, NotifyOutcome::Reset),
            Event::Timeout { tag, .. } => (tag, NotifyOutcome::Timeout),
            Event::Response { .. } => return,
        };
        if let Some(slot) = self.slots.get(&tag.0) {
            // A closed receiver means the client is gone: nothing waits for the outcome.
            let _ = slot.outcomes.send((tag.1, outcome));
        }
    }

    fn request(&mut self, req: Request, transport: &mut Transport<Tag>) {
        let key = match channel::route(&self.gw, req.peer, &req.packet) {
            Ok(k) => k,
            Err(reply) => return transport.respond(&req.exchange, reply, now()),
        };
        let mut req = req;
        if let Some(slot_id) = self.keys.get(&key).copied() {
            match self
                .slots
                .get(&slot_id)
                .map(|s| s.tx.try_send(ClientIn::Request(Box::new(req))))
            {
                Some(Ok(())) => return,
                Some(Err(mpsc::error::TrySendError::Full(_))) => {
                    tracing::debug!("CoAP client queue full: request dropped");
                    return;
                }
                Some(Err(mpsc::error::TrySendError::Closed(ClientIn::Request(r)))) => {
                    self.closed(slot_id, &key);
                    req = *r;
                }
                _ => return,
            }
        }
        if self.gw.settings.connection_required {
            if let Err(reply) = channel::precheck_connection_mode(&req.packet) {
                return transport.respond(&req.exchange, reply, now());
            }
        }
        match self.admission.try_admit(tokio::time::Instant::now()) {
            // Kept under the slot `spawn` takes next, released when that slot closes.
            Ok(permit) => {
                self.permits.insert(self.next_slot, permit);
            }
            Err(refusal) => {
                tracing::debug!(peer = %req.peer, limit = refusal.limit(), "CoAP client refused");
                let reply = error_response(code::SERVICE_UNAVAILABLE, "too many clients");
                return transport.respond(&req.exchange, reply, now());
            }
        }
        self.spawn(key, req);
    }

    /// Sends a server-initiated request; its response comes back through `dispatch`.
    fn send_request(
        &mut self,
        peer: SocketAddr,
        request: ServerRequest,
        reply: Reply,
        transport: &mut Transport<Tag>,
    ) {
        // Callers that gave up (timed out) leave entries behind: forget them now, so responses
        // nobody waits for are answered with RST and the map stays small.
        self.admin.retain(|_, p| {
            let live = !p.reply.is_closed();
            if !live {
                transport.cancel_request(p.peer, &p.token);
            }
            live
        });
        let id = self.next_admin;
        self.next_admin = self.next_admin.wrapping_add(1);
        let packet = requester::packet(&request);
        let tag = (ADMIN_SLOT, id);
        let token =
            transport.request_with_token(peer, packet, true, false, request.token, tag, now());
        tracing::debug!(%peer, id, "server-initiated CoAP request sent");
        self.admin.insert(id, AdminPending { peer, token, reply });
    }

    fn admin_done(&mut self, id: u64, result: Result<ServerResponse, RequestError>) {
        if let Some(p) = self.admin.remove(&id) {
            let _ = p.reply.send(result);
        }
    }

    fn spawn(&mut self, key: ClientKey, first: Request) {
        let slot = self.next_slot;
        self.next_slot += 1;
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let _ = tx.try_send(ClientIn::Request(Box::new(first)));
        if let ClientKey::Id(id) = &key {
            self.gw.requests.directory.insert(id, tx.clone());
        }
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        self.slots.insert(slot, Slot { tx, outcomes });
        self.keys.insert(key.clone(), slot);
        let client = Client {
            gw: self.gw.clone(),
            slot,
            key,
            rx,
            outcomes: outcomes_rx,
            out_tx: self.out_tx.clone(),
            cancel: self.cancel.clone(),
        };
        self.tracker.spawn(client.run());
    }

    fn closed(&mut self, slot: u64, key: &ClientKey) {
        self.permits.remove(&slot);
        if let (Some(s), ClientKey::Id(id)) = (self.slots.remove(&slot), key) {
            self.gw.requests.directory.remove(id, &s.tx);
        }
        if self.keys.get(key) == Some(&slot) {
            self.keys.remove(key);
        }
    }
}

struct Client {
    gw: CoapGateway,
    slot: u64,
    key: ClientKey,
    rx: mpsc::Receiver<ClientIn>,
    outcomes: mpsc::UnboundedReceiver<(u64, NotifyOutcome)>,
    out_tx: mpsc::Sender<ToSocket>,
    cancel: CancellationToken,
}

impl Client {
    async fn run(mut self) {
        let Some(ClientIn::Request(first)) = self.rx.recv().await else {
            return;
        };
        let first = *first;
        let q = channel::request::query(&first.packet).unwrap_or_default();
        let info = channel::client_info(&self.key, &q, first.peer, self.gw.settings.heartbeat);
        let span = tracing::info_span!("conn", peer = %first.peer, proto = "coap", client_id = %info.client_id);
        async move {
            // Its one close line is logged by the bus (refused, or the channel's finish).
            self.serve(info, first).await;
            let _ = self
                .out_tx
                .send(ToSocket::Closed(self.slot, self.key.clone()))
                .await;
        }
        .instrument(span)
        .await
    }

    async fn serve(&mut self, info: switchyard_bus::ClientInfo, first: Request) {
        if let Err(reply) = channel::login(&self.gw, &first.packet, first.peer, now()).await {
            let _ = self
                .out_tx
                .send(ToSocket::Out(Output::Reply {
                    exchange: first.exchange,
                    packet: reply,
                }))
                .await;
            self.gw.bus.connection_refused(&CloseReason::NotAuthorized);
            return;
        }
        let prefix = match crate::settings::mount_prefix(
            &self.gw.settings.mountpoint,
            info.client_id.as_str(),
            info.username.as_deref(),
        ) {
            Ok(p) => p,
            Err(e) => {
                // A client id or username with '/', '+' or '#' would escape the mountpoint.
                tracing::warn!(placeholder = e.placeholder(), error = %e,
                    "client refused: mountpoint cannot be rendered for it");
                let reply = error_response(code::UNAUTHORIZED, &e.to_string());
                let _ = self
                    .out_tx
                    .send(ToSocket::Out(Output::Reply {
                        exchange: first.exchange,
                        packet: reply,
                    }))
                    .await;
                self.gw.bus.connection_refused(&CloseReason::NotAuthorized);
                return;
            }
        };
        let info = Arc::new(info);
        let opened = self
            .gw
            .bus
            .open_session(OpenSession {
                info: info.clone(),
                clean_start: true,
                expiry: std::time::Duration::ZERO,
                max_inflight: 1,
            })
            .await;
        let opened = match opened {
            Ok(o) => o,
            Err(e) => {
                let reply = error_response(code::SERVICE_UNAVAILABLE, "session refused");
                let _ = self
                    .out_tx
                    .send(ToSocket::Out(Output::Reply {
                        exchange: first.exchange,
                        packet: reply,
                    }))
                    .await;
                let reason = CloseReason::ProtocolError(e.to_string());
                self.gw.bus.connection_refused(&reason);
                return;
            }
        };
        let mut attachment = opened.attachment;
        attachment.report_connected();
        let control = attachment.control();
        let mut ch = Channel::new(
            self.gw.clone(),
            info,
            opened.session,
            attachment,
            prefix,
            now(),
        );
        ch.handle_request(first, now());
        self.drive(&mut ch, &control).await;
        self.flush(&mut ch).await;
        ch.finish();
    }

    async fn flush(&mut self, ch: &mut Channel) {
        for o in ch.take_outputs() {
            let o = match o {
                Output::Notify {
                    peer,
                    packet,
                    confirmable,
                    nid,
                    resource,
                } => Output::Notify {
                    peer,
                    packet,
                    confirmable,
                    // Slot in the high bits: see `Demux::slot_of_peer_notify`.
                    nid: (self.slot << 40) | (nid & ((1 << 40) - 1)),
                    resource,
                },
                reply => reply,
            };
            if self.out_tx.send(ToSocket::Out(o)).await.is_err() {
                ch.fail(CloseReason::ServerShutdown);
                return;
            }
        }
    }

    async fn drive(&mut self, ch: &mut Channel, control: &ControlEvents) {
        let Some(outbox) = ch.outbox() else {
            return;
        };
        loop {
            ch.pull_deliveries(now());
            self.flush(ch).await;
            if ch.close_reason().is_some() {
                return;
            }
            let deadline = ch.next_deadline();
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => ch.fail(CloseReason::ServerShutdown),
                event = control.recv() => ch.fail(event.close_reason()),
                msg = self.rx.recv() => match msg {
                    Some(ClientIn::Request(r)) => {
                        // A CON publish or an observe of a persistent session is answered only
                        // once the state it created is durable.
                        let ((), ticket) = durability_scope(|| ch.handle_request(*r, now()));
                        if let Some(t) = ticket {
                            self.gw.bus.wait_durable(t).await;
                        }
                    }
                    Some(ClientIn::Admin(request, reply)) => {
                        admin_request(&self.out_tx, ch, request, reply).await
                    }
                    None => ch.fail(CloseReason::ServerShutdown),
                },
                Some((nid, o)) = self.outcomes.recv() => {
                    ch.handle_notify_outcome(nid & ((1 << 40) - 1), o, now())
                }
                _ = outbox.notified() => {}
                _ = sleep_until(deadline) => ch.tick(now()),
            }
        }
    }
}

/// docs/coap.md §3.10: only a connected client (in connection mode: one holding a token) is sent a
/// request, at the address it last spoke from.
async fn admin_request(
    out_tx: &mpsc::Sender<ToSocket>,
    ch: &Channel,
    request: Box<ServerRequest>,
    reply: Reply,
) {
    if !ch.is_connected() || ch.close_reason().is_some() {
        let _ = reply.send(Err(RequestError::NotFound));
        return;
    }
    let msg = ToSocket::Request {
        peer: ch.peer(),
        request,
        reply,
    };
    // A stopped socket task drops the message and with it `reply`: the caller sees `Closed`.
    let _ = out_tx.send(msg).await;
}
