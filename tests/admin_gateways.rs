//! The admin API's gateway side against the real binary: `/gateways` status and enable,
//! MQTT-SN, CoAP and LwM2M clients (hand-written datagrams) in `/api/v5/clients` and
//! `/gateways/{name}/clients` with subscribe-on-behalf and kick, the LwM2M read helper reaching
//! the device, and `switchyard ctl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::{wait_for_client, Api};
use common::mqtt::Client;
use common::Broker;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn gateways_list_status_and_enable() {
    let broker = Broker::start_with("[gateway.coap]\nenable = false\n");
    let api = Api::ready(&broker).await;
    let (s, v) = api.get("/api/v5/gateways").await;
    assert_eq!(s, StatusCode::OK);
    let status = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .map(|g| g["status"].clone())
    };
    assert_eq!(status("mqttsn"), Some(json!("running")), "{v}");
    assert_eq!(status("coap"), Some(json!("stopped")), "{v}");
    // LwM2M is "unloaded" until the binary is built with it, then "running" (enabled by default).
    let lwm2m = status("lwm2m").expect("lwm2m is always listed");
    assert!(
        ["unloaded", "running", "stopped"].contains(&lwm2m.as_str().unwrap_or_default()),
        "{v}"
    );
    let (_, v) = api.get("/api/v5/gateways?status=stopped").await;
    let stopped: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(
        stopped.contains(&"coap") && !stopped.contains(&"mqttsn"),
        "{v}"
    );
    assert_eq!(
        api.get("/api/v5/gateways?status=weird").await.0,
        StatusCode::BAD_REQUEST
    );
    let (s, v) = api.get("/api/v5/gateways/mqttsn").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["listeners"][0]["id"], "mqttsn:udp:default");
    assert_eq!(v["listeners"][0]["running"], json!(true));
    assert_eq!(
        api.get("/api/v5/gateways/nope").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.send("PUT", "/api/v5/gateways/mqttsn/enable/true", None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    // Stop and start the MQTT-SN gateway at run time: its socket closes, then answers again on
    // the same address.
    let sn_addr = broker.listener("mqttsn:udp:default");
    assert!(
        searchgw(sn_addr),
        "MQTT-SN gateway answers SEARCHGW while running"
    );
    let (s, _) = api
        .send("PUT", "/api/v5/gateways/mqttsn/enable/false", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = api.get("/api/v5/gateways/mqttsn").await;
    assert_eq!(v["status"], "stopped", "{v}");
    assert!(!searchgw(sn_addr), "a stopped gateway still answers");
    let (s, _) = api
        .send("PUT", "/api/v5/gateways/mqttsn/enable/true", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = api.get("/api/v5/gateways/mqttsn").await;
    assert_eq!(v["status"], "running", "{v}");
    assert!(
        searchgw(sn_addr),
        "the restarted gateway answers on its address"
    );
    if lwm2m == json!("unloaded") {
        let (s, _) = api
            .send("PUT", "/api/v5/gateways/lwm2m/enable/true", None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(
            api.get("/api/v5/gateways/lwm2m/clients").await.0,
            StatusCode::NOT_FOUND
        );
    }
    let (s, _) = api
        .send("PUT", "/api/v5/gateways/nope/enable/true", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .send("PUT", "/api/v5/gateways/mqttsn/enable/maybe", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = api.get("/api/v5/gateways/mqttsn/clients").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["meta"]["count"], json!(0));
    assert_eq!(
        api.get("/api/v5/gateways/mqttsn/clients/nobody").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn ctl_status_clients_and_kick() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let mut c = Client::connect(broker.mqtt_addr(), "ctl-client").await;
    wait_for_client(&api, "ctl-client").await;
    let (_, key) = api
        .send("POST", "/api/v5/api_key", Some(json!({"name": "ctl"})))
        .await;
    let addr = broker.listener("dashboard:http:default").to_string();
    let ctl = |args: &[&str]| {
        let mut cmd = std::process::Command::new(common::bin());
        cmd.arg("--config")
            .arg(broker.config_path())
            .arg("ctl")
            .arg("--addr")
            .arg(&addr);
        cmd.arg("--api-key").arg(key["api_key"].as_str().unwrap());
        cmd.arg("--api-secret")
            .arg(key["api_secret"].as_str().unwrap());
        cmd.args(args);
        common::run_with_timeout(&mut cmd, Duration::from_secs(20))
    };
    let (st, out, err) = ctl(&["status"]);
    assert!(st.unwrap().success(), "{out}{err}");
    assert!(out.contains("is running"), "{out}");
    let (st, out, err) = ctl(&["clients", "list"]);
    assert!(st.unwrap().success(), "{out}{err}");
    assert!(out.contains("ctl-client") && out.contains("MQTT"), "{out}");
    let (st, out, err) = ctl(&["gateways", "list"]);
    assert!(st.unwrap().success(), "{out}{err}");
    assert!(
        out.contains("lwm2m") && out.contains("mqttsn") && out.contains("running"),
        "{out}"
    );
    let (st, _, err) = ctl(&["clients", "kick", "nobody"]);
    assert!(!st.unwrap().success());
    assert!(err.contains("404"), "{err}");
    let (st, out, err) = ctl(&["clients", "kick", "ctl-client"]);
    assert!(st.unwrap().success(), "{out}{err}");
    assert!(c.wait_closed(Duration::from_secs(5)).await.is_some());
}

/// An MQTT-SN client (hand-written datagrams) shows up in `/api/v5/clients` with
/// `proto_name` MQTT-SN and under `/gateways/mqttsn/clients`, gets a subscription on its behalf
/// (201), receives what the API publishes there, and is kicked.
#[tokio::test]
async fn mqttsn_client_through_the_gateway_routes() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let gw = broker.listener("mqttsn:udp:default");
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(gw).await.unwrap();
    let id = b"sn-api-1";
    let mut connect = vec![(6 + id.len()) as u8, 0x04, 0x04, 0x01, 0x00, 0x3c];
    connect.extend_from_slice(id);
    udp.send(&connect).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
        .await
        .expect("CONNACK in time")
        .unwrap();
    assert_eq!(&buf[..n], &[0x03, 0x05, 0x00], "CONNACK accepted");

    let v = wait_for_client(&api, "sn-api-1").await;
    assert_eq!(v["proto_name"], "MQTT-SN");
    let (_, v) = api.get("/api/v5/clients?proto_name=MQTT-SN").await;
    assert_eq!(v["meta"]["count"], json!(1), "{v}");
    let (s, v) = api.get("/api/v5/gateways/mqttsn/clients").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"][0]["clientid"], "sn-api-1", "{v}");
    assert_eq!(
        api.get("/api/v5/gateways/coap/clients/sn-api-1").await.0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/gateways/mqttsn/clients/sn-api-1/subscriptions",
            Some(json!({"topic": "sn/cmd", "qos": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, v) = api
        .get("/api/v5/gateways/mqttsn/clients/sn-api-1/subscriptions")
        .await;
    assert_eq!(v[0]["topic"], "sn/cmd", "{v}");
    let (s, v) = api
        .send(
            "POST",
            "/api/v5/publish",
            Some(json!({"topic": "sn/cmd", "payload": "wake"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // REGISTER (0x0A) for the new topic id, then PUBLISH (0x0C) carrying the payload.
    let mut got_publish = false;
    for _ in 0..4 {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf)).await
        else {
            break;
        };
        let pkt = &buf[..n];
        if pkt.len() > 1 && pkt[1] == 0x0a {
            // REGACK: topic id and msg id echoed, return code 0.
            let regack = [7, 0x0b, pkt[2], pkt[3], pkt[4], pkt[5], 0];
            udp.send(&regack).await.unwrap();
        } else if pkt.len() > 7 && pkt[1] == 0x0c {
            assert!(pkt.ends_with(b"wake"), "{pkt:?}");
            got_publish = true;
            break;
        }
    }
    assert!(
        got_publish,
        "the MQTT-SN client never got the API's publish"
    );
    let (s, _) = api
        .send(
            "DELETE",
            "/api/v5/gateways/mqttsn/clients/sn-api-1/subscriptions/sn%2Fcmd",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api
        .send(
            "DELETE",
            "/api/v5/gateways/mqttsn/clients/sn-api-1/subscriptions/sn%2Fcmd",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .send("DELETE", "/api/v5/gateways/mqttsn/clients/sn-api-1", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let mut gone = false;
    for _ in 0..100 {
        let (s, v) = api.get("/api/v5/clients/sn-api-1").await;
        if s == StatusCode::NOT_FOUND || v["connected"] == json!(false) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "kicked MQTT-SN client still connected");
}

/// A CoAP client in connection mode (hand-written CON POST /mqtt/connection) is listed with
/// `proto_name` CoAP, under `/gateways/coap/clients`, and can be kicked.
#[tokio::test]
async fn coap_client_is_listed_and_kicked() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(broker.listener("coap:udp:default"))
        .await
        .unwrap();
    let query = b"clientid=coap-api-1";
    // CON POST, message id 0x1234, token 0xAB; Uri-Path "mqtt" / "connection", Uri-Query.
    let mut req = vec![0x41, 0x02, 0x12, 0x34, 0xab, 0xb4];
    req.extend_from_slice(b"mqtt");
    req.push(0x0a);
    req.extend_from_slice(b"connection");
    req.push(0x4d);
    req.push((query.len() - 13) as u8);
    req.extend_from_slice(query);
    udp.send(&req).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
        .await
        .expect("CoAP answer in time")
        .unwrap();
    assert!(
        n >= 4 && buf[1] == 0x41,
        "2.01 Created expected: {:?}",
        &buf[..n]
    );

    let v = wait_for_client(&api, "coap-api-1").await;
    assert_eq!(v["proto_name"], "CoAP");
    let (s, v) = api.get("/api/v5/gateways/coap/clients").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["data"][0]["clientid"], "coap-api-1", "{v}");
    let (s, v) = api.get("/api/v5/gateways?status=running").await;
    assert_eq!(s, StatusCode::OK);
    let coap = v
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "coap")
        .cloned();
    assert_eq!(
        coap.map(|g| g["current_connections"].clone()),
        Some(json!(1)),
        "{v}"
    );
    let (s, _) = api
        .send("DELETE", "/api/v5/gateways/coap/clients/coap-api-1", None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let mut gone = false;
    for _ in 0..100 {
        let (s, v) = api.get("/api/v5/clients/coap-api-1").await;
        if s == StatusCode::NOT_FOUND || v["connected"] == json!(false) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "kicked CoAP client still connected");
}

/// The LwM2M helpers: a device registered by hand-written CoAP gets a GET /3/0/0 after
/// `POST .../lwm2m/clients/{ep}/read?path=/3/0/0` (204); bad input is 400, an unknown device 404.
#[tokio::test]
async fn lwm2m_read_helper_reaches_the_device() {
    let xml_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/lwm2m_xml");
    let broker = Broker::start_with(&format!(
        "[gateway.lwm2m]\nenable = true\nauto_observe = false\nxml_dir = \"{}\"\n",
        xml_dir.display()
    ));
    let api = Api::ready(&broker).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.connect(broker.listener("lwm2m:udp:default"))
        .await
        .unwrap();
    // CON POST /rd?ep=lwm-api-1&lt=300&lwm2m=1.0 with the object list.
    let mut reg = vec![0x41, 0x02, 0x00, 0x07, 0x5a, 0xb2];
    reg.extend_from_slice(b"rd");
    reg.push(0x4c);
    reg.extend_from_slice(b"ep=lwm-api-1");
    reg.push(0x06);
    reg.extend_from_slice(b"lt=300");
    reg.push(0x09);
    reg.extend_from_slice(b"lwm2m=1.0");
    reg.push(0xff);
    reg.extend_from_slice(b"</1/0>,</3/0>");
    udp.send(&reg).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf))
        .await
        .expect("register answer in time")
        .unwrap();
    assert!(
        n >= 4 && buf[1] == 0x41,
        "2.01 Created expected: {:?}",
        &buf[..n]
    );
    let v = wait_for_client(&api, "lwm-api-1").await;
    assert_eq!(v["proto_name"], "LwM2M");

    let base = "/api/v5/gateways/lwm2m/clients";
    let (s, v) = api
        .send("POST", &format!("{base}/lwm-api-1/read?path=/3/0/0"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let mut got_get = false;
    for _ in 0..4 {
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), udp.recv(&mut buf)).await
        else {
            break;
        };
        let pkt = &buf[..n];
        if pkt.len() > 4 && pkt[1] == 0x01 {
            // GET: Uri-Path options "3", "0", "0" are in there.
            assert!(pkt.windows(2).any(|w| w == [0xb1, b'3']), "{pkt:?}");
            got_get = true;
            break;
        }
    }
    assert!(got_get, "the device never got the GET for the read command");
    let (s, _) = api
        .send("POST", &format!("{base}/lwm-api-1/read?path=three"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = api
        .send(
            "POST",
            &format!("{base}/lwm-api-1/write?path=/3/0/13"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = api
        .send("POST", &format!("{base}/nobody/read?path=/3/0/0"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["code"], "CLIENT_NOT_FOUND");
    let (s, _) = api
        .send(
            "POST",
            "/api/v5/gateways/mqttsn/clients/x/read?path=/3/0/0",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Sends MQTT-SN SEARCHGW (radius 1) and waits briefly for GWINFO.
fn searchgw(gw: std::net::SocketAddr) -> bool {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(700)))
        .unwrap();
    for _ in 0..3 {
        sock.send_to(&[3, 0x01, 1], gw).unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return n >= 3 && buf[1] == 0x02;
        }
    }
    false
}

/// `GET .../lwm2m/clients/{ep}/lookup` sends the read and answers with the device's reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lwm2m_lookup_returns_the_device_answer() {
    let broker = Broker::start_with("[gateway.lwm2m]\nenable = true\nauto_observe = false\n");
    let api = Api::ready(&broker).await;
    let mut dev =
        switchyard_lwm2m::sim::Device::bind(broker.listener("lwm2m:udp:default"), "lookup-dev")
            .await
            .unwrap();
    dev.register_query = vec!["lt=300".into(), "lwm2m=1.0".into()];
    assert_eq!(dev.register().await, Some(0x41));
    wait_for_client(&api, "lookup-dev").await;
    let device = tokio::spawn(async move { dev.serve_for(Duration::from_secs(6)).await });
    let (s, v) = api
        .get("/api/v5/gateways/lwm2m/clients/lookup-dev/lookup?path=/3/0&action=read")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["code"], "2.05", "{v}");
    assert_eq!(v["path"], "/3/0");
    assert!(
        v["content"].as_array().is_some_and(|c| !c.is_empty()),
        "{v}"
    );
    let (s, _) = api
        .get("/api/v5/gateways/lwm2m/clients/nobody/lookup?path=/3/0")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = api
        .get("/api/v5/gateways/lwm2m/clients/lookup-dev/lookup?path=/3/0&action=write")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    device.abort();
}

/// One table behind the admin API: `/api/v5/protocols` is the binary's gateway table as the
/// admin API got it; `/gateways` lists exactly its gateway entries with their listener ids,
/// every bound protocol listener of the ready file is one of its listeners, and `/stats` and
/// Prometheus carry one connection count per entry.
#[tokio::test]
async fn gateways_stats_and_metrics_follow_the_gateway_table() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let (s, table) = api.get("/api/v5/protocols").await;
    assert_eq!(s, StatusCode::OK, "{table}");
    let table = table.as_array().expect("a list").clone();
    let field = |p: &serde_json::Value, k: &str| p[k].as_str().unwrap_or_default().to_owned();
    let listener_ids = |v: &serde_json::Value| -> Vec<String> {
        v["listeners"]
            .as_array()
            .map(|ls| ls.iter().map(|l| field(l, "id")).collect())
            .unwrap_or_default()
    };
    assert!(table
        .iter()
        .any(|p| p["name"] == "mqtt" && p["gateway"] == false));

    let (_, gws) = api.get("/api/v5/gateways").await;
    let gws = gws.as_array().expect("a list").clone();
    let listed: Vec<String> = gws.iter().map(|g| field(g, "name")).collect();
    let expected: Vec<String> = table
        .iter()
        .filter(|p| p["gateway"] == true)
        .map(|p| field(p, "name"))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        listed, expected,
        "/gateways lists the table's gateways, in order"
    );
    for g in &gws {
        let entry = table
            .iter()
            .find(|p| p["name"] == g["name"])
            .expect("entry");
        assert_eq!(listener_ids(g), listener_ids(entry), "{g}");
    }

    let all: Vec<String> = table.iter().flat_map(listener_ids).collect();
    for id in broker.listeners().keys() {
        if !id.starts_with("dashboard:") {
            assert!(all.contains(id), "{id} is not in the table: {all:?}");
        }
    }

    let (_, stats) = api.get("/api/v5/stats?aggregate=true").await;
    let (_, prometheus) = api.get("/api/v5/prometheus/stats").await;
    let prometheus = prometheus.as_str().unwrap_or_default().to_owned();
    for p in &table {
        let (ns, proto) = (field(p, "namespace"), field(p, "proto_name"));
        assert!(
            stats[format!("{ns}.connections.count")].is_number(),
            "{ns}: {stats}"
        );
        let line = format!("switchyard_connections{{protocol=\"{proto}\",namespace=\"{ns}\"}}");
        assert!(prometheus.contains(&line), "{line} missing");
    }
}
