//! Admission of new connections (stream listeners) and new clients (datagram listeners): the
//! one implementation of a listener's limits, `max_connections`, `max_conn_rate` and
//! `max_conn_burst`, for every gateway.
//!
//! One meaning on both transports: `max_conn_rate` is a token bucket refilled at that many
//! tokens per second, holding `max_conn_burst` tokens (0 = as many as the rate); `0` = no rate
//! limit. What differs is what a listener does when the bucket is empty:
//! - a stream listener *pauses accepting* until the next token ([`Admission::paused_until`]):
//!   connections wait in the kernel's backlog, none is refused (EMQX's "pause receiving new
//!   connections");
//! - a datagram listener cannot hold a client back, so it *refuses* the new client at once
//!   ([`Admission::try_admit`]) with its protocol's answer (MQTT-SN CONNACK 0x01 congestion,
//!   CoAP and LwM2M 5.03).
//!
//! Every admitted connection or client holds a [`Permit`] while it lives; `max_connections`
//! counts permits, so a slot is free again as soon as the permit is dropped.
//!
//! Must not know: sockets or protocols; callers pass the time in (tokio's clock, so tests run
//! on paused time).

use crate::conn_rate::ConnRate;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A listener's limits (`max_connections`, `max_conn_rate`, `max_conn_burst` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Open connections (or clients) at most; at least one is always allowed.
    pub max_connections: usize,
    /// New connections (or clients) per second on average; 0 = unlimited.
    pub max_conn_rate: u32,
    /// New connections (or clients) taken at once before the rate applies (the bucket's size);
    /// 0 = equal to the rate.
    pub max_conn_burst: u32,
}

impl ListenerLimits {
    /// No limit at all (at most [`Semaphore::MAX_PERMITS`] connections).
    pub const UNLIMITED: ListenerLimits = ListenerLimits {
        max_connections: usize::MAX,
        max_conn_rate: 0,
        max_conn_burst: 0,
    };
}

/// Why a new connection or client was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` are open.
    AtCapacity,
    /// The `max_conn_rate` bucket is empty (datagram listeners only).
    OverRate,
}

impl Refusal {
    /// The config key whose limit was hit, for log lines.
    pub fn limit(self) -> &'static str {
        match self {
            Refusal::AtCapacity => "max_connections",
            Refusal::OverRate => "max_conn_rate",
        }
    }
}

/// A place among `max_connections`, held for as long as the connection or client lives.
#[derive(Debug)]
pub struct Permit {
    _slot: OwnedSemaphorePermit,
}

/// One listener's admission state, shared by its tasks (cheap to clone).
#[derive(Debug, Clone)]
pub struct Admission {
    limits: ListenerLimits,
    slots: Arc<Semaphore>,
    rate: Arc<Mutex<Option<ConnRate>>>,
}

impl Admission {
    /// Admission under `limits`, with a full bucket at `now`.
    pub fn new(limits: ListenerLimits, now: Instant) -> Admission {
        let slots = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            limits,
            slots: Arc::new(Semaphore::new(slots)),
            rate: Arc::new(Mutex::new(ConnRate::new(
                limits.max_conn_rate,
                limits.max_conn_burst,
                now,
            ))),
        }
    }

    /// The limits this admission applies.
    pub fn limits(&self) -> ListenerLimits {
        self.limits
    }

    /// Connections or clients admitted and still alive.
    pub fn live(&self) -> usize {
        let max = self.limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        max.saturating_sub(self.slots.available_permits())
    }

    /// Stream listeners, before calling `accept`: `Some(t)` while the bucket is empty, when
    /// accepting may resume; `None` when a connection may be accepted now.
    pub fn paused_until(&self, now: Instant) -> Option<Instant> {
        let rate = self.rate.lock();
        let ready = rate.as_ref()?.ready_at(now);
        (ready > now).then_some(ready)
    }

    /// Stream listeners, after `accept` returned a connection: the connection takes a token
    /// (it was accepted, so the rate counts it), then a place if one is free.
    pub fn accepted(&self, now: Instant) -> Result<Permit, Refusal> {
        if let Some(rate) = self.rate.lock().as_mut() {
            rate.take(now);
        }
        self.slot().ok_or(Refusal::AtCapacity)
    }

    /// Datagram listeners, for a new client: admitted when a place is free and the bucket has
    /// a token now; a client refused for capacity takes no token.
    pub fn try_admit(&self, now: Instant) -> Result<Permit, Refusal> {
        let permit = self.slot().ok_or(Refusal::AtCapacity)?;
        if let Some(rate) = self.rate.lock().as_mut() {
            if rate.ready_at(now) > now {
                return Err(Refusal::OverRate);
            }
            rate.take(now);
        }
        Ok(permit)
    }

    fn slot(&self) -> Option<Permit> {
        self.slots
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|slot| Permit { _slot: slot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(max_connections: usize, rate: u32, burst: u32) -> ListenerLimits {
        ListenerLimits {
            max_connections,
            max_conn_rate: rate,
            max_conn_burst: burst,
        }
    }

    /// Datagram listeners: the burst is admitted at once, the next client is refused, and one
    /// token comes back every 1/rate seconds.
    #[tokio::test(start_paused = true)]
    async fn datagram_clients_over_the_rate_are_refused_until_a_token_comes_back() {
        let adm = Admission::new(limits(1000, 10, 3), Instant::now());
        let mut held = Vec::new();
        for i in 0..3 {
            held.push(
                adm.try_admit(Instant::now())
                    .unwrap_or_else(|e| panic!("#{i}: {e:?}")),
            );
        }
        assert_eq!(adm.try_admit(Instant::now()).err(), Some(Refusal::OverRate));
        tokio::time::advance(Duration::from_millis(99)).await;
        assert_eq!(adm.try_admit(Instant::now()).err(), Some(Refusal::OverRate));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            adm.try_admit(Instant::now()).is_ok(),
            "one token after 100 ms"
        );
        assert_eq!(adm.try_admit(Instant::now()).err(), Some(Refusal::OverRate));
        assert_eq!(adm.live(), 3, "refused and dropped permits hold no place");
    }

    /// A full listener refuses for capacity without spending a token, and a dropped permit
    /// frees its place at once.
    #[tokio::test(start_paused = true)]
    async fn capacity_is_checked_first_and_freed_by_dropping_the_permit() {
        let adm = Admission::new(limits(2, 2, 0), Instant::now());
        let a = adm.try_admit(Instant::now()).expect("first");
        let _b = adm.try_admit(Instant::now()).expect("second");
        assert_eq!(
            adm.try_admit(Instant::now()).err(),
            Some(Refusal::AtCapacity)
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        // Refills to the burst (= rate = 2), no further, while the listener is full.
        assert_eq!(
            adm.try_admit(Instant::now()).err(),
            Some(Refusal::AtCapacity)
        );
        drop(a);
        assert_eq!(adm.live(), 1);
        assert!(adm.try_admit(Instant::now()).is_ok(), "the freed place");
    }

    /// `0` is unlimited: no rate, and a burst without a rate means nothing.
    #[tokio::test(start_paused = true)]
    async fn zero_rate_is_unlimited() {
        let adm = Admission::new(limits(100_000, 0, 5), Instant::now());
        let held: Vec<Permit> = (0..10_000)
            .map(|_| adm.try_admit(Instant::now()).expect("unlimited rate"))
            .collect();
        assert_eq!(held.len(), 10_000);
        assert_eq!(adm.paused_until(Instant::now()), None);
        assert_eq!(ListenerLimits::UNLIMITED.max_conn_rate, 0);
        assert!(Admission::new(ListenerLimits::UNLIMITED, Instant::now())
            .try_admit(Instant::now())
            .is_ok());
    }

    /// The burst defaults to the rate: `rate` clients at once, then one per interval.
    #[tokio::test(start_paused = true)]
    async fn burst_defaults_to_the_rate() {
        let adm = Admission::new(limits(1000, 4, 0), Instant::now());
        let held: Vec<Permit> = (0..4)
            .map(|_| {
                adm.try_admit(Instant::now())
                    .expect("within the default burst")
            })
            .collect();
        assert_eq!(adm.try_admit(Instant::now()).err(), Some(Refusal::OverRate));
        tokio::time::advance(Duration::from_millis(250)).await;
        assert!(adm.try_admit(Instant::now()).is_ok());
        drop(held);
    }

    /// Stream listeners: accepted connections always take a token; over the rate the listener
    /// is paused until the next token instead of refusing; capacity still refuses.
    #[tokio::test(start_paused = true)]
    async fn stream_listeners_pause_over_the_rate_and_refuse_only_at_capacity() {
        let t0 = Instant::now();
        let adm = Admission::new(limits(3, 100, 2), t0);
        assert_eq!(adm.paused_until(t0), None);
        let a = adm.accepted(t0).expect("first");
        let _b = adm.accepted(t0).expect("second");
        assert_eq!(adm.paused_until(t0), Some(t0 + Duration::from_millis(10)));
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(adm.paused_until(Instant::now()), None);
        let _c = adm.accepted(Instant::now()).expect("third");
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(
            adm.accepted(Instant::now()).err(),
            Some(Refusal::AtCapacity)
        );
        // The refused connection still took its token: the next one waits 10 ms more.
        assert_eq!(
            adm.paused_until(Instant::now()),
            Some(Instant::now() + Duration::from_millis(10))
        );
        drop(a);
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(adm.accepted(Instant::now()).is_ok());
    }

    #[test]
    fn refusals_name_their_limit() {
        assert_eq!(Refusal::AtCapacity.limit(), "max_connections");
        assert_eq!(Refusal::OverRate.limit(), "max_conn_rate");
    }
}
