//! Authorization sources against the real binary with an HTTP authorization service run by the
//! test (axum): allow (200 and 204), deny, ignore falling through to the file source, a reply
//! with no result (nomatch), a silent service's timeout that delays no other client, the
//! per-client cache and its cleaning, the order of the sources and the settings changed through
//! `/api/v5/authorization`, over MQTT, MQTT-SN and CoAP; and the disconnect of a client whose
//! JWT expires (MQTT 5 DISCONNECT 0x87).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;
mod mqttsn_client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use admin_support::Api;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::{temp_dir, Broker};
use mqttsn_client::SnClient;
use serde_json::{json, Value};
use switchyard_mqttsn::codec::TopicIdType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Calls = Arc<parking_lot::Mutex<Vec<Value>>>;

/// What the authorization service answers, by the topic's first level.
async fn decide(State(calls): State<Calls>, Json(b): Json<Value>) -> Response {
    calls.lock().push(b.clone());
    let topic = b["topic"].as_str().unwrap_or_default().to_owned();
    let first = topic.split('/').next().unwrap_or_default().to_owned();
    match first.as_str() {
        "allow" | "order" => Json(json!({"result": "allow"})).into_response(),
        "deny" => Json(json!({"result": "deny"})).into_response(),
        "nocontent" => StatusCode::NO_CONTENT.into_response(),
        "ignore" => Json(json!({"result": "ignore"})).into_response(),
        "silent" => {
            // Deliberately answers long after the broker's request_timeout (1 s): the silent
            // service whose timeout is under test. Nothing in the test waits for this.
            tokio::time::sleep(Duration::from_secs(20)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        // No result: nomatch, the next source.
        _ => Json(json!({"nothing": "here"})).into_response(),
    }
}

async fn authz_service() -> (SocketAddr, Calls) {
    let calls = Calls::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/authz", post(decide))
        .with_state(calls.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, calls)
}

/// Calls the service saw for `topic` with `action`.
fn calls_for(calls: &Calls, topic: &str, action: &str) -> usize {
    calls
        .lock()
        .iter()
        .filter(|b| b["topic"] == json!(topic) && b["action"] == json!(action))
        .count()
}

fn start(authz: SocketAddr) -> Broker {
    let dir = temp_dir("authz-http");
    let acl = dir.join("acl.toml");
    // The file source, asked after the HTTP one: it allows what the service ignores and denies
    // the topics the order test moves it in front of.
    std::fs::write(
        &acl,
        r#"
[[rule]]
permission = "allow"
action = "all"
topics = ["ignore/#"]

[[rule]]
permission = "deny"
action = "all"
topics = ["order/#"]
"#,
    )
    .unwrap();
    Broker::start_with(&format!(
        r#"
[authorization]
no_match = "deny"
file = "{}"

[[authorization.sources]]
type = "http"
method = "post"
url = "http://{authz}/authz"
body = {{ clientid = "${{clientid}}", username = "${{username}}", topic = "${{topic}}", action = "${{action}}", qos = "${{qos}}", retain = "${{retain}}" }}
request_timeout = "1s"

[[authorization.sources]]
type = "file"

[gateway.lwm2m]
enable = false
"#,
        acl.display()
    ))
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    remaining_length(body.len(), &mut p);
    p.extend_from_slice(body);
    p
}

fn mqtt_str(s: &str, out: &mut Vec<u8>) {
    out.extend((s.len() as u16).to_be_bytes());
    out.extend(s.as_bytes());
}

/// Reads one whole packet: (first byte, body).
async fn read_packet(s: &mut TcpStream, within: Duration) -> Option<(u8, Vec<u8>)> {
    tokio::time::timeout(within, async {
        let first = s.read_u8().await.ok()?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = s.read_u8().await.ok()?;
            len |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.ok()?;
        Some((first, body))
    })
    .await
    .ok()
    .flatten()
}

/// MQTT 3.1.1 CONNECT (clean session, no credentials); panics unless accepted.
async fn connect(addr: SocketAddr, id: &str) -> TcpStream {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    mqtt_str(id, &mut body);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&packet(0x10, &body)).await.unwrap();
    let (first, ack) = read_packet(&mut s, Duration::from_secs(10))
        .await
        .expect("CONNACK");
    assert_eq!((first, ack.get(1).copied()), (0x20, Some(0)), "{id}");
    s
}

/// SUBSCRIBE at QoS 1; the SUBACK return code.
async fn subscribe(s: &mut TcpStream, pkid: u16, filter: &str) -> u8 {
    let mut body = pkid.to_be_bytes().to_vec();
    mqtt_str(filter, &mut body);
    body.push(1);
    s.write_all(&packet(0x82, &body)).await.unwrap();
    let (first, ack) = read_packet(s, Duration::from_secs(10))
        .await
        .expect("SUBACK in time");
    assert_eq!(first, 0x90);
    assert_eq!(ack[..2], pkid.to_be_bytes());
    ack[2]
}

/// PUBLISH at QoS 1 and read what comes back (PUBACK, or nothing when the broker closed).
async fn publish(s: &mut TcpStream, pkid: u16, topic: &str) -> Option<(u8, Vec<u8>)> {
    let mut body = Vec::new();
    mqtt_str(topic, &mut body);
    body.extend(pkid.to_be_bytes());
    body.extend(b"x");
    s.write_all(&packet(0x32, &body)).await.unwrap();
    read_packet(s, Duration::from_secs(10)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_source_on_mqtt_mqttsn_coap_and_its_api() {
    let (authz, calls) = authz_service().await;
    let broker = start(authz);
    let mqtt = broker.mqtt_addr();
    let mut c = connect(mqtt, "c1").await;

    // 200 allow, 204 allow, 200 deny, ignore → the file allows, no result → nomatch → the
    // file has no rule → no_match deny.
    assert_eq!(subscribe(&mut c, 1, "allow/a").await, 1);
    assert_eq!(subscribe(&mut c, 2, "nocontent/a").await, 1);
    assert_eq!(subscribe(&mut c, 3, "deny/a").await, 0x80);
    assert_eq!(subscribe(&mut c, 4, "ignore/a").await, 1);
    assert_eq!(subscribe(&mut c, 5, "other/a").await, 0x80);
    // The templates reached the service rendered, values as JSON strings.
    let seen = calls.lock().iter().any(|b| {
        b == &json!({"clientid": "c1", "username": "", "topic": "allow/a",
            "action": "subscribe", "qos": "1", "retain": "false"})
    });
    assert!(seen, "{:?}", calls.lock());

    // Cached for the client: asked once; cleaning the cache asks again.
    assert_eq!(subscribe(&mut c, 6, "allow/a").await, 1);
    assert_eq!(calls_for(&calls, "allow/a", "subscribe"), 1);
    let api = Api::ready(&broker).await;
    let (s, _) = api
        .send("DELETE", "/api/v5/authorization/cache", None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(subscribe(&mut c, 7, "allow/a").await, 1);
    assert_eq!(calls_for(&calls, "allow/a", "subscribe"), 2);

    // A publish: asked with its action, QoS and retain flag, and acknowledged.
    let (first, _) = publish(&mut c, 8, "allow/p").await.expect("PUBACK");
    assert_eq!(first, 0x40);
    let seen = calls.lock().iter().any(|b| {
        b["topic"] == json!("allow/p") && b["action"] == json!("publish") && b["qos"] == json!("1")
    });
    assert!(seen);

    // A silent service: this client waits for the timeout (ignore → the file has no rule →
    // deny), and another client is not held up meanwhile.
    let silent = tokio::spawn(async move {
        let mut s = connect(mqtt, "slow").await;
        let t = Instant::now();
        let rc = subscribe(&mut s, 1, "silent/a").await;
        (rc, t.elapsed())
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls_for(&calls, "silent/a", "subscribe") < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(calls_for(&calls, "silent/a", "subscribe"), 1);
    let t = Instant::now();
    assert_eq!(subscribe(&mut c, 9, "nocontent/b").await, 1);
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    let (rc, took) = silent.await.unwrap();
    assert_eq!(rc, 0x80);
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // MQTT-SN: the HTTP source answers on the client's own task; SUBACK/PUBACK 0x80 on deny.
    let sn_addr = broker.listener("mqttsn:udp:default");
    let mut sn = SnClient::new(sn_addr, "sn1").await;
    sn.connect(true, 60).await;
    assert_eq!(sn.subscribe_name("allow/sn", 1).await.2, 0);
    assert_eq!(sn.subscribe_name("deny/sn", 1).await.2, 0x80);
    let (allowed, _) = sn.register("allow/snp").await;
    let (denied, _) = sn.register("deny/snp").await;
    assert_eq!(sn.publish(TopicIdType::Normal, allowed, 1, "x").await, 0);
    assert_eq!(sn.publish(TopicIdType::Normal, denied, 1, "x").await, 0x80);
    // A silent answer for one MQTT-SN client holds up no other (they share one receiver).
    let mut slow_sn = SnClient::new(sn_addr, "sn-slow").await;
    slow_sn.connect(true, 60).await;
    let (silent_id, _) = slow_sn.register("silent/sn").await;
    let slow = tokio::spawn(async move {
        let t = Instant::now();
        let rc = slow_sn
            .publish(TopicIdType::Normal, silent_id, 1, "x")
            .await;
        (rc, t.elapsed())
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls_for(&calls, "silent/sn", "publish") < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    assert_eq!(sn.publish(TopicIdType::Normal, allowed, 1, "y").await, 0);
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    let (rc, took) = slow.await.unwrap();
    assert_eq!(rc, 0x80);
    assert!(took >= Duration::from_millis(900), "{took:?}");

    // CoAP (connectionless): 2.04 allowed, 4.01 denied.
    let coap = broker.listener("coap:udp:default");
    let (code, _) = common::coap::post(coap, &["ps", "allow", "co"], &["clientid=co1"], "x").await;
    assert_eq!(code, "2.04");
    let (code, _) = common::coap::post(coap, &["ps", "deny", "co"], &["clientid=co1"], "x").await;
    assert_eq!(code, "4.01");
    assert_eq!(calls_for(&calls, "deny/co", "publish"), 1);

    // The order: HTTP first allows order/#; with the file moved first its deny wins; the order
    // put back allows again. Each change drops the clients' cached decisions.
    assert_eq!(subscribe(&mut c, 10, "order/a").await, 1);
    let (s, e) = api
        .send(
            "POST",
            "/api/v5/authorization/sources/file/move",
            Some(json!({"position": "front"})),
        )
        .await;
    assert_eq!(s, 204, "{e}");
    let (_, v) = api.get("/api/v5/authorization/sources").await;
    let types: Vec<&str> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["file", "http"]);
    assert_eq!(subscribe(&mut c, 11, "order/a").await, 0x80);
    let (s, e) = api
        .send(
            "PUT",
            "/api/v5/authorization/sources/order",
            Some(json!([{"type": "http"}, {"type": "file"}])),
        )
        .await;
    assert_eq!(s, 204, "{e}");
    assert_eq!(subscribe(&mut c, 12, "order/a").await, 1);

    // Status and metrics of a source; errors of the API.
    let (s, st) = api.get("/api/v5/authorization/sources/http/status").await;
    assert_eq!(s, 200);
    assert_eq!(st["status"], json!("connected"));
    assert!(st["metrics"]["deny"].as_u64().unwrap() >= 3, "{st}");
    assert!(st["timeouts"].as_u64().unwrap() >= 2, "{st}");
    let (s, text) = api.get("/api/v5/prometheus/stats").await;
    assert_eq!(s, 200);
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains("switchyard_authz_source_timeouts{source=\"http\"} 2"),
        "{text}"
    );
    let (s, _) = api.get("/api/v5/authorization/sources/redis").await;
    assert_eq!(s, 404);
    let (s, e) = api
        .send(
            "POST",
            "/api/v5/authorization/sources",
            Some(json!({"type": "file", "rules": ""})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/authorization/sources/http/move",
            Some(json!({"position": "sideways"})),
        )
        .await;
    assert_eq!(s, 400);

    // Settings: deny_action = disconnect closes a client whose publish is denied.
    let (s, v) = api
        .send(
            "PUT",
            "/api/v5/authorization/settings",
            Some(json!({"no_match": "deny", "deny_action": "disconnect",
                "cache": {"enable": true, "max_size": 32, "ttl": "1m"}})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), v["deny_action"].as_str()),
        (200, Some("disconnect"))
    );
    assert_eq!(
        publish(&mut c, 13, "deny/p").await,
        None,
        "closed, no PUBACK"
    );

    let (s, _) = api
        .send(
            "PUT",
            "/api/v5/authorization/settings",
            Some(json!({"no_match": "deny", "deny_action": "ignore", "cache": {}})),
        )
        .await;
    assert_eq!(s, 200);

    // Deleting the HTTP source leaves the file alone: nothing asks the service any more.
    let (s, _) = api
        .send("DELETE", "/api/v5/authorization/sources/http", None)
        .await;
    assert_eq!(s, 204);
    let before = calls.lock().len();
    let mut d = connect(mqtt, "c2").await;
    assert_eq!(subscribe(&mut d, 1, "ignore/z").await, 1);
    assert_eq!(subscribe(&mut d, 2, "allow/z").await, 0x80);
    assert_eq!(calls.lock().len(), before);
}

/// An HS256 JWT with these claims, signed with `secret`.
fn jwt(secret: &[u8], claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;
    use hmac::Mac;
    let head = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = B64.encode(claims.to_string());
    let signing = format!("{head}.{body}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing.as_bytes());
    format!("{signing}.{}", B64.encode(mac.finalize().into_bytes()))
}

/// MQTT 5 CONNECT with a username and password; the stream once accepted.
async fn connect_v5(addr: SocketAddr, id: &str, user: &str, pw: &str) -> TcpStream {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0xC2, 0, 60, 0];
    for s in [id, user, pw] {
        mqtt_str(s, &mut body);
    }
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&packet(0x10, &body)).await.unwrap();
    let (first, ack) = read_packet(&mut s, Duration::from_secs(10))
        .await
        .expect("CONNACK");
    assert_eq!((first, ack.get(1).copied()), (0x20, Some(0)), "{id}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_expiry_disconnects_the_client() {
    let secret = b"switchyard-jwt-secret-0123456789";
    // MQTT-SN carries no password: the gateway's clientinfo_override gives it the token.
    let start = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let sn_exp = start.as_secs() + 5;
    let sn_token = jwt(secret, &json!({"exp": sn_exp}));
    let broker = Broker::start_with(&format!(
        r#"
[authentication]
allow_anonymous = false

[[authentication.authenticators]]
mechanism = "jwt"
algorithm = "hmac-based"
secret = "switchyard-jwt-secret-0123456789"
from = "password"

[gateway.mqttsn]
enable_authn = true

[gateway.mqttsn.clientinfo_override]
password = "{sn_token}"

[gateway.coap]
enable_authn = true

[gateway.lwm2m]
enable = false
"#
    ));
    let sn = SnClient::new(broker.listener("mqttsn:udp:default"), "sn-jwt").await;
    sn.connect(true, 60).await;
    // A CoAP client with the same token (exp = sn_exp).
    let coap = broker.listener("coap:udp:default");
    let create = ["clientid=co-jwt".to_owned(), format!("password={sn_token}")];
    let create: Vec<&str> = create.iter().map(String::as_str).collect();
    let (code, token) = common::coap::post(coap, &["mqtt", "connection"], &create, "").await;
    assert_eq!(code, "2.01", "{token}");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    // exp is whole seconds: at least two seconds ahead, so the CONNECT is surely before it.
    let exp = now.as_secs() + 3;
    let short = jwt(secret, &json!({"exp": exp}));
    let long = jwt(secret, &json!({"exp": now.as_secs() + 3600}));
    let mut expiring = connect_v5(broker.mqtt_addr(), "j1", "j1", &short).await;
    let mut lasting = connect_v5(broker.mqtt_addr(), "j2", "j2", &long).await;
    // The server's DISCONNECT 0x87 (Not authorized) arrives once exp has passed.
    let (first, body) = read_packet(&mut expiring, Duration::from_secs(10))
        .await
        .expect("DISCONNECT at expiry");
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!((first, body.first().copied()), (0xE0, Some(0x87)));
    assert!(at.as_secs() >= exp, "closed at {at:?}, before exp {exp}");
    // The other client is still served: PINGREQ → PINGRESP.
    lasting.write_all(&[0xC0, 0]).await.unwrap();
    let (first, _) = read_packet(&mut lasting, Duration::from_secs(5))
        .await
        .expect("PINGRESP");
    assert_eq!(first, 0xD0);
    assert!(broker.log_contains("credentials expired"));
    // The MQTT-SN client is told with a DISCONNECT once its token's exp passed.
    let p = sn
        .recv(Duration::from_secs(10))
        .await
        .expect("DISCONNECT at expiry");
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(
        matches!(p, switchyard_mqttsn::codec::Packet::Disconnect { .. }),
        "{p:?}"
    );
    assert!(
        at.as_secs() >= sn_exp,
        "closed at {at:?}, before exp {sn_exp}"
    );
    // The CoAP client's channel is closed at expiry too: its token is then unknown.
    let closed = || {
        broker
            .log()
            .lines()
            .any(|l| l.contains("co-jwt") && l.contains("credentials expired"))
    };
    assert!(
        common::wait_until(Duration::from_secs(5), closed),
        "{}",
        broker.log()
    );
    let publish = ["clientid=co-jwt".to_owned(), format!("token={token}")];
    let publish: Vec<&str> = publish.iter().map(String::as_str).collect();
    let (code, _) = common::coap::post(coap, &["ps", "t"], &publish, "x").await;
    assert_eq!(code, "4.00");
}
