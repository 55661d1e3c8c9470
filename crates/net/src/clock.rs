//! Time for connection drivers: the runtime's clock as the `std::time::Instant` the sans-I/O
//! channels take as `now`, and a sleep on an optional deadline for a driver's `select!`.
//!
//! Both read tokio's clock, so tests that pause and advance time (`tokio::time::pause`) drive
//! every gateway's timers deterministically.

use std::time::Instant;

/// Now, on the runtime's clock (tokio's paused test clock included).
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until `deadline`, or forever without one: the timer branch of a driver's `select!`,
/// fed with its channel's next deadline.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn sleeps_on_the_runtime_clock_and_never_without_a_deadline() {
        let start = now();
        sleep_until(Some(start + Duration::from_secs(30))).await;
        assert_eq!(now() - start, Duration::from_secs(30));
        let never = tokio::time::timeout(Duration::from_secs(3600), sleep_until(None)).await;
        assert!(never.is_err());
    }
}
