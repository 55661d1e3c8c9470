//! The stateful LwM2M target: the socket task's routing (Register by `ep`, Update and
//! De-register by `/rd/{ep}`), one [`Channel`] per device with its session on a real bus, and
//! the CoAP [`Transport`] between them and three device addresses, on simulated time. The input
//! is a program: Registers (lifetimes, bindings with queue mode, `device_id`s that make two
//! endpoints one client id, link payloads), Updates, De-registers, raw datagrams, MQTT commands
//! of every kind published on the command topics, device answers to the gateway's requests
//! (piggybacked, empty ACK then separate, RST, notifications, in every content format), and
//! clock steps (transport polls and channel ticks).
//!
//! Checked throughout:
//! - every datagram sent decodes strictly and round-trips;
//! - a device never has two commands outstanding (docs/lwm2m.md §4.13.2): a new request only
//!   after the reply, an RST, a transport timeout, or the end of the wait for a separate
//!   response;
//! - every command request carries a token of 1 to 8 bytes (docs/lwm2m.md §4.13.1).

use crate::channel::{self, Channel, Outcome, Output};
use crate::register::{query_map, Registration};
use crate::settings::Lwm2mSettings;
use crate::Lwm2mGateway;
use std::sync::Arc;
use std::time::Instant;
use switchyard_bus::fuzzing::{run, Harness, Input};
use switchyard_bus::{BusConfig, BusHandle};
use switchyard_coap_transport::coap_lite::{CoapOption, MessageType, Packet};
use switchyard_coap_transport::demux::ClientChannel;
use switchyard_coap_transport::fuzzing::{Client, DemuxWorld, Sent};
use switchyard_coap_transport::wire::{self, code};
use switchyard_coap_transport::{error_response, Event, Request, Transport};
use switchyard_core::{Message, TopicName};

const PEERS: usize = 3;
const MAX_OPS: usize = 300;
const LINKS: [&str; 5] = [
    "</1/0>,</3/0>",
    "</lwm2m>;rt=\"oma.lwm2m\",</lwm2m/3/0>,</lwm2m/3303/0>",
    "",
    "</3/0>;ver=1.1,</5/0>,</3303/0>,</3303/1>",
    "<>",
];
const OPS: [&str; 10] = [
    "read",
    "discover",
    "write",
    "write-attr",
    "execute",
    "create",
    "delete",
    "observe",
    "cancel-observe",
    "reboot",
];
const CMD_PATHS: [&str; 7] = [
    "/3/0/1",
    "/3/0",
    "/3303/0/5700",
    "/1",
    "/3/0/7/1",
    "/3/0/4?x=1",
    "3/x",
];

type Tag = (u64, u64);

/// What the harness tracks about a device: the command request outstanding, and when its wait
/// for a separate response ends.
type Outstanding = Option<(u64, Option<Instant>)>;

type Device = Client<Channel, Outstanding>;

struct World {
    /// The socket task's side, devices by endpoint name; its `sent` are the requests the
    /// transport sent, for the devices to answer.
    d: DemuxWorld<String, Channel, Outstanding, Tag>,
    gw: Lwm2mGateway,
    peer_mid: u16,
}

/// The devices' first port.
const BASE_PORT: u16 = 5600;

/// Which sent messages a device may answer: the gateway's requests, each with a token of 1 to
/// 8 bytes (docs/lwm2m.md §4.13.1).
fn is_request(p: &Packet) -> bool {
    if !wire::is_request(wire::code_of(p)) {
        return false;
    }
    let token = p.get_token();
    assert!(
        !token.is_empty() && token.len() <= 8,
        "request token {token:?}"
    );
    true
}

/// The endpoint a registration-interface request names (the driver's routing).
fn route(p: &Packet) -> Result<(String, bool), Packet> {
    let path = wire::uri_path(p).map_err(|_| error_response(code::BAD_REQUEST, "invalid URI"))?;
    match (wire::code_of(p), path.as_slice()) {
        (code::POST, [rd]) if rd == "rd" => {
            let q = wire::uri_query(p).unwrap_or_default();
            match query_map(&q).get("ep").filter(|e| !e.is_empty()) {
                Some(ep) => Ok((ep.clone(), true)),
                None => Err(channel::login_failed("invalid queries")),
            }
        }
        (_, [rd, ep]) if rd == "rd" => Ok((ep.clone(), false)),
        _ => Err(error_response(code::NOT_FOUND, "not found")),
    }
}

impl World {
    fn new(input: &mut Input<'_>, rt: Arc<tokio::runtime::Runtime>) -> Self {
        let settings = Lwm2mSettings {
            auto_observe: input.bool(),
            max_queue: 1 + input.below(4),
            ..Lwm2mSettings::default()
        };
        let bus = BusHandle::new(BusConfig {
            sys_client_connected: false,
            sys_client_disconnected: false,
            ..BusConfig::default()
        });
        let transport = settings.transport.clone();
        World {
            gw: Lwm2mGateway {
                bus,
                settings: Arc::new(settings),
                objects: Arc::new(super::db().clone()),
            },
            d: DemuxWorld::new(
                rt,
                Transport::with_seed(transport, u64::from(input.u16())),
                BASE_PORT,
                Channel::finish,
            ),
            peer_mid: 0,
        }
    }

    fn datagram(&mut self, i: usize, bytes: &[u8]) {
        let ev = self.d.datagram(i, bytes);
        self.dispatch(ev);
    }

    fn dispatch(&mut self, events: Vec<Event<Tag>>) {
        for ev in events {
            let (slot, cid) = match &ev {
                Event::Request(_) => (0, 0),
                Event::Response { tag, .. }
                | Event::Acked { tag, .. }
                | Event::Reset { tag, .. }
                | Event::Timeout { tag, .. } => *tag,
            };
            let now = self.d.now;
            let lifetime = self.gw.settings.transport.exchange_lifetime();
            let dev = self.d.clients.values_mut().find(|d| d.slot == slot);
            match (ev, dev) {
                (Event::Request(req), _) => self.request(req),
                (Event::Response { packet, .. }, Some(d)) => {
                    if d.track.is_some_and(|(c, _)| c == cid) {
                        d.track = None;
                    }
                    d.ch.handle_response(cid, packet, now);
                }
                (Event::Acked { .. }, Some(d)) => {
                    if let Some((c, wait)) = d.track.as_mut() {
                        if *c == cid {
                            *wait = Some(now + lifetime);
                        }
                    }
                    d.ch.handle_outcome(cid, Outcome::Acked, now);
                }
                (Event::Reset { .. } | Event::Timeout { .. }, Some(d)) => {
                    if d.track.is_some_and(|(c, _)| c == cid) {
                        d.track = None;
                    }
                    // Which of the two does not matter to the window.
                    d.ch.handle_outcome(cid, Outcome::Timeout, now);
                }
                _ => {}
            }
        }
        self.flush();
    }

    fn request(&mut self, req: Request) {
        let (key, is_register) = match route(&req.packet) {
            Ok(k) => k,
            Err(reply) => return self.d.respond(&req.exchange, reply),
        };
        let now = self.d.now;
        if let Some(d) = self.d.clients.get_mut(&key) {
            return d.ch.handle_request(req, now);
        }
        if !is_register {
            let reply = error_response(code::NOT_FOUND, "not registered");
            return self.d.respond(&req.exchange, reply);
        }
        let query = wire::uri_query(&req.packet).unwrap_or_default();
        let reg = match Registration::parse(&query, &req.packet.payload) {
            Ok(r) => r,
            Err(reason) => return self.d.respond(&req.exchange, channel::login_failed(reason)),
        };
        if let Err(reason) = channel::authenticate(&self.gw, &reg, req.peer, now) {
            return self.d.respond(&req.exchange, channel::login_failed(reason));
        }
        let info = Arc::new(channel::client_info(&reg, req.peer));
        let Ok(prefix) = channel::mount_prefix(&self.gw, &reg, &info) else {
            let reply = channel::login_failed("not_authorized");
            return self.d.respond(&req.exchange, reply);
        };
        let Ok((session, attachment, rx)) = self.d.open(&self.gw.bus, info.clone()) else {
            let reply = channel::login_failed("session_open_failed");
            return self.d.respond(&req.exchange, reply);
        };
        let mut ch = Channel::new(self.gw.clone(), info, session, attachment, reg, prefix, now);
        if let Err(reason) = ch.start(&req.exchange, now) {
            ch.fail(reason);
            let reply = channel::login_failed("invalid endpoint name");
            self.d.respond(&req.exchange, reply);
        }
        let slot = self.d.next_slot();
        self.d.clients.insert(
            key,
            Device {
                ch,
                rx,
                slot,
                track: None,
            },
        );
    }

    /// Executes what the channels produced, as the socket task does.
    fn flush(&mut self) {
        self.d.flush(output, is_request);
    }

    fn registration(&mut self, i: usize, input: &mut Input<'_>) {
        let ep = format!("ep{}", input.u8() % 3);
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        self.peer_mid = self.peer_mid.wrapping_add(1);
        p.header.message_id = self.peer_mid;
        p.set_token(vec![input.u8()]);
        let mut query = Vec::new();
        match input.u8() % 4 {
            0 | 1 => {
                wire::set_code(&mut p, code::POST);
                p.add_option(CoapOption::UriPath, b"rd".to_vec());
                query.push(format!("ep={ep}"));
                query.push(format!("lt={}", input.pick(&[0, 5, 60, 86_400, 100_000])));
                query.push((*input.pick(&["lwm2m=1.1", "lwm2m=1.0", "lwm2m=2"])).into());
                query.push((*input.pick(&["b=U", "b=UQ", "b=U", "apn=Ctnb"])).into());
                if input.u8() % 4 == 0 {
                    query.push(format!("device_id=d{}", input.u8() % 2));
                }
                p.payload = input.pick(&LINKS).as_bytes().to_vec();
            }
            2 => {
                wire::set_code(&mut p, code::POST);
                p.add_option(CoapOption::UriPath, b"rd".to_vec());
                p.add_option(CoapOption::UriPath, ep.into_bytes());
                if input.bool() {
                    query.push(format!("lt={}", input.pick(&[0, 5, 60])));
                }
                if input.bool() {
                    p.payload = input.pick(&LINKS).as_bytes().to_vec();
                }
            }
            _ => {
                wire::set_code(&mut p, code::DELETE);
                p.add_option(CoapOption::UriPath, b"rd".to_vec());
                p.add_option(CoapOption::UriPath, ep.into_bytes());
            }
        }
        for q in query {
            p.add_option(CoapOption::UriQuery, q.into_bytes());
        }
        let bytes = p.to_bytes_unlimited().unwrap_or_default();
        self.datagram(i, &bytes);
    }

    fn command(&mut self, input: &mut Input<'_>) {
        let ep = format!("ep{}", input.u8() % 3);
        let op = *input.pick(&OPS);
        let path = *input.pick(&CMD_PATHS);
        let json = match input.u8() % 6 {
            0 => String::from_utf8_lossy(input.bytes(120)).into_owned(),
            1 => format!(
                r#"{{"reqID":1,"msgType":"write","data":{{"basePath":"/3/0","content":[{{"path":"/1","type":"{}","value":"{}"}}]}}}}"#,
                input.pick(&["String", "Integer", "Float", "Boolean", "Opaque", "Objlnk", "Time"]),
                input.pick(&["12", "1.5", "true", "AAE=", "3:0", "x"]),
            ),
            2 => format!(
                r#"{{"msgType":"write-attr","data":{{"path":"{path}","pmin":"{}","pmax":"60"}}}}"#,
                input.u8()
            ),
            _ => format!(
                r#"{{"reqID":{},"msgType":"{op}","data":{{"path":"{path}","format":"{}"}}}}"#,
                input.u8(),
                input.pick(&["tlv", "json", "senml-json", "senml-cbor", "text", "bogus"]),
            ),
        };
        if let Ok(topic) = TopicName::new(format!("lwm2m/{ep}/dn/cmd")) {
            let qos = input.qos();
            self.gw.bus.publish(Message::new(
                topic,
                json.into_bytes(),
                qos,
                input.u8() % 8 == 0,
            ));
        }
        self.flush();
    }

    /// A device answers a request the gateway sent it.
    fn answer(&mut self, input: &mut Input<'_>) {
        let sent = &self.d.sent;
        if sent.is_empty() {
            return;
        }
        let Sent {
            peer: j,
            mid,
            token,
        } = sent[input.below(sent.len())].clone();
        let mut p = Packet::new();
        let kind = input.u8() % 5;
        match kind {
            0 | 1 => {
                p.header.set_type(if kind == 0 {
                    MessageType::Acknowledgement
                } else {
                    MessageType::Reset
                });
                p.header.message_id = mid;
                // Empty as RFC 7252 §4.2 wants, or with a code and no token, as buggy devices
                // send.
                wire::set_code(
                    &mut p,
                    *input.pick(&[code::EMPTY, code::EMPTY, code::CONTENT]),
                );
            }
            _ => {
                if kind == 2 {
                    p.header.set_type(MessageType::Acknowledgement);
                    p.header.message_id = mid;
                } else {
                    p.header.set_type(if kind == 3 {
                        MessageType::Confirmable
                    } else {
                        MessageType::NonConfirmable
                    });
                    self.peer_mid = self.peer_mid.wrapping_add(1);
                    p.header.message_id = 30_000 + self.peer_mid % 10_000;
                }
                p.set_token(token);
                wire::set_code(&mut p, *input.pick(&[0x45u8, 0x45, 0x44, 0x41, 0x42, 0x84]));
                let cf = *input.pick(&[0u16, 11542, 11543, 110, 112, 40, 42]);
                p.add_option(CoapOption::ContentFormat, wire::uint_bytes(u32::from(cf)));
                if input.bool() {
                    p.set_observe_value(u32::from(input.u8()));
                }
                p.payload = input.bytes(64).to_vec();
            }
        }
        let bytes = p.to_bytes_unlimited().unwrap_or_default();
        self.datagram(j, &bytes);
    }
}

/// One output of device `d`'s channel, carried out on the transport; a command request only
/// goes out while none is outstanding, with a token of 1 to 8 bytes.
fn output(d: &mut Device, o: Output, t: &mut Transport<Tag>, now: Instant) {
    match o {
        Output::Reply { exchange, packet } => t.respond(&exchange, packet, now),
        Output::Request {
            peer,
            packet,
            observe,
            token,
            cid,
        } => {
            assert!(
                d.track.is_none(),
                "command {cid} sent while {:?} is outstanding",
                d.track
            );
            assert!(!token.is_empty() && token.len() <= 8, "token {token:?}");
            d.track = Some((cid, None));
            t.request_with_token(peer, packet, true, observe, token, (d.slot, cid), now);
        }
        Output::Forget { peer, token } => t.cancel_request(peer, &token),
    }
}

impl Harness for World {
    fn op(&mut self, input: &mut Input<'_>) {
        let i = input.below(PEERS);
        match input.u8() % 10 {
            0 => {
                let ev = self.d.raw_datagram(i, input);
                self.dispatch(ev);
            }
            1..=3 => self.registration(i, input),
            4 | 5 => self.command(input),
            6..=8 => self.answer(input),
            _ => {
                let ev = self.d.step(input);
                self.dispatch(ev);
                self.d.tick_all();
                let now = self.d.now;
                for d in self.d.clients.values_mut() {
                    if let Some((_, Some(wait))) = d.track {
                        if now >= wait {
                            d.track = None;
                        }
                    }
                }
                self.flush();
            }
        }
    }

    fn finish(&mut self) {
        self.d.finish_all();
    }
}

/// The stateful LwM2M target (see the module header).
pub fn channel(data: &[u8]) {
    run(data, MAX_OPS, World::new);
}
