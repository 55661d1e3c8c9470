//! Fuzz harnesses of the MQTT gateway (doc-hidden; not an API). Each `pub fn(&[u8])` is the
//! whole body of one cargo-fuzz target in `fuzz/fuzz_targets/`, and the unit tests below replay
//! that target's committed seed corpus (`fuzz/seeds/<target>/`) through the same function, so
//! `cargo test` on stable checks every seed and every crash turned regression.
//!
//! - [`codec`]: arbitrary bytes decoded as a stream under each protocol version;
//!   decode→encode→decode must round-trip (DESIGN.md habit 10).
//! - [`ws_upgrade`]: arbitrary bytes as what a WebSocket client sends: the HTTP upgrade request,
//!   then frames, read through the same adapter and decoder as a real connection.
//! - [`channel`]: the stateful target; see its module.

mod channel;
#[cfg(test)]
mod seeds;

pub use channel::channel;

use crate::codec::{
    decode_packet, encode_packet, encoded_len, peek_connect_version, Packet, ProtocolVersion,
};
use bytes::BytesMut;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Large enough that the size limit rarely hides a decoder path.
const MAX_PACKET_SIZE: usize = 1 << 20;

/// Encodes `packet` at `version`, checks `encoded_len`, and decodes it back as exactly one
/// equal frame. Panics otherwise.
pub(crate) fn assert_round_trip(packet: &Packet, version: ProtocolVersion) {
    let mut out = BytesMut::new();
    if let Err(e) = encode_packet(packet, version, &mut out) {
        panic!("packet does not encode at {version:?}: {e}: {packet:?}");
    }
    assert_eq!(encoded_len(packet, version), out.len(), "{packet:?}");
    // MQTT 3.1 has no session-present flag: the encoder leaves it out on purpose.
    let mut expected = packet.clone();
    if let (ProtocolVersion::V31, Packet::ConnAck(a)) = (version, &mut expected) {
        a.session_present = false;
    }
    match decode_packet(&mut out, version, MAX_PACKET_SIZE) {
        Ok(Some(again)) => assert_eq!(again, expected),
        other => panic!("re-encoded {packet:?} decodes as {other:?}"),
    }
    assert!(
        out.is_empty(),
        "re-encoding of {packet:?} is more than one frame"
    );
}

/// The MQTT codec target: decoding must never panic; every packet it accepts must encode,
/// `encoded_len` must match the bytes written, and the encoding must decode back to an equal
/// packet as exactly one frame.
pub fn codec(data: &[u8]) {
    let _ = peek_connect_version(data);
    for version in [
        ProtocolVersion::V31,
        ProtocolVersion::V311,
        ProtocolVersion::V5,
    ] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = decode_packet(&mut buf, version, MAX_PACKET_SIZE) {
            assert_round_trip(&packet, version);
        }
    }
}

/// A peer that sends `input` and then closes; what we write is kept in `written`.
struct Wire {
    input: Vec<u8>,
    pos: usize,
    written: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Wire {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.written.lock() {
            Ok(mut w) => w.extend_from_slice(buf),
            Err(p) => p.into_inner().extend_from_slice(buf),
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The WebSocket target: the bytes are the client's side of a connection to the `/mqtt`
/// listener. The handshake must answer 101 when it accepts (with Sec-WebSocket-Accept) and an
/// HTTP error when it does not; after it, the binary messages feed the MQTT decoder as a byte
/// stream, as on a real connection, and every packet decoded must round-trip.
pub fn ws_upgrade(data: &[u8]) {
    let rt = switchyard_bus::fuzzing::runtime();
    let written = Arc::new(Mutex::new(Vec::new()));
    let wire = Wire {
        input: data.to_vec(),
        pos: 0,
        written: written.clone(),
    };
    rt.block_on(async {
        let accepted = crate::ws::accept(wire, "/mqtt", 4096).await;
        let response = match written.lock() {
            Ok(w) => w.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let Ok(mut ws) = accepted else {
            assert!(
                response.is_empty() || response.starts_with(b"HTTP/1.1 4"),
                "a refused upgrade answers an HTTP 4xx: {:?}",
                String::from_utf8_lossy(&response)
            );
            return;
        };
        let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("sec-websocket-accept:"), "{head}");
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 512];
        let version = ProtocolVersion::V5;
        loop {
            match ws.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            loop {
                match decode_packet(&mut buf, version, 4096) {
                    Ok(Some(p)) => assert_round_trip(&p, version),
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_bus::fuzzing::replay_seeds;

    fn replay(target: &str, harness: fn(&[u8])) {
        replay_seeds(env!("CARGO_MANIFEST_DIR"), target, harness);
    }

    #[test]
    fn mqtt_codec_seed_corpus_replays() {
        replay("mqtt_codec", codec);
    }

    #[test]
    fn mqtt_ws_upgrade_seed_corpus_replays() {
        replay("mqtt_ws_upgrade", ws_upgrade);
    }

    #[test]
    fn mqtt_channel_seed_corpus_replays() {
        replay("mqtt_channel", channel);
    }
}
