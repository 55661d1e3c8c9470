//! Counters per rule and per action under the spec's names (§2.6, §4.4, §7). Counters are
//! plain atomics bumped in the publisher's task; gauges (queuing, inflight) are read from the
//! action's buffer when asked.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($field:ident => $key:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name { $(
            #[doc = $key]
            pub $field: AtomicU64,
        )* }

        impl $name {
            /// Every counter with its dotted name.
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$(($key, self.$field.load(Ordering::Relaxed)),)*]
            }

            /// Zeroes every counter.
            pub fn reset(&self) {
                $(self.$field.store(0, Ordering::Relaxed);)*
            }
        }
    };
}

counters!(
    /// One rule's counters.
    RuleMetrics {
        matched => "matched",
        passed => "passed",
        failed => "failed",
        failed_exception => "failed.exception",
        failed_no_result => "failed.no_result",
        actions_total => "actions.total",
        actions_success => "actions.success",
        actions_failed => "actions.failed",
        actions_failed_out_of_service => "actions.failed.out_of_service",
        actions_failed_unknown => "actions.failed.unknown",
        actions_discarded => "actions.discarded",
    }
);

counters!(
    /// One action's counters.
    ActionMetrics {
        matched => "matched",
        success => "success",
        failed => "failed",
        retried => "retried",
        retried_success => "retried.success",
        retried_failed => "retried.failed",
        late_reply => "late_reply",
        received => "received",
        dropped => "dropped",
        dropped_expired => "dropped.expired",
        dropped_queue_full => "dropped.queue_full",
        dropped_other => "dropped.other",
        dropped_resource_not_found => "dropped.resource_not_found",
        dropped_resource_stopped => "dropped.resource_stopped",
    }
);

/// Adds one.
#[inline]
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl RuleMetrics {
    /// The `metrics` object of `GET /rules/{id}/metrics`. Rates are not measured yet (0.0).
    pub fn json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in self.values() {
            m.insert(k.into(), json!(v));
        }
        m.insert("matched.rate".into(), json!(0.0));
        m.insert("matched.rate.max".into(), json!(0.0));
        m.insert("matched.rate.last5m".into(), json!(0.0));
        Value::Object(m)
    }
}

impl ActionMetrics {
    /// The `metrics` object of `GET /actions/{id}/metrics`, with the buffer's gauges.
    pub fn json(&self, queuing: u64, queuing_bytes: u64, inflight: u64) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in self.values() {
            m.insert(k.into(), json!(v));
        }
        m.insert("queuing".into(), json!(queuing));
        m.insert("queuing_bytes".into(), json!(queuing_bytes));
        m.insert("inflight".into(), json!(inflight));
        m.insert("rate".into(), json!(0.0));
        m.insert("rate_last5m".into(), json!(0.0));
        m.insert("rate_max".into(), json!(0.0));
        Value::Object(m)
    }
}
