//! Logging as an operator sees it: the log file of `[log.file]` beside the console, and log
//! traces (`/api/v5/trace`): one client's debug lines in the trace's file, from every protocol,
//! while the console stays at info.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;
mod mqttsn_client;

use admin_support::Api;
use coap_lite::{CoapOption, MessageClass, MessageType, Packet as CoapPacket, RequestType};
use common::mqtt::{text, Client};
use common::Broker;
use mqttsn_client::SnClient;
use reqwest::StatusCode;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_mqttsn::codec::TopicIdType;
use tokio::net::UdpSocket;

#[test]
fn the_log_file_gets_the_console_lines_and_rotates_by_size() {
    let mut broker = Broker::start_with(
        "[log.file]\nenable = true\npath = \"logs/switchyard.log\"\nmax_size = \"1KB\"\n\
         rotation_count = 2\n",
    );
    let path = broker.dir().join("logs/switchyard.log");
    let text = std::fs::read_to_string(&path).expect("the log file exists");
    assert!(text.contains("switchyard started"), "{text}");
    assert!(broker.log_contains("switchyard started"), "the console too");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in the file: {text}"
    );
    // Start-up alone logs more than 1KB: the file has rotated and no file passes 1KB.
    broker.stop(common::STOP_TIMEOUT);
    let rotated = broker.dir().join("logs/switchyard.log.1");
    assert!(rotated.exists(), "{}", broker.log_excerpt());
    assert!(!broker.dir().join("logs/switchyard.log.3").exists());
    for p in [path, rotated] {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 1024, "{} has {len} bytes", p.display());
    }
}

/// A confirmable POST; the response code ("2.04").
async fn coap_post(addr: SocketAddr, path: &[&str], query: &[&str], body: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut p = CoapPacket::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.code = MessageClass::Request(RequestType::Post);
    p.header.message_id = 27;
    p.set_token(vec![2, 7]);
    for seg in path {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p.payload = body.as_bytes().to_vec();
    sock.send_to(&p.to_bytes().unwrap(), addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(Duration::from_secs(10), sock.recv_from(&mut buf))
        .await
        .expect("CoAP response in time")
        .unwrap();
    CoapPacket::from_bytes(&buf[..n]).unwrap().header.get_code()
}

async fn download(api: &Api, name: &str) -> (StatusCode, String) {
    let r = api
        .http
        .get(api.url(&format!("/api/v5/trace/{name}/download")))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Waits until trace `name`'s file holds every one of `needles`; returns the file.
async fn trace_with(api: &Api, name: &str, needles: &[&str]) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        let (s, t) = download(api, name).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        text = t;
        if needles.iter().all(|n| text.contains(n)) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("trace {name} lacks one of {needles:?}:\n{text}");
}

#[tokio::test]
async fn a_clientid_trace_holds_that_clients_debug_lines_and_no_other_clients() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    for (name, id) in [
        ("mqtt", "traced-1"),
        ("sn", "sn-traced"),
        ("coap", "coap-traced"),
        ("lw", "lw-traced"),
    ] {
        let (s, v) = api
            .send(
                "POST",
                "/api/v5/trace",
                Some(json!({"name": name, "type": "clientid", "clientid": id})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            (v["status"].as_str(), v["clientid"].as_str()),
            (Some("running"), Some(id))
        );
    }
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/trace",
            Some(json!({"name": "again", "type": "clientid", "clientid": "traced-1"})),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::CONFLICT, Some("DUPLICATE_CONDITION"))
    );

    // Two MQTT clients, each subscribed to what the other publishes.
    let addr = broker.mqtt_addr();
    let mut traced = Client::connect(addr, "traced-1").await;
    let mut other = Client::connect(addr, "other-1").await;
    traced.subscribe("to/traced", QoS::AtLeastOnce).await;
    other.subscribe("to/other", QoS::AtLeastOnce).await;
    traced
        .publish("to/other", QoS::AtLeastOnce, false, b"hello-other")
        .await;
    other
        .publish("to/traced", QoS::AtLeastOnce, false, b"hello-traced")
        .await;
    assert_eq!(
        text(&other.expect_publish("from traced-1").await),
        "hello-other"
    );
    assert_eq!(
        text(&traced.expect_publish("from other-1").await),
        "hello-traced"
    );

    let t = trace_with(
        &api,
        "mqtt",
        &[
            "subscribed topic=to/traced",
            "message published topic=to/other",
            "message delivered topic=to/traced",
        ],
    )
    .await;
    assert!(t.contains("DEBUG"), "{t}");
    assert!(t.contains("payload=\"hello-other\""), "{t}");
    // Every line is about traced-1 (its span or the line names it), none about other-1.
    for line in t.lines() {
        assert!(
            line.contains("client_id=traced-1") || line.contains("client_id=\"traced-1\""),
            "a line of another client: {line}\n{t}"
        );
    }
    assert!(!t.contains("other-1"), "{t}");
    // The console stays at info.
    let console = broker.log();
    assert!(!console.contains("message published"), "{console}");

    // MQTT-SN (the PUBLISH is handled on the listener's task, in the client's span), CoAP and
    // LwM2M clients, each traced by its client id.
    let mut sn = SnClient::new(broker.listener("mqttsn:udp:default"), "sn-traced").await;
    sn.connect(true, 60).await;
    let (topic_id, rc) = sn.register("sn/data").await;
    assert_eq!(rc, 0);
    assert_eq!(
        sn.publish(TopicIdType::Normal, topic_id, 1, "sn-payload")
            .await,
        0
    );
    trace_with(
        &api,
        "sn",
        &[
            "message published topic=sn/data",
            "payload=\"sn-payload\"",
            "mqtt-sn",
        ],
    )
    .await;
    let code = coap_post(
        broker.listener("coap:udp:default"),
        &["ps", "coap", "data"],
        &["clientid=coap-traced"],
        "coap-payload",
    )
    .await;
    assert_eq!(code, "2.04");
    trace_with(
        &api,
        "coap",
        &["message published topic=coap/data", "client_id=coap-traced"],
    )
    .await;
    let code = coap_post(
        broker.listener("lwm2m:udp:default"),
        &["rd"],
        &["ep=lw-traced", "lt=300", "lwm2m=1.0"],
        "</3/0>",
    )
    .await;
    assert_eq!(code, "2.01");
    trace_with(
        &api,
        "lw",
        &["message published", "client_id=lw-traced", "lwm2m"],
    )
    .await;

    // Listed with their sizes; stopped, a trace writes no more; deleted, it is gone.
    let (_, list) = api.get("/api/v5/trace").await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 4, "{list:?}");
    let node = "switchyard@127.0.0.1";
    assert!(
        list.iter()
            .all(|v: &Value| v["log_size"][node].as_u64() > Some(0)),
        "{list:?}"
    );
    let (s, v) = api.send("PUT", "/api/v5/trace/mqtt/stop", None).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("stopped")),
        "{v}"
    );
    let (_, before) = download(&api, "mqtt").await;
    traced
        .publish("to/other", QoS::AtLeastOnce, false, b"after-stop")
        .await;
    other.expect_publish("after the stop").await;
    assert_eq!(download(&api, "mqtt").await.1, before);
    let (s, v) = api.send("DELETE", "/api/v5/trace/mqtt", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(download(&api, "mqtt").await.0, StatusCode::NOT_FOUND);
    assert!(!broker.dir().join("data/trace/mqtt.log").exists());
    assert!(broker.dir().join("data/trace/sn.log").exists());
}
