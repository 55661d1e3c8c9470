//! MQTT-SN acknowledgements for message ids that are not in flight — unknown, duplicate, late
//! or of the wrong kind — on an idle and on a busy window. They are ignored (PUBREL is always
//! answered with PUBCOMP), the client stays connected (PINGREQ → PINGRESP), and every other
//! client on the gateway keeps being served. Issue 13: one such PUBACK used to panic the UDP
//! receiver that serves every client on the socket.

mod common;
mod mqttsn_client;

use common::mqtt::{text, Client};
use common::Broker;
use mqttsn_client::SnClient;
use rumqttc::QoS;
use switchyard_mqttsn::codec::{Packet, SnQos};

const GW: &str = "mqttsn:udp:default";

async fn puback(sn: &SnClient, msg_id: u16) {
    sn.send(&Packet::PubAck {
        topic_id: 1,
        msg_id,
        rc: 0,
    })
    .await;
}

async fn expect_alive(sn: &SnClient, what: &str) {
    sn.pingreq(false).await;
    assert_eq!(sn.expect(what).await, Packet::PingResp, "{what}");
}

#[tokio::test]
async fn stray_acks_keep_the_client_and_the_receiver_alive() {
    let broker = Broker::start();
    let gw = broker.listener(GW);
    let mut bystander = SnClient::new(gw, "sn-bystander").await;
    bystander.connect(true, 60).await;

    // Idle window: nothing in flight.
    let sn = SnClient::new(gw, "sn-stray").await;
    sn.connect(true, 60).await;
    puback(&sn, 5).await;
    expect_alive(&sn, "PINGRESP after a PUBACK for an id never sent").await;
    sn.send(&Packet::PubRec { msg_id: 6 }).await;
    sn.send(&Packet::PubComp { msg_id: 8 }).await;
    expect_alive(&sn, "PINGRESP after PUBREC/PUBCOMP for ids never sent").await;
    sn.send(&Packet::PubRel { msg_id: 7 }).await;
    assert_eq!(
        sn.expect("PUBCOMP for an unknown PUBREL").await,
        Packet::PubComp { msg_id: 7 }
    );
    expect_alive(&sn, "PINGRESP after an unknown PUBREL").await;

    // Busy window: one QoS 1 delivery in flight (MQTT-SN delivers one at a time).
    let mut sub = SnClient::new(gw, "sn-busy").await;
    sub.connect(true, 60).await;
    let (_, granted, rc) = sub.subscribe_name("sn/busy", 2).await;
    assert_eq!((granted, rc), (SnQos::Q2, 0));
    let mut mqtt = Client::connect(broker.mqtt_addr(), "stray-mqtt-pub").await;
    mqtt.publish("sn/busy", QoS::AtLeastOnce, false, b"one")
        .await;
    let mut registered = Vec::new();
    let p = sub.next_publish(&mut registered).await;
    assert_eq!(p.flags.qos, SnQos::Q1);
    puback(&sub, p.msg_id.wrapping_add(100).max(1)).await; // unknown
    sub.send(&Packet::PubComp { msg_id: p.msg_id }).await; // wrong kind for QoS 1
    sub.send(&Packet::PubRec { msg_id: p.msg_id }).await; // wrong kind for QoS 1
    expect_alive(&sub, "PINGRESP after stray acks on a busy window").await;
    sub.ack(&p).await;
    puback(&sub, p.msg_id).await; // duplicate
    expect_alive(&sub, "PINGRESP after a duplicate PUBACK").await;

    // The window still flows: a QoS 2 delivery completes, a late PUBCOMP after it is ignored.
    mqtt.publish("sn/busy", QoS::ExactlyOnce, false, b"two")
        .await;
    let p2 = sub.next_publish(&mut registered).await;
    assert_eq!((p2.flags.qos, p2.data.as_ref()), (SnQos::Q2, &b"two"[..]));
    sub.ack(&p2).await;
    sub.send(&Packet::PubComp { msg_id: p2.msg_id }).await;
    puback(&sub, p2.msg_id).await;
    expect_alive(&sub, "PINGRESP after late acks").await;

    // Everyone else on the gateway is still served, new clients too.
    expect_alive(&bystander, "the bystander is still answered").await;
    let newcomer = SnClient::new(gw, "sn-newcomer").await;
    newcomer.connect(true, 60).await;
    let mut watcher = Client::connect(broker.mqtt_addr(), "stray-watch").await;
    watcher.subscribe("sn/after", QoS::AtMostOnce).await;
    let (id, rc) = bystander.register("sn/after").await;
    assert_eq!(rc, 0);
    let rc = bystander
        .publish(
            switchyard_mqttsn::codec::TopicIdType::Normal,
            id,
            1,
            "still here",
        )
        .await;
    assert_eq!(rc, 0);
    let got = watcher.expect_publish("the bystander's publish").await;
    assert_eq!(text(&got), "still here");
    assert!(
        !broker.log().contains("panicked"),
        "a panic in the broker log"
    );
}
