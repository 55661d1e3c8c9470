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
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::fuzzing::slots::{
    settle, tag_of, tagged, ModelConn, SessionModel, Slot, Slots, Stage,
};
use switchyard_bus::fuzzing::{open_session, run, Harness, Input};
use switchyard_bus::{BusConfig, BusHandle, ControlEvent, OpenSession};
use switchyard_core::CloseReason;

const SLOTS: usize = 3;
/// Topic names: one needing REGISTER, a short name, a registered-on-subscribe name, the
/// predefined topic, a deep one.
const TOPICS: [&str; 5] = ["a", "ab", "a/b", "pre/one", "x/y/z"];
const FILTERS: [&str; 8] = ["a", "ab", "a/b", "pre/one", "x/y/z", "a/#", "+/b", "#"];
const PREDEFINED_ID: u16 = 1;
const MAX_OPS: usize = 400;

struct Conn {
    ch: Channel,
}

impl ModelConn for Conn {
    type Packet = Packet;
    /// Topic ids the gateway assigned (client REGISTER, SUBSCRIBE by name) in this session.
    type Extra = Vec<u16>;

    switchyard_bus::model_conn_forwarders!(ch);

    fn observe(&self, p: &Packet, model: &mut SessionModel, registered: &mut Vec<u16>) {
        assert_round_trip(p);
        match p {
            Packet::Publish(p) => {
                let (qos, dup) = (p.flags.qos.to_qos(), p.flags.dup);
                model.server_publish(tag_of(&p.data), qos, p.msg_id, dup);
            }
            Packet::PubRel { msg_id } => {
                let stage = model.stage(*msg_id);
                assert_eq!(stage, Some(Stage::Comp), "PUBREL {msg_id} not after PUBREC");
            }
            Packet::RegAck { topic_id, rc, .. } if *rc == 0 => registered.push(*topic_id),
            Packet::SubAck { topic_id, rc, .. } if *rc == 0 && *topic_id != 0 => {
                registered.push(*topic_id)
            }
            _ => {}
        }
    }
}

/// Mirrors what the engine does with a packet from a connected client.
fn inbound(model: &mut SessionModel, p: &Packet, reregisters: bool) {
    match p {
        Packet::PubAck { msg_id, rc, .. } => {
            if *rc == rc::INVALID_TOPIC_ID && reregisters {
                return;
            }
            model.client_ack(*msg_id, Stage::Ack, true);
        }
        Packet::PubRec { msg_id } => model.client_ack(*msg_id, Stage::Rec, true),
        Packet::PubComp { msg_id } => model.client_ack(*msg_id, Stage::Comp, true),
        Packet::PubRel { msg_id } => model.client_qos2(*msg_id, false),
        Packet::Publish(p) if p.flags.qos == SnQos::Q2 => model.client_qos2(p.msg_id, true),
        Packet::RegAck { rc, .. } if *rc != 0 && *rc != rc::CONGESTION => model.lossy = true,
        Packet::Subscribe(s) | Packet::Unsubscribe(s) => {
            // A raw (un)subscribe may change what is tracked: stop tracking it.
            if let SubTopic::Name(n) = &s.topic {
                model.untrack(n);
            }
        }
        _ => {}
    }
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
    w: Slots<Conn>,
    settings: Arc<MqttSnSettings>,
}

impl World {
    fn new(input: &mut Input<'_>, rt: Arc<tokio::runtime::Runtime>) -> Self {
        let settings = MqttSnSettings {
            predefined: Arc::new(Predefined::new([(PREDEFINED_ID, "pre/one".to_owned())])),
            retry_interval: Duration::from_secs(1 + u64::from(input.u8() % 20)),
            max_retries: u32::from(input.u8() % 4),
            subs_resume: input.bool(),
            ..MqttSnSettings::default()
        };
        let bus = BusHandle::new(BusConfig {
            sys_client_connected: false,
            sys_client_disconnected: false,
            max_mqueue_len: 10_000,
            ..BusConfig::default()
        });
        World {
            w: Slots::new(rt, bus, "s", SLOTS),
            settings: Arc::new(settings),
        }
    }

    fn peer(i: usize, moved: bool) -> SocketAddr {
        let port = 40000 + i as u16 + if moved { 100 } else { 0 };
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn new_conn(&self, i: usize) -> Conn {
        let ch = Channel::new(
            self.w.bus.clone(),
            self.settings.clone(),
            Self::peer(i, false),
            self.w.now,
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
            client_id: Bytes::copy_from_slice(self.w.slots[i].client_id.as_bytes()),
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
            inbound(&mut self.w.slots[i].model, &p, reregisters);
        }
        conn.ch.handle_packet(p, Self::peer(i, moved), self.w.now);
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
        let slots = &mut self.w.slots;
        let opened = open_session(&self.w.rt, &self.w.bus, req, || {
            for s in slots.iter_mut() {
                let event = s.conn.as_ref().and_then(|c| c.ch.control());
                if event.and_then(|e| e.try_recv()) != Some(ControlEvent::Takeover) {
                    continue;
                }
                if let Some(mut old) = s.conn.take() {
                    old.ch.fail(CloseReason::Takeover, false);
                    let out = old.ch.take_outbound();
                    s.observe_all(&old, &out);
                    old.ch.finish();
                }
            }
        });
        if let Some(mut old) = self.w.slots[i].conn.take() {
            // A channel still in its handshake has no session to hand over.
            old.ch.fail(CloseReason::Takeover, false);
            old.ch.finish();
        }
        let now = self.w.now;
        let slot = &mut self.w.slots[i];
        match opened {
            Ok(opened) => {
                if !opened.present {
                    slot.model.reset();
                    slot.extra.clear();
                }
                // One message in flight at a time (docs/mqtt-sn.md §2.10).
                slot.model.bound = 1;
                conn.ch.on_session_opened(opened, now);
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
                let want: Vec<u16> = slot.model.owed().map(|e| e.0).collect();
                if !registers {
                    assert_eq!(resent, want, "resume does not resend what was in flight");
                }
                for p in &out {
                    if let Packet::Publish(p) = p {
                        assert!(p.flags.dup, "a resend without DUP");
                    }
                }
                slot.observe_all(&conn, &out);
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
        let conn = match (&p, self.w.slots[i].conn.take()) {
            (Packet::Connect(_), Some(old)) if old.ch.is_connected() => {
                self.w.slots[i].conn = Some(old);
                self.new_conn(i)
            }
            (_, Some(c)) => c,
            (Packet::Connect(_), None) => self.new_conn(i),
            // The listener answers connectionless datagrams itself.
            (_, None) => return Vec::new(),
        };
        if let Some(conn) = self.feed(i, conn, p, moved) {
            if conn.ch.is_connected() || self.w.slots[i].conn.is_none() {
                if let Some(mut old) = self.w.slots[i].conn.replace(conn) {
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
        self.w.collect(i)
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
            0 => self.w.step(input),
            1 => {
                let duration = match input.u8() % 3 {
                    0 => None,
                    1 => Some(0),
                    _ => Some(1 + u16::from(input.u8())),
                };
                self.send(i, Packet::Disconnect { duration }, false);
            }
            2 => {
                if let Some(mut c) = self.w.slots[i].conn.take() {
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
                    1 => Some(Bytes::copy_from_slice(self.w.slots[i].client_id.as_bytes())),
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
                let reg = &self.w.slots[i].extra;
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
        let tag = self.w.tag();
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
            data: Bytes::from(tagged(tag)),
        };
        let slot = &self.w.slots[i];
        let routable =
            qos == SnQos::Q1 || qos == SnQos::Q2 && !slot.model.awaiting.contains(&msg_id);
        let connected = slot.conn.as_ref().is_some_and(|c| c.ch.is_connected());
        let out = self.send(i, Packet::Publish(p), false);
        let acked = out.iter().any(|p| match p {
            Packet::PubAck { msg_id: m, rc, .. } => *m == msg_id && *rc == 0,
            Packet::PubRec { msg_id: m } => *m == msg_id,
            _ => false,
        });
        if let (true, true, true, Some(name)) = (routable, connected, acked, name) {
            if self.w.slots[i].conn.is_some() {
                self.w.expect(name, qos.to_qos(), tag);
            }
        }
    }

    fn drain(&mut self) {
        for i in 0..SLOTS {
            if self.w.slots[i].model.expected.is_empty() {
                continue;
            }
            let awake = self.w.slots[i]
                .conn
                .as_ref()
                .is_some_and(|c| c.ch.is_connected() && !c.ch.is_asleep());
            if !awake {
                let c = Connect {
                    flags: Flags::default(),
                    protocol_id: 1,
                    duration: 0,
                    client_id: Bytes::copy_from_slice(self.w.slots[i].client_id.as_bytes()),
                };
                self.send(i, Packet::Connect(c), false);
            }
        }
        settle(
            self,
            |w| &mut w.w,
            owed,
            |w, i, p| {
                w.send(i, p, false);
            },
        );
        self.w.assert_nothing_lost(|c| c.ch.is_connected());
    }
}

/// What slot `s`'s client answers to settle: the REGISTER in flight (sent now or in an earlier
/// step) is accepted, and everything in flight acknowledged at its stage.
fn owed(s: &Slot<Conn>) -> Vec<Packet> {
    let regack = s
        .conn
        .as_ref()
        .and_then(|c| c.ch.reg_inflight.as_ref())
        .map(|r| Packet::RegAck {
            topic_id: r.topic_id,
            msg_id: r.msg_id,
            rc: 0,
        });
    let acks = s.model.owed().map(|(msg_id, stage)| match stage {
        Stage::Ack => Packet::PubAck {
            topic_id: 0,
            msg_id,
            rc: 0,
        },
        Stage::Rec => Packet::PubRec { msg_id },
        Stage::Comp => Packet::PubComp { msg_id },
    });
    regack.into_iter().chain(acks).collect()
}

impl Harness for World {
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
                        c.client_id = Bytes::copy_from_slice(self.w.slots[i].client_id.as_bytes());
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
                if let (true, Some(name)) = (ok && self.w.slots[i].conn.is_some(), name) {
                    self.w.slots[i].model.subs.insert(name, granted);
                }
            }
            9 => {
                let s = Subscribe {
                    flags: Flags::default(),
                    msg_id: input.u16(),
                    topic: SubTopic::Name(Bytes::from_static(input.pick(&FILTERS).as_bytes())),
                };
                if let SubTopic::Name(n) = &s.topic {
                    self.w.slots[i].model.untrack(n);
                }
                self.send(i, Packet::Unsubscribe(s), false);
            }
            10 | 11 => {
                let slot = &self.w.slots[i];
                let raw = input.u16();
                let inflight = &slot.model.inflight;
                let msg_id = if raw & 0x8000 == 0 && !inflight.is_empty() {
                    inflight[usize::from(raw) % inflight.len()].0
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
                let pending = self.w.slots[i]
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
            _ => self.w.server_publish(&TOPICS, input),
        }
    }

    fn after_op(&mut self) {
        self.w.pull_all();
    }

    fn finish(&mut self) {
        self.drain();
        self.w.finish_all();
    }
}

/// The stateful MQTT-SN channel target (see the module header).
pub fn channel(data: &[u8]) {
    run(data, MAX_OPS, World::new);
}
