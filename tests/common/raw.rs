//! Hand-written MQTT 3.1/3.1.1 bytes over a blocking `TcpStream`, for cases a well-behaved
//! client library cannot produce (malformed, oversize, out-of-order packets).
//! Every read has a deadline.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Default bound for one expected packet.
pub const WAIT: Duration = Duration::from_secs(5);

pub const CONNECT: u8 = 0x10;
pub const CONNACK: u8 = 0x20;
pub const PUBLISH: u8 = 0x30;
pub const PUBACK: u8 = 0x40;
pub const PUBREC: u8 = 0x50;
pub const PUBREL: u8 = 0x62;
pub const PUBCOMP: u8 = 0x70;
pub const SUBSCRIBE: u8 = 0x82;
pub const SUBACK: u8 = 0x90;
pub const PINGREQ: u8 = 0xC0;
pub const PINGRESP: u8 = 0xD0;
pub const DISCONNECT: u8 = 0xE0;

/// The remaining-length varint (MQTT 2.2.3).
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return out;
        }
    }
}

/// A length-prefixed MQTT string.
pub fn mqtt_str(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// A packet: first byte, remaining length, body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// CONNECT fields; build with [`Connect::v311`] / [`Connect::v31`] and adjust.
#[derive(Clone, Debug)]
pub struct Connect {
    pub protocol_name: &'static [u8],
    pub level: u8,
    /// Raw connect flags; the will bits are added by `will`, nothing else is computed.
    pub flags: u8,
    pub keepalive: u16,
    pub client_id: Vec<u8>,
    pub will: Option<(String, Vec<u8>)>,
}

impl Connect {
    /// MQTT 3.1.1, clean session, keepalive 30 s.
    pub fn v311(client_id: &str) -> Connect {
        Connect {
            protocol_name: b"MQTT",
            level: 4,
            flags: 0x02,
            keepalive: 30,
            client_id: client_id.as_bytes().to_vec(),
            will: None,
        }
    }

    /// MQTT 3.1 ("MQIsdp", level 3), clean session, keepalive 30 s.
    pub fn v31(client_id: &str) -> Connect {
        Connect {
            protocol_name: b"MQIsdp",
            level: 3,
            ..Connect::v311(client_id)
        }
    }

    /// Adds a QoS 0, non-retained will.
    pub fn with_will(mut self, topic: &str, payload: &[u8]) -> Connect {
        self.will = Some((topic.to_owned(), payload.to_vec()));
        self
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut flags = self.flags;
        if self.will.is_some() {
            flags |= 0x04;
        }
        let mut body = mqtt_str(self.protocol_name);
        body.push(self.level);
        body.push(flags);
        body.extend_from_slice(&self.keepalive.to_be_bytes());
        body.extend(mqtt_str(&self.client_id));
        if let Some((topic, payload)) = &self.will {
            body.extend(mqtt_str(topic.as_bytes()));
            body.extend(mqtt_str(payload));
        }
        packet(CONNECT, &body)
    }
}

/// A PUBLISH; `qos` goes in the flags, a packet id is written for QoS > 0.
pub fn publish(topic: &str, qos: u8, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = mqtt_str(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(PUBLISH | (qos << 1), &body)
}

/// A SUBSCRIBE of one filter.
pub fn subscribe(pkid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    body.extend(mqtt_str(filter.as_bytes()));
    body.push(qos);
    packet(SUBSCRIBE, &body)
}

/// What a read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    Packet(u8, Vec<u8>),
    Closed,
    Timeout,
}

/// Packets as (first byte, body), in arrival order.
pub type Packets = Vec<(u8, Vec<u8>)>;

/// A raw connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Opens a TCP connection (no MQTT yet).
    pub fn open(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("TCP connect to the broker");
        stream.set_nodelay(true).ok();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Opens and completes a CONNECT/CONNACK with `connect`; panics unless accepted.
    pub fn connect_with(addr: SocketAddr, connect: &Connect) -> Raw {
        let mut raw = Raw::open(addr);
        raw.send(&connect.encode());
        match raw.read(WAIT) {
            Got::Packet(CONNACK, body) => {
                assert_eq!(body.len(), 2, "CONNACK remaining length must be 2");
                assert_eq!(
                    body[1], 0,
                    "CONNACK refused {connect:?}: return code {}",
                    body[1]
                );
            }
            other => panic!("expected CONNACK for {connect:?}, got {other:?}"),
        }
        raw
    }

    /// MQTT 3.1.1 clean-session connection.
    pub fn connect(addr: SocketAddr, client_id: &str) -> Raw {
        Self::connect_with(addr, &Connect::v311(client_id))
    }

    /// Writes bytes; errors (a peer that already closed) are ignored — the next read tells.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    /// Reads one packet within `within`.
    pub fn read(&mut self, within: Duration) -> Got {
        let deadline = Instant::now() + within;
        loop {
            if let Some((p, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return p;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Timeout;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Got::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Got::Closed, // reset
            }
        }
    }

    /// Reads until the broker closes the connection; returns the packets seen before the close,
    /// or `Err(packets)` if it was still open after `within`.
    pub fn wait_closed(&mut self, within: Duration) -> Result<Packets, Packets> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read(left) {
                Got::Closed => return Ok(seen),
                Got::Timeout => return Err(seen),
                Got::Packet(h, b) => seen.push((h, b)),
            }
        }
    }

    /// Panics unless the broker closes the connection within [`WAIT`]; returns packets seen.
    pub fn expect_closed(&mut self, why: &str) -> Packets {
        match self.wait_closed(WAIT) {
            Ok(seen) => seen,
            Err(seen) => panic!(
                "broker must close the connection ({why}) but it is still open after {WAIT:?}; \
                 packets received meanwhile: {seen:?}"
            ),
        }
    }

    /// Subscribes to one filter and checks the SUBACK grants `qos`.
    pub fn subscribe(&mut self, pkid: u16, filter: &str, qos: u8) {
        self.send(&subscribe(pkid, filter, qos));
        match self.read(WAIT) {
            Got::Packet(SUBACK, body) => {
                let mut expect = pkid.to_be_bytes().to_vec();
                expect.push(qos);
                assert_eq!(body, expect, "SUBACK for {filter:?}");
            }
            other => panic!("expected SUBACK for {filter:?}, got {other:?}"),
        }
    }

    /// Reads the next PUBLISH as (flags, topic, payload), acknowledging nothing.
    pub fn expect_publish(&mut self, what: &str) -> (u8, String, Vec<u8>) {
        match self.read(WAIT) {
            Got::Packet(h, body) if h & 0xF0 == PUBLISH => {
                let (flags, topic, _pkid, payload) = split_publish(h, &body);
                (flags, topic, payload)
            }
            other => panic!("expected a PUBLISH ({what}), got {other:?}"),
        }
    }
}

/// Splits a PUBLISH into (flags, topic, packet id, payload).
pub fn split_publish(first: u8, body: &[u8]) -> (u8, String, Option<u16>, Vec<u8>) {
    let qos = (first >> 1) & 3;
    let tlen = u16::from_be_bytes([body[0], body[1]]) as usize;
    let topic = String::from_utf8_lossy(&body[2..2 + tlen]).into_owned();
    let mut rest = &body[2 + tlen..];
    let pkid = if qos > 0 {
        let id = u16::from_be_bytes([rest[0], rest[1]]);
        rest = &rest[2..];
        Some(id)
    } else {
        None
    };
    (first & 0x0F, topic, pkid, rest.to_vec())
}

/// One whole packet from the front of `buf`, with the bytes it used.
pub fn parse(buf: &[u8]) -> Option<(Got, usize)> {
    let first = *buf.first()?;
    let mut len = 0usize;
    let mut mult = 1usize;
    let mut i = 1;
    loop {
        let b = *buf.get(i)?;
        len += (b & 0x7F) as usize * mult;
        mult *= 128;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            panic!("broker sent a malformed remaining length: {:?}", &buf[..i]);
        }
    }
    if buf.len() < i + len {
        return None;
    }
    Some((Got::Packet(first, buf[i..i + len].to_vec()), i + len))
}

/// Checks the broker still routes: a fresh subscriber and publisher do a QoS 0 round trip.
pub fn assert_round_trip(addr: SocketAddr, tag: &str) {
    let mut sub = Raw::connect(addr, &format!("{tag}-rt-sub"));
    sub.subscribe(1, &format!("{tag}/alive"), 0);
    let mut publisher = Raw::connect(addr, &format!("{tag}-rt-pub"));
    publisher.send(&publish(&format!("{tag}/alive"), 0, 0, b"still serving"));
    let (_, topic, payload) = sub.expect_publish("round trip after the bad client");
    assert_eq!(topic, format!("{tag}/alive"));
    assert_eq!(payload, b"still serving");
}
