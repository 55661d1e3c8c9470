//! The stateful MQTT-SN target: three client slots (fixed client ids, so sessions resume and
//! are taken over) drive real [`Channel`]s on one real bus, on simulated time, the way the
//! driver does (a CONNECT for a connected client id goes to a new channel that takes the
//! session over; the session opens when the channel asks). The input is a program: CONNECT with
//! the will handshake, raw datagrams, structured PUBLISH (short, predefined and registered
//! topic ids, QoS −1 to 2), SUBSCRIBE/UNSUBSCRIBE, REGISTER and REGACK, acks, sleep and wake-up,
//! will updates, server-side publishes and clock steps.
//!
//! Checked after every step, for every channel:
//! - every outbound packet re-encodes and re-decodes to itself;
//! - a new QoS 1/2 PUBLISH never reuses a message id in flight; a DUP resend or a PUBREL names
//!   an id in the matching stage; the engine's window equals the model's and holds at most one
//!   message (docs/mqtt-sn.md §2.10); a resumed session resends what it had in flight;
//! - at the end, every QoS 1/2 message routed to an exact-topic subscription reaches its
//!   subscriber while the session lives (each slot reconnects, registers and acknowledges
//!   everything), unless the client refused a REGISTER for it.

use super::assert_round_trip;
use crate::codec::{
    rc, Connect, Flags, Packet, Publish, SnQos, SubTopic, Subscribe, TopicIdType, WillTopic,
};
use crate::registry::Predefined;
use crate::settings::MqttSnSettings;
use crate::Channel;
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::fuzzing::{open_session, run, runtime, Harness, Input};
use switchyard_bus::{BusConfig, BusHandle, ControlEvent, OpenSession};
use switchyard_core::{CloseReason, Message, QoS, TopicName};

const SLOTS: usize = 3;
/// Topic names: one needing REGISTER, a short name, a registered-on-subscribe name, the
/// predefined topic, a deep one.
const TOPICS: [&str; 5] = ["a", "ab", "a/b", "pre/one", "x/y/z"];
const FILTERS: [&str; 8] = ["a", "ab", "a/b", "pre/one", "x/y/z", "a/#", "+/b", "#"];
const PREDEFINED_ID: u16 = 1;
const MAX_OPS: usize = 400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Ack,
    Rec,
    Comp,
}

struct Conn {
    ch: Channel,
}

struct Slot {
    client_id: String,
    conn: Option<Conn>,
    inflight: Vec<(u16, Stage)>,
    awaiting: HashSet<u16>,
    subs: HashMap<&'static str, QoS>,
    expected: BTreeSet<u64>,
    seen: HashSet<u64>,
    /// The client refused a REGISTER: deliveries on that topic are dropped by design.
    lossy: bool,
    /// Topic ids the gateway assigned (client REGISTER, SUBSCRIBE by name) in this session.
    registered: Vec<u16>,
}

impl Slot {
    fn new(i: usize) -> Self {
        Slot {
            client_id: format!("s{i}"),
            conn: None,
            inflight: Vec::new(),
            awaiting: HashSet::new(),
            subs: HashMap::new(),
            expected: BTreeSet::new(),
            seen: HashSet::new(),
            lossy: false,
            registered: Vec::new(),
        }
    }

    fn reset_session(&mut self) {
        self.inflight.clear();
        self.awaiting.clear();
        self.subs.clear();
        self.expected.clear();
        self.seen.clear();
        self.lossy = false;
        self.registered.clear();
    }

    fn outbound(&mut self, p: &Packet) {
        assert_round_trip(p);
        match p {
            Packet::Publish(p) => {
                if let Some(tag) = tag_of(&p.data) {
                    self.seen.insert(tag);
                }
                if !matches!(p.flags.qos, SnQos::Q1 | SnQos::Q2) {
                    assert_eq!(p.msg_id, 0, "QoS 0 PUBLISH with a message id");
                    return;
                }
                let id = p.msg_id;
                assert_ne!(id, 0, "QoS 1/2 PUBLISH without a message id");
                let pos = self.inflight.iter().position(|(i, _)| *i == id);
                if p.flags.dup {
                    let stage = pos.map(|i| self.inflight[i].1);
                    assert!(
                        matches!(stage, Some(Stage::Ack | Stage::Rec)),
                        "DUP PUBLISH {id} not awaiting PUBACK/PUBREC: {stage:?}"
                    );
                } else {
                    assert!(pos.is_none(), "message id {id} reused while in flight");
                    let stage = if p.flags.qos == SnQos::Q1 {
                        Stage::Ack
                    } else {
                        Stage::Rec
                    };
                    self.inflight.push((id, stage));
                }
            }
            Packet::PubRel { msg_id } => {
                let stage = self.inflight.iter().find(|(i, _)| i == msg_id).map(|e| e.1);
                assert_eq!(stage, Some(Stage::Comp), "PUBREL {msg_id} not after PUBREC");
            }
            Packet::RegAck { topic_id, rc, .. } if *rc == 0 => self.registered.push(*topic_id),
            Packet::SubAck { topic_id, rc, .. } if *rc == 0 && *topic_id != 0 => {
                self.registered.push(*topic_id)
            }
            _ => {}
        }
    }

    /// Mirrors what the engine does with a packet from a connected client.
    fn inbound(&mut self, p: &Packet, reregisters: bool) {
        let find = |s: &Self, id: u16| s.inflight.iter().position(|(i, _)| *i == id);
        match p {
            Packet::PubAck { msg_id, rc, .. } => {
                if *rc == rc::INVALID_TOPIC_ID && reregisters {
                    return;
                }
                if let Some(i) = find(self, *msg_id) {
                    if self.inflight[i].1 == Stage::Ack {
                        self.inflight.remove(i);
                    }
                }
            }
            Packet::PubRec { msg_id } => {
                if let Some(i) = find(self, *msg_id) {
                    if self.inflight[i].1 == Stage::Rec {
                        self.inflight[i].1 = Stage::Comp;
                    }
                }
            }
            Packet::PubComp { msg_id } => {
                if let Some(i) = find(self, *msg_id) {
                    if self.inflight[i].1 == Stage::Comp {
                        self.inflight.remove(i);
                    }
                }
            }
            Packet::PubRel { msg_id } => {
                self.awaiting.remove(msg_id);
            }
            Packet::Publish(p) if p.flags.qos == SnQos::Q2 => {
                self.awaiting.insert(p.msg_id);
            }
            Packet::RegAck { rc, .. } if *rc != 0 && *rc != rc::CONGESTION => self.lossy = true,
            Packet::Subscribe(s) | Packet::Unsubscribe(s) => {
                // A raw (un)subscribe may change what is tracked: stop tracking it.
                if let SubTopic::Name(n) = &s.topic {
                    self.subs.retain(|t, _| t.as_bytes() != &n[..]);
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

fn tagged(tag: u64) -> Bytes {
    let mut v = b"T".to_vec();
    v.extend_from_slice(&tag.to_be_bytes());
    Bytes::from(v)
}

fn sn_qos(input: &mut Input<'_>) -> SnQos {
    match input.u8() % 4 {
        0 => SnQos::Q0,
        1 => SnQos::Q1,
        2 => SnQos::Q2,
        _ => SnQos::Minus1,
    }
}

struct World {
    rt: tokio::runtime::Runtime,
    bus: BusHandle,
    settings: Arc<MqttSnSettings>,
    slots: Vec<Slot>,
    now: Instant,
    next_tag: u64,
}

impl World {
    fn new(input: &mut Input<'_>) -> Self {
        let settings = MqttSnSettings {
            predefined: Arc::new(Predefined::new([(PREDEFINED_ID, "pre/one".to_owned())])),
            retry_interval: Duration::from_secs(1 + u64::from(input.u8() % 20)),
            max_retries: u32::from(input.u8() % 4),
            subs_resume: input.bool(),
            ..MqttSnSettings::default()
        };
        World {
            rt: runtime(),
            bus: BusHandle::new(BusConfig {
                sys_client_connected: false,
                sys_client_disconnected: false,
                max_mqueue_len: 10_000,
                ..BusConfig::default()
            }),
            settings: Arc::new(settings),
            slots: (0..SLOTS).map(Slot::new).collect(),
            now: Instant::now(),
            next_tag: 1,
        }
    }

    fn peer(i: usize, moved: bool) -> SocketAddr {
        let port = 40000 + i as u16 + if moved { 100 } else { 0 };
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn new_conn(&self, i: usize) -> Conn {
        let ch = Channel::new(
            self.bus.clone(),
            self.settings.clone(),
            Self::peer(i, false),
            self.now,
        );
        Conn { ch }
    }

    fn connect_packet(&self, i: usize, input: &mut Input<'_>, clean: Option<bool>) -> Connect {
        let flags = input.u8();
        Connect {
            flags: Flags {
                clean_session: clean.unwrap_or(flags & 1 != 0),
                will: flags & 2 != 0,
                ..Flags::default()
            },
            protocol_id: 1,
            duration: match flags >> 2 & 3 {
                0 => 0,
                1 => 5,
                2 => 60,
                _ => input.u16(),
            },
            client_id: Bytes::copy_from_slice(self.slots[i].client_id.as_bytes()),
        }
    }

    /// Hands `p` to `conn` (of slot `i`, outside the slot), opening the session if it asks.
    /// Returns the connection unless it was opened and stored in the slot.
    fn feed(&mut self, i: usize, mut conn: Conn, p: Packet, moved: bool) -> Option<Conn> {
        if conn.ch.is_connected() {
            let reregisters = match (&p, &conn.ch.inflight_topic) {
                (Packet::PubAck { msg_id, .. }, Some((m, name))) => {
                    m == msg_id && self.settings.predefined.id(name).is_none()
                }
                _ => false,
            };
            self.slots[i].inbound(&p, reregisters);
        }
        conn.ch.handle_packet(p, Self::peer(i, moved), self.now);
        match conn.ch.take_open_request() {
            Some(req) => {
                self.open(i, conn, req);
                None
            }
            None => Some(conn),
        }
    }

    /// Opens the session `conn` asked for, serving takeovers of the live channels; the new
    /// connection then replaces whatever slot `i` held.
    fn open(&mut self, i: usize, mut conn: Conn, req: OpenSession) {
        let slots = &mut self.slots;
        let opened = open_session(&self.rt, &self.bus, req, || {
            for s in slots.iter_mut() {
                let event = s.conn.as_ref().and_then(|c| c.ch.control());
                if event.and_then(|e| e.try_recv()) != Some(ControlEvent::Takeover) {
                    continue;
                }
                if let Some(mut old) = s.conn.take() {
                    old.ch.fail(CloseReason::Takeover, false);
                    for p in old.ch.take_outbound() {
                        s.outbound(&p);
                    }
                    old.ch.finish();
                }
            }
        });
        if let Some(mut old) = self.slots[i].conn.take() {
            // A channel still in its handshake has no session to hand over.
            old.ch.fail(CloseReason::Takeover, false);
            old.ch.finish();
        }
        let slot = &mut self.slots[i];
        match opened {
            Ok(opened) => {
                if !opened.present {
                    slot.reset_session();
                }
                conn.ch.on_session_opened(opened, self.now);
                let out = conn.ch.take_outbound();
                assert_eq!(out.first(), Some(&Packet::ConnAck { rc: 0 }));
                let registers = out.iter().any(|p| matches!(p, Packet::Register { .. }));
                let resent: Vec<u16> = out
                    .iter()
                    .filter_map(|p| match p {
                        Packet::Publish(p) => Some(p.msg_id),
                        Packet::PubRel { msg_id } => Some(*msg_id),
                        _ => None,
                    })
                    .collect();
                let want: Vec<u16> = slot.inflight.iter().map(|e| e.0).collect();
                if !registers {
                    assert_eq!(resent, want, "resume does not resend what was in flight");
                }
                for p in &out {
                    if let Packet::Publish(p) = p {
                        assert!(p.flags.dup, "a resend without DUP");
                    }
                    slot.outbound(p);
                }
                slot.conn = Some(conn);
            }
            Err(e) => {
                conn.ch.on_session_failed(&e);
                for p in conn.ch.take_outbound() {
                    assert_round_trip(&p);
                }
                conn.ch.finish();
            }
        }
    }

    /// A datagram from slot `i`'s client to its channel (a CONNECT to a live client id goes to
    /// a new channel, as the driver routes it).
    fn send(&mut self, i: usize, p: Packet, moved: bool) -> Vec<Packet> {
        let conn = match (&p, self.slots[i].conn.take()) {
            (Packet::Connect(_), Some(old)) if old.ch.is_connected() => {
                self.slots[i].conn = Some(old);
                self.new_conn(i)
            }
            (_, Some(c)) => c,
            (Packet::Connect(_), None) => self.new_conn(i),
            // The listener answers connectionless datagrams itself.
            (_, None) => return Vec::new(),
        };
        if let Some(conn) = self.feed(i, conn, p, moved) {
            if conn.ch.is_connected() || self.slots[i].conn.is_none() {
                if let Some(mut old) = self.slots[i].conn.replace(conn) {
                    old.ch.fail(CloseReason::Takeover, false);
                    old.ch.finish();
                }
            } else {
                // A new channel mid-handshake while the old one lives: the harness completes
                // handshakes in the same step, so this one is abandoned.
                let mut conn = conn;
                conn.ch.fail(CloseReason::PeerClosed, false);
                conn.ch.finish();
            }
        }
        self.collect(i)
    }

    fn collect(&mut self, i: usize) -> Vec<Packet> {
        let slot = &mut self.slots[i];
        let Some(conn) = slot.conn.as_mut() else {
            return Vec::new();
        };
        let out = conn.ch.take_outbound();
        for p in &out {
            slot.outbound(p);
        }
        let slot = &mut self.slots[i];
        if let Some(s) = slot.conn.as_ref().and_then(|c| c.ch.session()) {
            let len = s.qos.inflight_len();
            assert_eq!(len, slot.inflight.len(), "window and model disagree");
            assert!(len <= 1, "{len} messages in flight to an MQTT-SN client");
        }
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

    fn expect(&mut self, topic: &str, qos: QoS, tag: u64) {
        for s in &mut self.slots {
            if s.subs
                .get(topic)
                .is_some_and(|g| qos.min(*g) != QoS::AtMostOnce)
            {
                s.expected.insert(tag);
            }
        }
    }

    fn will_handshake(&mut self, i: usize, input: &mut Input<'_>) {
        let wt = WillTopic {
            flags: Flags {
                qos: sn_qos(input),
                ..Flags::default()
            },
            topic: Bytes::from_static(b"will/t"),
        };
        self.send(i, Packet::WillTopic(Some(wt)), false);
        self.send(
            i,
            Packet::WillMsg {
                msg: Bytes::from_static(b"bye"),
            },
            false,
        );
    }

    fn misc(&mut self, i: usize, input: &mut Input<'_>) {
        match input.u8() % 8 {
            0 => {
                self.now += input.step();
                self.bus.reap_expired(self.now);
                for j in 0..SLOTS {
                    if let Some(c) = self.slots[j].conn.as_mut() {
                        c.ch.handle_tick(self.now);
                    }
                    self.collect(j);
                }
            }
            1 => {
                let duration = match input.u8() % 3 {
                    0 => None,
                    1 => Some(0),
                    _ => Some(1 + u16::from(input.u8())),
                };
                self.send(i, Packet::Disconnect { duration }, false);
            }
            2 => {
                if let Some(mut c) = self.slots[i].conn.take() {
                    c.ch.fail(CloseReason::PeerClosed, false);
                    for p in c.ch.take_outbound() {
                        assert_round_trip(&p);
                    }
                    c.ch.finish();
                }
            }
            3 => {
                let client_id = match input.u8() % 3 {
                    0 => None,
                    1 => Some(Bytes::copy_from_slice(self.slots[i].client_id.as_bytes())),
                    _ => Some(Bytes::from_static(b"someone-else")),
                };
                self.send(i, Packet::PingReq { client_id }, input.u8() % 8 == 0);
            }
            4 => {
                let w = input.bool().then(|| WillTopic {
                    flags: Flags::default(),
                    topic: Bytes::from_static(input.pick(&["w2", "a/#"]).as_bytes()),
                });
                self.send(i, Packet::WillTopicUpd(w), false);
            }
            5 => {
                let msg = Bytes::copy_from_slice(input.bytes(8));
                self.send(i, Packet::WillMsgUpd { msg }, false);
            }
            6 => {
                // Takeover: CONNECT again from the same client id, resuming or not.
                let c = self.connect_packet(i, input, None);
                let will = c.flags.will;
                self.send(i, Packet::Connect(c), true);
                if will {
                    self.will_handshake(i, input);
                }
            }
            _ => {
                let p = Packet::SearchGw { radius: 0 };
                self.send(i, p, false);
            }
        }
    }

    fn client_publish(&mut self, i: usize, input: &mut Input<'_>) {
        let (kind, topic_id, name): (TopicIdType, u16, Option<&str>) = match input.u8() % 4 {
            0 => (TopicIdType::Short, u16::from_be_bytes(*b"ab"), Some("ab")),
            1 => (TopicIdType::Predefined, PREDEFINED_ID, Some("pre/one")),
            2 => {
                let reg = &self.slots[i].registered;
                let id = if reg.is_empty() {
                    1025
                } else {
                    reg[input.below(reg.len())]
                };
                (TopicIdType::Normal, id, None)
            }
            _ => (TopicIdType::Normal, input.u16() % 1030, None),
        };
        let qos = sn_qos(input);
        let msg_id = match qos {
            SnQos::Q0 | SnQos::Minus1 => 0,
            _ => 1 + input.u16() % 8,
        };
        self.next_tag += 1;
        let tag = self.next_tag;
        let p = Publish {
            flags: Flags {
                dup: input.u8() % 4 == 0,
                qos,
                retain: input.u8() % 4 == 0,
                topic_id_type: kind,
                ..Flags::default()
            },
            topic_id,
            msg_id,
            data: tagged(tag),
        };
        let slot = &self.slots[i];
        let routable = qos == SnQos::Q1 || qos == SnQos::Q2 && !slot.awaiting.contains(&msg_id);
        let connected = slot.conn.as_ref().is_some_and(|c| c.ch.is_connected());
        let out = self.send(i, Packet::Publish(p), false);
        let acked = out.iter().any(|p| match p {
            Packet::PubAck { msg_id: m, rc, .. } => *m == msg_id && *rc == 0,
            Packet::PubRec { msg_id: m } => *m == msg_id,
            _ => false,
        });
        if let (true, true, true, Some(name)) = (routable, connected, acked, name) {
            if self.slots[i].conn.is_some() {
                self.expect(name, qos.to_qos(), tag);
            }
        }
    }

    fn drain(&mut self) {
        for i in 0..SLOTS {
            if self.slots[i].expected.is_empty() {
                continue;
            }
            let awake = self.slots[i]
                .conn
                .as_ref()
                .is_some_and(|c| c.ch.is_connected() && !c.ch.is_asleep());
            if !awake {
                let c = Connect {
                    flags: Flags::default(),
                    protocol_id: 1,
                    duration: 0,
                    client_id: Bytes::copy_from_slice(self.slots[i].client_id.as_bytes()),
                };
                self.send(i, Packet::Connect(c), false);
            }
        }
        for _ in 0..64 {
            let mut any = false;
            for i in 0..SLOTS {
                let Some(c) = self.slots[i].conn.as_mut() else {
                    continue;
                };
                c.ch.pull_deliveries(self.now);
                let out = self.collect(i);
                any |= !out.is_empty();
                // The REGISTER in flight (sent now or in an earlier step) is accepted.
                let mut replies: Vec<Packet> = self.slots[i]
                    .conn
                    .as_ref()
                    .and_then(|c| c.ch.reg_inflight.as_ref())
                    .map(|r| Packet::RegAck {
                        topic_id: r.topic_id,
                        msg_id: r.msg_id,
                        rc: 0,
                    })
                    .into_iter()
                    .collect();
                replies.extend(
                    self.slots[i]
                        .inflight
                        .iter()
                        .map(|(id, stage)| match stage {
                            Stage::Ack => Packet::PubAck {
                                topic_id: 0,
                                msg_id: *id,
                                rc: 0,
                            },
                            Stage::Rec => Packet::PubRec { msg_id: *id },
                            Stage::Comp => Packet::PubComp { msg_id: *id },
                        }),
                );
                for r in replies {
                    any = true;
                    self.send(i, r, false);
                }
            }
            if !any {
                break;
            }
        }
        for s in &self.slots {
            let live = s.conn.as_ref().is_some_and(|c| c.ch.is_connected());
            if !live || s.lossy {
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
                // CONNECT; with the will flag the handshake goes on in later steps, or at once.
                let c = self.connect_packet(i, input, None);
                let will = c.flags.will;
                let at_once = input.bool();
                self.send(i, Packet::Connect(c), false);
                if will && at_once {
                    self.will_handshake(i, input);
                }
            }
            2 => {
                let topic = *input.pick(&["w", "a/b", "a/#", ""]);
                let p = if topic.is_empty() {
                    Packet::WillTopic(None)
                } else {
                    Packet::WillTopic(Some(WillTopic {
                        flags: Flags {
                            qos: sn_qos(input),
                            retain: input.bool(),
                            ..Flags::default()
                        },
                        topic: Bytes::from_static(topic.as_bytes()),
                    }))
                };
                self.send(i, p, false);
            }
            3 => {
                let msg = Bytes::copy_from_slice(input.bytes(8));
                self.send(i, Packet::WillMsg { msg }, false);
            }
            4 | 5 => {
                let raw = Bytes::copy_from_slice(input.bytes(120));
                if let Ok(mut p) = crate::codec::decode(&raw) {
                    if let Packet::Connect(c) = &mut p {
                        // The driver routes a CONNECT by its client id: keep it in this slot.
                        c.client_id = Bytes::copy_from_slice(self.slots[i].client_id.as_bytes());
                    }
                    let moved = input.u8() % 8 == 0;
                    self.send(i, p, moved);
                }
            }
            6 | 7 => self.client_publish(i, input),
            8 => {
                let s = Subscribe {
                    flags: Flags {
                        qos: sn_qos(input),
                        ..Flags::default()
                    },
                    msg_id: input.u16(),
                    topic: match input.u8() % 4 {
                        0 => SubTopic::Predefined(PREDEFINED_ID),
                        1 => SubTopic::Short(*b"ab"),
                        _ => SubTopic::Name(Bytes::from_static(input.pick(&FILTERS).as_bytes())),
                    },
                };
                let name: Option<&'static str> = match &s.topic {
                    SubTopic::Predefined(_) => Some("pre/one"),
                    SubTopic::Short(_) => Some("ab"),
                    SubTopic::Name(n) => TOPICS.iter().copied().find(|t| t.as_bytes() == &n[..]),
                    SubTopic::Reserved(_) => None,
                };
                let granted = s.flags.qos.to_qos();
                let msg_id = s.msg_id;
                let out = self.send(i, Packet::Subscribe(s), false);
                let ok = out
                    .iter()
                    .any(|p| matches!(p, Packet::SubAck { msg_id: m, rc: 0, .. } if *m == msg_id));
                if let (true, Some(name)) = (ok && self.slots[i].conn.is_some(), name) {
                    self.slots[i].subs.insert(name, granted);
                }
            }
            9 => {
                let s = Subscribe {
                    flags: Flags::default(),
                    msg_id: input.u16(),
                    topic: SubTopic::Name(Bytes::from_static(input.pick(&FILTERS).as_bytes())),
                };
                if let SubTopic::Name(n) = &s.topic {
                    self.slots[i].subs.retain(|t, _| t.as_bytes() != &n[..]);
                }
                self.send(i, Packet::Unsubscribe(s), false);
            }
            10 | 11 => {
                let slot = &self.slots[i];
                let raw = input.u16();
                let msg_id = if raw & 0x8000 == 0 && !slot.inflight.is_empty() {
                    slot.inflight[usize::from(raw) % slot.inflight.len()].0
                } else {
                    raw % 8
                };
                let code = *input.pick(&[0, 0, 0, rc::INVALID_TOPIC_ID, rc::NOT_SUPPORTED]);
                let p = match input.u8() % 4 {
                    0 => Packet::PubAck {
                        topic_id: input.u16() % 4,
                        msg_id,
                        rc: code,
                    },
                    1 => Packet::PubRec { msg_id },
                    2 => Packet::PubRel { msg_id },
                    _ => Packet::PubComp { msg_id },
                };
                self.send(i, p, false);
            }
            12 => {
                let pending = self.slots[i]
                    .conn
                    .as_ref()
                    .and_then(|c| c.ch.reg_inflight.as_ref())
                    .map(|r| (r.topic_id, r.msg_id));
                let (topic_id, msg_id) = match (pending, input.bool()) {
                    (Some(p), true) => p,
                    _ => (input.u16() % 1030, input.u16() % 8),
                };
                let code = *input.pick(&[0, 0, 0, rc::CONGESTION, rc::NOT_SUPPORTED]);
                let p = Packet::RegAck {
                    topic_id,
                    msg_id,
                    rc: code,
                };
                self.send(i, p, false);
            }
            13 => {
                let name = *input.pick(&["a", "a/b", "x/y/z", "pre/one", "a/+", ""]);
                let p = Packet::Register {
                    topic_id: 0,
                    msg_id: input.u16(),
                    topic_name: Bytes::from_static(name.as_bytes()),
                };
                self.send(i, p, false);
            }
            14 => self.misc(i, input),
            _ => {
                let topic = *input.pick(&TOPICS);
                let qos = input.qos();
                self.next_tag += 1;
                let tag = self.next_tag;
                if let Ok(t) = TopicName::new(topic) {
                    self.expect(topic, qos, tag);
                    self.bus
                        .publish(Message::new(t, tagged(tag), qos, input.bool()));
                }
            }
        }
    }

    fn after_op(&mut self) {
        for i in 0..SLOTS {
            if let Some(c) = self.slots[i].conn.as_mut() {
                c.ch.pull_deliveries(self.now);
            }
            self.collect(i);
        }
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

/// The stateful MQTT-SN channel target (see the module header).
pub fn channel(data: &[u8]) {
    run(data, MAX_OPS, World::new);
}
