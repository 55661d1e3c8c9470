//! One topic template for every gateway's mountpoint: a client id with `/` (or `+`, `#`) under a
//! `${clientid}` mountpoint would put the client's topics outside its prefix, so the client is
//! refused with its protocol's not-authorized answer — MQTT-SN CONNACK 0x80, CoAP 4.01, LwM2M
//! `4.00 Login Failed` — and one log line names the placeholder. A well-formed id still works
//! and its topics land under the prefix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod mqttsn_client;

use common::mqtt::{text, Client};
use common::Broker;
use mqttsn_client::SnClient;
use rumqttc::QoS;
use switchyard_lwm2m::sim::Device;
use switchyard_mqttsn::codec::{Packet, TopicIdType};

const CONFIG: &str = r#"
[gateway.mqttsn]
mountpoint = "sn/${clientid}/"

[gateway.coap]
mountpoint = "coap/${clientid}/"

[gateway.lwm2m]
mountpoint = "lwm2m/${endpoint_name}/"
"#;

#[tokio::test]
async fn a_client_id_with_a_slash_cannot_escape_its_mountpoint_on_any_gateway() {
    let broker = Broker::start_with(CONFIG);
    let mut watcher = Client::connect(broker.mqtt_addr(), "mp-watch").await;
    watcher.subscribe("#", QoS::AtMostOnce).await;

    // MQTT-SN.
    let sn_gw = broker.listener("mqttsn:udp:default");
    let bad = SnClient::new(sn_gw, "x/../escape").await;
    bad.send(&bad.connect_packet(true, false, 30)).await;
    assert_eq!(bad.expect("CONNACK").await, Packet::ConnAck { rc: 0x80 });
    let mut good = SnClient::new(sn_gw, "sn1").await;
    good.connect(true, 30).await;
    let (id, rc) = good.register("t").await;
    assert_eq!(rc, 0);
    assert_eq!(good.publish(TopicIdType::Normal, id, 1, "sn").await, 0);
    let got = watcher.expect_publish("the MQTT-SN publish").await;
    assert_eq!(
        (got.topic.as_str(), text(&got).as_str()),
        ("sn/sn1/t", "sn")
    );

    // CoAP (connectionless publish naming its client id).
    let coap_gw = broker.listener("coap:udp:default");
    let (code, payload) = common::coap::post(coap_gw, &["ps", "t"], &["clientid=a/b"], "no").await;
    assert_eq!(code, "4.01", "{payload}");
    assert!(payload.contains("clientid"), "{payload}");
    let (code, _) = common::coap::post(coap_gw, &["ps", "t"], &["clientid=c1"], "coap").await;
    assert_eq!(code, "2.04");
    let got = watcher.expect_publish("the CoAP publish").await;
    assert_eq!(
        (got.topic.as_str(), text(&got).as_str()),
        ("coap/c1/t", "coap")
    );

    // LwM2M: the endpoint name is the placeholder's value.
    let lw_gw = broker.listener("lwm2m:udp:default");
    let mut dev = Device::bind(lw_gw, "ep+1").await.unwrap();
    assert_eq!(dev.register().await, Some(0x80), "4.00 Login Failed");
    let mut ok = Device::bind(lw_gw, "ep1").await.unwrap();
    assert_eq!(ok.register().await, Some(0x41), "2.01 Created");

    for placeholder in ["clientid", "endpoint_name"] {
        assert!(
            broker
                .log()
                .lines()
                .any(|l| l.contains("mountpoint cannot be rendered")
                    && l.contains(&format!("placeholder=\"{placeholder}\""))
                    || l.contains("mountpoint cannot be rendered")
                        && l.contains(&format!("placeholder={placeholder}"))),
            "a log line naming {placeholder}: {}",
            broker.log_excerpt()
        );
    }
}
