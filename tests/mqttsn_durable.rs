//! The UDP gateways' sessions use the bus's store: an MQTT-SN client's persistent session, and
//! a message acknowledged for it while it was away, survive a SIGKILL of the broker.

mod common;
mod mqttsn_client;

use common::mqtt::Client;
use common::node::Node;
use mqttsn_client::SnClient;
use rumqttc::QoS;

#[tokio::test]
async fn mqttsn_persistent_session_and_queued_message_survive_sigkill() {
    let mut node = Node::new("sn-durable");
    let mqtt = node.start();
    let mut sn = SnClient::new(node.listener("mqttsn:udp:default"), "sn-keeper").await;
    sn.connect(false, 60).await;
    let (_, _, rc) = sn.subscribe_name("dur/t", 1).await;
    assert_eq!(rc, 0);
    sn.disconnect(None).await;

    // PUBACK means the queued copy for the sleeping-or-gone MQTT-SN session is durable.
    let mut publisher = Client::connect(mqtt, "dur-pub").await;
    publisher
        .publish("dur/t", QoS::AtLeastOnce, false, b"kept across a crash")
        .await;
    node.kill();

    node.start();
    let sn = SnClient::new(node.listener("mqttsn:udp:default"), "sn-keeper").await;
    sn.connect(false, 60).await;
    let mut registered = Vec::new();
    let p = sn.next_publish(&mut registered).await;
    assert_eq!(&p.data[..], b"kept across a crash");
    let topic = registered
        .iter()
        .find(|(id, _)| *id == p.topic_id)
        .map(|(_, n)| n.as_str());
    assert_eq!(
        topic,
        Some("dur/t"),
        "delivered on the subscribed topic (registered again after the restart)"
    );
    sn.ack(&p).await;
    node.kill();
}
