//! The admin REST API against the real binary (reqwest): login and the forced password change,
//! tokens, users and API keys, clients (list, filters, subscriptions on their behalf, kick that
//! really disconnects an MQTT client), publish reaching a real subscriber, retained messages,
//! stats/metrics/nodes/listeners, Prometheus text that parses, and the dashboard's assets.
//! Each endpoint has its happy path and a 4xx path. Gateways, the non-MQTT protocols and `ctl`
//! are in admin_gateways.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::{wait_for_client, Api, NEW_PWD};
use common::mqtt::{text, Client};
use common::Broker;
use reqwest::StatusCode;
use rumqttc::QoS;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn status_and_prometheus_need_no_auth_and_everything_else_does() {
    let broker = Broker::start();
    let api = Api::new(&broker);
    let r = api.http.get(api.url("/status")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("is running"));
    // EMQX 5 scrapes Prometheus without credentials unless prometheus.enable_basic_auth is set
    // (tests/ops_misc.rs covers the switch).
    let r = api
        .http
        .get(api.url("/api/v5/prometheus/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    for path in ["/api/v5/clients", "/api/v5/stats", "/api/v5/gateways"] {
        let r = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let v: Value = r.json().await.unwrap();
        assert!(v["code"].is_string() && v["message"].is_string(), "{v}");
        let r = api
            .http
            .get(api.url(path))
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = api
        .http
        .get(api.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["paths"]["/api/v5/clients"]["get"].is_object());
    assert!(broker.log_contains("dashboard:http:default"));
}

#[tokio::test]
async fn login_forces_a_password_change_and_stores_it_hashed() {
    let broker = Broker::start();
    let mut api = Api::new(&broker);
    let (s, v) = api.login("admin", "wrong").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["code"], "BAD_USERNAME_OR_PWD");
    let (s, v) = api.login("admin", "public").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["must_change_password"], json!(true));
    api.token = v["token"].as_str().unwrap().to_owned();
    // Until the password changes, the token is good for nothing else.
    let (s, v) = api.get("/api/v5/clients").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["code"], "PASSWORD_CHANGE_REQUIRED");
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/users/admin/change_pwd",
            Some(json!({"old_pwd": "bad", "new_pwd": NEW_PWD})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/users/admin/change_pwd",
            Some(json!({"old_pwd": "public", "new_pwd": "short"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/users/admin/change_pwd",
            Some(json!({"old_pwd": "public", "new_pwd": NEW_PWD})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = api.get("/api/v5/clients").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        api.login("admin", "public").await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v) = api.login("admin", NEW_PWD).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["must_change_password"], json!(false));
    // The API-state store (SQLite in WAL mode: the database and its log) holds only the hash.
    let stored: String = ["data/state.db", "data/state.db-wal"]
        .iter()
        .filter_map(|f| std::fs::read(broker.dir().join(f)).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    assert!(stored.contains("$argon2id$") && !stored.contains(NEW_PWD));
    // Bad body → 400 with the error shape.
    let r = api
        .http
        .post(api.url("/api/v5/login"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Logout ends the token.
    let (s, _) = api.send("POST", "/api/v5/logout", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(api.get("/api/v5/clients").await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_and_api_keys() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/users",
            Some(json!({"username": "ops", "password": "ops-password-1", "description": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = api.get("/api/v5/users").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(
        api.send(
            "POST",
            "/api/v5/users",
            Some(json!({"username": "ops", "password": "ops-password-1"}))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        api.send("DELETE", "/api/v5/users/ops", None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.send("DELETE", "/api/v5/users/ops", None).await.0,
        StatusCode::NOT_FOUND
    );

    let (s, key) = api
        .send("POST", "/api/v5/api_key", Some(json!({"name": "ci"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{key}");
    let (k, sec) = (
        key["api_key"].as_str().unwrap(),
        key["api_secret"].as_str().unwrap(),
    );
    let r = api
        .http
        .get(api.url("/api/v5/stats"))
        .basic_auth(k, Some(sec))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = api
        .http
        .get(api.url("/api/v5/stats"))
        .basic_auth(k, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (_, list) = api.get("/api/v5/api_key").await;
    assert!(!list.to_string().contains(sec), "secret must not be listed");
    assert_eq!(
        api.send("DELETE", "/api/v5/api_key/ci", None).await.0,
        StatusCode::NO_CONTENT
    );
    let r = api
        .http
        .get(api.url("/api/v5/stats"))
        .basic_auth(k, Some(sec))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let broker = Broker::start_with("[dashboard]\nlogin_max_failures = 3\n");
    let api = Api::new(&broker);
    for _ in 0..3 {
        assert_eq!(
            api.login("admin", "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        api.login("admin", "public").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn clients_list_get_subscribe_and_kick() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let mut c = Client::connect(broker.mqtt_addr(), "api-client-1").await;
    c.subscribe("sensors/+/temp", QoS::AtLeastOnce).await;
    let v = wait_for_client(&api, "api-client-1").await;
    assert_eq!(v["proto_name"], "MQTT");
    assert_eq!(v["subscriptions_cnt"], json!(1));
    assert!(v["connected_at"].as_str().unwrap().ends_with('Z'));

    let (s, v) = api
        .get("/api/v5/clients?like_clientid=api-client&proto_name=MQTT&limit=10")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["meta"]["count"], json!(1), "{v}");
    assert_eq!(v["meta"]["hasnext"], json!(false));
    assert_eq!(v["data"][0]["clientid"], "api-client-1");
    let (_, v) = api.get("/api/v5/clients?conn_state=disconnected").await;
    assert_eq!(v["meta"]["count"], json!(0));
    assert_eq!(
        api.get("/api/v5/clients?page=zero").await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, v) = api.get("/api/v5/clients/nobody").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "NOT_FOUND");

    // Subscriptions, on its behalf too.
    let (s, v) = api.get("/api/v5/clients/api-client-1/subscriptions").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v[0]["topic"], "sensors/+/temp");
    assert_eq!(v[0]["qos"], json!(1));
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/clients/api-client-1/subscribe",
            Some(json!({"topic": "cmd/api-client-1", "qos": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/clients/api-client-1/subscribe",
            Some(json!({"topic": "bad/#/x"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/clients/nobody/subscribe",
            Some(json!({"topic": "a"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = api.get("/api/v5/subscriptions?clientid=api-client-1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["meta"]["count"], json!(2), "{v}");
    let (_, v) = api
        .get("/api/v5/subscriptions?match_topic=sensors/kitchen/temp")
        .await;
    assert_eq!(v["meta"]["count"], json!(1), "{v}");
    let (s, v) = api.get("/api/v5/topics").await;
    assert_eq!(s, StatusCode::OK);
    let topics: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["topic"].as_str())
        .collect();
    assert!(
        topics.contains(&"cmd/api-client-1") && topics.contains(&"sensors/+/temp"),
        "{v}"
    );

    // A message published through the API reaches the subscription made through the API.
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/publish",
            Some(json!({"topic": "cmd/api-client-1", "payload": "reboot", "qos": 1})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let p = c.expect_publish("publish via the API").await;
    assert_eq!(p.topic, "cmd/api-client-1");
    assert_eq!(text(&p), "reboot");

    let (s, _) = api
        .send(
            "POST",
            "/api/v5/clients/api-client-1/unsubscribe",
            Some(json!({"topic": "cmd/api-client-1"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = api.get("/api/v5/clients/api-client-1/subscriptions").await;
    assert_eq!(v.as_array().unwrap().len(), 1);

    // Kick: 204, and the MQTT connection really closes.
    let (s, _) = api
        .send("DELETE", "/api/v5/clients/api-client-1", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(
        c.wait_closed(Duration::from_secs(5)).await.is_some(),
        "kicked client still connected"
    );
    assert_eq!(
        api.send("DELETE", "/api/v5/clients/nobody", None).await.0,
        StatusCode::NOT_FOUND
    );

    // Kicking an offline persistent session discards it (EMQX's behaviour).
    let mut opts = common::mqtt::options(broker.mqtt_addr(), "api-keeper");
    opts.set_clean_session(false);
    let keeper = Client::connect_with(opts).await;
    keeper.disconnect().await;
    let (s, v) = api.get("/api/v5/clients/api-keeper").await;
    assert_eq!(s, StatusCode::OK, "offline persistent session listed: {v}");
    assert_eq!(v["connected"], json!(false));
    assert_eq!(
        api.send("DELETE", "/api/v5/clients/api-keeper", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.get("/api/v5/clients/api-keeper").await.0,
        StatusCode::NOT_FOUND,
        "offline session not discarded"
    );
}

#[tokio::test]
async fn publish_reaches_a_subscriber_and_validates_input() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let mut sub = Client::connect(broker.mqtt_addr(), "api-sub").await;
    sub.subscribe("api/#", QoS::AtLeastOnce).await;
    let (s, v) = api
        .send("POST", "/api/v5/publish", Some(json!({"topic": "api/one", "payload": "aGVsbG8=", "payload_encoding": "base64", "qos": 1})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["id"].is_string());
    let p = sub.expect_publish("API publish").await;
    assert_eq!(text(&p), "hello");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/publish/bulk",
            Some(json!([{"topic": "api/a", "payload": "1"}, {"topic": "api/b", "payload": "2"}])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v.as_array().unwrap().len(), 2);
    let got: Vec<String> = vec![
        text(&sub.expect_publish("bulk 1").await),
        text(&sub.expect_publish("bulk 2").await),
    ];
    assert_eq!(got, ["1", "2"]);
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/publish",
            Some(json!({"topic": "nobody/listens", "payload": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    for bad in [
        json!({"topic": "a/+", "payload": "x"}),
        json!({"topic": "a", "qos": 3}),
        json!({"payload": "x"}),
        json!({"topic": "a", "payload": "%%", "payload_encoding": "base64"}),
    ] {
        let (s, v) = api.send("POST", "/api/v5/publish", Some(bad.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} → {v}");
        assert_eq!(v["code"], "BAD_REQUEST");
    }
}

#[tokio::test]
async fn retained_messages_list_get_delete() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/publish",
            Some(json!({"topic": "state/lamp/1", "payload": "on", "retain": true})),
        )
        .await;
    assert!(s.is_success());
    let (s, v) = api.get("/api/v5/mqtt/retainer/messages").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["meta"]["count"], json!(1), "{v}");
    assert_eq!(v["data"][0]["topic"], "state/lamp/1");
    let (_, v) = api
        .get("/api/v5/mqtt/retainer/messages?topic=other/%23")
        .await;
    assert_eq!(v["meta"]["count"], json!(0));
    let (_, v) = api
        .get("/api/v5/mqtt/retainer/messages?topic=%24SYS/%23")
        .await;
    assert!(
        v["meta"]["count"].as_u64().unwrap() >= 1,
        "$SYS/# lists the broker's own: {v}"
    );
    assert_eq!(
        api.get("/api/v5/mqtt/retainer/messages?topic=a/%23/b")
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let (s, v) = api
        .get("/api/v5/mqtt/retainer/message/state%2Flamp%2F1")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["payload"], "b24="); // base64("on")
    let (s, _) = api.get("/api/v5/mqtt/retainer/message/state/lamp/1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        api.send("DELETE", "/api/v5/mqtt/retainer/message/state/lamp/1", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.send("DELETE", "/api/v5/mqtt/retainer/message/state/lamp/1", None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/api/v5/mqtt/retainer/message/state/lamp/1")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stats_metrics_nodes_listeners_and_prometheus() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let mut c = Client::connect(broker.mqtt_addr(), "stats-client").await;
    c.subscribe("x/y", QoS::AtMostOnce).await;
    c.publish("x/y", QoS::AtMostOnce, false, b"1").await;
    c.expect_publish("own message").await;
    wait_for_client(&api, "stats-client").await;

    let (s, v) = api.get("/api/v5/stats?aggregate=true").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["connections.count"], json!(1), "{v}");
    assert_eq!(v["mqtt.connections.count"], json!(1), "{v}");
    assert_eq!(v["topics.count"], json!(1), "{v}");
    let (_, v) = api.get("/api/v5/stats").await;
    assert!(v[0]["node"].is_string(), "{v}");
    assert_eq!(
        api.get("/api/v5/stats?aggregate=maybe").await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, v) = api.get("/api/v5/metrics?aggregate=true").await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["messages.received"].as_u64().unwrap() >= 1, "{v}");
    let (s, v) = api.get("/api/v5/nodes").await;
    assert_eq!(s, StatusCode::OK);
    let node = v[0]["node"].as_str().unwrap().to_owned();
    assert_eq!(v[0]["node_status"], "running");
    assert_eq!(
        api.get(&format!("/api/v5/nodes/{node}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/api/v5/nodes/other@host").await.0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = api.get("/api/v5/listeners").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == "mqtt:ws:default" && l["path"] == "/mqtt"),
        "{v}"
    );
    assert_eq!(
        api.get("/api/v5/no/such/route").await.0,
        StatusCode::NOT_FOUND
    );

    let (s, body) = api.get("/api/v5/prometheus/stats").await;
    assert_eq!(s, StatusCode::OK);
    let body = body.as_str().unwrap().to_owned();
    let mut samples = std::collections::BTreeMap::new();
    for line in body.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let kind = rest.split(' ').next().unwrap();
            assert!(
                kind == "HELP" || kind == "TYPE",
                "bad comment line {line:?}"
            );
            if kind == "TYPE" {
                let t = rest.split(' ').nth(2).unwrap();
                assert!(["gauge", "counter"].contains(&t), "{line:?}");
            }
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let metric = name.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line:?}"
        );
        if let Some(labels) = name.strip_prefix(metric) {
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line:?}");
            }
        }
        samples.insert(name.to_owned(), value);
    }
    assert_eq!(
        samples.get("switchyard_connections{protocol=\"MQTT\",namespace=\"mqtt\"}"),
        Some(&1.0),
        "{body}"
    );
    assert!(
        samples.contains_key("switchyard_connections{protocol=\"MQTT-SN\",namespace=\"mqttsn\"}")
    );
    assert!(samples.contains_key("switchyard_messages_received_by_qos{qos=\"0\"}"));
    assert!(samples.contains_key("switchyard_retained_count"));
    assert!(samples.contains_key("switchyard_routes"));
    assert!(samples.contains_key("switchyard_messages_dropped"));
    for bytes in ["switchyard_bytes_received", "switchyard_bytes_sent"] {
        assert!(
            samples.get(bytes).is_some_and(|v| *v > 0.0),
            "{bytes} missing or zero\n{body}"
        );
    }
}

#[tokio::test]
async fn dashboard_pages_and_assets_are_served() {
    let broker = Broker::start();
    let api = Api::new(&broker);
    for path in ["/", "/clients", "/gateways", "/websocket"] {
        let r = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.text().await.unwrap().contains("<html"), "{path}");
    }
    for path in [
        "/assets/app.js",
        "/assets/app.css",
        "/assets/i18n.js",
        "/assets/mqtt.js",
        "/assets/chart.js",
    ] {
        let r = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    assert_eq!(
        api.http
            .get(api.url("/assets/none.js"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}
