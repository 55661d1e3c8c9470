//! The DTLS server task of one socket: reads every datagram, routes it to its peer's
//! association by source address (creating one only for a ClientHello, within the limits),
//! drives handshake retransmissions and timeouts, passes decrypted datagrams to the gateway and
//! encrypts the gateway's replies.
//!
//! Invariants: at most `max_handshakes` peers in handshake; a new handshake needs an admission
//! permit (`max_connections` associations, `max_conn_rate` new ones per second) which it keeps
//! while it lives; the task never waits on the gateway (a full inbound queue drops the
//! datagram, as the network could); an error ends only that peer's association. An established
//! association lives until close_notify, a new handshake from its address completes, the
//! listener's stop, or [`IDLE_LIMIT`] of silence. A ClientHello from an established peer's
//! address (a restarted client, or anyone spoofing that address) starts a new handshake beside
//! the association, which goes on serving the peer's records until the new handshake
//! completes (then it is replaced) or fails (then it is kept): a forged ClientHello cannot end
//! someone else's association.

use super::association::{AssocEvent, Association, RtcAssociation};
use super::{take_unknown_identity, DtlsListener, PeerIdentity};
use crate::admission::{Admission, Permit};
use crate::clock::{now, sleep_until};
use crate::datagram::{DatagramSocket, DtlsSocket, PeerTable, Received};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// An established association silent this long is dropped. Longer than the longest session a
/// UDP gateway keeps for a silent client (an LwM2M registration lifetime of up to a day, an
/// MQTT-SN sleep), so the association lives as long as the client's session does; its only
/// purpose is to bound memory for peers that vanished without close_notify.
pub const IDLE_LIMIT: Duration = Duration::from_secs(25 * 3600);
/// How often established associations are checked against [`IDLE_LIMIT`].
const SWEEP: Duration = Duration::from_secs(60);
/// Decrypted datagrams waiting for the gateway.
const INBOUND_QUEUE: usize = 4096;
/// Replies waiting for encryption.
const OUTBOUND_QUEUE: usize = 4096;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 65_535;

struct Peer {
    assoc: Box<dyn Association>,
    established: bool,
    started: Instant,
    last_seen: Instant,
    /// The retransmission deadline last put on the timer heap, so a peer is queued once per
    /// deadline however many datagrams it sends.
    queued: Option<Instant>,
    _permit: Permit,
}

/// Starts the DTLS server on `socket` and returns the gateway's side of it; `admission` is the
/// listener's (shared by its sockets' tasks).
pub(crate) fn serve(
    listener: &DtlsListener,
    id: &str,
    socket: UdpSocket,
    admission: Admission,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<DatagramSocket> {
    let local = socket.local_addr()?;
    let (in_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let peers = PeerTable::default();
    listener.stats.add_table(peers.clone());
    let server = Server {
        listener: listener.clone(),
        id: id.to_string(),
        socket,
        local,
        peers: HashMap::new(),
        replacing: HashMap::new(),
        timers: BinaryHeap::new(),
        admission,
        to_app: in_tx,
        identities: peers.clone(),
    };
    tracker.spawn(server.run(out_rx, cancel));
    Ok(DatagramSocket::Dtls(DtlsSocket::new(
        in_rx, out_tx, peers, local,
    )))
}

struct Server {
    listener: DtlsListener,
    id: String,
    socket: UdpSocket,
    local: SocketAddr,
    peers: HashMap<SocketAddr, Peer>,
    /// Established associations whose address started a new handshake (in `peers`): kept, and
    /// serving their records, until that handshake completes or fails.
    replacing: HashMap<SocketAddr, Peer>,
    /// Retransmission and handshake deadlines; stale entries are skipped when due.
    timers: BinaryHeap<Reverse<(Instant, SocketAddr)>>,
    admission: Admission,
    to_app: mpsc::Sender<Received>,
    identities: PeerTable,
}

/// Why a handshake failed, for the counters.
enum Failure {
    UnknownIdentity,
    Timeout,
    Error,
}

impl Server {
    async fn run(
        mut self,
        mut from_app: mpsc::Receiver<(Vec<u8>, SocketAddr)>,
        cancel: CancellationToken,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut sweep = tokio::time::interval(SWEEP);
        tracing::debug!(listener = %self.id, addr = %self.local, "DTLS server up");
        loop {
            let deadline = self.timers.peek().map(|Reverse((t, _))| *t);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some((data, to)) = from_app.recv() => self.outbound(&data, to).await,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let data = buf.get(..n).unwrap_or_default().to_vec();
                        self.datagram(&data, from).await;
                    }
                    Err(e) => tracing::debug!(listener = %self.id, error = %e, "recv failed"),
                },
                _ = sleep_until(deadline) => self.timers_due().await,
                _ = sweep.tick() => self.sweep_idle(),
            }
        }
        // Orderly shutdown: every peer gets close_notify.
        for (addr, mut p) in std::mem::take(&mut self.replacing) {
            p.assoc.close(now());
            flush(&self.socket, &mut *p.assoc, addr).await;
        }
        let addrs: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            if let Some(mut p) = self.remove(addr) {
                p.assoc.close(now());
                flush(&self.socket, &mut *p.assoc, addr).await;
            }
        }
        tracing::debug!(listener = %self.id, "DTLS server stopped");
    }

    async fn datagram(&mut self, data: &[u8], from: SocketAddr) {
        let t = now();
        if self.replacing.contains_key(&from) && !is_handshake_record(data) {
            return self.old_association(data, from).await;
        }
        if self.peers.get(&from).is_some_and(|p| p.established) && is_client_hello(data) {
            // A ClientHello on an established association: the client restarted, another
            // device got the NAT mapping, or someone forged it. The new handshake runs beside
            // the association, which is replaced only if it completes.
            if let Some(old) = self.peers.remove(&from) {
                tracing::debug!(listener = %self.id, peer = %from, "new ClientHello on an established association");
                self.replacing.insert(from, old);
            }
        }
        if !self.peers.contains_key(&from) && !self.admit(data, from, t) {
            // Refused (limits): the established association, if any, stays as it was.
            if let Some(old) = self.replacing.remove(&from) {
                self.peers.insert(from, old);
            }
            return;
        }
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        p.last_seen = t;
        // The library parses what the peer sent: a panic in it ends that peer's association,
        // never this task, which serves every peer of the socket.
        let assoc = &mut p.assoc;
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assoc.handle_datagram(t, data)
        }));
        let unknown = take_unknown_identity();
        let Ok(result) = handled else {
            tracing::warn!(listener = %self.id, peer = %from, "DTLS library panicked on a datagram: peer dropped");
            self.fail(from, Failure::Error);
            return;
        };
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        let mut established_now = false;
        let mut closed = false;
        let mut app = Vec::new();
        match result {
            Ok(events) => {
                for e in events {
                    match e {
                        AssocEvent::Established => established_now = true,
                        AssocEvent::Data(d) => app.push(d),
                        AssocEvent::Closed => closed = true,
                    }
                }
            }
            Err(e) if p.established => {
                // RFC 6347 §4.1.2.7: a bad record is dropped, the association stays.
                tracing::debug!(listener = %self.id, peer = %from, error = %e, "DTLS record dropped");
            }
            Err(e) => {
                let why = if unknown {
                    Failure::UnknownIdentity
                } else {
                    Failure::Error
                };
                tracing::info!(listener = %self.id, peer = %from, error = %e, "DTLS handshake failed");
                self.flush_peer(from).await;
                self.fail(from, why);
                return;
            }
        }
        if established_now {
            self.established(from);
        }
        self.flush_peer(from).await;
        self.arm(from);
        for d in app {
            if self
                .to_app
                .try_send(Received {
                    data: d,
                    peer: from,
                })
                .is_err()
            {
                tracing::debug!(listener = %self.id, peer = %from, "gateway queue full: datagram dropped");
            }
        }
        if closed {
            tracing::debug!(listener = %self.id, peer = %from, "close_notify from the peer");
            self.remove(from);
        }
    }

    /// A record for the association being replaced (anything but the new handshake's records).
    async fn old_association(&mut self, data: &[u8], from: SocketAddr) {
        let Some(p) = self.replacing.get_mut(&from) else {
            return;
        };
        p.last_seen = now();
        let assoc = &mut p.assoc;
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assoc.handle_datagram(now(), data)
        }));
        let _ = take_unknown_identity();
        let events = match handled {
            Ok(Ok(events)) => events,
            // A bad record is dropped (RFC 6347 §4.1.2.7); a panic ends the old association.
            Ok(Err(_)) => Vec::new(),
            Err(_) => vec![AssocEvent::Closed],
        };
        while let Some(d) = p.assoc.poll_transmit() {
            let _ = self.socket.send_to(&d, from).await;
        }
        for e in events {
            match e {
                AssocEvent::Data(d) => {
                    let _ = self.to_app.try_send(Received {
                        data: d,
                        peer: from,
                    });
                }
                AssocEvent::Closed => {
                    self.replacing.remove(&from);
                    self.listener.stats.peers.fetch_sub(1, Ordering::Relaxed);
                }
                AssocEvent::Established => {}
            }
        }
    }

    /// Whether a datagram from an unknown address may start a handshake (and starts it).
    fn admit(&mut self, data: &[u8], from: SocketAddr, t: Instant) -> bool {
        if !is_client_hello(data) {
            // Not a ClientHello: no state for it (junk, or records of an association we lost).
            return false;
        }
        let stats = &self.listener.stats;
        // The listener's count (shared by its sockets' tasks), reserved atomically so tasks on
        // several cores never overshoot `max_handshakes` together.
        let max = u64::try_from(self.listener.max_handshakes).unwrap_or(u64::MAX);
        let reserved = stats
            .handshaking
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| {
                (h < max).then_some(h + 1)
            });
        if reserved.is_err() {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %self.id, peer = %from, "max_handshakes reached: ClientHello dropped");
            return false;
        }
        let permit = match self.admission.try_admit(tokio::time::Instant::now()) {
            Ok(p) => p,
            Err(refusal) => {
                stats.handshaking.fetch_sub(1, Ordering::AcqRel);
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(listener = %self.id, peer = %from, limit = refusal.limit(), "new DTLS handshake refused");
                return false;
            }
        };
        let assoc = RtcAssociation::new(self.local, from, self.listener.config.clone());
        self.peers.insert(
            from,
            Peer {
                assoc: Box::new(assoc),
                established: false,
                started: t,
                last_seen: t,
                queued: None,
                _permit: permit,
            },
        );
        stats.peers.fetch_add(1, Ordering::Relaxed);
        // The handshake deadline.
        self.timers
            .push(Reverse((t + self.listener.handshake_timeout, from)));
        true
    }

    fn established(&mut self, from: SocketAddr) {
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        p.established = true;
        let identity = p.assoc.identity(self.listener.cn_as_username);
        let stats = &self.listener.stats;
        stats.handshaking.fetch_sub(1, Ordering::AcqRel);
        stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
        if self.replacing.remove(&from).is_some() {
            // The new handshake completed: it replaces the association it ran beside.
            stats.peers.fetch_sub(1, Ordering::Relaxed);
        }
        match &identity {
            PeerIdentity::Psk(id) => {
                tracing::debug!(listener = %self.id, peer = %from, psk_identity = %id, "DTLS handshake done");
            }
            other => {
                tracing::debug!(listener = %self.id, peer = %from, identity = ?other, "DTLS handshake done");
            }
        }
        self.identities.insert(from, identity);
    }

    fn fail(&mut self, from: SocketAddr, why: Failure) {
        let stats = &self.listener.stats;
        let counter = match why {
            Failure::UnknownIdentity => &stats.failed_unknown_identity,
            Failure::Timeout => &stats.failed_timeout,
            Failure::Error => &stats.failed_error,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.remove(from);
    }

    fn remove(&mut self, addr: SocketAddr) -> Option<Peer> {
        let p = self.peers.remove(&addr)?;
        let stats = &self.listener.stats;
        stats.peers.fetch_sub(1, Ordering::Relaxed);
        if p.established {
            self.identities.remove(&addr);
        } else {
            stats.handshaking.fetch_sub(1, Ordering::AcqRel);
            // A handshake beside an established association ended without completing: the
            // association stays as it was.
            if let Some(old) = self.replacing.remove(&addr) {
                self.peers.insert(addr, old);
            }
        }
        Some(p)
    }

    /// Queues the peer's next retransmission deadline if it changed.
    fn arm(&mut self, addr: SocketAddr) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        let next = p.assoc.poll_timeout();
        if next != p.queued {
            p.queued = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, addr)));
            }
        }
    }

    async fn timers_due(&mut self) {
        let t = now();
        while let Some(Reverse((due, addr))) = self.timers.peek().copied() {
            if due > t {
                break;
            }
            self.timers.pop();
            let Some(p) = self.peers.get_mut(&addr) else {
                continue;
            };
            if !p.established && t >= p.started + self.listener.handshake_timeout {
                tracing::debug!(listener = %self.id, peer = %addr, "DTLS handshake timed out");
                self.fail(addr, Failure::Timeout);
                continue;
            }
            if p.queued.is_some_and(|q| q <= t) {
                p.queued = None;
                // Library code on state the peer shaped: contained like a datagram.
                let assoc = &mut p.assoc;
                let timed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    assoc.handle_timeout(t)
                }));
                match timed {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(listener = %self.id, peer = %addr, error = %e, "DTLS retransmissions exhausted");
                        self.fail(addr, Failure::Timeout);
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!(listener = %self.id, peer = %addr, "DTLS library panicked on a timer: peer dropped");
                        self.fail(addr, Failure::Error);
                        continue;
                    }
                }
                self.flush_peer(addr).await;
                self.arm(addr);
            }
        }
    }

    fn sweep_idle(&mut self) {
        let t = now();
        let idle: Vec<SocketAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.established && t.saturating_duration_since(p.last_seen) > IDLE_LIMIT)
            .map(|(a, _)| *a)
            .collect();
        for addr in idle {
            tracing::debug!(listener = %self.id, peer = %addr, "idle DTLS association dropped");
            self.remove(addr);
        }
    }

    /// Encrypts a gateway's datagram for `to`.
    async fn outbound(&mut self, data: &[u8], to: SocketAddr) {
        // While a new handshake runs beside an established association, replies are for the
        // established one (the gateway's client spoke through it).
        if let Some(p) = self.replacing.get_mut(&to) {
            if p.assoc.write(now(), data).is_ok() {
                while let Some(d) = p.assoc.poll_transmit() {
                    let _ = self.socket.send_to(&d, to).await;
                }
            }
            return;
        }
        let Some(p) = self.peers.get_mut(&to) else {
            tracing::debug!(listener = %self.id, peer = %to, "reply for a peer without association dropped");
            return;
        };
        if let Err(e) = p.assoc.write(now(), data) {
            tracing::debug!(listener = %self.id, peer = %to, error = %e, "reply not encrypted");
            return;
        }
        self.flush_peer(to).await;
    }

    async fn flush_peer(&mut self, addr: SocketAddr) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        while let Some(d) = p.assoc.poll_transmit() {
            if let Err(e) = self.socket.send_to(&d, addr).await {
                tracing::debug!(listener = %self.id, peer = %addr, error = %e, "send failed");
            }
        }
    }
}

/// Sends what a removed association still has queued (its close_notify).
async fn flush(socket: &UdpSocket, assoc: &mut dyn Association, addr: SocketAddr) {
    while let Some(d) = assoc.poll_transmit() {
        let _ = socket.send_to(&d, addr).await;
    }
}

/// Whether `data` starts with a DTLS 1.x handshake record of epoch 0 carrying a ClientHello
/// (RFC 6347 §4.1 record header: type 22, version, epoch, sequence, length; then the handshake
/// type, 1 = client_hello).
pub(crate) fn is_client_hello(data: &[u8]) -> bool {
    data.len() > 13
        && data[0] == 22
        && data[1] == 0xfe
        && data[3] == 0
        && data[4] == 0
        && data[13] == 1
}

/// Whether `data` starts with a record of a handshake in progress: a handshake message, a
/// ChangeCipherSpec, or an alert at epoch 0 (anything else from the address belongs to an
/// established association).
pub(crate) fn is_handshake_record(data: &[u8]) -> bool {
    match data.first() {
        Some(22 | 20) => true,
        Some(21) => data.get(3..5) == Some(&[0, 0][..]),
        _ => false,
    }
}
