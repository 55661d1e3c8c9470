//! The stateful CoAP pub/sub target: the socket task's routing (by `clientid`, else by
//! address), one [`Channel`] per client identity with its session on a real bus, and the
//! [`Transport`] between them and three peers, on simulated time. The input is a program:
//! connection creates, refreshes and deletes, publishes, observes and cancels (with `clientid`,
//! the current token or a stale one, QoS and retain queries), raw datagrams, ACKs and RSTs of
//! notifications, server-side publishes and clock steps (transport polls and channel ticks),
//! in connection mode or connectionless.
//!
//! Checked throughout:
//! - every datagram sent decodes strictly and round-trips;
//! - a channel never has two CON notifications unacknowledged (RFC 7252 §4.7 NSTART = 1), and
//!   notifies nothing at all while one is (docs/coap.md, channel invariant);
//! - at the end, once every CON is acknowledged, each QoS 1/2 server publish on a topic a client
//!   observes (exactly, confirmed by 2.05) has reached that client, unless the observation may
//!   have been cancelled (an RST or a timeout) or the client was touched by raw bytes.

use crate::channel::{self, request, Channel, ClientKey, NotifyOutcome, Output};
use crate::settings::{mount_prefix, CoapSettings, NotifyType};
use crate::transport::demux::ClientChannel;
use crate::transport::fuzzing::{DemuxWorld, Sent};
use crate::transport::wire::{self, code};
use crate::transport::{error_response, Event, Transport};
use crate::{CoapGateway, CoapRequester};
use coap_lite::{CoapOption, MessageType, Packet};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::fuzzing::slots::{tag_of, tagged};
use switchyard_bus::fuzzing::{run, Harness, Input};
use switchyard_bus::{BusConfig, BusHandle};
use switchyard_core::{Message, QoS, TopicName};

const PEERS: usize = 3;
const TOPICS: [&str; 4] = ["a", "a/b", "b", "a%2Fb"];
const MAX_OPS: usize = 300;

type Tag = (u64, u64);

/// What the harness tracks about a client.
struct Track {
    /// The unacknowledged CON notification, if any.
    con_out: Option<u64>,
    /// Topics observed (confirmed), and whether each may have been cancelled.
    observing: HashSet<String>,
    /// Message tags that must reach the client, with the observed topic they were published on.
    expected: BTreeMap<u64, String>,
    seen: HashSet<u64>,
    lossy: bool,
    token: Option<String>,
}

type Client = crate::transport::fuzzing::Client<Channel, Track>;

struct World {
    /// The socket task's side; its `sent` are the CON notifications, for the peers to
    /// acknowledge.
    d: DemuxWorld<ClientKey, Channel, Track, Tag>,
    gw: CoapGateway,
    /// The request being handled came from raw bytes.
    raw: bool,
    next_tag: u64,
}

/// The peers' first port.
const BASE_PORT: u16 = 5000;

fn is_con(p: &Packet) -> bool {
    p.header.get_type() == MessageType::Confirmable
}

impl World {
    fn new(input: &mut Input<'_>, rt: Arc<tokio::runtime::Runtime>) -> Self {
        let bus = BusHandle::new(BusConfig {
            sys_client_connected: false,
            sys_client_disconnected: false,
            max_mqueue_len: 10_000,
            ..BusConfig::default()
        });
        let settings = CoapSettings {
            connection_required: input.bool(),
            notify_type: *input.pick(&[NotifyType::Qos, NotifyType::Con, NotifyType::Non]),
            heartbeat: Duration::from_secs(1 + u64::from(input.u8())),
            ..CoapSettings::default()
        };
        let gw = CoapGateway {
            bus,
            settings: Arc::new(settings.clone()),
            requests: CoapRequester::new(),
        };
        let t = Transport::with_seed(settings.transport, u64::from(input.u16()));
        World {
            d: DemuxWorld::new(rt, t, BASE_PORT, Channel::finish),
            gw,
            raw: false,
            next_tag: 0,
        }
    }

    fn datagram(&mut self, i: usize, bytes: &[u8]) {
        let events = self.d.datagram(i, bytes);
        self.dispatch(events);
    }

    fn dispatch(&mut self, events: Vec<Event<Tag>>) {
        for ev in events {
            let (tag, outcome) = match ev {
                Event::Request(req) => {
                    self.request(req);
                    continue;
                }
                Event::Acked { tag, .. } => (tag, NotifyOutcome::Acked),
                Event::Reset { tag, .. } => (tag, NotifyOutcome::Reset),
                Event::Timeout { tag, .. } => (tag, NotifyOutcome::Timeout),
                Event::Response { .. } => continue,
            };
            if let Some(c) = self.d.clients.values_mut().find(|c| c.slot == tag.0) {
                if c.track.con_out == Some(tag.1) {
                    c.track.con_out = None;
                }
                if outcome != NotifyOutcome::Acked {
                    c.track.lossy = true;
                }
                c.ch.handle_notify_outcome(tag.1, outcome, self.d.now);
            }
        }
        self.flush();
    }

    fn request(&mut self, req: crate::transport::Request) {
        let key = match channel::route(&self.gw, req.peer, &req.packet) {
            Ok(k) => k,
            Err(reply) => return self.d.respond(&req.exchange, reply),
        };
        if let Some(c) = self.d.clients.get_mut(&key) {
            c.track.lossy |= self.raw;
            let observe = observed_topic(&req.packet);
            c.ch.handle_request(req, self.d.now);
            // A confirmed observation is read from the reply in `flush`; a cancel ends it here.
            if let Some((topic, false)) = observe {
                // Cancelled (Observe=1): what was queued for it is dropped by design.
                c.track.observing.remove(&topic);
                let seen = &c.track.seen;
                c.track
                    .expected
                    .retain(|tag, t| *t != topic || seen.contains(tag));
            }
            return;
        }
        let creates = matches!(
            request::resource(&req.packet),
            Ok(request::Resource::Connection)
        ) && wire::code_of(&req.packet) == code::POST;
        if self.gw.settings.connection_required && !creates {
            let reply = error_response(code::BAD_REQUEST, "no such client");
            return self.d.respond(&req.exchange, reply);
        }
        let q = request::query(&req.packet).unwrap_or_default();
        let info = channel::client_info(&key, &q, req.peer, self.gw.settings.heartbeat);
        let prefix = match mount_prefix(
            &self.gw.settings.mountpoint,
            info.client_id.as_str(),
            info.username.as_deref(),
        ) {
            Ok(p) => p,
            Err(e) => {
                let reply = error_response(code::UNAUTHORIZED, &e.to_string());
                return self.d.respond(&req.exchange, reply);
            }
        };
        let info = Arc::new(info);
        let Ok((session, attachment, rx)) = self.d.open(&self.gw.bus, info.clone()) else {
            let reply = error_response(code::SERVICE_UNAVAILABLE, "session refused");
            return self.d.respond(&req.exchange, reply);
        };
        let now = self.d.now;
        let ch = Channel::new(self.gw.clone(), info, session, attachment, prefix, now);
        let slot = self.d.next_slot();
        let track = Track {
            con_out: None,
            observing: HashSet::new(),
            expected: BTreeMap::new(),
            seen: HashSet::new(),
            lossy: self.raw,
            token: None,
        };
        let mut c = Client {
            ch,
            rx,
            slot,
            track,
        };
        c.ch.handle_request(req, now);
        self.d.clients.insert(key, c);
    }

    /// Turns what the channels produced into transport calls, checking the notification window.
    fn flush(&mut self) {
        self.d.flush(output, is_con);
    }

    fn structured(&mut self, i: usize, input: &mut Input<'_>) {
        let mut p = Packet::new();
        p.header.set_type(if input.u8() % 4 == 0 {
            MessageType::NonConfirmable
        } else {
            MessageType::Confirmable
        });
        p.header.message_id = input.u16();
        p.set_token(input.bytes(4).to_vec());
        let mut query = Vec::new();
        let id = match input.u8() % 4 {
            0 => None,
            n => Some(format!("cl{}", n % 3)),
        };
        if let Some(id) = &id {
            query.push(format!("clientid={id}"));
            let token = self
                .d
                .clients
                .get(&ClientKey::Id(id.clone()))
                .and_then(|c| c.track.token.clone());
            match (input.u8() % 4, token) {
                (0, _) => {}
                (1, _) => query.push("token=123".into()),
                (_, Some(t)) => query.push(format!("token={t}")),
                (_, None) => {}
            }
        }
        match input.u8() % 8 {
            0 | 1 => {
                // The connection resource: create, refresh, delete.
                let c = [code::POST, code::POST, code::PUT, code::DELETE, code::GET];
                wire::set_code(&mut p, *input.pick(&c));
                p.add_option(CoapOption::UriPath, b"mqtt".to_vec());
                p.add_option(CoapOption::UriPath, b"connection".to_vec());
            }
            2..=4 => {
                wire::set_code(&mut p, code::POST);
                let topic = *input.pick(&TOPICS);
                add_ps(&mut p, topic);
                query.push(format!("qos={}", input.u8() % 4));
                if input.bool() {
                    query.push("retain=true".into());
                }
                p.payload = b"hello".to_vec();
            }
            _ => {
                wire::set_code(&mut p, code::GET);
                let topic = *input.pick(&["a", "a/b", "b", "a/+", "#"]);
                add_ps(&mut p, topic);
                p.set_observe_value(u32::from(input.u8() % 2));
                query.push(format!("qos={}", input.u8() % 3));
                if input.u8() % 4 == 0 {
                    query.push("rh=0".into());
                }
            }
        }
        for q in query {
            p.add_option(CoapOption::UriQuery, q.into_bytes());
        }
        let bytes = p.to_bytes_unlimited().unwrap_or_default();
        self.datagram(i, &bytes);
    }

    /// Acknowledges every CON until nothing is left, then checks the deliveries.
    fn drain(&mut self) {
        for _ in 0..2048 {
            self.flush();
            let Some(Sent { peer: j, mid, .. }) = self.d.sent.pop() else {
                break;
            };
            let mut p = Packet::new();
            p.header.set_type(MessageType::Acknowledgement);
            p.header.message_id = mid;
            wire::set_code(&mut p, code::EMPTY);
            let bytes = p.to_bytes_unlimited().unwrap_or_default();
            self.datagram(j, &bytes);
        }
        for (key, c) in &self.d.clients {
            if c.track.lossy || c.ch.close_reason().is_some() {
                continue;
            }
            let lost: Vec<&u64> = c
                .track
                .expected
                .keys()
                .filter(|t| !c.track.seen.contains(t))
                .collect();
            assert!(lost.is_empty(), "{key:?}: notifications lost: {lost:?}");
        }
    }
}

/// One output of client `c`'s channel, carried out on the transport and checked: a reply may
/// hand out a token or confirm an observation; a notification never goes out while a CON one is
/// unacknowledged.
fn output(c: &mut Client, o: Output, t: &mut Transport<Tag>, now: Instant) {
    match o {
        Output::Reply { exchange, packet } => {
            let pc = wire::code_of(&packet);
            if pc == code::CREATED && !packet.payload.is_empty() {
                c.track.token = String::from_utf8(packet.payload.clone()).ok();
            }
            if pc == code::CONTENT && packet.get_observe_value().is_some() {
                if let Some(topic) = resource_topic(exchange.resource()) {
                    c.track.observing.insert(topic);
                }
            }
            t.respond(&exchange, packet, now);
        }
        Output::Notify {
            peer,
            packet,
            confirmable,
            nid,
            resource,
        } => {
            assert!(
                c.track.con_out.is_none(),
                "notification while CON {:?} is unacknowledged",
                c.track.con_out
            );
            if confirmable {
                c.track.con_out = Some(nid);
            }
            if let Some(tag) = tag_of(&packet.payload) {
                c.track.seen.insert(tag);
            }
            t.notify(peer, packet, confirmable, (c.slot, nid), &resource, now);
        }
    }
}

fn add_ps(p: &mut Packet, topic: &str) {
    p.add_option(CoapOption::UriPath, b"ps".to_vec());
    for seg in topic.split('/') {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
}

/// The topic of a `/ps/...` resource key (as `wire::resource_key` writes it), if exact.
fn resource_topic(resource: &str) -> Option<String> {
    let path: String = resource.split('?').next()?.to_owned();
    let topic = path.strip_prefix("/ps/")?.to_owned();
    (!topic.contains(['+', '#', '%'])).then_some(topic)
}

/// A GET with Observe on an exact `/ps` topic: (topic, registers).
fn observed_topic(p: &Packet) -> Option<(String, bool)> {
    if wire::code_of(p) != code::GET {
        return None;
    }
    let obs = p.get_observe_value()?.ok()?;
    let topic = resource_topic(&wire::resource_key(p))?;
    Some((topic, obs == 0))
}

impl Harness for World {
    fn op(&mut self, input: &mut Input<'_>) {
        let i = input.below(PEERS);
        match input.u8() % 10 {
            0 => {
                // A client that raw bytes reach is no longer held to the delivery check.
                self.raw = true;
                let ev = self.d.raw_datagram(i, input);
                self.dispatch(ev);
                self.raw = false;
            }
            1..=4 => self.structured(i, input),
            5 | 6 => {
                // A peer acknowledges (or resets) a CON it got.
                let sent = &mut self.d.sent;
                if sent.is_empty() {
                    return;
                }
                let Sent { peer: j, mid, .. } = sent.remove(input.below(sent.len()));
                let mut p = Packet::new();
                p.header.set_type(if input.u8() % 4 == 0 {
                    MessageType::Reset
                } else {
                    MessageType::Acknowledgement
                });
                p.header.message_id = mid;
                // Mostly empty, as RFC 7252 §4.2 wants; sometimes with a code, as buggy
                // clients send.
                let c = *input.pick(&[
                    code::EMPTY,
                    code::EMPTY,
                    code::EMPTY,
                    code::CONTENT,
                    code::GET,
                ]);
                wire::set_code(&mut p, c);
                let bytes = p.to_bytes_unlimited().unwrap_or_default();
                self.datagram(j, &bytes);
            }
            7 => {
                let ev = self.d.step(input);
                self.dispatch(ev);
                self.d.tick_all();
                self.flush();
            }
            _ => {
                let topic = *input.pick(&["a", "a/b", "b"]);
                let qos = input.qos();
                self.next_tag += 1;
                let tag = self.next_tag;
                if qos != QoS::AtMostOnce {
                    for c in self.d.clients.values_mut() {
                        if c.track.observing.contains(topic) {
                            c.track.expected.insert(tag, topic.to_owned());
                        }
                    }
                }
                if let Ok(t) = TopicName::new(topic) {
                    self.gw
                        .bus
                        .publish(Message::new(t, tagged(tag), qos, false));
                }
                self.flush();
            }
        }
    }

    fn finish(&mut self) {
        self.drain();
        self.d.finish_all();
    }
}

/// The CoAP pub/sub channel target (see the module header).
pub fn channel(data: &[u8]) {
    run(data, MAX_OPS, World::new);
}
