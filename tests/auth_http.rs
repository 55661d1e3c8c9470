//! The chain of authenticators against the real binary with an HTTP auth service run by the
//! test (axum): allow, deny, superuser, the reply's per-client `acl`, ignore then the built-in
//! database, a silent service's timeout that delays no other client, over MQTT, MQTT-SN and
//! CoAP; and the chain's order changed through `/api/v5/authentication`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;
mod mqttsn_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use admin_support::Api;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet as CoapPacket, RequestType};
use common::{temp_dir, Broker};
use mqttsn_client::SnClient;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// What the auth service answers, by username.
async fn decide(
    State(calls): State<Arc<parking_lot::Mutex<Vec<Value>>>>,
    Json(b): Json<Value>,
) -> Response {
    calls.lock().push(b.clone());
    let user = b["username"].as_str().unwrap_or_default().to_owned();
    let good = b["password"] == json!("good");
    match user.as_str() {
        "dev" if good => Json(json!({"result": "allow", "acl": [
            {"permission": "allow", "action": "all", "topic": "dev/${clientid}/#"},
            {"permission": "deny", "action": "all", "topic": "#"}]}))
        .into_response(),
        "root" if good => Json(json!({"result": "allow", "is_superuser": true})).into_response(),
        "plain" if good => StatusCode::NO_CONTENT.into_response(),
        "dev" | "root" | "plain" | "bad" => Json(json!({"result": "deny"})).into_response(),
        "silent" => {
            // Deliberately answers long after the broker's request_timeout (1 s): the silent
            // service whose timeout is under test. Nothing in the test waits for this.
            tokio::time::sleep(Duration::from_secs(20)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => Json(json!({"result": "ignore"})).into_response(),
    }
}

async fn auth_service() -> (SocketAddr, Arc<parking_lot::Mutex<Vec<Value>>>) {
    let calls = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/auth", post(decide))
        .with_state(calls.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, calls)
}

fn start(auth: SocketAddr) -> Broker {
    let dir = temp_dir("auth-http");
    let users = dir.join("users.csv");
    // "bad" is refused by the service but known to the built-in database.
    std::fs::write(
        &users,
        "user_id,password,is_superuser\nlocal,local-pw,false\nbad,bad-pw,false\n",
    )
    .unwrap();
    Broker::start_with(&format!(
        r#"
[authentication]
allow_anonymous = false
bootstrap_file = "{}"
password_hash_algorithm = "pbkdf2_sha256"

[[authentication.authenticators]]
mechanism = "password_based"
backend = "http"
method = "post"
url = "http://{auth}/auth"
body = {{ username = "${{username}}", password = "${{password}}", clientid = "${{clientid}}" }}
request_timeout = "1s"

[[authentication.authenticators]]
mechanism = "password_based"
backend = "built_in_database"

[gateway.mqttsn]
enable_authn = true

[gateway.mqttsn.clientinfo_override]
username = "${{clientid}}"
password = "good"

[gateway.coap]
enable_authn = true

[gateway.lwm2m]
enable = false
"#,
        users.display()
    ))
}

/// MQTT 3.1.1 CONNECT with username and password; the CONNACK return code, and the stream.
async fn connect(addr: SocketAddr, id: &str, user: &str, pw: &str) -> (u8, TcpStream) {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 30];
    for s in [id, user, pw] {
        body.extend((s.len() as u16).to_be_bytes());
        body.extend(s.as_bytes());
    }
    let mut p = vec![0x10];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        p.push(b);
        if n == 0 {
            break;
        }
    }
    p.extend(body);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&p).await.unwrap();
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ack))
        .await
        .expect("CONNACK in time")
        .unwrap();
    assert_eq!(ack[0], 0x20);
    (ack[3], s)
}

/// SUBSCRIBE at QoS 1; the SUBACK return code.
async fn subscribe(s: &mut TcpStream, filter: &str) -> u8 {
    let mut body = vec![0, 1];
    body.extend((filter.len() as u16).to_be_bytes());
    body.extend(filter.as_bytes());
    body.push(1);
    let mut p = vec![0x82, body.len() as u8];
    p.extend(body);
    s.write_all(&p).await.unwrap();
    let mut ack = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ack))
        .await
        .expect("SUBACK in time")
        .unwrap();
    assert_eq!(ack[0], 0x90);
    ack[4]
}

async fn coap_create(addr: SocketAddr, query: &[&str]) -> (String, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut p = CoapPacket::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = 9;
    p.set_token(vec![9, 9]);
    for seg in ["mqtt", "connection"] {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    sock.send_to(&p.to_bytes().unwrap(), addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
        .await
        .expect("CoAP response in time")
        .unwrap();
    let r = CoapPacket::from_bytes(&buf[..n]).unwrap();
    (
        r.header.get_code(),
        String::from_utf8_lossy(&r.payload).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_authenticator_on_every_protocol() {
    let (auth, calls) = auth_service().await;
    let broker = start(auth);
    let mqtt = broker.mqtt_addr();

    // Allowed with a per-client ACL from the reply.
    let (rc, mut dev) = connect(mqtt, "d1", "dev", "good").await;
    assert_eq!(rc, 0);
    assert_eq!(subscribe(&mut dev, "dev/d1/#").await, 1);
    assert_eq!(subscribe(&mut dev, "other/#").await, 0x80);
    // Superuser: everything.
    let (rc, mut root) = connect(mqtt, "r1", "root", "good").await;
    assert_eq!(rc, 0);
    assert_eq!(subscribe(&mut root, "other/#").await, 1);
    // 204 allows.
    assert_eq!(connect(mqtt, "p1", "plain", "good").await.0, 0);
    // Deny: not authorized (MQTT 3.1.1 code 5), even for a user the built-in database knows.
    assert_eq!(connect(mqtt, "b1", "dev", "wrong").await.0, 5);
    assert_eq!(connect(mqtt, "b2", "bad", "bad-pw").await.0, 5);
    // Ignored by the service, accepted by the built-in database next.
    assert_eq!(connect(mqtt, "l1", "local", "local-pw").await.0, 0);
    // Ignored by both: anonymous is off, credentials were presented → code 4.
    assert_eq!(connect(mqtt, "n1", "nobody", "x").await.0, 4);
    // The values reached the service as they were sent.
    let seen = calls
        .lock()
        .iter()
        .any(|b| b["clientid"] == json!("d1") && b["username"] == json!("dev"));
    assert!(seen);

    // A silent service: those clients wait for the timeout (then ignore → built-in → refused),
    // and nobody else waits for them.
    let mut silent = Vec::new();
    for i in 0..10 {
        silent.push(tokio::spawn(async move {
            let t = Instant::now();
            let (rc, _) = connect(mqtt, &format!("s{i}"), "silent", "x").await;
            (rc, t.elapsed())
        }));
    }
    // Every silent request is at the service (which holds it) before the next client comes.
    let silent_calls = || {
        calls
            .lock()
            .iter()
            .filter(|b| b["username"] == json!("silent"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while silent_calls() < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        silent_calls(),
        10,
        "the silent clients' requests did not all reach the service"
    );
    let t = Instant::now();
    assert_eq!(connect(mqtt, "d2", "dev", "good").await.0, 0);
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "waited {:?}",
        t.elapsed()
    );
    for s in silent {
        let (rc, took) = s.await.unwrap();
        assert_eq!(rc, 4);
        assert!(took >= Duration::from_millis(900), "{took:?}");
    }

    // MQTT-SN: username = client id, password "good" from clientinfo_override.
    let sn_addr = broker.listener("mqttsn:udp:default");
    for (id, want) in [("dev", 0u8), ("bad", 0x80)] {
        let sn = SnClient::new(sn_addr, id).await;
        sn.send(&sn.connect_packet(true, false, 30)).await;
        let p = sn.expect("CONNACK").await;
        assert_eq!(
            p,
            switchyard_mqttsn::codec::Packet::ConnAck { rc: want },
            "{id}"
        );
    }

    // CoAP connection create.
    let coap = broker.listener("coap:udp:default");
    let (code, token) =
        coap_create(coap, &["clientid=c1", "username=plain", "password=good"]).await;
    assert_eq!(code, "2.01", "{token}");
    // The reply's acl holds for CoAP too: dev/{clientid}/# allowed, the rest denied (4.01).
    let (code, token) = coap_create(coap, &["clientid=c3", "username=dev", "password=good"]).await;
    assert_eq!(code, "2.01", "{token}");
    // Every request of a client outside connection mode carries its credentials (docs/coap.md
    // §3.4); the HTTP service's answer to the create is reused from the result cache.
    let auth = [
        "clientid=c3".to_owned(),
        format!("token={token}"),
        "username=dev".to_owned(),
        "password=good".to_owned(),
    ];
    let auth: Vec<&str> = auth.iter().map(String::as_str).collect();
    let (code, _) = common::coap::post(coap, &["ps", "dev", "c3", "t"], &auth, "x").await;
    assert_eq!(code, "2.04");
    let (code, _) = common::coap::post(coap, &["ps", "other", "t"], &auth, "x").await;
    assert_eq!(code, "4.01");
    let (code, text) = coap_create(coap, &["clientid=c2", "username=bad", "password=x"]).await;
    assert_eq!(
        (code.as_str(), text.as_str()),
        ("4.00", "Login Failed: not_authorized")
    );

    // The REST API: the chain, its metrics, and its order changed.
    let api = Api::ready(&broker).await;
    let (s, list) = api.get("/api/v5/authentication").await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["password_based:http", "password_based:built_in_database"]
    );
    let (s, st) = api
        .get("/api/v5/authentication/password_based:http/status")
        .await;
    assert_eq!(s, 200);
    assert!(st["metrics"]["success"].as_u64().unwrap() >= 5, "{st}");
    assert!(st["metrics"]["failed"].as_u64().unwrap() >= 3, "{st}");
    assert!(st["timeouts"].as_u64().unwrap() >= 10, "{st}");
    let order = json!([{"id": "password_based:built_in_database"}, {"id": "password_based:http"}]);
    let (s, _) = api
        .send("PUT", "/api/v5/authentication/order", Some(order))
        .await;
    assert_eq!(s, 204);
    // The built-in database now answers first: "bad" is accepted with its own password.
    assert_eq!(connect(mqtt, "b3", "bad", "bad-pw").await.0, 0);
    let (s, _) = api
        .send(
            "PUT",
            "/api/v5/authentication/password_based%3Ahttp/position/front",
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(connect(mqtt, "b4", "bad", "bad-pw").await.0, 5);
    let (s, e) = api
        .send(
            "PUT",
            "/api/v5/authentication/password_based:http/position/before:",
            None,
        )
        .await;
    assert_eq!(s, 400, "{e}");

    // Prometheus: counters per authenticator.
    let (s, text) = api.get("/api/v5/prometheus/stats").await;
    assert_eq!(s, 200);
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("switchyard_authn_timeouts{authenticator=\"password_based:http\"} 10"),
        "{text}"
    );
    // Authorization: the file source, the settings, the cache.
    let (s, v) = api.get("/api/v5/authorization/sources").await;
    assert_eq!(
        (s.as_u16(), v["sources"][0]["type"].as_str()),
        (200, Some("file"))
    );
    let (s, v) = api.get("/api/v5/authorization/settings").await;
    assert_eq!(
        (s.as_u16(), v["cache"]["max_size"].as_u64()),
        (200, Some(32))
    );
    let (s, _) = api
        .send("DELETE", "/api/v5/authorization/cache", None)
        .await;
    assert_eq!(s, 204);
}
