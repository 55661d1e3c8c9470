//! Broker-wide counters and gauges, lock-free, read by `$SYS` and the admin API.

use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_core::CloseReason;

/// The metric names of [`Metrics::closes`], in [`CloseReason::LABELS`] order.
const CLOSE_METRICS: [&str; CloseReason::LABELS.len()] = [
    "client.closed.client_disconnect",
    "client.closed.client_disconnect_with_will",
    "client.closed.peer_closed",
    "client.closed.keepalive_timeout",
    "client.closed.takeover",
    "client.closed.server_shutdown",
    "client.closed.kicked",
    "client.closed.malformed_packet",
    "client.closed.protocol_error",
    "client.closed.packet_too_large",
    "client.closed.connect_timeout",
    "client.closed.not_authorized",
    "client.closed.io_error",
    "client.closed.internal_error",
];

macro_rules! metrics {
    ($($(#[$doc:meta])* $field:ident => $name:literal,)*) => {
        /// Counters (monotonic) and gauges (up and down) of the whole node.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[$doc])* pub $field: AtomicU64,)*
            /// Connections closed, one counter per [`CloseReason`] (by its index), every
            /// protocol: `client.closed.<reason>`.
            pub closes: [AtomicU64; CloseReason::LABELS.len()],
        }

        /// A point-in-time copy of every metric, with EMQX-style dotted names.
        pub type MetricsSnapshot = Vec<(&'static str, u64)>;

        impl Metrics {
            /// Reads every metric.
            pub fn snapshot(&self) -> MetricsSnapshot {
                let mut v = vec![$(($name, self.$field.load(Ordering::Relaxed)),)*];
                for (name, n) in CLOSE_METRICS.iter().zip(&self.closes) {
                    v.push((*name, n.load(Ordering::Relaxed)));
                }
                v
            }
        }
    };
}

metrics! {
    /// Gauge: connections currently open (all protocols).
    connections => "connections.count",
    /// Gauge: sessions held (online and offline).
    sessions => "sessions.count",
    /// Gauge: subscriptions held.
    subscriptions => "subscriptions.count",
    /// Gauge: retained messages stored.
    retained => "retained.count",
    /// Messages received from publishers.
    messages_received => "messages.received",
    /// Messages handed to subscribers' connections.
    messages_sent => "messages.sent",
    /// Messages published with QoS 0.
    messages_qos0_received => "messages.qos0.received",
    /// Messages published with QoS 1.
    messages_qos1_received => "messages.qos1.received",
    /// Messages published with QoS 2.
    messages_qos2_received => "messages.qos2.received",
    /// Messages that matched no subscription.
    messages_dropped_no_subscribers => "messages.dropped.no_subscribers",
    /// Messages other cluster nodes published that reached this node's subscribers' routing.
    messages_from_peers => "messages.from_peers",
    /// Messages dropped from full or closed queues.
    messages_dropped => "messages.dropped",
    /// Messages that expired before delivery.
    messages_expired => "messages.expired",
    /// Messages re-sent (DUP) to subscribers.
    messages_retransmitted => "messages.retransmitted",
    /// Bytes read from clients (stream transports: TCP, TLS, WebSocket).
    bytes_received => "bytes.received",
    /// Bytes written to clients (stream transports: TCP, TLS, WebSocket).
    bytes_sent => "bytes.sent",
    /// Connections closed for malformed packets.
    packets_malformed => "packets.malformed",
    /// Connections closed for oversize packets.
    packets_too_large => "packets.too_large",
    /// Connections refused by authentication.
    auth_failures => "authentication.failure",
    /// Publishes, subscribes and wills denied by the ACL.
    authz_denials => "authorization.deny",
    /// Connections closed by keepalive timeout, every protocol (counted with the close reason).
    keepalive_timeouts => "client.keepalive_timeout",
    /// Sessions taken over by a new connection.
    takeovers => "session.takenover",
    /// Persistent sessions discarded after their expiry.
    sessions_expired => "session.expired",
    /// Incoming QoS 2 packet ids dropped after await_rel_timeout.
    awaiting_rel_expired => "messages.qos2.expired",
    /// PUBACKs for a packet id not in flight (unknown, duplicate or late), ignored.
    puback_missed => "packets.puback.missed",
    /// PUBRECs for a packet id not in flight, ignored or answered with 0x92.
    pubrec_missed => "packets.pubrec.missed",
    /// PUBCOMPs for a packet id not in flight, ignored.
    pubcomp_missed => "packets.pubcomp.missed",
    /// PUBRELs for an incoming QoS 2 id we do not hold, answered with PUBCOMP (0x92 on MQTT 5).
    pubrel_missed => "packets.pubrel.missed",
    /// `$delayed/` publishes held for later.
    delayed_held => "messages.delayed",
    /// `$delayed/` publishes dropped (bad topic, disabled, full, not saved).
    delayed_dropped => "messages.delayed.dropped",
    /// Retained publishes not stored because of the [retainer] limits (still routed).
    retained_not_stored => "retained.not_stored",
    /// Clients closed because handling one of their packets panicked on a shared task.
    client_panics => "client.panicked",
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge, never below zero.
    pub fn dec(gauge: &AtomicU64) {
        let _ = gauge.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    /// Reads a metric.
    pub fn get(value: &AtomicU64) -> u64 {
        value.load(Ordering::Relaxed)
    }

    /// Counts one closed connection under its reason (and the keepalive counter for a
    /// keepalive timeout), whatever the protocol.
    pub fn count_close(&self, reason: &CloseReason) {
        if let Some(c) = self.closes.get(reason.index()) {
            Self::inc(c);
        }
        if *reason == CloseReason::KeepaliveTimeout {
            Self::inc(&self.keepalive_timeouts);
        }
    }

    /// Connections closed for `reason` so far.
    pub fn closed(&self, reason: &CloseReason) -> u64 {
        self.closes.get(reason.index()).map_or(0, Self::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_metric_names_follow_the_reason_labels() {
        for (name, label) in CLOSE_METRICS.iter().zip(CloseReason::LABELS) {
            assert_eq!(*name, format!("client.closed.{label}"));
        }
        let m = Metrics::default();
        m.count_close(&CloseReason::KeepaliveTimeout);
        m.count_close(&CloseReason::Io("x".into()));
        assert_eq!(m.closed(&CloseReason::KeepaliveTimeout), 1);
        assert_eq!(Metrics::get(&m.keepalive_timeouts), 1);
        let snap = m.snapshot();
        assert!(snap.contains(&("client.closed.io_error", 1)), "{snap:?}");
        assert!(snap.contains(&("client.closed.kicked", 0)), "{snap:?}");
    }
}
