//! The connection driver: one task per connection that owns the socket, feeds decoded packets
//! to the [`Channel`], wakes on outbox pushes, control requests and timers, and writes
//! everything the channel produced in one buffered write per wakeup.
//!
//! Generic over the byte stream so TCP, TLS and WebSocket (as a byte stream) share it:
//! packets and transport frames need not line up (ARCHITECTURE.md habit 3).

use crate::channel::{Channel, ConnectDecision};
use crate::codec::{decode_packet, encode_packet, Connect, DecodeError, Packet, ProtocolVersion};
use crate::MqttGateway;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_bus::{durability_scope, Metrics, Ticket};
use switchyard_core::CloseReason;
use switchyard_net::clock::{now, sleep_until};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Stop reading from a client while this much output is waiting for it: back-pressure instead
/// of unbounded buffering.
const WRITE_HIGH_WATER: usize = 1024 * 1024;
/// How long the final flush (CONNACK refusal, server DISCONNECT) may take.
const FINAL_FLUSH: Duration = Duration::from_secs(2);
/// How long a closed connection keeps reading (and discarding) what the client still sends.
const LINGER: Duration = Duration::from_secs(2);

/// Serves one MQTT connection until it closes. Exactly one close line is logged (by the bus,
/// through the channel's finish).
pub async fn run_connection<S>(
    stream: S,
    peer: SocketAddr,
    gw: MqttGateway,
    cancel: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    run_connection_as(stream, peer, gw, cancel, None).await
}

/// [`run_connection`] for a TLS connection whose client certificate names the user.
pub async fn run_connection_as<S>(
    stream: S,
    peer: SocketAddr,
    gw: MqttGateway,
    cancel: CancellationToken,
    cert_username: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let span =
        tracing::info_span!("conn", %peer, proto = "mqtt", client_id = tracing::field::Empty);
    drive(stream, peer, gw, cancel, cert_username)
        .instrument(span)
        .await
}

enum FirstPacket {
    Connect(Box<Connect>),
    Close(CloseReason),
    BadVersion,
    Cancelled,
    TimedOut,
}

/// Waits (at most `idle_timeout`) for the first packet, which must be CONNECT.
async fn first_packet<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    gw: &MqttGateway,
    cancel: &CancellationToken,
) -> FirstPacket {
    tokio::select! {
        _ = cancel.cancelled() => FirstPacket::Cancelled,
        r = tokio::time::timeout(gw.settings.idle_timeout, read_connect(rd, buf, gw)) => r.unwrap_or(FirstPacket::TimedOut),
    }
}

async fn read_connect<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    gw: &MqttGateway,
) -> FirstPacket {
    loop {
        match decode_packet(buf, ProtocolVersion::V311, gw.settings.max_packet_size) {
            Ok(Some(Packet::Connect(c))) => return FirstPacket::Connect(c),
            Ok(Some(other)) => {
                let name = other.packet_type().name();
                return FirstPacket::Close(CloseReason::ProtocolError(format!(
                    "first packet is {name}, not CONNECT (MQTT-3.1.0-1)"
                )));
            }
            Ok(None) => {}
            Err(DecodeError::UnsupportedProtocolVersion(_)) => return FirstPacket::BadVersion,
            Err(e) => return FirstPacket::Close(decode_close(&e, gw)),
        }
        match rd.read_buf(buf).await {
            Ok(0) => return FirstPacket::Close(CloseReason::PeerClosed),
            Ok(_) => {}
            Err(e) => return FirstPacket::Close(CloseReason::Io(e.to_string())),
        }
    }
}

fn decode_close(e: &DecodeError, gw: &MqttGateway) -> CloseReason {
    let m = gw.bus.metrics();
    match e {
        DecodeError::PacketTooLarge { .. } => {
            Metrics::inc(&m.packets_too_large);
            CloseReason::PacketTooLarge
        }
        DecodeError::Io(io) => CloseReason::Io(io.to_string()),
        other => {
            Metrics::inc(&m.packets_malformed);
            if other.reason_code() == crate::codes::v5::MALFORMED_PACKET {
                CloseReason::Malformed(other.to_string())
            } else {
                // Well-formed but against the protocol (duplicate property, alias 0, ...).
                CloseReason::ProtocolError(other.to_string())
            }
        }
    }
}

async fn flush<W: AsyncWrite + Unpin>(wr: &mut W, ch: &mut Channel, wbuf: &mut BytesMut) {
    encode_all(ch, wbuf);
    if wbuf.is_empty() {
        return;
    }
    let _ = tokio::time::timeout(FINAL_FLUSH, async {
        let _ = wr.write_all_buf(wbuf).await;
        let _ = wr.flush().await;
    })
    .await;
}

/// The end of a connection after our last packet is written: sends FIN, then reads and
/// discards what the client still sends until it closes (at most [`LINGER`], not past a
/// shutdown). Closing a socket with unread input makes the kernel answer RST, which can
/// destroy the DISCONNECT or CONNACK we just wrote before the client has read it (a client
/// with PUBLISHes or PUBRELs in flight when it is disconnected for exceeding Receive Maximum,
/// for example, would see a reset instead of reason 0x93).
async fn close_lingering<R, W>(rd: &mut R, wr: &mut W, cancel: &CancellationToken)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(FINAL_FLUSH, wr.shutdown()).await;
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(LINGER, async {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = rd.read(&mut sink) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
            }
        }
    })
    .await;
}

fn encode_all(ch: &mut Channel, wbuf: &mut BytesMut) {
    let version = ch.version();
    for packet in ch.take_outbound() {
        if let Err(e) = encode_packet(&packet, version, wbuf) {
            tracing::error!(error = %e, "cannot encode outbound packet");
        }
    }
}

async fn drive<S>(
    stream: S,
    peer: SocketAddr,
    gw: MqttGateway,
    cancel: CancellationToken,
    cert_username: Option<String>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    // Buffers grow on demand and are released when a burst is over, so an idle connection
    // holds almost nothing (the per-connection memory target of the bench issue).
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut ch = Channel::new(gw.bus.clone(), gw.settings.clone(), peer, now());
    ch.set_cert_username(cert_username);
    let first = Box::pin(first_packet(&mut rd, &mut rbuf, &gw, &cancel)).await;
    let connect = match first {
        // Unboxed here, so the box is freed now rather than held for the connection's life.
        FirstPacket::Connect(c) => *c,
        FirstPacket::Close(reason) => return refused(&mut ch, reason),
        FirstPacket::Cancelled => return refused(&mut ch, CloseReason::ServerShutdown),
        FirstPacket::TimedOut => return refused(&mut ch, CloseReason::ConnectTimeout),
        FirstPacket::BadVersion => {
            ch.refuse_protocol_version(false);
            return Box::pin(answer_and_close(
                &mut rd, &mut wr, &mut wbuf, &mut ch, &cancel,
            ))
            .await;
        }
    };
    // The chain of authenticators may ask a network back-end: awaited here, on this
    // connection's task, never inside the channel.
    let creds = ch.connect_credentials(&connect);
    ch.set_verdict(Box::pin(gw.settings.security.authenticate(&creds)).await);
    let request = match ch.handle_connect(connect, now()) {
        ConnectDecision::Open(req) => req,
        ConnectDecision::Refused => {
            return Box::pin(answer_and_close(
                &mut rd, &mut wr, &mut wbuf, &mut ch, &cancel,
            ))
            .await;
        }
    };
    tracing::Span::current().record("client_id", request.info.client_id.as_str());
    // Transient futures are boxed so that the connection task's state (kept for the whole
    // connection) is not sized by them: memory per idle connection is a target.
    match Box::pin(gw.bus.open_session(request)).await {
        Ok(opened) => {
            let ((), ticket) = durability_scope(|| ch.on_session_opened(opened, now()));
            if let Some(t) = ticket {
                // The will of a persistent session is durable before CONNACK.
                Box::pin(gw.bus.wait_durable(t)).await;
            }
        }
        Err(e) => {
            ch.on_session_failed(&e);
            return Box::pin(answer_and_close(
                &mut rd, &mut wr, &mut wbuf, &mut ch, &cancel,
            ))
            .await;
        }
    }
    serve(
        &mut rd, &mut wr, &mut rbuf, &mut wbuf, &mut ch, &gw, &cancel,
    )
    .await;
    Box::pin(flush(&mut wr, &mut ch, &mut wbuf)).await;
    if let Some(query) = ch.will_query(now()) {
        // The will is checked when it is published; an HTTP source answers first (bounded by
        // its request_timeout).
        let answers = Box::pin(query.run()).await;
        ch.accept_authz(answers);
    }
    // The session goes back to the bus first: a takeover must not wait for the old client.
    ch.finish();
    Box::pin(close_lingering(&mut rd, &mut wr, &cancel)).await;
}

/// A connection that ends before CONNECT was read: nothing to answer; the channel's finish counts
/// and logs it as refused.
fn refused(ch: &mut Channel, reason: CloseReason) {
    ch.fail(reason);
    ch.finish();
}

/// A refused CONNECT: writes the refusal the channel queued, closes, and finishes the channel
/// (counted and logged as refused: no session was opened).
async fn answer_and_close<R, W>(
    rd: &mut R,
    wr: &mut W,
    wbuf: &mut BytesMut,
    ch: &mut Channel,
    cancel: &CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    Box::pin(flush(wr, ch, wbuf)).await;
    Box::pin(close_lingering(rd, wr, cancel)).await;
    ch.finish();
}

async fn serve<R, W>(
    rd: &mut R,
    wr: &mut W,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    ch: &mut Channel,
    gw: &MqttGateway,
    cancel: &CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (Some(outbox), Some(control)) = (ch.session().map(|s| s.outbox.clone()), ch.control())
    else {
        return;
    };
    let mut codec_version = ch.version();
    // Acknowledgements of persistent state wait here until the store says they are durable;
    // everything produced after them waits too, so the order on the wire is kept.
    let mut durable = gw.bus.durable();
    let mut held: VecDeque<(Ticket, Vec<Packet>)> = VecDeque::new();
    // Framed transports (WebSocket) hold written bytes until flushed; TCP's flush is a no-op.
    let mut needs_flush = false;
    let mut read_hint = ReadHint::default();
    // Credentials that expire (a JWT's exp, an HTTP authenticator's expire_at) close the
    // connection then, as EMQX does (MQTT 5 DISCONNECT 0x87 Not authorized).
    let expiry = ch.credentials_expire_at().map(|at| {
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        now() + left
    });
    if !rbuf.is_empty() {
        // Packets that arrived in the same read as CONNECT (MQTT-3.1.4: a client may send
        // before CONNACK) are handled now, not when more bytes happen to arrive.
        let mut input = Input {
            rbuf,
            codec_version: &mut codec_version,
            held: &mut held,
            durable: &durable,
        };
        Box::pin(input.handle(ch, gw, cancel)).await;
    }
    loop {
        if wbuf.len() < WRITE_HIGH_WATER {
            ch.pull_deliveries(now());
        }
        release_held(&mut held, *durable.borrow(), ch.version(), wbuf);
        match held.back_mut() {
            Some((_, later)) => later.extend(ch.take_outbound()),
            None => encode_all(ch, wbuf),
        }
        if ch.close_reason().is_some() {
            if let Some(&(last, _)) = held.back() {
                let _ = Box::pin(tokio::time::timeout(
                    FINAL_FLUSH,
                    durable.wait_for(|d| *d >= last),
                ))
                .await;
                release_held(&mut held, *durable.borrow(), ch.version(), wbuf);
            }
            return;
        }
        let can_read = wbuf.len() < WRITE_HIGH_WATER;
        let spare = read_hint.prepare(rbuf);
        let can_write = !wbuf.is_empty();
        let can_flush = needs_flush && !can_write;
        let deadline = ch.next_deadline();
        tokio::select! {
            biased;
            _ = cancel.cancelled() => ch.fail(CloseReason::ServerShutdown),
            event = control.recv() => ch.fail(event.close_reason()),
            r = write_or_flush(wr, wbuf), if can_write || can_flush => match r {
                Ok(Some(0)) => ch.fail(CloseReason::PeerClosed),
                Ok(Some(n)) => {
                    gw.bus.metrics().bytes_sent.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    needs_flush = true;
                    release_if_idle(wbuf);
                }
                Ok(None) => needs_flush = false,
                Err(e) => ch.fail(CloseReason::Io(e.to_string())),
            },
            r = rd.read_buf(rbuf), if can_read => match r {
                Ok(0) => ch.fail(CloseReason::PeerClosed),
                Ok(n) => {
                    gw.bus.metrics().bytes_received.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    read_hint.observe(n, spare);
                    let mut input = Input { rbuf, codec_version: &mut codec_version, held: &mut held, durable: &durable };
                    Box::pin(input.handle(ch, gw, cancel)).await;
                    read_hint.release_if_idle(rbuf);
                }
                Err(e) => ch.fail(CloseReason::Io(e.to_string())),
            },
            _ = outbox.notified(), if can_read => {}
            r = durable.changed(), if !held.is_empty() => {
                if r.is_err() {
                    ch.fail(CloseReason::Io("session store stopped".into()));
                }
            }
            _ = sleep_until(deadline) => ch.handle_tick(now()),
            _ = sleep_until(expiry), if expiry.is_some() => {
                tracing::info!("credentials expired; disconnecting");
                ch.fail(CloseReason::NotAuthorized);
            }
        }
    }
}

/// The read side's state that handling input touches.
struct Input<'a> {
    rbuf: &'a mut BytesMut,
    codec_version: &'a mut ProtocolVersion,
    held: &'a mut VecDeque<(Ticket, Vec<Packet>)>,
    durable: &'a tokio::sync::watch::Receiver<Ticket>,
}

impl Input<'_> {
    /// Handles every whole packet buffered. A packet that needs a network authorization
    /// source (HTTP) waits for its answer here, on this connection's task, before it is
    /// handled; the packets behind it wait too, so their order holds. Acknowledgements that
    /// wait for durability are held.
    async fn handle(&mut self, ch: &mut Channel, gw: &MqttGateway, cancel: &CancellationToken) {
        let mut ready: Option<Packet> = None;
        loop {
            let (waiting, ticket) = durability_scope(|| {
                if let Some(packet) = ready.take() {
                    ch.handle_packet(packet, now());
                    if ch.close_reason().is_some() {
                        return None;
                    }
                    *self.codec_version = ch.version();
                }
                handle_input(ch, self.rbuf, self.codec_version, gw)
            });
            if let Some(t) = ticket.filter(|t| *t > *self.durable.borrow()) {
                self.held.push_back((t, ch.take_outbound()));
            }
            let Some((packet, query)) = waiting else {
                return;
            };
            tokio::select! {
                answers = query.run() => ch.accept_authz(answers),
                _ = cancel.cancelled() => return ch.fail(CloseReason::ServerShutdown),
            }
            ready = Some(packet);
        }
    }
}

/// Above this, an emptied write buffer is freed rather than kept for the next batch.
const KEEP_BUFFER: usize = 2048;

/// The read buffer's size follows the traffic: it doubles while reads fill it (a busy
/// publisher reads big chunks, few syscalls) and halves while they use little of it, and an
/// emptied buffer much larger than that is freed — an idle connection holds ~64 bytes.
#[derive(Debug, Clone, Copy)]
struct ReadHint {
    size: usize,
}

impl Default for ReadHint {
    fn default() -> Self {
        ReadHint {
            size: ReadHint::MIN,
        }
    }
}

impl ReadHint {
    const MIN: usize = 64;
    const MAX: usize = 64 * 1024;

    /// Makes room for the next read; returns the room.
    fn prepare(&self, buf: &mut BytesMut) -> usize {
        if buf.capacity() - buf.len() < self.size {
            buf.reserve(self.size);
        }
        buf.capacity() - buf.len()
    }

    fn observe(&mut self, read: usize, room: usize) {
        if read >= room {
            self.size = (self.size * 2).min(Self::MAX);
        } else if read < self.size / 4 {
            self.size = (self.size / 2).max(Self::MIN);
        }
    }

    fn release_if_idle(&self, buf: &mut BytesMut) {
        if buf.is_empty() && buf.capacity() > 2 * self.size {
            *buf = BytesMut::new();
        }
    }
}

/// Frees a drained buffer's memory after a burst (a large packet or a batch of deliveries).
fn release_if_idle(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > KEEP_BUFFER {
        *buf = BytesMut::new();
    }
}

/// Decodes and handles every whole packet in `rbuf`, up to one that must first wait for a
/// network authorization source: that one is returned with its query, unhandled.
fn handle_input(
    ch: &mut Channel,
    rbuf: &mut BytesMut,
    codec_version: &mut ProtocolVersion,
    gw: &MqttGateway,
) -> Option<(Packet, switchyard_auth::AuthzQuery)> {
    let t = now();
    loop {
        match decode_packet(rbuf, *codec_version, gw.settings.max_packet_size) {
            Ok(Some(packet)) => match ch.authz_query(&packet, t) {
                Some(query) => return Some((packet, query)),
                None => ch.handle_packet(packet, t),
            },
            Ok(None) => break,
            Err(e) => {
                let reason = decode_close(&e, gw);
                // The codec names the wire reason (0x81, 0x82, 0x94, 0x95); a transport
                // error gets no DISCONNECT.
                let code = (!matches!(e, DecodeError::Io(_))).then(|| e.reason_code());
                ch.fail_code(reason, code);
            }
        }
        if ch.close_reason().is_some() {
            break;
        }
        *codec_version = ch.version();
    }
    None
}

/// Moves held packets whose ticket is durable to the write buffer, in order.
fn release_held(
    held: &mut VecDeque<(Ticket, Vec<Packet>)>,
    durable: Ticket,
    version: ProtocolVersion,
    wbuf: &mut BytesMut,
) {
    while held.front().is_some_and(|(t, _)| *t <= durable) {
        let Some((_, packets)) = held.pop_front() else {
            break;
        };
        for packet in packets {
            if let Err(e) = encode_packet(&packet, version, wbuf) {
                tracing::error!(error = %e, "cannot encode outbound packet");
            }
        }
    }
}

/// Writes some of `wbuf` (`Some(n)`), or flushes when it is empty (`None`). Cancel-safe: each
/// is a single poll of the transport.
async fn write_or_flush<W: AsyncWrite + Unpin>(
    wr: &mut W,
    wbuf: &mut BytesMut,
) -> std::io::Result<Option<usize>> {
    if wbuf.is_empty() {
        wr.flush().await.map(|()| None)
    } else {
        wr.write_buf(wbuf).await.map(Some)
    }
}
