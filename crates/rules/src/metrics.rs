//! Counters per rule and per action under the spec's names (§2.6, §4.4, §7). Counters are
//! plain atomics bumped in the publisher's task; gauges (queuing, inflight) are read from the
//! action's buffer when asked.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$m:meta])* $name:ident { $($field:ident => $key:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            $(
            #[doc = $key]
            pub $field: AtomicU64,
            )*
            /// Speed of `matched`, sampled by the engine.
            pub rate: Rate,
        }

        impl $name {
            /// Every counter with its dotted name.
            pub fn values(&self) -> Vec<(&'static str, u64)> {
                vec![$(($key, self.$field.load(Ordering::Relaxed)),)*]
            }

            /// Zeroes every counter.
            pub fn reset(&self) {
                $(self.$field.store(0, Ordering::Relaxed);)*
                self.rate.reset();
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

/// The speed of a counter in messages per second, EMQX-style: the last sample, the highest
/// sample, and a five-minute moving average. Sampled every [`SAMPLE_EVERY`] by the engine.
#[derive(Debug, Default)]
pub struct Rate(parking_lot::Mutex<RateState>);

#[derive(Debug, Default, Clone, Copy)]
struct RateState {
    prev: u64,
    current: f64,
    max: f64,
    last5m: f64,
}

/// How often rates are sampled.
pub const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Rate {
    /// Takes a sample of `count` (the counter now), `secs` after the previous one.
    pub fn sample(&self, count: u64, secs: f64) {
        let mut s = self.0.lock();
        let delta = count.saturating_sub(s.prev) as f64;
        s.prev = count;
        s.current = if secs > 0.0 { delta / secs } else { 0.0 };
        s.max = s.max.max(s.current);
        // An exponential average whose weight makes about five minutes of samples count.
        let alpha = (secs / 300.0).clamp(0.0, 1.0);
        s.last5m += alpha * (s.current - s.last5m);
    }

    /// (current, max, last5m), rounded to two decimals.
    pub fn get(&self) -> (f64, f64, f64) {
        let s = *self.0.lock();
        let r = |x: f64| (x * 100.0).round() / 100.0;
        (r(s.current), r(s.max), r(s.last5m))
    }

    fn reset(&self) {
        *self.0.lock() = RateState::default();
    }
}

/// Adds one.
#[inline]
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl RuleMetrics {
    /// The `metrics` object of `GET /rules/{id}/metrics`.
    pub fn json(&self) -> Value {
        let mut m = serde_json::Map::new();
        for (k, v) in self.values() {
            m.insert(k.into(), json!(v));
        }
        let (now, max, last5m) = self.rate.get();
        m.insert("matched.rate".into(), json!(now));
        m.insert("matched.rate.max".into(), json!(max));
        m.insert("matched.rate.last5m".into(), json!(last5m));
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
        let (now, max, last5m) = self.rate.get();
        m.insert("rate".into(), json!(now));
        m.insert("rate_last5m".into(), json!(last5m));
        m.insert("rate_max".into(), json!(max));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_samples() {
        let r = Rate::default();
        r.sample(50, 5.0);
        r.sample(100, 5.0);
        r.sample(100, 5.0);
        let (now, max, last5m) = r.get();
        assert_eq!((now, max), (0.0, 10.0));
        assert!(last5m > 0.0 && last5m < 10.0, "{last5m}");
        r.reset();
        assert_eq!(r.get(), (0.0, 0.0, 0.0));
    }
}
