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

use super::assert_sendable;
use crate::channel::{self, request, Channel, ClientKey, NotifyOutcome, Output};
use crate::settings::{mount_prefix, CoapSettings, NotifyType};
use crate::transport::demux::ClientChannel;
use crate::transport::fuzzing::open_client;
use crate::transport::wire::{self, code};
use crate::transport::{error_response, Event, Transport};
use crate::{CoapGateway, CoapRequester};
use coap_lite::{CoapOption, MessageType, Packet};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::fuzzing::{run, runtime, Harness, Input};
use switchyard_bus::{BusConfig, BusHandle, ControlEvents};
use switchyard_core::{CloseReason, Message, QoS, TopicName};

const PEERS: usize = 3;
const TOPICS: [&str; 4] = ["a", "a/b", "b", "a%2Fb"];
const MAX_OPS: usize = 300;

type Tag = (u64, u64);

struct Client {
    ch: Channel,
    rx: ControlEvents,
    slot: u64,
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

struct World {
    rt: tokio::runtime::Runtime,
    gw: CoapGateway,
    t: Transport<Tag>,
    now: Instant,
    clients: HashMap<ClientKey, Client>,
    next_slot: u64,
    /// The request being handled came from raw bytes.
    raw: bool,
    /// CON notifications sent (peer, mid), for the peers to acknowledge.
    cons: Vec<(usize, u16)>,
    next_tag: u64,
}

fn peer(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000 + i as u16))
}

fn tag_of(payload: &[u8]) -> Option<u64> {
    let rest = payload.strip_prefix(b"T")?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

impl World {
    fn new(input: &mut Input<'_>) -> Self {
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
        World {
            rt: runtime(),
            t: Transport::with_seed(settings.transport, u64::from(input.u16())),
            gw,
            now: Instant::now(),
            clients: HashMap::new(),
            next_slot: 1,
            raw: false,
            cons: Vec::new(),
            next_tag: 0,
        }
    }

    fn transmit(&mut self) {
        while let Some((addr, bytes)) = self.t.poll_transmit() {
            let p = assert_sendable(&bytes);
            if p.header.get_type() == MessageType::Confirmable {
                let i = usize::from(addr.port().saturating_sub(5000));
                self.cons.push((i, p.header.message_id));
                if self.cons.len() > 32 {
                    self.cons.remove(0);
                }
            }
        }
    }

    fn datagram(&mut self, i: usize, bytes: &[u8], raw: bool) {
        self.raw = raw;
        let events = self.t.handle_datagram(peer(i), bytes, self.now);
        self.dispatch(events);
        self.raw = false;
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
            if let Some(c) = self.clients.values_mut().find(|c| c.slot == tag.0) {
                if c.con_out == Some(tag.1) {
                    c.con_out = None;
                }
                if outcome != NotifyOutcome::Acked {
                    c.lossy = true;
                }
                c.ch.handle_notify_outcome(tag.1, outcome, self.now);
            }
        }
        self.flush();
    }

    fn request(&mut self, req: crate::transport::Request) {
        let key = match channel::route(&self.gw, req.peer, &req.packet) {
            Ok(k) => k,
            Err(reply) => return self.t.respond(&req.exchange, reply, self.now),
        };
        if let Some(c) = self.clients.get_mut(&key) {
            c.lossy |= self.raw;
            let observe = observed_topic(&req.packet);
            c.ch.handle_request(req, self.now);
            // A confirmed observation is read from the reply in `flush`; a cancel ends it here.
            if let Some((topic, false)) = observe {
                // Cancelled (Observe=1): what was queued for it is dropped by design.
                c.observing.remove(&topic);
                let seen = &c.seen;
                c.expected
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
            return self.t.respond(&req.exchange, reply, self.now);
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
                return self.t.respond(&req.exchange, reply, self.now);
            }
        };
        let info = Arc::new(info);
        let opened = open_client(
            &self.rt,
            &self.gw.bus,
            info.clone(),
            &mut self.clients,
            |c| &c.rx,
            |mut c| {
                c.ch.fail(CloseReason::Takeover);
                c.ch.finish();
            },
        );
        let Ok((session, attachment, rx)) = opened else {
            let reply = error_response(code::SERVICE_UNAVAILABLE, "session refused");
            return self.t.respond(&req.exchange, reply, self.now);
        };
        let ch = Channel::new(self.gw.clone(), info, session, attachment, prefix, self.now);
        let slot = self.next_slot;
        self.next_slot += 1;
        let mut c = Client {
            ch,
            rx,
            slot,
            con_out: None,
            observing: HashSet::new(),
            expected: BTreeMap::new(),
            seen: HashSet::new(),
            lossy: self.raw,
            token: None,
        };
        c.ch.handle_request(req, self.now);
        self.clients.insert(key, c);
    }

    /// Turns what the channels produced into transport calls, checking the notification window.
    fn flush(&mut self) {
        loop {
            let mut any = false;
            let keys: Vec<ClientKey> = self.clients.keys().cloned().collect();
            for key in keys {
                let Some(c) = self.clients.get_mut(&key) else {
                    continue;
                };
                c.ch.pull_deliveries(self.now);
                for o in c.ch.take_outputs() {
                    any = true;
                    match o {
                        Output::Reply { exchange, packet } => {
                            let pc = wire::code_of(&packet);
                            if pc == code::CREATED && !packet.payload.is_empty() {
                                c.token = String::from_utf8(packet.payload.clone()).ok();
                            }
                            if pc == code::CONTENT && packet.get_observe_value().is_some() {
                                if let Some(t) = resource_topic(exchange.resource()) {
                                    c.observing.insert(t);
                                }
                            }
                            self.t.respond(&exchange, packet, self.now);
                        }
                        Output::Notify {
                            peer,
                            packet,
                            confirmable,
                            nid,
                            resource,
                        } => {
                            assert!(
                                c.con_out.is_none(),
                                "notification while CON {:?} is unacknowledged",
                                c.con_out
                            );
                            if confirmable {
                                c.con_out = Some(nid);
                            }
                            if let Some(tag) = tag_of(&packet.payload) {
                                c.seen.insert(tag);
                            }
                            let tag = (c.slot, nid);
                            self.t
                                .notify(peer, packet, confirmable, tag, &resource, self.now);
                        }
                    }
                }
                if c.ch.close_reason().is_some() {
                    if let Some(mut c) = self.clients.remove(&key) {
                        c.ch.finish();
                    }
                }
            }
            self.transmit();
            if !any {
                break;
            }
        }
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
                .clients
                .get(&ClientKey::Id(id.clone()))
                .and_then(|c| c.token.clone());
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
        self.datagram(i, &bytes, false);
    }

    /// Acknowledges every CON until nothing is left, then checks the deliveries.
    fn drain(&mut self) {
        for _ in 0..2048 {
            self.flush();
            let Some((j, mid)) = self.cons.pop() else {
                break;
            };
            let mut p = Packet::new();
            p.header.set_type(MessageType::Acknowledgement);
            p.header.message_id = mid;
            wire::set_code(&mut p, code::EMPTY);
            let bytes = p.to_bytes_unlimited().unwrap_or_default();
            self.datagram(j, &bytes, false);
        }
        for (key, c) in &self.clients {
            if c.lossy || c.ch.close_reason().is_some() {
                continue;
            }
            let lost: Vec<&u64> = c.expected.keys().filter(|t| !c.seen.contains(t)).collect();
            assert!(lost.is_empty(), "{key:?}: notifications lost: {lost:?}");
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
    fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    fn op(&mut self, input: &mut Input<'_>) {
        let i = input.below(PEERS);
        match input.u8() % 10 {
            0 => {
                let raw = input.bytes(200).to_vec();
                self.datagram(i, &raw, true);
            }
            1..=4 => self.structured(i, input),
            5 | 6 => {
                // A peer acknowledges (or resets) a CON it got.
                if self.cons.is_empty() {
                    return;
                }
                let (j, mid) = self.cons.remove(input.below(self.cons.len()));
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
                self.datagram(j, &bytes, false);
            }
            7 => {
                self.now += input.step();
                let ev = self.t.poll(self.now);
                self.dispatch(ev);
                for c in self.clients.values_mut() {
                    c.ch.tick(self.now);
                }
                self.flush();
            }
            _ => {
                let topic = *input.pick(&["a", "a/b", "b"]);
                let qos = input.qos();
                self.next_tag += 1;
                let tag = self.next_tag;
                if qos != QoS::AtMostOnce {
                    for c in self.clients.values_mut() {
                        if c.observing.contains(topic) {
                            c.expected.insert(tag, topic.to_owned());
                        }
                    }
                }
                if let Ok(t) = TopicName::new(topic) {
                    let mut payload = b"T".to_vec();
                    payload.extend_from_slice(&tag.to_be_bytes());
                    self.gw.bus.publish(Message::new(t, payload, qos, false));
                }
                self.flush();
            }
        }
    }

    fn finish(&mut self) {
        self.drain();
        for (_, mut c) in self.clients.drain() {
            c.ch.finish();
        }
    }
}

/// The CoAP pub/sub channel target (see the module header).
pub fn channel(data: &[u8]) {
    run(data, MAX_OPS, World::new);
}
