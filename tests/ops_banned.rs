//! Banned clients and flapping detection, end to end: a ban made through EMQX's
//! `/api/v5/banned` refuses the client on every protocol before authentication (MQTT 5 CONNACK
//! 0x8A, MQTT 3.1.1 0x05, MQTT-SN 0x80, CoAP and LwM2M 4.00 `Login Failed`), survives a restart
//! (API-state store), and lifting it lets the client back in; a client id that reconnects in a
//! loop is banned by flapping detection and let back in after the ban.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;
mod mqttsn_client;

use admin_support::Api;
use common::raw::{packet, Got, Raw, CONNACK, WAIT};
use common::{temp_dir, Broker};
use mqttsn_client::SnClient;
use reqwest::StatusCode;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use switchyard_lwm2m::sim::Device;
use switchyard_mqttsn::codec::Packet;

/// The CONNACK code a raw MQTT client gets: (3.1.1 or 5, client id, username, password).
async fn mqtt_connack(addr: SocketAddr, v5: bool, id: &str, user: Option<(&str, &str)>) -> u8 {
    let (id, user) = (
        id.to_owned(),
        user.map(|(u, p)| (u.to_owned(), p.to_owned())),
    );
    tokio::task::spawn_blocking(move || {
        let mut raw = Raw::open(addr);
        let mut flags = 0x02u8;
        let mut payload = Vec::new();
        payload.extend_from_slice(&(id.len() as u16).to_be_bytes());
        payload.extend_from_slice(id.as_bytes());
        if let Some((u, p)) = &user {
            flags |= 0xC0;
            for s in [u.as_bytes(), p.as_bytes()] {
                payload.extend_from_slice(&(s.len() as u16).to_be_bytes());
                payload.extend_from_slice(s);
            }
        }
        let mut body = vec![
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            if v5 { 5 } else { 4 },
            flags,
            0,
            60,
        ];
        if v5 {
            body.push(0);
        }
        body.extend_from_slice(&payload);
        raw.send(&packet(0x10, &body));
        match raw.read(WAIT) {
            Got::Packet(CONNACK, b) => b[1],
            other => panic!("expected CONNACK, got {other:?}"),
        }
    })
    .await
    .unwrap()
}

async fn auth_failures(api: &Api) -> u64 {
    let (_, v) = api.get("/api/v5/metrics?aggregate=true").await;
    v["authentication.failure"].as_u64().unwrap()
}

#[tokio::test]
async fn bans_refuse_every_protocol_before_authentication_and_persist() {
    let dir = temp_dir("banned");
    let users = dir.join("users.csv");
    std::fs::write(&users, "user_id,password,is_superuser\nalice,pw,false\n").unwrap();
    let extra = format!(
        "[authentication]\nbootstrap_file = \"{}\"\n[listeners.tcp.default]\nenable_authn = true\n",
        users.display()
    );
    let mut node = common::node::Node::with_config("banned", &extra);
    node.start();
    let broker_addr = node.listener("mqtt:tcp:default");
    let api = Api::ready_at(&node.listener("dashboard:http:default").to_string()).await;

    // Ban by client id, username and the loopback host.
    for (kind, who) in [("clientid", "bad-id"), ("username", "mallory")] {
        let (s, v) = api
            .send(
                "POST",
                "/api/v5/banned",
                Some(json!({"as": kind, "who": who, "reason": "test"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["as"], kind);
    }
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/banned",
            Some(json!({"as": "nope", "who": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/banned",
            Some(json!({"as": "peerhost", "who": "not-an-ip"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // MQTT: banned ids and usernames are refused before authentication: a wrong password is
    // never checked (the failure counter does not move) and the code says banned.
    let before = auth_failures(&api).await;
    assert_eq!(
        mqtt_connack(broker_addr, true, "bad-id", Some(("alice", "wrong"))).await,
        0x8A
    );
    assert_eq!(mqtt_connack(broker_addr, false, "bad-id", None).await, 0x05);
    assert_eq!(
        mqtt_connack(broker_addr, true, "ok", Some(("mallory", "x"))).await,
        0x8A
    );
    assert_eq!(
        auth_failures(&api).await,
        before,
        "the authenticator was not asked"
    );
    assert_eq!(
        mqtt_connack(broker_addr, true, "ok", Some(("alice", "pw"))).await,
        0
    );

    // The list, then a restart: the bans survive (API-state store).
    let (_, v) = api.get("/api/v5/banned").await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["meta"]["count"], 2, "{v}");
    node.stop();
    node.start();
    let broker_addr = node.listener("mqtt:tcp:default");
    let api = Api::login_at(&node.listener("dashboard:http:default").to_string()).await;
    assert_eq!(mqtt_connack(broker_addr, true, "bad-id", None).await, 0x8A);

    // The whole loopback host: the UDP gateways refuse too.
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/banned",
            Some(json!({"as": "peerhost", "who": "127.0.0.0/8", "until": 4_000_000_000u64})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let sn = SnClient::new(node.listener("mqttsn:udp:default"), "sn-any").await;
    sn.send(&sn.connect_packet(true, false, 30)).await;
    assert_eq!(sn.expect("CONNACK").await, Packet::ConnAck { rc: 0x80 });
    let (code, payload) = common::coap::post(
        node.listener("coap:udp:default"),
        &["ps", "t"],
        &["clientid=coap-any"],
        "",
    )
    .await;
    assert_eq!(
        (code.as_str(), payload.as_str()),
        ("4.00", "Login Failed: banned")
    );
    let mut dev = Device::bind(node.listener("lwm2m:udp:default"), "ep-any")
        .await
        .unwrap();
    assert_eq!(dev.register().await, Some(0x80), "4.00 Login Failed");

    // Lifting the host ban lets them in again; an unknown entry is 404.
    let (s, _) = api
        .send("DELETE", "/api/v5/banned/peerhost/127.0.0.0%2F8", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api
        .send("DELETE", "/api/v5/banned/clientid/never", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let sn = SnClient::new(node.listener("mqttsn:udp:default"), "sn-any").await;
    sn.connect(true, 30).await;
    let (code, _) = common::coap::post(
        node.listener("coap:udp:default"),
        &["ps", "t"],
        &["clientid=coap-any"],
        "",
    )
    .await;
    assert_eq!(code, "2.04");
    node.stop();
}

#[tokio::test]
async fn a_reconnect_loop_is_banned_by_flapping_detection_then_let_back_in() {
    let broker = Broker::start_with(
        "[flapping_detect]\nenable = true\nmax_count = 3\nwindow_time = \"1m\"\nban_time = \"2s\"\n",
    );
    let addr = broker.mqtt_addr();
    for _ in 0..3 {
        assert_eq!(mqtt_connack(addr, true, "looper", None).await, 0);
    }
    assert_eq!(
        mqtt_connack(addr, true, "looper", None).await,
        0x8A,
        "the 4th connect in a minute"
    );
    assert_eq!(
        mqtt_connack(addr, true, "calm", None).await,
        0,
        "other clients are not affected"
    );
    let api = Api::ready(&broker).await;
    let (_, v) = api.get("/api/v5/banned").await;
    let entry = &v["data"][0];
    assert_eq!(
        (entry["who"].as_str(), entry["reason"].as_str()),
        (Some("looper"), Some("flapping"))
    );
    assert!(broker.log_contains("flapping detected"));
    // After ban_time the client id is accepted again (polling: the guard is 20 s).
    let mut accepted = false;
    for _ in 0..100 {
        if mqtt_connack(addr, true, "looper", None).await == 0 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(accepted, "the flapping ban ended after ban_time");
}
