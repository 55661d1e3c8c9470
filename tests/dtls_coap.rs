//! CoAP over DTLS 1.2 (port 5684's listener, here on an ephemeral port) against the real binary
//! with libcoap's two DTLS builds, `coap-client-openssl` and `coap-client-gnutls` (Debian
//! libcoap3-bin, installed by scripts/install-test-deps.sh): pre-shared keys from
//! `psk_authentication.init_file` and from `/api/v5/psk`, ECDSA certificates made here with
//! rcgen, and the refusals (wrong key, unknown identity, a required client certificate missing).
//! Every publish is checked where it matters: an MQTT subscriber receives it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::Api;
use common::mqtt::Client;
use common::{require_program, run_with_timeout, temp_dir, Broker};
use reqwest::StatusCode;
use rumqttc::QoS;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CLIENTS: [&str; 2] = ["coap-client-openssl", "coap-client-gnutls"];

/// The DTLS clients present; a missing one fails under CI (`require_program`).
fn clients() -> Vec<&'static str> {
    CLIENTS.into_iter().filter(|p| require_program(p)).collect()
}

/// Writes `identity:key` lines and returns the config that enables PSK and CoAP's DTLS listener.
fn psk_config(dir: &Path, lines: &str, extra: &str) -> String {
    let file = dir.join("psk.txt");
    std::fs::write(&file, lines).unwrap();
    format!(
        "[psk_authentication]\nenable = true\ninit_file = \"{}\"\n\
         [gateway.coap.listeners.dtls.default]\nenable = true\nbind = \"127.0.0.1:0\"\n{extra}",
        file.display()
    )
}

/// Runs one `coap-client` exchange; returns its whole output.
fn coap(prog: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(prog);
    cmd.args(["-v", "6", "-B", "10"]).args(args);
    let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert!(status.is_some(), "{prog} timed out: {args:?}\n{out}\n{err}");
    format!("{out}\n{err}")
}

/// Whether the client got a 2.04 Changed.
fn changed(out: &str) -> bool {
    out.lines()
        .any(|l| l.contains("v:1 t:") && l.contains("c:2.04"))
}

fn post_psk(prog: &str, port: u16, identity: &str, key: &str, topic: &str, body: &str) -> String {
    let uri = format!("coaps://127.0.0.1:{port}/ps/{topic}");
    coap(
        prog,
        &["-m", "post", "-u", identity, "-k", key, "-e", body, &uri],
    )
}

#[tokio::test]
async fn psk_publish_from_openssl_and_gnutls_reaches_mqtt() {
    let progs = clients();
    if progs.is_empty() {
        return;
    }
    let dir = temp_dir("dtls-coap-psk");
    let broker = Broker::start_with(&psk_config(&dir, "sensor-1:secret-key-1\n", ""));
    let port = broker.listener("coap:dtls:default").port();
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("dtls/#", QoS::AtLeastOnce).await;
    for prog in &progs {
        let out = post_psk(
            prog,
            port,
            "sensor-1",
            "secret-key-1",
            "dtls/t1?qos=1",
            prog,
        );
        assert!(changed(&out), "{prog}: no 2.04\n{out}");
        let p = sub.expect_publish(prog).await;
        assert_eq!(p.topic, "dtls/t1");
        assert_eq!(&p.payload[..], prog.as_bytes());
    }
}

#[tokio::test]
async fn wrong_key_and_unknown_identity_are_refused() {
    let progs = clients();
    if progs.is_empty() {
        return;
    }
    let dir = temp_dir("dtls-coap-refused");
    let broker = Broker::start_with(&psk_config(&dir, "sensor-1:secret-key-1\n", ""));
    let port = broker.listener("coap:dtls:default").port();
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("dtls/#", QoS::AtMostOnce).await;
    for prog in &progs {
        let out = post_psk(prog, port, "sensor-1", "wrong-key", "dtls/wrong", "x");
        assert!(!changed(&out), "{prog}: a wrong key was served\n{out}");
        let out = post_psk(prog, port, "nobody", "secret-key-1", "dtls/unknown", "x");
        assert!(
            !changed(&out),
            "{prog}: an unknown identity was served\n{out}"
        );
    }
    sub.expect_no_publish(Duration::from_millis(300), "refused peers publish nothing")
        .await;
    // The refusals are counted by reason.
    let api = Api::ready(&broker).await;
    let (s, text) = api.get("/api/v5/prometheus/stats").await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap_or_default().to_owned();
    let unknown = metric(&text, "switchyard_dtls_handshakes_failed_unknown_identity");
    assert!(unknown >= progs.len() as u64, "{text}");
}

/// The value of the first sample of `name` (with any labels).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn an_identity_added_and_removed_through_the_api() {
    let Some(prog) = clients().into_iter().next() else {
        return;
    };
    let dir = temp_dir("dtls-coap-api");
    let broker = Broker::start_with(&psk_config(&dir, "", ""));
    let port = broker.listener("coap:dtls:default").port();
    let api = Api::ready(&broker).await;
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("api/#", QoS::AtMostOnce).await;

    let out = post_psk(prog, port, "dev-9", "k9-k9-k9", "api/before", "x");
    assert!(!changed(&out), "not added yet\n{out}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/psk",
            Some(json!({ "identity": "dev-9", "key": "k9-k9-k9" })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api.get("/api/v5/psk").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["data"],
        json!([{ "identity": "dev-9" }]),
        "keys are never listed"
    );
    // The store's change reaches the listeners' key table through the change feed: wait for
    // the first handshake that succeeds (bounded).
    let mut served = false;
    for _ in 0..20 {
        if changed(&post_psk(prog, port, "dev-9", "k9-k9-k9", "api/after", "y")) {
            served = true;
            break;
        }
    }
    assert!(served, "the added identity was never accepted");
    assert_eq!(
        sub.expect_publish("added identity").await.topic,
        "api/after"
    );

    let (s, _) = api.send("DELETE", "/api/v5/psk/dev-9", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.send("DELETE", "/api/v5/psk/dev-9", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let mut refused = false;
    for _ in 0..20 {
        if !changed(&post_psk(
            prog,
            port,
            "dev-9",
            "k9-k9-k9",
            "api/removed",
            "z",
        )) {
            refused = true;
            break;
        }
    }
    assert!(refused, "the removed identity was still accepted");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/psk",
            Some(json!({ "identity": "", "key": "k" })),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate with CN `cn`, as PEM files.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path, cn: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "switchyard test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let mut client_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        server_cert: write("server.pem", server.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.pem", client.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
    }
}

fn cert_config(p: &Pki, require_client: bool) -> String {
    format!(
        "[gateway.coap.listeners.dtls.default]\nenable = true\nbind = \"127.0.0.1:0\"\n\
         [gateway.coap.listeners.dtls.default.dtls_options]\n\
         certfile = \"{}\"\nkeyfile = \"{}\"\ncacertfile = \"{}\"\n\
         verify = \"{}\"\nfail_if_no_peer_cert = {require_client}\n",
        p.server_cert.display(),
        p.server_key.display(),
        p.ca.display(),
        if require_client {
            "verify_peer"
        } else {
            "verify_none"
        },
    )
}

#[tokio::test]
async fn certificate_publish_from_openssl_and_gnutls_reaches_mqtt() {
    let progs = clients();
    if progs.is_empty() {
        return;
    }
    let dir = temp_dir("dtls-coap-cert");
    let p = pki(&dir, "device-1");
    let broker = Broker::start_with(&cert_config(&p, false));
    let port = broker.listener("coap:dtls:default").port();
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("cert/#", QoS::AtMostOnce).await;
    let ca = p.ca.to_string_lossy().into_owned();
    for prog in &progs {
        let uri = format!(
            "coaps://127.0.0.1:{port}/ps/cert/{}",
            prog.replace('-', "_")
        );
        // The client verifies the server against the CA (-R), with no certificate of its own.
        let out = coap(prog, &["-m", "post", "-R", &ca, "-e", prog, &uri]);
        assert!(changed(&out), "{prog}: no 2.04\n{out}");
        let got = sub.expect_publish(prog).await;
        assert_eq!(&got.payload[..], prog.as_bytes());
    }
}

#[tokio::test]
async fn a_required_client_certificate_present_and_missing() {
    let progs = clients();
    if progs.is_empty() {
        return;
    }
    let dir = temp_dir("dtls-coap-mtls");
    let p = pki(&dir, "device-2");
    let broker = Broker::start_with(&cert_config(&p, true));
    let port = broker.listener("coap:dtls:default").port();
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("mtls/#", QoS::AtMostOnce).await;
    let (ca, cert, key) = (
        p.ca.to_string_lossy().into_owned(),
        p.client_cert.to_string_lossy().into_owned(),
        p.client_key.to_string_lossy().into_owned(),
    );
    for prog in &progs {
        let uri = format!("coaps://127.0.0.1:{port}/ps/mtls/with");
        let out = coap(
            prog,
            &[
                "-m", "post", "-R", &ca, "-c", &cert, "-j", &key, "-e", prog, &uri,
            ],
        );
        assert!(changed(&out), "{prog}: with a client certificate\n{out}");
        assert_eq!(&sub.expect_publish(prog).await.payload[..], prog.as_bytes());
        let uri = format!("coaps://127.0.0.1:{port}/ps/mtls/without");
        let out = coap(prog, &["-m", "post", "-R", &ca, "-e", "x", &uri]);
        assert!(
            !changed(&out),
            "{prog}: served without a certificate\n{out}"
        );
    }
    sub.expect_no_publish(Duration::from_millis(300), "no certificate, no publish")
        .await;
}

#[test]
fn a_missing_certificate_file_stops_the_start_naming_it() {
    let err = Broker::try_start(
        "[gateway.coap.listeners.dtls.default]\nenable = true\nbind = \"127.0.0.1:0\"\n\
         [gateway.coap.listeners.dtls.default.dtls_options]\n\
         certfile = \"/nonexistent/dtls-cert.pem\"\nkeyfile = \"/nonexistent/dtls-key.pem\"\n",
        &[],
    )
    .err()
    .expect("the broker must not start");
    assert!(err.contains("/nonexistent/dtls-cert.pem"), "{err}");
    let err = Broker::try_start(
        "[psk_authentication]\nenable = true\ninit_file = \"/nonexistent/psk.txt\"\n",
        &[],
    )
    .err()
    .expect("the broker must not start");
    assert!(err.contains("/nonexistent/psk.txt"), "{err}");
    // The same through the environment (SWITCHYARD_<SECTION>__<KEY>).
    let err = Broker::try_start(
        "[psk_authentication]\nenable = true\n",
        &[
            (
                "SWITCHYARD_GATEWAY__COAP__LISTENERS__DTLS__DEFAULT__ENABLE",
                "true",
            ),
            (
                "SWITCHYARD_GATEWAY__COAP__LISTENERS__DTLS__DEFAULT__DTLS_OPTIONS__CERTFILE",
                "/nonexistent/env-cert.pem",
            ),
            (
                "SWITCHYARD_GATEWAY__COAP__LISTENERS__DTLS__DEFAULT__DTLS_OPTIONS__KEYFILE",
                "/nonexistent/env-key.pem",
            ),
        ],
    )
    .err()
    .expect("the broker must not start");
    assert!(err.contains("/nonexistent/env-cert.pem"), "{err}");
}

/// python-mbedtls importable (scripts/install-test-deps.sh installs it); a missing module fails
/// the test unless SY_SKIP_EXTERNAL_CLIENTS is set, as for the other external clients.
fn mbedtls_available() -> bool {
    if !require_program("python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import mbedtls.tls"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var_os("SY_SKIP_EXTERNAL_CLIENTS").is_some() {
        eprintln!("skipping: python-mbedtls not importable and SY_SKIP_EXTERNAL_CLIENTS is set");
        return false;
    }
    panic!("python3 cannot import mbedtls: run scripts/install-test-deps.sh");
}

/// One POST through tests/dtls_client/mbedtls_coap.py; its one-line answer.
fn mbedtls_post(args: &[&str]) -> String {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/dtls_client/mbedtls_coap.py"
    );
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(args);
    let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(30));
    assert!(
        status.is_some(),
        "mbedtls client timed out: {args:?}\n{out}\n{err}"
    );
    format!("{out}{err}")
}

#[tokio::test]
async fn mbed_tls_client_with_psk_and_with_a_certificate() {
    if !mbedtls_available() {
        return;
    }
    let dir = temp_dir("dtls-coap-mbedtls");
    let p = pki(&dir, "device-3");
    let psk = format!(
        "{}[gateway.coap.listeners.dtls.default.dtls_options]\ncertfile = \"{}\"\nkeyfile = \"{}\"\n",
        psk_config(&dir, "mbed-1:mbed-key-1\n", ""),
        p.server_cert.display(),
        p.server_key.display(),
    );
    let broker = Broker::start_with(&psk);
    let port = broker.listener("coap:dtls:default").port().to_string();
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("mbed/#", QoS::AtMostOnce).await;
    // One port serves PSK and certificate clients.
    let out = mbedtls_post(&[
        "127.0.0.1",
        &port,
        "psk",
        "mbed-1",
        "mbed-key-1",
        "mbed/psk",
        "p",
    ]);
    assert!(out.contains("code=2.04"), "{out}");
    assert_eq!(sub.expect_publish("mbed psk").await.topic, "mbed/psk");
    let ca = p.ca.to_string_lossy().into_owned();
    let out = mbedtls_post(&["127.0.0.1", &port, "cert", &ca, "mbed/cert", "c"]);
    assert!(out.contains("code=2.04"), "{out}");
    assert_eq!(sub.expect_publish("mbed cert").await.topic, "mbed/cert");
    let out = mbedtls_post(&[
        "127.0.0.1",
        &port,
        "psk",
        "mbed-1",
        "wrong",
        "mbed/wrong",
        "w",
    ]);
    assert!(out.contains("error="), "a wrong key was served: {out}");
    sub.expect_no_publish(Duration::from_millis(300), "wrong key")
        .await;
}

#[tokio::test]
async fn aiocoap_over_tinydtls_with_psk() {
    if !require_program("python3") {
        return;
    }
    let ok = Command::new("python3")
        .args(["-c", "import aiocoap, DTLSSocket"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var_os("SY_SKIP_EXTERNAL_CLIENTS").is_some() {
            eprintln!("skipping: aiocoap/DTLSSocket not importable");
            return;
        }
        panic!("python3 cannot import aiocoap and DTLSSocket: run scripts/install-test-deps.sh");
    }
    let dir = temp_dir("dtls-coap-tinydtls");
    let broker = Broker::start_with(&psk_config(&dir, "tiny-1:tiny-key-1\n", ""));
    let port = broker.listener("coap:dtls:default").port().to_string();
    let mut sub = Client::connect(broker.mqtt_addr(), "sub").await;
    sub.subscribe("tiny/#", QoS::AtMostOnce).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/dtls_client/aiocoap_psk.py"
    );
    let post = |key: &str, topic: &str| {
        let mut cmd = Command::new("python3");
        cmd.args([script, "127.0.0.1", &port, "tiny-1", key, topic, "t"]);
        let (status, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(40));
        assert!(status.is_some(), "aiocoap timed out\n{out}\n{err}");
        format!("{out}{err}")
    };
    let out = post("tiny-key-1", "tiny/ok");
    assert!(out.contains("code=2.04"), "{out}");
    assert_eq!(sub.expect_publish("tinydtls").await.topic, "tiny/ok");
    let out = post("wrong-key", "tiny/wrong");
    assert!(!out.contains("code=2.04"), "a wrong key was served: {out}");
    sub.expect_no_publish(Duration::from_millis(300), "wrong key")
        .await;
}
