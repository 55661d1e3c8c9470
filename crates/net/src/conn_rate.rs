//! Connection pacing (`max_conn_rate`, `max_conn_burst`): a token bucket, kept as GCRA (one
//! "theoretical arrival time" instead of a token count, so it needs no float and no refill
//! task). [`crate::Admission`] is its only user: stream listeners wait for the next token
//! ([`ConnRate::ready_at`]) before they call `accept`, datagram listeners refuse a new client
//! when no token is left now.
//!
//! Must not know: sockets or protocols; it only counts time.
//!
//! Invariant: at most `burst + rate × t` connections are taken in any span of length `t`.

use std::time::Duration;
use tokio::time::Instant;

/// A token bucket of `burst` tokens refilled at `rate` per second.
#[derive(Debug, Clone)]
pub(crate) struct ConnRate {
    /// Time one token takes to refill (1 s / rate).
    interval: Duration,
    /// How far ahead of `now` the arrival time may run: `(burst - 1) × interval`.
    tolerance: Duration,
    /// When the bucket will be full again; never earlier than necessary.
    tat: Instant,
}

impl ConnRate {
    /// `None` when `rate` is 0 (unlimited). `burst` 0 means a burst equal to the rate. The
    /// bucket starts full: the first `burst` connections are taken at once.
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Option<ConnRate> {
        if rate == 0 {
            return None;
        }
        let burst = if burst == 0 { rate } else { burst };
        let interval = Duration::from_secs(1) / rate;
        let tolerance = interval
            .checked_mul(burst.saturating_sub(1))
            .unwrap_or(Duration::MAX);
        Some(ConnRate {
            interval,
            tolerance,
            tat: now,
        })
    }

    /// When the next connection may be taken: `now` while a token is left.
    pub(crate) fn ready_at(&self, now: Instant) -> Instant {
        match self.tat.checked_sub(self.tolerance) {
            Some(at) => at.max(now),
            // The tolerance reaches before the clock's origin: the bucket cannot be empty.
            None => now,
        }
    }

    /// Takes one token at `now`. Call only once `ready_at(now) <= now`.
    pub(crate) fn take(&mut self, now: Instant) {
        let from = self.tat.max(now);
        self.tat = from.checked_add(self.interval).unwrap_or(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes tokens as fast as the bucket allows, `n` times; returns when each was taken.
    async fn drain(bucket: &mut ConnRate, n: usize) -> Vec<Instant> {
        let mut taken = Vec::with_capacity(n);
        for _ in 0..n {
            tokio::time::sleep_until(bucket.ready_at(Instant::now())).await;
            bucket.take(Instant::now());
            taken.push(Instant::now());
        }
        taken
    }

    #[test]
    fn zero_rate_is_unlimited() {
        assert!(ConnRate::new(0, 0, Instant::now()).is_none());
        assert!(ConnRate::new(0, 7, Instant::now()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn burst_at_once_then_one_per_interval() {
        let t0 = Instant::now();
        let mut bucket = ConnRate::new(200, 50, t0).expect("limited");
        let taken = drain(&mut bucket, 150).await;
        // The first 50 need no wait at all.
        assert!(taken[..50].iter().all(|t| *t == t0), "{:?}", &taken[..50]);
        // Then one every 5 ms: the 51st at 5 ms, the 150th at 100 × 5 ms.
        assert_eq!(taken[50] - t0, Duration::from_millis(5));
        assert_eq!(taken[149] - t0, Duration::from_millis(500));
        for pair in taken[50..].windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_millis(5));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn default_burst_is_the_rate_and_refills_while_idle() {
        let t0 = Instant::now();
        let mut bucket = ConnRate::new(10, 0, t0).expect("limited");
        let taken = drain(&mut bucket, 10).await;
        assert!(taken.iter().all(|t| *t == t0), "burst = rate = 10");
        assert_eq!(bucket.ready_at(t0), t0 + Duration::from_millis(100));
        // Idle for 350 ms: three tokens came back (not more), then pacing resumes.
        tokio::time::advance(Duration::from_millis(350)).await;
        let t1 = Instant::now();
        let taken = drain(&mut bucket, 4).await;
        assert_eq!(&taken[..3], &[t1, t1, t1]);
        assert_eq!(taken[3], t0 + Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_burst_plus_rate_times_span() {
        let t0 = Instant::now();
        let mut bucket = ConnRate::new(100, 20, t0).expect("limited");
        let taken = drain(&mut bucket, 300).await;
        for (i, start) in taken.iter().enumerate() {
            let within_1s = taken[i..]
                .iter()
                .take_while(|t| **t < *start + Duration::from_secs(1))
                .count();
            assert!(
                within_1s <= 20 + 100,
                "{within_1s} taken within 1 s from #{i}"
            );
        }
    }

    #[test]
    fn huge_rates_and_bursts_do_not_overflow() {
        let now = Instant::now();
        let mut bucket = ConnRate::new(u32::MAX, u32::MAX, now).expect("limited");
        assert_eq!(bucket.ready_at(now), now);
        bucket.take(now);
        assert_eq!(bucket.ready_at(now), now);
        let mut one = ConnRate::new(1, 1, now).expect("limited");
        one.take(now);
        assert_eq!(one.ready_at(now), now + Duration::from_secs(1));
    }
}
