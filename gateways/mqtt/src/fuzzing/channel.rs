//! The stateful MQTT target: three client slots (fixed client ids, so sessions resume and take
//! over) drive real [`Channel`]s on one real bus, on simulated time. The input is a program:
//! CONNECT with fuzzed version and properties, raw bytes decoded as packets at the
//! connection's version, structured PUBLISH/SUBSCRIBE/UNSUBSCRIBE/acks, takeovers, closes,
//! server-side publishes and clock steps (with ticks and session expiry).
//!
//! Checked after every step, for every connection:
//! - every outbound packet re-encodes and re-decodes to itself at the connection's version;
//! - CONNACK's session-present is what the bus said, and a resumed session first resends exactly
//!   what it had in flight, in order (PUBLISH with DUP, or PUBREL);
//! - a new QoS 1/2 PUBLISH never reuses a packet id in flight; a DUP resend or a PUBREL names
//!   an id in the matching stage; the engine's window equals the model's and stays within the
//!   largest window the session was given;
//! - at the end, every QoS 1/2 message routed to an exact-topic subscription (from a server
//!   publish, or a client publish the broker acknowledged) reaches its subscriber while the
//!   session lives: the harness reconnects every slot, acknowledges everything, and looks for it.

use super::assert_round_trip;
use crate::channel::{Channel, ConnectDecision};
use crate::codec::{
    decode_packet, Ack, Connect, LastWill, Packet, ProtocolVersion, Publish, Subscribe,
    SubscriptionOptions, Unsubscribe,
};
use crate::settings::MqttSettings;
use bytes::BytesMut;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::fuzzing::{open_session, run, runtime, Harness, Input};
use switchyard_bus::{BusConfig, BusHandle, ControlEvent};
use switchyard_core::{CloseReason, Message, QoS, TopicName};

const SLOTS: usize = 3;
/// Topic names the structured operations use (exact subscriptions to them are tracked).
const TOPICS: [&str; 5] = ["a", "a/b", "b", "a/b/c", "$SYS/x"];
/// Filters the structured SUBSCRIBE uses.
const FILTERS: [&str; 9] = [
    "a",
    "a/b",
    "b",
    "a/b/c",
    "a/+",
    "#",
    "+/b",
    "$share/g/a",
    "b/#",
];
const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V31,
    ProtocolVersion::V311,
    ProtocolVersion::V5,
];
const MAX_OPS: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Ack,
    Rec,
    Comp,
}

struct Conn {
    ch: Channel,
    version: ProtocolVersion,
}

/// One client id and what the harness knows about its session.
struct Slot {
    client_id: String,
    conn: Option<Conn>,
    version: ProtocolVersion,
    /// Outgoing QoS 1/2 in flight in the session, in send order.
    inflight: Vec<(u16, Stage)>,
    /// The largest window the session was given.
    bound: usize,
    /// Incoming QoS 2 ids that may await PUBREL (a superset of the engine's).
    awaiting: HashSet<u16>,
    /// Exact-topic subscriptions the broker granted, with their QoS.
    subs: HashMap<&'static str, QoS>,
    /// Message tags that must reach this session.
    expected: BTreeSet<u64>,
    /// Message tags seen in PUBLISHes to this session.
    seen: HashSet<u64>,
    /// A connection of this session announced a small Maximum Packet Size: drops are allowed.
    lossy: bool,
}

impl Slot {
    fn new(i: usize) -> Self {
        Slot {
            client_id: format!("c{i}"),
            conn: None,
            version: ProtocolVersion::V311,
            inflight: Vec::new(),
            bound: 0,
            awaiting: HashSet::new(),
            subs: HashMap::new(),
            expected: BTreeSet::new(),
            seen: HashSet::new(),
            lossy: false,
        }
    }

    /// A new session: forget everything about the old one.
    fn reset_session(&mut self) {
        self.inflight.clear();
        self.bound = 0;
        self.awaiting.clear();
        self.subs.clear();
        self.expected.clear();
        self.seen.clear();
        self.lossy = false;
    }

    /// Checks one packet the broker sent and updates the model.
    fn outbound(&mut self, p: &Packet, version: ProtocolVersion) {
        assert_round_trip(p, version);
        match p {
            Packet::Publish(p) => {
                if let Some(tag) = tag_of(&p.payload) {
                    self.seen.insert(tag);
                }
                let Some(id) = p.pkid.map(NonZeroU16::get) else {
                    assert_eq!(p.qos, QoS::AtMostOnce, "QoS 1/2 PUBLISH without an id");
                    return;
                };
                let pos = self.inflight.iter().position(|(i, _)| *i == id);
                if p.dup {
                    let stage = pos.map(|i| self.inflight[i].1);
                    assert!(
                        matches!(stage, Some(Stage::Ack | Stage::Rec)),
                        "DUP PUBLISH {id} not awaiting PUBACK/PUBREC: {stage:?}"
                    );
                } else {
                    assert!(pos.is_none(), "packet id {id} reused while in flight");
                    let stage = if p.qos == QoS::AtLeastOnce {
                        Stage::Ack
                    } else {
                        Stage::Rec
                    };
                    self.inflight.push((id, stage));
                }
            }
            Packet::PubRel(a) => {
                let id = a.pkid.get();
                let stage = self.inflight.iter().find(|(i, _)| *i == id).map(|e| e.1);
                // PUBREL answers a PUBREC: for an id released (stage Comp), or one not in flight
                // (reason 0x92 in MQTT 5); never for an id still awaiting PUBACK or PUBREC.
                assert!(
                    matches!(stage, None | Some(Stage::Comp)),
                    "PUBREL {id} for an id in stage {stage:?}"
                );
            }
            _ => {}
        }
    }

    /// Mirrors an acknowledgement the client sends into the model (as the engine applies it).
    fn inbound(&mut self, p: &Packet) {
        let find = |s: &Self, id: u16| s.inflight.iter().position(|(i, _)| *i == id);
        match p {
            Packet::PubAck(a) => {
                if let Some(i) = find(self, a.pkid.get()) {
                    if self.inflight[i].1 == Stage::Ack {
                        self.inflight.remove(i);
                    }
                }
            }
            Packet::PubRec(a) => {
                if let Some(i) = find(self, a.pkid.get()) {
                    if self.inflight[i].1 == Stage::Rec {
                        if a.reason_code < 0x80 {
                            self.inflight[i].1 = Stage::Comp;
                        } else {
                            self.inflight.remove(i);
                        }
                    }
                }
            }
            Packet::PubComp(a) => {
                if let Some(i) = find(self, a.pkid.get()) {
                    if self.inflight[i].1 == Stage::Comp {
                        self.inflight.remove(i);
                    }
                }
            }
            Packet::PubRel(a) => {
                self.awaiting.remove(&a.pkid.get());
            }
            Packet::Publish(p) if p.qos == QoS::ExactlyOnce => {
                if let Some(id) = p.pkid {
                    self.awaiting.insert(id.get());
                }
            }
            Packet::Subscribe(s) => {
                for (f, _) in &s.filters {
                    self.subs.retain(|t, _| *t != &**f);
                }
            }
            Packet::Unsubscribe(u) => {
                for f in &u.filters {
                    self.subs.retain(|t, _| *t != &**f);
                }
            }
            _ => {}
        }
    }
}

fn tag_of(payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(b"T")?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

fn tagged(tag: u64) -> Vec<u8> {
    let mut v = b"T".to_vec();
    v.extend_from_slice(&tag.to_be_bytes());
    v
}

fn pkid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

struct World {
    rt: tokio::runtime::Runtime,
    bus: BusHandle,
    settings: Arc<MqttSettings>,
    slots: Vec<Slot>,
    now: Instant,
    next_tag: u64,
}

impl World {
    fn new(input: &mut Input<'_>) -> Self {
        let mut s = MqttSettings {
            max_inflight: *input.pick(&[1, 2, 3, 8, 32]),
            retry_interval: match input.u8() % 3 {
                0 => Some(Duration::from_secs(1 + u64::from(input.u8() % 20))),
                _ => None,
            },
            max_awaiting_rel: usize::from(input.u8() % 4),
            max_topic_alias: u16::from(input.u8() % 4),
            ..MqttSettings::default()
        };
        let flags = input.u8();
        if flags & 1 != 0 {
            s.server_keepalive = Some(u16::from(input.u8()));
        }
        if flags & 2 != 0 {
            s.max_keepalive = Some(1 + u16::from(input.u8()));
        }
        s.retain_available = flags & 4 == 0;
        s.wildcard_subscription = flags & 8 == 0;
        s.shared_subscription = flags & 16 == 0;
        if flags & 32 != 0 {
            s.max_qos_allowed = QoS::AtLeastOnce;
        }
        let bus = BusHandle::new(BusConfig {
            sys_client_connected: input.bool(),
            sys_client_disconnected: false,
            max_mqueue_len: 10_000,
            ..BusConfig::default()
        });
        World {
            rt: runtime(),
            bus,
            settings: Arc::new(s),
            slots: (0..SLOTS).map(Slot::new).collect(),
            now: Instant::now(),
            next_tag: 1,
        }
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// A CONNECT from slot `i` (clean start and properties from the input).
    fn connect_packet(&mut self, i: usize, input: &mut Input<'_>, resume: bool) -> Connect {
        let version = *input.pick(&VERSIONS);
        let mut c = Connect::new(version, self.slots[i].client_id.as_str());
        let flags = input.u8();
        c.clean_start = !resume && flags & 1 != 0;
        c.keep_alive = match flags >> 1 & 3 {
            0 => 0,
            1 => 5,
            2 => 60,
            _ => input.u16(),
        };
        if flags & 8 != 0 {
            let topic = *input.pick(&["w", "a", "a/#", ""]);
            c.will = Some(LastWill {
                topic: topic.into(),
                payload: bytes::Bytes::from_static(b"will"),
                qos: input.qos(),
                retain: input.bool(),
                properties: Default::default(),
            });
            if version.is_v5() {
                if let Some(w) = c.will.as_mut() {
                    w.properties.will_delay_interval = Some(u32::from(input.u8() % 4));
                }
            }
        }
        if version.is_v5() {
            let p = &mut c.properties;
            p.session_expiry_interval = match input.u8() % 4 {
                0 => None,
                1 => Some(0),
                2 => Some(60),
                _ => Some(u32::MAX),
            };
            if flags & 16 != 0 {
                p.receive_maximum = Some(1 + u16::from(input.u8() % 4));
            }
            if flags & 32 != 0 {
                p.maximum_packet_size = Some(*input.pick(&[20u32, 64, 100_000]));
            }
            if flags & 64 != 0 {
                p.topic_alias_maximum = Some(u16::from(input.u8() % 4));
            }
            if flags & 128 != 0 {
                p.request_problem_information = Some(input.u8() % 2);
            }
        }
        c
    }

    /// Opens a connection for slot `i`, taking over the live one if there is one.
    fn connect(&mut self, i: usize, c: Connect) {
        let version = c.protocol;
        let window = c
            .properties
            .receive_maximum
            .unwrap_or(u16::MAX)
            .min(self.settings.max_inflight);
        let small_max = c.properties.maximum_packet_size.is_some_and(|m| m < 1000);
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000 + i as u16));
        let mut ch = Channel::new(self.bus.clone(), self.settings.clone(), peer, self.now);
        let req = match ch.handle_connect(c, self.now) {
            ConnectDecision::Open(req) => req,
            ConnectDecision::Refused => {
                let mut conn = Conn { ch, version };
                let out = conn.ch.take_outbound();
                for p in &out {
                    assert_round_trip(p, version);
                }
                conn.ch.finish();
                return;
            }
        };
        let mut old = self.slots[i].conn.take();
        let opened = {
            let old = &mut old;
            open_session(&self.rt, &self.bus, req, || {
                if let Some(o) = old.as_mut() {
                    if o.ch.control().and_then(|c| c.try_recv()) == Some(ControlEvent::Takeover) {
                        o.ch.fail(CloseReason::Takeover);
                        let out = o.ch.take_outbound();
                        for p in &out {
                            assert_round_trip(p, o.version);
                        }
                        o.ch.finish();
                        *old = None;
                    }
                }
            })
        };
        if let Some(mut o) = old {
            // Not taken over (cannot happen with one client id): close it the ordinary way.
            o.ch.fail(CloseReason::Takeover);
            o.ch.finish();
        }
        let slot = &mut self.slots[i];
        slot.version = version;
        let mut conn = Conn { ch, version };
        match opened {
            Ok(opened) => {
                let present = opened.present;
                if !present {
                    slot.reset_session();
                }
                slot.bound = slot.bound.max(usize::from(window.max(1)));
                slot.lossy |= small_max;
                conn.ch.on_session_opened(opened, self.now);
                let out = conn.ch.take_outbound();
                match out.first() {
                    Some(Packet::ConnAck(a)) => {
                        assert_eq!(a.code, 0);
                        assert_eq!(a.session_present, present);
                    }
                    other => panic!("no CONNACK first: {other:?}"),
                }
                // A resumed session resends exactly what it had in flight, in order.
                let resent: Vec<(u16, bool)> = out[1..]
                    .iter()
                    .filter_map(|p| match p {
                        Packet::Publish(p) => p.pkid.map(|id| (id.get(), false)),
                        Packet::PubRel(a) => Some((a.pkid.get(), true)),
                        _ => None,
                    })
                    .collect();
                let want: Vec<(u16, bool)> = slot
                    .inflight
                    .iter()
                    .map(|(id, st)| (*id, *st == Stage::Comp))
                    .collect();
                assert_eq!(resent, want, "resume does not resend what was in flight");
                for p in &out {
                    if let Packet::Publish(p) = p {
                        assert!(p.dup, "a resend without DUP: {p:?}");
                        if let Some(t) = tag_of(&p.payload) {
                            slot.seen.insert(t);
                        }
                    }
                    assert_round_trip(p, version);
                }
            }
            Err(e) => {
                conn.ch.on_session_failed(&e);
                let _ = conn.ch.take_outbound();
                conn.ch.finish();
                return;
            }
        }
        slot.conn = Some(conn);
    }

    /// Feeds one packet from slot `i`'s client; returns what the broker answered.
    fn send(&mut self, i: usize, p: Packet) -> Vec<Packet> {
        let slot = &mut self.slots[i];
        if slot.conn.is_none() {
            return Vec::new();
        }
        slot.inbound(&p);
        if let Some(conn) = slot.conn.as_mut() {
            conn.ch.handle_packet(p, self.now);
        }
        self.collect(i)
    }

    /// Takes and checks what slot `i`'s connection produced; closes it if it decided to.
    fn collect(&mut self, i: usize) -> Vec<Packet> {
        let slot = &mut self.slots[i];
        let Some(conn) = slot.conn.as_mut() else {
            return Vec::new();
        };
        let out = conn.ch.take_outbound();
        let version = conn.version;
        for p in &out {
            slot.outbound(p, version);
        }
        self.check(i);
        let slot = &mut self.slots[i];
        if slot
            .conn
            .as_ref()
            .is_some_and(|c| c.ch.close_reason().is_some())
        {
            if let Some(mut c) = slot.conn.take() {
                c.ch.finish();
            }
        }
        out
    }

    fn check(&self, i: usize) {
        let slot = &self.slots[i];
        let Some(session) = slot.conn.as_ref().and_then(|c| c.ch.session()) else {
            return;
        };
        let len = session.qos.inflight_len();
        assert_eq!(len, slot.inflight.len(), "window and model disagree");
        assert!(len <= slot.bound, "window {len} above {}", slot.bound);
    }

    fn pull(&mut self) {
        for i in 0..SLOTS {
            if let Some(c) = self.slots[i].conn.as_mut() {
                c.ch.pull_deliveries(self.now);
            }
            self.collect(i);
        }
    }

    /// Expects `tag`, published on `topic` at `qos`, at every session subscribed to exactly it.
    fn expect(&mut self, topic: &str, qos: QoS, tag: u64) {
        for s in &mut self.slots {
            if let Some(granted) = s.subs.get(topic) {
                if qos.min(*granted) != QoS::AtMostOnce {
                    s.expected.insert(tag);
                }
            }
        }
    }

    fn client_publish(&mut self, i: usize, input: &mut Input<'_>) {
        let Some(v5) = self.slots[i].conn.as_ref().map(|c| c.version.is_v5()) else {
            return;
        };
        let topic = *input.pick(&TOPICS);
        let qos = input.qos();
        let tag = self.tag();
        let mut p = Publish::new(topic, tagged(tag));
        p.qos = qos;
        p.retain = input.u8() % 4 == 0;
        let id = 1 + input.u16() % 8;
        if qos != QoS::AtMostOnce {
            p.pkid = Some(pkid(id));
            p.dup = input.u8() % 4 == 0;
        }
        let mut aliased = false;
        if v5 && input.u8() % 4 == 0 {
            p.properties.topic_alias = Some(1 + u16::from(input.u8() % 3));
            if input.bool() {
                p.topic = bytestring::ByteString::new();
                aliased = true;
            }
        }
        let slot = &self.slots[i];
        // A QoS 2 id already awaiting PUBREL is a duplicate, not routed again; a full
        // awaiting-rel set refuses it.
        let max_rel = self.settings.max_awaiting_rel;
        let routable = match qos {
            QoS::ExactlyOnce => {
                !slot.awaiting.contains(&id) && (max_rel == 0 || slot.awaiting.len() < max_rel)
            }
            _ => true,
        };
        let out = self.send(i, Packet::Publish(p));
        let acked = out.iter().any(|p| match p {
            Packet::PubAck(a) | Packet::PubRec(a) => a.pkid.get() == id && a.reason_code < 0x80,
            _ => false,
        });
        let open = self.slots[i].conn.is_some();
        if qos != QoS::AtMostOnce
            && acked
            && open
            && routable
            && !aliased
            && !topic.starts_with('$')
        {
            self.expect(topic, qos, tag);
        }
    }

    /// The end: every slot reconnects (resuming its session), acknowledges every delivery, and
    /// must have seen every message it was owed.
    fn drain(&mut self) {
        for i in 0..SLOTS {
            if self.slots[i].expected.is_empty() {
                continue;
            }
            if self.slots[i].conn.is_none() {
                let version = self.slots[i].version;
                let mut c = Connect::new(version, self.slots[i].client_id.as_str());
                c.clean_start = false;
                if version.is_v5() {
                    c.properties.session_expiry_interval = Some(60);
                }
                self.connect(i, c);
            }
        }
        for _ in 0..64 {
            let mut any = false;
            for i in 0..SLOTS {
                let Some(c) = self.slots[i].conn.as_mut() else {
                    continue;
                };
                c.ch.pull_deliveries(self.now);
                any |= !self.collect(i).is_empty();
                // Acknowledge everything in flight, each at its stage.
                let acks: Vec<Packet> = self.slots[i]
                    .inflight
                    .iter()
                    .map(|(id, stage)| {
                        let a = Ack::new(pkid(*id));
                        match stage {
                            Stage::Ack => Packet::PubAck(a),
                            Stage::Rec => Packet::PubRec(a),
                            Stage::Comp => Packet::PubComp(a),
                        }
                    })
                    .collect();
                for a in acks {
                    any = true;
                    self.send(i, a);
                }
            }
            if !any {
                break;
            }
        }
        for s in &self.slots {
            // Only a session that is still connected is known to have lived throughout.
            if s.conn.is_none() || s.lossy {
                continue;
            }
            let lost: Vec<&u64> = s.expected.iter().filter(|t| !s.seen.contains(t)).collect();
            assert!(lost.is_empty(), "{}: messages lost: {lost:?}", s.client_id);
        }
    }
}

impl Harness for World {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    fn op(&mut self, input: &mut Input<'_>) {
        let i = input.below(SLOTS);
        match input.u8() % 16 {
            0 | 1 => {
                if self.slots[i].conn.is_none() {
                    let c = self.connect_packet(i, input, false);
                    self.connect(i, c);
                }
            }
            2 => {
                // Takeover by (or reconnect of) the same client id.
                let resume = input.bool();
                let c = self.connect_packet(i, input, resume);
                self.connect(i, c);
            }
            3 | 4 => {
                let Some(version) = self.slots[i].conn.as_ref().map(|c| c.version) else {
                    return;
                };
                let mut buf = BytesMut::from(input.bytes(200));
                while let Ok(Some(p)) = decode_packet(&mut buf, version, 1 << 16) {
                    self.send(i, p);
                    if self.slots[i].conn.is_none() {
                        break;
                    }
                }
            }
            5..=7 => self.client_publish(i, input),
            8 => {
                let filter = *input.pick(&FILTERS);
                let qos = input.qos();
                let mut opts = SubscriptionOptions::new(qos);
                opts.retain_handling = input.u8() % 3;
                let id = 1 + input.u16() % 4;
                let sub = Subscribe::new(pkid(id), vec![(filter.into(), opts)]);
                let out = self.send(i, Packet::Subscribe(sub));
                let granted = out.iter().find_map(|p| match p {
                    Packet::SubAck(a) if a.pkid.get() == id => a.return_codes.first().copied(),
                    _ => None,
                });
                if let (Some(code), Some(t)) = (granted, TOPICS.iter().find(|t| **t == filter)) {
                    let slot = &mut self.slots[i];
                    if code < 0x80 && !t.starts_with('$') && slot.conn.is_some() {
                        slot.subs
                            .insert(t, QoS::try_from(code).unwrap_or(QoS::AtMostOnce));
                    }
                }
            }
            9 => {
                let filter = *input.pick(&FILTERS);
                let u = Unsubscribe::new(pkid(1 + input.u16() % 4), vec![filter.into()]);
                self.send(i, Packet::Unsubscribe(u));
            }
            10 | 11 => {
                let slot = &self.slots[i];
                let raw = input.u16();
                let id = if raw & 0x8000 == 0 && !slot.inflight.is_empty() {
                    slot.inflight[usize::from(raw) % slot.inflight.len()].0
                } else {
                    1 + raw % 8
                };
                let v5 = slot.conn.as_ref().is_some_and(|c| c.version.is_v5());
                let code = *input.pick(&[0, 0, 0, 0x10, 0x80, 0x92]);
                // MQTT 3.x acks carry no reason code.
                let code = if v5 { code } else { 0 };
                let ack = Ack::with_reason(pkid(id), code);
                let p = match input.u8() % 4 {
                    0 => Packet::PubAck(ack),
                    1 => Packet::PubRec(ack),
                    2 => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                };
                self.send(i, p);
            }
            12 => {
                self.now += input.step();
                self.bus.reap_expired(self.now);
                for j in 0..SLOTS {
                    if let Some(c) = self.slots[j].conn.as_mut() {
                        c.ch.handle_tick(self.now);
                    }
                    self.collect(j);
                }
            }
            13 => {
                // The server side publishes (another gateway, the rule engine, the API).
                let topic = *input.pick(&TOPICS);
                let qos = input.qos();
                let tag = self.tag();
                if let Ok(t) = TopicName::new(topic) {
                    self.expect(topic, qos, tag);
                    self.bus
                        .publish(Message::new(t, tagged(tag), qos, input.bool()));
                }
            }
            14 => {
                // The connection ends: DISCONNECT, a transport close, or a kick.
                let Some(mut c) = self.slots[i].conn.take() else {
                    return;
                };
                match input.u8() % 3 {
                    0 => {
                        let mut d = crate::codec::Disconnect::new(*input.pick(&[0, 4, 0x80]));
                        if c.version.is_v5() && input.bool() {
                            d.properties.session_expiry_interval = Some(u32::from(input.u8()));
                        }
                        c.ch.handle_packet(Packet::Disconnect(d), self.now);
                    }
                    1 => c.ch.fail(CloseReason::PeerClosed),
                    _ => c.ch.fail(CloseReason::Kicked),
                }
                let out = c.ch.take_outbound();
                for p in &out {
                    assert_round_trip(p, c.version);
                }
                c.ch.finish();
            }
            _ => {
                let p = if input.bool() {
                    Packet::PingReq
                } else {
                    Packet::PubRel(Ack::new(pkid(1 + input.u16() % 8)))
                };
                self.send(i, p);
            }
        }
    }

    fn after_op(&mut self) {
        self.pull();
    }

    fn finish(&mut self) {
        self.drain();
        for s in &mut self.slots {
            if let Some(mut c) = s.conn.take() {
                c.ch.finish();
            }
        }
    }
}

/// The stateful MQTT channel target (see the module header).
pub fn channel(data: &[u8]) {
    run(data, MAX_OPS, World::new);
}
