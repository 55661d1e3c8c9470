//! The world the stateful harnesses of the CoAP-based gateways share: the socket task's side of
//! the demux, synchronously, on simulated time. One [`Transport`] between the gateway and a few
//! peers (numbered from a base port), the clients by the key the gateway routes by, and the
//! runtime their session opens run on.
//!
//! Owns: feeding a peer's datagram to the transport, clock steps, sending what the transport
//! has (every message must round-trip) while recording the ones the peers may answer, opening a
//! new client's session (takeovers served on the clients held), and the flush loop the socket
//! task runs: every client pulls its deliveries, its outputs go to the harness, and a client
//! that decided to close is finished.
//! Must not know: any gateway. What a client's outputs mean, and what the harness checks about
//! them, is the harness's.

use super::{assert_sendable, open_client};
use crate::demux::ClientChannel;
use crate::{Event, Exchange, Transport};
use coap_lite::Packet;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use switchyard_bus::fuzzing::Input;
use switchyard_bus::{Attachment, BusError, BusHandle, ClientInfo, ControlEvents, Session};
use switchyard_core::CloseReason;

/// How many sent messages a harness keeps for its peers to answer (the oldest go first).
const KEEP_SENT: usize = 32;

/// A harness's client: the gateway's channel, its session's control events, its number, and
/// what the harness tracks about it.
pub struct Client<C, X> {
    /// The gateway's channel.
    pub ch: C,
    /// The session's control events (for takeovers).
    pub rx: ControlEvents,
    /// Its number, which the harness's transport tags name.
    pub slot: u64,
    /// What the harness tracks.
    pub track: X,
}

fn control<C, X>(c: &Client<C, X>) -> &ControlEvents {
    &c.rx
}

/// A message the transport sent that its peer may answer.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The peer's index.
    pub peer: usize,
    /// The message id.
    pub mid: u16,
    /// The token.
    pub token: Vec<u8>,
}

/// The socket task's side of a CoAP-based gateway, for a harness, with clients of channel `C`
/// keyed by `K`, the harness tracking `X` about each, and transport tags `T`.
pub struct DemuxWorld<K, C, X, T> {
    /// The runtime session opens run on (from `switchyard_bus::fuzzing::run`).
    pub rt: Arc<tokio::runtime::Runtime>,
    /// The transport between the gateway and the peers.
    pub t: Transport<T>,
    /// Simulated time.
    pub now: Instant,
    /// The clients, by the key the gateway routes by.
    pub clients: HashMap<K, Client<C, X>>,
    /// The latest messages sent that the peers may answer (see [`transmit`](Self::transmit)).
    pub sent: Vec<Sent>,
    base_port: u16,
    next_slot: u64,
    /// The channel's one finish (gateway code, not part of [`ClientChannel`]).
    finish: fn(&mut C) -> CloseReason,
}

impl<K, C, X, T> DemuxWorld<K, C, X, T>
where
    K: Clone + Eq + Hash,
    C: ClientChannel,
    T: Clone,
{
    /// A world around `t` whose peer `i` is `127.0.0.1:<base_port + i>`, with session opens on
    /// `rt`; `finish` is the channel's finish.
    pub fn new(
        rt: Arc<tokio::runtime::Runtime>,
        t: Transport<T>,
        base_port: u16,
        finish: fn(&mut C) -> CloseReason,
    ) -> Self {
        DemuxWorld {
            rt,
            t,
            now: Instant::now(),
            clients: HashMap::new(),
            sent: Vec::new(),
            base_port,
            next_slot: 1,
            finish,
        }
    }

    /// The address of peer `i`.
    pub fn peer(&self, i: usize) -> SocketAddr {
        let port = self
            .base_port
            .saturating_add(u16::try_from(i).unwrap_or(u16::MAX));
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A fresh number for a new client (the harness's tags name it).
    pub fn next_slot(&mut self) -> u64 {
        let slot = self.next_slot;
        self.next_slot += 1;
        slot
    }

    /// Peer `i` sends `bytes`; returns what the transport makes of them.
    pub fn datagram(&mut self, i: usize, bytes: &[u8]) -> Vec<Event<T>> {
        self.t.handle_datagram(self.peer(i), bytes, self.now)
    }

    /// Peer `i` sends up to 200 bytes of the input as they are; returns what the transport makes
    /// of them.
    pub fn raw_datagram(&mut self, i: usize, input: &mut Input<'_>) -> Vec<Event<T>> {
        let raw = input.bytes(200).to_vec();
        self.datagram(i, &raw)
    }

    /// A clock step from the input; returns the transport's timer events.
    pub fn step(&mut self, input: &mut Input<'_>) -> Vec<Event<T>> {
        self.now += input.step();
        self.t.poll(self.now)
    }

    /// Answers a request.
    pub fn respond(&mut self, exchange: &Exchange, reply: Packet) {
        self.t.respond(exchange, reply, self.now);
    }

    /// Sends what the transport has: every message must round-trip; those `answerable` picks
    /// are kept (at most the latest 32) for the peers to answer.
    pub fn transmit(&mut self, answerable: impl Fn(&Packet) -> bool) {
        while let Some((addr, bytes)) = self.t.poll_transmit() {
            let p = assert_sendable(&bytes);
            if answerable(&p) {
                self.sent.push(Sent {
                    peer: usize::from(addr.port().saturating_sub(self.base_port)),
                    mid: p.header.message_id,
                    token: p.get_token().to_vec(),
                });
                if self.sent.len() > KEEP_SENT {
                    self.sent.remove(0);
                }
            }
        }
    }

    /// Opens a new client's session on `bus` as the demux drivers do; a client it takes over
    /// closes with [`CloseReason::Takeover`] and is finished.
    pub fn open(
        &mut self,
        bus: &BusHandle,
        info: Arc<ClientInfo>,
    ) -> Result<(Session, Attachment, ControlEvents), BusError> {
        let finish = self.finish;
        open_client(&self.rt, bus, info, &mut self.clients, control, |mut c| {
            c.ch.fail(CloseReason::Takeover);
            finish(&mut c.ch);
        })
    }

    /// Every client's timers.
    pub fn tick_all(&mut self) {
        for c in self.clients.values_mut() {
            c.ch.tick(self.now);
        }
    }

    /// The socket task's loop, until no client produces more: each client pulls its
    /// deliveries, `output` gets each of its outputs (with the transport to carry it out), a
    /// client that decided to close is finished, and what the transport then has is sent
    /// (see [`transmit`](Self::transmit)).
    pub fn flush(
        &mut self,
        mut output: impl FnMut(&mut Client<C, X>, C::Output, &mut Transport<T>, Instant),
        answerable: impl Fn(&Packet) -> bool,
    ) {
        loop {
            let mut any = false;
            let keys: Vec<K> = self.clients.keys().cloned().collect();
            for key in keys {
                let Some(c) = self.clients.get_mut(&key) else {
                    continue;
                };
                c.ch.pull_deliveries(self.now);
                for o in c.ch.take_outputs() {
                    any = true;
                    output(c, o, &mut self.t, self.now);
                }
                if c.ch.close_reason().is_some() {
                    if let Some(mut c) = self.clients.remove(&key) {
                        (self.finish)(&mut c.ch);
                    }
                }
            }
            self.transmit(&answerable);
            if !any {
                break;
            }
        }
    }

    /// Finishes every client (the harness's end).
    pub fn finish_all(&mut self) {
        for (_, mut c) in self.clients.drain() {
            (self.finish)(&mut c.ch);
        }
    }
}
