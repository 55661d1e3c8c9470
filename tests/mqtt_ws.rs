//! MQTT over WebSocket (`[listeners.ws.default]`, path "/mqtt", subprotocol "mqtt"), with a
//! hand-written RFC 6455 client: the handshake, masked binary frames, and MQTT packets that do
//! not line up with frames (ARCHITECTURE.md habit 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::raw::{parse, publish, subscribe, Connect, Got, Raw, CONNACK, PUBLISH, SUBACK};
use common::Broker;

const WAIT: Duration = Duration::from_secs(5);
/// RFC 6455 §1.3's sample key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

struct Ws {
    stream: TcpStream,
    /// Bytes read from the socket not yet parsed as frames.
    raw: Vec<u8>,
    /// Payload bytes of the binary frames received so far, not yet parsed as MQTT.
    mqtt: Vec<u8>,
    closed: bool,
}

fn ws_addr(broker: &Broker) -> SocketAddr {
    broker.listener("mqtt:ws:default")
}

impl Ws {
    /// Performs the upgrade on `path`; returns the HTTP response head and the connection.
    fn handshake(addr: SocketAddr, path: &str) -> (String, Ws) {
        let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect ws listener");
        stream.set_nodelay(true).ok();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: mqtt\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).unwrap();
        let mut ws = Ws {
            stream,
            raw: Vec::new(),
            mqtt: Vec::new(),
            closed: false,
        };
        let deadline = Instant::now() + WAIT;
        let head_end = loop {
            if let Some(i) = ws.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !ws.fill(deadline) {
                break ws.raw.len();
            }
        };
        let head = String::from_utf8_lossy(&ws.raw[..head_end]).into_owned();
        ws.raw.drain(..head_end);
        (head, ws)
    }

    /// Upgrades on "/mqtt" and checks the 101 response.
    fn open(addr: SocketAddr) -> Ws {
        let (head, ws) = Ws::handshake(addr, "/mqtt");
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused:\n{head}");
        let lower = head.to_lowercase();
        assert!(
            lower.contains(&format!("sec-websocket-accept: {}", ACCEPT.to_lowercase())),
            "wrong or missing Sec-WebSocket-Accept:\n{head}"
        );
        assert!(
            lower.contains("sec-websocket-protocol: mqtt"),
            "the server must select the mqtt subprotocol:\n{head}"
        );
        ws
    }

    /// Reads more bytes; false on close or deadline.
    fn fill(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || self.closed {
            return false;
        }
        self.stream.set_read_timeout(Some(left)).ok();
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.raw.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// Sends one masked binary frame (RFC 6455 §5.3: client frames are masked).
    fn send_frame(&mut self, payload: &[u8]) {
        self.send_raw_frame(0x82, payload, true);
    }

    fn send_raw_frame(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut f = vec![first];
        let m = if masked { 0x80 } else { 0 };
        if payload.len() < 126 {
            f.push(m | payload.len() as u8);
        } else {
            f.push(m | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        if masked {
            let key = [0x12, 0x34, 0x56, 0x78];
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            f.extend_from_slice(payload);
        }
        let _ = self.stream.write_all(&f);
    }

    /// Moves whole frames from `raw` into `mqtt`; answers nothing (tests do not ping).
    fn decode_frames(&mut self) {
        loop {
            if self.raw.len() < 2 {
                return;
            }
            let opcode = self.raw[0] & 0x0F;
            assert_eq!(
                self.raw[1] & 0x80,
                0,
                "server frames must not be masked (RFC 6455 §5.1)"
            );
            let (len, hdr) = match self.raw[1] & 0x7F {
                126 if self.raw.len() >= 4 => {
                    (u16::from_be_bytes([self.raw[2], self.raw[3]]) as usize, 4)
                }
                127 if self.raw.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&self.raw[2..10]);
                    (u64::from_be_bytes(b) as usize, 10)
                }
                126 | 127 => return,
                n => (n as usize, 2),
            };
            if self.raw.len() < hdr + len {
                return;
            }
            let payload: Vec<u8> = self.raw[hdr..hdr + len].to_vec();
            self.raw.drain(..hdr + len);
            match opcode {
                0x0 | 0x2 => self.mqtt.extend_from_slice(&payload),
                0x8 => self.closed = true,
                0x9 | 0xA => {}
                other => panic!("unexpected WebSocket opcode {other:#x} (MQTT uses binary frames)"),
            }
        }
    }

    /// The next MQTT packet carried in binary frames.
    fn read_packet(&mut self, within: Duration) -> Got {
        let deadline = Instant::now() + within;
        loop {
            self.decode_frames();
            if let Some((p, used)) = parse(&self.mqtt) {
                self.mqtt.drain(..used);
                return p;
            }
            if self.closed {
                return Got::Closed;
            }
            if !self.fill(deadline) {
                return if self.closed {
                    Got::Closed
                } else {
                    Got::Timeout
                };
            }
        }
    }

    fn connect(addr: SocketAddr, id: &str) -> Ws {
        let mut ws = Ws::open(addr);
        ws.send_frame(&Connect::v311(id).encode());
        match ws.read_packet(WAIT) {
            Got::Packet(CONNACK, body) => assert_eq!(body, vec![0, 0], "CONNACK over WebSocket"),
            other => panic!("expected CONNACK over WebSocket, got {other:?}"),
        }
        ws
    }
}

#[test]
fn websocket_client_talks_to_tcp_client() {
    let broker = Broker::start();
    let mut ws = Ws::connect(ws_addr(&broker), "ws-client");
    ws.send_frame(&subscribe(1, "ws/in", 0));
    assert_eq!(ws.read_packet(WAIT), Got::Packet(SUBACK, vec![0, 1, 0]));

    let mut tcp = Raw::connect(broker.mqtt_addr(), "tcp-client");
    tcp.subscribe(1, "ws/out", 0);
    tcp.send(&publish("ws/in", 0, 0, b"tcp -> ws"));
    match ws.read_packet(WAIT) {
        Got::Packet(h, body) if h & 0xF0 == PUBLISH => {
            let (_, topic, _, payload) = common::raw::split_publish(h, &body);
            assert_eq!(
                (topic.as_str(), payload.as_slice()),
                ("ws/in", &b"tcp -> ws"[..])
            );
        }
        other => panic!("expected PUBLISH over WebSocket, got {other:?}"),
    }
    ws.send_frame(&publish("ws/out", 0, 0, b"ws -> tcp"));
    let (_, topic, payload) = tcp.expect_publish("from the WebSocket client");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("ws/out", &b"ws -> tcp"[..])
    );
}

/// MQTT packets split across frames, and several packets in one frame, decode the same as on
/// TCP (MQTT-6.0.0-2: the receiver must not assume packets are aligned on frame boundaries).
#[test]
fn packets_need_not_align_with_frames() {
    let broker = Broker::start();
    let mut ws = Ws::open(ws_addr(&broker));
    let connect = Connect::v311("ws-split").encode();
    let (a, b) = connect.split_at(5);
    ws.send_frame(a);
    // Deliberate, not a wait for the broker (which answers nothing to half a CONNECT): the
    // pause makes the broker most likely read the first frame on its own, so it must keep the
    // incomplete packet buffered until the next frame instead of getting both in one read.
    std::thread::sleep(Duration::from_millis(50));
    ws.send_frame(b);
    assert_eq!(
        ws.read_packet(WAIT),
        Got::Packet(CONNACK, vec![0, 0]),
        "CONNACK"
    );

    // SUBSCRIBE and a PUBLISH to the same topic in one frame, the PUBLISH's tail in the next.
    let mut batch = subscribe(1, "ws/split", 0);
    let p = publish("ws/split", 0, 0, b"split payload");
    batch.extend_from_slice(&p[..6]);
    ws.send_frame(&batch);
    ws.send_frame(&p[6..]);
    assert_eq!(ws.read_packet(WAIT), Got::Packet(SUBACK, vec![0, 1, 0]));
    match ws.read_packet(WAIT) {
        Got::Packet(h, body) if h & 0xF0 == PUBLISH => {
            let (_, topic, _, payload) = common::raw::split_publish(h, &body);
            assert_eq!(
                (topic.as_str(), payload.as_slice()),
                ("ws/split", &b"split payload"[..])
            );
        }
        other => panic!("expected own PUBLISH back, got {other:?}"),
    }
}

/// RFC 6455 §5.1: a server must close a connection that sends an unmasked frame.
#[test]
fn unmasked_client_frame_closes_connection() {
    let broker = Broker::start();
    let mut ws = Ws::connect(ws_addr(&broker), "ws-unmasked");
    ws.send_raw_frame(0x82, &[0xC0, 0x00], false); // PINGREQ, unmasked
    let got = ws.read_packet(WAIT);
    assert!(
        matches!(got, Got::Closed),
        "an unmasked client frame must close the connection, got {got:?}"
    );
}

#[test]
fn wrong_path_is_not_upgraded() {
    let broker = Broker::start();
    let (head, _ws) = Ws::handshake(ws_addr(&broker), "/not-mqtt");
    assert!(
        !head.starts_with("HTTP/1.1 101"),
        "upgrade accepted on a wrong path:\n{head}"
    );
}
