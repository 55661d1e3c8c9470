//! MQTT-SN gateway against the real binary: our own MQTT-SN client (tests/mqttsn_client) on one
//! side, rumqttc on the MQTT side. Covers both directions at QoS 0/1/2 with registered,
//! predefined and short topics, wildcard subscriptions with gateway REGISTER, the will on
//! keepalive timeout, sleep and wake-up (also from a new source port), takeover from a new
//! port, retransmission and its limit, QoS −1, SEARCHGW and malformed datagrams.

mod common;
mod mqttsn_client;

use bytes::Bytes;
use common::mqtt::{text, Client};
use common::Broker;
use mqttsn_client::SnClient;
use rumqttc::QoS;
use std::time::Duration;
use switchyard_mqttsn::codec::{Packet, SnQos, SubTopic, TopicIdType};

const GW: &str = "mqttsn:udp:default";

const PREDEFINED: &str = r#"
[gateway.mqttsn]
predefined = [{ id = 1, topic = "pre/one" }, { id = 2, topic = "pre/two" }]
"#;

fn start(extra: &str) -> Broker {
    Broker::start_with(&format!("{PREDEFINED}\n{extra}"))
}

#[tokio::test]
async fn sn_to_mqtt_registered_predefined_short_at_qos_0_1_2() {
    let broker = start("");
    let mut sub = Client::connect(broker.mqtt_addr(), "mqtt-sub").await;
    sub.subscribe("#", QoS::ExactlyOnce).await;
    let mut sn = SnClient::new(broker.listener(GW), "sn-pub").await;
    sn.connect(true, 30).await;
    let (id, rc) = sn.register("sn/temp").await;
    assert_eq!((id, rc), (1025, 0), "first id 1025 (docs/mqtt-sn.md §2.5)");
    assert_eq!(
        sn.register("sn/temp").await,
        (1025, 0),
        "same name, same id"
    );
    assert_eq!(sn.register("pre/two").await, (2, 0), "predefined name → id");
    assert_eq!(
        sn.register("sn/+").await,
        (0, 3),
        "wildcards are never registered"
    );

    for qos in 0..=2u8 {
        let rc = sn
            .publish(TopicIdType::Normal, id, qos, &format!("reg-q{qos}"))
            .await;
        assert_eq!(rc, 0);
        let p = sub.expect_publish("registered topic").await;
        assert_eq!(
            (p.topic.as_str(), text(&p)),
            ("sn/temp", format!("reg-q{qos}"))
        );
        assert_eq!(p.qos as u8, qos);
    }
    sn.publish(TopicIdType::Predefined, 1, 1, "pre").await;
    let p = sub.expect_publish("predefined").await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("pre/one", "pre"));
    let short = u16::from_be_bytes(*b"ab");
    sn.publish(TopicIdType::Short, short, 2, "short").await;
    let p = sub.expect_publish("short").await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("ab", "short"));

    // Errors come back in PUBACK (docs/mqtt-sn.md §2.8).
    assert_eq!(sn.publish(TopicIdType::Predefined, 5, 1, "x").await, 0x02);
    let wild = u16::from_be_bytes(*b"/#");
    let p = sn.publish_packet(TopicIdType::Short, wild, 1, false, "x");
    sn.send(&p).await;
    match sn.expect("PUBACK").await {
        Packet::PubAck { topic_id, rc, .. } => assert_eq!((topic_id, rc), (wild, 0x03)),
        other => panic!("{other:?}"),
    }
    sub.expect_no_publish(Duration::from_millis(300), "refused publishes")
        .await;
    sn.disconnect(None).await;
}

#[tokio::test]
async fn mqtt_to_sn_by_name_predefined_short_and_wildcard_with_register() {
    let broker = start("");
    let mqtt = Client::connect(broker.mqtt_addr(), "mqtt-pub").await;
    let mut sn = SnClient::new(broker.listener(GW), "sn-sub").await;
    sn.connect(true, 30).await;
    let (name_id, granted, rc) = sn.subscribe_name("dn/x", 1).await;
    assert_eq!((name_id, granted, rc), (1025, SnQos::Q1, 0));
    assert_eq!(
        sn.subscribe(SubTopic::Predefined(1), 2).await,
        (1, SnQos::Q2, 0)
    );
    assert_eq!(
        sn.subscribe(SubTopic::Short(*b"cd"), 0).await,
        (0, SnQos::Q0, 0)
    );
    assert_eq!(sn.subscribe_name("wild/#", 1).await, (0, SnQos::Q1, 0));
    assert_eq!(sn.subscribe(SubTopic::Predefined(99), 0).await.2, 0x02);

    let mut regs = Vec::new();
    mqtt.client
        .publish("dn/x", QoS::AtLeastOnce, false, "by-name")
        .await
        .expect("publish");
    let p = sn.next_publish(&mut regs).await;
    assert_eq!(
        (p.flags.topic_id_type, p.topic_id),
        (TopicIdType::Normal, 1025)
    );
    assert_eq!((p.flags.qos, &p.data[..]), (SnQos::Q1, &b"by-name"[..]));
    sn.ack(&p).await;

    mqtt.client
        .publish("pre/one", QoS::ExactlyOnce, false, "pre")
        .await
        .expect("publish");
    let p = sn.next_publish(&mut regs).await;
    assert_eq!(
        (p.flags.topic_id_type, p.topic_id),
        (TopicIdType::Predefined, 1)
    );
    assert_eq!(p.flags.qos, SnQos::Q2);
    sn.ack(&p).await;

    mqtt.client
        .publish("cd", QoS::AtMostOnce, false, "short")
        .await
        .expect("publish");
    let p = sn.next_publish(&mut regs).await;
    assert_eq!(
        (p.flags.topic_id_type, p.topic_id, p.msg_id),
        (TopicIdType::Short, u16::from_be_bytes(*b"cd"), 0)
    );

    // Wildcard: REGISTER(new id) first, then the PUBLISH on that id (docs/mqtt-sn.md §2.5,
    // outbound rule 4).
    for n in 0..2 {
        mqtt.client
            .publish("wild/a/b", QoS::AtLeastOnce, false, format!("w{n}"))
            .await
            .expect("publish");
        let p = sn.next_publish(&mut regs).await;
        assert_eq!(regs, vec![(1026, "wild/a/b".to_owned())], "registered once");
        assert_eq!(
            (p.flags.topic_id_type, p.topic_id),
            (TopicIdType::Normal, 1026)
        );
        assert_eq!(&p.data[..], format!("w{n}").as_bytes());
        sn.ack(&p).await;
    }
    sn.disconnect(None).await;
}

#[tokio::test]
async fn retained_message_on_subscribe_carries_retain() {
    let broker = start("");
    let mut mqtt = Client::connect(broker.mqtt_addr(), "mqtt-pub").await;
    // The PUBACK comes after the message is retained.
    mqtt.publish("ret/t", QoS::AtLeastOnce, true, b"kept").await;
    let mut sn = SnClient::new(broker.listener(GW), "sn-ret").await;
    sn.connect(true, 30).await;
    let (id, _, rc) = sn.subscribe_name("ret/t", 1).await;
    assert_eq!(rc, 0);
    let p = sn.next_publish(&mut Vec::new()).await;
    assert_eq!(p.topic_id, id);
    assert!(
        p.flags.retain,
        "RETAIN set on subscribe (docs/mqtt-sn.md §2.17.9)"
    );
    sn.ack(&p).await;
}

#[tokio::test]
async fn will_is_published_on_keepalive_timeout() {
    let broker = start("");
    let mut sub = Client::connect(broker.mqtt_addr(), "mqtt-will").await;
    sub.subscribe("will/#", QoS::AtLeastOnce).await;
    let sn = SnClient::new(broker.listener(GW), "sn-will").await;
    sn.connect_with_will(1, "will/sn", 1, "gone").await;
    // Keepalive 1 s × 1.5: the gateway gives up after 1.5 s of silence.
    match sn.recv(Duration::from_secs(4)).await {
        Some(Packet::Disconnect { duration: None }) => {}
        other => panic!("expected DISCONNECT on keepalive timeout, got {other:?}"),
    }
    let p = sub.expect_publish("will").await;
    assert_eq!((p.topic.as_str(), text(&p).as_str()), ("will/sn", "gone"));
}

#[tokio::test]
async fn clean_disconnect_and_empty_will_topic_publish_no_will() {
    let broker = start("");
    let mut sub = Client::connect(broker.mqtt_addr(), "mqtt-nowill").await;
    sub.subscribe("will/#", QoS::AtLeastOnce).await;
    let sn = SnClient::new(broker.listener(GW), "sn-nowill").await;
    sn.connect_with_will(30, "will/a", 0, "x").await;
    sn.disconnect(None).await;
    // Empty WILLTOPIC: no will, CONNACK right away (docs/mqtt-sn.md §2.6).
    let sn2 = SnClient::new(broker.listener(GW), "sn-empty").await;
    sn2.send(&sn2.connect_packet(true, true, 30)).await;
    assert_eq!(sn2.expect("WILLTOPICREQ").await, Packet::WillTopicReq);
    sn2.send_raw(&[2, 0x07]).await;
    assert_eq!(sn2.expect("CONNACK").await, Packet::ConnAck { rc: 0 });
    // WILLMSGUPD without a will: 0x03, not a crash (docs/mqtt-sn.md §2.17.8).
    sn2.send(&Packet::WillMsgUpd {
        msg: Bytes::from_static(b"m"),
    })
    .await;
    assert_eq!(
        sn2.expect("WILLMSGRESP").await,
        Packet::WillMsgResp { rc: 3 }
    );
    sub.expect_no_publish(Duration::from_millis(500), "no will")
        .await;
}

#[tokio::test]
async fn sleeping_client_gets_buffered_messages_on_wake_even_from_a_new_port() {
    let broker = start("");
    let mqtt = Client::connect(broker.mqtt_addr(), "mqtt-pub").await;
    let mut sn = SnClient::new(broker.listener(GW), "sn-sleeper").await;
    sn.connect(true, 10).await;
    let (id, _, _) = sn.subscribe_name("sleep/t", 1).await;
    assert_eq!(sn.subscribe_name("sleep/w/#", 0).await.2, 0);
    sn.disconnect(Some(20)).await;
    for n in 0..2 {
        mqtt.client
            .publish("sleep/t", QoS::AtLeastOnce, false, format!("q1-{n}"))
            .await
            .expect("publish");
    }
    mqtt.client
        .publish("sleep/w/x", QoS::AtMostOnce, false, "q0")
        .await
        .expect("publish");
    sn.expect_nothing(Duration::from_millis(500), "asleep")
        .await;

    // The NAT mapping changed: the wake-up PINGREQ comes from another port (docs/mqtt-sn.md
    // §2.17.2).
    sn.rebind().await;
    sn.pingreq(true).await;
    let mut regs = Vec::new();
    for n in 0..2 {
        let p = sn.next_publish(&mut regs).await;
        assert_eq!(p.topic_id, id);
        assert_eq!(&p.data[..], format!("q1-{n}").as_bytes());
        sn.ack(&p).await;
    }
    let p = sn.next_publish(&mut regs).await;
    assert_eq!(&p.data[..], b"q0");
    assert_eq!(
        regs.len(),
        1,
        "wildcard topic registered before its PUBLISH"
    );
    assert_eq!(
        sn.expect("PINGRESP").await,
        Packet::PingResp,
        "after the messages"
    );
    // Back asleep: nothing is delivered again, new messages wait for the next wake-up.
    mqtt.client
        .publish("sleep/t", QoS::AtLeastOnce, false, "later")
        .await
        .expect("publish");
    sn.expect_nothing(Duration::from_millis(500), "asleep again")
        .await;
    sn.pingreq(true).await;
    let p = sn.next_publish(&mut regs).await;
    assert_eq!(&p.data[..], b"later");
    sn.ack(&p).await;
    assert_eq!(sn.expect("PINGRESP").await, Packet::PingResp);
}

#[tokio::test]
async fn sleeper_that_never_wakes_is_lost_and_its_will_published() {
    let broker = start("");
    let mut sub = Client::connect(broker.mqtt_addr(), "mqtt-will").await;
    sub.subscribe("will/#", QoS::AtLeastOnce).await;
    let sn = SnClient::new(broker.listener(GW), "sn-lost").await;
    sn.connect_with_will(30, "will/sleeper", 0, "lost").await;
    sn.disconnect(Some(1)).await;
    let p = sub.expect_publish("will of a lost sleeper").await;
    assert_eq!(text(&p), "lost");
}

#[tokio::test]
async fn reconnect_from_a_new_port_takes_the_session_over() {
    let broker = start("");
    let mqtt = Client::connect(broker.mqtt_addr(), "mqtt-pub").await;
    let mut sn = SnClient::new(broker.listener(GW), "sn-moving").await;
    sn.connect(false, 30).await;
    let (id, _, _) = sn.subscribe_name("move/t", 1).await;
    sn.rebind().await;
    sn.connect(false, 30).await;
    mqtt.client
        .publish("move/t", QoS::AtLeastOnce, false, "here")
        .await
        .expect("publish");
    let p = sn.next_publish(&mut Vec::new()).await;
    assert_eq!(p.topic_id, id, "registry survived the takeover");
    assert_eq!(&p.data[..], b"here");
    sn.ack(&p).await;
}

#[tokio::test]
async fn unacked_downlink_is_retransmitted_then_the_client_is_dropped() {
    let broker = start("[gateway.mqttsn]\nretry_interval = \"1s\"\nmax_retries = 2\n");
    let mqtt = Client::connect(broker.mqtt_addr(), "mqtt-pub").await;
    let mut sn = SnClient::new(broker.listener(GW), "sn-deaf").await;
    sn.connect(true, 60).await;
    sn.subscribe_name("rt/t", 1).await;
    mqtt.client
        .publish("rt/t", QoS::AtLeastOnce, false, "again")
        .await
        .expect("publish");
    let first = sn.next_publish(&mut Vec::new()).await;
    assert!(!first.flags.dup);
    let got = sn.collect(Duration::from_millis(3500)).await;
    let resends: Vec<_> = got
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(resends.len(), 2, "max_retries resends: {got:?}");
    assert!(resends
        .iter()
        .all(|p| p.flags.dup && p.msg_id == first.msg_id));
    assert!(
        matches!(got.last(), Some(Packet::Disconnect { .. })),
        "disconnected after the last retry: {got:?}"
    );
}

#[tokio::test]
async fn qos_minus_one_without_connection_and_searchgw() {
    let broker = start("");
    let mut sub = Client::connect(broker.mqtt_addr(), "mqtt-neg").await;
    sub.subscribe("#", QoS::AtMostOnce).await;
    let mut sn = SnClient::new(broker.listener(GW), "none").await;
    sn.send_raw(&[3, 0x01, 0]).await;
    assert_eq!(
        &sn.recv_raw(Duration::from_secs(5)).await.expect("GWINFO")[..],
        &[3, 0x02, 1]
    );
    let p = sn.publish_packet(TopicIdType::Predefined, 2, 3, false, "neg-pre");
    sn.send(&p).await;
    let m = sub.expect_publish("QoS -1 predefined").await;
    assert_eq!(
        (m.topic.as_str(), text(&m).as_str()),
        ("pre/two", "neg-pre")
    );
    let p = sn.publish_packet(
        TopicIdType::Short,
        u16::from_be_bytes(*b"ng"),
        3,
        false,
        "neg-short",
    );
    sn.send(&p).await;
    let m = sub.expect_publish("QoS -1 short").await;
    assert_eq!((m.topic.as_str(), text(&m).as_str()), ("ng", "neg-short"));
    // Malformed datagrams and anything else from an unknown address are dropped silently.
    sn.send_raw(&[9, 0x0C, 0]).await;
    sn.send_raw(&[2, 0x16]).await;
    sn.expect_nothing(Duration::from_millis(300), "dropped")
        .await;
    // DISCONNECT before CONNECT is acked (docs/mqtt-sn.md §2.13).
    sn.disconnect(None).await;
}

#[tokio::test]
async fn mountpoint_is_transparent_to_the_client() {
    let broker = start("[gateway.mqttsn]\nmountpoint = \"mp/${clientid}/\"\n");
    let mut sub = Client::connect(broker.mqtt_addr(), "mqtt-mp").await;
    sub.subscribe("mp/#", QoS::AtLeastOnce).await;
    let mut sn = SnClient::new(broker.listener(GW), "sn-mp").await;
    sn.connect(true, 30).await;
    let (id, _, _) = sn.subscribe_name("t", 1).await;
    let (pid, _) = sn.register("t").await;
    assert_eq!(id, pid);
    sn.publish(TopicIdType::Normal, id, 1, "up").await;
    let m = sub.expect_publish("mounted").await;
    assert_eq!(m.topic, "mp/sn-mp/t");
    let p = sn.next_publish(&mut Vec::new()).await;
    assert_eq!(
        (p.topic_id, &p.data[..]),
        (id, &b"up"[..]),
        "loopback, unmounted"
    );
    sn.ack(&p).await;
}

/// Each client's datagrams are published in the order it sent them, whether the gateway hands
/// them to the channel at once or queues them behind a QoS 1 that wakes the client's task, and
/// with several clients spread over the gateway's receiver sockets.
#[tokio::test]
async fn each_clients_messages_keep_their_order() {
    let broker = start("");
    let mut sub = Client::connect(broker.mqtt_addr(), "order-sub").await;
    sub.subscribe("order/#", QoS::AtMostOnce).await;
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 200;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let mut sn = SnClient::new(broker.listener(GW), &format!("order-{c}")).await;
        sn.connect(true, 30).await;
        let (id, rc) = sn.register(&format!("order/{c}")).await;
        assert_eq!(rc, 0);
        clients.push((sn, id));
    }
    for n in 0..PER_CLIENT {
        for (sn, id) in &mut clients {
            // Every 50th message is QoS 1 and sent without waiting for its PUBACK, so the
            // QoS 0 messages right behind it meet a busy client task.
            let qos = if n % 50 == 49 { 1 } else { 0 };
            let p = sn.publish_packet(TopicIdType::Normal, *id, qos, false, &n.to_string());
            sn.send(&p).await;
        }
    }
    let mut next = [0usize; CLIENTS];
    let mut got = 0;
    while got < CLIENTS * PER_CLIENT {
        let Some(p) = sub.next_publish(Duration::from_secs(10)).await else {
            panic!(
                "only {got} of {} messages arrived: {next:?}",
                CLIENTS * PER_CLIENT
            );
        };
        let c: usize = p.topic["order/".len()..].parse().expect("client index");
        let n: usize = text(&p).parse().expect("sequence number");
        assert_eq!(n, next[c], "client {c}: message {n} arrived out of order");
        next[c] += 1;
        got += 1;
    }
    assert_eq!(next, [PER_CLIENT; CLIENTS]);
}

async fn connack(sn: &SnClient) -> u8 {
    sn.send(&sn.connect_packet(true, false, 30)).await;
    match sn.expect("CONNACK").await {
        Packet::ConnAck { rc } => rc,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// `max_connections` counts clients over all of the listener's sockets: the client past the
/// limit gets CONNACK 0x01 (congestion), and a freed place is taken again.
#[tokio::test]
async fn max_connections_is_enforced_with_congestion() {
    let broker =
        start("[gateway.mqttsn.listeners.udp.default]\nmax_connections = 3\nmax_conn_rate = 0\n");
    let mut held = Vec::new();
    for i in 0..3 {
        let sn = SnClient::new(broker.listener(GW), &format!("limit-{i}")).await;
        assert_eq!(connack(&sn).await, 0, "client {i} is within the limit");
        held.push(sn);
    }
    let extra = SnClient::new(broker.listener(GW), "limit-extra").await;
    assert_eq!(
        connack(&extra).await,
        0x01,
        "past max_connections: congestion"
    );
    held.pop().expect("three clients").disconnect(None).await;
    // The freed place is given back once the client's task has ended.
    let mut rc = 0x01;
    for _ in 0..50 {
        let again = SnClient::new(broker.listener(GW), "limit-again").await;
        rc = connack(&again).await;
        if rc == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rc, 0, "a place freed by DISCONNECT is taken again");
}

/// `max_conn_rate` refuses new clients past the rate within one second, with CONNACK 0x01.
#[tokio::test]
async fn max_conn_rate_is_enforced_with_congestion() {
    let broker = start("[gateway.mqttsn.listeners.udp.default]\nmax_conn_rate = 2\n");
    // The one-second window starts at the first CONNECT seen a second after the last one; wait
    // past the listener's first window so all four CONNECTs (a few ms) fall into one window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut codes = Vec::new();
    for i in 0..4 {
        let sn = SnClient::new(broker.listener(GW), &format!("rate-{i}")).await;
        codes.push(connack(&sn).await);
    }
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 2, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 0x01).count(), 2, "{codes:?}");
}
