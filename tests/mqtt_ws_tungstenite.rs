//! MQTT over WebSocket with tokio-tungstenite as the WebSocket client and the project's codec
//! for the MQTT packets, against `[listeners.ws.default]` (path "/mqtt").
//!
//! Complements tests/mqtt_ws.rs (a hand-written RFC 6455 client, MQTT 3.1.1 QoS 0): here every
//! MQTT subprotocol name is offered and must be echoed, MQTT 3.1.1 and 5 run QoS 0/1/2 flows,
//! retained messages and a 64 KiB payload cross the listener, a rumqttc TCP client and a
//! WebSocket client exchange messages both ways, packets are cut across WebSocket messages and
//! across RFC 6455 continuation frames, several packets share one frame, and wrong paths get a
//! 404. Every wait is bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::VecDeque;
use std::num::NonZeroU16;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use common::mqtt::Client as TcpClient;
use common::Broker;
use switchyard_core::QoS;
use switchyard_mqtt::codec::{
    decode_packet, encode_packet, Ack, Connect, Packet, ProtocolVersion, Publish, Subscribe,
    SubscriptionOptions,
};

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(500);
const V31: ProtocolVersion = ProtocolVersion::V31;
const V311: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn pkid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("non-zero packet id")
}

fn ws_url(broker: &Broker, path: &str) -> String {
    format!("ws://{}{path}", broker.listener("mqtt:ws:default"))
}

/// Opens a WebSocket to `url`, offering `subprotocol` (a comma-separated list, or none).
async fn open_ws(url: &str, subprotocol: Option<&str>) -> Result<(Ws, Option<String>), WsError> {
    let mut req = url.into_client_request()?;
    if let Some(p) = subprotocol {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(p).expect("header value"),
        );
    }
    let (ws, resp) = timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| WsError::Io(std::io::Error::other("WebSocket handshake timed out")))??;
    let echoed = resp
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, echoed))
}

/// What a read produced. (Short-lived values; boxing the packet would only obscure matches.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Got {
    Packet(Packet),
    Closed,
    Timeout,
}

/// One MQTT connection over a tokio-tungstenite WebSocket.
struct WsMqtt {
    ws: Ws,
    id: String,
    version: ProtocolVersion,
    /// Binary payload bytes received and not yet decoded.
    rbuf: BytesMut,
    /// Decoded packets skipped by a wait for another kind.
    pending: VecDeque<Packet>,
    next_pkid: u16,
}

impl WsMqtt {
    /// Opens the WebSocket on /mqtt with subprotocol "mqtt" and completes CONNECT/CONNACK.
    async fn connect(broker: &Broker, version: ProtocolVersion, id: &str) -> WsMqtt {
        let (ws, echoed) = open_ws(&ws_url(broker, "/mqtt"), Some("mqtt"))
            .await
            .unwrap_or_else(|e| panic!("{id}: WebSocket upgrade failed: {e}"));
        assert_eq!(echoed.as_deref(), Some("mqtt"), "{id}: subprotocol echo");
        Self::handshake(ws, version, id, Connect::new(version, id.to_owned())).await
    }

    /// Sends `connect` on an open WebSocket and checks the CONNACK accepts it.
    async fn handshake(ws: Ws, version: ProtocolVersion, id: &str, mut connect: Connect) -> WsMqtt {
        connect.protocol = version;
        if connect.keep_alive == 0 {
            connect.keep_alive = 30;
        }
        let mut c = WsMqtt {
            ws,
            id: id.to_owned(),
            version,
            rbuf: BytesMut::new(),
            pending: VecDeque::new(),
            next_pkid: 0,
        };
        c.send(&Packet::Connect(Box::new(connect))).await;
        match c.read(WAIT).await {
            Got::Packet(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, 0, "{id}: CONNACK refused over WebSocket: {ack:?}");
            }
            other => panic!("{id}: expected CONNACK over WebSocket, got {other:?}"),
        }
        c
    }

    fn encode(&self, p: &Packet) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_packet(p, self.version, &mut out).expect("encode packet");
        out.to_vec()
    }

    /// Sends `p` as one binary WebSocket message.
    async fn send(&mut self, p: &Packet) {
        let bytes = self.encode(p);
        self.send_message(bytes).await;
    }

    async fn send_message(&mut self, bytes: Vec<u8>) {
        timeout(WAIT, self.ws.send(Message::Binary(Bytes::from(bytes))))
            .await
            .expect("WebSocket send in time")
            .expect("WebSocket send");
    }

    /// Sends `bytes` as one binary message fragmented into RFC 6455 continuation frames at
    /// `cuts` (RFC 6455 §5.4).
    async fn send_fragmented(&mut self, bytes: &[u8], cuts: &[usize]) {
        let mut start = 0;
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.push(bytes.len());
        for (i, end) in bounds.iter().copied().enumerate() {
            let opcode = if i == 0 { Data::Binary } else { Data::Continue };
            let last = i + 1 == bounds.len();
            let frame = Frame::message(
                Bytes::copy_from_slice(&bytes[start..end]),
                OpCode::Data(opcode),
                last,
            );
            timeout(WAIT, self.ws.feed(Message::Frame(frame)))
                .await
                .expect("feed in time")
                .expect("feed frame");
            start = end;
        }
        timeout(WAIT, self.ws.flush())
            .await
            .expect("flush in time")
            .expect("flush");
    }

    fn alloc_pkid(&mut self) -> NonZeroU16 {
        self.next_pkid = self.next_pkid % u16::MAX + 1;
        pkid(self.next_pkid)
    }

    /// Reads the next packet (buffered first) within `within`.
    async fn read(&mut self, within: Duration) -> Got {
        if let Some(p) = self.pending.pop_front() {
            return Got::Packet(p);
        }
        self.read_wire(within).await
    }

    async fn read_wire(&mut self, within: Duration) -> Got {
        let deadline = Instant::now() + within;
        loop {
            match decode_packet(&mut self.rbuf, self.version, 1 << 24) {
                Ok(Some(p)) => return Got::Packet(p),
                Ok(None) => {}
                Err(e) => panic!("{}: broker sent an undecodable packet: {e}", self.id),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.ws.next()).await {
                Err(_) => return Got::Timeout,
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Got::Closed
                }
                Ok(Some(Ok(Message::Binary(b)))) => self.rbuf.extend_from_slice(&b),
                Ok(Some(Ok(Message::Text(t)))) => {
                    panic!("{}: broker sent a text frame {t:?} (MQTT-6.0.0-1)", self.id)
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The first packet matching `pred`, keeping the others for later reads.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Packet) -> bool) -> Packet {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).expect("index in range");
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_wire(left).await {
                Got::Packet(p) if pred(&p) => return p,
                Got::Packet(p) => self.pending.push_back(p),
                other => panic!("{}: waiting for {what}: {other:?}", self.id),
            }
        }
    }

    /// Subscribes one filter; returns the SUBACK code.
    async fn subscribe(&mut self, filter: &str, qos: QoS) -> u8 {
        let id = self.alloc_pkid();
        let sub = Subscribe::new(id, vec![(filter.into(), SubscriptionOptions::new(qos))]);
        self.send(&Packet::Subscribe(sub)).await;
        let ack = self
            .wait_for("SUBACK", |p| matches!(p, Packet::SubAck(a) if a.pkid == id))
            .await;
        let Packet::SubAck(ack) = ack else {
            unreachable!("matched SUBACK")
        };
        assert_eq!(ack.return_codes.len(), 1);
        ack.return_codes[0]
    }

    /// Publishes and completes the QoS 1/2 handshake.
    async fn publish_msg(&mut self, mut p: Publish) {
        let qos = p.qos;
        let id = (qos != QoS::AtMostOnce).then(|| self.alloc_pkid());
        p.pkid = id;
        self.send(&Packet::Publish(p)).await;
        match (qos, id) {
            (QoS::AtLeastOnce, Some(id)) => {
                let ack = self
                    .wait_for("PUBACK", |p| matches!(p, Packet::PubAck(a) if a.pkid == id))
                    .await;
                assert!(matches!(ack, Packet::PubAck(a) if a.reason_code < 0x80));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                let rec = self
                    .wait_for("PUBREC", |p| matches!(p, Packet::PubRec(a) if a.pkid == id))
                    .await;
                assert!(matches!(rec, Packet::PubRec(a) if a.reason_code < 0x80));
                self.send(&Packet::PubRel(Ack::new(id))).await;
                self.wait_for(
                    "PUBCOMP",
                    |p| matches!(p, Packet::PubComp(a) if a.pkid == id),
                )
                .await;
            }
            _ => {}
        }
    }

    async fn publish(&mut self, topic: &str, qos: QoS, retain: bool, payload: &[u8]) {
        let mut p = Publish::new(topic.to_owned(), Bytes::copy_from_slice(payload));
        p.qos = qos;
        p.retain = retain;
        self.publish_msg(p).await;
    }

    /// The next PUBLISH, acknowledged as its QoS requires (PUBACK; PUBREC, PUBREL, PUBCOMP).
    async fn expect_publish(&mut self, what: &str) -> Publish {
        let p = self
            .wait_for(what, |p| matches!(p, Packet::Publish(_)))
            .await;
        let Packet::Publish(p) = p else {
            unreachable!("matched PUBLISH")
        };
        match (p.qos, p.pkid) {
            (QoS::AtLeastOnce, Some(id)) => self.send(&Packet::PubAck(Ack::new(id))).await,
            (QoS::ExactlyOnce, Some(id)) => {
                self.send(&Packet::PubRec(Ack::new(id))).await;
                self.wait_for("PUBREL", |p| matches!(p, Packet::PubRel(a) if a.pkid == id))
                    .await;
                self.send(&Packet::PubComp(Ack::new(id))).await;
            }
            _ => {}
        }
        p
    }

    async fn expect_no_publish(&mut self, why: &str) {
        if let Some(i) = self
            .pending
            .iter()
            .position(|p| matches!(p, Packet::Publish(_)))
        {
            panic!(
                "{}: unexpected PUBLISH ({why}): {:?}",
                self.id, self.pending[i]
            );
        }
        match self.read_wire(QUIET).await {
            Got::Timeout => {}
            Got::Packet(p @ Packet::Publish(_)) => {
                panic!("{}: unexpected PUBLISH ({why}): {p:?}", self.id)
            }
            Got::Packet(p) => self.pending.push_back(p),
            Got::Closed => panic!("{}: connection closed ({why})", self.id),
        }
    }

    /// PINGREQ answered by PINGRESP: the connection is alive.
    async fn ping(&mut self) {
        self.send(&Packet::PingReq).await;
        self.wait_for("PINGRESP", |p| matches!(p, Packet::PingResp))
            .await;
    }
}

fn text(p: &Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

/// MQTT 5 §6.0.0 and the list: each MQTT subprotocol name is accepted and echoed; no
/// subprotocol at all is accepted too, without an echo.
#[tokio::test]
async fn every_mqtt_subprotocol_is_accepted_and_echoed() {
    let broker = Broker::start();
    let url = ws_url(&broker, "/mqtt");
    let cases: [(Option<&str>, Option<&str>, ProtocolVersion); 8] = [
        (Some("mqtt"), Some("mqtt"), V311),
        (Some("mqttv3.1"), Some("mqttv3.1"), V31),
        (Some("mqtt-v3"), Some("mqtt-v3"), V311),
        (Some("mqtt-v3.1.1"), Some("mqtt-v3.1.1"), V311),
        (Some("mqtt-v5"), Some("mqtt-v5"), V5),
        (None, None, V5),
        // A list: the first MQTT name offered is chosen.
        (Some("wamp, mqtt-v5, mqtt"), Some("mqtt-v5"), V5),
        (Some("mqttv3.1, mqtt"), Some("mqttv3.1"), V31),
    ];
    for (i, (offer, echo, version)) in cases.into_iter().enumerate() {
        let (ws, echoed) = open_ws(&url, offer)
            .await
            .unwrap_or_else(|e| panic!("offer {offer:?} refused: {e}"));
        assert_eq!(echoed.as_deref(), echo, "echo for offer {offer:?}");
        let id = format!("ws-proto-{i}");
        let mut c = WsMqtt::handshake(ws, version, &id, Connect::new(version, id.clone())).await;
        c.ping().await;
        let topic = format!("proto/{i}");
        assert_eq!(c.subscribe(&topic, QoS::AtLeastOnce).await, 1);
        c.publish(&topic, QoS::AtLeastOnce, false, b"echo").await;
        let p = c.expect_publish("own message").await;
        assert_eq!((p.topic.to_string(), text(&p)), (topic, "echo".into()));
    }
}

/// RFC 6455 §4.2.1 / the issue: any path but the configured one gets HTTP 404.
#[tokio::test]
async fn other_paths_get_http_404() {
    let broker = Broker::start();
    for path in ["/", "/mqtt/", "/mqtt/x", "/MQTT", "/ws", "/mqttx"] {
        match open_ws(&ws_url(&broker, path), Some("mqtt")).await {
            Err(WsError::Http(resp)) => assert_eq!(
                resp.status(),
                StatusCode::NOT_FOUND,
                "path {path:?}: {resp:?}"
            ),
            Err(e) => panic!("path {path:?}: expected HTTP 404, got error {e}"),
            Ok(_) => panic!("path {path:?}: upgrade accepted"),
        }
    }
    // The right path still works afterwards.
    let mut c = WsMqtt::connect(&broker, V311, "ws-after-404").await;
    c.ping().await;
}

/// QoS 0, 1 and 2 over WebSocket with MQTT 3.1.1 and MQTT 5, in every combination of
/// publisher and subscriber version; MQTT 5 properties survive between MQTT 5 clients.
#[tokio::test]
async fn qos_0_1_2_with_mqtt_311_and_5() {
    let broker = Broker::start();
    for (sv, pv) in [(V311, V311), (V311, V5), (V5, V311), (V5, V5)] {
        let tag = format!("{}{}", sv.level(), pv.level());
        let mut sub = WsMqtt::connect(&broker, sv, &format!("ws-sub-{tag}")).await;
        assert_eq!(
            sub.subscribe(&format!("q/{tag}/#"), QoS::ExactlyOnce).await,
            2
        );
        let mut publisher = WsMqtt::connect(&broker, pv, &format!("ws-pub-{tag}")).await;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let mut p = Publish::new(
                format!("q/{tag}/{}", qos.as_u8()),
                format!("qos {} from v{}", qos.as_u8(), pv.level()),
            );
            p.qos = qos;
            if pv == V5 {
                p.properties.user_properties = vec![("k".into(), "v".into())];
                p.properties.content_type = Some("text/plain".into());
            }
            publisher.publish_msg(p).await;
        }
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let p = sub.expect_publish("QoS flow").await;
            assert_eq!(p.topic.to_string(), format!("q/{tag}/{}", qos.as_u8()));
            assert_eq!(p.qos, qos, "delivered at the published QoS ({tag})");
            assert_eq!(
                text(&p),
                format!("qos {} from v{}", qos.as_u8(), pv.level())
            );
            if sv == V5 && pv == V5 {
                assert_eq!(p.properties.user_properties, vec![("k".into(), "v".into())]);
                assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
            }
        }
        sub.expect_no_publish("exactly once each").await;
    }
}

/// A retained message published over WebSocket reaches later subscribers with RETAIN set,
/// over WebSocket (3.1.1 and 5) and TCP; an empty retained payload clears it.
#[tokio::test]
async fn retained_messages_over_websocket() {
    let broker = Broker::start();
    let mut publisher = WsMqtt::connect(&broker, V5, "ws-ret-pub").await;
    publisher
        .publish("ret/ws", QoS::AtLeastOnce, true, b"kept over ws")
        .await;
    for (i, v) in [V311, V5].into_iter().enumerate() {
        let mut late = WsMqtt::connect(&broker, v, &format!("ws-ret-late-{i}")).await;
        late.subscribe("ret/+", QoS::AtLeastOnce).await;
        let p = late.expect_publish("retained").await;
        assert_eq!(
            (p.topic.to_string(), text(&p), p.retain),
            ("ret/ws".into(), "kept over ws".into(), true),
            "MQTT {}",
            v.level()
        );
    }
    let mut tcp = TcpClient::connect(broker.mqtt_addr(), "tcp-ret-late").await;
    tcp.subscribe("ret/ws", rumqttc::QoS::AtLeastOnce).await;
    let p = tcp.expect_publish("retained over TCP").await;
    assert_eq!((p.payload.as_ref(), p.retain), (&b"kept over ws"[..], true));

    publisher
        .publish("ret/ws", QoS::AtLeastOnce, true, b"")
        .await;
    let mut later = WsMqtt::connect(&broker, V311, "ws-ret-cleared").await;
    later.subscribe("ret/ws", QoS::AtLeastOnce).await;
    later
        .expect_no_publish("the retained message was cleared")
        .await;
}

/// A 64 KiB payload (larger than one WebSocket frame a browser would typically send and than
/// tungstenite's read chunk) in both directions, with MQTT 3.1.1 and 5.
#[tokio::test]
async fn payload_of_64_kib() {
    let broker = Broker::start();
    let payload: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let mut sub5 = WsMqtt::connect(&broker, V5, "ws-big-sub5").await;
    sub5.subscribe("big/#", QoS::AtLeastOnce).await;
    let mut sub3 = WsMqtt::connect(&broker, V311, "ws-big-sub3").await;
    sub3.subscribe("big/#", QoS::ExactlyOnce).await;
    let mut tcp = TcpClient::connect(broker.mqtt_addr(), "tcp-big-sub").await;
    tcp.subscribe("big/#", rumqttc::QoS::AtLeastOnce).await;

    let mut publisher = WsMqtt::connect(&broker, V311, "ws-big-pub").await;
    publisher
        .publish("big/ws", QoS::ExactlyOnce, false, &payload)
        .await;
    for sub in [&mut sub5, &mut sub3] {
        let p = sub.expect_publish("64 KiB from WebSocket").await;
        assert_eq!(p.payload.len(), payload.len());
        assert!(p.payload == payload, "64 KiB payload corrupted");
    }
    let p = tcp.expect_publish("64 KiB over TCP").await;
    assert!(p.payload.as_ref() == payload.as_slice());

    tcp.publish("big/tcp", rumqttc::QoS::AtLeastOnce, false, &payload)
        .await;
    for sub in [&mut sub5, &mut sub3] {
        let p = sub.expect_publish("64 KiB from TCP").await;
        assert_eq!(p.topic.to_string(), "big/tcp");
        assert!(p.payload == payload, "64 KiB payload from TCP corrupted");
    }
}

/// rumqttc over TCP and MQTT 5 over WebSocket see each other's QoS 1 and 2 messages.
#[tokio::test]
async fn rumqttc_tcp_and_websocket_exchange_messages() {
    let broker = Broker::start();
    let mut ws = WsMqtt::connect(&broker, V5, "ws-x").await;
    ws.subscribe("x/to-ws/#", QoS::ExactlyOnce).await;
    let mut tcp = TcpClient::connect(broker.mqtt_addr(), "tcp-x").await;
    tcp.subscribe("x/to-tcp/#", rumqttc::QoS::ExactlyOnce).await;

    tcp.publish("x/to-ws/1", rumqttc::QoS::AtLeastOnce, false, b"tcp q1")
        .await;
    tcp.publish("x/to-ws/2", rumqttc::QoS::ExactlyOnce, false, b"tcp q2")
        .await;
    for (t, body, qos) in [
        ("x/to-ws/1", "tcp q1", QoS::AtLeastOnce),
        ("x/to-ws/2", "tcp q2", QoS::ExactlyOnce),
    ] {
        let p = ws.expect_publish("from rumqttc").await;
        assert_eq!(
            (p.topic.to_string(), text(&p), p.qos),
            (t.into(), body.into(), qos)
        );
    }

    ws.publish("x/to-tcp/1", QoS::AtLeastOnce, false, b"ws q1")
        .await;
    ws.publish("x/to-tcp/2", QoS::ExactlyOnce, false, b"ws q2")
        .await;
    for (t, body, qos) in [
        ("x/to-tcp/1", "ws q1", rumqttc::QoS::AtLeastOnce),
        ("x/to-tcp/2", "ws q2", rumqttc::QoS::ExactlyOnce),
    ] {
        let p = tcp.expect_publish("from WebSocket").await;
        assert_eq!(
            (p.topic.as_str(), p.payload.as_ref(), p.qos),
            (t, body.as_bytes(), qos)
        );
    }
}

/// Packets and WebSocket framing are independent (MQTT-6.0.0-2): a packet cut into several
/// binary messages — inside the remaining-length varint too — and into RFC 6455 continuation
/// frames; three packets in one message; a message ending mid-packet.
#[tokio::test]
async fn packets_span_messages_and_fragments() {
    let broker = Broker::start();
    let (ws, _) = open_ws(&ws_url(&broker, "/mqtt"), Some("mqtt-v5"))
        .await
        .expect("upgrade");
    // CONNECT in continuation frames of 1, 2 and the rest bytes.
    let mut c = WsMqtt {
        ws,
        id: "ws-frag".into(),
        version: V5,
        rbuf: BytesMut::new(),
        pending: VecDeque::new(),
        next_pkid: 0,
    };
    let mut connect = Connect::new(V5, "ws-frag");
    connect.keep_alive = 30;
    let bytes = c.encode(&Packet::Connect(Box::new(connect)));
    c.send_fragmented(&bytes, &[1, 3]).await;
    assert!(
        matches!(c.read(WAIT).await, Got::Packet(Packet::ConnAck(a)) if a.code == 0),
        "CONNACK after a fragmented CONNECT"
    );
    assert_eq!(c.subscribe("frag/#", QoS::ExactlyOnce).await, 2);

    // A 20 000-byte PUBLISH (3-byte remaining length): one byte per message up to the middle
    // of the varint, then messages of 7 000 bytes.
    let big: Vec<u8> = (0..20_000).map(|i| (i % 253) as u8).collect();
    let mut p = Publish::new("frag/big", big.clone());
    p.qos = QoS::AtLeastOnce;
    p.pkid = Some(pkid(100));
    let bytes = c.encode(&Packet::Publish(p));
    for chunk in [&bytes[..1], &bytes[1..2], &bytes[2..3]] {
        c.send_message(chunk.to_vec()).await;
    }
    for chunk in bytes[3..].chunks(7_000) {
        c.send_message(chunk.to_vec()).await;
    }
    c.wait_for(
        "PUBACK 100",
        |p| matches!(p, Packet::PubAck(a) if a.pkid.get() == 100),
    )
    .await;
    let got = c.expect_publish("the reassembled PUBLISH").await;
    assert!(got.payload == big, "20 000-byte payload corrupted");

    // The same PUBLISH as one message fragmented into continuation frames at odd offsets.
    let mut p = Publish::new("frag/cont", big.clone());
    p.qos = QoS::AtLeastOnce;
    p.pkid = Some(pkid(101));
    let bytes = c.encode(&Packet::Publish(p));
    c.send_fragmented(&bytes, &[2, 3, 1000, 1001, 15_000]).await;
    c.wait_for(
        "PUBACK 101",
        |p| matches!(p, Packet::PubAck(a) if a.pkid.get() == 101),
    )
    .await;
    let got = c.expect_publish("PUBLISH from continuation frames").await;
    assert_eq!(got.topic.to_string(), "frag/cont");
    assert!(got.payload == big);

    // QoS 0, 1 and 2 PUBLISHes and a PINGREQ in one message, followed by the first half of
    // another PUBLISH whose second half comes in the next message.
    let mut batch = Vec::new();
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let mut p = Publish::new(format!("frag/batch/{i}"), format!("batched {i}"));
        p.qos = qos;
        p.pkid = (qos != QoS::AtMostOnce).then(|| pkid(200 + i as u16));
        batch.extend(c.encode(&Packet::Publish(p)));
    }
    batch.extend(c.encode(&Packet::PingReq));
    let tail = c.encode(&Packet::Publish(Publish::new("frag/batch/3", "split tail")));
    let (head, rest) = tail.split_at(tail.len() / 2);
    batch.extend_from_slice(head);
    c.send_message(batch).await;
    c.wait_for("PINGRESP", |p| matches!(p, Packet::PingResp))
        .await;
    c.send_message(rest.to_vec()).await;
    c.wait_for(
        "PUBACK 201",
        |p| matches!(p, Packet::PubAck(a) if a.pkid.get() == 201),
    )
    .await;
    c.wait_for(
        "PUBREC 202",
        |p| matches!(p, Packet::PubRec(a) if a.pkid.get() == 202),
    )
    .await;
    c.send(&Packet::PubRel(Ack::new(pkid(202)))).await;
    c.wait_for(
        "PUBCOMP 202",
        |p| matches!(p, Packet::PubComp(a) if a.pkid.get() == 202),
    )
    .await;
    for i in 0..4 {
        let p = c.expect_publish("batched publish").await;
        assert_eq!(p.topic.to_string(), format!("frag/batch/{i}"));
    }
    c.expect_no_publish("four batched publishes, four deliveries")
        .await;
}

/// The broker batches many deliveries per write; whatever it puts in each WebSocket message,
/// the stream decodes cleanly, complete and in order.
#[tokio::test]
async fn burst_of_deliveries_decodes_cleanly() {
    let broker = Broker::start();
    let mut sub = WsMqtt::connect(&broker, V5, "ws-burst-sub").await;
    sub.subscribe("burst/#", QoS::AtLeastOnce).await;
    let mut tcp = TcpClient::connect(broker.mqtt_addr(), "tcp-burst-pub").await;
    for i in 0..200 {
        tcp.publish(
            "burst/t",
            rumqttc::QoS::AtLeastOnce,
            false,
            format!("m{i:03}").as_bytes(),
        )
        .await;
    }
    tcp.publish("burst/t", rumqttc::QoS::AtLeastOnce, false, b"end")
        .await;
    let mut seen = Vec::new();
    loop {
        let p = sub.expect_publish("burst").await;
        if text(&p) == "end" {
            break;
        }
        seen.push(text(&p));
    }
    let expected: Vec<String> = (0..200).map(|i| format!("m{i:03}")).collect();
    assert_eq!(seen, expected, "burst in order and complete");
}
