//! RFC 7959 state of the server role: Block1 request bodies being reassembled, and Block2
//! response bodies kept so the peer can fetch the remaining blocks.
//!
//! Both are keyed by (peer, resource) as §2.4/§2.5 identify a body by endpoint and request URI.
//! Invariants: a body never grows past `max_body_size`; entries expire after the exchange
//! lifetime (a re-insert refreshes the entry; the stale queue slot then finds it newer and
//! leaves it).

use super::wire::Block;
use coap_lite::Packet;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

type Key = (SocketAddr, String);

/// What a Block1 request block leads to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Block1Outcome {
    /// More blocks expected: answer 2.31 Continue with this Block1 value.
    Continue(Block),
    /// The body is complete: the request goes up with it; the response echoes this Block1.
    Complete(Vec<u8>, Block),
    /// A block out of sequence: 4.08 (§2.9.2).
    Incomplete,
    /// Over the limit: 4.13 with Size1 (§2.9.3).
    TooLarge,
}

struct Assembly {
    body: Vec<u8>,
    expires: Instant,
}

/// A response body being served block by block.
pub(crate) struct Body {
    /// The response's code and options (no payload, no Observe).
    pub(crate) template: Packet,
    pub(crate) body: Vec<u8>,
    expires: Instant,
}

/// Block-wise state of one transport.
#[derive(Default)]
pub(crate) struct Blocks {
    assemblies: HashMap<Key, Assembly>,
    assembly_order: VecDeque<(Instant, Key)>,
    bodies: HashMap<Key, Body>,
    body_order: VecDeque<(Instant, Key)>,
}

impl Blocks {
    /// Takes one Block1 block of a request.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_block1(
        &mut self,
        key: Key,
        b: Block,
        payload: &[u8],
        max_block: usize,
        max_body: usize,
        now: Instant,
        lifetime: Duration,
    ) -> Block1Outcome {
        let our_szx = Block::szx_for(max_block).min(b.szx);
        if b.num == 0 {
            self.assemblies.remove(&key);
        }
        let mut asm = match self.assemblies.remove(&key) {
            Some(a) => a,
            None if b.num == 0 => Assembly {
                body: Vec::new(),
                expires: now,
            },
            None => return Block1Outcome::Incomplete,
        };
        if b.offset() != Some(asm.body.len()) {
            return Block1Outcome::Incomplete;
        }
        let mut take = payload;
        if b.num == 0 && our_szx < b.szx && b.more {
            // §2.5: the server may ask for smaller blocks by answering the first one with a
            // smaller SZX; it then keeps only that many bytes and the client continues from there.
            let size = 1usize << (usize::from(our_szx) + 4);
            take = &payload[..payload.len().min(size)];
        }
        if asm.body.len().saturating_add(take.len()) > max_body {
            return Block1Outcome::TooLarge;
        }
        asm.body.extend_from_slice(take);
        if !b.more {
            return Block1Outcome::Complete(asm.body, b);
        }
        asm.expires = now + lifetime;
        self.assembly_order.push_back((asm.expires, key.clone()));
        self.assemblies.insert(key, asm);
        Block1Outcome::Continue(Block {
            num: b.num,
            more: true,
            szx: our_szx,
        })
    }

    /// Keeps a response body for Block2 follow-ups.
    pub(crate) fn store_body(
        &mut self,
        key: Key,
        template: Packet,
        body: Vec<u8>,
        now: Instant,
        lifetime: Duration,
    ) {
        let expires = now + lifetime;
        self.body_order.push_back((expires, key.clone()));
        self.bodies.insert(
            key,
            Body {
                template,
                body,
                expires,
            },
        );
    }

    /// The body stored for a resource, if any.
    pub(crate) fn body(&self, key: &Key) -> Option<&Body> {
        self.bodies.get(key)
    }

    /// Drops expired entries.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.assembly_order.front() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.assembly_order.pop_front() {
                if self.assemblies.get(&key).is_some_and(|a| a.expires <= now) {
                    self.assemblies.remove(&key);
                }
            }
        }
        while let Some((at, _)) = self.body_order.front() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.body_order.pop_front() {
                if self.bodies.get(&key).is_some_and(|b| b.expires <= now) {
                    self.bodies.remove(&key);
                }
            }
        }
    }

    /// Bodies being reassembled (for tests and metrics).
    pub(crate) fn assemblies_len(&self) -> usize {
        self.assemblies.len()
    }
}
