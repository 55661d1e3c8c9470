//! Delayed publish, auto-subscribe and topic rewrite end to end (issue 20 items 4-6), with real
//! clients on MQTT, MQTT-SN and CoAP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin_support;
mod common;
mod mqttsn_client;

use admin_support::Api;
use common::mqtt::{text, Client};
use common::node::Node;
use common::{temp_dir, Broker};
use mqttsn_client::SnClient;
use rumqttc::QoS;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn delayed_messages_are_held_listed_published_later_and_survive_a_restart() {
    let mut node = Node::with_config("delayed", "");
    node.start();
    let api = Api::ready_at(&node.listener("dashboard:http:default").to_string()).await;
    let mut sub = Client::connect(node.listener("mqtt:tcp:default"), "d-sub").await;
    sub.subscribe("d/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(node.listener("mqtt:tcp:default"), "d-pub").await;
    publisher
        .publish("$delayed/1/d/soon", QoS::AtLeastOnce, false, b"later")
        .await;
    // From CoAP too.
    let (code, _) = common::coap::post(
        node.listener("coap:udp:default"),
        &["ps", "$delayed", "1", "d", "coap"],
        &["clientid=d-coap"],
        "from-coap",
    )
    .await;
    assert_eq!(code, "2.04");
    let (_, v) = api.get("/api/v5/mqtt/delayed/messages").await;
    let topics: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["topic"].as_str())
        .collect();
    assert!(
        topics.contains(&"d/soon") && topics.contains(&"d/coap"),
        "{v}"
    );
    // Not delivered at once; delivered when due.
    let first = sub.expect_publish("the first delayed message").await;
    let second = sub.expect_publish("the second delayed message").await;
    let mut got = vec![
        (first.topic.clone(), text(&first)),
        (second.topic.clone(), text(&second)),
    ];
    got.sort();
    assert_eq!(
        got,
        [
            ("d/coap".to_owned(), "from-coap".to_owned()),
            ("d/soon".to_owned(), "later".to_owned())
        ]
    );

    // A message due after a restart is kept and published by the restarted node.
    publisher
        .publish("$delayed/3/d/after", QoS::AtLeastOnce, false, b"kept")
        .await;
    let (_, v) = api.get("/api/v5/mqtt/delayed/messages").await;
    let id = v["data"][0]["msgid"].as_str().unwrap().to_owned();
    let (s, one) = api
        .get(&format!("/api/v5/mqtt/delayed/messages/{id}"))
        .await;
    assert_eq!(s, reqwest::StatusCode::OK, "{one}");
    assert_eq!(one["payload"], "a2VwdA==", "{one}");
    node.stop();
    node.start();
    let mut sub = Client::connect(node.listener("mqtt:tcp:default"), "d-sub2").await;
    sub.subscribe("d/#", QoS::AtLeastOnce).await;
    let p = sub
        .expect_publish("the delayed message after a restart")
        .await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("d/after", "kept"));

    // Settings, and a disabled feature drops $delayed publishes.
    let api = Api::login_at(&node.listener("dashboard:http:default").to_string()).await;
    let (_, v) = api
        .send(
            "PUT",
            "/api/v5/mqtt/delayed",
            Some(json!({"enable": false})),
        )
        .await;
    assert_eq!(v["enable"], false, "{v}");
    let mut publisher = Client::connect(node.listener("mqtt:tcp:default"), "d-pub2").await;
    publisher
        .publish("$delayed/1/d/never", QoS::AtLeastOnce, false, b"x")
        .await;
    let (_, v) = api.get("/api/v5/mqtt/delayed/messages").await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(0), "{v}");
    node.stop();
}

#[tokio::test]
async fn auto_subscribe_applies_to_mqtt_sn_and_mqtt_clients() {
    let broker = Broker::start_with(
        "[auto_subscribe]\ntopics = [{ topic = \"cmd/${clientid}\", qos = 1 }]\n",
    );
    let sn = SnClient::new(broker.listener("mqttsn:udp:default"), "sn-auto").await;
    sn.connect(true, 60).await;
    let mut mqtt = Client::connect(broker.mqtt_addr(), "mq-auto").await;
    let mut publisher = Client::connect(broker.mqtt_addr(), "auto-pub").await;
    publisher
        .publish("cmd/sn-auto", QoS::AtLeastOnce, false, b"to-sn")
        .await;
    publisher
        .publish("cmd/mq-auto", QoS::AtLeastOnce, false, b"to-mqtt")
        .await;
    let mut registered = Vec::new();
    let p = sn.next_publish(&mut registered).await;
    assert_eq!(&p.data[..], b"to-sn");
    assert!(
        registered.iter().any(|(_, n)| n == "cmd/sn-auto"),
        "{registered:?}"
    );
    let got = mqtt.expect_publish("auto-subscribed MQTT client").await;
    assert_eq!(text(&got), "to-mqtt");

    // Changed through the API: new clients get the new list.
    let api = Api::ready(&broker).await;
    let (_, v) = api.get("/api/v5/mqtt/auto_subscribe").await;
    assert_eq!(v[0]["topic"], "cmd/${clientid}", "{v}");
    let (s, v) = api
        .send(
            "PUT",
            "/api/v5/mqtt/auto_subscribe",
            Some(json!([{"topic": "all/news", "qos": 0}])),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::OK, "{v}");
    let mut late = Client::connect(broker.mqtt_addr(), "late-auto").await;
    publisher
        .publish("all/news", QoS::AtLeastOnce, false, b"news")
        .await;
    assert_eq!(
        text(&late.expect_publish("new auto-subscription").await),
        "news"
    );
}

#[tokio::test]
async fn topic_rewrite_applies_before_authorization_with_captures() {
    let dir = temp_dir("rewrite");
    let acl = dir.join("acl.toml");
    std::fs::write(
        &acl,
        "[[rule]]\npermission = \"deny\"\naction = \"publish\"\ntopics = [\"x/#\"]\n\n\
         [[rule]]\npermission = \"allow\"\naction = \"all\"\ntopics = [\"#\"]\n",
    )
    .unwrap();
    let broker = Broker::start_with(&format!(
        "rewrite = [{{ action = \"publish\", source_topic = \"x/#\", re = \"^x/y/(.+)$\", dest_topic = \"z/y/$1\" }}, \
         {{ action = \"subscribe\", source_topic = \"old/#\", re = \"^old/(.+)$\", dest_topic = \"z/$1\" }}]\n\
         [authorization]\nfile = \"{}\"\nno_match = \"deny\"\n",
        acl.display()
    ));
    let mut z = Client::connect(broker.mqtt_addr(), "rw-z").await;
    z.subscribe("z/#", QoS::AtLeastOnce).await;
    // Subscribing to old/# is rewritten to z/#.
    let mut old = Client::connect(broker.mqtt_addr(), "rw-old").await;
    old.subscribe("old/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.mqtt_addr(), "rw-pub").await;
    // x/y/1 is rewritten to z/y/1 before the ACL (which denies x/#) sees it.
    publisher
        .publish("x/y/1", QoS::AtLeastOnce, false, b"rewritten")
        .await;
    let got = z.expect_publish("the rewritten publish").await;
    assert_eq!(
        (got.topic.as_str(), text(&got).as_str()),
        ("z/y/1", "rewritten")
    );
    let got = old.expect_publish("via the rewritten subscription").await;
    assert_eq!(got.topic, "z/y/1");
    // x/q matches no rewrite: the ACL denies it.
    publisher
        .publish("x/q", QoS::AtLeastOnce, false, b"denied")
        .await;
    z.expect_no_publish(Duration::from_millis(300), "denied publish")
        .await;
    let api = Api::ready(&broker).await;
    let (_, v) = api.get("/api/v5/mqtt/topic_rewrite").await;
    assert_eq!(v[0]["dest_topic"], "z/y/$1", "{v}");
    let (s, v) = api
        .send(
            "PUT",
            "/api/v5/mqtt/topic_rewrite",
            Some(json!([{"action": "all", "source_topic": "a/#", "re": "(", "dest_topic": "b"}])),
        )
        .await;
    assert_eq!(s, reqwest::StatusCode::BAD_REQUEST, "{v}");
}
