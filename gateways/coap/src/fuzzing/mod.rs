//! Fuzz harnesses of the CoAP gateway (doc-hidden; not an API). Each `pub fn(&[u8])` is the
//! whole body of one cargo-fuzz target in `fuzz/fuzz_targets/`; the unit tests below replay the
//! committed seed corpus of each (`fuzz/seeds/<target>/`) through the same function on stable.
//!
//! - [`message`]: one datagram through the strict decoder, the option readers and the request
//!   parsers; decode→encode→decode must round-trip.
//! - [`channel`]: the pub/sub gateway (routing by client identity, channels, observations) on
//!   the transport and a real bus; see its module.
//!
//! The transport's own stateful target is in `switchyard_coap_transport::fuzzing`.

mod channel;
#[cfg(test)]
mod seeds;

pub use channel::channel;

use crate::channel::request;
use crate::transport::wire::{self, Block};
use coap_lite::{CoapOption, MessageType};

/// Checks that a message we send is well formed and decodes back to itself (the transport
/// crate's, shared with the LwM2M harness, which sends through the same transport).
pub use crate::transport::fuzzing::assert_sendable;

/// The CoAP message target: the strict decoder never panics; what it accepts re-encodes and
/// decodes to an equal message; the option and request readers never panic, and Block values
/// round-trip.
pub fn message(data: &[u8]) {
    let Ok(p) = wire::decode(data) else {
        return;
    };
    let bytes = match p.to_bytes_unlimited() {
        Ok(b) => b,
        Err(e) => panic!("decoded message does not encode: {e}: {p:?}"),
    };
    match wire::decode(&bytes) {
        Ok(again) => assert_eq!(again, p),
        Err(e) => panic!("re-encoded message does not decode ({e}): {p:?}"),
    }
    let _ = wire::uri_path(&p);
    let _ = wire::uri_query(&p);
    let _ = wire::resource_key(&p);
    let _ = wire::unknown_critical_option(&p);
    let _ = wire::uint_option(&p, CoapOption::Size1);
    let _ = p.get_observe_value();
    for opt in [CoapOption::Block1, CoapOption::Block2] {
        if let Some(Ok(b)) = wire::block_option(&p, opt) {
            assert_eq!(Block::parse(&b.to_bytes()), Some(b));
            let _ = b.offset();
        }
    }
    let _ = request::query(&p);
    let _ = request::resource(&p);
    let _ = request::observe(&p);
    for q in wire::uri_query(&p).unwrap_or_default() {
        let _ = wire::percent_decode(&q);
    }
    let _ = matches!(p.header.get_type(), MessageType::Confirmable);
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_bus::fuzzing::replay_seeds;

    fn replay(target: &str, harness: fn(&[u8])) {
        replay_seeds(env!("CARGO_MANIFEST_DIR"), target, harness);
    }

    #[test]
    fn coap_message_seed_corpus_replays() {
        replay("coap_message", message);
    }

    #[test]
    fn coap_channel_seed_corpus_replays() {
        replay("coap_channel", channel);
    }
}
