//! `mqtt.max_keepalive` against the real binary: an MQTT 5 client asking for more is told the
//! cap in CONNACK's Server Keep Alive (rumqttc v5) and is held to it; MQTT 3.x clients are not
//! refused for their keepalive, 0 included, and are held to the cap too (raw bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::raw::{split_publish, Connect, Got, Raw, CONNACK, PINGREQ, PINGRESP, PUBLISH, WAIT};
use common::Broker;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use switchyard_core::QoS;
use switchyard_mqtt::codec as wire;

#[tokio::test]
async fn v5_client_asking_more_than_max_keepalive_gets_server_keep_alive() {
    let broker = Broker::start_with("[mqtt]\nmax_keepalive = 60\n");
    let addr = broker.mqtt_addr();
    for (asked, announced) in [(120, Some(60)), (30, None)] {
        let mut o = MqttOptions::new(format!("ka-{asked}"), addr.ip().to_string(), addr.port());
        o.set_keep_alive(Duration::from_secs(asked));
        let (_client, mut events) = AsyncClient::new(o, 10);
        let event = tokio::time::timeout(WAIT, events.poll())
            .await
            .expect("CONNACK in time")
            .expect("connected");
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, ConnectReturnCode::Success);
                let got = ack.properties.and_then(|p| p.server_keep_alive);
                assert_eq!(got, announced, "client asking keepalive {asked}");
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}

/// With a 1 s cap, silent clients asking for 120 s (MQTT 5) and for none (MQTT 3.1.1) are both
/// accepted and both closed after 1.5 s, their wills published.
#[test]
fn clients_are_held_to_the_cap_and_their_wills_follow() {
    let broker = Broker::start_with("[mqtt]\nmax_keepalive = 1\n");
    let addr = broker.mqtt_addr();
    let watcher = watch_wills(addr);

    let mut v5 = Raw::open(addr);
    let mut c = wire::Connect::new(wire::ProtocolVersion::V5, "ka-v5".to_owned());
    c.keep_alive = 120;
    c.will = Some(wire::LastWill {
        topic: "ka/will/v5".into(),
        payload: "v5 gone".into(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let mut bytes = BytesMut::new();
    wire::encode_packet(
        &wire::Packet::Connect(Box::new(c)),
        wire::ProtocolVersion::V5,
        &mut bytes,
    )
    .expect("encode CONNECT");
    v5.send(&bytes);
    match v5.read(WAIT) {
        Got::Packet(CONNACK, body) => {
            assert_eq!(body.get(1), Some(&0), "accepted: {body:?}");
            // Properties after flags and code: 0x13 Server Keep Alive = 1.
            assert!(
                body.windows(3).any(|w| w == [0x13, 0, 1]),
                "Server Keep Alive 1 in {body:?}"
            );
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }

    let v3 = Connect {
        keepalive: 0,
        ..Connect::v311("ka-v3").with_will("ka/will/v3", b"v3 gone")
    };
    let mut v3 = Raw::connect_with(addr, &v3);

    for (client, name) in [
        (&mut v5, "MQTT 5 asking 120 s"),
        (&mut v3, "MQTT 3.1.1 asking 0"),
    ] {
        if client.wait_closed(Duration::from_secs(5)).is_err() {
            panic!("{name}: still open 5 s after a 1 s cap (1.5 s expected)");
        }
    }
    let mut wills = watcher.join().expect("watcher thread");
    wills.sort();
    assert_eq!(wills, ["ka/will/v3", "ka/will/v5"]);
}

/// Subscribes to the wills and collects two of them. The watcher is held to the cap as well,
/// so it pings while it waits.
fn watch_wills(addr: std::net::SocketAddr) -> std::thread::JoinHandle<Vec<String>> {
    let mut watcher = Raw::connect(addr, "ka-watch");
    watcher.subscribe(1, "ka/will/#", 0);
    std::thread::spawn(move || {
        let mut wills = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(8);
        while wills.len() < 2 && Instant::now() < deadline {
            watcher.send(&[PINGREQ, 0]);
            match watcher.read(Duration::from_millis(300)) {
                Got::Packet(h, body) if h & 0xF0 == PUBLISH => {
                    wills.push(split_publish(h, &body).1);
                }
                Got::Packet(PINGRESP, _) | Got::Timeout => {}
                other => panic!("watcher: unexpected {other:?}"),
            }
        }
        wills
    })
}
