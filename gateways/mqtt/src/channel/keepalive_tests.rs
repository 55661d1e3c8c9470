//! Keepalive negotiation (`mqtt.max_keepalive`, `mqtt.server_keepalive`) on tokio's paused
//! clock: what CONNACK announces, and when a silent client is closed and its will published.

use super::*;
use crate::codec::{ConnAck, Connect, LastWill, Publish, Subscribe, SubscriptionOptions};
use std::num::NonZeroU16;
use std::time::Duration;
use switchyard_bus::BusConfig;
use switchyard_core::QoS;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn bus() -> BusHandle {
    BusHandle::new(BusConfig {
        sys_client_connected: false,
        sys_client_disconnected: false,
        ..Default::default()
    })
}

fn settings(max_keepalive: Option<u16>, server_keepalive: Option<u16>) -> Arc<MqttSettings> {
    Arc::new(MqttSettings {
        max_keepalive,
        server_keepalive,
        ..MqttSettings::default()
    })
}

struct Client {
    ch: Channel,
    connack: ConnAck,
}

/// Connects `id` asking for `keepalive`, with a will on `will/<id>`; panics unless accepted.
async fn connect(
    bus: &BusHandle,
    settings: &Arc<MqttSettings>,
    id: &str,
    version: ProtocolVersion,
    keepalive: u16,
) -> Client {
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let mut ch = Channel::new(bus.clone(), settings.clone(), peer, now());
    let mut c = Connect::new(version, id);
    c.keep_alive = keepalive;
    c.will = Some(LastWill {
        topic: format!("will/{id}").into(),
        payload: "gone".into(),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    match ch.handle_connect(c, now()) {
        ConnectDecision::Open(req) => {
            let opened = bus
                .open_session(req)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            ch.on_session_opened(opened, now());
        }
        ConnectDecision::Refused => {}
    }
    let out = ch.take_outbound();
    let connack = match out.as_slice() {
        [Packet::ConnAck(a)] if a.code == 0 => a.clone(),
        other => panic!("{id} asking keepalive {keepalive}: expected CONNACK 0, got {other:?}"),
    };
    Client { ch, connack }
}

/// A subscriber to `will/#` that never times out.
async fn watcher(bus: &BusHandle) -> Channel {
    let mut w = connect(
        bus,
        &settings(None, None),
        "watcher",
        ProtocolVersion::V5,
        0,
    )
    .await
    .ch;
    let filter = ("will/#".into(), SubscriptionOptions::new(QoS::AtMostOnce));
    w.handle_packet(
        Packet::Subscribe(Subscribe::new(NonZeroU16::MIN, vec![filter])),
        now(),
    );
    w.take_outbound();
    w
}

fn wills(w: &mut Channel) -> Vec<String> {
    w.pull_deliveries(now());
    w.take_outbound()
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(Publish { topic, .. }) => Some(topic.to_string()),
            _ => None,
        })
        .collect()
}

/// Silent until just before `limit`, still open; at `limit`, closed for keepalive.
async fn expires_exactly_at(c: &mut Client, limit: Duration) {
    let start = now();
    assert_eq!(c.ch.next_deadline(), Some(start + limit));
    tokio::time::advance(limit - Duration::from_millis(1)).await;
    c.ch.handle_tick(now());
    assert!(c.ch.close_reason().is_none(), "closed before {limit:?}");
    tokio::time::advance(Duration::from_millis(1)).await;
    c.ch.handle_tick(now());
    assert_eq!(c.ch.close_reason(), Some(&CloseReason::KeepaliveTimeout));
}

#[tokio::test(start_paused = true)]
async fn v5_asking_more_than_the_cap_is_told_the_cap_and_held_to_it() {
    let bus = bus();
    let mut w = watcher(&bus).await;
    let s = settings(Some(60), None);
    let mut c = connect(&bus, &s, "long", ProtocolVersion::V5, 120).await;
    assert_eq!(c.connack.properties.server_keep_alive, Some(60));
    assert_eq!(c.ch.info.as_ref().map(|i| i.keepalive), Some(60));
    expires_exactly_at(&mut c, Duration::from_secs(90)).await;
    c.ch.finish();
    assert_eq!(wills(&mut w), ["will/long"]);
}

#[tokio::test(start_paused = true)]
async fn clients_asking_less_keep_their_own_and_their_will_follows_one_and_a_half_times() {
    let bus = bus();
    let mut w = watcher(&bus).await;
    let s = settings(Some(60), None);
    for (secs, version) in [
        (2, ProtocolVersion::V5),
        (3, ProtocolVersion::V311),
        (4, ProtocolVersion::V5),
        (5, ProtocolVersion::V31),
    ] {
        let id = format!("short{secs}");
        let mut c = connect(&bus, &s, &id, version, secs).await;
        assert_eq!(
            c.connack.properties.server_keep_alive, None,
            "{id}: nothing to announce when the client's own value stands"
        );
        expires_exactly_at(&mut c, Duration::from_secs(u64::from(secs)) * 3 / 2).await;
        assert!(wills(&mut w).is_empty(), "{id}: no will before the close");
        c.ch.finish();
        assert_eq!(wills(&mut w), [format!("will/{id}")]);
    }
}

#[tokio::test(start_paused = true)]
async fn v3_clients_are_never_refused_and_are_held_to_the_cap() {
    let bus = bus();
    let s = settings(Some(60), None);
    for (requested, version) in [
        (0, ProtocolVersion::V311),
        (0, ProtocolVersion::V31),
        (65_535, ProtocolVersion::V311),
        (61, ProtocolVersion::V31),
    ] {
        let id = format!("v3-{requested}-{}", version.level());
        let mut c = connect(&bus, &s, &id, version, requested).await;
        assert_eq!(c.ch.info.as_ref().map(|i| i.keepalive), Some(60), "{id}");
        expires_exactly_at(&mut c, Duration::from_secs(90)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn v5_keepalive_zero_gets_the_cap() {
    let bus = bus();
    let mut c = connect(
        &bus,
        &settings(Some(60), None),
        "zero",
        ProtocolVersion::V5,
        0,
    )
    .await;
    assert_eq!(c.connack.properties.server_keep_alive, Some(60));
    expires_exactly_at(&mut c, Duration::from_secs(90)).await;
}

#[tokio::test(start_paused = true)]
async fn server_keepalive_wins_over_the_cap_for_v5() {
    let bus = bus();
    let s = settings(Some(60), Some(30));
    for requested in [0, 10, 120] {
        let id = format!("srv{requested}");
        let mut c = connect(&bus, &s, &id, ProtocolVersion::V5, requested).await;
        assert_eq!(c.connack.properties.server_keep_alive, Some(30), "{id}");
        expires_exactly_at(&mut c, Duration::from_secs(45)).await;
    }
    // MQTT 3.x cannot be told a Server Keep Alive: only the cap applies to it.
    let mut c = connect(&bus, &s, "srv-v3", ProtocolVersion::V311, 120).await;
    expires_exactly_at(&mut c, Duration::from_secs(90)).await;
}

#[tokio::test(start_paused = true)]
async fn without_a_cap_the_client_value_stands() {
    let bus = bus();
    let s = settings(None, None);
    let c = connect(&bus, &s, "free", ProtocolVersion::V5, 120).await;
    assert_eq!(c.connack.properties.server_keep_alive, None);
    assert_eq!(c.ch.next_deadline(), Some(now() + Duration::from_secs(180)));
    let c = connect(&bus, &s, "none", ProtocolVersion::V311, 0).await;
    assert_eq!(
        c.ch.next_deadline(),
        None,
        "keepalive 0 without a cap: no check"
    );
}
