//! Fuzz harness of the DTLS server side (doc-hidden; not an API): the body of the
//! `dtls_record` cargo-fuzz target in `fuzz/`, replayed over its committed seed corpus
//! (`fuzz/seeds/dtls_record/`) by the unit test below, so `cargo test` checks it on stable.
//!
//! The input is a mode byte, then datagrams, each a two-byte big-endian length and that many
//! bytes. Mode
//! even: the datagrams go to a fresh server association (what any address can send). Mode odd:
//! a PSK handshake with the library's client runs first in memory, then the datagrams go to
//! the established association (records under keys the sender does not have, alerts,
//! handshake records after completion). Invariants: no panic, and no application data comes
//! out of bytes forged without the association's keys.

use super::association::{AssocEvent, Association, RtcAssociation};
use super::{DtlsListener, DtlsSettings, PskStore};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn listener() -> DtlsListener {
    let psk = PskStore::new();
    psk.insert(b"fuzz", b"fuzz-key-0123456");
    let s = DtlsSettings {
        certfile: None,
        keyfile: None,
        cacertfile: None,
        verify_peer: false,
        fail_if_no_peer_cert: false,
        ciphers: Vec::new(),
        handshake_timeout: Duration::from_secs(15),
        max_handshakes: 1,
        psk: Some(psk),
        cn_as_username: false,
    };
    // The harness's own configuration: it cannot fail.
    match DtlsListener::new("fuzz:dtls:default", &s) {
        Ok(l) => l,
        Err(e) => panic!("fuzz listener: {e}"),
    }
}

fn datagrams(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [hi, lo, tail @ ..] = rest {
        let n = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (d, more) = tail.split_at(n);
        out.push(d);
        rest = more;
    }
    out
}

/// Runs a PSK handshake between the library's client and `server` in memory; the client's
/// endpoint, once established.
fn handshake(server: &mut RtcAssociation, now: Instant) -> Option<rtc_dtls::endpoint::Endpoint> {
    use rtc_dtls::cipher_suite::CipherSuiteId;
    use rtc_dtls::config::ConfigBuilder;
    let srv: SocketAddr = "127.0.0.1:5684".parse().ok()?;
    let cli: SocketAddr = "127.0.0.1:40000".parse().ok()?;
    let provider = rtc_dtls::crypto_provider::default_provider().ok()?;
    let config = ConfigBuilder::default()
        .with_crypto_provider(provider)
        .with_psk(Some(Arc::new(|_: &[u8]| Ok(b"fuzz-key-0123456".to_vec()))))
        .with_psk_identity_hint(Some(b"fuzz".to_vec()))
        .with_cipher_suites(vec![CipherSuiteId::Tls_Psk_With_Aes_128_Ccm_8])
        .build(true, Some(srv))
        .ok()?;
    let mut client =
        rtc_dtls::endpoint::Endpoint::new(cli, rtc_shared::TransportProtocol::UDP, None);
    client.connect(now, srv, Arc::new(config), None).ok()?;
    let mut established = false;
    for _ in 0..16 {
        while let Some(t) = client.poll_transmit() {
            for e in server.handle_datagram(now, &t.message).ok()? {
                established |= e == AssocEvent::Established;
            }
        }
        while let Some(d) = server.poll_transmit() {
            let _ = client.read(now, srv, None, bytes::BytesMut::from(&d[..]));
        }
        if established {
            return Some(client);
        }
    }
    None
}

/// The `dtls_record` target.
pub fn record(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let l = listener();
    let local: SocketAddr = ([127, 0, 0, 1], 5684).into();
    let peer: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let mut server = RtcAssociation::new(local, peer, l.config.clone());
    let now = Instant::now();
    let established = mode % 2 == 1 && handshake(&mut server, now).is_some();
    for (i, d) in datagrams(rest).into_iter().enumerate() {
        let _ = super::server::is_client_hello(d);
        let t = now + Duration::from_millis(u64::try_from(i).unwrap_or(0));
        if let Ok(events) = server.handle_datagram(t, d) {
            for e in events {
                // Forged records cannot authenticate (CCM_8's tag): no data without the keys.
                assert!(
                    !matches!(e, AssocEvent::Data(_)),
                    "application data from forged bytes (established: {established})"
                );
            }
        }
        while server.poll_transmit().is_some() {}
        let _ = server.handle_timeout(t + Duration::from_secs(2));
        let _ = server.identity(true);
    }
    server.close(now);
    while server.poll_transmit().is_some() {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn dtls_record_seed_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds/dtls_record");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds in {dir}");
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let run = std::panic::catch_unwind(|| super::record(&data));
            assert!(run.is_ok(), "seed {} fails its harness", f.display());
        }
    }

    /// The in-memory handshake the odd modes start from does complete.
    #[test]
    fn the_harness_reaches_an_established_association() {
        let l = super::listener();
        let mut server = super::RtcAssociation::new(
            ([127, 0, 0, 1], 5684).into(),
            ([127, 0, 0, 1], 40000).into(),
            l.config.clone(),
        );
        assert!(super::handshake(&mut server, std::time::Instant::now()).is_some());
    }
}
