//! The DTLS server over real sockets with the library's client side: echo through the
//! gateway's `DatagramSocket`, refusals by reason, the handshake cap.

use super::client::{ClientAuth, DtlsClient};
use super::*;
use crate::{bind_udp, ListenerLimits};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const WAIT: Duration = Duration::from_secs(10);

fn psk_settings(store: &PskStore) -> DtlsSettings {
    DtlsSettings {
        certfile: None,
        keyfile: None,
        cacertfile: None,
        verify_peer: false,
        fail_if_no_peer_cert: false,
        ciphers: Vec::new(),
        handshake_timeout: Duration::from_secs(15),
        max_handshakes: DEFAULT_MAX_HANDSHAKES,
        psk: Some(store.clone()),
        cn_as_username: true,
    }
}

/// Starts a DTLS listener whose gateway echoes every datagram, prefixed with the peer's PSK
/// identity.
fn echo_server(settings: &DtlsSettings, cancel: &CancellationToken) -> (SocketAddr, DtlsListener) {
    echo_server_with(settings, ListenerLimits::UNLIMITED, cancel)
}

fn echo_server_with(
    settings: &DtlsSettings,
    limits: ListenerLimits,
    cancel: &CancellationToken,
) -> (SocketAddr, DtlsListener) {
    let listener = DtlsListener::new("test:dtls:default", settings).expect("listener");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let socket = bind_udp(any, false).expect("bind").remove(0);
    let tracker = TaskTracker::new();
    let admission = crate::Admission::new(limits, tokio::time::Instant::now());
    let mut ds =
        server::serve(&listener, "t", socket, admission, cancel.clone(), &tracker).expect("serve");
    let addr = ds.local_addr().expect("addr");
    tokio::spawn(async move {
        let sender = ds.sender();
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = ds.recv_from(&mut buf).await {
            let who = match sender.peer_identity(&from) {
                Some(id) => id.username().unwrap_or("anonymous").to_owned(),
                None => "plain".to_owned(),
            };
            let mut reply = format!("{who}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            let _ = sender.send_to(&reply, from).await;
        }
    });
    (addr, listener)
}

fn psk(identity: &str, key: &str) -> ClientAuth {
    ClientAuth::Psk {
        identity: identity.as_bytes().to_vec(),
        key: key.as_bytes().to_vec(),
    }
}

#[tokio::test]
async fn psk_handshake_then_application_data_both_ways() {
    let store = PskStore::new();
    store.insert(b"sensor-1", b"secret-key-1");
    let cancel = CancellationToken::new();
    let (addr, listener) = echo_server(&psk_settings(&store), &cancel);
    for suite in [
        "TLS_PSK_WITH_AES_128_CCM_8",
        "TLS_PSK_WITH_AES_128_CCM",
        "TLS_PSK_WITH_AES_128_GCM_SHA256",
    ] {
        let mut c = DtlsClient::connect(addr, &psk("sensor-1", "secret-key-1"), Some(suite), WAIT)
            .await
            .expect(suite);
        c.send(b"hello").await.expect("send");
        assert_eq!(
            c.recv(WAIT).await.expect("echo"),
            b"sensor-1:hello",
            "{suite}"
        );
        c.close().await.expect("close");
    }
    assert_eq!(listener.stats().handshakes_ok.load(Ordering::Relaxed), 3);
    cancel.cancel();
}

#[tokio::test]
async fn wrong_key_and_unknown_identity_are_refused_and_counted() {
    let store = PskStore::new();
    store.insert(b"sensor-1", b"secret-key-1");
    let cancel = CancellationToken::new();
    let (addr, listener) = echo_server(&psk_settings(&store), &cancel);
    let wrong = DtlsClient::connect(addr, &psk("sensor-1", "not-the-key"), None, WAIT).await;
    assert!(wrong.is_err(), "a wrong key must not complete");
    let unknown = DtlsClient::connect(addr, &psk("nobody", "secret-key-1"), None, WAIT).await;
    assert!(unknown.is_err(), "an unknown identity must not complete");
    let stats = listener.stats();
    assert_eq!(stats.failed_unknown_identity.load(Ordering::Relaxed), 1);
    assert_eq!(stats.handshakes_ok.load(Ordering::Relaxed), 0);
    // Removed keys stop working for new handshakes; added ones work at once.
    store.insert(b"nobody", b"now-known");
    let mut ok = DtlsClient::connect(addr, &psk("nobody", "now-known"), None, WAIT)
        .await
        .expect("added identity");
    ok.send(b"x").await.expect("send");
    assert_eq!(ok.recv(WAIT).await.expect("echo"), b"nobody:x");
    cancel.cancel();
}

#[tokio::test]
async fn certificate_handshake_with_and_without_a_required_client_certificate() {
    let dir = std::env::temp_dir().join(format!("dtls-cert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let server_key = rcgen::KeyPair::generate().expect("key");
    let server = rcgen::CertificateParams::new(vec!["localhost".into()])
        .expect("params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");
    let client_key = rcgen::KeyPair::generate().expect("key");
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "device-7");
    let client = client_params
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).expect("write");
        p
    };
    let settings = DtlsSettings {
        certfile: Some(write("server.pem", server.pem())),
        keyfile: Some(write("server.key", server_key.serialize_pem())),
        cacertfile: Some(write("ca.pem", ca.pem())),
        verify_peer: true,
        fail_if_no_peer_cert: true,
        psk: None,
        ..psk_settings(&PskStore::new())
    };
    let cancel = CancellationToken::new();
    let (addr, listener) = echo_server(&settings, &cancel);
    let with = ClientAuth::Certificate {
        cert_pem: Some((client.pem(), client_key.serialize_pem())),
    };
    let mut c = DtlsClient::connect(addr, &with, None, WAIT)
        .await
        .expect("client cert");
    c.send(b"hi").await.expect("send");
    let echo = String::from_utf8(c.recv(WAIT).await.expect("echo")).expect("utf8");
    assert!(echo.contains("device-7"), "{echo}");
    let without = ClientAuth::Certificate { cert_pem: None };
    assert!(DtlsClient::connect(addr, &without, None, WAIT)
        .await
        .is_err());
    assert_eq!(listener.stats().handshakes_ok.load(Ordering::Relaxed), 1);
    cancel.cancel();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let s = DtlsSettings {
        certfile: Some("/nonexistent/dtls.pem".into()),
        keyfile: Some("/nonexistent/dtls.key".into()),
        ..psk_settings(&PskStore::new())
    };
    let e = DtlsListener::new("x", &s).expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/dtls.pem"), "{e}");
    let store = PskStore::new();
    let e = store
        .load_file(Path::new("/nonexistent/psk.txt"), ":")
        .expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/psk.txt"), "{e}");
}

#[test]
fn emqx_psk_file_lines() {
    let p = std::env::temp_dir().join(format!("psk-{}.txt", std::process::id()));
    std::fs::write(
        &p,
        "myclient1:8c701116e9127c57a99d5563709af3deaca75563e2c4dd0865701ae839fb6d79\n\nid2:a:b\n",
    )
    .expect("write");
    let store = PskStore::new();
    assert_eq!(store.load_file(&p, ":").expect("load"), 2);
    assert_eq!(
        store.get(b"id2").as_deref(),
        Some(&b"a:b"[..]),
        "the key is everything after the first separator"
    );
    assert_eq!(
        store.identities(),
        vec![b"id2".to_vec(), b"myclient1".to_vec()]
    );
    let _ = std::fs::remove_file(&p);
}

#[test]
fn only_a_client_hello_may_create_state() {
    let addr: SocketAddr = "127.0.0.1:5684".parse().expect("addr");
    let real = super::client::client_hello(addr, b"id").expect("hello");
    assert!(
        server::is_client_hello(&real),
        "the library's own ClientHello"
    );
    let mut hello = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50, 1];
    assert!(server::is_client_hello(&hello));
    hello[13] = 2;
    assert!(!server::is_client_hello(&hello));
    assert!(!server::is_client_hello(&[23, 0xfe, 0xfd]));
    assert!(!server::is_client_hello(&[]));
}

/// Waits (bounded) until `cond` holds; the server task updates its counters asynchronously.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn close_notify_ends_the_association() {
    let store = PskStore::new();
    store.insert(b"sensor-1", b"secret-key-1");
    let cancel = CancellationToken::new();
    let (addr, listener) = echo_server(&psk_settings(&store), &cancel);
    let c = DtlsClient::connect(addr, &psk("sensor-1", "secret-key-1"), None, WAIT)
        .await
        .expect("handshake");
    let stats = listener.stats().clone();
    eventually("one peer", || stats.peers.load(Ordering::Relaxed) == 1).await;
    c.close().await.expect("close_notify");
    eventually("no peer after close_notify", || {
        stats.peers.load(Ordering::Relaxed) == 0
    })
    .await;
    cancel.cancel();
}

#[tokio::test]
async fn max_conn_rate_applies_to_new_handshakes() {
    let store = PskStore::new();
    store.insert(b"sensor-1", b"secret-key-1");
    let cancel = CancellationToken::new();
    let limits = ListenerLimits {
        max_connections: 100,
        max_conn_rate: 1,
        max_conn_burst: 1,
    };
    let (addr, listener) = echo_server_with(&psk_settings(&store), limits, &cancel);
    let auth = psk("sensor-1", "secret-key-1");
    let mut first = DtlsClient::connect(addr, &auth, None, WAIT)
        .await
        .expect("the burst admits one");
    let second = DtlsClient::connect(addr, &auth, None, Duration::from_millis(300)).await;
    assert!(second.is_err(), "a second handshake within the same second");
    assert!(listener.stats().refused.load(Ordering::Relaxed) >= 1);
    // The admitted peer is unaffected.
    first.send(b"still").await.expect("send");
    assert_eq!(first.recv(WAIT).await.expect("echo"), b"sensor-1:still");
    cancel.cancel();
}

#[tokio::test]
async fn a_forged_client_hello_does_not_end_an_established_association() {
    let store = PskStore::new();
    store.insert(b"sensor-1", b"secret-key-1");
    let cancel = CancellationToken::new();
    let settings = DtlsSettings {
        handshake_timeout: Duration::from_millis(300),
        ..psk_settings(&store)
    };
    let (addr, listener) = echo_server(&settings, &cancel);
    let mut c = DtlsClient::connect(addr, &psk("sensor-1", "secret-key-1"), None, WAIT)
        .await
        .expect("handshake");
    // A ClientHello from the peer's own address (as a spoofer would send it).
    let hello = super::client::client_hello(addr, b"intruder").expect("hello");
    c.send_raw(&hello).await.expect("raw");
    let stats = listener.stats().clone();
    eventually("a handshake beside the association", || {
        stats.handshaking.load(Ordering::Relaxed) == 1
    })
    .await;
    // The association still serves the peer while the new handshake runs...
    c.send(b"during").await.expect("send");
    assert_eq!(c.recv(WAIT).await.expect("echo"), b"sensor-1:during");
    // ...and after it timed out.
    eventually("the forged handshake timed out", || {
        stats.failed_timeout.load(Ordering::Relaxed) == 1
    })
    .await;
    c.send(b"after").await.expect("send");
    assert_eq!(c.recv(WAIT).await.expect("echo"), b"sensor-1:after");
    assert_eq!(stats.peers.load(Ordering::Relaxed), 1);
    assert_eq!(stats.handshaking.load(Ordering::Relaxed), 0);
    // A real new handshake from another port works as before.
    let mut again = DtlsClient::connect(addr, &psk("sensor-1", "secret-key-1"), None, WAIT)
        .await
        .expect("a new client");
    again.send(b"x").await.expect("send");
    assert_eq!(again.recv(WAIT).await.expect("echo"), b"sensor-1:x");
    cancel.cancel();
}

#[tokio::test]
async fn a_client_restarted_on_the_same_port_replaces_its_association() {
    let store = PskStore::new();
    store.insert(b"sensor-1", b"secret-key-1");
    store.insert(b"sensor-2", b"secret-key-2");
    let cancel = CancellationToken::new();
    let (addr, listener) = echo_server(&psk_settings(&store), &cancel);
    let first = DtlsClient::connect(addr, &psk("sensor-1", "secret-key-1"), None, WAIT)
        .await
        .expect("handshake");
    let port = first.local_addr().expect("addr").port();
    // The client restarts without close_notify and gets the same port back.
    drop(first);
    let socket = tokio::net::UdpSocket::bind(("0.0.0.0", port))
        .await
        .expect("same port");
    let auth = psk("sensor-2", "secret-key-2");
    let mut again = DtlsClient::connect_on(socket, addr, &auth, None, WAIT)
        .await
        .expect("a new handshake from the same address");
    again.send(b"new").await.expect("send");
    assert_eq!(again.recv(WAIT).await.expect("echo"), b"sensor-2:new");
    let stats = listener.stats();
    assert_eq!(
        stats.peers.load(Ordering::Relaxed),
        1,
        "replaced, not added"
    );
    assert_eq!(stats.handshakes_ok.load(Ordering::Relaxed), 2);
    cancel.cancel();
}
