//! A message as it travels between nodes: a small versioned binary envelope, then the payload.
//!
//! Owns: encoding and decoding of [`Message`] for the cluster link. The topic travels in the
//! NATS subject, so it is not repeated here. Expiry travels as the time the message has already
//! spent on its first node, so the receiving node's clock (monotonic, unrelated) can go on from
//! there. A node refuses an envelope of a newer version rather than guessing.
//!
//! Every envelope names the node that sent it (a random id per process start) and its sequence
//! number there, because one node can receive the same message more than once: NATS delivers a
//! copy per matching subscription, and a topic can match several of a node's subjects (say
//! `t/+/x` and `t/#`). The receiver keeps the first copy ([`Dedup`]).
//!
//! Layout (all integers big-endian):
//! `version u8 | flags u8 | node u64 | seq u64 | age_ms u32 | timestamp_ms u64 | [origin] |
//! [properties] | payload`
//! flags: bits 0–1 QoS, bit 2 retain, bit 3 origin present, bit 4 properties present;
//! origin: `len u16, client id`; properties: `mask u8` (bit 0 payload format, 1 expiry,
//! 2 content type, 3 response topic, 4 correlation data, 5 user properties) and each present
//! one in that order, strings and bytes as `len u16, bytes`, user properties as `count u16`
//! then pairs.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use switchyard_core::{ByteString, ClientId, Message, Properties, QoS, TopicName};

/// The envelope version this node writes and reads.
pub const VERSION: u8 = 1;

/// Why an envelope was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// Shorter than its own fields say.
    #[error("truncated envelope")]
    Truncated,
    /// Written by a node with a newer format.
    #[error("envelope version {0}, this node reads {VERSION}")]
    Version(u8),
    /// QoS 3, or a string that is not UTF-8, or a client id or topic the core refuses.
    #[error("invalid envelope: {0}")]
    Invalid(&'static str),
}

const QOS_MASK: u8 = 0b11;
const RETAIN: u8 = 1 << 2;
const ORIGIN: u8 = 1 << 3;
const PROPS: u8 = 1 << 4;

/// Which node sent an envelope, and its number there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The sending node's id for this process start.
    pub node: u64,
    /// Counts up per message on the sending node.
    pub seq: u64,
}

/// The fixed part of an envelope.
const HEADER: usize = 1 + 1 + 8 + 8 + 4 + 8;

/// Encodes `msg` (everything but its topic) as `stamp`, `now` being this node's clock.
pub fn encode(msg: &Message, stamp: Stamp, now: Instant) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + 16 + msg.payload.len());
    b.put_u8(VERSION);
    let mut flags = msg.qos.as_u8() & QOS_MASK;
    if msg.retain {
        flags |= RETAIN;
    }
    if msg.origin.is_some() {
        flags |= ORIGIN;
    }
    let props = msg.properties.as_deref().filter(|p| !p.is_empty());
    if props.is_some() {
        flags |= PROPS;
    }
    b.put_u8(flags);
    b.put_u64(stamp.node);
    b.put_u64(stamp.seq);
    let age = now.saturating_duration_since(msg.received).as_millis();
    b.put_u32(u32::try_from(age).unwrap_or(u32::MAX));
    let ts = msg
        .timestamp
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    b.put_u64(ts);
    if let Some(o) = &msg.origin {
        put_str(&mut b, o.client_id.as_str());
    }
    if let Some(p) = props {
        let mut mask = 0u8;
        let present = [
            p.payload_format_indicator.is_some(),
            p.message_expiry_interval.is_some(),
            p.content_type.is_some(),
            p.response_topic.is_some(),
            p.correlation_data.is_some(),
            !p.user_properties.is_empty(),
        ];
        for (i, on) in present.iter().enumerate() {
            if *on {
                mask |= 1 << i;
            }
        }
        b.put_u8(mask);
        if let Some(v) = p.payload_format_indicator {
            b.put_u8(v);
        }
        if let Some(v) = p.message_expiry_interval {
            b.put_u32(v);
        }
        if let Some(v) = &p.content_type {
            put_str(&mut b, v);
        }
        if let Some(v) = &p.response_topic {
            put_str(&mut b, v);
        }
        if let Some(v) = &p.correlation_data {
            put_bytes(&mut b, v);
        }
        if !p.user_properties.is_empty() {
            let n = p.user_properties.len().min(usize::from(u16::MAX));
            b.put_u16(u16::try_from(n).unwrap_or(u16::MAX));
            for (k, v) in p.user_properties.iter().take(n) {
                put_str(&mut b, k);
                put_str(&mut b, v);
            }
        }
    }
    b.put_slice(&msg.payload);
    b.freeze()
}

/// Decodes an envelope for `topic` into a message received on this node at `now`, its origin
/// marked as another node's ([`switchyard_bus::remote_origin`]).
pub fn decode(
    topic: TopicName,
    mut buf: Bytes,
    now: Instant,
) -> Result<(Stamp, Message), WireError> {
    need(&buf, 1)?;
    let version = buf.get_u8();
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    need(&buf, HEADER - 1)?;
    let flags = buf.get_u8();
    let stamp = Stamp {
        node: buf.get_u64(),
        seq: buf.get_u64(),
    };
    let qos = QoS::try_from(flags & QOS_MASK).map_err(|_| WireError::Invalid("qos 3"))?;
    let age = Duration::from_millis(u64::from(buf.get_u32()));
    let ts = UNIX_EPOCH + Duration::from_millis(buf.get_u64());
    let origin = if flags & ORIGIN != 0 {
        let id = get_str(&mut buf)?;
        Some(switchyard_bus::remote_origin(ClientId::new(id)))
    } else {
        None
    };
    let properties = if flags & PROPS != 0 {
        need(&buf, 1)?;
        let mask = buf.get_u8();
        let mut p = Properties::default();
        if mask & 1 != 0 {
            need(&buf, 1)?;
            p.payload_format_indicator = Some(buf.get_u8());
        }
        if mask & 2 != 0 {
            need(&buf, 4)?;
            p.message_expiry_interval = Some(buf.get_u32());
        }
        if mask & 4 != 0 {
            p.content_type = Some(get_str(&mut buf)?);
        }
        if mask & 8 != 0 {
            p.response_topic = Some(get_str(&mut buf)?);
        }
        if mask & 16 != 0 {
            p.correlation_data = Some(get_bytes(&mut buf)?);
        }
        if mask & 32 != 0 {
            need(&buf, 2)?;
            let n = buf.get_u16();
            for _ in 0..n {
                let k = get_str(&mut buf)?;
                let v = get_str(&mut buf)?;
                p.user_properties.push((k, v));
            }
        }
        Some(Arc::new(p))
    } else {
        None
    };
    Ok((
        stamp,
        Message {
            topic,
            payload: buf,
            qos,
            retain: flags & RETAIN != 0,
            properties,
            origin,
            // Older than now by the time it spent on its first node, so expiry goes on from there.
            received: now.checked_sub(age).unwrap_or(now),
            timestamp: if ts > SystemTime::now() + Duration::from_secs(86_400 * 365 * 100) {
                SystemTime::now()
            } else {
                ts
            },
        },
    ))
}

/// How many sequence numbers below the highest seen a [`Dedup`] remembers per node: copies of
/// one message arrive within microseconds of each other, far closer than this.
const WINDOW: u64 = 4096;
/// Nodes remembered at once; a restarted node has a new id, so old ones are forgotten
/// (least recently heard from first).
const MAX_NODES: usize = 256;

/// Keeps the first copy of each message per sending node.
#[derive(Debug, Default)]
pub struct Dedup {
    nodes: std::collections::HashMap<u64, Window>,
    tick: u64,
}

#[derive(Debug)]
struct Window {
    /// Highest sequence number seen.
    max: u64,
    /// Bit i: `max - i` was seen.
    seen: Box<[u64; (WINDOW / 64) as usize]>,
    last_heard: u64,
}

impl Dedup {
    /// Whether `stamp` is the first copy of its message (a copy too old to judge counts as
    /// first: at-most-once between nodes would rather deliver it).
    pub fn first(&mut self, stamp: Stamp) -> bool {
        self.tick += 1;
        if !self.nodes.contains_key(&stamp.node) && self.nodes.len() >= MAX_NODES {
            if let Some(oldest) = self
                .nodes
                .iter()
                .min_by_key(|(_, w)| w.last_heard)
                .map(|(k, _)| *k)
            {
                self.nodes.remove(&oldest);
            }
        }
        let tick = self.tick;
        let w = self.nodes.entry(stamp.node).or_insert_with(|| Window {
            max: stamp.seq,
            seen: Box::new([0; (WINDOW / 64) as usize]),
            last_heard: tick,
        });
        w.last_heard = tick;
        if stamp.seq > w.max {
            w.shift(stamp.seq - w.max);
            w.max = stamp.seq;
        }
        let back = w.max - stamp.seq;
        if back >= WINDOW {
            return true;
        }
        let (word, bit) = ((back / 64) as usize, back % 64);
        let mask = 1u64 << bit;
        let was = w.seen[word] & mask != 0;
        w.seen[word] |= mask;
        !was
    }
}

impl Window {
    /// Moves the window up by `by` sequence numbers.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen.iter_mut().for_each(|x| *x = 0);
            return;
        }
        let words = (by / 64) as usize;
        let bits = by % 64;
        let n = self.seen.len();
        for i in (0..n).rev() {
            let src = i.checked_sub(words);
            let hi = src.map_or(0, |s| self.seen[s]);
            let lo = src
                .and_then(|s| s.checked_sub(1))
                .map_or(0, |s| self.seen[s]);
            self.seen[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }
}

fn need(buf: &Bytes, n: usize) -> Result<(), WireError> {
    if buf.remaining() < n {
        Err(WireError::Truncated)
    } else {
        Ok(())
    }
}

fn put_str(b: &mut BytesMut, s: &str) {
    put_bytes(b, s.as_bytes());
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    // MQTT strings and binary data are at most 65,535 bytes long, so this never truncates.
    let n = v.len().min(usize::from(u16::MAX));
    b.put_u16(u16::try_from(n).unwrap_or(u16::MAX));
    b.put_slice(&v[..n]);
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, WireError> {
    need(buf, 2)?;
    let n = usize::from(buf.get_u16());
    need(buf, n)?;
    Ok(buf.split_to(n))
}

fn get_str(buf: &mut Bytes) -> Result<ByteString, WireError> {
    let b = get_bytes(buf)?;
    ByteString::try_from(b).map_err(|_| WireError::Invalid("string is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(props: Option<Properties>, origin: Option<&str>) -> Message {
        let mut m = Message::new(
            TopicName::new("a/b").expect("topic"),
            Bytes::from_static(b"hello"),
            QoS::AtLeastOnce,
            true,
        );
        m.properties = props.map(Arc::new);
        m.origin = origin.map(|c| switchyard_bus::remote_origin(ClientId::new(c)));
        m
    }

    #[test]
    fn round_trip_keeps_everything_but_the_local_clock() {
        let props = Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(30),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
        };
        let m = message(Some(props.clone()), Some("dev-1"));
        let now = m.received + Duration::from_millis(1500);
        let stamp = Stamp { node: 7, seq: 42 };
        let bytes = encode(&m, stamp, now);
        let later = Instant::now() + Duration::from_secs(10);
        let (st, d) = decode(m.topic.clone(), bytes, later).expect("decodes");
        assert_eq!(st, stamp);
        assert_eq!(d.payload, m.payload);
        assert_eq!(d.qos, QoS::AtLeastOnce);
        assert!(d.retain);
        assert_eq!(d.properties.as_deref(), Some(&props));
        assert_eq!(
            d.origin.as_ref().map(|o| o.client_id.as_str()),
            Some("dev-1")
        );
        assert_eq!(
            d.origin.map(|o| o.session),
            Some(switchyard_bus::REMOTE_SESSION)
        );
        assert_eq!(later - d.received, Duration::from_millis(1500));
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).ok();
        assert_eq!(ms(d.timestamp), ms(m.timestamp));
    }

    #[test]
    fn bare_message_is_small() {
        let m = message(None, None);
        let bytes = encode(&m, Stamp { node: 1, seq: 1 }, m.received);
        assert_eq!(bytes.len(), HEADER + 5);
        let (_, d) = decode(m.topic.clone(), bytes, Instant::now()).expect("decodes");
        assert!(d.properties.is_none() && d.origin.is_none());
    }

    #[test]
    fn bad_envelopes_are_refused() {
        let t = TopicName::new("t").expect("topic");
        let now = Instant::now();
        assert_eq!(
            decode(t.clone(), Bytes::new(), now).err(),
            Some(WireError::Truncated)
        );
        let st = Stamp { node: 1, seq: 1 };
        let mut v = encode(&message(None, Some("c")), st, now).to_vec();
        v[0] = 9;
        assert_eq!(
            decode(t.clone(), Bytes::from(v.clone()), now).err(),
            Some(WireError::Version(9))
        );
        v[0] = VERSION;
        v[1] |= 3;
        assert!(matches!(
            decode(t.clone(), Bytes::from(v), now),
            Err(WireError::Invalid(_))
        ));
        // Origin length larger than what follows.
        let mut v = encode(&message(None, Some("c")), st, now).to_vec();
        v[HEADER] = 0xff;
        assert_eq!(
            decode(t, Bytes::from(v), now).err(),
            Some(WireError::Truncated)
        );
    }

    #[test]
    fn dedup_keeps_first_copies_only() {
        let mut d = Dedup::default();
        let s = |node, seq| Stamp { node, seq };
        assert!(d.first(s(1, 10)));
        assert!(!d.first(s(1, 10)));
        assert!(d.first(s(1, 12)));
        assert!(d.first(s(1, 11)), "a late first copy still counts");
        assert!(!d.first(s(1, 11)));
        assert!(d.first(s(2, 10)), "another node's numbers are its own");
        assert!(d.first(s(1, 10 + 70)));
        assert!(
            !d.first(s(1, 12)),
            "remembered across a word boundary shift"
        );
        assert!(d.first(s(1, 10 + 70 + WINDOW + 5)));
        assert!(d.first(s(1, 12)), "too old to judge: delivered");
    }

    proptest! {
        #[test]
        fn dedup_matches_a_set(seqs in prop::collection::vec(0u64..3000, 1..400)) {
            // Within the window, `first` is exactly "not seen before".
            let mut d = Dedup::default();
            let mut seen = std::collections::HashSet::new();
            for q in seqs {
                prop_assert_eq!(d.first(Stamp { node: 9, seq: q }), seen.insert(q), "seq {}", q);
            }
        }

        #[test]
        fn never_panics_on_any_bytes(b in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(TopicName::new("t").expect("topic"), Bytes::from(b), Instant::now());
        }
    }
}
