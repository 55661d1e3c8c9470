//! The UDP side: one socket task owns the socket and the CoAP [`Transport`], routes
//! registration-interface requests by endpoint name to one task per device (so a device that
//! registers again from a new address reaches its existing channel, which takes the new
//! address), sends the commands those tasks produce, and routes replies and notifications back
//! by the command's tag. One task per device owns its [`Channel`] and bus session.
//!
//! Invariants: every channel between tasks is bounded; a full device queue drops the request
//! (the device's CON retransmission brings it back); the socket task never waits on a device.

use crate::channel::{self, Channel, Outcome, Output};
use crate::register::{query_map, Registration};
use crate::Lwm2mGateway;
use std::collections::HashMap;
use std::sync::Arc;
use switchyard_bus::{contain, ControlEvents, OpenSession};
use switchyard_coap::coap_lite::Packet;
use switchyard_coap::transport::wire::{self, code};
use switchyard_coap::transport::{error_response, Event, Request, Transport};
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
/// Queue from the socket task to one device.
const CLIENT_QUEUE: usize = 256;
/// Queue from every device to the socket task.
const SOCKET_QUEUE: usize = 4096;

/// (slot, command id).
type Tag = (u64, u64);

enum ClientIn {
    Request(Box<Request>),
    Response(u64, Box<Packet>),
    Outcome(u64, Outcome),
}

enum ToSocket {
    Out(u64, Output),
    Closed(u64, String),
}

struct Demux {
    gw: Lwm2mGateway,
    slots: HashMap<u64, mpsc::Sender<ClientIn>>,
    keys: HashMap<String, u64>,
    next_slot: u64,
    /// New devices' admission (`max_connections`, `max_conn_rate`, `max_conn_burst`).
    admission: Admission,
    out_tx: mpsc::Sender<ToSocket>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// Serves the LwM2M gateway on `socket` (bound by `switchyard_net`, with its receive buffer)
/// until `cancel`, admitting new devices under `limits` (over them a Register gets 5.03).
pub(crate) async fn serve_udp(
    socket: UdpSocket,
    name: String,
    gw: Lwm2mGateway,
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
        out_tx,
        cancel: cancel.clone(),
        tracker,
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some((addr, bytes)) = transport.poll_transmit() {
            if let Err(e) = socket.send_to(&bytes, addr).await {
                tracing::debug!(%addr, error = %e, "LwM2M send failed");
            }
        }
        let deadline = transport.next_deadline();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(msg) = out_rx.recv() => match msg {
                ToSocket::Out(slot, out) => execute(&mut transport, slot, out),
                ToSocket::Closed(slot, key) => demux.closed(slot, &key),
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
                Err(e) => tracing::debug!(listener = %name, error = %e, "LwM2M recv failed"),
            },
            _ = sleep_until(deadline) => {
                for ev in transport.poll(now()) {
                    demux.dispatch(ev, &mut transport);
                }
            }
        }
    }
    tracing::debug!(listener = %name, "LwM2M listener stopped");
}

fn execute(transport: &mut Transport<Tag>, slot: u64, out: Output) {
    match out {
        Output::Reply { exchange, packet } => transport.respond(&exchange, packet, now()),
        Output::Request {
            peer,
            packet,
            observe,
            token,
            cid,
        } => {
            transport.request_with_token(peer, packet, true, observe, token, (slot, cid), now());
        }
        Output::Forget { peer, token } => transport.cancel_request(peer, &token),
    }
}

/// The endpoint a registration-interface request is for: `POST /rd?ep=…` or `/rd/{ep}`.
fn route(p: &Packet) -> Result<(String, bool), Packet> {
    let path = wire::uri_path(p).map_err(|_| error_response(code::BAD_REQUEST, "invalid URI"))?;
    match (wire::code_of(p), path.as_slice()) {
        (code::POST, [rd]) if rd == "rd" => {
            let q = wire::uri_query(p).unwrap_or_default();
            match query_map(&q).get("ep").filter(|e| !e.is_empty()) {
                Some(ep) => Ok((ep.clone(), true)),
                None => Err(channel::login_failed("invalid queries")),
            }
        }
        (_, [rd, ep]) if rd == "rd" => Ok((ep.clone(), false)),
        _ => Err(error_response(code::NOT_FOUND, "not found")),
    }
}

impl Demux {
    fn dispatch(&mut self, ev: Event<Tag>, transport: &mut Transport<Tag>) {
        let ((slot, cid), msg) = match ev {
            Event::Request(req) => return self.request(req, transport),
            Event::Response { tag, packet, .. } => {
                (tag, ClientIn::Response(tag.1, Box::new(packet)))
            }
            Event::Acked { tag, .. } => (tag, ClientIn::Outcome(tag.1, Outcome::Acked)),
            Event::Reset { tag, .. } => (tag, ClientIn::Outcome(tag.1, Outcome::Reset)),
            Event::Timeout { tag, .. } => (tag, ClientIn::Outcome(tag.1, Outcome::Timeout)),
        };
        if let Some(tx) = self.slots.get(&slot) {
            if tx.try_send(msg).is_err() {
                tracing::warn!(cid, "LwM2M device queue full: command event dropped");
            }
        }
    }

    fn request(&mut self, req: Request, transport: &mut Transport<Tag>) {
        let (key, is_register) = match route(&req.packet) {
            Ok(k) => k,
            Err(reply) => return transport.respond(&req.exchange, reply, now()),
        };
        let mut req = req;
        if let Some(slot_id) = self.keys.get(&key).copied() {
            match self
                .slots
                .get(&slot_id)
                .map(|s| s.try_send(ClientIn::Request(Box::new(req))))
            {
                Some(Ok(())) => return,
                Some(Err(mpsc::error::TrySendError::Full(_))) => {
                    tracing::debug!("LwM2M device queue full: request dropped");
                    return;
                }
                Some(Err(mpsc::error::TrySendError::Closed(ClientIn::Request(r)))) => {
                    self.closed(slot_id, &key);
                    req = *r;
                }
                _ => return,
            }
        }
        if !is_register {
            // Update/De-register of an endpoint that is not registered (docs/lwm2m.md §4.2:
            // 4.04).
            let reply = error_response(code::NOT_FOUND, "not registered");
            return transport.respond(&req.exchange, reply, now());
        }
        match self.admission.try_admit(tokio::time::Instant::now()) {
            Ok(permit) => self.spawn(key, req, permit),
            Err(refusal) => {
                tracing::debug!(peer = %req.peer, limit = refusal.limit(), "LwM2M Register refused");
                let reply = error_response(code::SERVICE_UNAVAILABLE, "too many clients");
                transport.respond(&req.exchange, reply, now());
            }
        }
    }

    fn spawn(&mut self, key: String, first: Request, permit: Permit) {
        let slot = self.next_slot;
        self.next_slot += 1;
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        self.slots.insert(slot, tx);
        self.keys.insert(key.clone(), slot);
        let client = Client {
            gw: self.gw.clone(),
            slot,
            key,
            rx,
            out_tx: self.out_tx.clone(),
            cancel: self.cancel.clone(),
            _permit: permit,
        };
        self.tracker.spawn(client.run(first));
    }

    fn closed(&mut self, slot: u64, key: &str) {
        self.slots.remove(&slot);
        if self.keys.get(key) == Some(&slot) {
            self.keys.remove(key);
        }
    }
}

struct Client {
    gw: Lwm2mGateway,
    slot: u64,
    key: String,
    rx: mpsc::Receiver<ClientIn>,
    out_tx: mpsc::Sender<ToSocket>,
    cancel: CancellationToken,
    /// The device's place among `max_connections`, freed when its task ends.
    _permit: Permit,
}

impl Client {
    async fn run(mut self, first: Request) {
        let span =
            tracing::info_span!("conn", peer = %first.peer, proto = "lwm2m", client_id = %self.key);
        async move {
            // A registered device's one close line is logged by the bus (the channel's finish).
            if self.serve(first).await.is_none() {
                tracing::debug!("registration refused");
            }
            let _ = self
                .out_tx
                .send(ToSocket::Closed(self.slot, self.key.clone()))
                .await;
        }
        .instrument(span)
        .await
    }

    async fn send(&self, out: Output) -> bool {
        self.out_tx
            .send(ToSocket::Out(self.slot, out))
            .await
            .is_ok()
    }

    async fn refuse(&self, first: Request, reply: Packet) {
        let _ = self
            .send(Output::Reply {
                exchange: first.exchange,
                packet: reply,
            })
            .await;
    }

    /// `None` when the Register was refused (no session was opened).
    async fn serve(&mut self, first: Request) -> Option<CloseReason> {
        let query = wire::uri_query(&first.packet).unwrap_or_default();
        let reg = match Registration::parse(&query, &first.packet.payload) {
            Ok(r) => r,
            Err(reason) => {
                self.refuse(first, channel::login_failed(reason)).await;
                return None;
            }
        };
        channel::check_network(&self.gw, &reg, first.peer).await;
        if let Err(reason) = channel::authenticate(&self.gw, &reg, first.peer, now()) {
            self.refuse(first, channel::login_failed(reason)).await;
            self.gw.bus.connection_refused(&CloseReason::NotAuthorized);
            return None;
        }
        let info = Arc::new(channel::client_info(&reg, first.peer));
        let prefix = match channel::mount_prefix(&self.gw, &reg, &info) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(endpoint = reg.ep, placeholder = e.placeholder(), error = %e,
                    "Register refused: mountpoint cannot be rendered for this device");
                self.refuse(first, channel::login_failed("not_authorized"))
                    .await;
                self.gw.bus.connection_refused(&CloseReason::NotAuthorized);
                return None;
            }
        };
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
                tracing::debug!(error = %e, "session refused");
                self.refuse(first, channel::login_failed("session_open_failed"))
                    .await;
                return None;
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
            reg,
            prefix,
            now(),
        );
        if let Err(reason) = ch.start(&first.exchange, now()) {
            ch.fail(reason);
            self.refuse(first, channel::login_failed("invalid endpoint name"))
                .await;
        }
        self.drive(&mut ch, &control).await;
        self.flush(&mut ch).await;
        Some(ch.finish())
    }

    async fn flush(&mut self, ch: &mut Channel) {
        for o in ch.take_outputs() {
            if !self.send(o).await {
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
                    Some(ClientIn::Request(r)) => ch.handle_request(*r, now()),
                    Some(ClientIn::Response(cid, p)) => ch.handle_response(cid, *p, now()),
                    Some(ClientIn::Outcome(cid, o)) => ch.handle_outcome(cid, o, now()),
                    None => ch.fail(CloseReason::ServerShutdown),
                },
                _ = outbox.notified() => {}
                _ = sleep_until(deadline) => ch.tick(now()),
            }
        }
    }
}
