//! Fuzz harnesses of the MQTT-SN gateway (doc-hidden; not an API). Each `pub fn(&[u8])` is the
//! whole body of one cargo-fuzz target in `fuzz/fuzz_targets/`; the unit tests below replay the
//! committed seed corpus of each (`fuzz/seeds/<target>/`) through the same function on stable.
//!
//! - [`codec`]: one datagram; decode→encode→decode must round-trip.
//! - [`channel`]: the stateful target; see its module.

mod channel;
#[cfg(test)]
mod seeds;

pub use channel::channel;

use crate::codec::{decode, encode, encoded_len, Packet};
use bytes::{Bytes, BytesMut};

/// Encodes `p`, checks `encoded_len`, and decodes it back to an equal packet. Panics otherwise.
pub(crate) fn assert_round_trip(p: &Packet) {
    let mut out = BytesMut::new();
    if let Err(e) = encode(p, &mut out) {
        panic!("packet does not encode: {e}: {p:?}");
    }
    assert_eq!(encoded_len(p), out.len(), "{p:?}");
    match decode(&out.freeze()) {
        Ok(again) => assert_eq!(&again, p),
        Err(e) => panic!("re-encoded {p:?} does not decode: {e}"),
    }
}

/// The MQTT-SN codec target: any datagram decodes or is refused without a panic, and what
/// decodes round-trips through the encoder.
pub fn codec(data: &[u8]) {
    if let Ok(p) = decode(&Bytes::copy_from_slice(data)) {
        assert_round_trip(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_bus::fuzzing::replay_seeds;

    fn replay(target: &str, harness: fn(&[u8])) {
        replay_seeds(env!("CARGO_MANIFEST_DIR"), target, harness);
    }

    #[test]
    fn mqttsn_codec_seed_corpus_replays() {
        replay("mqttsn_codec", codec);
    }

    #[test]
    fn mqttsn_channel_seed_corpus_replays() {
        replay("mqttsn_channel", channel);
    }
}
