//! A thin test wrapper around rumqttc's async v4 client.
//!
//! The event loop runs in its own task and forwards every event into a channel; it stops at the
//! first connection error (no silent reconnects, so a broker-side close is observable). Packets
//! that a wait skips over are buffered, so e.g. a retained PUBLISH that arrives before the SUBACK
//! is not lost. Every wait is bounded.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnAck, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Packet,
    Publish, QoS, SubscribeReasonCode,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

/// Default bound for one expected packet.
pub const WAIT: Duration = Duration::from_secs(5);

/// One rumqttc connection under test.
pub struct Client {
    pub client: AsyncClient,
    pub id: String,
    pub connack: ConnAck,
    events: mpsc::UnboundedReceiver<Result<Packet, String>>,
    buffered: VecDeque<Packet>,
    closed: Option<String>,
    task: JoinHandle<()>,
}

/// Options with this suite's defaults: short keepalive, bigger packet limits.
pub fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

impl Client {
    /// Connects with clean session and the suite's defaults; panics unless CONNACK accepted.
    pub async fn connect(addr: SocketAddr, id: &str) -> Client {
        Self::connect_with(options(addr, id)).await
    }

    /// Connects with `opts`; panics unless CONNACK is `Success` within [`WAIT`].
    pub async fn connect_with(opts: MqttOptions) -> Client {
        let id = opts.client_id();
        match Self::try_connect_with(opts).await {
            Ok(c) => c,
            Err(e) => panic!("client {id:?}: connect failed: {e}"),
        }
    }

    /// Connects with `opts`; the error describes a refused or failed connection.
    pub async fn try_connect_with(opts: MqttOptions) -> Result<Client, String> {
        let id = opts.client_id();
        let (client, eventloop) = AsyncClient::new(opts, 64);
        let (tx, mut events) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(eventloop, tx));
        let first = timeout(WAIT, events.recv())
            .await
            .map_err(|_| format!("no CONNACK within {WAIT:?}"))?
            .ok_or_else(|| "event loop ended".to_owned())?;
        match first {
            Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => Ok(Client {
                client,
                id,
                connack: ack,
                events,
                buffered: VecDeque::new(),
                closed: None,
                task,
            }),
            Ok(other) => Err(format!("expected CONNACK, got {other:?}")),
            Err(e) => Err(e),
        }
    }

    /// Subscribes and waits for the SUBACK; returns the granted QoS, panicking on a failure code.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> QoS {
        self.client
            .subscribe(filter, qos)
            .await
            .expect("queue SUBSCRIBE");
        let ack = self
            .wait_for(WAIT, |p| matches!(p, Packet::SubAck(_)))
            .await
            .unwrap_or_else(|| panic!("{}: no SUBACK for {filter:?} within {WAIT:?}", self.id));
        let Packet::SubAck(ack) = ack else {
            unreachable!()
        };
        match ack.return_codes.first() {
            Some(SubscribeReasonCode::Success(q)) => *q,
            other => panic!("{}: SUBACK for {filter:?} refused: {other:?}", self.id),
        }
    }

    /// Publishes and, for QoS 1/2, waits for the PUBACK/PUBCOMP that ends the exchange.
    pub async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .expect("queue PUBLISH");
        let done: fn(&Packet) -> bool = match qos {
            QoS::AtMostOnce => return,
            QoS::AtLeastOnce => |p| matches!(p, Packet::PubAck(_)),
            QoS::ExactlyOnce => |p| matches!(p, Packet::PubComp(_)),
        };
        if self.wait_for(WAIT, done).await.is_none() {
            panic!(
                "{}: publish to {topic:?} at {qos:?} not acknowledged within {WAIT:?} (closed: {:?})",
                self.id, self.closed
            );
        }
    }

    /// The next PUBLISH received, or `None` after `within`.
    pub async fn next_publish(&mut self, within: Duration) -> Option<Publish> {
        match self
            .wait_for(within, |p| matches!(p, Packet::Publish(_)))
            .await
        {
            Some(Packet::Publish(p)) => Some(p),
            _ => None,
        }
    }

    /// The next PUBLISH, panicking (with `what`) if none arrives within [`WAIT`].
    pub async fn expect_publish(&mut self, what: &str) -> Publish {
        match self.next_publish(WAIT).await {
            Some(p) => p,
            None => panic!(
                "{}: expected a PUBLISH ({what}) within {WAIT:?}; connection closed: {:?}",
                self.id, self.closed
            ),
        }
    }

    /// Every PUBLISH that arrives within `within` (waits the whole time).
    pub async fn publishes_for(&mut self, within: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next_publish(left).await {
                Some(p) => out.push(p),
                None => return out,
            }
        }
    }

    /// Panics if a PUBLISH arrives within `within`.
    pub async fn expect_no_publish(&mut self, within: Duration, why: &str) {
        if let Some(p) = self.next_publish(within).await {
            panic!(
                "{}: expected no PUBLISH ({why}), got topic {:?} payload {:?} qos {:?} retain {}",
                self.id,
                p.topic,
                String::from_utf8_lossy(&p.payload),
                p.qos,
                p.retain
            );
        }
    }

    /// Sends DISCONNECT and waits for the event loop to end (bounded).
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = self.wait_closed(WAIT).await;
        self.task.abort();
    }

    /// Drops the TCP connection without a DISCONNECT (the will fires).
    pub fn abort(self) {
        self.task.abort();
    }

    /// Waits until the broker closes the connection; returns the error text, `None` on timeout.
    pub async fn wait_closed(&mut self, within: Duration) -> Option<String> {
        if self.closed.is_some() {
            return self.closed.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.events.recv()).await {
                Err(_) => return None,
                Ok(None) => {
                    self.closed = Some("event loop ended".to_owned());
                    return self.closed.clone();
                }
                Ok(Some(Err(e))) => {
                    self.closed = Some(e);
                    return self.closed.clone();
                }
                Ok(Some(Ok(p))) => self.buffered.push_back(p),
            }
        }
    }

    /// Whether the connection has been seen closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The first packet matching `pred`, from the buffer or the wire, within `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        pred: impl Fn(&Packet) -> bool,
    ) -> Option<Packet> {
        if let Some(i) = self.buffered.iter().position(&pred) {
            return self.buffered.remove(i);
        }
        let deadline = Instant::now() + within;
        loop {
            if self.closed.is_some() {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.events.recv()).await {
                Err(_) => return None,
                Ok(None) => {
                    self.closed = Some("event loop ended".to_owned());
                    return None;
                }
                Ok(Some(Err(e))) => {
                    self.closed = Some(e);
                    return None;
                }
                Ok(Some(Ok(p))) if pred(&p) => return Some(p),
                Ok(Some(Ok(p))) => self.buffered.push_back(p),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the event loop, forwarding incoming packets, until the first error.
async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Packet, String>>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(Ok(p)).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        }
    }
}

/// A will for `opts`.
pub fn will(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> LastWill {
    LastWill::new(topic, payload.to_vec(), qos, retain)
}

/// Payload as text, for assertions.
pub fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}
