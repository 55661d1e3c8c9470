//! RFC 7641 bookkeeping for both roles: the server's per-observation sequence numbers and its
//! "confirmable at least every 24 hours" rule (§4.5), and the client's freshness check (§3.4).
//!
//! Invariant: notification sequence numbers are 24-bit, start at 1 after the registration's 0,
//! increase by one per notification and wrap from 2^24-1 back to 1 (EMQX's numbering, which
//! RFC 7641 §4.4 allows: only freshness within 2^23 matters).

use std::time::{Duration, Instant};

/// Largest Observe value (24 bits).
pub const OBSERVE_MAX: u32 = 0xFF_FFFF;

/// RFC 7641 §4.5: a notification is sent confirmable at least this often, so an observer that
/// went away is detected even when every notification is NON.
pub const CON_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// One observation kept by a server: the observer's token, what it observes, the sequence.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The token of the registering GET; every notification carries it.
    pub token: Vec<u8>,
    /// The observed resource (path and query), for block-wise follow-up requests.
    pub resource: String,
    seq: u32,
    last_con: Instant,
}

impl Observation {
    /// A new observation registered at `now` (sequence 0).
    pub fn new(token: Vec<u8>, resource: String, now: Instant) -> Self {
        Observation {
            token,
            resource,
            seq: 0,
            last_con: now,
        }
    }

    /// The current sequence number (what a re-registration answers with).
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// A re-registration (RFC 7641 §4.1): the entry is updated, not duplicated, and takes the
    /// new token (EMQX keeps the old one; not copied, docs/coap.md §3.12.7).
    pub fn reregister(&mut self, token: Vec<u8>) {
        self.token = token;
    }

    /// Numbers the next notification. Returns its Observe value and whether it must be sent
    /// confirmable: when `want_con`, or when no confirmable one went out for [`CON_INTERVAL`].
    pub fn next(&mut self, want_con: bool, now: Instant) -> (u32, bool) {
        self.seq = if self.seq >= OBSERVE_MAX {
            1
        } else {
            self.seq + 1
        };
        let con = want_con || now.saturating_duration_since(self.last_con) >= CON_INTERVAL;
        if con {
            self.last_con = now;
        }
        (self.seq, con)
    }
}

/// Client side, RFC 7641 §3.4: whether notification (`v2`, received at `t2`) is newer than
/// (`v1`, `t1`).
pub fn is_fresher(v1: u32, t1: Instant, v2: u32, t2: Instant) -> bool {
    const HALF: u32 = 1 << 23;
    (v1 < v2 && v2 - v1 < HALF)
        || (v1 > v2 && v1 - v2 > HALF)
        || t2.saturating_duration_since(t1) > Duration::from_secs(128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_starts_at_one_and_wraps_to_one() {
        let now = Instant::now();
        let mut o = Observation::new(vec![1], "/ps/t".into(), now);
        assert_eq!(o.seq(), 0);
        assert_eq!(o.next(false, now), (1, false));
        assert_eq!(o.next(true, now), (2, true));
        o.seq = OBSERVE_MAX - 1;
        assert_eq!(o.next(false, now).0, OBSERVE_MAX);
        assert_eq!(o.next(false, now).0, 1);
    }

    #[test]
    fn a_con_notification_at_least_every_24_hours() {
        let t0 = Instant::now();
        let mut o = Observation::new(vec![1], "/ps/t".into(), t0);
        assert!(!o.next(false, t0 + Duration::from_secs(3600)).1);
        assert!(o.next(false, t0 + CON_INTERVAL).1);
        assert!(!o.next(false, t0 + CON_INTERVAL + Duration::from_secs(1)).1);
    }

    #[test]
    fn freshness_handles_wrap() {
        let t = Instant::now();
        assert!(is_fresher(1, t, 2, t));
        assert!(!is_fresher(2, t, 1, t));
        assert!(is_fresher(OBSERVE_MAX, t, 1, t));
        assert!(is_fresher(5, t, 1, t + Duration::from_secs(200)));
    }
}
