//! A token bucket for per-client message rates, sans-I/O: the caller passes `now`, so tests are
//! deterministic and no clock is read here.

use std::time::{Duration, Instant};

/// Allows `rate` events per second on average, with bursts of up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// Tokens per second.
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket. `rate` = 0 is treated as 1 per second; callers that mean "unlimited"
    /// do not build a limiter.
    pub fn new(rate: u32, burst: u32, now: Instant) -> Self {
        let rate = f64::from(rate.max(1));
        let burst = f64::from(burst.max(1));
        RateLimiter {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until a token is available (zero when one is).
    pub fn wait_time(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, 5, t0);
        for _ in 0..5 {
            assert!(r.try_acquire(t0));
        }
        assert!(!r.try_acquire(t0));
        assert_eq!(r.wait_time(t0), Duration::from_millis(100));
        assert!(!r.try_acquire(t0 + Duration::from_millis(50)));
        assert!(r.try_acquire(t0 + Duration::from_millis(100)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        let granted = (0..100).filter(|_| r.try_acquire(later)).count();
        assert_eq!(granted, 5);
    }

    #[test]
    fn time_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut r = RateLimiter::new(1, 1, t0);
        assert!(r.try_acquire(t0));
        assert!(!r.try_acquire(t0 - Duration::from_secs(5)));
        assert!(r.try_acquire(t0 + Duration::from_secs(1)));
    }
}
