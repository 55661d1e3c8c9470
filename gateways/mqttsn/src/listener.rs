//! The UDP listener: one receiver task per socket (`switchyard_net` binds them sharing the port
//! with `SO_REUSEPORT`, one per core, so the kernel spreads clients over cores while each client's 4-tuple always lands
//! on the same receiver, which keeps its datagrams in order). Each receiver decodes datagrams and
//! routes them to the client's cell by client identity (docs/gateways.md §1.3, §1.7.1): CONNECT and
//! PINGREQ carry a client id, so a known client seen from a new address or port is rebound to that
//! address (a sleeper behind a new NAT mapping still wakes up; a reconnect takes its session over);
//! every other message is routed by its source address.
//!
//! Connectionless messages are answered here without a client task: SEARCHGW (GWINFO, any
//! state), QoS −1 PUBLISH from an unknown address (docs/mqtt-sn.md §2.8), DISCONNECT before
//! CONNECT (§2.13); anything else from an unknown address is dropped silently (§2.3).
//!
//! Receivers share the client-id table, the admission limits (`switchyard_net::Admission`) and
//! the tasks; each keeps its own address
//! table, checked against the cell's current address (a client that moved to another receiver
//! leaves a stale entry behind, which is dropped when next seen).
//!
//! Invariants: client tasks exist only for CONNECTs, each holding an admission permit, so at
//! most `max_connections` of them, created at most `max_conn_rate` per second (bursts of
//! `max_conn_burst`; over either limit CONNACK 0x01 congestion); a task in its handshake ends
//! after `idle_timeout`; a
//! malformed datagram is dropped with a debug log and a counter and never reaches a client;
//! a full client queue drops the datagram (UDP semantics) instead of blocking the socket.

use crate::channel::publish_negqos;
use crate::channel::Channel;
use crate::codec::{decode, encode, rc, Packet, SnQos};
use crate::driver::{run_client, ClientCell, ClientTask, Offered};
use crate::MqttSnGateway;
use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::Metrics;
use switchyard_net::clock::now;
use switchyard_net::{Admission, DatagramSender, DatagramSocket, ListenerLimits, Permit};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Most datagrams handled per wake-up of a receiver (in `recv::BATCH`-sized system calls).
const RECV_BATCH: usize = 128;

/// A client's cell and task id, as the routing tables hold them.
#[derive(Clone)]
struct Route {
    task: u64,
    cell: Arc<ClientCell>,
}

/// What the receivers of one listener share.
struct Shared {
    gw: MqttSnGateway,
    admission: Admission,
    cancel: CancellationToken,
    tracker: TaskTracker,
    table: Mutex<Table>,
    /// Each receiver's exit mailbox: a finished task's id, so it forgets its addresses.
    exits: Vec<mpsc::UnboundedSender<u64>>,
}

/// Clients by client id, and the id of the next client task.
struct Table {
    by_client: HashMap<Bytes, Route>,
    next_id: u64,
}

/// One socket and its task.
struct Receiver {
    /// Where replies go: the plain socket, or the DTLS task that encrypts them.
    socket: DatagramSender,
    shared: Arc<Shared>,
    /// Clients by the address their datagrams come from, as seen on this socket. Looked up
    /// for every datagram, so a fast seeded hash rather than SipHash.
    by_addr: HashMap<SocketAddr, Route, foldhash::fast::RandomState>,
    /// The addresses this receiver recorded per task, to forget them when it ends.
    addrs: HashMap<u64, Vec<SocketAddr>>,
}

impl switchyard_net::Gateway for MqttSnGateway {
    fn serve(
        &self,
        listener: switchyard_net::BoundListener,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<switchyard_net::ServeFuture, switchyard_net::ServeError> {
        use switchyard_net::ListenerKind;
        if !matches!(listener.kind, ListenerKind::Udp | ListenerKind::Dtls) {
            return Err(switchyard_net::ServeError::Unsupported {
                id: listener.id,
                kind: listener.kind,
            });
        }
        // Plain, or the decrypted side of one DTLS server per socket: the same receivers.
        let (sockets, parts) = listener.into_datagram_sockets(&cancel, &tracker)?;
        let gw = self.clone();
        Ok(Box::pin(serve_udp(
            sockets,
            parts.id,
            gw,
            parts.limits,
            cancel,
            tracker,
        )))
    }
}

/// Serves the MQTT-SN gateway on `sockets` (bound by `switchyard_net::bind_udp`, one per core)
/// until `cancel`.
pub(crate) async fn serve_udp(
    sockets: Vec<DatagramSocket>,
    name: String,
    gw: MqttSnGateway,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let mut exits = Vec::new();
    let mut mailboxes = Vec::new();
    for _ in &sockets {
        let (tx, rx) = mpsc::unbounded_channel();
        exits.push(tx);
        mailboxes.push(rx);
    }
    let shared = Arc::new(Shared {
        table: Mutex::new(Table {
            by_client: HashMap::new(),
            next_id: 0,
        }),
        gw,
        admission: Admission::new(limits, tokio::time::Instant::now()),
        cancel,
        tracker,
        exits,
    });
    tracing::debug!(
        listener = name,
        receivers = sockets.len(),
        "MQTT-SN listener up"
    );
    let mut receivers = tokio::task::JoinSet::new();
    for (i, (socket, mailbox)) in sockets.into_iter().zip(mailboxes).enumerate() {
        // Only the first receiver of a plain listener advertises (a broadcast cannot be
        // encrypted for peers we have no association with).
        let plain = socket.as_plain().cloned();
        let advertise = i == 0 && shared.gw.settings.broadcast.is_some() && plain.is_some();
        if let Some(p) = plain.as_ref().filter(|_| advertise) {
            if let Err(e) = p.set_broadcast(true) {
                tracing::warn!(listener = name, error = %e, "cannot enable broadcast on the socket");
            }
        }
        let r = Receiver {
            socket: socket.sender(),
            shared: shared.clone(),
            by_addr: HashMap::default(),
            addrs: HashMap::new(),
        };
        receivers.spawn(r.run(name.clone(), socket, mailbox, advertise));
    }
    while receivers.join_next().await.is_some() {}
    tracing::info!(listener = name, "listener stopped");
}

/// Largest decrypted datagram taken from a DTLS listener (MQTT-SN's 3-byte length form).
const DTLS_DATAGRAM: usize = 65_536;

/// What a receiver's socket has for it.
enum Input {
    /// The plain socket is readable: drain it in batches.
    Ready(Arc<UdpSocket>),
    /// One decrypted datagram of `n` bytes from a DTLS peer.
    Decrypted(usize, SocketAddr),
    /// The socket (or the DTLS task) failed.
    Failed(std::io::Error),
}

/// Waits for input on either kind of socket; cancel-safe, as `select!` needs.
async fn next_input(source: &mut DatagramSocket, buf: &mut [u8]) -> Input {
    if let Some(plain) = source.as_plain().cloned() {
        return match plain.readable().await {
            Ok(()) => Input::Ready(plain),
            Err(e) => Input::Failed(e),
        };
    }
    match source.recv_from(buf).await {
        Ok((n, from)) => Input::Decrypted(n, from),
        Err(e) => Input::Failed(e),
    }
}

async fn tick(i: Option<&mut tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Receiver {
    async fn run(
        mut self,
        name: String,
        mut source: DatagramSocket,
        mut exits: mpsc::UnboundedReceiver<u64>,
        advertise: bool,
    ) {
        let mut batch = crate::recv::Batch::new();
        let mut one = vec![0u8; DTLS_DATAGRAM];
        let interval = self.shared.gw.settings.broadcast_interval;
        let mut advertise =
            advertise.then(|| tokio::time::interval(interval.max(Duration::from_secs(1))));
        let cancel = self.shared.cancel.clone();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(id) = exits.recv() => self.forget(id),
                r = next_input(&mut source, &mut one) => {
                    let socket = match r {
                        Input::Ready(socket) => socket,
                        Input::Failed(e) => {
                            tracing::warn!(listener = name, error = %e, "socket failed");
                            break;
                        }
                        Input::Decrypted(n, from) => {
                            let datagram = Bytes::copy_from_slice(one.get(..n).unwrap_or_default());
                            self.on_datagram(datagram, from).await;
                            continue;
                        }
                    };
                    // Drain up to RECV_BATCH datagrams before going back to `select!`.
                    let mut taken = 0;
                    while taken < RECV_BATCH {
                        let n = match batch.try_recv(&socket) {
                            Ok(0) => break,
                            Ok(n) => n,
                            Err(e) => {
                                // ICMP port unreachable from an earlier send shows up here on
                                // some systems; it concerns one peer, never the listener.
                                tracing::debug!(listener = name, error = %e, "recv error");
                                break;
                            }
                        };
                        taken += n;
                        for i in 0..n {
                            match batch.get(i) {
                                Some((data, from)) => {
                                    let datagram = Bytes::copy_from_slice(data);
                                    self.on_datagram(datagram, from).await;
                                }
                                None => {
                                    tracing::debug!(listener = name, "oversized or non-IP datagram dropped");
                                    Metrics::inc(&self.shared.gw.bus.metrics().packets_malformed);
                                }
                            }
                        }
                    }
                },
                _ = tick(advertise.as_mut()) => self.advertise().await,
            }
        }
    }

    /// A task ended: forget the addresses recorded for it.
    fn forget(&mut self, task: u64) {
        for addr in self.addrs.remove(&task).unwrap_or_default() {
            if self.by_addr.get(&addr).is_some_and(|r| r.task == task) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// The client of `route` moved to `addr`: its cell routes from there now, and this socket
    /// forgets the old address (another receiver's stale entry goes when next seen), so a client
    /// hopping ports does not grow the tables.
    fn rebind(&mut self, addr: SocketAddr, route: &Route) {
        let old = route.cell.route();
        if old != addr {
            tracing::debug!(%old, new = %addr, "client rebound to a new address");
            route.cell.set_route(addr);
            if self.by_addr.get(&old).is_some_and(|r| r.task == route.task) {
                self.by_addr.remove(&old);
            }
            if let Some(list) = self.addrs.get_mut(&route.task) {
                list.retain(|a| *a != old);
            }
        }
        self.bind_addr(addr, route);
    }

    /// Routes `addr` on this socket to `route`.
    fn bind_addr(&mut self, addr: SocketAddr, route: &Route) {
        let list = self.addrs.entry(route.task).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
        self.by_addr.insert(addr, route.clone());
    }

    /// The client datagrams from `from` belong to, if its entry is still current (looked up for
    /// every datagram: borrowed, not cloned). On DTLS, also only while `from` still proves the
    /// identity the client connected with (its address may have handshaken again as another).
    fn current(&self, from: SocketAddr) -> Option<&Route> {
        self.by_addr
            .get(&from)
            .filter(|r| r.cell.route() == from && !r.cell.has_ended())
            .filter(|r| self.same_identity(from, r))
    }

    /// Whether datagrams from `from` may go to `route`'s client: always on plain UDP; on DTLS
    /// only when `from` proved the identity the client connected with, so a peer with another
    /// PSK identity or certificate cannot rebind, resume or feed someone else's client by
    /// naming its client id.
    fn same_identity(&self, from: SocketAddr, route: &Route) -> bool {
        !self.socket.is_dtls()
            || route
                .cell
                .accepts(self.socket.peer_identity(&from).as_ref())
    }

    /// Forgets `from` if its entry is stale (the client moved away or its task ended).
    fn drop_stale(&mut self, from: SocketAddr) {
        if self.by_addr.contains_key(&from) && self.current(from).is_none() {
            self.by_addr.remove(&from);
        }
    }

    async fn send(&self, p: &Packet, to: SocketAddr) {
        let mut out = BytesMut::with_capacity(16);
        if encode(p, &mut out).is_ok() {
            if let Err(e) = self.socket.send_to(&out, to).await {
                tracing::debug!(error = %e, %to, "send failed");
            }
        }
    }

    /// ADVERTISE with the real interval in seconds (EMQX sends 48032: docs/mqtt-sn.md §2.17.11).
    async fn advertise(&self) {
        let s = &self.shared.gw.settings;
        let Some(to) = s.broadcast else { return };
        let duration = u16::try_from(s.broadcast_interval.as_secs()).unwrap_or(u16::MAX);
        let p = Packet::Advertise {
            gw_id: s.gateway_id,
            duration,
        };
        self.send(&p, to).await;
    }

    async fn on_datagram(&mut self, datagram: Bytes, from: SocketAddr) {
        let packet = match decode(&datagram) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(peer = %from, error = %e, "malformed datagram dropped");
                Metrics::inc(&self.shared.gw.bus.metrics().packets_malformed);
                return;
            }
        };
        match packet {
            Packet::SearchGw { .. } => {
                let gw_id = self.shared.gw.settings.gateway_id;
                let info = Packet::GwInfo {
                    gw_id,
                    gw_add: Bytes::new(),
                };
                self.send(&info, from).await;
            }
            Packet::Connect(c) => {
                let id = (!c.client_id.is_empty()).then(|| c.client_id.clone());
                self.on_connect(Packet::Connect(c), id, from).await;
            }
            Packet::PingReq {
                client_id: Some(ref id),
            } => {
                let known = self.shared.table.lock().by_client.get(id).cloned();
                let known = known.filter(|r| self.same_identity(from, r));
                match known.or_else(|| self.current(from).cloned()) {
                    Some(r) => {
                        let by_id = self
                            .shared
                            .table
                            .lock()
                            .by_client
                            .get(id)
                            .is_some_and(|k| k.task == r.task);
                        if by_id {
                            self.rebind(from, &r);
                        } else {
                            self.bind_addr(from, &r);
                        }
                        self.forward(&r, packet, from);
                    }
                    None => tracing::debug!(peer = %from, "PINGREQ for an unknown client dropped"),
                }
            }
            other => match self.current(from) {
                Some(r) => self.forward(r, other, from),
                None => {
                    self.drop_stale(from);
                    self.connectionless(other, from).await;
                }
            },
        }
    }

    /// Messages from an address with no client (docs/mqtt-sn.md §2.3).
    async fn connectionless(&self, packet: Packet, from: SocketAddr) {
        match packet {
            Packet::Disconnect { .. } => {
                self.send(&Packet::Disconnect { duration: None }, from)
                    .await;
            }
            Packet::Publish(p) if p.flags.qos == SnQos::Minus1 => {
                if !self.shared.gw.settings.enable_qos3 {
                    let ack = Packet::PubAck {
                        topic_id: p.topic_id,
                        msg_id: p.msg_id,
                        rc: rc::NOT_SUPPORTED,
                    };
                    self.send(&ack, from).await;
                    return;
                }
                publish_negqos(&self.shared.gw, &p);
            }
            other => {
                tracing::debug!(peer = %from, packet = other.name(), "message from an unconnected address dropped");
            }
        }
    }

    async fn on_connect(&mut self, packet: Packet, client_id: Option<Bytes>, from: SocketAddr) {
        // A finished task may linger in the tables until its exit is processed: not a match.
        // On DTLS a client id connected under another identity is not reused: the CONNECT gets
        // a channel of its own (which takes the session over, as any CONNECT would).
        let known = client_id
            .as_ref()
            .and_then(|id| self.shared.table.lock().by_client.get(id).cloned())
            .filter(|r| !r.cell.has_ended() && self.same_identity(from, r));
        // Same address, still in its handshake: a retransmitted or corrected CONNECT.
        let existing = known.or_else(|| {
            self.current(from)
                .filter(|r| !r.cell.is_connected())
                .cloned()
        });
        if let Some(r) = existing {
            if !r.cell.is_connected() {
                self.rebind(from, &r);
                if let Some(id) = client_id {
                    self.shared.table.lock().by_client.insert(id, r.clone());
                }
                self.forward(&r, packet, from);
                return;
            }
            // Connected, asleep or awake: a new channel takes the session over (the old task
            // hands it over through the bus), which also ends the old sleep timer
            // (docs/mqtt-sn.md §2.17.3).
        }
        match self.shared.admission.try_admit(tokio::time::Instant::now()) {
            Ok(permit) => {
                let task = {
                    let mut t = self.shared.table.lock();
                    t.next_id += 1;
                    t.next_id
                };
                self.spawn(task, permit, packet, client_id, from);
            }
            Err(refusal) => {
                tracing::warn!(peer = %from, limit = refusal.limit(), "CONNECT refused: listener limit reached");
                self.send(&Packet::ConnAck { rc: rc::CONGESTION }, from)
                    .await;
            }
        }
    }

    fn spawn(
        &mut self,
        task: u64,
        permit: Permit,
        first: Packet,
        client_id: Option<Bytes>,
        from: SocketAddr,
    ) {
        let gw = self.shared.gw.clone();
        let mut ch = Channel::new(gw.bus.clone(), gw.settings.clone(), from, now());
        ch.set_peer_identity(self.socket.peer_identity(&from));
        let cell = ClientCell::new(ch, (first, from));
        let route = Route {
            task,
            cell: cell.clone(),
        };
        self.bind_addr(from, &route);
        if let Some(c) = client_id.clone() {
            self.shared.table.lock().by_client.insert(c, route);
        }
        let client = ClientTask {
            cell,
            socket: self.socket.clone(),
            gw,
            cancel: self.shared.cancel.clone(),
        };
        let shared = self.shared.clone();
        self.shared.tracker.spawn(async move {
            run_client(client).await;
            // The client's place among max_connections is free again.
            drop(permit);
            {
                let mut t = shared.table.lock();
                if let Some(c) = client_id {
                    if t.by_client.get(&c).is_some_and(|r| r.task == task) {
                        t.by_client.remove(&c);
                    }
                }
            }
            for exit in &shared.exits {
                let _ = exit.send(task);
            }
        });
    }

    fn forward(&self, route: &Route, packet: Packet, from: SocketAddr) {
        match route.cell.offer(packet, from) {
            Offered::Taken => {}
            Offered::Full => {
                tracing::debug!(peer = %from, "client queue full: datagram dropped");
                Metrics::inc(&self.shared.gw.bus.metrics().messages_dropped);
            }
            Offered::Closed => {
                tracing::debug!(peer = %from, "datagram for a closing client dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic while handling one client's datagram on the receiver that serves every client
    /// of the socket closes that client only: the others keep being answered, new clients
    /// connect, and the panic is counted.
    #[tokio::test]
    async fn a_panic_for_one_client_leaves_the_receiver_serving_the_others() {
        use crate::codec::{Connect, Flags, Publish, SnQos, TopicIdType};
        use switchyard_bus::{BusConfig, BusHandle};

        let bus = BusHandle::new(BusConfig::default());
        let gw = MqttSnGateway {
            bus: bus.clone(),
            settings: Arc::new(crate::MqttSnSettings::default()),
        };
        // One socket, so every client below shares one receiver task.
        let std = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        std.set_nonblocking(true).expect("nonblocking");
        let addr = std.local_addr().expect("addr");
        let socket = UdpSocket::from_std(std).expect("tokio socket");
        let cancel = CancellationToken::new();
        let limits = ListenerLimits {
            max_connections: 100,
            max_conn_rate: 0,
            max_conn_burst: 0,
        };
        let server = tokio::spawn(serve_udp(
            vec![DatagramSocket::Plain(Arc::new(socket))],
            "t".into(),
            gw,
            limits,
            cancel.clone(),
            TaskTracker::new(),
        ));
        *crate::channel::tests_fault::PANIC_ON_PUBLISH_FROM.lock() = Some("doomed".into());

        async fn exchange(sock: &UdpSocket, to: SocketAddr, p: Packet) -> Packet {
            let mut out = BytesMut::new();
            encode(&p, &mut out).expect("encode");
            sock.send_to(&out, to).await.expect("send");
            let mut buf = [0u8; 512];
            let n = tokio::time::timeout(Duration::from_secs(10), sock.recv(&mut buf))
                .await
                .expect("an answer within 10 s")
                .expect("recv");
            decode(&Bytes::copy_from_slice(&buf[..n])).expect("decodes")
        }
        async fn client(to: SocketAddr, id: &str) -> UdpSocket {
            let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            sock.connect(to).await.expect("connect");
            let c = Packet::Connect(Connect {
                flags: Flags {
                    clean_session: true,
                    ..Flags::default()
                },
                protocol_id: 1,
                duration: 60,
                client_id: Bytes::copy_from_slice(id.as_bytes()),
            });
            let ack = exchange(&sock, to, c).await;
            assert_eq!(ack, Packet::ConnAck { rc: rc::ACCEPTED }, "{id}");
            sock
        }

        let healthy = client(addr, "healthy").await;
        let doomed = client(addr, "doomed").await;
        let publish = Packet::Publish(Publish {
            flags: Flags {
                qos: SnQos::Q0,
                topic_id_type: TopicIdType::Short,
                ..Flags::default()
            },
            topic_id: u16::from_be_bytes(*b"ab"),
            msg_id: 0,
            data: Bytes::from_static(b"x"),
        });
        // The doomed client is closed with a DISCONNECT, not left hanging.
        let answer = exchange(&doomed, addr, publish).await;
        assert_eq!(answer, Packet::Disconnect { duration: None });
        assert_eq!(Metrics::get(&bus.metrics().client_panics), 1);

        // The receiver still serves the client that was already there...
        let ping = Packet::PingReq { client_id: None };
        assert_eq!(exchange(&healthy, addr, ping).await, Packet::PingResp);
        // ...and new ones, the doomed client id included.
        *crate::channel::tests_fault::PANIC_ON_PUBLISH_FROM.lock() = None;
        let again = client(addr, "doomed").await;
        let ping = Packet::PingReq { client_id: None };
        assert_eq!(exchange(&again, addr, ping).await, Packet::PingResp);
        let newcomer = client(addr, "newcomer").await;
        let bye = Packet::Disconnect { duration: None };
        assert_eq!(
            exchange(&newcomer, addr, bye).await,
            Packet::Disconnect { duration: None }
        );

        cancel.cancel();
        server.await.expect("listener task ends without panicking");
    }
}
