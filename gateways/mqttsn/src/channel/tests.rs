//! Channel tests on a paused clock: topic ids (dynamic from 1025, predefined), REGISTER before
//! PUBLISH for wildcard subscriptions, retransmission up to `max_retries`, keepalive, sleep and
//! wake-up, QoS 2 duplicates.

use super::*;
use crate::codec::{Connect, Flags, Publish, SnQos, SubTopic, Subscribe, TopicIdType};
use crate::registry::Predefined;
use bytes::Bytes;
use switchyard_bus::BusConfig;
use switchyard_core::{QoS, TopicName};

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

fn settings() -> Arc<MqttSnSettings> {
    Arc::new(MqttSnSettings {
        predefined: Arc::new(Predefined::new([(1, "pre/one".to_owned())])),
        retry_interval: Duration::from_secs(10),
        max_retries: 2,
        ..MqttSnSettings::default()
    })
}

async fn connect(bus: &BusHandle, id: &str, duration: u16, will: bool) -> Channel {
    let mut ch = Channel::new(bus.clone(), settings(), peer(), now());
    let c = Connect {
        flags: Flags {
            clean_session: true,
            will,
            ..Flags::default()
        },
        protocol_id: 1,
        duration,
        client_id: Bytes::copy_from_slice(id.as_bytes()),
    };
    ch.handle_packet(Packet::Connect(c), peer(), now());
    if will {
        assert_eq!(ch.take_outbound(), vec![Packet::WillTopicReq]);
        let wt = crate::codec::WillTopic {
            flags: Flags::default(),
            topic: Bytes::from_static(b"will/t"),
        };
        ch.handle_packet(Packet::WillTopic(Some(wt)), peer(), now());
        assert_eq!(ch.take_outbound(), vec![Packet::WillMsgReq]);
        let msg = Bytes::from_static(b"bye");
        ch.handle_packet(Packet::WillMsg { msg }, peer(), now());
    }
    let req = ch
        .take_open_request()
        .unwrap_or_else(|| panic!("no open request"));
    let opened = bus
        .open_session(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    ch.on_session_opened(opened, now());
    assert_eq!(ch.take_outbound(), vec![Packet::ConnAck { rc: 0 }]);
    ch
}

fn sub(ch: &mut Channel, topic: SubTopic, qos: SnQos) -> Packet {
    let s = Subscribe {
        flags: Flags {
            qos,
            ..Flags::default()
        },
        msg_id: 7,
        topic,
    };
    ch.handle_packet(Packet::Subscribe(s), peer(), now());
    let mut out = ch.take_outbound();
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

fn name(s: &str) -> SubTopic {
    SubTopic::Name(Bytes::copy_from_slice(s.as_bytes()))
}

fn publish(bus: &BusHandle, topic: &str, qos: QoS, payload: &'static str) {
    let t = TopicName::new(topic).unwrap_or_else(|e| panic!("{e}"));
    bus.publish(Message::new(t, payload, qos, false));
}

fn register(ch: &mut Channel, n: &str, msg_id: u16) -> Packet {
    ch.handle_packet(
        Packet::Register {
            topic_id: 0,
            msg_id,
            topic_name: Bytes::copy_from_slice(n.as_bytes()),
        },
        peer(),
        now(),
    );
    ch.take_outbound().remove(0)
}

fn publishes(out: &[Packet]) -> Vec<&Publish> {
    out.iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn registry_ids_from_1025_and_predefined_ids() {
    let bus = BusHandle::new(BusConfig::default());
    let mut ch = connect(&bus, "c1", 0, false).await;
    let ack = |topic_id, msg_id, rc| Packet::RegAck {
        topic_id,
        msg_id,
        rc,
    };
    assert_eq!(register(&mut ch, "a", 1), ack(1025, 1, 0));
    assert_eq!(register(&mut ch, "b", 2), ack(1026, 2, 0));
    assert_eq!(register(&mut ch, "a", 3), ack(1025, 3, 0));
    assert_eq!(register(&mut ch, "pre/one", 4), ack(1, 4, 0));
    assert_eq!(register(&mut ch, "a/#", 5), ack(0, 5, 3));
    // SUBSCRIBE by a predefined name returns the predefined id (t_subscribe_case04); a new name
    // gets the next dynamic id; SUBACK carries only the granted QoS bits.
    let flags = Flags {
        qos: SnQos::Q1,
        ..Flags::default()
    };
    let suback = |topic_id, rc| Packet::SubAck {
        flags,
        topic_id,
        msg_id: 7,
        rc,
    };
    assert_eq!(sub(&mut ch, name("pre/one"), SnQos::Q1), suback(1, 0));
    assert_eq!(sub(&mut ch, name("c"), SnQos::Q1), suback(1027, 0));
    assert_eq!(
        sub(&mut ch, SubTopic::Predefined(9), SnQos::Q1),
        suback(0, 2)
    );
    assert_eq!(
        sub(&mut ch, SubTopic::Reserved(Bytes::new()), SnQos::Q1),
        suback(0, 3)
    );
    // A "predefined" flag with a dynamic id is looked up in the same table (docs/mqtt-sn.md
    // §2.5).
    let mut ch2 = connect(&bus, "c2", 0, false).await;
    sub(&mut ch2, name("a"), SnQos::Q0);
    let p = Publish {
        flags: Flags {
            topic_id_type: TopicIdType::Predefined,
            ..Flags::default()
        },
        topic_id: 1025,
        msg_id: 0,
        data: Bytes::from_static(b"x"),
    };
    ch.handle_packet(Packet::Publish(p), peer(), now());
    assert!(ch.take_outbound().is_empty());
    ch2.pull_deliveries(now());
    let out = ch2.take_outbound();
    assert_eq!(publishes(&out).len(), 1, "{out:?}");
}

#[tokio::test(start_paused = true)]
async fn wildcard_delivery_registers_first_and_holds_later_messages() {
    let bus = BusHandle::new(BusConfig::default());
    let mut ch = connect(&bus, "w", 0, false).await;
    sub(&mut ch, name("w/#"), SnQos::Q0);
    publish(&bus, "w/x", QoS::AtMostOnce, "1");
    ch.pull_deliveries(now());
    let out = ch.take_outbound();
    let Some(Packet::Register {
        topic_id, msg_id, ..
    }) = out.first().cloned()
    else {
        panic!("expected REGISTER first, got {out:?}")
    };
    assert_eq!((topic_id, out.len()), (1025, 1));
    publish(&bus, "w/x", QoS::AtMostOnce, "2");
    ch.pull_deliveries(now());
    assert!(ch.take_outbound().is_empty(), "held until REGACK");
    ch.handle_packet(
        Packet::RegAck {
            topic_id,
            msg_id: msg_id.wrapping_add(1),
            rc: 0,
        },
        peer(),
        now(),
    );
    ch.pull_deliveries(now());
    assert!(
        ch.take_outbound().is_empty(),
        "a REGACK matching nothing is ignored"
    );
    ch.handle_packet(
        Packet::RegAck {
            topic_id,
            msg_id,
            rc: 0,
        },
        peer(),
        now(),
    );
    ch.pull_deliveries(now());
    let out = ch.take_outbound();
    let ps = publishes(&out);
    assert_eq!(ps.len(), 2, "{out:?}");
    assert!(ps.iter().all(|p| p.topic_id == 1025 && p.msg_id == 0));
    assert_eq!(&ps[1].data[..], b"2");
}

#[tokio::test(start_paused = true)]
async fn qos1_downlink_is_retried_then_the_client_is_disconnected() {
    let bus = BusHandle::new(BusConfig::default());
    let mut ch = connect(&bus, "r", 0, false).await;
    sub(&mut ch, name("r/t"), SnQos::Q1);
    publish(&bus, "r/t", QoS::AtLeastOnce, "a");
    publish(&bus, "r/t", QoS::AtLeastOnce, "b");
    ch.pull_deliveries(now());
    let out = ch.take_outbound();
    assert_eq!(publishes(&out).len(), 1, "inflight window is 1: {out:?}");
    let msg_id = publishes(&out)[0].msg_id;
    assert_eq!(
        ch.next_deadline(),
        Some(now() + Duration::from_secs(10)),
        "retry timer"
    );
    for n in 1..=2 {
        tokio::time::advance(Duration::from_secs(10)).await;
        ch.handle_tick(now());
        let out = ch.take_outbound();
        let ps = publishes(&out);
        assert_eq!(ps.len(), 1, "resend {n}: {out:?}");
        assert!(ps[0].flags.dup && ps[0].msg_id == msg_id);
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    ch.handle_tick(now());
    assert_eq!(
        ch.take_outbound(),
        vec![Packet::Disconnect { duration: None }]
    );
    assert!(matches!(
        ch.close_reason(),
        Some(CloseReason::ProtocolError(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn puback_frees_the_window_and_resets_retries() {
    let bus = BusHandle::new(BusConfig::default());
    let mut ch = connect(&bus, "ok", 0, false).await;
    sub(&mut ch, name("r/t"), SnQos::Q1);
    for _ in 0..3 {
        publish(&bus, "r/t", QoS::AtLeastOnce, "m");
    }
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(10)).await;
        ch.handle_tick(now());
        ch.pull_deliveries(now());
        let out = ch.take_outbound();
        let p = publishes(&out);
        assert_eq!(p.len(), 1, "{out:?}");
        let (topic_id, msg_id) = (p[0].topic_id, p[0].msg_id);
        ch.handle_packet(
            Packet::PubAck {
                topic_id,
                msg_id,
                rc: 0,
            },
            peer(),
            now(),
        );
    }
    assert!(ch.close_reason().is_none());
}

#[tokio::test(start_paused = true)]
async fn unanswered_register_is_retried_then_the_client_is_disconnected() {
    let bus = BusHandle::new(BusConfig::default());
    let mut ch = connect(&bus, "rr", 0, false).await;
    sub(&mut ch, name("w/+"), SnQos::Q0);
    publish(&bus, "w/x", QoS::AtMostOnce, "1");
    ch.pull_deliveries(now());
    assert!(matches!(ch.take_outbound()[..], [Packet::Register { .. }]));
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(10)).await;
        ch.handle_tick(now());
        assert!(matches!(ch.take_outbound()[..], [Packet::Register { .. }]));
    }
    tokio::time::advance(Duration::from_secs(10)).await;
    ch.handle_tick(now());
    assert_eq!(
        ch.take_outbound(),
        vec![Packet::Disconnect { duration: None }]
    );
}

#[tokio::test(start_paused = true)]
async fn keepalive_timeout_disconnects_and_publishes_the_will() {
    let bus = BusHandle::new(BusConfig::default());
    let mut watcher = connect(&bus, "watch", 0, false).await;
    sub(&mut watcher, name("will/t"), SnQos::Q0);
    let mut ch = connect(&bus, "ka", 10, true).await;
    tokio::time::advance(Duration::from_millis(14_900)).await;
    ch.handle_tick(now());
    assert!(ch.close_reason().is_none(), "1.5 × keepalive not reached");
    tokio::time::advance(Duration::from_millis(100)).await;
    ch.handle_tick(now());
    assert_eq!(
        ch.take_outbound(),
        vec![Packet::Disconnect { duration: None }]
    );
    assert_eq!(ch.finish(), CloseReason::KeepaliveTimeout);
    watcher.pull_deliveries(now());
    let out = watcher.take_outbound();
    assert_eq!(&publishes(&out)[0].data[..], b"bye");
}

#[tokio::test(start_paused = true)]
async fn sleep_buffers_wake_delivers_then_pingresp_and_lost_sleeper_publishes_will() {
    let bus = BusHandle::new(BusConfig::default());
    let mut watcher = connect(&bus, "watch", 0, false).await;
    sub(&mut watcher, name("will/t"), SnQos::Q0);
    let mut ch = connect(&bus, "sleeper", 10, true).await;
    sub(&mut ch, name("s/t"), SnQos::Q1);
    ch.handle_packet(Packet::Disconnect { duration: Some(20) }, peer(), now());
    assert_eq!(
        ch.take_outbound(),
        vec![Packet::Disconnect { duration: None }]
    );
    assert!(ch.is_asleep());
    publish(&bus, "s/t", QoS::AtLeastOnce, "zz");
    ch.pull_deliveries(now());
    assert!(ch.take_outbound().is_empty(), "nothing while asleep");
    // Keepalive (15 s) does not apply while asleep.
    tokio::time::advance(Duration::from_secs(16)).await;
    ch.handle_tick(now());
    assert!(ch.close_reason().is_none());
    // Another client id's PINGREQ is ignored; ours from a new address wakes the client.
    let other = Some(Bytes::from_static(b"someone"));
    ch.handle_packet(Packet::PingReq { client_id: other }, peer(), now());
    assert!(ch.take_outbound().is_empty());
    let moved = SocketAddr::from(([127, 0, 0, 1], 40001));
    let mine = Some(Bytes::from_static(b"sleeper"));
    ch.handle_packet(Packet::PingReq { client_id: mine }, moved, now());
    assert_eq!(ch.peer(), moved);
    ch.pull_deliveries(now());
    let out = ch.take_outbound();
    let p = publishes(&out);
    assert_eq!(
        p.len(),
        1,
        "buffered message first, no PINGRESP yet: {out:?}"
    );
    let (topic_id, msg_id) = (p[0].topic_id, p[0].msg_id);
    ch.handle_packet(
        Packet::PubAck {
            topic_id,
            msg_id,
            rc: 0,
        },
        moved,
        now(),
    );
    ch.pull_deliveries(now());
    assert_eq!(ch.take_outbound(), vec![Packet::PingResp]);
    assert!(ch.is_asleep(), "back to sleep");
    // A DISCONNECT with a duration while awake would also sleep (docs/mqtt-sn.md §2.17.4);
    // here: never wake again. The sleep timer is 1.5 × 20 s.
    tokio::time::advance(Duration::from_millis(29_900)).await;
    ch.handle_tick(now());
    assert!(ch.close_reason().is_none());
    tokio::time::advance(Duration::from_millis(100)).await;
    ch.handle_tick(now());
    assert!(
        ch.take_outbound().is_empty(),
        "a sleeper is not sent DISCONNECT"
    );
    assert_eq!(ch.finish(), CloseReason::KeepaliveTimeout);
    watcher.pull_deliveries(now());
    let out = watcher.take_outbound();
    assert_eq!(&publishes(&out)[0].data[..], b"bye", "lost sleeper's will");
}

#[tokio::test(start_paused = true)]
async fn qos2_retransmission_gets_pubrec_again_and_is_published_once() {
    let bus = BusHandle::new(BusConfig::default());
    let mut watcher = connect(&bus, "watch", 0, false).await;
    sub(&mut watcher, SubTopic::Short(*b"q2"), SnQos::Q0);
    let mut ch = connect(&bus, "pub2", 0, false).await;
    let p = Publish {
        flags: Flags {
            qos: SnQos::Q2,
            topic_id_type: TopicIdType::Short,
            ..Flags::default()
        },
        topic_id: u16::from_be_bytes(*b"q2"),
        msg_id: 5,
        data: Bytes::from_static(b"once"),
    };
    ch.handle_packet(Packet::Publish(p.clone()), peer(), now());
    ch.handle_packet(Packet::Publish(p), peer(), now());
    assert_eq!(
        ch.take_outbound(),
        vec![Packet::PubRec { msg_id: 5 }, Packet::PubRec { msg_id: 5 }]
    );
    ch.handle_packet(Packet::PubRel { msg_id: 5 }, peer(), now());
    assert_eq!(ch.take_outbound(), vec![Packet::PubComp { msg_id: 5 }]);
    watcher.pull_deliveries(now());
    assert_eq!(publishes(&watcher.take_outbound()).len(), 1);
}
