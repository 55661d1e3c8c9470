//! Every closed connection is counted once under its reason, whatever the protocol:
//! `client.closed.<reason>` in `/api/v5/metrics` and Prometheus, and `client.keepalive_timeout`
//! for MQTT and MQTT-SN keepalive timeouts too (it used to count only CoAP and LwM2M).

mod admin_support;
mod common;
mod mqttsn_client;

use admin_support::Api;
use common::raw::{Connect, Got, Raw};
use common::Broker;
use mqttsn_client::SnClient;
use serde_json::Value;
use std::time::Duration;

/// Waits until the metric `name` reaches `want` (polling the API; the timeout only guards).
async fn wait_metric(api: &Api, name: &str, want: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, v) = api.get("/api/v5/metrics?aggregate=true").await;
        if v[name].as_u64() == Some(want) {
            return v;
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("metric {name} never reached {want}: {last}");
}

#[tokio::test]
async fn keepalive_timeouts_and_close_reasons_are_counted_for_every_protocol() {
    let broker = Broker::start();
    let api = Api::ready(&broker).await;
    let addr = broker.mqtt_addr();

    // MQTT: keepalive 1 s, then silence: closed after 1.5 s.
    let mut silent = tokio::task::spawn_blocking(move || {
        let mut c = Connect::v311("ka-mqtt");
        c.keepalive = 1;
        let mut raw = Raw::connect_with(addr, &c);
        let closed = raw.wait_closed(Duration::from_secs(10));
        assert!(closed.is_ok(), "keepalive timeout closes the MQTT client");
    });
    // MQTT-SN: duration 1 s, then silence.
    let sn = SnClient::new(broker.listener("mqttsn:udp:default"), "ka-sn").await;
    sn.connect(true, 1).await;
    (&mut silent).await.expect("MQTT side");

    let v = wait_metric(&api, "client.keepalive_timeout", 2).await;
    let v = if v["client.closed.keepalive_timeout"].as_u64() == Some(2) {
        v
    } else {
        wait_metric(&api, "client.closed.keepalive_timeout", 2).await
    };
    assert_eq!(v["client.closed.keepalive_timeout"], 2, "{v}");

    // A normal DISCONNECT and a refused CONNECT are counted under their own reasons.
    let bye = tokio::task::spawn_blocking(move || {
        let mut raw = Raw::connect(addr, "bye");
        raw.send(&[0xE0, 0]);
        assert!(raw.wait_closed(Duration::from_secs(5)).is_ok());
        // Protocol level 9 does not exist: CONNACK 0x01, then closed.
        let mut bad = Raw::open(addr);
        let mut c = Connect::v311("bad-level");
        c.level = 9;
        bad.send(&c.encode());
        assert!(matches!(
            bad.read(Duration::from_secs(5)),
            Got::Packet(0x20, _)
        ));
    });
    bye.await.expect("MQTT disconnect");
    wait_metric(&api, "client.closed.client_disconnect", 1).await;
    let v = wait_metric(&api, "client.closed.protocol_error", 1).await;
    assert_eq!(v["client.closed.kicked"], 0, "{v}");

    let (_, body) = api.get("/api/v5/prometheus/stats").await;
    let text = body.as_str().unwrap_or_default().to_owned();
    assert!(
        text.lines()
            .any(|l| l == "switchyard_client_closed_keepalive_timeout 2"),
        "{text}"
    );
}
