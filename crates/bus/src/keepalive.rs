//! Keepalive bookkeeping: a connection is dead after `multiplier × keepalive` without a packet
//! (MQTT-3.1.2-24: 1.5 × in MQTT; EMQX applies the same factor to its gateways). Sans-I/O.

use std::time::{Duration, Instant};

/// When a silent peer must be declared dead.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    limit: Option<Duration>,
    last_rx: Instant,
}

impl Keepalive {
    /// `keepalive_secs == 0` disables the check (MQTT-3.1.2-23 note).
    pub fn new(keepalive_secs: u16, multiplier: f64, now: Instant) -> Self {
        let limit = (keepalive_secs > 0)
            .then(|| Duration::from_secs_f64(f64::from(keepalive_secs) * multiplier.max(1.0)));
        Keepalive {
            limit,
            last_rx: now,
        }
    }

    /// Any packet from the peer resets the timer.
    pub fn on_packet(&mut self, now: Instant) {
        self.last_rx = now;
    }

    /// When the peer is dead unless a packet arrives first.
    pub fn deadline(&self) -> Option<Instant> {
        self.limit.map(|l| self.last_rx + l)
    }

    /// Whether the peer is dead at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_a_half_times() {
        let t0 = Instant::now();
        let mut k = Keepalive::new(10, 1.5, t0);
        assert!(!k.is_expired(t0 + Duration::from_millis(14_999)));
        assert!(k.is_expired(t0 + Duration::from_secs(15)));
        k.on_packet(t0 + Duration::from_secs(10));
        assert!(!k.is_expired(t0 + Duration::from_secs(20)));
        assert!(Keepalive::new(0, 1.5, t0).deadline().is_none());
    }
}
