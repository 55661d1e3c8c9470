//! `[retainer]` limits end to end: beyond `max_retained_messages` topics or `max_payload_size`
//! bytes a retained publish is routed but not stored (logged, counted in
//! `retained.not_stored`), and a stored one is cleared after `msg_expiry_interval`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;

use admin_support::Api;
use common::mqtt::{text, Client};
use common::Broker;
use rumqttc::QoS;
use std::time::Duration;

const CONFIG: &str = r#"
[retainer]
max_retained_messages = 2
max_payload_size = 8
msg_expiry_interval = "2s"
msg_clear_interval = "100ms"
"#;

#[tokio::test]
async fn limits_refuse_storage_but_not_routing_and_retained_messages_expire() {
    let broker = Broker::start_with(CONFIG);
    let api = Api::ready(&broker).await;
    let mut live = Client::connect(broker.mqtt_addr(), "ret-live").await;
    live.subscribe("r/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.mqtt_addr(), "ret-pub").await;
    for (topic, payload) in [
        ("r/1", "one"),
        ("r/2", "two"),
        ("r/3", "three"),
        ("r/big", "123456789"),
    ] {
        publisher
            .publish(topic, QoS::AtLeastOnce, true, payload.as_bytes())
            .await;
        // Every one is routed to the live subscriber, stored or not.
        let got = live.expect_publish(topic).await;
        assert_eq!((got.topic.as_str(), text(&got).as_str()), (topic, payload));
    }
    let (_, m) = api.get("/api/v5/metrics?aggregate=true").await;
    assert_eq!(m["retained.not_stored"], 2, "{m}");
    assert!(broker.log_contains("retained message not stored"));

    // A new subscriber gets only what was stored.
    let mut late = Client::connect(broker.mqtt_addr(), "ret-late").await;
    late.subscribe("r/#", QoS::AtLeastOnce).await;
    let mut topics: Vec<String> = late
        .publishes_for(Duration::from_millis(500))
        .await
        .iter()
        .map(|p| p.topic.clone())
        .collect();
    topics.sort();
    assert_eq!(topics, ["r/1", "r/2"]);

    // After msg_expiry_interval the clear removes them (polled; 20 s guard).
    let mut count = u64::MAX;
    for _ in 0..200 {
        let (_, s) = api.get("/api/v5/mqtt/retainer/messages").await;
        count = s["meta"]["count"].as_u64().unwrap_or(u64::MAX);
        if count == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count, 0, "retained messages expired");
    let mut after = Client::connect(broker.mqtt_addr(), "ret-after").await;
    after.subscribe("r/#", QoS::AtLeastOnce).await;
    after
        .expect_no_publish(Duration::from_millis(300), "expired retained messages")
        .await;
}
