//! The CoAP transport: RFC 7252's message layer with RFC 7959 block-wise transfers and the
//! message side of RFC 7641, as a sans-I/O state machine ([`Transport`]) shared by every
//! CoAP-based gateway (the pub/sub gateway `switchyard-coap`, LwM2M), and [`demux`], the one UDP
//! driver both run on: a socket task owning the transport that demultiplexes requests to one task
//! per client, and the loop of those client tasks.
//!
//! Inputs carry `now` (`handle_datagram`, `respond`, `notify`, `request`, `poll`); outputs are
//! [`Event`]s and datagrams taken with [`Transport::poll_transmit`]. A driver owns the socket
//! and sleeps until [`Transport::next_deadline`], on tokio time, so tests pause the clock.
//!
//! What it guarantees:
//! - duplicate detection per (peer, message id) for EXCHANGE_LIFETIME (CON) / NON_LIFETIME
//!   (NON); a duplicate CON gets the cached reply again (§4.5);
//! - a CON request is answered with a piggybacked ACK, or with an empty ACK after
//!   ACK_TIMEOUT/2 and then a separate CON response (§5.2.2);
//! - outbound CONs are retransmitted after ACK_TIMEOUT × rand[1, ACK_RANDOM_FACTOR], doubling,
//!   MAX_RETRANSMIT times, then [`Event::Timeout`] (§4.2);
//! - an empty CON/NON (ping) and an unexpected response get RST; an RST to our CON or a recent
//!   NON is reported as [`Event::Reset`] (RFC 7641 §3.6 cancel);
//! - requests with an unknown critical option get 4.02 (§5.4.1); Block1 bodies are reassembled
//!   before a request goes up (2.31 / 4.08 / 4.13 + Size1), large responses and notifications
//!   go out as Block2 with Size2 and later blocks are served from the stored body (RFC 7959);
//! - tokens of requests we originate are never empty (8 random-start bytes).
//!
//! `T` is the user's tag for what it sends (e.g. which observation a notification belongs
//! to); it comes back in the events about that message.
//!
//! Must not know: any gateway, or what runs above CoAP (publish/subscribe, LwM2M objects,
//! authentication): the protocol logic stays in the gateway crates, behind [`demux`]'s traits.

mod block;
pub mod demux;
#[doc(hidden)]
pub mod fuzzing;
pub mod observe;
pub mod wire;

use block::{Block1Outcome, Blocks};
use coap_lite::{CoapOption, MessageType, Packet};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use wire::{code, Block};

/// The message types the transport speaks (re-exported so users need no second dependency).
pub use coap_lite;
pub use wire::{code_of, code_string, set_code, DecodeError};

/// RFC 7252 §4.8.2 MAX_LATENCY.
const MAX_LATENCY: Duration = Duration::from_secs(100);

/// The RFC 7252 §4.8 transmission parameters and the RFC 7959 limits.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// ACK_TIMEOUT (2 s).
    pub ack_timeout: Duration,
    /// ACK_RANDOM_FACTOR (1.5); values below 1 count as 1.
    pub ack_random_factor: f64,
    /// MAX_RETRANSMIT (4).
    pub max_retransmit: u32,
    /// Largest block we send or accept (16..=1024, a power of two).
    pub max_block_size: usize,
    /// Largest Block1 request body reassembled.
    pub max_body_size: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            ack_timeout: Duration::from_secs(2),
            ack_random_factor: 1.5,
            max_retransmit: 4,
            max_block_size: 1024,
            max_body_size: 4 * 1024 * 1024,
        }
    }
}

impl TransportConfig {
    fn factor(&self) -> f64 {
        if self.ack_random_factor.is_finite() && self.ack_random_factor >= 1.0 {
            self.ack_random_factor
        } else {
            1.0
        }
    }

    /// MAX_TRANSMIT_SPAN = ACK_TIMEOUT × (2^MAX_RETRANSMIT − 1) × ACK_RANDOM_FACTOR.
    pub fn max_transmit_span(&self) -> Duration {
        let n = (1u64 << self.max_retransmit.min(20)) - 1;
        self.ack_timeout.mul_f64(n as f64 * self.factor())
    }

    /// EXCHANGE_LIFETIME = MAX_TRANSMIT_SPAN + 2 × MAX_LATENCY + PROCESSING_DELAY (= ACK_TIMEOUT);
    /// 247 s with the defaults.
    pub fn exchange_lifetime(&self) -> Duration {
        self.max_transmit_span() + 2 * MAX_LATENCY + self.ack_timeout
    }

    /// NON_LIFETIME = MAX_TRANSMIT_SPAN + MAX_LATENCY; 145 s with the defaults.
    pub fn non_lifetime(&self) -> Duration {
        self.max_transmit_span() + MAX_LATENCY
    }
}

/// How to answer one inbound request; pass it back to [`Transport::respond`].
#[derive(Debug, Clone)]
pub struct Exchange {
    peer: SocketAddr,
    message_id: u16,
    confirmable: bool,
    token: Vec<u8>,
    block1: Option<Block>,
    block2_szx: Option<u8>,
    resource: String,
}

impl Exchange {
    /// Who sent the request.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
    /// The request's token.
    pub fn token(&self) -> &[u8] {
        &self.token
    }
    /// Whether the request was CON.
    pub fn is_confirmable(&self) -> bool {
        self.confirmable
    }
    /// The request's path and query (block-wise key).
    pub fn resource(&self) -> &str {
        &self.resource
    }
}

/// A complete inbound request (Block1 already reassembled).
#[derive(Debug)]
pub struct Request {
    /// Who sent it.
    pub peer: SocketAddr,
    /// The request with its whole body.
    pub packet: Packet,
    /// What [`Transport::respond`] needs.
    pub exchange: Exchange,
    /// On a DTLS listener, what the sender's handshake proved (set by the UDP driver; the
    /// transport itself knows nothing of DTLS and leaves it `None`).
    pub peer_identity: Option<switchyard_net::PeerIdentity>,
}

/// What the transport reports.
#[derive(Debug)]
pub enum Event<T> {
    /// A new request to answer with [`Transport::respond`].
    Request(Request),
    /// A response (or client-side notification) to a request sent with [`Transport::request`].
    Response {
        /// From whom.
        peer: SocketAddr,
        /// The request's tag.
        tag: T,
        /// The response.
        packet: Packet,
    },
    /// Our CON was acknowledged (empty ACK).
    Acked {
        /// To whom it was sent.
        peer: SocketAddr,
        /// Its tag.
        tag: T,
    },
    /// The peer rejected our CON or NON with RST.
    Reset {
        /// To whom it was sent.
        peer: SocketAddr,
        /// Its tag.
        tag: T,
    },
    /// Our CON was not acknowledged after MAX_RETRANSMIT retransmissions.
    Timeout {
        /// To whom it was sent.
        peer: SocketAddr,
        /// Its tag.
        tag: T,
    },
}

/// What became of a CON (or recent NON) we sent, as [`Event::Acked`], [`Event::Reset`] and
/// [`Event::Timeout`] report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged with an empty ACK (for a request: a separate response follows).
    Acked,
    /// Rejected with RST.
    Reset,
    /// Never acknowledged after MAX_RETRANSMIT retransmissions.
    Timeout,
}

type MsgKey = (SocketAddr, u16);

enum Seen {
    /// A CON request handed up, not answered yet.
    Pending,
    /// A CON request answered with an empty ACK; the response follows separately.
    EmptyAcked,
    /// The reply sent (re-sent on a duplicate CON).
    Replied(Vec<u8>),
    /// A NON request (duplicates ignored).
    Non,
}

struct Pending<T> {
    bytes: Vec<u8>,
    tag: Option<T>,
    token: Option<Vec<u8>>,
    attempts: u32,
    timeout: Duration,
}

struct Outstanding<T> {
    tag: T,
    observe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Retransmit(SocketAddr, u16),
    Piggyback(SocketAddr, u16),
}

/// The message layer of one CoAP endpoint (one UDP socket).
pub struct Transport<T> {
    cfg: TransportConfig,
    rng: rand::rngs::StdRng,
    next_mid: u16,
    seen: HashMap<MsgKey, (Seen, Instant)>,
    seen_order: VecDeque<(Instant, MsgKey)>,
    pending: HashMap<MsgKey, Pending<T>>,
    timers: BTreeSet<(Instant, Timer)>,
    non_sent: HashMap<MsgKey, (T, Instant)>,
    non_order: VecDeque<(Instant, MsgKey)>,
    outstanding: HashMap<(SocketAddr, Vec<u8>), Outstanding<T>>,
    blocks: Blocks,
    transmit: VecDeque<(SocketAddr, Vec<u8>)>,
}

impl<T: Clone> Transport<T> {
    /// A transport with random message ids and tokens.
    pub fn new(cfg: TransportConfig) -> Self {
        Self::with_seed(cfg, rand::random())
    }

    /// A transport whose randomness (message ids, tokens, retransmission jitter) comes from
    /// `seed`, for reproducible tests.
    pub fn with_seed(cfg: TransportConfig, seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Transport {
            next_mid: rng.gen(),
            rng,
            cfg,
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            pending: HashMap::new(),
            timers: BTreeSet::new(),
            non_sent: HashMap::new(),
            non_order: VecDeque::new(),
            outstanding: HashMap::new(),
            blocks: Blocks::default(),
            transmit: VecDeque::new(),
        }
    }

    /// The parameters in force.
    pub fn config(&self) -> &TransportConfig {
        &self.cfg
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// When [`poll`](Self::poll) has work next.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.first().map(|(at, _)| *at);
        let sweep = self.seen_order.front().map(|(at, _)| *at);
        match (timer, sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Outbound CONs not yet acknowledged.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes one datagram from `peer`.
    pub fn handle_datagram(&mut self, peer: SocketAddr, buf: &[u8], now: Instant) -> Vec<Event<T>> {
        self.expire(now);
        let mut events = Vec::new();
        let packet = match wire::decode(buf) {
            Ok(p) => p,
            Err(DecodeError::Ignore) => return events,
            Err(DecodeError::Reject {
                message_id,
                message_type,
                reason,
            }) => {
                tracing::debug!(%peer, reason, "CoAP message format error");
                if matches!(
                    message_type,
                    MessageType::Confirmable | MessageType::NonConfirmable
                ) {
                    self.send_empty(peer, MessageType::Reset, message_id);
                }
                return events;
            }
        };
        let mid = packet.header.message_id;
        let c = code_of(&packet);
        match packet.header.get_type() {
            MessageType::Acknowledgement => self.on_ack(peer, packet, &mut events),
            MessageType::Reset => self.on_reset(peer, mid, &mut events),
            MessageType::Confirmable | MessageType::NonConfirmable => {
                if c == code::EMPTY {
                    // RFC 7252 §4.3: an empty CON is a ping, answered with RST.
                    self.send_empty(peer, MessageType::Reset, mid);
                } else if wire::is_request(c) {
                    self.on_request(peer, packet, now, &mut events);
                } else if wire::is_response(c) {
                    self.on_separate_response(peer, packet, now, &mut events);
                } else if packet.header.get_type() == MessageType::Confirmable {
                    self.send_empty(peer, MessageType::Reset, mid);
                }
            }
        }
        events
    }

    fn on_request(
        &mut self,
        peer: SocketAddr,
        packet: Packet,
        now: Instant,
        ev: &mut Vec<Event<T>>,
    ) {
        let mid = packet.header.message_id;
        let key = (peer, mid);
        let con = packet.header.get_type() == MessageType::Confirmable;
        if let Some((seen, _)) = self.seen.get(&key) {
            match seen {
                Seen::Replied(bytes) if con => self.transmit.push_back((peer, bytes.clone())),
                Seen::EmptyAcked if con => self.send_empty(peer, MessageType::Acknowledgement, mid),
                _ => {}
            }
            return;
        }
        let lifetime = if con {
            self.cfg.exchange_lifetime()
        } else {
            self.cfg.non_lifetime()
        };
        self.remember(
            key,
            if con { Seen::Pending } else { Seen::Non },
            now + lifetime,
        );
        if con {
            self.timers
                .insert((now + self.cfg.ack_timeout / 2, Timer::Piggyback(peer, mid)));
        }
        let mut exchange = Exchange {
            peer,
            message_id: mid,
            confirmable: con,
            token: packet.get_token().to_vec(),
            block1: None,
            block2_szx: None,
            resource: wire::resource_key(&packet),
        };
        if let Some(opt) = wire::unknown_critical_option(&packet) {
            let text = format!("unknown critical option {opt}");
            self.respond(&exchange, error_response(code::BAD_OPTION, &text), now);
            return;
        }
        match wire::block_option(&packet, CoapOption::Block2) {
            None => {}
            Some(Err(())) => {
                self.respond(
                    &exchange,
                    error_response(code::BAD_REQUEST, "bad Block2"),
                    now,
                );
                return;
            }
            Some(Ok(b)) => {
                exchange.block2_szx = Some(b.szx);
                if b.num > 0 && self.serve_block2(&exchange, b, now) {
                    return;
                }
            }
        }
        let packet = match self.block1(packet, &mut exchange, now) {
            Some(p) => p,
            None => return,
        };
        ev.push(Event::Request(Request {
            peer,
            packet,
            exchange,
            peer_identity: None,
        }));
    }

    /// Block1 reassembly; `None` when the transport answered the block itself.
    fn block1(&mut self, mut packet: Packet, ex: &mut Exchange, now: Instant) -> Option<Packet> {
        let size1 = wire::uint_option(&packet, CoapOption::Size1);
        let limit = self.cfg.max_body_size;
        if let Some(Ok(s)) = size1 {
            if usize::try_from(s).map_or(true, |s| s > limit) {
                self.respond(ex, too_large(limit), now);
                return None;
            }
        }
        let b = match wire::block_option(&packet, CoapOption::Block1) {
            None => return Some(packet),
            Some(Err(())) => {
                self.respond(ex, error_response(code::BAD_REQUEST, "bad Block1"), now);
                return None;
            }
            Some(Ok(b)) => b,
        };
        let key = (ex.peer, ex.resource.clone());
        let lifetime = self.cfg.exchange_lifetime();
        let max_block = self.cfg.max_block_size;
        match self
            .blocks
            .on_block1(key, b, &packet.payload, max_block, limit, now, lifetime)
        {
            Block1Outcome::Continue(reply) => {
                let mut r = Packet::new();
                set_code(&mut r, code::CONTINUE);
                r.add_option(CoapOption::Block1, reply.to_bytes());
                self.respond(ex, r, now);
                None
            }
            Block1Outcome::Incomplete => {
                let r = error_response(code::REQUEST_ENTITY_INCOMPLETE, "block out of sequence");
                self.respond(ex, r, now);
                None
            }
            Block1Outcome::TooLarge => {
                self.respond(ex, too_large(limit), now);
                None
            }
            Block1Outcome::Complete(body, last) => {
                packet.payload = body;
                packet.clear_option(CoapOption::Block1);
                packet.clear_option(CoapOption::Size1);
                ex.block1 = Some(last);
                Some(packet)
            }
        }
    }

    fn serve_block2(&mut self, ex: &Exchange, b: Block, now: Instant) -> bool {
        let key = (ex.peer, ex.resource.clone());
        let Some(stored) = self.blocks.body(&key) else {
            return false;
        };
        let szx = b.szx.min(Block::szx_for(self.cfg.max_block_size));
        let blk = Block { szx, ..b };
        let Some(start) = blk.offset().filter(|o| *o < stored.body.len()) else {
            let r = error_response(code::BAD_OPTION, "Block2 beyond the end of the body");
            self.respond(ex, r, now);
            return true;
        };
        let end = start.saturating_add(blk.size()).min(stored.body.len());
        let mut r = stored.template.clone();
        r.payload = stored.body[start..end].to_vec();
        let more = end < stored.body.len();
        r.add_option(CoapOption::Block2, Block { more, ..blk }.to_bytes());
        self.send_reply(ex, r, now);
        true
    }

    /// Answers a request. `response` carries the code, options and payload; the transport
    /// fills in type, message id and token, echoes Block1, and splits a large payload into
    /// Block2 blocks.
    pub fn respond(&mut self, ex: &Exchange, mut response: Packet, now: Instant) {
        if let Some(b1) = ex.block1 {
            if response.get_first_option(CoapOption::Block1).is_none() {
                response.add_option(CoapOption::Block1, b1.to_bytes());
            }
        }
        let max = self.block_size(ex.block2_szx);
        if response.payload.len() > max {
            let body = std::mem::take(&mut response.payload);
            response = self.first_block(ex.peer, &ex.resource, response, body, max, now);
        }
        self.send_reply(ex, response, now);
    }

    fn block_size(&self, requested_szx: Option<u8>) -> usize {
        let ours = Block::szx_for(self.cfg.max_block_size);
        let szx = requested_szx.map_or(ours, |s| s.min(ours));
        1usize << (usize::from(szx) + 4)
    }

    /// Stores `body` and returns the template carrying its first block (RFC 7959 §2.4, with
    /// Size2 per §4).
    fn first_block(
        &mut self,
        peer: SocketAddr,
        resource: &str,
        mut template: Packet,
        body: Vec<u8>,
        block_size: usize,
        now: Instant,
    ) -> Packet {
        let total = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let mut stored = template.clone();
        stored.clear_option(CoapOption::Observe);
        stored.clear_option(CoapOption::Block2);
        stored.clear_option(CoapOption::Block1);
        stored.set_token(Vec::new());
        template.payload = body[..block_size.min(body.len())].to_vec();
        let szx = Block::szx_for(block_size);
        template.add_option(
            CoapOption::Block2,
            Block {
                num: 0,
                more: true,
                szx,
            }
            .to_bytes(),
        );
        wire::set_uint_option(&mut template, CoapOption::Size2, total);
        let lifetime = self.cfg.exchange_lifetime();
        self.blocks
            .store_body((peer, resource.to_owned()), stored, body, now, lifetime);
        template
    }

    fn send_reply(&mut self, ex: &Exchange, mut r: Packet, now: Instant) {
        let key = (ex.peer, ex.message_id);
        r.set_token(ex.token.clone());
        let state = self.seen.get(&key).map(|(s, _)| match s {
            Seen::Pending => 0,
            Seen::EmptyAcked => 1,
            _ => 2,
        });
        match state {
            Some(0) if ex.confirmable => {
                r.header.set_type(MessageType::Acknowledgement);
                r.header.message_id = ex.message_id;
                if let Some(bytes) = encode(&r) {
                    if let Some((seen, _)) = self.seen.get_mut(&key) {
                        *seen = Seen::Replied(bytes.clone());
                    }
                    self.transmit.push_back((ex.peer, bytes));
                }
            }
            Some(1) => {
                // RFC 7252 §5.2.2: a separate response is sent as CON and retransmitted.
                self.send_message(ex.peer, r, true, None, None, now);
            }
            _ => {
                self.send_message(ex.peer, r, false, None, None, now);
            }
        }
    }

    /// Sends a server-originated response such as an RFC 7641 notification (code, token and
    /// options set by the caller). A payload above the block size goes out as Block2 block 0,
    /// the rest served to follow-up GETs on `resource`. Returns the message id.
    pub fn notify(
        &mut self,
        peer: SocketAddr,
        mut packet: Packet,
        confirmable: bool,
        tag: T,
        resource: &str,
        now: Instant,
    ) -> u16 {
        let max = self.block_size(None);
        if packet.payload.len() > max {
            let body = std::mem::take(&mut packet.payload);
            packet = self.first_block(peer, resource, packet, body, max, now);
        }
        self.send_message(peer, packet, confirmable, Some(tag), None, now)
    }

    /// Sends a request we originate (client role, e.g. LwM2M commands) with a fresh non-empty
    /// token. Responses come back as [`Event::Response`] with `tag`; with `observe`, every
    /// later notification with that token too, until [`cancel_request`](Self::cancel_request).
    /// Returns the token.
    pub fn request(
        &mut self,
        peer: SocketAddr,
        packet: Packet,
        confirmable: bool,
        observe: bool,
        tag: T,
        now: Instant,
    ) -> Vec<u8> {
        let token: [u8; 8] = self.rng.gen();
        self.request_with_token(peer, packet, confirmable, observe, token.to_vec(), tag, now)
    }

    /// Like [`request`](Self::request) with a token the caller chose (e.g. RFC 7641 §3.6
    /// explicit cancel: a GET Observe=1 with the observation's own token). An empty token is
    /// replaced by a fresh random one, so requests we originate never carry an empty token.
    /// A request reusing the token of an outstanding one replaces it. Returns the token.
    #[allow(clippy::too_many_arguments)]
    pub fn request_with_token(
        &mut self,
        peer: SocketAddr,
        mut packet: Packet,
        confirmable: bool,
        observe: bool,
        token: Vec<u8>,
        tag: T,
        now: Instant,
    ) -> Vec<u8> {
        let token = if token.is_empty() || token.len() > 8 {
            let fresh: [u8; 8] = self.rng.gen();
            fresh.to_vec()
        } else {
            token
        };
        packet.set_token(token.clone());
        self.outstanding.insert(
            (peer, token.clone()),
            Outstanding {
                tag: tag.clone(),
                observe,
            },
        );
        self.send_message(
            peer,
            packet,
            confirmable,
            Some(tag),
            Some(token.clone()),
            now,
        );
        token
    }

    /// Forgets a request or observation we originated; later responses with its token are
    /// answered with RST (RFC 7641 §3.6).
    pub fn cancel_request(&mut self, peer: SocketAddr, token: &[u8]) {
        self.outstanding.remove(&(peer, token.to_vec()));
    }

    fn send_message(
        &mut self,
        peer: SocketAddr,
        mut packet: Packet,
        confirmable: bool,
        tag: Option<T>,
        token: Option<Vec<u8>>,
        now: Instant,
    ) -> u16 {
        let mid = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        packet.header.message_id = mid;
        packet.header.set_type(if confirmable {
            MessageType::Confirmable
        } else {
            MessageType::NonConfirmable
        });
        let Some(bytes) = encode(&packet) else {
            return mid;
        };
        self.transmit.push_back((peer, bytes.clone()));
        let key = (peer, mid);
        if confirmable {
            let factor = self.cfg.factor();
            let jitter = if factor > 1.0 {
                self.rng.gen_range(1.0..=factor)
            } else {
                1.0
            };
            let timeout = self.cfg.ack_timeout.mul_f64(jitter);
            self.timers
                .insert((now + timeout, Timer::Retransmit(peer, mid)));
            self.pending.insert(
                key,
                Pending {
                    bytes,
                    tag,
                    token,
                    attempts: 0,
                    timeout,
                },
            );
        } else if let Some(tag) = tag {
            let expires = now + self.cfg.non_lifetime();
            self.non_sent.insert(key, (tag, expires));
            self.non_order.push_back((expires, key));
        }
        mid
    }

    fn on_ack(&mut self, peer: SocketAddr, packet: Packet, ev: &mut Vec<Event<T>>) {
        let key = (peer, packet.header.message_id);
        // RFC 7252 §4.2: an ACK that matches nothing is silently ignored.
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        // A piggybacked response answers the request this ACK acknowledges, by its token (RFC
        // 7252 §5.2.1, §5.3.2). Anything else in an ACK (empty, a "response" to one of our
        // notifications, a token that is not the request's) still acknowledges the message:
        // reported as Acked, so the sender is not left waiting for an event that never comes
        // (a CoAP observer's notification window, an LwM2M device's command queue).
        let piggybacked =
            code_of(&packet) != code::EMPTY && p.token.as_deref() == Some(packet.get_token());
        let tk = (peer, packet.get_token().to_vec());
        if let Some(o) = self.outstanding.get(&tk).filter(|_| piggybacked) {
            let tag = o.tag.clone();
            if !o.observe || !has_observe(&packet) {
                self.outstanding.remove(&tk);
            }
            ev.push(Event::Response { peer, tag, packet });
        } else if let Some(tag) = p.tag {
            ev.push(Event::Acked { peer, tag });
        }
    }

    fn on_reset(&mut self, peer: SocketAddr, mid: u16, ev: &mut Vec<Event<T>>) {
        let key = (peer, mid);
        if let Some(p) = self.pending.remove(&key) {
            if let Some(token) = p.token {
                self.outstanding.remove(&(peer, token));
            }
            if let Some(tag) = p.tag {
                ev.push(Event::Reset { peer, tag });
            }
        } else if let Some((tag, _)) = self.non_sent.remove(&key) {
            ev.push(Event::Reset { peer, tag });
        }
    }

    fn on_separate_response(
        &mut self,
        peer: SocketAddr,
        packet: Packet,
        now: Instant,
        ev: &mut Vec<Event<T>>,
    ) {
        let mid = packet.header.message_id;
        let con = packet.header.get_type() == MessageType::Confirmable;
        let key = (peer, mid);
        if let Some((seen, _)) = self.seen.get(&key) {
            if let Seen::Replied(bytes) = seen {
                self.transmit.push_back((peer, bytes.clone()));
            }
            return;
        }
        let tk = (peer, packet.get_token().to_vec());
        let Some(o) = self.outstanding.get(&tk) else {
            // RFC 7252 §5.3.2 / RFC 7641 §3.6: a response nobody waits for is rejected.
            self.send_empty(peer, MessageType::Reset, mid);
            return;
        };
        let tag = o.tag.clone();
        if !o.observe || !has_observe(&packet) {
            self.outstanding.remove(&tk);
        }
        let reply = if con {
            let bytes = empty(MessageType::Acknowledgement, mid);
            self.transmit.push_back((peer, bytes.clone()));
            Seen::Replied(bytes)
        } else {
            Seen::Non
        };
        let lifetime = self.cfg.exchange_lifetime();
        self.remember(key, reply, now + lifetime);
        ev.push(Event::Response { peer, tag, packet });
    }

    /// Fires due timers: retransmissions, timeouts, empty ACKs for slow answers; drops expired
    /// state.
    pub fn poll(&mut self, now: Instant) -> Vec<Event<T>> {
        let mut ev = Vec::new();
        while let Some((at, timer)) = self.timers.first().copied() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, timer));
            match timer {
                Timer::Retransmit(peer, mid) => self.retransmit(peer, mid, now, &mut ev),
                Timer::Piggyback(peer, mid) => {
                    if let Some((seen @ Seen::Pending, _)) = self.seen.get_mut(&(peer, mid)) {
                        *seen = Seen::EmptyAcked;
                        self.send_empty(peer, MessageType::Acknowledgement, mid);
                    }
                }
            }
        }
        self.expire(now);
        ev
    }

    fn retransmit(&mut self, peer: SocketAddr, mid: u16, now: Instant, ev: &mut Vec<Event<T>>) {
        let key = (peer, mid);
        let Some(p) = self.pending.get_mut(&key) else {
            return;
        };
        if p.attempts >= self.cfg.max_retransmit {
            if let Some(p) = self.pending.remove(&key) {
                if let Some(token) = p.token {
                    self.outstanding.remove(&(peer, token));
                }
                if let Some(tag) = p.tag {
                    ev.push(Event::Timeout { peer, tag });
                }
            }
            return;
        }
        p.attempts += 1;
        p.timeout = p.timeout.saturating_mul(2);
        self.transmit.push_back((peer, p.bytes.clone()));
        self.timers
            .insert((now + p.timeout, Timer::Retransmit(peer, mid)));
    }

    fn remember(&mut self, key: MsgKey, seen: Seen, expires: Instant) {
        self.seen.insert(key, (seen, expires));
        self.seen_order.push_back((expires, key));
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, key)) = self.seen_order.front().copied() {
            if at > now {
                break;
            }
            self.seen_order.pop_front();
            if self.seen.get(&key).is_some_and(|(_, e)| *e <= now) {
                self.seen.remove(&key);
            }
        }
        while let Some((at, key)) = self.non_order.front().copied() {
            if at > now {
                break;
            }
            self.non_order.pop_front();
            if self.non_sent.get(&key).is_some_and(|(_, e)| *e <= now) {
                self.non_sent.remove(&key);
            }
        }
        self.blocks.expire(now);
    }

    fn send_empty(&mut self, peer: SocketAddr, t: MessageType, mid: u16) {
        self.transmit.push_back((peer, empty(t, mid)));
    }

    /// Request bodies being reassembled.
    pub fn assemblies_len(&self) -> usize {
        self.blocks.assemblies_len()
    }
}

fn has_observe(p: &Packet) -> bool {
    p.get_first_option(CoapOption::Observe).is_some()
}

fn empty(t: MessageType, mid: u16) -> Vec<u8> {
    let type_bits: u8 = match t {
        MessageType::Confirmable => 0,
        MessageType::NonConfirmable => 1,
        MessageType::Acknowledgement => 2,
        MessageType::Reset => 3,
    };
    let [hi, lo] = mid.to_be_bytes();
    vec![0x40 | (type_bits << 4), 0, hi, lo]
}

fn encode(p: &Packet) -> Option<Vec<u8>> {
    match p.to_bytes_unlimited() {
        Ok(b) => Some(b),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode CoAP message");
            None
        }
    }
}

/// A response with `code` and a diagnostic payload (RFC 7252 §5.5.2).
pub fn error_response(c: u8, diagnostic: &str) -> Packet {
    let mut p = Packet::new();
    set_code(&mut p, c);
    p.payload = diagnostic.as_bytes().to_vec();
    p
}

fn too_large(limit: usize) -> Packet {
    let mut p = error_response(code::REQUEST_ENTITY_TOO_LARGE, "request body too large");
    wire::set_uint_option(
        &mut p,
        CoapOption::Size1,
        u32::try_from(limit).unwrap_or(u32::MAX),
    );
    p
}

/// A response with `code` and no payload.
pub fn response(c: u8) -> Packet {
    let mut p = Packet::new();
    set_code(&mut p, c);
    p
}

#[cfg(test)]
mod tests;
