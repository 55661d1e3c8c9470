//! `$SYS` topics with EMQX's names: broker version and uptime (retained), periodic stats and
//! metrics, and client presence events. Also runs the session-expiry reaper, since both are the
//! bus's own periodic work.

use crate::handle::BusHandle;
use crate::metrics::Metrics;
use crate::registry::ClientInfo;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_core::{CloseReason, Message, QoS, TopicName};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn publish_sys(bus: &BusHandle, suffix: &str, payload: String, retain: bool) {
    let topic = format!("$SYS/brokers/{}/{}", bus.config().node_name, suffix);
    match TopicName::new(topic) {
        Ok(t) => {
            bus.publish(Message::new(t, payload, QoS::AtMostOnce, retain));
        }
        Err(e) => tracing::warn!(error = %e, suffix, "cannot publish $SYS topic"),
    }
}

pub(crate) fn publish_connected(bus: &BusHandle, info: &ClientInfo) {
    let payload = json!({
        "clientid": info.client_id.as_str(),
        "username": info.username,
        "ipaddress": info.peer.map(|p| p.ip().to_string()),
        "sockport": info.peer.map(|p| p.port()),
        "proto_name": info.proto_name,
        "proto_ver": info.proto_ver,
        "keepalive": info.keepalive,
        "clean_start": info.clean_start,
        "expiry_interval": info.expiry_interval,
        "connected_at": millis(info.connected_at),
        "ts": millis(SystemTime::now()),
    });
    publish_sys(
        bus,
        &client_suffix(info, "connected"),
        payload.to_string(),
        false,
    );
}

pub(crate) fn publish_disconnected(bus: &BusHandle, info: &ClientInfo, reason: &CloseReason) {
    let now = millis(SystemTime::now());
    let payload = json!({
        "clientid": info.client_id.as_str(),
        "username": info.username,
        "proto_name": info.proto_name,
        "proto_ver": info.proto_ver,
        "reason": reason.as_str(),
        "disconnected_at": now,
        "ts": now,
    });
    publish_sys(
        bus,
        &client_suffix(info, "disconnected"),
        payload.to_string(),
        false,
    );
}

fn client_suffix(info: &ClientInfo, event: &str) -> String {
    // A client id may hold `+`, `#` or `/`; such ids are not addressable as a topic level, so
    // the event goes to a topic the id cannot break.
    let id = info.client_id.as_str();
    if id.is_empty() || id.contains(['+', '#', '/', '\0']) {
        format!("clients/_invalid_/{event}")
    } else {
        format!("clients/{id}/{event}")
    }
}

fn publish_stats(bus: &BusHandle) {
    let m = bus.metrics();
    publish_sys(
        bus,
        "stats/connections/count",
        Metrics::get(&m.connections).to_string(),
        false,
    );
    for (ns, n) in bus.connections_by_namespace() {
        // Per protocol family (namespace label): mqtt, mqttsn, coap, lwm2m.
        publish_sys(
            bus,
            &format!("stats/connections/{ns}/count"),
            n.to_string(),
            false,
        );
    }
    publish_sys(
        bus,
        "stats/sessions/count",
        Metrics::get(&m.sessions).to_string(),
        false,
    );
    publish_sys(
        bus,
        "stats/subscriptions/count",
        Metrics::get(&m.subscriptions).to_string(),
        false,
    );
    publish_sys(
        bus,
        "stats/retained/count",
        Metrics::get(&m.retained).to_string(),
        false,
    );
    publish_sys(
        bus,
        "metrics/messages/received",
        Metrics::get(&m.messages_received).to_string(),
        false,
    );
    publish_sys(
        bus,
        "metrics/messages/sent",
        Metrics::get(&m.messages_sent).to_string(),
        false,
    );
    publish_sys(
        bus,
        "metrics/messages/dropped",
        Metrics::get(&m.messages_dropped).to_string(),
        false,
    );
}

fn publish_heartbeat(bus: &BusHandle) {
    publish_sys(bus, "uptime", bus.uptime().as_secs().to_string(), true);
    publish_sys(bus, "datetime", millis(SystemTime::now()).to_string(), true);
}

async fn every(period: Option<Duration>, cancel: &CancellationToken, mut f: impl FnMut()) {
    let Some(period) = period.filter(|p| !p.is_zero()) else {
        cancel.cancelled().await;
        return;
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => f(),
        }
    }
}

impl BusHandle {
    /// Starts the bus's periodic work: `$SYS` publishing and the session-expiry reaper. Each
    /// task ends when `cancel` fires.
    pub fn spawn_background(&self, cancel: CancellationToken, tracker: &TaskTracker) {
        publish_sys(self, "version", self.config().version.clone(), true);
        let (bus, c) = (self.clone(), cancel.clone());
        let stats = self.config().sys_msg_interval;
        tracker.spawn(async move { every(stats, &c, || publish_stats(&bus)).await });
        let (bus, c) = (self.clone(), cancel.clone());
        let heartbeat = self.config().sys_heartbeat_interval;
        tracker.spawn(async move { every(heartbeat, &c, || publish_heartbeat(&bus)).await });
        let (bus, c) = (self.clone(), cancel.clone());
        let clear = self.config().retain_clear_interval;
        // Runs even without msg_expiry_interval: retained messages with their own MQTT 5 expiry
        // are cleared too.
        tracker.spawn(async move {
            every(Some(clear.max(Duration::from_millis(10))), &c, || {
                bus.clear_expired_retained(tokio::time::Instant::now().into_std());
            })
            .await
        });
        let (bus, c) = (self.clone(), cancel.clone());
        tracker.spawn(async move {
            // The delayed-publish scheduler: sleeps until the next message is due (at most a
            // second, so a changed wall clock is noticed) or an earlier one arrives.
            loop {
                let wait = bus.delayed().sleep_for(crate::delayed::now_ms());
                tokio::select! {
                    _ = c.cancelled() => break,
                    _ = bus.delayed().wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                bus.publish_due_delayed(crate::delayed::now_ms());
            }
        });
        let bus = self.clone();
        tracker.spawn(async move {
            every(Some(Duration::from_secs(1)), &cancel, || {
                bus.reap_expired(tokio::time::Instant::now().into_std());
            })
            .await
        });
    }
}
