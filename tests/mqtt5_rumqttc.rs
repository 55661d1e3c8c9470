//! MQTT 5.0 over TCP with rumqttc's v5 client (`rumqttc::v5`), one broker per test.
//!
//! Covers the MQTT 5 features of issue 3 as a real client library uses them: session expiry and
//! clean start, assigned client identifier, subscription options (no-local, retain-as-published,
//! retain handling), subscription identifiers, message expiry, property pass-through, topic
//! aliases, Receive Maximum both ways, Maximum Packet Size both ways, and server-side DISCONNECT
//! reasons. Error paths a well-behaved library refuses to produce (exceeding the server's Receive
//! Maximum, an out-of-range topic alias, an oversize packet) are driven with raw MQTT 5 bytes
//! encoded by the project's own codec ([`RawV5`]).
//!
//! Every wait is bounded; a test that fails prints the broker's log (see `tests/common`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Filter, Packet, Publish, PublishProperties, RetainForwardRule,
    SubscribeProperties, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, StateError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

use common::Broker;
use switchyard_core::QoS as WireQoS;
use switchyard_mqtt::codec as wire;

/// Bound for one expected packet.
const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing arrives" is watched for.
const QUIET: Duration = Duration::from_millis(600);

// ------------------------------------------------------------------------------------------
// rumqttc v5 wrapper
// ------------------------------------------------------------------------------------------

/// How a connection ended, as the event loop reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Closed {
    /// The server sent DISCONNECT with this reason code.
    ServerDisconnect(u8),
    /// Any other error, as text.
    Other(String),
}

/// One rumqttc v5 connection: the event loop runs in its own task and forwards every incoming
/// packet; it stops at the first error (no reconnects, so a server-side close is observable).
struct V5 {
    client: AsyncClient,
    id: String,
    connack: ConnAck,
    events: mpsc::UnboundedReceiver<Result<Packet, Closed>>,
    buffered: VecDeque<Packet>,
    closed: Option<Closed>,
    task: JoinHandle<()>,
}

/// Options with this suite's defaults: MQTT 5 over TCP, short keepalive, 1 MiB inbound limit.
fn options(addr: SocketAddr, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(5));
    o.set_max_packet_size(Some(1 << 20));
    o
}

/// `options` for a persistent session: clean start off, the given session expiry.
fn persistent(addr: SocketAddr, id: &str, expiry_secs: u32) -> MqttOptions {
    let mut o = options(addr, id);
    o.set_clean_start(false);
    let mut props = o.connect_properties().unwrap_or_default();
    props.session_expiry_interval = Some(expiry_secs);
    o.set_connect_properties(props);
    o
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Packet, Closed>>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(Ok(p)).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(ConnectionError::MqttState(StateError::ServerDisconnect {
                reason_code, ..
            })) => {
                let _ = tx.send(Err(Closed::ServerDisconnect(reason_code as u8)));
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(Closed::Other(e.to_string())));
                return;
            }
        }
    }
}

impl V5 {
    async fn connect(addr: SocketAddr, id: &str) -> V5 {
        Self::connect_with(options(addr, id)).await
    }

    /// Connects; panics unless the CONNACK is Success within [`WAIT`].
    async fn connect_with(opts: MqttOptions) -> V5 {
        let id = opts.client_id();
        let (client, eventloop) = AsyncClient::new(opts, 64);
        let (tx, mut events) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(eventloop, tx));
        let first = timeout(WAIT, events.recv())
            .await
            .unwrap_or_else(|_| panic!("{id:?}: no CONNACK within {WAIT:?}"))
            .unwrap_or_else(|| panic!("{id:?}: event loop ended before CONNACK"));
        match first {
            Ok(Packet::ConnAck(ack)) if ack.code == ConnectReturnCode::Success => V5 {
                client,
                id,
                connack: ack,
                events,
                buffered: VecDeque::new(),
                closed: None,
                task,
            },
            other => panic!("{id:?}: expected a successful CONNACK, got {other:?}"),
        }
    }

    /// The first packet matching `pred`, buffering the others, within `within`.
    async fn wait_for(
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
                    self.closed = Some(Closed::Other("event loop ended".into()));
                    return None;
                }
                Ok(Some(Err(c))) => {
                    self.closed = Some(c);
                    return None;
                }
                Ok(Some(Ok(p))) if pred(&p) => return Some(p),
                Ok(Some(Ok(p))) => self.buffered.push_back(p),
            }
        }
    }

    async fn next_publish(&mut self, within: Duration) -> Option<Publish> {
        match self
            .wait_for(within, |p| matches!(p, Packet::Publish(_)))
            .await
        {
            Some(Packet::Publish(p)) => Some(p),
            _ => None,
        }
    }

    /// The next PUBLISH; panics if none arrives within [`WAIT`].
    async fn expect_publish(&mut self, what: &str) -> Publish {
        match self.next_publish(WAIT).await {
            Some(p) => p,
            None => panic!(
                "{}: expected a PUBLISH ({what}) within {WAIT:?}; closed: {:?}",
                self.id, self.closed
            ),
        }
    }

    /// Panics if a PUBLISH arrives within [`QUIET`].
    async fn expect_no_publish(&mut self, why: &str) {
        if let Some(p) = self.next_publish(QUIET).await {
            panic!(
                "{}: expected no PUBLISH ({why}), got topic {:?} payload {:?} retain {}",
                self.id,
                String::from_utf8_lossy(&p.topic),
                String::from_utf8_lossy(&p.payload),
                p.retain
            );
        }
    }

    /// Subscribes `filters` in one SUBSCRIBE; panics unless every one is granted.
    async fn subscribe_filters(&mut self, filters: Vec<Filter>, id: Option<usize>) {
        let what = format!("{filters:?}");
        let props = SubscribeProperties {
            id,
            user_properties: Vec::new(),
        };
        self.client
            .subscribe_many_with_properties(filters, props)
            .await
            .expect("queue SUBSCRIBE");
        let ack = self
            .wait_for(WAIT, |p| matches!(p, Packet::SubAck(_)))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{}: no SUBACK for {what} within {WAIT:?} (closed: {:?})",
                    self.id, self.closed
                )
            });
        let Packet::SubAck(ack) = ack else {
            unreachable!("wait_for matched SubAck")
        };
        for code in &ack.return_codes {
            assert!(
                matches!(code, SubscribeReasonCode::Success(_)),
                "{}: SUBACK for {what} refused: {:?}",
                self.id,
                ack.return_codes
            );
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.subscribe_filters(vec![Filter::new(filter, qos)], None)
            .await;
    }

    /// Publishes and, for QoS 1/2, waits for the PUBACK/PUBCOMP that ends the exchange.
    async fn publish_props(
        &mut self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
        props: Option<PublishProperties>,
    ) {
        let payload: Bytes = payload.into();
        match props {
            Some(p) => self
                .client
                .publish_with_properties(topic, qos, retain, payload, p)
                .await
                .expect("queue PUBLISH"),
            None => self
                .client
                .publish(topic, qos, retain, payload)
                .await
                .expect("queue PUBLISH"),
        }
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

    async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &str) {
        self.publish_props(topic, qos, retain, payload.to_owned(), None)
            .await;
    }

    /// Waits until the connection ends; `None` if still open after `within`.
    async fn wait_closed(&mut self, within: Duration) -> Option<Closed> {
        let _ = self.wait_for(within, |_| false).await;
        self.closed.clone()
    }

    /// Sends DISCONNECT (normal) and lets the event loop end.
    async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = self.wait_closed(Duration::from_secs(2)).await;
        self.task.abort();
    }
}

impl Drop for V5 {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn topic(p: &Publish) -> String {
    String::from_utf8_lossy(&p.topic).into_owned()
}

fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

fn props(p: &Publish) -> PublishProperties {
    p.properties.clone().unwrap_or_default()
}

// ------------------------------------------------------------------------------------------
// Raw MQTT 5 over TCP, encoded with the project's codec
// ------------------------------------------------------------------------------------------

/// What a read produced. (Short-lived values; boxing the packet would only obscure matches.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Got {
    Packet(wire::Packet),
    Closed,
    Timeout,
}

/// An MQTT 5 connection driven packet by packet, for what rumqttc will not send.
struct RawV5 {
    stream: TcpStream,
    buf: BytesMut,
}

fn pkid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("non-zero packet id")
}

impl RawV5 {
    /// Connects with an MQTT 5 CONNECT for `client_id`; returns the CONNACK (checked Success).
    async fn connect(addr: SocketAddr, client_id: &str) -> (RawV5, wire::ConnAck) {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("TCP connect in time")
            .expect("TCP connect");
        stream.set_nodelay(true).ok();
        let mut raw = RawV5 {
            stream,
            buf: BytesMut::new(),
        };
        let mut connect = wire::Connect::new(wire::ProtocolVersion::V5, client_id.to_owned());
        connect.keep_alive = 30;
        raw.send(&wire::Packet::Connect(Box::new(connect))).await;
        match raw.read(WAIT).await {
            Got::Packet(wire::Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, 0, "{client_id}: CONNACK refused: {ack:?}");
                (raw, ack)
            }
            other => panic!("{client_id}: expected CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, p: &wire::Packet) {
        let mut out = BytesMut::new();
        wire::encode_packet(p, wire::ProtocolVersion::V5, &mut out).expect("encode packet");
        self.send_bytes(&out).await;
    }

    /// Writes bytes; a peer that already closed shows up on the next read.
    async fn send_bytes(&mut self, b: &[u8]) {
        let _ = timeout(WAIT, self.stream.write_all(b)).await;
    }

    async fn read(&mut self, within: Duration) -> Got {
        let deadline = Instant::now() + within;
        loop {
            match wire::decode_packet(&mut self.buf, wire::ProtocolVersion::V5, 1 << 24) {
                Ok(Some(p)) => return Got::Packet(p),
                Ok(None) => {}
                Err(e) => panic!("broker sent an undecodable packet: {e}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut chunk = [0u8; 8192];
            match timeout(left, self.stream.read(&mut chunk)).await {
                Err(_) => return Got::Timeout,
                Ok(Ok(0)) | Ok(Err(_)) => return Got::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a DISCONNECT; asserts its reason code and that the broker then closes.
    async fn expect_disconnect(&mut self, code: u8, why: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left).await {
                Got::Packet(wire::Packet::Disconnect(d)) => {
                    assert_eq!(
                        d.reason_code, code,
                        "{why}: DISCONNECT reason {:#04x}, expected {code:#04x} ({d:?})",
                        d.reason_code
                    );
                    break;
                }
                Got::Packet(_) => {}
                other => panic!("{why}: expected DISCONNECT {code:#04x}, got {other:?}"),
            }
        }
        match self.read(WAIT).await {
            Got::Closed => {}
            other => panic!("{why}: the broker must close after its DISCONNECT, got {other:?}"),
        }
    }
}

/// A raw PUBLISH at the broker's QoS type (`Q0`/`Q2`), with packet id `id` for QoS > 0.
fn raw_publish(topic: &str, qos: WireQoS, id: u16, payload: &[u8]) -> wire::Publish {
    let mut p = wire::Publish::new(topic.to_owned(), Bytes::copy_from_slice(payload));
    p.qos = qos;
    if qos != Q0 {
        p.pkid = Some(pkid(id));
    }
    p
}

const Q0: WireQoS = WireQoS::AtMostOnce;
const Q2: WireQoS = WireQoS::ExactlyOnce;

// ------------------------------------------------------------------------------------------
// Sessions
// ------------------------------------------------------------------------------------------

/// MQTT 5 §3.1.2.4/§3.1.2.11.2: with Clean Start 0 and a Session Expiry Interval the session
/// outlives the connection and messages for it are queued; Clean Start 1 discards it.
#[tokio::test]
async fn session_expiry_and_clean_start_resume_with_queued_messages() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let opts = persistent(addr, "v5-resume", 60);

    let mut sub = V5::connect_with(opts.clone()).await;
    assert!(!sub.connack.session_present, "a new session is not present");
    sub.subscribe("resume/#", QoS::ExactlyOnce).await;
    sub.disconnect().await;

    let mut publisher = V5::connect(addr, "v5-resume-pub").await;
    for i in 0..3 {
        publisher
            .publish("resume/t", QoS::AtLeastOnce, false, &format!("queued {i}"))
            .await;
    }
    publisher
        .publish("resume/t", QoS::ExactlyOnce, false, "queued qos2")
        .await;

    let mut sub = V5::connect_with(opts.clone()).await;
    assert!(
        sub.connack.session_present,
        "clean start 0 within the expiry resumes the session: {:?}",
        sub.connack
    );
    for i in 0..3 {
        let p = sub.expect_publish("queued while offline").await;
        assert_eq!(
            (topic(&p), text(&p)),
            ("resume/t".into(), format!("queued {i}"))
        );
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
    let p = sub.expect_publish("queued QoS 2").await;
    assert_eq!((text(&p), p.qos), ("queued qos2".into(), QoS::ExactlyOnce));
    sub.disconnect().await;

    // Queued again, then thrown away by Clean Start 1, subscription included.
    publisher
        .publish("resume/t", QoS::AtLeastOnce, false, "discarded")
        .await;
    let mut clean = opts.clone();
    clean.set_clean_start(true);
    let mut sub = V5::connect_with(clean).await;
    assert!(
        !sub.connack.session_present,
        "clean start 1 must discard the session"
    );
    sub.expect_no_publish("clean start discarded the queue")
        .await;
    publisher
        .publish("resume/t", QoS::AtLeastOnce, false, "after clean start")
        .await;
    sub.expect_no_publish("clean start discarded the subscription")
        .await;
}

/// MQTT-3.1.2-23: a session whose expiry interval has passed is gone.
#[tokio::test]
async fn session_expires_after_its_interval() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let opts = persistent(addr, "v5-expiring", 1);
    let mut sub = V5::connect_with(opts.clone()).await;
    sub.subscribe("expiring/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    // Still there right away...
    let sub = V5::connect_with(opts.clone()).await;
    assert!(sub.connack.session_present, "resumed within 1 s");
    sub.disconnect().await;

    // ...and gone after the interval. Letting time pass is the point: the 1 s expiry interval,
    // plus up to 1 s until the broker's once-a-second reaper discards the expired session, plus
    // a margin.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let mut sub = V5::connect_with(opts).await;
    assert!(
        !sub.connack.session_present,
        "the session must expire 1 s after the disconnect"
    );
    let mut publisher = V5::connect(addr, "v5-expiring-pub").await;
    publisher
        .publish("expiring/t", QoS::AtLeastOnce, false, "nobody")
        .await;
    sub.expect_no_publish("the expired session's subscription is gone")
        .await;
}

/// MQTT-3.2.2-16: an empty client id gets one assigned in the CONNACK, and it names the session.
#[tokio::test]
async fn assigned_client_identifier() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut first = V5::connect_with(options(addr, "")).await;
    let assigned = first
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.assigned_client_identifier.clone())
        .unwrap_or_else(|| panic!("no Assigned Client Identifier: {:?}", first.connack));
    assert!(!assigned.is_empty(), "assigned id must not be empty");

    // A second empty id gets another one.
    let other = V5::connect_with(options(addr, "")).await;
    let other_id = other
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.assigned_client_identifier.clone());
    assert!(other_id.is_some(), "second client got no assigned id");
    assert_ne!(
        other_id.as_deref(),
        Some(assigned.as_str()),
        "ids must be unique"
    );

    // The assigned id is the connection's identity: reusing it takes the session over.
    let _second = V5::connect(addr, &assigned).await;
    assert_eq!(
        first.wait_closed(WAIT).await,
        Some(Closed::ServerDisconnect(0x8E)),
        "connecting with the assigned id must take over that connection"
    );
    other.disconnect().await;
}

/// MQTT 5 §3.14: DISCONNECT 0x8E (Session taken over) to the old connection.
#[tokio::test]
async fn takeover_sends_disconnect_0x8e() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut old = V5::connect(addr, "v5-takeover").await;
    let mut new = V5::connect(addr, "v5-takeover").await;
    assert_eq!(
        old.wait_closed(WAIT).await,
        Some(Closed::ServerDisconnect(0x8E)),
        "old connection must get DISCONNECT Session taken over"
    );
    // The new connection works.
    new.subscribe("takeover/t", QoS::AtMostOnce).await;
    new.publish("takeover/t", QoS::AtLeastOnce, false, "alive")
        .await;
    assert_eq!(text(&new.expect_publish("own message").await), "alive");
}

/// MQTT 5 §3.14: DISCONNECT 0x8B (Server shutting down) on a graceful stop.
#[tokio::test]
async fn shutdown_sends_disconnect_0x8b() {
    let mut broker = Broker::start();
    let mut client = V5::connect(broker.mqtt_addr(), "v5-shutdown").await;
    let stopped = tokio::task::spawn_blocking(move || {
        let status = broker.stop(Duration::from_secs(10));
        (broker, status)
    });
    assert_eq!(
        client.wait_closed(Duration::from_secs(10)).await,
        Some(Closed::ServerDisconnect(0x8B)),
        "a graceful shutdown must send DISCONNECT Server shutting down"
    );
    let (_broker, status) = stopped.await.expect("join stop");
    assert!(status.is_some(), "broker did not stop within 10 s");
}

// ------------------------------------------------------------------------------------------
// Subscription options and identifiers
// ------------------------------------------------------------------------------------------

/// MQTT-3.8.3-3: No Local — a client's own messages are not sent back to it.
#[tokio::test]
async fn no_local() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut a = V5::connect(addr, "v5-nl-a").await;
    let mut f = Filter::new("nl/t", QoS::AtLeastOnce);
    f.nolocal = true;
    a.subscribe_filters(vec![f], None).await;
    let mut b = V5::connect(addr, "v5-nl-b").await;
    b.subscribe("nl/t", QoS::AtLeastOnce).await;

    a.publish("nl/t", QoS::AtLeastOnce, false, "from a").await;
    assert_eq!(text(&b.expect_publish("a's message").await), "from a");
    b.publish("nl/t", QoS::AtLeastOnce, false, "from b").await;
    // Had "from a" come back to a, it would be first in a's FIFO outbox.
    assert_eq!(
        text(&a.expect_publish("b's message").await),
        "from b",
        "no-local subscriber got its own message back"
    );
    assert_eq!(text(&b.expect_publish("own, no-local off").await), "from b");
    a.expect_no_publish("nothing else").await;
}

/// MQTT-3.3.1-12/13: Retain As Published keeps the RETAIN flag on forwarded messages;
/// without it the flag is cleared.
#[tokio::test]
async fn retain_as_published() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut rap = V5::connect(addr, "v5-rap-on").await;
    let mut f = Filter::new("rap/t", QoS::AtLeastOnce);
    f.preserve_retain = true;
    rap.subscribe_filters(vec![f], None).await;
    let mut plain = V5::connect(addr, "v5-rap-off").await;
    plain.subscribe("rap/t", QoS::AtLeastOnce).await;

    let mut publisher = V5::connect(addr, "v5-rap-pub").await;
    publisher
        .publish("rap/t", QoS::AtLeastOnce, true, "retained live")
        .await;
    publisher
        .publish("rap/t", QoS::AtLeastOnce, false, "not retained")
        .await;

    let p = rap.expect_publish("retained, live").await;
    assert_eq!((text(&p), p.retain), ("retained live".into(), true));
    let p = rap.expect_publish("not retained, live").await;
    assert_eq!((text(&p), p.retain), ("not retained".into(), false));
    let p = plain.expect_publish("retained, live").await;
    assert_eq!(
        (text(&p), p.retain),
        ("retained live".into(), false),
        "without retain-as-published a live message has RETAIN 0"
    );
    let p = plain.expect_publish("not retained, live").await;
    assert_eq!((text(&p), p.retain), ("not retained".into(), false));
}

fn with_rh(filter: &str, rule: RetainForwardRule) -> Filter {
    let mut f = Filter::new(filter, QoS::AtLeastOnce);
    f.retain_forward_rule = rule;
    f
}

/// MQTT-3.3.1-9/10/11: Retain Handling 0 sends retained messages on every subscribe, 1 only on
/// a new subscription, 2 never.
#[tokio::test]
async fn retain_handling_0_1_2() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut publisher = V5::connect(addr, "v5-rh-pub").await;
    publisher
        .publish("rh/t", QoS::AtLeastOnce, true, "kept")
        .await;

    let mut c0 = V5::connect(addr, "v5-rh0").await;
    for round in 0..2 {
        c0.subscribe_filters(
            vec![with_rh("rh/t", RetainForwardRule::OnEverySubscribe)],
            None,
        )
        .await;
        let p = c0.expect_publish("retain handling 0").await;
        assert_eq!(
            (text(&p), p.retain),
            ("kept".into(), true),
            "RH 0, subscribe #{round}"
        );
    }

    let mut c1 = V5::connect(addr, "v5-rh1").await;
    c1.subscribe_filters(
        vec![with_rh("rh/t", RetainForwardRule::OnNewSubscribe)],
        None,
    )
    .await;
    let p = c1.expect_publish("retain handling 1, new").await;
    assert_eq!((text(&p), p.retain), ("kept".into(), true));
    c1.subscribe_filters(
        vec![with_rh("rh/t", RetainForwardRule::OnNewSubscribe)],
        None,
    )
    .await;
    c1.expect_no_publish("RH 1 on an existing subscription")
        .await;

    let mut c2 = V5::connect(addr, "v5-rh2").await;
    c2.subscribe_filters(vec![with_rh("rh/t", RetainForwardRule::Never)], None)
        .await;
    c2.expect_no_publish("RH 2 never sends retained messages")
        .await;
    publisher
        .publish("rh/t", QoS::AtLeastOnce, false, "live")
        .await;
    for c in [&mut c0, &mut c1, &mut c2] {
        let p = c.expect_publish("live message").await;
        assert_eq!((text(&p), p.retain), ("live".into(), false), "{}", c.id);
    }
}

/// MQTT-3.3.4-3/5: one delivery for overlapping subscriptions carries every matching
/// subscription identifier.
#[tokio::test]
async fn subscription_identifiers_on_one_delivery() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = V5::connect(addr, "v5-sid").await;
    sub.subscribe_filters(vec![Filter::new("sid/+", QoS::AtLeastOnce)], Some(1))
        .await;
    sub.subscribe_filters(vec![Filter::new("sid/#", QoS::AtLeastOnce)], Some(2))
        .await;
    sub.subscribe_filters(vec![Filter::new("other/#", QoS::AtLeastOnce)], Some(3))
        .await;
    sub.subscribe_filters(
        vec![Filter::new("sid/nested/+", QoS::AtLeastOnce)],
        Some(268_435_455),
    )
    .await;

    let mut publisher = V5::connect(addr, "v5-sid-pub").await;
    publisher
        .publish("sid/a", QoS::AtLeastOnce, false, "both")
        .await;
    let p = sub.expect_publish("sid/a").await;
    let mut ids = props(&p).subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2], "ids on sid/a");
    sub.expect_no_publish("one delivery for overlapping subscriptions")
        .await;

    publisher
        .publish("sid/nested/x", QoS::AtLeastOnce, false, "deep")
        .await;
    let p = sub.expect_publish("sid/nested/x").await;
    let mut ids = props(&p).subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![2, 268_435_455],
        "ids on sid/nested/x (largest id)"
    );
    sub.expect_no_publish("one delivery").await;

    // A subscription replaced without an identifier loses it (MQTT-3.8.4-3 replaces options).
    sub.subscribe("sid/#", QoS::AtLeastOnce).await;
    publisher
        .publish("sid/b", QoS::AtLeastOnce, false, "one id")
        .await;
    let p = sub.expect_publish("sid/b").await;
    assert_eq!(props(&p).subscription_identifiers, vec![1]);
}

// ------------------------------------------------------------------------------------------
// Message properties
// ------------------------------------------------------------------------------------------

/// MQTT-3.3.2-5/6: a queued message whose expiry passed is dropped; one forwarded later carries
/// the remaining interval. Retained messages expire too.
#[tokio::test]
async fn message_expiry_in_queue_and_remaining_interval() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let opts = persistent(addr, "v5-exp", 60);
    let mut sub = V5::connect_with(opts.clone()).await;
    sub.subscribe("exp/#", QoS::AtLeastOnce).await;
    sub.disconnect().await;

    let expiring = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    };
    let mut publisher = V5::connect(addr, "v5-exp-pub").await;
    publisher
        .publish_props(
            "exp/short",
            QoS::AtLeastOnce,
            false,
            "short",
            Some(expiring(1)),
        )
        .await;
    publisher
        .publish_props(
            "exp/long",
            QoS::AtLeastOnce,
            false,
            "long",
            Some(expiring(100)),
        )
        .await;
    publisher
        .publish("exp/none", QoS::AtLeastOnce, false, "none")
        .await;
    publisher
        .publish_props(
            "ret/short",
            QoS::AtLeastOnce,
            true,
            "ret short",
            Some(expiring(1)),
        )
        .await;
    publisher
        .publish_props(
            "ret/long",
            QoS::AtLeastOnce,
            true,
            "ret long",
            Some(expiring(100)),
        )
        .await;

    // Letting time pass is the point: past exp/short's and ret/short's 1 s expiry, and long
    // enough that the remaining intervals below (~97.8 s of 100) have visibly counted down.
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let mut sub = V5::connect_with(opts).await;
    assert!(sub.connack.session_present);
    let p = sub.expect_publish("the unexpired queued message").await;
    assert_eq!(topic(&p), "exp/long", "exp/short expired in the queue");
    let left = props(&p).message_expiry_interval;
    assert!(
        matches!(left, Some(97..=98)),
        "remaining expiry after ~2.2 s of 100 s: {left:?}"
    );
    let p = sub
        .expect_publish("the queued message without expiry")
        .await;
    assert_eq!(topic(&p), "exp/none");
    assert_eq!(props(&p).message_expiry_interval, None);
    sub.expect_no_publish("exp/short expired").await;

    let mut late = V5::connect(addr, "v5-exp-late").await;
    late.subscribe("ret/#", QoS::AtLeastOnce).await;
    let p = late.expect_publish("unexpired retained").await;
    assert_eq!(topic(&p), "ret/long");
    assert!(p.retain);
    let left = props(&p).message_expiry_interval;
    assert!(
        matches!(left, Some(97..=98)),
        "retained remaining expiry: {left:?}"
    );
    late.expect_no_publish("the expired retained message is gone")
        .await;
}

/// MQTT-3.3.2-15..20: payload format indicator, content type, response topic, correlation data
/// and user properties (order and duplicates kept) reach the subscriber unchanged; a responder
/// answers on the response topic with the correlation data.
#[tokio::test]
async fn request_response_and_user_properties_pass_through() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut responder = V5::connect(addr, "v5-responder").await;
    responder.subscribe("svc/req", QoS::AtLeastOnce).await;
    let mut requester = V5::connect(addr, "v5-requester").await;
    requester.subscribe("svc/reply/1", QoS::AtLeastOnce).await;

    let sent = PublishProperties {
        payload_format_indicator: Some(1),
        content_type: Some("application/json".into()),
        response_topic: Some("svc/reply/1".into()),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr\xff")),
        user_properties: vec![
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("a".into(), "3".into()),
            ("unicode".into(), "µ—✓".into()),
        ],
        ..Default::default()
    };
    requester
        .publish_props(
            "svc/req",
            QoS::AtLeastOnce,
            false,
            r#"{"op":"ping"}"#.to_owned(),
            Some(sent.clone()),
        )
        .await;

    let req = responder.expect_publish("request").await;
    let got = props(&req);
    assert_eq!(got.payload_format_indicator, sent.payload_format_indicator);
    assert_eq!(got.content_type, sent.content_type);
    assert_eq!(got.response_topic, sent.response_topic);
    assert_eq!(got.correlation_data, sent.correlation_data);
    assert_eq!(got.user_properties, sent.user_properties);
    assert_eq!(got.message_expiry_interval, None);
    assert_eq!(text(&req), r#"{"op":"ping"}"#);

    let reply = PublishProperties {
        correlation_data: got.correlation_data.clone(),
        ..Default::default()
    };
    let reply_topic = got.response_topic.clone().expect("response topic");
    responder
        .publish_props(
            &reply_topic,
            QoS::AtLeastOnce,
            false,
            "pong".to_owned(),
            Some(reply),
        )
        .await;
    let resp = requester.expect_publish("response").await;
    assert_eq!(topic(&resp), "svc/reply/1");
    assert_eq!(props(&resp).correlation_data, sent.correlation_data);
    assert!(props(&resp).user_properties.is_empty());
}

/// MQTT-3.3.2-12: a client's topic alias maps to the topic it was last sent with; the
/// subscriber (which allowed no aliases) gets full topic names and no alias.
#[tokio::test]
async fn topic_alias_from_client() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = V5::connect(addr, "v5-alias-sub").await;
    sub.subscribe("alias/#", QoS::AtLeastOnce).await;
    let mut publisher = V5::connect(addr, "v5-alias-pub").await;
    let max = publisher
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.topic_alias_max);
    assert_eq!(max, Some(65535), "CONNACK Topic Alias Maximum (default)");

    let alias = |n| PublishProperties {
        topic_alias: Some(n),
        ..Default::default()
    };
    let sends = [
        ("alias/t", 1, "set 1"),
        ("", 1, "use 1"),
        ("alias/u", 2, "set 2"),
        ("", 2, "use 2"),
        ("alias/v", 1, "remap 1"),
        ("", 1, "use remapped 1"),
        ("", 2, "use 2 again"),
    ];
    for (t, a, payload) in sends {
        publisher
            .publish_props(
                t,
                QoS::AtLeastOnce,
                false,
                payload.to_owned(),
                Some(alias(a)),
            )
            .await;
    }
    let expected = [
        ("alias/t", "set 1"),
        ("alias/t", "use 1"),
        ("alias/u", "set 2"),
        ("alias/u", "use 2"),
        ("alias/v", "remap 1"),
        ("alias/v", "use remapped 1"),
        ("alias/u", "use 2 again"),
    ];
    for (t, payload) in expected {
        let p = sub.expect_publish(payload).await;
        assert_eq!((topic(&p).as_str(), text(&p).as_str()), (t, payload));
        assert_eq!(
            props(&p).topic_alias,
            None,
            "no alias to a client whose Topic Alias Maximum is 0 (MQTT-3.3.2-9)"
        );
    }
}

/// Outbound aliases: a subscriber allowing aliases still sees every topic right (rumqttc
/// resolves them), and none exceeds the maximum it announced.
#[tokio::test]
async fn topic_alias_to_client_within_its_maximum() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut o = options(addr, "v5-alias-out");
    o.set_topic_alias_max(Some(2));
    let mut sub = V5::connect_with(o).await;
    sub.subscribe("out/#", QoS::AtLeastOnce).await;
    let mut publisher = V5::connect(addr, "v5-alias-out-pub").await;
    let topics = [
        "out/a", "out/b", "out/c", "out/a", "out/b", "out/c", "out/a",
    ];
    for (i, t) in topics.iter().enumerate() {
        publisher
            .publish(t, QoS::AtLeastOnce, false, &format!("m{i}"))
            .await;
    }
    for (i, t) in topics.iter().enumerate() {
        let p = sub.expect_publish("aliased delivery").await;
        assert_eq!((topic(&p).as_str(), text(&p)), (*t, format!("m{i}")));
        if let Some(a) = props(&p).topic_alias {
            assert!((1..=2).contains(&a), "alias {a} outside 1..=2");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Flow control and limits
// ------------------------------------------------------------------------------------------

/// MQTT-3.3.4-9: the server sends no more unacknowledged QoS 1/2 messages than the client's
/// Receive Maximum; each PUBACK lets one more through.
#[tokio::test]
async fn client_receive_maximum_limits_inflight() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut o = options(addr, "v5-rm-sub");
    o.set_receive_maximum(Some(2));
    o.set_manual_acks(true);
    let mut sub = V5::connect_with(o).await;
    sub.subscribe("rm/t", QoS::AtLeastOnce).await;
    let mut publisher = V5::connect(addr, "v5-rm-pub").await;
    for i in 0..5 {
        publisher
            .publish("rm/t", QoS::AtLeastOnce, false, &format!("m{i}"))
            .await;
    }
    let first = sub.expect_publish("m0").await;
    let second = sub.expect_publish("m1").await;
    assert_eq!(
        (text(&first).as_str(), text(&second).as_str()),
        ("m0", "m1")
    );
    sub.expect_no_publish("Receive Maximum 2 reached").await;

    sub.client.ack(&first).await.expect("queue PUBACK");
    let third = sub.expect_publish("m2 after one PUBACK").await;
    assert_eq!(text(&third), "m2");
    sub.expect_no_publish("window full again").await;

    sub.client.ack(&second).await.expect("queue PUBACK");
    sub.client.ack(&third).await.expect("queue PUBACK");
    for i in 3..5 {
        let p = sub.expect_publish("the rest").await;
        assert_eq!(text(&p), format!("m{i}"));
        sub.client.ack(&p).await.expect("queue PUBACK");
    }
}

/// The server's Receive Maximum (`mqtt.max_awaiting_rel`) is announced, a compliant client stays
/// within it, and a client that exceeds it gets DISCONNECT 0x93 (MQTT-3.3.4-8).
#[tokio::test]
async fn server_receive_maximum_announced_and_enforced() {
    let broker = Broker::start_with("[mqtt]\nmax_awaiting_rel = 2\n");
    let addr = broker.mqtt_addr();

    let mut sub = V5::connect(addr, "v5-srm-sub").await;
    sub.subscribe("srm/#", QoS::ExactlyOnce).await;
    let good = V5::connect(addr, "v5-srm-good").await;
    let announced = good.connack.properties.as_ref().and_then(|p| p.receive_max);
    assert_eq!(announced, Some(2), "CONNACK Receive Maximum");
    // rumqttc limits itself to 2 in flight; five QoS 2 messages all go through.
    for i in 0..5 {
        good.client
            .publish("srm/ok", QoS::ExactlyOnce, false, format!("ok{i}"))
            .await
            .expect("queue PUBLISH");
    }
    for i in 0..5 {
        let p = sub.expect_publish("QoS 2 within the window").await;
        assert_eq!(text(&p), format!("ok{i}"));
    }

    let (mut raw, ack) = RawV5::connect(addr, "v5-srm-raw").await;
    assert_eq!(ack.properties.receive_maximum, Some(2));
    for id in 1..=2 {
        raw.send(&wire::Packet::Publish(raw_publish(
            "srm/raw", Q2, id, b"held",
        )))
        .await;
        match raw.read(WAIT).await {
            Got::Packet(wire::Packet::PubRec(a)) => {
                assert_eq!((a.pkid.get(), a.reason_code), (id, 0), "PUBREC {id}");
            }
            other => panic!("expected PUBREC {id}, got {other:?}"),
        }
    }
    raw.send(&wire::Packet::Publish(raw_publish(
        "srm/raw",
        Q2,
        3,
        b"one too many",
    )))
    .await;
    raw.expect_disconnect(0x93, "third QoS 2 without PUBREL")
        .await;
}

/// `mqtt.max_topic_alias` is announced; an alias above it, or 0, gets DISCONNECT 0x94
/// (MQTT-3.3.2-8/10); an unknown alias with an empty topic is a protocol error (0x82).
#[tokio::test]
async fn topic_alias_out_of_range() {
    let broker = Broker::start_with("[mqtt]\nmax_topic_alias = 10\n");
    let addr = broker.mqtt_addr();
    let mut sub = V5::connect(addr, "v5-tam-sub").await;
    sub.subscribe("tam/#", QoS::AtLeastOnce).await;

    let mut good = V5::connect(addr, "v5-tam-good").await;
    let max = good
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.topic_alias_max);
    assert_eq!(max, Some(10), "CONNACK Topic Alias Maximum");
    let alias10 = PublishProperties {
        topic_alias: Some(10),
        ..Default::default()
    };
    good.publish_props(
        "tam/t",
        QoS::AtLeastOnce,
        false,
        "at max".to_owned(),
        Some(alias10.clone()),
    )
    .await;
    good.publish_props(
        "",
        QoS::AtLeastOnce,
        false,
        "via 10".to_owned(),
        Some(alias10),
    )
    .await;
    for payload in ["at max", "via 10"] {
        let p = sub.expect_publish(payload).await;
        assert_eq!((topic(&p).as_str(), text(&p).as_str()), ("tam/t", payload));
    }

    for (alias, code, what) in [(11, 0x94, "alias above the maximum"), (0, 0x94, "alias 0")] {
        let (mut raw, _) = RawV5::connect(addr, &format!("v5-tam-raw-{alias}")).await;
        let mut p = raw_publish("tam/t", Q0, 0, b"bad alias");
        p.properties.topic_alias = Some(alias);
        raw.send(&wire::Packet::Publish(p)).await;
        raw.expect_disconnect(code, what).await;
    }
    let (mut raw, _) = RawV5::connect(addr, "v5-tam-raw-unknown").await;
    let mut p = raw_publish("", Q0, 0, b"unknown alias");
    p.properties.topic_alias = Some(5);
    raw.send(&wire::Packet::Publish(p)).await;
    raw.expect_disconnect(0x82, "empty topic with an alias never set")
        .await;
    sub.expect_no_publish("no bad-alias message was routed")
        .await;
}

/// `mqtt.max_packet_size` is announced and enforced inbound (DISCONNECT 0x95, MQTT-3.2.2-15's
/// counterpart for the server); outbound, a message too big for the client's Maximum Packet
/// Size is not sent to it (MQTT-3.1.2-25), later ones are.
#[tokio::test]
async fn packet_too_large_both_ways() {
    let broker = Broker::start_with("[mqtt]\nmax_packet_size = 1024\n");
    let addr = broker.mqtt_addr();

    let mut small = options(addr, "v5-ptl-small");
    small.set_max_packet_size(Some(256));
    let mut small = V5::connect_with(small).await;
    small.subscribe("ptl/#", QoS::AtLeastOnce).await;
    let mut good = V5::connect(addr, "v5-ptl-good").await;
    let max = good
        .connack
        .properties
        .as_ref()
        .and_then(|p| p.max_packet_size);
    assert_eq!(max, Some(1024), "CONNACK Maximum Packet Size");

    let medium = "m".repeat(600);
    good.publish("ptl/t", QoS::AtLeastOnce, false, &medium)
        .await;
    good.publish("ptl/t", QoS::AtLeastOnce, false, "small")
        .await;
    let p = small.expect_publish("the small message").await;
    assert_eq!(
        text(&p),
        "small",
        "a 600-byte message must not be sent to a client allowing 256"
    );

    let (mut raw, _) = RawV5::connect(addr, "v5-ptl-raw").await;
    let big = vec![b'x'; 2000];
    raw.send(&wire::Packet::Publish(raw_publish("ptl/t", Q0, 0, &big)))
        .await;
    raw.expect_disconnect(0x95, "a 2 KB PUBLISH over a 1 KiB limit")
        .await;
    small
        .expect_no_publish("the oversize message was not routed")
        .await;
}
