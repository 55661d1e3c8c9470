//! The CoAP transport target: three peers send raw datagrams and well-formed requests (CON and
//! NON, reused message ids, tokens, Block1 bodies block by block, Block2 follow-ups, Size1,
//! Observe, unknown critical options); the application answers some requests (with bodies large
//! enough for Block2), sends notifications and its own requests; the peers acknowledge, reset or
//! answer what the transport sent; the clock moves.
//!
//! Every body the harness produces is the same position-dependent pattern, so blocks can be
//! checked without state. Checked throughout:
//! - every datagram the transport sends decodes strictly and round-trips;
//! - a CON the transport originates is sent at most 1 + MAX_RETRANSMIT times (RFC 7252 §4.2);
//! - every Block2 block carries the bytes of its offset; every request body reassembled from a
//!   peer that sent only well-formed requests is the pattern from offset 0 (RFC 7959);
//! - events name only tags the application issued, and at most one of Acked/Reset/Timeout per
//!   tag;
//! - at the end, every CON the peers sent has been answered with an ACK or RST (RFC 7252 §4.2),
//!   unless its message id was first used by a NON.

use super::assert_sendable;
use crate::wire::{self, code, Block};
use crate::{Event, Request, Transport, TransportConfig};
use coap_lite::{CoapOption, MessageType, Packet};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;
use switchyard_bus::fuzzing::Input;

const PEERS: usize = 3;
const MAX_OPS: usize = 500;
const PATHS: [&[&str]; 6] = [
    &["ps", "a"],
    &["ps", "a", "b"],
    &["mqtt", "connection"],
    &["rd"],
    &["x"],
    &[],
];

/// The byte every harness body has at `offset`.
pub(crate) fn pattern_byte(offset: usize) -> u8 {
    (offset % 251) as u8
}

/// `len` bytes of the pattern from `offset`.
pub(crate) fn pattern(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len).map(pattern_byte).collect()
}

pub(crate) fn peer(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000 + i as u16))
}

/// A Block2 block must hold the pattern at its offset.
pub(crate) fn check_block2(p: &Packet) {
    let Some(Ok(b)) = wire::block_option(p, CoapOption::Block2) else {
        return;
    };
    if p.payload.is_empty() || wire::code_of(p) >> 5 != 2 {
        return;
    }
    assert!(
        p.payload.len() <= b.size(),
        "block larger than its SZX: {b:?}"
    );
    let Some(offset) = b.offset() else {
        panic!("block offset overflows: {b:?}");
    };
    for (k, byte) in p.payload.iter().enumerate() {
        assert_eq!(*byte, pattern_byte(offset + k), "Block2 {b:?} byte {k}");
    }
}

/// A well-formed request (or, with the right code, an empty message or a stray response) built
/// from the input; its body follows the pattern.
pub(crate) fn build_request(input: &mut Input<'_>, mid: u16, query: &[String]) -> Packet {
    let mut p = Packet::new();
    let flags = input.u8();
    p.header.set_type(if flags & 1 == 0 {
        MessageType::Confirmable
    } else {
        MessageType::NonConfirmable
    });
    p.header.message_id = mid;
    let c = *input.pick(&[
        code::GET,
        code::POST,
        code::POST,
        code::PUT,
        code::DELETE,
        code::EMPTY,
        code::CONTENT,
    ]);
    wire::set_code(&mut p, c);
    if c == code::EMPTY {
        return p;
    }
    let tkl = input.below(9);
    p.set_token(input.bytes(tkl).to_vec());
    for seg in *input.pick(&PATHS) {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    if flags & 2 != 0 {
        p.set_observe_value(u32::from(input.u8() % 3));
    }
    if flags & 4 != 0 {
        let b = Block {
            num: u32::from(input.u8() % 4),
            more: false,
            szx: input.u8() % 7,
        };
        p.add_option(CoapOption::Block2, b.to_bytes());
    }
    if flags & 8 != 0 {
        p.add_option(CoapOption::Unknown(2049), vec![1]);
    }
    if flags & 16 != 0 {
        wire::set_uint_option(
            &mut p,
            CoapOption::Size1,
            *input.pick(&[10u32, 5000, u32::MAX]),
        );
    }
    if flags & 32 != 0 {
        // One block of a Block1 body: a full block while more follow.
        let b = Block {
            num: u32::from(input.u8() % 6),
            more: input.bool(),
            szx: input.u8() % 7,
        };
        let len = if b.more {
            b.size()
        } else {
            input.below(b.size() + 1)
        };
        p.add_option(CoapOption::Block1, b.to_bytes());
        p.payload = pattern(b.offset().unwrap_or(0), len);
    } else {
        p.payload = pattern(0, usize::from(input.u8()));
    }
    p
}

struct World {
    t: Transport<u64>,
    cfg: TransportConfig,
    now: Instant,
    /// Peers that sent raw bytes: their request bodies are not the pattern.
    tainted: [bool; PEERS],
    pending: Vec<Request>,
    /// Messages the transport originated (peer, mid, CON, token, is a request).
    ours: Vec<(SocketAddr, u16, bool, Vec<u8>, bool)>,
    con_sends: HashMap<(SocketAddr, u16), u32>,
    issued: HashSet<u64>,
    finished: HashSet<u64>,
    next_tag: u64,
    /// How each (peer, mid) was first used by a peer: CON or not.
    first_use: HashMap<(SocketAddr, u16), bool>,
    /// (peer, mid) of the transport's ACKs and RSTs.
    answered: HashSet<(SocketAddr, u16)>,
    tokens: Vec<(SocketAddr, Vec<u8>)>,
    last: Option<(usize, Vec<u8>)>,
    peer_mid: u16,
}

impl World {
    fn transmit(&mut self) {
        while let Some((addr, bytes)) = self.t.poll_transmit() {
            let p = assert_sendable(&bytes);
            let mid = p.header.message_id;
            check_block2(&p);
            match p.header.get_type() {
                MessageType::Acknowledgement | MessageType::Reset => {
                    self.answered.insert((addr, mid));
                }
                t => {
                    let con = t == MessageType::Confirmable;
                    if con {
                        let n = self.con_sends.entry((addr, mid)).or_insert(0);
                        *n += 1;
                        assert!(
                            *n <= 1 + self.cfg.max_retransmit,
                            "CON {mid} sent {n} times"
                        );
                    }
                    if !self.ours.iter().any(|o| o.0 == addr && o.1 == mid) {
                        let request = wire::is_request(wire::code_of(&p));
                        self.ours
                            .push((addr, mid, con, p.get_token().to_vec(), request));
                        if self.ours.len() > 64 {
                            self.ours.remove(0);
                        }
                    }
                }
            }
        }
    }

    fn events(&mut self, events: Vec<Event<u64>>) {
        for ev in events {
            match ev {
                Event::Request(r) => {
                    let i = usize::from(r.peer.port().saturating_sub(5000));
                    if !self.tainted.get(i).copied().unwrap_or(true) {
                        for (k, byte) in r.packet.payload.iter().enumerate() {
                            assert_eq!(*byte, pattern_byte(k), "reassembled body byte {k}");
                        }
                    }
                    assert!(r.packet.payload.len() <= self.cfg.max_body_size.max(256));
                    self.pending.push(r);
                    if self.pending.len() > 16 {
                        self.pending.remove(0);
                    }
                }
                Event::Response { tag, .. } => assert!(self.issued.contains(&tag)),
                Event::Acked { tag, .. }
                | Event::Reset { tag, .. }
                | Event::Timeout { tag, .. } => {
                    assert!(
                        self.issued.contains(&tag),
                        "event for tag {tag} never issued"
                    );
                    assert!(self.finished.insert(tag), "second outcome for tag {tag}");
                }
            }
        }
        self.transmit();
    }

    fn datagram(&mut self, i: usize, bytes: &[u8]) {
        if let Ok(p) = wire::decode(bytes) {
            let t = p.header.get_type();
            if matches!(t, MessageType::Confirmable | MessageType::NonConfirmable) {
                self.first_use
                    .entry((peer(i), p.header.message_id))
                    .or_insert(t == MessageType::Confirmable);
            }
        }
        self.last = Some((i, bytes.to_vec()));
        let ev = self.t.handle_datagram(peer(i), bytes, self.now);
        self.events(ev);
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.issued.insert(self.next_tag);
        self.next_tag
    }

    fn op(&mut self, input: &mut Input<'_>) {
        let i = input.below(PEERS);
        match input.u8() % 12 {
            0 => {
                self.tainted[i] = true;
                let raw = input.bytes(255).to_vec();
                self.datagram(i, &raw);
            }
            1..=3 => {
                let mid = u16::from(input.u8() % 16);
                let p = build_request(input, mid, &[]);
                let bytes = p.to_bytes_unlimited().unwrap_or_default();
                self.datagram(i, &bytes);
            }
            4 | 5 => {
                if self.pending.is_empty() {
                    return;
                }
                let r = self.pending.remove(input.below(self.pending.len()));
                let mut resp = Packet::new();
                let c = *input.pick(&[code::CONTENT, code::CHANGED, code::NOT_FOUND]);
                wire::set_code(&mut resp, c);
                resp.payload = pattern(0, *input.pick(&[0, 10, 100, 1500, 5000]));
                if input.bool() {
                    resp.set_observe_value(u32::from(input.u8()));
                }
                self.t.respond(&r.exchange, resp, self.now);
                self.transmit();
            }
            6 => {
                let mut p = Packet::new();
                wire::set_code(&mut p, code::CONTENT);
                p.set_token(input.bytes(8).to_vec());
                p.set_observe_value(u32::from(input.u16()));
                p.payload = pattern(0, *input.pick(&[0, 20, 300, 2000]));
                let con = input.bool();
                let tag = self.tag();
                let resource = *input.pick(&["/ps/a", "/ps/a/b", "/x"]);
                self.t.notify(peer(i), p, con, tag, resource, self.now);
                self.transmit();
            }
            7 => {
                let mut p = Packet::new();
                wire::set_code(&mut p, *input.pick(&[code::GET, code::PUT]));
                p.add_option(CoapOption::UriPath, b"3".to_vec());
                let observe = input.bool();
                if observe {
                    p.set_observe_value(0);
                }
                let con = input.bool();
                let tag = self.tag();
                let token = if input.bool() {
                    self.t.request(peer(i), p, con, observe, tag, self.now)
                } else {
                    let token = input.bytes(9).to_vec();
                    self.t
                        .request_with_token(peer(i), p, con, observe, token, tag, self.now)
                };
                assert!(!token.is_empty() && token.len() <= 8, "token {token:?}");
                self.tokens.push((peer(i), token));
                self.transmit();
            }
            8 | 9 => self.answer(input),
            10 => {
                self.now += input.step();
                let ev = self.t.poll(self.now);
                self.events(ev);
                if let Some(d) = self.t.next_deadline() {
                    assert!(d > self.now, "a deadline already due after poll");
                }
            }
            _ => {
                if input.bool() {
                    // A peer retransmits its last datagram.
                    if let Some((j, bytes)) = self.last.clone() {
                        self.datagram(j, &bytes);
                    }
                } else if !self.tokens.is_empty() {
                    let (addr, token) = self.tokens[input.below(self.tokens.len())].clone();
                    self.t.cancel_request(addr, &token);
                }
            }
        }
    }

    /// A peer answers something the transport sent.
    fn answer(&mut self, input: &mut Input<'_>) {
        if self.ours.is_empty() {
            return;
        }
        let (addr, mid, con, token, request) = self.ours[input.below(self.ours.len())].clone();
        let Some(j) = (0..PEERS).find(|j| peer(*j) == addr) else {
            return;
        };
        let mut p = Packet::new();
        // Empty ACKs and RSTs, as RFC 7252 §4.2 wants, sometimes with a code.
        wire::set_code(
            &mut p,
            *input.pick(&[code::EMPTY, code::EMPTY, code::CONTENT]),
        );
        match input.u8() % 4 {
            0 if con => p.header.set_type(MessageType::Acknowledgement),
            1 => p.header.set_type(MessageType::Reset),
            2 if con && request => {
                p.header.set_type(MessageType::Acknowledgement);
                wire::set_code(&mut p, code::CONTENT);
                p.set_token(token);
                if input.bool() {
                    p.set_observe_value(u32::from(input.u8()));
                }
                p.payload = b"21.5".to_vec();
            }
            _ if request => {
                // A separate response (or a notification) with a new message id.
                self.peer_mid = self.peer_mid.wrapping_add(1);
                p.header.set_type(if input.bool() {
                    MessageType::Confirmable
                } else {
                    MessageType::NonConfirmable
                });
                p.header.message_id = 1000 + self.peer_mid % 1000;
                wire::set_code(&mut p, code::CONTENT);
                p.set_token(token);
                if input.bool() {
                    p.set_observe_value(u32::from(input.u8()));
                }
                let bytes = p.to_bytes_unlimited().unwrap_or_default();
                return self.datagram(j, &bytes);
            }
            _ => return,
        }
        p.header.message_id = mid;
        let bytes = p.to_bytes_unlimited().unwrap_or_default();
        self.datagram(j, &bytes);
    }
}

/// The CoAP transport target (see the module header).
pub fn transport(data: &[u8]) {
    let mut input = Input::new(data);
    let cfg = TransportConfig {
        max_retransmit: u32::from(input.u8() % 5),
        max_block_size: 16 << (input.u8() % 7),
        max_body_size: *input.pick(&[64, 4096, 1 << 20]),
        ..TransportConfig::default()
    };
    let seed = u64::from(input.u32());
    let mut w = World {
        t: Transport::with_seed(cfg.clone(), seed),
        cfg,
        now: Instant::now(),
        tainted: [false; PEERS],
        pending: Vec::new(),
        ours: Vec::new(),
        con_sends: HashMap::new(),
        issued: HashSet::new(),
        finished: HashSet::new(),
        next_tag: 0,
        first_use: HashMap::new(),
        answered: HashSet::new(),
        tokens: Vec::new(),
        last: None,
        peer_mid: 0,
    };
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        w.op(&mut input);
    }
    // Past the piggyback timer: every CON has had its answer.
    w.now += w.cfg.ack_timeout;
    let ev = w.t.poll(w.now);
    w.events(ev);
    for ((addr, mid), con) in &w.first_use {
        if *con {
            assert!(
                w.answered.contains(&(*addr, *mid)),
                "CON {mid} from {addr} never acknowledged"
            );
        }
    }
}
