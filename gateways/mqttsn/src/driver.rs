//! The per-client driver and the cell it shares with the listener.
//!
//! Each client's [`Channel`] lives in a [`ClientCell`] behind a mutex. The listener hands every
//! datagram of a connected client straight to the channel on its own task when nothing of that
//! client is waiting (the common case: a sensor's next PUBLISH), and queues it in the cell
//! otherwise, so a client's datagrams are always handled in arrival order. The driver, one
//! tokio task per client, does everything that waits: it opens the session on the bus, drains
//! queued datagrams, waits for durability before acknowledgements leave, sends what the channel
//! produced to the client's current address, and wakes on outbox pushes, control requests and
//! timers. It logs exactly one close line per client.
//!
//! Why not a queue hop per datagram: with 1,000 clients publishing, waking a task per datagram
//! cost more CPU than routing the message (issue 6's throughput target).

use crate::channel::Channel;
use crate::codec::{encode, Packet, SnQos};
use crate::MqttSnGateway;
use bytes::BytesMut;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switchyard_bus::{contain, durability_scope, next_control, ControlEvent, Ticket};
use switchyard_core::CloseReason;
use switchyard_net::clock::{now, sleep_until};
use switchyard_net::DatagramSender;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A datagram for a client: the decoded message and where it came from.
pub(crate) type Inbound = (Packet, SocketAddr);

/// Datagrams queued per client before new ones are dropped (UDP semantics).
pub(crate) const CLIENT_QUEUE: usize = 64;

/// What the listener and a client's driver share.
pub(crate) struct ClientCell {
    /// The channel. The driver holds it for a whole pass, which may include authenticating a
    /// CONNECT (password hashing), so the listener only ever `try_lock`s it.
    inner: Mutex<Inner>,
    /// Datagrams the listener could not hand over directly, oldest first. Lock order: the
    /// driver takes `inner` then `queue`; the listener takes `queue`, then tries `inner`.
    queue: Mutex<VecDeque<Inbound>>,
    /// Tells the driver the channel has work for it (outbound packets, a session to open, a
    /// queued datagram, a close, an earlier deadline).
    wake: Notify,
    /// Set once the handshake is over, so the listener gives a later CONNECT for this client
    /// id to a new channel (which takes the session over) instead of this one.
    connected: AtomicBool,
    /// Set when the driver has finished: the listener's tables may still point here until it
    /// hears of the exit, and nothing offered now would ever be handled.
    ended: AtomicBool,
    /// The address datagrams from this client come from, as the listener routes them; a
    /// receiver's address entry that no longer matches it is stale (the client moved).
    route: Mutex<SocketAddr>,
    /// The client's `conn` span: the driver runs in it, and the listener enters it while it
    /// handles a datagram of this client on its own task, so every line about the client
    /// (log traces included) carries it.
    span: tracing::Span,
    /// On a DTLS listener, what the client's handshake proved: datagrams from a peer that proved
    /// something else are never routed here (the listener checks).
    identity: Option<switchyard_net::PeerIdentity>,
}

struct Inner {
    ch: Channel,
    /// The durability the acknowledgements now in the channel's outbound wait for.
    ticket: Option<Ticket>,
}

impl Inner {
    /// Handles one datagram, keeping the durability its acknowledgements wait for; true when it
    /// produced such a wait.
    ///
    /// It may run on the listener's receiver, which serves many clients: a panic closes this
    /// client only (ARCHITECTURE.md habit 11).
    fn handle(&mut self, packet: Packet, from: SocketAddr) -> bool {
        let ch = &mut self.ch;
        // Contained inside the scope, so an unwind never leaves the scope's thread-local behind.
        let (handled, ticket) =
            durability_scope(|| contain(|| ch.handle_packet(packet, from, now())));
        if let Err(p) = handled {
            let who = self
                .ch
                .info()
                .map_or_else(|| from.to_string(), |i| i.client_id.as_str().to_owned());
            p.report(self.ch.bus.metrics(), &who);
            self.ch.fail(CloseReason::InternalError(p.0), true);
            return false;
        }
        if let Some(t) = ticket {
            self.ticket = Some(self.ticket.map_or(t, |o| o.max(t)));
        }
        ticket.is_some()
    }
}

/// What became of a datagram offered to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offered {
    /// Handled or queued.
    Taken,
    /// The client's queue is full: dropped.
    Full,
    /// The channel has closed; the datagram was dropped.
    Closed,
}

impl ClientCell {
    pub(crate) fn new(ch: Channel, first: Inbound) -> Arc<Self> {
        let span = tracing::info_span!(
            "conn",
            peer = %first.1,
            proto = "mqtt-sn",
            client_id = tracing::field::Empty
        );
        let route = Mutex::new(first.1);
        let identity = ch.peer_identity.clone();
        Arc::new(ClientCell {
            span,
            route,
            identity,
            inner: Mutex::new(Inner { ch, ticket: None }),
            queue: Mutex::new(VecDeque::from([first])),
            wake: Notify::new(),
            connected: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        })
    }

    /// Whether a datagram whose sender proved `identity` (`None`: plain UDP) may reach this
    /// client: only from the identity the client connected with.
    pub(crate) fn accepts(&self, identity: Option<&switchyard_net::PeerIdentity>) -> bool {
        self.identity.as_ref() == identity
    }

    /// Where the client's datagrams come from.
    pub(crate) fn route(&self) -> SocketAddr {
        *self.route.lock()
    }

    /// The client moved to `addr` (a CONNECT or PINGREQ with its client id from there).
    pub(crate) fn set_route(&self, addr: SocketAddr) {
        *self.route.lock() = addr;
    }

    /// Whether the client's task has finished.
    pub(crate) fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Whether the handshake is over.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Hands a datagram to the client: handled at once when the channel is connected and
    /// nothing of this client waits before it (the driver is woken only if the channel now
    /// has something for it to do), queued otherwise (CONNECT always queues: authentication
    /// may hash a password, which must not stall the listener).
    pub(crate) fn offer(&self, packet: Packet, from: SocketAddr) -> Offered {
        let mut queue = self.queue.lock();
        if self.has_ended() {
            return Offered::Closed;
        }
        let mut inner = None;
        if queue.is_empty() && !matches!(packet, Packet::Connect(_)) {
            inner = self.inner.try_lock();
        }
        // A PUBLISH or SUBSCRIBE that an HTTP authorization source must answer first is
        // queued for the client's own task: the receiver serves every client and never waits.
        let Some(mut g) = inner.filter(|g| {
            (g.ch.session().is_some() || g.ch.close_reason().is_some())
                && !(g.ch.authz_may_query() && g.ch.authz_query(&packet, now()).is_some())
        }) else {
            if queue.len() >= CLIENT_QUEUE {
                return Offered::Full;
            }
            queue.push_back((packet, from));
            drop(queue);
            self.wake.notify_one();
            return Offered::Taken;
        };
        drop(queue);
        if g.ch.close_reason().is_some() {
            return Offered::Closed;
        }
        // Only QoS 0 and −1 PUBLISHes may leave the driver asleep, and only when they changed
        // nothing it acts on (a refusal is a PUBACK to send); every other message wakes it.
        let quiet = matches!(&packet, Packet::Publish(p) if matches!(p.flags.qos, SnQos::Q0 | SnQos::Minus1));
        let from_now = |g: &Inner| quiet.then(|| (g.ch.next_deadline(), g.ch.fingerprint()));
        let before = from_now(&g);
        // The client's span is entered only when a debug line could be written (a log trace is
        // running or the level is debug): entering it costs a few percent of QoS 0 throughput
        // on this hot path, and at info nothing logged here needs it.
        let durable = if tracing::enabled!(tracing::Level::DEBUG) {
            self.span.in_scope(|| g.handle(packet, from))
        } else {
            g.handle(packet, from)
        };
        let wake = match (before, from_now(&g)) {
            (Some((deadline, state)), Some((after, state_after))) => {
                let earlier = match (deadline, after) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(b), Some(a)) => a < b,
                };
                earlier
                    || durable
                    || state != state_after
                    || g.ch.has_outbound()
                    || g.ch.close_reason().is_some()
            }
            _ => true,
        };
        drop(g);
        if wake {
            self.wake.notify_one();
        }
        Offered::Taken
    }
}

/// What the listener hands a new client task.
pub(crate) struct ClientTask {
    pub(crate) cell: Arc<ClientCell>,
    pub(crate) socket: DatagramSender,
    pub(crate) gw: MqttSnGateway,
    pub(crate) cancel: CancellationToken,
}

/// Serves one client until it closes (its one close line is logged by the channel's finish).
pub(crate) async fn run_client(task: ClientTask) {
    let span = task.cell.span.clone();
    drive(task).instrument(span).await
}

/// Encodes and sends `packets` to `peer`.
async fn send_all(
    packets: Vec<Packet>,
    peer: SocketAddr,
    socket: &DatagramSender,
    buf: &mut BytesMut,
) {
    for packet in packets {
        buf.clear();
        if let Err(e) = encode(&packet, buf) {
            tracing::warn!(error = %e, packet = packet.name(), "cannot encode outbound message");
            continue;
        }
        // UDP: a send error (e.g. ICMP unreachable reported late) is not fatal; the retry and
        // keepalive timers decide whether the client is gone.
        if let Err(e) = socket.send_to(buf, peer).await {
            tracing::debug!(error = %e, %peer, "send failed");
        }
    }
}

/// One pass of the driver under the lock: handles queued datagrams, pulls deliveries, and takes
/// what must be sent (with the durability it waits for).
struct Pass {
    outbound: Vec<Packet>,
    ticket: Option<Ticket>,
    peer: SocketAddr,
    open: Option<switchyard_bus::OpenSession>,
    /// Credentials to check with the chain of authenticators before the CONNECT goes on.
    auth: Option<switchyard_auth::OwnedCredentials>,
    /// What an HTTP authorization source must answer before the next queued datagram.
    authz: Option<switchyard_auth::AuthzQuery>,
    closed: bool,
}

fn pass(cell: &ClientCell) -> Pass {
    let mut g = cell.inner.lock();
    let inner = &mut *g;
    // Stop at a CONNECT that opens a session: datagrams behind it wait until it is open. Stop
    // too at a datagram an HTTP authorization source must answer first: it goes back to the
    // front of the queue and is handled once the answer is in.
    let mut authz = None;
    while !inner.ch.open_request_pending() && !inner.ch.auth_request_pending() {
        let Some((packet, from)) = cell.queue.lock().pop_front() else {
            break;
        };
        let query = inner
            .ch
            .authz_may_query()
            .then(|| inner.ch.authz_query(&packet, now()))
            .flatten();
        if let Some(query) = query {
            cell.queue.lock().push_front((packet, from));
            authz = Some(query);
            break;
        }
        inner.handle(packet, from);
    }
    let open = inner.ch.take_open_request();
    let auth = inner.ch.take_auth_request();
    inner.ch.pull_deliveries(now());
    Pass {
        outbound: inner.ch.take_outbound(),
        ticket: inner.ticket.take(),
        peer: inner.ch.peer(),
        open,
        auth,
        authz,
        closed: inner.ch.close_reason().is_some(),
    }
}

async fn drive(task: ClientTask) {
    let ClientTask {
        cell,
        socket,
        gw,
        cancel,
    } = task;
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let p = pass(&cell);
        if let Some(t) = p.ticket {
            gw.bus.wait_durable(t).await;
        }
        send_all(p.outbound, p.peer, &socket, &mut buf).await;
        if let Some(creds) = p.auth {
            // A network authenticator answers here, on this client's task, outside its lock.
            let verdict = gw.settings.security.authenticate(&creds).await;
            cell.inner.lock().ch.on_verdict(verdict);
            continue;
        }
        if let Some(query) = p.authz {
            // An HTTP authorization source answers here, on this client's task, outside its
            // lock; the datagram waiting for it is handled on the next pass.
            let answers = query.run().await;
            cell.inner.lock().ch.accept_authz(answers);
            continue;
        }
        if let Some(req) = p.open {
            tracing::Span::current().record("client_id", req.info.client_id.as_str());
            // Not cancelled on shutdown: the open is bounded by the bus's takeover timeout and
            // dropping it half-way would leave the registry pointing at this task.
            let opened = gw.bus.open_session(req).await;
            let mut g = cell.inner.lock();
            match opened {
                Ok(opened) => {
                    g.ch.on_session_opened(opened, now());
                    cell.connected.store(true, Ordering::Release);
                }
                Err(e) => g.ch.on_session_failed(&e),
            }
            // The CONNACK (or refusal) goes out on the next pass, with what queued meanwhile.
            continue;
        }
        if p.closed {
            break;
        }
        let (outbox, control, deliver, deadline, expiry) = {
            let g = cell.inner.lock();
            let outbox = g.ch.session().map(|s| s.outbox.clone());
            let deliver = g.ch.can_deliver() && outbox.is_some();
            let expiry = g.ch.credentials_expire_at().map(|at| {
                let left = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                now() + left
            });
            (
                outbox,
                g.ch.control(),
                deliver,
                g.ch.next_deadline(),
                expiry,
            )
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => cell.inner.lock().ch.fail(CloseReason::ServerShutdown, true),
            // A kicked client is told (DISCONNECT); one taken over is not.
            event = next_control(control.as_ref()) => {
                cell.inner.lock().ch.fail(event.close_reason(), event == ControlEvent::Kick);
            }
            _ = cell.wake.notified() => {}
            _ = notified(outbox.as_deref()), if deliver => {}
            _ = sleep_until(deadline) => cell.inner.lock().ch.handle_tick(now()),
            // Credentials that expire (a JWT's exp, an HTTP authenticator's expire_at) end
            // the connection then, with a DISCONNECT.
            _ = sleep_until(expiry), if expiry.is_some() => {
                tracing::info!("credentials expired; disconnecting");
                cell.inner.lock().ch.fail(CloseReason::NotAuthorized, true);
            }
        }
    }
    // The loop ends only right after a pass that sent the closing packets. The will is checked
    // when it is published; an HTTP authorization source answers first, outside the lock.
    let will_query = cell.inner.lock().ch.will_query(now());
    if let Some(query) = will_query {
        let answers = query.run().await;
        cell.inner.lock().ch.accept_authz(answers);
    }
    cell.inner.lock().ch.finish();
    {
        // Under the queue lock, so no datagram is queued after the flag is seen unset.
        let _q = cell.queue.lock();
        cell.ended.store(true, Ordering::Release);
    }
}

async fn notified(outbox: Option<&switchyard_bus::Outbox>) {
    match outbox {
        Some(o) => o.notified().await,
        None => std::future::pending().await,
    }
}
