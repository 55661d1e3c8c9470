//! MQTT 3.1.1 behaviour of the real binary, driven by rumqttc (a client we did not write).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::mqtt::{options, text, Client, WAIT};
use common::Broker;
use rumqttc::QoS;

const QUIET: Duration = Duration::from_millis(500);

fn qos_name(q: QoS) -> &'static str {
    match q {
        QoS::AtMostOnce => "qos0",
        QoS::AtLeastOnce => "qos1",
        QoS::ExactlyOnce => "qos2",
    }
}

/// A and B each subscribe to their own topic and publish 10 messages to the other's, at `qos`;
/// both receive all ten, in order, with the payloads and the QoS that was sent.
async fn round_trip_both_ways(qos: QoS) {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let tag = qos_name(qos);
    let mut a = Client::connect(addr, &format!("rt-a-{tag}")).await;
    let mut b = Client::connect(addr, &format!("rt-b-{tag}")).await;
    assert_eq!(
        a.subscribe("rt/a", QoS::ExactlyOnce).await,
        QoS::ExactlyOnce
    );
    assert_eq!(
        b.subscribe("rt/b", QoS::ExactlyOnce).await,
        QoS::ExactlyOnce
    );
    for i in 0..10 {
        a.publish("rt/b", qos, false, format!("a->b {i}").as_bytes())
            .await;
        b.publish("rt/a", qos, false, format!("b->a {i}").as_bytes())
            .await;
    }
    for i in 0..10 {
        let p = b.expect_publish(&format!("message {i} from a")).await;
        assert_eq!(p.topic, "rt/b");
        assert_eq!(
            text(&p),
            format!("a->b {i}"),
            "order or payload wrong at {i}"
        );
        assert_eq!(
            p.qos, qos,
            "delivered QoS must be min(publish, subscription)"
        );
        assert!(!p.retain);
        let p = a.expect_publish(&format!("message {i} from b")).await;
        assert_eq!(p.topic, "rt/a");
        assert_eq!(
            text(&p),
            format!("b->a {i}"),
            "order or payload wrong at {i}"
        );
        assert_eq!(p.qos, qos);
    }
    a.expect_no_publish(QUIET, "no duplicates").await;
    b.expect_no_publish(Duration::ZERO, "no duplicates").await;
}

#[tokio::test]
async fn qos0_round_trip_both_directions() {
    round_trip_both_ways(QoS::AtMostOnce).await;
}

#[tokio::test]
async fn qos1_round_trip_both_directions() {
    round_trip_both_ways(QoS::AtLeastOnce).await;
}

#[tokio::test]
async fn qos2_round_trip_both_directions() {
    round_trip_both_ways(QoS::ExactlyOnce).await;
}

/// MQTT-3.8.4-6 / 3.3.5: delivery QoS is the minimum of the publish QoS and the granted QoS.
#[tokio::test]
async fn delivery_qos_is_downgraded_to_subscription_qos() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "down-sub").await;
    let mut publisher = Client::connect(addr, "down-pub").await;
    assert_eq!(
        sub.subscribe("down/1", QoS::AtLeastOnce).await,
        QoS::AtLeastOnce
    );
    assert_eq!(
        sub.subscribe("down/0", QoS::AtMostOnce).await,
        QoS::AtMostOnce
    );
    publisher
        .publish("down/1", QoS::ExactlyOnce, false, b"x")
        .await;
    let p = sub.expect_publish("down/1").await;
    assert_eq!((p.topic.as_str(), p.qos), ("down/1", QoS::AtLeastOnce));
    publisher
        .publish("down/0", QoS::ExactlyOnce, false, b"y")
        .await;
    let p = sub.expect_publish("down/0").await;
    assert_eq!((p.topic.as_str(), p.qos), ("down/0", QoS::AtMostOnce));
}

#[tokio::test]
async fn retained_set_delivered_on_subscribe_and_cleared_by_empty_payload() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut publisher = Client::connect(addr, "ret-pub").await;
    publisher
        .publish("ret/1", QoS::AtLeastOnce, true, b"hello")
        .await;
    publisher
        .publish("ret/2", QoS::AtLeastOnce, true, b"world")
        .await;

    // A later subscriber gets the retained messages, flagged retain (MQTT-3.3.1-8).
    let mut s1 = Client::connect(addr, "ret-s1").await;
    s1.subscribe("ret/+", QoS::AtLeastOnce).await;
    let mut got: Vec<(String, String, bool)> = Vec::new();
    for _ in 0..2 {
        let p = s1.expect_publish("retained message").await;
        got.push((p.topic.clone(), text(&p), p.retain));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("ret/1".into(), "hello".into(), true),
            ("ret/2".into(), "world".into(), true)
        ]
    );
    s1.expect_no_publish(QUIET, "each retained message once")
        .await;

    // A retained publish that replaces the old one reaches a live subscriber without the retain
    // flag (MQTT-3.3.1-9) ...
    publisher
        .publish("ret/1", QoS::AtLeastOnce, true, b"hello2")
        .await;
    let p = s1.expect_publish("live retained publish").await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("ret/1", "hello2"));
    assert!(
        !p.retain,
        "live delivery must clear the retain flag (MQTT-3.3.1-9)"
    );

    // ... and a new subscriber sees the replacement.
    let mut s2 = Client::connect(addr, "ret-s2").await;
    s2.subscribe("ret/1", QoS::AtMostOnce).await;
    let p = s2.expect_publish("replaced retained message").await;
    assert_eq!(text(&p), "hello2");
    assert!(p.retain);

    // An empty retained payload clears it (MQTT-3.3.1-10/11).
    publisher
        .publish("ret/1", QoS::AtLeastOnce, true, b"")
        .await;
    let mut s3 = Client::connect(addr, "ret-s3").await;
    s3.subscribe("ret/+", QoS::AtLeastOnce).await;
    let p = s3.expect_publish("ret/2 still retained").await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("ret/2", "world"));
    s3.expect_no_publish(QUIET, "ret/1 was cleared by an empty retained payload")
        .await;
}

#[tokio::test]
async fn wildcards_plus_and_hash() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut plus = Client::connect(addr, "wc-plus").await;
    let mut hash = Client::connect(addr, "wc-hash").await;
    let mut publisher = Client::connect(addr, "wc-pub").await;
    plus.subscribe("w/+/temp", QoS::AtLeastOnce).await;
    hash.subscribe("w/#", QoS::AtLeastOnce).await;
    for topic in [
        "w/a/temp",
        "w/a/b/temp",
        "w/temp",
        "w",
        "w/b/temp",
        "x/a/temp",
        "w/c/hum",
    ] {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, topic.as_bytes())
            .await;
    }
    publisher
        .publish("w/end/temp", QoS::AtLeastOnce, false, b"end")
        .await;

    let mut plus_got = Vec::new();
    loop {
        let p = plus.expect_publish("w/+/temp matches").await;
        assert_eq!(
            text(&p),
            if p.topic == "w/end/temp" {
                "end".to_owned()
            } else {
                p.topic.clone()
            }
        );
        if p.topic == "w/end/temp" {
            break;
        }
        plus_got.push(p.topic);
    }
    assert_eq!(
        plus_got,
        vec!["w/a/temp", "w/b/temp"],
        "'+' matches exactly one level"
    );

    let mut hash_got = Vec::new();
    loop {
        let p = hash.expect_publish("w/# matches").await;
        if p.topic == "w/end/temp" {
            break;
        }
        hash_got.push(p.topic);
    }
    // "w/#" also matches the parent "w" (MQTT 4.7.1.2).
    assert_eq!(
        hash_got,
        vec![
            "w/a/temp",
            "w/a/b/temp",
            "w/temp",
            "w",
            "w/b/temp",
            "w/c/hum"
        ]
    );
}

/// MQTT-4.7.2-1: `#` and `+` at the first level do not match topics starting with `$`.
#[tokio::test]
async fn dollar_topics_not_matched_by_leading_wildcards() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut all = Client::connect(addr, "dollar-all").await;
    let mut plus = Client::connect(addr, "dollar-plus").await;
    let mut dollar = Client::connect(addr, "dollar-test").await;
    let mut publisher = Client::connect(addr, "dollar-pub").await;
    all.subscribe("#", QoS::AtLeastOnce).await;
    plus.subscribe("+/x", QoS::AtLeastOnce).await;
    dollar.subscribe("$test/#", QoS::AtLeastOnce).await;

    publisher
        .publish("$test/x", QoS::AtLeastOnce, false, b"dollar")
        .await;
    publisher
        .publish("plain/x", QoS::AtLeastOnce, false, b"plain")
        .await;

    let p = dollar.expect_publish("$test/x via $test/#").await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("$test/x", "dollar"));
    dollar
        .expect_no_publish(QUIET, "plain/x does not match $test/#")
        .await;

    // Per-publisher order: if "#" had matched "$test/x" it would arrive before "plain/x".
    let p = all.expect_publish("plain/x via #").await;
    assert_eq!(p.topic, "plain/x", "'#' must not match a '$' topic");
    let p = plus.expect_publish("plain/x via +/x").await;
    assert_eq!(p.topic, "plain/x", "'+/x' must not match a '$' topic");
    all.expect_no_publish(QUIET, "nothing else").await;
}

/// Subscribes `n_members` clients to `filter`, publishes `n` QoS 1 messages to `topic`, and
/// checks each message reached exactly one member and every member got some.
async fn shared_group_splits(filter: &str, topic: &str, tag: &str) {
    const N: usize = 20;
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut m1 = Client::connect(addr, &format!("{tag}-m1")).await;
    let mut m2 = Client::connect(addr, &format!("{tag}-m2")).await;
    let mut publisher = Client::connect(addr, &format!("{tag}-pub")).await;
    m1.subscribe(filter, QoS::AtLeastOnce).await;
    m2.subscribe(filter, QoS::AtLeastOnce).await;
    for i in 0..N {
        publisher
            .publish(topic, QoS::AtLeastOnce, false, format!("{i}").as_bytes())
            .await;
    }
    let mut got1 = Vec::new();
    let mut got2 = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got1.len() + got2.len() < N && tokio::time::Instant::now() < deadline {
        got1.extend(m1.publishes_for(Duration::from_millis(100)).await);
        got2.extend(m2.publishes_for(Duration::from_millis(100)).await);
    }
    // Give duplicates a chance to show up.
    got1.extend(m1.publishes_for(QUIET).await);
    got2.extend(m2.publishes_for(Duration::from_millis(100)).await);
    for p in got1.iter().chain(&got2) {
        assert_eq!(
            p.topic, topic,
            "shared delivery carries the real topic, not the filter"
        );
    }
    let ids1: Vec<usize> = got1.iter().map(|p| text(p).parse().unwrap()).collect();
    let ids2: Vec<usize> = got2.iter().map(|p| text(p).parse().unwrap()).collect();
    let all: BTreeSet<usize> = ids1.iter().chain(&ids2).copied().collect();
    assert_eq!(
        ids1.len() + ids2.len(),
        N,
        "each message to exactly one member: m1 got {ids1:?}, m2 got {ids2:?}"
    );
    assert_eq!(
        all,
        (0..N).collect::<BTreeSet<_>>(),
        "every message delivered once"
    );
    assert!(
        !ids1.is_empty() && !ids2.is_empty(),
        "round_robin must use both members: m1 {ids1:?}, m2 {ids2:?}"
    );
    // Each member still sees its share in publish order.
    assert!(
        ids1.windows(2).all(|w| w[0] < w[1]),
        "m1 out of order: {ids1:?}"
    );
    assert!(
        ids2.windows(2).all(|w| w[0] < w[1]),
        "m2 out of order: {ids2:?}"
    );
}

#[tokio::test]
async fn shared_subscription_share_group_splits_messages() {
    shared_group_splits("$share/g/sh/t", "sh/t", "share").await;
}

#[tokio::test]
async fn shared_subscription_queue_splits_messages() {
    shared_group_splits("$queue/q/t", "q/t", "queue").await;
}

/// A shared group and a plain subscription on the same topic: the plain one gets everything.
#[tokio::test]
async fn shared_and_plain_subscriptions_coexist() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut member = Client::connect(addr, "mix-member").await;
    let mut plain = Client::connect(addr, "mix-plain").await;
    let mut publisher = Client::connect(addr, "mix-pub").await;
    member.subscribe("$share/g/mix/t", QoS::AtLeastOnce).await;
    plain.subscribe("mix/t", QoS::AtLeastOnce).await;
    for i in 0..5 {
        publisher
            .publish("mix/t", QoS::AtLeastOnce, false, format!("{i}").as_bytes())
            .await;
    }
    for i in 0..5 {
        assert_eq!(
            text(&plain.expect_publish("plain copy").await),
            format!("{i}")
        );
        assert_eq!(
            text(&member.expect_publish("sole group member").await),
            format!("{i}")
        );
    }
}

#[tokio::test]
async fn persistent_session_resumes_with_queued_messages_in_order() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut opts = options(addr, "persist-a");
    opts.set_clean_session(false);
    let mut a = Client::connect_with(opts.clone()).await;
    assert!(!a.connack.session_present, "first connect has no session");
    a.subscribe("persist/t", QoS::AtLeastOnce).await;
    a.disconnect().await;

    let mut publisher = Client::connect(addr, "persist-pub").await;
    for i in 0..5 {
        publisher
            .publish(
                "persist/t",
                QoS::AtLeastOnce,
                false,
                format!("m{i}").as_bytes(),
            )
            .await;
    }
    // QoS 0 to a persistent session is queued too by default (mqueue_store_qos0), but not
    // required by the spec: not asserted.

    let mut a = Client::connect_with(opts).await;
    assert!(
        a.connack.session_present,
        "CONNACK must report the stored session (MQTT-3.2.2-2)"
    );
    for i in 0..5 {
        let p = a.expect_publish(&format!("queued m{i}")).await;
        assert_eq!(p.topic, "persist/t");
        assert_eq!(text(&p), format!("m{i}"), "queued messages out of order");
        assert_eq!(p.qos, QoS::AtLeastOnce);
    }
    a.expect_no_publish(QUIET, "each queued message once").await;

    // The subscription survived too: a new message arrives live.
    publisher
        .publish("persist/t", QoS::AtLeastOnce, false, b"live")
        .await;
    assert_eq!(text(&a.expect_publish("live after resume").await), "live");
}

#[tokio::test]
async fn clean_session_discards_previous_session() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut opts = options(addr, "clean-a");
    opts.set_clean_session(false);
    let mut a = Client::connect_with(opts.clone()).await;
    a.subscribe("clean/t", QoS::AtLeastOnce).await;
    a.disconnect().await;

    let mut publisher = Client::connect(addr, "clean-pub").await;
    publisher
        .publish("clean/t", QoS::AtLeastOnce, false, b"queued")
        .await;

    opts.set_clean_session(true);
    let mut a = Client::connect_with(opts).await;
    assert!(
        !a.connack.session_present,
        "clean session: session present must be 0 (MQTT-3.2.2-1)"
    );
    a.expect_no_publish(QUIET, "clean session discards the queue")
        .await;
    publisher
        .publish("clean/t", QoS::AtLeastOnce, false, b"after")
        .await;
    a.expect_no_publish(QUIET, "clean session discards the subscription")
        .await;
}

/// MQTT-3.1.4-2: a second connection with the same client id takes over; the first is closed.
#[tokio::test]
async fn takeover_disconnects_the_first_connection() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut first = Client::connect(addr, "dup-id").await;
    first.subscribe("dup/t", QoS::AtLeastOnce).await;
    let mut second = Client::connect(addr, "dup-id").await;
    assert!(
        first.wait_closed(WAIT).await.is_some(),
        "the first connection must be closed when the same client id connects again"
    );
    second.subscribe("dup/t", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, "dup-pub").await;
    publisher
        .publish("dup/t", QoS::AtLeastOnce, false, b"to second")
        .await;
    let p = second.expect_publish("the new connection works").await;
    assert_eq!(text(&p), "to second");
    second.expect_no_publish(QUIET, "one copy").await;
}

/// Two overlapping subscriptions of one client: one delivery, at the highest granted QoS
/// (MQTT-3.3.5-1).
#[tokio::test]
async fn overlapping_subscriptions_deliver_once_at_max_qos() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "overlap-sub").await;
    let mut publisher = Client::connect(addr, "overlap-pub").await;
    sub.subscribe("a/+", QoS::AtMostOnce).await;
    sub.subscribe("a/#", QoS::ExactlyOnce).await;
    publisher
        .publish("a/b", QoS::ExactlyOnce, false, b"once")
        .await;
    let p = sub.expect_publish("a/b").await;
    assert_eq!(text(&p), "once");
    assert_eq!(
        p.qos,
        QoS::ExactlyOnce,
        "delivered at the max QoS of the matching subscriptions"
    );
    sub.expect_no_publish(QUIET, "exactly one delivery for overlapping subscriptions")
        .await;
}

/// Unsubscribe stops delivery; the UNSUBACK arrives.
#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = Client::connect(addr, "unsub-sub").await;
    let mut publisher = Client::connect(addr, "unsub-pub").await;
    sub.subscribe("unsub/t", QoS::AtLeastOnce).await;
    publisher
        .publish("unsub/t", QoS::AtLeastOnce, false, b"1")
        .await;
    assert_eq!(text(&sub.expect_publish("before unsubscribe").await), "1");
    sub.client.unsubscribe("unsub/t").await.unwrap();
    assert!(
        sub.wait_for(WAIT, |p| matches!(p, rumqttc::Packet::UnsubAck(_)))
            .await
            .is_some(),
        "no UNSUBACK"
    );
    publisher
        .publish("unsub/t", QoS::AtLeastOnce, false, b"2")
        .await;
    sub.expect_no_publish(QUIET, "after unsubscribe").await;
}

/// A client that drops its connection without DISCONNECT has its will published (MQTT-3.1.2-8);
/// one that sends DISCONNECT does not (MQTT-3.1.2-10).
#[tokio::test]
async fn will_published_on_abrupt_close_only() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut watcher = Client::connect(addr, "will-watch").await;
    watcher.subscribe("will/#", QoS::AtLeastOnce).await;

    let mut polite = options(addr, "will-polite");
    polite.set_last_will(common::mqtt::will(
        "will/polite",
        b"polite gone",
        QoS::AtLeastOnce,
        false,
    ));
    Client::connect_with(polite).await.disconnect().await;

    let mut rude = options(addr, "will-rude");
    rude.set_last_will(common::mqtt::will(
        "will/rude",
        b"rude gone",
        QoS::AtLeastOnce,
        false,
    ));
    Client::connect_with(rude).await.abort();

    let p = watcher
        .expect_publish("the will of the aborted client")
        .await;
    assert_eq!(
        (p.topic.as_str(), text(&p).as_str()),
        ("will/rude", "rude gone")
    );
    watcher
        .expect_no_publish(QUIET, "no will after a normal DISCONNECT")
        .await;
}

/// A persistent session outlives its connection only for `mqtt.session_expiry_interval`.
#[tokio::test]
async fn persistent_session_expires_after_session_expiry_interval() {
    let broker = Broker::start_with("[mqtt]\nsession_expiry_interval = \"1s\"\n");
    let addr = broker.mqtt_addr();
    let mut opts = options(addr, "expiring");
    opts.set_clean_session(false);
    let mut a = Client::connect_with(opts.clone()).await;
    a.subscribe("exp/t", QoS::AtLeastOnce).await;
    a.disconnect().await;

    // Within the interval the session is still there...
    let a = Client::connect_with(opts.clone()).await;
    assert!(
        a.connack.session_present,
        "session gone before its expiry interval"
    );
    a.disconnect().await;

    // ... and after it, it is gone, subscription included. Letting time pass is the point: the
    // 1 s interval, plus up to 1 s until the broker's once-a-second reaper discards the expired
    // session, plus a margin.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut a = Client::connect_with(opts).await;
    assert!(
        !a.connack.session_present,
        "session still present 2.5 s after disconnect with session_expiry_interval = 1s"
    );
    let mut publisher = Client::connect(addr, "expiring-pub").await;
    publisher
        .publish("exp/t", QoS::AtLeastOnce, false, b"x")
        .await;
    a.expect_no_publish(QUIET, "the expired session's subscription is gone")
        .await;
}

/// An offline session queues at most `mqtt.max_mqueue_len` messages; past that the oldest are
/// dropped (EMQX's mqueue policy, crates/bus/src/outbox.rs).
#[tokio::test]
async fn offline_queue_is_bounded_by_max_mqueue_len() {
    let broker = Broker::start_with("[mqtt]\nmax_mqueue_len = 3\n");
    let addr = broker.mqtt_addr();
    let mut opts = options(addr, "bounded");
    opts.set_clean_session(false);
    let mut a = Client::connect_with(opts.clone()).await;
    a.subscribe("bounded/t", QoS::AtLeastOnce).await;
    a.disconnect().await;

    let mut publisher = Client::connect(addr, "bounded-pub").await;
    for i in 0..6 {
        publisher
            .publish(
                "bounded/t",
                QoS::AtLeastOnce,
                false,
                format!("m{i}").as_bytes(),
            )
            .await;
    }
    let mut a = Client::connect_with(opts).await;
    assert!(a.connack.session_present);
    let got: Vec<String> = a
        .publishes_for(Duration::from_secs(1))
        .await
        .iter()
        .map(text)
        .collect();
    assert_eq!(
        got,
        vec!["m3", "m4", "m5"],
        "max_mqueue_len = 3 keeps the newest three, in order"
    );
}
