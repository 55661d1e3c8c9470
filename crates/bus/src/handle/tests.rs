//! Session lifecycle tests on the public API: resume, takeover, expiry, retained, queues.

use super::*;
use crate::attachment::ControlEvent;
use crate::registry::{Namespace, OpenSession, Opened};
use std::net::SocketAddr;
use std::time::SystemTime;
use switchyard_core::TopicName;

const NS: Namespace = Namespace("test");

fn info(id: &str, clean: bool) -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        namespace: NS,
        client_id: id.into(),
        username: None,
        peer: Some(SocketAddr::from(([127, 0, 0, 1], 1))),
        proto_name: "TEST",
        proto_ver: 1,
        keepalive: 0,
        clean_start: clean,
        expiry_interval: 0,
        connected_at: SystemTime::now(),
    })
}

async fn open(bus: &BusHandle, id: &str, clean: bool, expiry: u64) -> Opened {
    bus.open_session(OpenSession {
        info: info(id, clean),
        clean_start: clean,
        expiry: Duration::from_secs(expiry),
        max_inflight: 32,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

fn sf(s: &str) -> SubscriptionFilter {
    SubscriptionFilter::parse(s, 0).unwrap_or_else(|e| panic!("{e}"))
}

fn msg(topic: &str, payload: &'static str, qos: QoS, retain: bool) -> Message {
    Message::new(
        TopicName::new(topic).unwrap_or_else(|e| panic!("{e}")),
        payload,
        qos,
        retain,
    )
}

fn drain(s: &Session) -> Vec<Delivery> {
    let mut out = Vec::new();
    s.outbox.drain(Instant::now(), |_| true, &mut out);
    out
}

fn sub1() -> SubOptions {
    SubOptions {
        qos: QoS::AtLeastOnce,
        ..Default::default()
    }
}

#[tokio::test]
async fn persistent_session_queues_while_offline_and_resumes() {
    let bus = BusHandle::new(BusConfig::default());
    let mut o = open(&bus, "c1", false, 60).await;
    assert!(!o.present);
    bus.subscribe(&mut o.session, sf("a/#"), sub1())
        .unwrap_or_else(|e| panic!("{e}"));
    o.attachment.release(o.session);
    assert_eq!(bus.publish(msg("a/b", "1", QoS::AtLeastOnce, false)), 1);
    assert_eq!(bus.publish(msg("a/c", "2", QoS::AtMostOnce, false)), 1);
    let o2 = open(&bus, "c1", false, 60).await;
    assert!(o2.present);
    let got: Vec<_> = drain(&o2.session)
        .iter()
        .map(|d| d.message.payload.clone())
        .collect();
    assert_eq!(got, vec!["1", "2"]);
}

#[tokio::test]
async fn clean_start_discards_old_session() {
    let bus = BusHandle::new(BusConfig::default());
    let mut o = open(&bus, "c1", false, 60).await;
    bus.subscribe(&mut o.session, sf("a"), sub1())
        .unwrap_or_else(|e| panic!("{e}"));
    o.attachment.release(o.session);
    let o2 = open(&bus, "c1", true, 0).await;
    assert!(!o2.present);
    assert!(o2.session.subscriptions().is_empty());
    assert_eq!(
        bus.publish(msg("a", "x", QoS::AtLeastOnce, false)),
        0,
        "old subscription gone"
    );
    assert_eq!(Metrics::get(&bus.metrics().sessions), 1);
}

#[tokio::test]
async fn takeover_moves_live_session_to_new_connection() {
    let bus = BusHandle::new(BusConfig::default());
    let mut o = open(&bus, "c1", false, 60).await;
    bus.subscribe(&mut o.session, sf("t"), sub1())
        .unwrap_or_else(|e| panic!("{e}"));
    let old_id = o.session.id;
    let old = tokio::spawn(async move {
        // The old connection's task: waits for the takeover request and hands over.
        match o.attachment.control().recv().await {
            ControlEvent::Takeover => {
                o.attachment.release(o.session);
                true
            }
            ControlEvent::Kick => false,
        }
    });
    let o2 = open(&bus, "c1", false, 60).await;
    assert!(
        old.await.unwrap_or(false),
        "old connection received takeover"
    );
    assert!(o2.present);
    assert_eq!(o2.session.id, old_id);
    assert_eq!(bus.publish(msg("t", "x", QoS::AtLeastOnce, false)), 1);
    assert_eq!(Metrics::get(&bus.metrics().takeovers), 1);
}

#[tokio::test]
async fn release_after_takeover_race_hands_session_over() {
    // The old connection ends on its own at the moment a new one takes over: it finds its entry
    // replaced and must find the takeover request in its control channel.
    let bus = BusHandle::new(BusConfig::default());
    let mut o = open(&bus, "c1", false, 60).await;
    bus.subscribe(&mut o.session, sf("t"), sub1())
        .unwrap_or_else(|e| panic!("{e}"));
    let bus2 = bus.clone();
    let new = tokio::spawn(async move { open(&bus2, "c1", false, 60).await });
    // Let the new connection register and send its request.
    while o.attachment.control().is_empty() {
        tokio::task::yield_now().await;
    }
    o.attachment.release(o.session);
    let o2 = new.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(o2.present);
    assert_eq!(o2.session.subscriptions().len(), 1);
}

#[tokio::test]
async fn finish_after_a_takeover_event_hands_over_reports_and_counts() {
    let bus = BusHandle::new(BusConfig::default());
    let mut o = open(&bus, "c1", false, 60).await;
    o.attachment.report_connected();
    bus.subscribe(&mut o.session, sf("t"), sub1())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Metrics::get(&bus.metrics().connections), 1);
    let control = o.attachment.control();
    let bus2 = bus.clone();
    let new = tokio::spawn(async move { open(&bus2, "c1", false, 60).await });
    // The driver reads the event through its own clone; the attachment keeps the reply.
    let event = control.recv().await;
    assert_eq!(event, ControlEvent::Takeover);
    o.attachment.finish(o.session, &event.close_reason());
    let o2 = new.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(o2.present);
    assert_eq!(o2.session.subscriptions().len(), 1);
    let m = bus.metrics();
    assert_eq!(m.closed(&CloseReason::Takeover), 1);
    assert_eq!(Metrics::get(&m.connections), 0);
}

#[tokio::test]
async fn a_kick_is_a_control_event_and_an_unreported_finish_counts_as_refused() {
    let bus = BusHandle::new(BusConfig::default());
    let o = open(&bus, "c1", true, 0).await;
    assert!(bus.kick(NS, &"c1".into()));
    let event = crate::next_control(Some(&o.attachment.control())).await;
    assert_eq!(event, ControlEvent::Kick);
    o.attachment.finish(o.session, &event.close_reason());
    let m = bus.metrics();
    assert_eq!(m.closed(&CloseReason::Kicked), 1);
    assert_eq!(Metrics::get(&m.connections), 0);
    assert_eq!(
        Metrics::get(&m.sessions),
        0,
        "a clean session ends with its connection"
    );
    assert!(!bus.kick(NS, &"c1".into()), "released");
}

#[tokio::test(start_paused = true)]
async fn no_control_events_without_a_session() {
    let never = crate::next_control(None);
    assert!(tokio::time::timeout(Duration::from_secs(1), never)
        .await
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn offline_session_expires() {
    let bus = BusHandle::new(BusConfig::default());
    let mut o = open(&bus, "c1", false, 10).await;
    bus.subscribe(&mut o.session, sf("t"), sub1())
        .unwrap_or_else(|e| panic!("{e}"));
    o.attachment.release(o.session);
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(bus.reap_expired(tokio::time::Instant::now().into_std()), 0);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(bus.reap_expired(tokio::time::Instant::now().into_std()), 1);
    assert_eq!(bus.publish(msg("t", "x", QoS::AtLeastOnce, false)), 0);
    let o2 = open(&bus, "c1", false, 10).await;
    assert!(!o2.present);
}

#[tokio::test]
async fn retained_on_subscribe_and_handling() {
    let bus = BusHandle::new(BusConfig::default());
    bus.publish(msg("r/1", "one", QoS::AtLeastOnce, true));
    bus.publish(msg("r/2", "two", QoS::AtMostOnce, true));
    bus.publish(msg("r/2", "", QoS::AtMostOnce, true));
    assert_eq!(Metrics::get(&bus.metrics().retained), 1);
    let mut o = open(&bus, "c1", true, 0).await;
    let out = bus
        .subscribe(
            &mut o.session,
            sf("r/+"),
            SubOptions {
                qos: QoS::ExactlyOnce,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.retained, 1);
    let d = drain(&o.session);
    assert!(d[0].retain);
    assert_eq!(d[0].qos, QoS::AtLeastOnce);
    let again = SubOptions {
        retain_handling: RetainHandling::OnNewSubscribe,
        ..Default::default()
    };
    assert_eq!(
        bus.subscribe(&mut o.session, sf("r/+"), again)
            .map(|o| o.retained)
            .ok(),
        Some(0)
    );
    assert_eq!(
        bus.subscribe(&mut o.session, sf("$share/g/r/+"), sub1())
            .map(|o| o.retained)
            .ok(),
        Some(0)
    );
}

#[tokio::test]
async fn subscription_quota() {
    let bus = BusHandle::new(BusConfig {
        max_subscriptions: 1,
        ..Default::default()
    });
    let mut o = open(&bus, "c1", true, 0).await;
    assert!(bus.subscribe(&mut o.session, sf("a"), sub1()).is_ok());
    assert!(
        bus.subscribe(&mut o.session, sf("a"), sub1()).is_ok(),
        "replacing is not a new one"
    );
    assert!(matches!(
        bus.subscribe(&mut o.session, sf("b"), sub1()),
        Err(BusError::QuotaExceeded(1))
    ));
}

#[tokio::test]
async fn connections_are_counted_per_namespace() {
    let bus = BusHandle::new(BusConfig {
        sys_client_connected: false,
        sys_client_disconnected: false,
        ..Default::default()
    });
    let a = info("a", true);
    let mut b = (*info("b", true)).clone();
    b.namespace = Namespace("other");
    bus.client_connected(&a);
    bus.client_connected(&b);
    bus.client_connected(&info("c", true));
    assert_eq!(
        bus.connections_by_namespace(),
        vec![("other", 1), ("test", 2)]
    );
    bus.client_disconnected(&a, &CloseReason::ClientDisconnect);
    assert_eq!(
        bus.connections_by_namespace(),
        vec![("other", 1), ("test", 1)]
    );
    assert_eq!(Metrics::get(&bus.metrics().connections), 2);
}

#[tokio::test]
async fn discard_offline_removes_the_session_and_its_subscriptions() {
    let bus = BusHandle::new(BusConfig::default());
    let mut o = open(&bus, "c1", false, 60).await;
    bus.subscribe(&mut o.session, sf("t"), sub1())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !bus.discard_offline(NS, &"c1".into()),
        "an online session is not discarded"
    );
    o.attachment.release(o.session);
    assert!(bus.discard_offline(NS, &"c1".into()));
    assert!(!bus.discard_offline(NS, &"c1".into()));
    assert_eq!(
        bus.publish(msg("t", "x", QoS::AtLeastOnce, false)),
        0,
        "subscription gone"
    );
    assert!(bus.client(NS, &"c1".into()).is_none());
}
