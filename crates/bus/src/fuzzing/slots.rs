//! What the stateful channel harnesses of the protocols built on the QoS engine share: a few
//! client slots with fixed client ids on one bus, each with a model of its session as the client
//! sees it, and the checks that hold for any protocol on top of the bus's QoS engine.
//!
//! Owns: [`SessionModel`] (the QoS 1/2 ids in flight and their stages, incoming QoS 2 ids that
//! may await PUBREL, exact subscriptions, the messages owed and seen), the invariants checked
//! against it (a new id never reused while in flight, a DUP only for an id awaiting
//! PUBACK/PUBREC, the engine's window equal to the model's and within its bound, nothing owed
//! lost), and [`Slots`]: the clock steps, server-side publishes, collecting what a connection
//! sent, and the settling rounds at the end.
//! Must not know: any wire format. A harness implements [`ModelConn`] for its connection, maps
//! its packets to the model's calls, and keeps everything protocol-specific (the operations it
//! decodes, connects and takeovers, what a client answers).

use super::Input;
use crate::handle::BusHandle;
use crate::session::Session;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use switchyard_core::{Message, QoS, TopicName};

/// Where an outgoing QoS 1/2 message stands: awaiting PUBACK (QoS 1), PUBREC, or PUBCOMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Sent at QoS 1, awaiting PUBACK.
    Ack,
    /// Sent at QoS 2, awaiting PUBREC.
    Rec,
    /// Released (PUBREL), awaiting PUBCOMP.
    Comp,
}

/// A harness's model of one session, from the packets on the wire.
#[derive(Debug, Default)]
pub struct SessionModel {
    /// Outgoing QoS 1/2 in flight in the session, in send order.
    pub inflight: Vec<(u16, Stage)>,
    /// The largest window the session was given.
    pub bound: usize,
    /// Incoming QoS 2 ids that may await PUBREL (a superset of the engine's).
    pub awaiting: HashSet<u16>,
    /// Exact-topic subscriptions the broker granted, with their QoS.
    pub subs: HashMap<&'static str, QoS>,
    /// Message tags that must reach this session.
    pub expected: BTreeSet<u64>,
    /// Message tags seen in PUBLISHes to this session.
    pub seen: HashSet<u64>,
    /// Losses are allowed (e.g. the client refused what a delivery needed).
    pub lossy: bool,
}

impl SessionModel {
    /// A new session: forget everything about the old one.
    pub fn reset(&mut self) {
        *self = SessionModel::default();
    }

    fn position(&self, id: u16) -> Option<usize> {
        self.inflight.iter().position(|(i, _)| *i == id)
    }

    /// The stage of `id`, if it is in flight.
    pub fn stage(&self, id: u16) -> Option<Stage> {
        self.position(id).map(|i| self.inflight[i].1)
    }

    /// A PUBLISH the server sent, with its tag if it carries one and its packet id (0: none).
    /// QoS 0 carries no id; a new QoS 1/2 one takes an id not in flight; a DUP resends an id
    /// awaiting PUBACK or PUBREC.
    pub fn server_publish(&mut self, tag: Option<u64>, qos: QoS, id: u16, dup: bool) {
        if let Some(tag) = tag {
            self.seen.insert(tag);
        }
        if qos == QoS::AtMostOnce {
            assert_eq!(id, 0, "QoS 0 PUBLISH with packet id {id}");
            return;
        }
        assert_ne!(id, 0, "QoS 1/2 PUBLISH without a packet id");
        if dup {
            let stage = self.stage(id);
            assert!(
                matches!(stage, Some(Stage::Ack | Stage::Rec)),
                "DUP PUBLISH {id} not awaiting PUBACK/PUBREC: {stage:?}"
            );
        } else {
            assert!(
                self.position(id).is_none(),
                "packet id {id} reused while in flight"
            );
            let stage = if qos == QoS::AtLeastOnce {
                Stage::Ack
            } else {
                Stage::Rec
            };
            self.inflight.push((id, stage));
        }
    }

    /// Moves `id` on as the engine does when the client acknowledges it at stage `at`: PUBACK
    /// (`Ack`) and PUBCOMP (`Comp`) end it, an accepted PUBREC (`Rec`) releases it, a refused
    /// one ends it. An id not in flight at that stage is ignored.
    pub fn client_ack(&mut self, id: u16, at: Stage, accepted: bool) {
        let Some(i) = self.position(id) else {
            return;
        };
        if self.inflight[i].1 != at {
            return;
        }
        if at == Stage::Rec && accepted {
            self.inflight[i].1 = Stage::Comp;
        } else {
            self.inflight.remove(i);
        }
    }

    /// The client sent a QoS 2 PUBLISH with `id` (`true`), or PUBREL for it (`false`).
    pub fn client_qos2(&mut self, id: u16, publish: bool) {
        if publish {
            self.awaiting.insert(id);
        } else {
            self.awaiting.remove(&id);
        }
    }

    /// Stops tracking the exact subscription `filter` (a raw SUBSCRIBE or UNSUBSCRIBE may have
    /// changed it).
    pub fn untrack(&mut self, filter: &[u8]) {
        self.subs.retain(|t, _| t.as_bytes() != filter);
    }

    /// What the client owes to settle everything in flight: each id at its stage.
    pub fn owed(&self) -> impl Iterator<Item = (u16, Stage)> + '_ {
        self.inflight.iter().copied()
    }

    /// Expects `tag`, published on `topic` at `qos`, if this session is subscribed to exactly
    /// `topic` at QoS 1 or 2.
    pub fn expect(&mut self, topic: &str, qos: QoS, tag: u64) {
        if self
            .subs
            .get(topic)
            .is_some_and(|granted| qos.min(*granted) != QoS::AtMostOnce)
        {
            self.expected.insert(tag);
        }
    }

    /// Checks the engine's window (`len` messages in flight) against the model.
    pub fn check_window(&self, len: usize) {
        assert_eq!(len, self.inflight.len(), "window and model disagree");
        assert!(len <= self.bound, "window {len} above {}", self.bound);
    }

    /// Checks that every message owed was seen (unless losses are allowed).
    pub fn assert_nothing_lost(&self, who: &str) {
        if self.lossy {
            return;
        }
        let lost: Vec<&u64> = self
            .expected
            .iter()
            .filter(|t| !self.seen.contains(t))
            .collect();
        assert!(lost.is_empty(), "{who}: messages lost: {lost:?}");
    }
}

/// A payload that names a message: `T` and the tag, big-endian.
pub fn tagged(tag: u64) -> Vec<u8> {
    let mut v = b"T".to_vec();
    v.extend_from_slice(&tag.to_be_bytes());
    v
}

/// The tag of a [`tagged`] payload.
pub fn tag_of(payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(b"T")?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// A harness's connection (a channel and what the harness keeps with it), as [`Slots`] drives
/// it.
pub trait ModelConn {
    /// What the channel sends.
    type Packet;
    /// What a slot keeps about its session besides the [`SessionModel`].
    type Extra: Default;
    /// The session, while connected.
    fn session(&self) -> Option<&Session>;
    /// What the channel has to send, in order.
    fn take_outbound(&mut self) -> Vec<Self::Packet>;
    /// Checks one packet the channel sent (e.g. that it round-trips) and applies it to the
    /// session's model.
    fn observe(&self, p: &Self::Packet, model: &mut SessionModel, extra: &mut Self::Extra);
    /// Whether the channel has decided to close.
    fn closing(&self) -> bool;
    /// Takes deliveries from the outbox as the window allows.
    fn pull_deliveries(&mut self, now: Instant);
    /// Timers.
    fn tick(&mut self, now: Instant);
    /// Ends the connection (the channel's one finish).
    fn finish(&mut self);
}

/// Writes, inside an `impl ModelConn`, the methods that only forward to the channel in the field
/// named (`session`, `take_outbound`, `closing` from `close_reason`, `pull_deliveries`, `tick`
/// from `handle_tick`, `finish`): `switchyard_bus::model_conn_forwarders!(ch);`. What is left
/// to write is the protocol's part, `observe`.
#[macro_export]
macro_rules! model_conn_forwarders {
    ($ch:ident) => {
        fn session(&self) -> ::core::option::Option<&$crate::Session> {
            self.$ch.session()
        }
        fn take_outbound(&mut self) -> ::std::vec::Vec<Self::Packet> {
            self.$ch.take_outbound()
        }
        fn closing(&self) -> bool {
            self.$ch.close_reason().is_some()
        }
        fn pull_deliveries(&mut self, now: ::std::time::Instant) {
            self.$ch.pull_deliveries(now);
        }
        fn tick(&mut self, now: ::std::time::Instant) {
            self.$ch.handle_tick(now);
        }
        fn finish(&mut self) {
            self.$ch.finish();
        }
    };
}

/// One client id and what the harness knows about its session.
#[derive(Debug)]
pub struct Slot<C: ModelConn> {
    /// The client id, fixed so sessions resume and are taken over.
    pub client_id: String,
    /// The live connection, if any.
    pub conn: Option<C>,
    /// The session as the client sees it.
    pub model: SessionModel,
    /// What the harness keeps besides.
    pub extra: C::Extra,
}

impl<C: ModelConn> Slot<C> {
    /// Checks and applies what `conn` (of this slot, live or leaving) sent.
    pub fn observe_all(&mut self, conn: &C, out: &[C::Packet]) {
        for p in out {
            conn.observe(p, &mut self.model, &mut self.extra);
        }
    }
}

/// The world of a slot harness: the runtime, the bus, the slots and simulated time.
pub struct Slots<C: ModelConn> {
    /// The runtime session opens run on (from [`run`](super::run)).
    pub rt: Arc<tokio::runtime::Runtime>,
    /// The bus every slot's channel is on.
    pub bus: BusHandle,
    /// The client slots.
    pub slots: Vec<Slot<C>>,
    /// Simulated time.
    pub now: Instant,
    next_tag: u64,
}

impl<C: ModelConn> Slots<C> {
    /// `n` slots on `bus`, slot `i` with client id `<prefix><i>`, session opens on `rt`.
    pub fn new(rt: Arc<tokio::runtime::Runtime>, bus: BusHandle, prefix: &str, n: usize) -> Self {
        Slots {
            rt,
            bus,
            slots: (0..n)
                .map(|i| Slot {
                    client_id: format!("{prefix}{i}"),
                    conn: None,
                    model: SessionModel::default(),
                    extra: C::Extra::default(),
                })
                .collect(),
            now: Instant::now(),
            next_tag: 1,
        }
    }

    /// A fresh message tag.
    pub fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Expects `tag`, published on `topic` at `qos`, at every session subscribed to exactly it.
    pub fn expect(&mut self, topic: &str, qos: QoS, tag: u64) {
        for s in &mut self.slots {
            s.model.expect(topic, qos, tag);
        }
    }

    /// Takes and checks what slot `i`'s connection sent, checks its window, and finishes the
    /// connection if it decided to close. Returns what it sent.
    pub fn collect(&mut self, i: usize) -> Vec<C::Packet> {
        let slot = &mut self.slots[i];
        let Some(mut conn) = slot.conn.take() else {
            return Vec::new();
        };
        let out = conn.take_outbound();
        slot.observe_all(&conn, &out);
        if let Some(session) = conn.session() {
            slot.model.check_window(session.qos.inflight_len());
        }
        if conn.closing() {
            conn.finish();
        } else {
            slot.conn = Some(conn);
        }
        out
    }

    /// Slot `i`'s connection pulls its deliveries; returns what it then sent.
    pub fn pull(&mut self, i: usize) -> Vec<C::Packet> {
        let now = self.now;
        if let Some(c) = self.slots[i].conn.as_mut() {
            c.pull_deliveries(now);
        }
        self.collect(i)
    }

    /// Every connection pulls its deliveries (after every operation).
    pub fn pull_all(&mut self) {
        for i in 0..self.slots.len() {
            self.pull(i);
        }
    }

    /// A clock step from the input: expired sessions are reaped, every connection's timers
    /// run.
    pub fn step(&mut self, input: &mut Input<'_>) {
        self.now += input.step();
        self.bus.reap_expired(self.now);
        for i in 0..self.slots.len() {
            let now = self.now;
            if let Some(c) = self.slots[i].conn.as_mut() {
                c.tick(now);
            }
            self.collect(i);
        }
    }

    /// The server side (another gateway, the rule engine, the API) publishes a tagged message
    /// on one of `topics`, at a QoS and retain flag from the input; every session subscribed to
    /// exactly that topic is owed it.
    pub fn server_publish(&mut self, topics: &[&str], input: &mut Input<'_>) {
        let topic = *input.pick(topics);
        let qos = input.qos();
        let tag = self.tag();
        if let Ok(t) = TopicName::new(topic) {
            self.expect(topic, qos, tag);
            self.bus
                .publish(Message::new(t, tagged(tag), qos, input.bool()));
        }
    }

    /// The end check: every slot whose connection `lived` (still there, and `live` says so)
    /// has seen every message it was owed.
    pub fn assert_nothing_lost(&self, live: impl Fn(&C) -> bool) {
        for s in &self.slots {
            // Only a session that is still connected is known to have lived throughout.
            if s.conn.as_ref().is_some_and(&live) {
                s.model.assert_nothing_lost(&s.client_id);
            }
        }
    }

    /// Finishes every connection (the harness's end).
    pub fn finish_all(&mut self) {
        for s in &mut self.slots {
            if let Some(mut c) = s.conn.take() {
                c.finish();
            }
        }
    }
}

/// The settling rounds at a harness's end: until nothing moves (at most 64 rounds), every
/// connected slot of `world` (reached through `slots`) pulls its deliveries, and its client
/// answers what it `owes` (through `send`, the harness's way of feeding a packet to slot `i`).
pub fn settle<W, C: ModelConn>(
    world: &mut W,
    slots: impl Fn(&mut W) -> &mut Slots<C>,
    owes: impl Fn(&Slot<C>) -> Vec<C::Packet>,
    mut send: impl FnMut(&mut W, usize, C::Packet),
) {
    for _ in 0..64 {
        let mut moved = false;
        let n = slots(world).slots.len();
        for i in 0..n {
            let s = slots(world);
            if s.slots[i].conn.is_none() {
                continue;
            }
            moved |= !s.pull(i).is_empty();
            let replies = owes(&s.slots[i]);
            for r in replies {
                moved = true;
                send(world, i, r);
            }
        }
        if !moved {
            break;
        }
    }
}
