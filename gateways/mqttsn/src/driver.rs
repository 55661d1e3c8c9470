//! The per-client driver: one tokio task per client that feeds the datagrams the listener
//! routed to it into the [`Channel`], opens the session on the bus, wakes on outbox pushes,
//! control requests and timers, and sends what the channel produced to the client's current
//! address. Logs exactly one close line per client.

use crate::channel::Channel;
use crate::codec::{encode, Packet};
use crate::MqttSnGateway;
use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use switchyard_bus::{durability_scope, Control};
use switchyard_core::CloseReason;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// A datagram for a client: the decoded message and where it came from.
pub(crate) type Inbound = (Packet, SocketAddr);

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// What the listener hands a new client task.
pub(crate) struct ClientTask {
    pub(crate) first: Inbound,
    pub(crate) rx: mpsc::Receiver<Inbound>,
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) gw: MqttSnGateway,
    /// Set once the handshake is over, so the listener gives a later CONNECT for this client
    /// id to a new channel (which takes the session over) instead of this one.
    pub(crate) connected: Arc<AtomicBool>,
    pub(crate) cancel: CancellationToken,
}

/// Serves one client until it closes.
pub(crate) async fn run_client(task: ClientTask) {
    let peer = task.first.1;
    let span = tracing::info_span!(
        "conn",
        %peer,
        proto = "mqtt-sn",
        client_id = tracing::field::Empty
    );
    async move {
        let reason = drive(task).await;
        match reason.detail() {
            Some(detail) => tracing::info!(reason = reason.as_str(), detail, "connection closed"),
            None => tracing::info!(reason = reason.as_str(), "connection closed"),
        }
    }
    .instrument(span)
    .await
}

async fn send_all(ch: &mut Channel, socket: &UdpSocket, buf: &mut BytesMut) {
    let peer = ch.peer();
    for packet in ch.take_outbound() {
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

async fn drive(task: ClientTask) -> CloseReason {
    let ClientTask {
        first,
        mut rx,
        socket,
        gw,
        connected,
        cancel,
    } = task;
    let (control_tx, mut control_rx) = switchyard_bus::control_channel();
    let mut ch = Channel::new(
        gw.bus.clone(),
        gw.settings.clone(),
        first.1,
        control_tx,
        now(),
    );
    let mut buf = BytesMut::with_capacity(512);
    let mut takeover = None;
    handle_durably(&mut ch, &gw, first.0, first.1).await;
    loop {
        if let Some(req) = ch.take_open_request() {
            tracing::Span::current().record("client_id", req.info.client_id.as_str());
            // Not cancelled on shutdown: the open is bounded by the bus's takeover timeout and
            // dropping it half-way would leave the registry pointing at this task.
            match gw.bus.open_session(req).await {
                Ok(opened) => {
                    ch.on_session_opened(opened, now());
                    connected.store(true, Ordering::Release);
                }
                Err(e) => ch.on_session_failed(&e),
            }
        }
        ch.pull_deliveries(now());
        send_all(&mut ch, &socket, &mut buf).await;
        if ch.close_reason().is_some() {
            break;
        }
        let outbox = ch.session().map(|s| s.outbox.clone());
        let deliver = ch.can_deliver() && outbox.is_some();
        let deadline = ch.next_deadline().map(tokio::time::Instant::from_std);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => ch.fail(CloseReason::ServerShutdown, true),
            msg = control_rx.recv() => match msg {
                Some(Control::Takeover { reply }) => {
                    takeover = Some(reply);
                    ch.fail(CloseReason::Takeover, false);
                }
                Some(Control::Kick) => ch.fail(CloseReason::Kicked, true),
                None => {}
            },
            inbound = rx.recv() => match inbound {
                Some((packet, from)) => handle_durably(&mut ch, &gw, packet, from).await,
                None => ch.fail(CloseReason::ServerShutdown, true),
            },
            _ = notified(outbox.as_deref()), if deliver => {}
            _ = sleep_until(deadline) => ch.handle_tick(now()),
        }
    }
    send_all(&mut ch, &socket, &mut buf).await;
    ch.finish(&mut control_rx, takeover)
}

/// Handles one datagram; the acknowledgements it produced for persistent state (PUBACK,
/// PUBREC, PUBCOMP, SUBACK, UNSUBACK of a persistent session) leave only once the store has
/// made that state durable.
async fn handle_durably(ch: &mut Channel, gw: &MqttSnGateway, packet: Packet, from: SocketAddr) {
    let ((), ticket) = durability_scope(|| ch.handle_packet(packet, from, now()));
    if let Some(t) = ticket {
        gw.bus.wait_durable(t).await;
    }
}

async fn notified(outbox: Option<&switchyard_bus::Outbox>) {
    match outbox {
        Some(o) => o.notified().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
