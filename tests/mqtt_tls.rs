//! MQTT over TLS (8883) and over secure WebSocket (8084) with certificates made by the test
//! (rcgen): mosquitto clients with --cafile, client certificates required and refused, the
//! certificate's CN as username, paho-mqtt over WSS, and a bad certificate file failing start-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{require_program, run_with_timeout, temp_dir, Broker};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1/localhost and a client certificate "device-7".
    fn new() -> Pki {
        let dir = temp_dir("tls-pki");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Switchyard Test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "device-7");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.pem", client.pem()),
            ("client.key", client_key.serialize_pem()),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// Broker config enabling both TLS listeners.
    fn config(&self, extra: &str) -> String {
        format!(
            "[listeners.ssl.default]\nenable = true\nbind = \"127.0.0.1:0\"\ncertfile = \"{c}\"\nkeyfile = \"{k}\"\n{extra}\n\
             [listeners.wss.default]\nenable = true\nbind = \"127.0.0.1:0\"\ncertfile = \"{c}\"\nkeyfile = \"{k}\"\n",
            c = self.path("server.pem"),
            k = self.path("server.key"),
        )
    }
}

fn port(b: &Broker, name: &str) -> String {
    b.listener(name).port().to_string()
}

/// Runs mosquitto_pub over TLS; returns whether it succeeded.
fn tls_pub(b: &Broker, pki: &Pki, topic: &str, msg: &str, client_cert: bool) -> bool {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port(b, "mqtt:ssl:default"),
        "--cafile",
        &pki.path("ca.pem"),
    ])
    .args(["-t", topic, "-m", msg, "-q", "1", "-i", "tls-pub"]);
    if client_cert {
        cmd.args([
            "--cert",
            &pki.path("client.pem"),
            "--key",
            &pki.path("client.key"),
        ]);
    }
    let (status, _, stderr) = run_with_timeout(&mut cmd, Duration::from_secs(10));
    if !status.is_some_and(|s| s.success()) {
        eprintln!("mosquitto_pub over TLS failed: {stderr}");
        return false;
    }
    true
}

/// Starts mosquitto_sub on the plain TCP listener for `count` messages.
/// A `mosquitto_sub` over plain TCP, returned once its SUBACK arrived (its `-d` log says so),
/// so nothing published afterwards can be missed.
struct Sub {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

fn tcp_sub(b: &Broker, topic: &str, count: u32) -> Sub {
    use std::io::BufRead;
    // Line-buffered (coreutils' stdbuf), or the SUBACK line would wait for mosquitto_sub's exit.
    let mut child = Command::new("stdbuf")
        .args([
            "-oL",
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            &b.mqtt_addr().port().to_string(),
            "-t",
            topic,
            "-v",
            "-q",
            "1",
            "-d",
        ])
        .args(["-C", &count.to_string(), "-W", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    // `-W 10` bounds the wait: mosquitto_sub exits (EOF here) if no SUBACK comes.
    let subscribed = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("received SUBACK"));
    assert!(subscribed, "mosquitto_sub never got its SUBACK for {topic}");
    Sub { child, lines }
}

/// What the subscriber printed after its SUBACK, without `-d`'s debug lines.
fn output(sub: Sub) -> String {
    let Sub { mut child, lines } = sub;
    let text: Vec<String> = lines
        .map_while(Result::ok)
        .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed "))
        .collect();
    child.wait().unwrap();
    text.join("\n")
}

#[test]
fn mosquitto_over_tls_reaches_a_tcp_subscriber() {
    if !require_program("mosquitto_pub") {
        return;
    }
    let pki = Pki::new();
    let b = Broker::start_with(&pki.config(""));
    let sub = tcp_sub(&b, "tls/#", 1);
    assert!(tls_pub(&b, &pki, "tls/a", "over-tls", false));
    assert_eq!(output(sub).trim(), "tls/a over-tls");
}

#[test]
fn client_certificate_required_refused_without_and_cn_becomes_username() {
    if !require_program("mosquitto_pub") {
        return;
    }
    let pki = Pki::new();
    let extra = format!(
        "cacertfile = \"{}\"\nverify = \"verify_peer\"\nfail_if_no_peer_cert = true\npeer_cert_as_username = \"cn\"",
        pki.path("ca.pem")
    );
    let b = Broker::start_with(&pki.config(&extra));
    assert!(
        !tls_pub(&b, &pki, "tls/x", "no-cert", false),
        "a client without a certificate was accepted"
    );
    let events = tcp_sub(&b, "$SYS/brokers/+/clients/tls-pub/connected", 1);
    let sub = tcp_sub(&b, "tls/#", 1);
    assert!(
        tls_pub(&b, &pki, "tls/y", "with-cert", true),
        "a client with a valid certificate was refused"
    );
    assert_eq!(output(sub).trim(), "tls/y with-cert");
    let event = output(events);
    assert!(
        event.contains("\"username\":\"device-7\""),
        "CN not used as username: {event}"
    );
    assert!(
        b.log_contains("TLS handshake failed"),
        "the refused handshake is not logged"
    );
}

#[test]
fn paho_over_secure_websocket() {
    if !require_program("python3") || !require_program("mosquitto_sub") {
        return;
    }
    let pki = Pki::new();
    let b = Broker::start_with(&pki.config(""));
    let sub = tcp_sub(&b, "wss/#", 1);
    let script = r#"
import sys, paho.mqtt.client as mqtt
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="wss-pub", transport="websockets", protocol=mqtt.MQTTv5)
c.ws_set_options(path="/mqtt")
c.tls_set(ca_certs=sys.argv[2])
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_start()
c.publish("wss/a", b"over-wss", qos=1).wait_for_publish(5)
c.disconnect(); c.loop_stop()
print("OK")
"#;
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        script,
        &port(&b, "mqtt:wss:default"),
        &pki.path("ca.pem"),
    ]);
    let (status, stdout, stderr) = run_with_timeout(&mut cmd, Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains("OK"),
        "paho over WSS failed: {stdout} {stderr}"
    );
    assert_eq!(output(sub).trim(), "wss/a over-wss");
}

#[test]
fn bad_certificate_file_is_a_start_up_error_naming_it() {
    let pki = Pki::new();
    let bogus = pki.dir.join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let config = format!(
        "[listeners.ssl.default]\nenable = true\nbind = \"127.0.0.1:0\"\ncertfile = \"{}\"\nkeyfile = \"{}\"\n",
        bogus.display(),
        pki.path("server.key")
    );
    let err = match Broker::try_start(&config, &[]) {
        Ok(_) => panic!("broker started with a bogus certificate file"),
        Err(e) => e,
    };
    assert!(
        err.contains("bogus.pem"),
        "error does not name the file: {err}"
    );
    let _ = Path::new(&bogus);
}

/// The dashboard and admin API over HTTPS (`dashboard.listeners.https`, EMQX's 18084): the
/// same routes as on HTTP, with the certificate the operator configured; plain HTTP on that
/// port gets no answer.
#[test]
fn dashboard_over_https() {
    let pki = Pki::new();
    let b = Broker::start_with(&format!(
        "[dashboard.listeners.https]\nenable = true\nbind = \"127.0.0.1:0\"\ncertfile = \"{}\"\nkeyfile = \"{}\"\n",
        pki.path("server.pem"),
        pki.path("server.key")
    ));
    let addr = b.listener("dashboard:https:default");
    let ca = std::fs::read(pki.dir.join("ca.pem")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        let base = format!("https://127.0.0.1:{}", addr.port());
        let status = client.get(format!("{base}/status")).send().await.unwrap();
        assert_eq!(status.status(), reqwest::StatusCode::OK);
        let page = client.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(page.status(), reqwest::StatusCode::OK);
        assert!(
            page.text().await.unwrap().contains("<html"),
            "the dashboard page"
        );
        let login = client
            .post(format!("{base}/api/v5/login"))
            .json(&serde_json::json!({"username": "admin", "password": "public"}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), reqwest::StatusCode::OK);
        let body: serde_json::Value = login.json().await.unwrap();
        assert!(
            body["token"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        let unauthorized = client
            .get(format!("{base}/api/v5/clients"))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthorized.status(), reqwest::StatusCode::UNAUTHORIZED);
        // Plain HTTP on the TLS port is not served.
        let plain = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{}/status", addr.port()))
            .send()
            .await;
        assert!(
            plain.map_or(true, |r| r.status() != reqwest::StatusCode::OK),
            "plain HTTP must not be answered on the HTTPS port"
        );
    });
}
