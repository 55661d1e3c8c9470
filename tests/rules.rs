//! Rules against the real binary (issue 17): the REST API (`/api/v5/rules`, `/rule_test`,
//! `/connectors`, `/actions`, Prometheus) with EMQX's paths and error shapes, republish seen by
//! a real MQTT client, a webhook delivered to an HTTP server the test runs, client and session
//! events from MQTT, MQTT-SN and CoAP clients, and API-made rules surviving SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;
mod mqttsn_client;

use admin_support::Api;
use common::mqtt::{text, Client};
use common::node::Node;
use common::Broker;
use mqttsn_client::SnClient;
use reqwest::StatusCode;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::time::Duration;
use switchyard_mqttsn::codec::SubTopic;

async fn metric(api: &Api, id: &str, key: &str) -> u64 {
    let (s, v) = api.get(&format!("/api/v5/rules/{id}/metrics")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["metrics"][key].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn rules_api_shapes_and_republish_to_a_real_client() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;

    // Bad SQL: 400 with the position.
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/rules",
            Some(json!({"sql": "SELECT * FRM \"t/#\""})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["code"], json!("BAD_REQUEST"));
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("line 1, column 10"), "{msg}");
    // Unknown key: 400 naming it.
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/rules",
            Some(json!({"sql": "SELECT * FROM \"t\"", "colour": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("colour"), "{v}");
    // Unknown function refused at create time.
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/rules",
            Some(json!({"sql": "SELECT nope(1) FROM \"t\""})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let rule = json!({
        "id": "hot", "description": "hot sensors",
        "sql": "SELECT payload.temp AS t, clientid FROM \"sensors/#\" WHERE payload.temp > 30",
        "actions": [{"function": "republish",
                     "args": {"topic": "alerts/${clientid}", "payload": "hot ${t}", "qos": 1}},
                    {"function": "console"}, "http:not_yet"]
    });
    let (s, v) = api.send("POST", "/api/v5/rules", Some(rule.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["from"], json!(["sensors/#"]));
    assert_eq!(v["enable"], json!(true));
    assert!(v["created_at"].as_str().unwrap().ends_with("+00:00"));
    let (s, v) = api.send("POST", "/api/v5/rules", Some(rule)).await;
    assert_eq!(
        (s, v["message"].clone()),
        (StatusCode::BAD_REQUEST, json!("rule id already exists"))
    );

    let mut sub = Client::connect(broker.mqtt_addr(), "watcher").await;
    sub.subscribe("alerts/#", QoS::AtLeastOnce).await;
    let mut dev = Client::connect(broker.mqtt_addr(), "dev1").await;
    dev.publish("sensors/1", QoS::AtLeastOnce, false, br#"{"temp": 35}"#)
        .await;
    dev.publish("sensors/1", QoS::AtLeastOnce, false, br#"{"temp": 5}"#)
        .await;
    dev.publish("sensors/1", QoS::AtLeastOnce, false, b"\xff\xfe not json")
        .await;
    let p = sub.expect_publish("republished").await;
    assert_eq!(
        (p.topic.as_str(), text(&p).as_str()),
        ("alerts/dev1", "hot 35")
    );
    sub.expect_no_publish(Duration::from_millis(300), "only the hot one")
        .await;
    assert_eq!(metric(&api, "hot", "matched").await, 3);
    assert_eq!(metric(&api, "hot", "passed").await, 1);
    assert_eq!(metric(&api, "hot", "failed.no_result").await, 1);
    assert_eq!(metric(&api, "hot", "failed.exception").await, 1);
    // The missing action counts as failed, out of service.
    assert_eq!(
        metric(&api, "hot", "actions.failed.out_of_service").await,
        1
    );

    // Partial PUT disables it.
    let (s, v) = api
        .send("PUT", "/api/v5/rules/hot", Some(json!({"enable": false})))
        .await;
    assert_eq!(
        (s, v["enable"].clone(), v["description"].clone()),
        (StatusCode::OK, json!(false), json!("hot sensors"))
    );
    dev.publish("sensors/1", QoS::AtLeastOnce, false, br#"{"temp": 99}"#)
        .await;
    sub.expect_no_publish(Duration::from_millis(300), "disabled")
        .await;

    let (s, v) = api
        .get("/api/v5/rules?enable=false&like_from=sensors")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["meta"]["count"], json!(1));
    assert_eq!(v["data"][0]["id"], json!("hot"));
    let (s, _) = api
        .send("PUT", "/api/v5/rules/hot/metrics/reset", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // rule_test: 200 with the output, 412 not matched, 400 for a bad payload, 415 not JSON.
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/rule_test",
            Some(json!({
            "sql": "SELECT payload.temp as t FROM \"t/#\" WHERE payload.temp > 20",
            "context": {"topic": "t/1", "payload": "{\"temp\": 25}"}})),
        )
        .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"t": 25})));
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/rule_test",
            Some(json!({
            "sql": "SELECT * FROM \"x/#\"", "context": {"topic": "t/1"}})),
        )
        .await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::PRECONDITION_FAILED, json!("NOT_MATCH"))
    );
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/rule_test",
            Some(json!({
            "sql": "SELECT payload.a FROM \"t/#\"", "context": {"topic": "t/1", "payload": "x"}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("decode_json_failed"));
    let r = api
        .http
        .post(api.url("/api/v5/rule_test"))
        .bearer_auth(&api.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // OpenAPI lists the routes; Prometheus has the series.
    let (_, doc) = api.get("/api-docs/openapi.json").await;
    assert!(doc["paths"]["/api/v5/rules/{id}"]["put"].is_object());
    assert!(doc["paths"]["/api/v5/actions/{id}/metrics"]["get"].is_object());
    let prom = api
        .http
        .get(api.url("/api/v5/prometheus/data_integration"))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(prom.contains("emqx_rules_count 1"), "{prom}");
    assert!(prom.contains("emqx_rule_enable{id=\"hot\"} 0"), "{prom}");

    let (s, _) = api.send("DELETE", "/api/v5/rules/hot", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = api.get("/api/v5/rules/hot").await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::NOT_FOUND, json!("NOT_FOUND"))
    );
}

/// A webhook receiver on a free port: every request's path and body, in order.
async fn webhook_server() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/*path",
        axum::routing::post(move |uri: axum::http::Uri, body: String| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((uri.path().to_string(), body));
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (addr, rx)
}

#[tokio::test]
async fn webhook_through_the_api_and_connector_action_errors() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let (addr, mut rx) = webhook_server().await;

    let (s, v) = api
        .send(
            "POST",
            "/api/v5/actions",
            Some(json!({
        "type": "http", "name": "hook", "connector": "nope", "parameters": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("connector_not_found_or_wrong_type"));
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/connectors",
            Some(json!({
        "type": "http", "name": "hook", "url": format!("http://{addr}/api"), "pool_szie": 4})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["message"].as_str().unwrap().contains("pool_szie"), "{v}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/connectors",
            Some(json!({
        "type": "http", "name": "hook", "url": format!("http://{addr}/api"), "pool_size": 4,
        "resource_opts": {"health_check_interval": "200ms"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/connectors",
            Some(json!({
        "type": "http", "name": "hook", "url": format!("http://{addr}/api")})),
        )
        .await;
    assert_eq!(
        (s, v["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("ALREADY_EXISTS"))
    );
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/actions",
            Some(json!({
        "type": "http", "name": "hook", "connector": "hook",
        "parameters": {"path": "/events/${topic}", "method": "post",
                       "body": "{\"who\":\"${clientid}\",\"temp\":${payload.temp}}"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/rules",
            Some(json!({
        "id": "to_hook", "sql": "SELECT * FROM \"sensors/#\"", "actions": ["webhook:hook"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["actions"], json!(["http:hook"]));

    let mut dev = Client::connect(broker.mqtt_addr(), "dev7").await;
    dev.publish("sensors/a", QoS::AtLeastOnce, false, br#"{"temp": 21.5}"#)
        .await;
    let (path, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(path, "/api/events/sensors/a");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"who": "dev7", "temp": 21.5})
    );

    for _ in 0..50 {
        let (_, m) = api.get("/api/v5/actions/http:hook/metrics").await;
        if m["metrics"]["success"] == json!(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, m) = api.get("/api/v5/actions/http:hook/metrics").await;
    assert_eq!(
        (
            m["metrics"]["matched"].clone(),
            m["metrics"]["success"].clone()
        ),
        (json!(1), json!(1))
    );
    let (s, a) = api.get("/api/v5/actions/http:hook").await;
    assert_eq!(
        (s, a["status"].clone(), a["rules"].clone()),
        (StatusCode::OK, json!("connected"), json!(["to_hook"]))
    );
    let (_, list) = api.get("/api/v5/connectors").await;
    assert_eq!(list[0]["actions"], json!(["hook"]));
    let (s, v) = api.get("/api/v5/actions/nocolon").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // In use: refused with the rules; the connector too.
    let (s, v) = api.send("DELETE", "/api/v5/actions/http:hook", None).await;
    assert_eq!(
        (s, v["rules"].clone()),
        (StatusCode::BAD_REQUEST, json!(["to_hook"]))
    );
    let (s, _) = api
        .send("DELETE", "/api/v5/connectors/http:hook", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .send("PUT", "/api/v5/actions/http:hook/enable/false", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = api
        .send("POST", "/api/v5/actions/http:hook/start", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = api
        .send(
            "DELETE",
            "/api/v5/actions/http:hook?also_delete_dep_actions=true",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, r) = api.get("/api/v5/rules/to_hook").await;
    assert_eq!(r["actions"], json!([]));
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/connectors_probe",
            Some(json!({
        "type": "http", "name": "p", "url": format!("http://{addr}/")})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn events_from_mqtt_mqttsn_coap_and_lwm2m_clients() {
    let broker = Broker::start_with("[gateway.coap]\nconnection_required = false\n");
    let api = Api::ready(&broker).await;
    for ev in [
        "client_connected",
        "client_disconnected",
        "session_subscribed",
        "session_unsubscribed",
        "message_delivered",
        "message_acked",
        "message_dropped",
    ] {
        let (s, v) = api
            .send(
                "POST",
                "/api/v5/rules",
                Some(json!({
            "id": ev,
            "sql": format!("SELECT * FROM \"$events/{ev}\" WHERE clientid != 'watcher'"),
            "actions": [{"function": "republish", "args": {
                "topic": format!("ev/{ev}/${{clientid}}"), "qos": 0,
                "payload": "${proto_name}|${topic}|${reason}"}}]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    // Message publish from any protocol: who published what.
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/rules",
            Some(
                json!({"id": "pubs", "sql": "SELECT clientid, topic FROM \"t/#\"",
                "actions": [{"function": "republish", "args": {
                    "topic": "ev/message_publish/${clientid}", "qos": 0, "payload": "${topic}"}}]}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mut w = Client::connect(broker.mqtt_addr(), "watcher").await;
    w.subscribe("ev/#", QoS::AtLeastOnce).await;
    let mut seen: Vec<String> = Vec::new();
    async fn expect(w: &mut Client, seen: &mut Vec<String>, topic: &str) -> String {
        loop {
            if let Some(i) = seen
                .iter()
                .position(|s| s.starts_with(&format!("{topic} ")))
            {
                return seen.remove(i);
            }
            let p = w
                .next_publish(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no {topic}; seen {seen:?}"));
            seen.push(format!("{} {}", p.topic, text(&p)));
        }
    }

    // MQTT: connect, subscribe, get a message (delivered, acked), drop one, disconnect.
    let mut m = Client::connect(broker.mqtt_addr(), "m1").await;
    assert!(expect(&mut w, &mut seen, "ev/client_connected/m1")
        .await
        .contains("MQTT|"));
    m.subscribe("t/m", QoS::AtLeastOnce).await;
    assert!(expect(&mut w, &mut seen, "ev/session_subscribed/m1")
        .await
        .ends_with("|t/m|undefined"));
    m.publish("t/m", QoS::AtLeastOnce, false, b"x").await;
    m.expect_publish("own message").await;
    expect(&mut w, &mut seen, "ev/message_delivered/m1").await;
    expect(&mut w, &mut seen, "ev/message_acked/m1").await;
    m.publish("nobody/listens", QoS::AtMostOnce, false, b"x")
        .await;
    assert!(expect(&mut w, &mut seen, "ev/message_dropped/m1")
        .await
        .ends_with("|nobody/listens|no_subscribers"));
    m.disconnect().await;
    assert!(expect(&mut w, &mut seen, "ev/client_disconnected/m1")
        .await
        .ends_with("|normal"));

    // MQTT-SN.
    let mut sn = SnClient::new(broker.listener("mqttsn:udp:default"), "sn1").await;
    sn.connect(true, 30).await;
    assert!(expect(&mut w, &mut seen, "ev/client_connected/sn1")
        .await
        .contains("MQTT-SN|"));
    sn.subscribe(SubTopic::Name("t/sn".into()), 1).await;
    assert!(expect(&mut w, &mut seen, "ev/session_subscribed/sn1")
        .await
        .contains("|t/sn|"));
    let (id, _) = sn.register("t/sn/up").await;
    sn.publish(switchyard_mqttsn::codec::TopicIdType::Normal, id, 1, "up")
        .await;
    assert_eq!(
        expect(&mut w, &mut seen, "ev/message_publish/sn1").await,
        "ev/message_publish/sn1 t/sn/up"
    );
    // A message to the MQTT-SN client: delivered, then acknowledged.
    w.publish("t/sn", QoS::AtLeastOnce, false, b"down").await;
    let mut registered = Vec::new();
    let p = sn.next_publish(&mut registered).await;
    sn.ack(&p).await;
    expect(&mut w, &mut seen, "ev/message_delivered/sn1").await;
    expect(&mut w, &mut seen, "ev/message_acked/sn1").await;
    sn.disconnect(None).await;
    expect(&mut w, &mut seen, "ev/client_disconnected/sn1").await;

    // CoAP: a connectionless publish opens the client's session.
    let coap = broker.listener("coap:udp:default");
    let (code, _) = common::coap::post(coap, &["ps", "t", "coap"], &["clientid=cp1"], "hi").await;
    assert_eq!(code, "2.04");
    let c = expect(&mut w, &mut seen, "ev/client_connected/cp1").await;
    assert!(c.to_lowercase().contains("coap"), "{c}");
    assert_eq!(
        expect(&mut w, &mut seen, "ev/message_publish/cp1").await,
        "ev/message_publish/cp1 t/coap"
    );

    // LwM2M: a device registers (connected) and deregisters (disconnected).
    let mut dev = switchyard_lwm2m::sim::Device::bind(broker.listener("lwm2m:udp:default"), "ep1")
        .await
        .unwrap();
    assert_eq!(dev.register().await, Some(0x41), "2.01 Created");
    let c = expect(&mut w, &mut seen, "ev/client_connected/ep1").await;
    assert!(c.to_lowercase().contains("lwm2m"), "{c}");
    dev.deregister().await;
    expect(&mut w, &mut seen, "ev/client_disconnected/ep1").await;
}

#[tokio::test]
async fn api_made_rules_survive_sigkill() {
    let mut node = Node::with_config("rules-kill", "[gateway.lwm2m]\nenable = false\n");
    node.start();
    let api = Api::ready_at(&node.listener("dashboard:http:default").to_string()).await;
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/rules",
            Some(json!({
        "id": "keep", "sql": "SELECT * FROM \"k/#\"",
        "actions": [{"function": "republish", "args": {"topic": "kept/${topic}"}}]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/connectors",
            Some(json!({"type": "http", "name": "kept", "url": "http://127.0.0.1:9/x"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/actions",
            Some(json!({"type": "http", "name": "kept", "connector": "kept",
                "parameters": {"body": "${payload}"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    node.kill();
    node.start();
    let api = Api::login_at(&node.listener("dashboard:http:default").to_string()).await;
    let (s, v) = api.get("/api/v5/rules/keep").await;
    assert_eq!(
        (s, v["sql"].clone()),
        (StatusCode::OK, json!("SELECT * FROM \"k/#\""))
    );
    let (s, v) = api.get("/api/v5/actions/http:kept").await;
    assert_eq!(
        (s, v["parameters"]["body"].clone(), v["connector"].clone()),
        (StatusCode::OK, json!("${payload}"), json!("kept"))
    );
    let (s, v) = api.get("/api/v5/connectors/http:kept").await;
    assert_eq!(
        (s, v["url"].clone()),
        (StatusCode::OK, json!("http://127.0.0.1:9/x"))
    );
    let mut sub = Client::connect(node.listener("mqtt:tcp:default"), "s").await;
    sub.subscribe("kept/#", QoS::AtLeastOnce).await;
    let mut p = Client::connect(node.listener("mqtt:tcp:default"), "p").await;
    p.publish("k/1", QoS::AtLeastOnce, false, b"v").await;
    let got = sub.expect_publish("republished after restart").await;
    assert_eq!(got.topic, "kept/k/1");
    node.stop();
}

#[tokio::test]
async fn rules_and_webhook_from_the_config_file() {
    let (addr, mut rx) = webhook_server().await;
    let toml = format!(
        r##"
[rule_engine.rules.from_file]
sql = 'SELECT payload.v AS v, clientid FROM "cfg/#"'
actions = ["http:filehook", {{ function = "republish", args = {{ topic = "cfg_out/${{clientid}}", payload = "v=${{v}}" }} }}]
description = "made in the file"

[rule_engine.rules.sys_watch]
sql = 'SELECT topic FROM "#"'
actions = [{{ function = "republish", args = {{ topic = "seen_sys", payload = "${{topic}}" }} }}]

[connectors.http.filehook]
url = "http://{addr}/file"

[actions.http.filehook]
connector = "filehook"
parameters = {{ body = '{{"v": ${{v}}}}' }}
"##
    );
    let broker = Broker::start_with(&toml);
    let api = Api::ready(&broker).await;
    let (s, v) = api.get("/api/v5/rules/from_file").await;
    assert_eq!(
        (s, v["description"].clone()),
        (StatusCode::OK, json!("made in the file"))
    );
    let mut sub = Client::connect(broker.mqtt_addr(), "cfgsub").await;
    sub.subscribe("cfg_out/#", QoS::AtLeastOnce).await;
    let mut sys = Client::connect(broker.mqtt_addr(), "syswatch").await;
    sys.subscribe("seen_sys", QoS::AtLeastOnce).await;
    let mut dev = Client::connect(broker.mqtt_addr(), "cfgdev").await;
    dev.publish("cfg/1", QoS::AtLeastOnce, false, br#"{"v": 7}"#)
        .await;
    let p = sub.expect_publish("republished by the file's rule").await;
    assert_eq!(
        (p.topic.as_str(), text(&p).as_str()),
        ("cfg_out/cfgdev", "v=7")
    );
    let (path, body) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((path.as_str(), body.as_str()), ("/file", "{\"v\": 7}"));
    // ignore_sys_message (default true): "#" never sees the $SYS presence messages of these
    // connects, only ordinary topics.
    let mut topics = Vec::new();
    while !topics.iter().any(|t| t == "cfg/1") {
        let p = sys.expect_publish("sys_watch output").await;
        topics.push(text(&p));
    }
    topics.extend(
        sys.publishes_for(Duration::from_millis(200))
            .await
            .iter()
            .map(text),
    );
    assert!(topics.iter().all(|t| !t.starts_with("$SYS")), "{topics:?}");
    // A bad SQL in the file stops the node with the position.
    let bad = Broker::try_start("[rule_engine.rules.bad]\nsql = 'SELECT * FRM \"t\"'\n", &[]);
    let err = bad.err().unwrap_or_default();
    assert!(err.contains("line 1, column 10"), "{err}");
}
