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
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::fuzzing::slots::{
    settle, tag_of, tagged, ModelConn, SessionModel, Slot, Slots, Stage,
};
use switchyard_bus::fuzzing::{open_session, run, Harness, Input};
use switchyard_bus::{BusConfig, BusHandle, ControlEvent};
use switchyard_core::{CloseReason, QoS};

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

struct Conn {
    ch: Channel,
    version: ProtocolVersion,
}

/// What a slot keeps besides the session model.
#[derive(Default)]
struct Extra {
    /// The version of the slot's latest connection (the final reconnect uses it).
    version: ProtocolVersion,
}

impl ModelConn for Conn {
    type Packet = Packet;
    type Extra = Extra;

    switchyard_bus::model_conn_forwarders!(ch);

    fn observe(&self, p: &Packet, model: &mut SessionModel, _: &mut Extra) {
        assert_round_trip(p, self.version);
        match p {
            Packet::Publish(p) => {
                let id = p.pkid.map_or(0, NonZeroU16::get);
                model.server_publish(tag_of(&p.payload), p.qos, id, p.dup);
            }
            Packet::PubRel(a) => {
                let id = a.pkid.get();
                let stage = model.stage(id);
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
}

/// Mirrors an acknowledgement the client sends into the model (as the engine applies it).
fn inbound(model: &mut SessionModel, p: &Packet) {
    match p {
        Packet::PubAck(a) => model.client_ack(a.pkid.get(), Stage::Ack, true),
        Packet::PubRec(a) => model.client_ack(a.pkid.get(), Stage::Rec, a.reason_code < 0x80),
        Packet::PubComp(a) => model.client_ack(a.pkid.get(), Stage::Comp, true),
        Packet::PubRel(a) => model.client_qos2(a.pkid.get(), false),
        Packet::Publish(p) if p.qos == QoS::ExactlyOnce => {
            if let Some(id) = p.pkid {
                model.client_qos2(id.get(), true);
            }
        }
        Packet::Subscribe(s) => {
            for (f, _) in &s.filters {
                model.untrack(f.as_bytes());
            }
        }
        Packet::Unsubscribe(u) => {
            for f in &u.filters {
                model.untrack(f.as_bytes());
            }
        }
        _ => {}
    }
}

fn pkid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

struct World {
    w: Slots<Conn>,
    settings: Arc<MqttSettings>,
}

impl World {
    fn new(input: &mut Input<'_>, rt: Arc<tokio::runtime::Runtime>) -> Self {
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
            w: Slots::new(rt, bus, "c", SLOTS),
            settings: Arc::new(s),
        }
    }

    /// A CONNECT from slot `i` (clean start and properties from the input).
    fn connect_packet(&mut self, i: usize, input: &mut Input<'_>, resume: bool) -> Connect {
        let version = *input.pick(&VERSIONS);
        let mut c = Connect::new(version, self.w.slots[i].client_id.as_str());
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
        let w = &mut self.w;
        let mut ch = Channel::new(w.bus.clone(), self.settings.clone(), peer, w.now);
        let req = match ch.handle_connect(c, w.now) {
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
        let mut old = w.slots[i].conn.take();
        let opened = {
            let old = &mut old;
            open_session(&w.rt, &w.bus, req, || {
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
        let now = w.now;
        let slot = &mut w.slots[i];
        slot.extra.version = version;
        let mut conn = Conn { ch, version };
        match opened {
            Ok(opened) => {
                let present = opened.present;
                let model = &mut slot.model;
                if !present {
                    model.reset();
                }
                model.bound = model.bound.max(usize::from(window.max(1)));
                model.lossy |= small_max;
                conn.ch.on_session_opened(opened, now);
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
                let want: Vec<(u16, bool)> = model
                    .owed()
                    .map(|(id, st)| (id, st == Stage::Comp))
                    .collect();
                assert_eq!(resent, want, "resume does not resend what was in flight");
                for p in &out {
                    if let Packet::Publish(p) = p {
                        assert!(p.dup, "a resend without DUP: {p:?}");
                        if let Some(t) = tag_of(&p.payload) {
                            model.seen.insert(t);
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
        let now = self.w.now;
        let slot = &mut self.w.slots[i];
        let Some(conn) = slot.conn.as_mut() else {
            return Vec::new();
        };
        inbound(&mut slot.model, &p);
        conn.ch.handle_packet(p, now);
        self.w.collect(i)
    }

    fn client_publish(&mut self, i: usize, input: &mut Input<'_>) {
        let Some(v5) = self.w.slots[i].conn.as_ref().map(|c| c.version.is_v5()) else {
            return;
        };
        let topic = *input.pick(&TOPICS);
        let qos = input.qos();
        let tag = self.w.tag();
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
        let awaiting = &self.w.slots[i].model.awaiting;
        // A QoS 2 id already awaiting PUBREL is a duplicate, not routed again; a full
        // awaiting-rel set refuses it.
        let max_rel = self.settings.max_awaiting_rel;
        let routable = match qos {
            QoS::ExactlyOnce => {
                !awaiting.contains(&id) && (max_rel == 0 || awaiting.len() < max_rel)
            }
            _ => true,
        };
        let out = self.send(i, Packet::Publish(p));
        let acked = out.iter().any(|p| match p {
            Packet::PubAck(a) | Packet::PubRec(a) => a.pkid.get() == id && a.reason_code < 0x80,
            _ => false,
        });
        let open = self.w.slots[i].conn.is_some();
        if qos != QoS::AtMostOnce
            && acked
            && open
            && routable
            && !aliased
            && !topic.starts_with('$')
        {
            self.w.expect(topic, qos, tag);
        }
    }

    /// The end: every slot reconnects (resuming its session), acknowledges every delivery, and
    /// must have seen every message it was owed.
    fn drain(&mut self) {
        for i in 0..SLOTS {
            let slot = &self.w.slots[i];
            if slot.model.expected.is_empty() || slot.conn.is_some() {
                continue;
            }
            let version = slot.extra.version;
            let mut c = Connect::new(version, slot.client_id.as_str());
            c.clean_start = false;
            if version.is_v5() {
                c.properties.session_expiry_interval = Some(60);
            }
            self.connect(i, c);
        }
        // Acknowledge everything in flight, each at its stage.
        settle(
            self,
            |w| &mut w.w,
            owed,
            |w, i, p| {
                w.send(i, p);
            },
        );
        self.w.assert_nothing_lost(|_| true);
    }
}

/// The acknowledgements slot `s`'s client owes, each at its stage.
fn owed(s: &Slot<Conn>) -> Vec<Packet> {
    s.model
        .owed()
        .map(|(id, stage)| {
            let a = Ack::new(pkid(id));
            match stage {
                Stage::Ack => Packet::PubAck(a),
                Stage::Rec => Packet::PubRec(a),
                Stage::Comp => Packet::PubComp(a),
            }
        })
        .collect()
}

impl Harness for World {
    fn op(&mut self, input: &mut Input<'_>) {
        let i = input.below(SLOTS);
        match input.u8() % 16 {
            0 | 1 => {
                if self.w.slots[i].conn.is_none() {
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
                let Some(version) = self.w.slots[i].conn.as_ref().map(|c| c.version) else {
                    return;
                };
                let mut buf = BytesMut::from(input.bytes(200));
                while let Ok(Some(p)) = decode_packet(&mut buf, version, 1 << 16) {
                    self.send(i, p);
                    if self.w.slots[i].conn.is_none() {
                        break;
                    }
                }
            }
            5..=7 => self.client_publish(i, input),
            8 => self.subscribe(i, input),
            9 => {
                let filter = *input.pick(&FILTERS);
                let u = Unsubscribe::new(pkid(1 + input.u16() % 4), vec![filter.into()]);
                self.send(i, Packet::Unsubscribe(u));
            }
            10 | 11 => self.ack(i, input),
            12 => self.w.step(input),
            13 => self.w.server_publish(&TOPICS, input),
            14 => self.close(i, input),
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
        self.w.pull_all();
    }

    fn finish(&mut self) {
        self.drain();
        self.w.finish_all();
    }
}

impl World {
    fn subscribe(&mut self, i: usize, input: &mut Input<'_>) {
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
            let slot = &mut self.w.slots[i];
            if code < 0x80 && !t.starts_with('$') && slot.conn.is_some() {
                slot.model
                    .subs
                    .insert(t, QoS::try_from(code).unwrap_or(QoS::AtMostOnce));
            }
        }
    }

    /// An acknowledgement from the client: for an id in flight or not, any kind and code.
    fn ack(&mut self, i: usize, input: &mut Input<'_>) {
        let slot = &self.w.slots[i];
        let inflight = &slot.model.inflight;
        let raw = input.u16();
        let id = if raw & 0x8000 == 0 && !inflight.is_empty() {
            inflight[usize::from(raw) % inflight.len()].0
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

    /// The connection ends: DISCONNECT, a transport close, or a kick.
    fn close(&mut self, i: usize, input: &mut Input<'_>) {
        let Some(mut c) = self.w.slots[i].conn.take() else {
            return;
        };
        match input.u8() % 3 {
            0 => {
                let mut d = crate::codec::Disconnect::new(*input.pick(&[0, 4, 0x80]));
                if c.version.is_v5() && input.bool() {
                    d.properties.session_expiry_interval = Some(u32::from(input.u8()));
                }
                c.ch.handle_packet(Packet::Disconnect(d), self.w.now);
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
}

/// The stateful MQTT channel target (see the module header).
pub fn channel(data: &[u8]) {
    run(data, MAX_OPS, World::new);
}
