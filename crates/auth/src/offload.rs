//! Where password hashes run: never on a tokio worker that other tasks are waiting for.
//!
//! A hash (argon2: tens of milliseconds of CPU) runs on the calling task, which serves one
//! client, but first tells tokio to hand the worker's other tasks to another worker
//! (`block_in_place`); at most [`HASH_SLOTS`] hashes run at once, node-wide, and the rest wait
//! their turn on their own tasks. So a flood of wrong passwords costs the clients that send them
//! their answers' latency, never the other clients their service. A task that serves many
//! clients (a UDP socket task) must not authenticate at all: it hands the request to the
//! client's own task first (see the CoAP driver).

use crate::authn::{AuthResult, Authenticator, Credentials};
use parking_lot::{Condvar, Mutex};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::runtime::{Handle, RuntimeFlavor};

/// Password hashes running at once, at most: a flood of logins uses at most this many threads
/// and leaves the rest of the machine to the clients already connected.
pub const HASH_SLOTS: usize = 2;

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// A slot of [`HASH_SLOTS`], released on drop.
struct Slot;

impl Slot {
    fn acquire() -> Slot {
        let mut running = RUNNING.lock();
        while *running >= HASH_SLOTS {
            FREED.wait(&mut running);
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = RUNNING.lock();
        *running = running.saturating_sub(1);
        FREED.notify_one();
    }
}

/// Runs `f` (a password hash) in one of the node's hash slots, off the worker's other tasks.
pub(crate) fn offload<R>(f: impl FnOnce() -> R) -> R {
    let run = || {
        let _slot = Slot::acquire();
        f()
    };
    match Handle::try_current() {
        // block_in_place panics on a current-thread runtime (unit tests); there every task
        // shares the one thread anyway.
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(run)
        }
        _ => run(),
    }
}

/// [`Credentials`] that own their data, for a check that runs on another thread.
#[derive(Debug, Clone)]
pub struct OwnedCredentials {
    /// The client id.
    pub client_id: String,
    /// The username, if any.
    pub username: Option<String>,
    /// The password, if any (never logged).
    pub password: Option<Vec<u8>>,
    /// The client's address.
    pub peer_ip: Option<IpAddr>,
    /// Whether the listener authenticates at all.
    pub listener_authn_enabled: bool,
}

impl OwnedCredentials {
    /// Borrowed, as [`Authenticator::authenticate`] takes them.
    pub fn as_credentials(&self) -> Credentials<'_> {
        Credentials {
            client_id: &self.client_id,
            username: self.username.as_deref(),
            password: self.password.as_deref(),
            peer_ip: self.peer_ip,
            listener_authn_enabled: self.listener_authn_enabled,
        }
    }
}

/// Slots for checks awaited by async callers: they wait here, as tasks, rather than as threads.
static ASYNC_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASH_SLOTS);

/// Runs `f` (a password hash) on tokio's blocking pool, at most [`HASH_SLOTS`] at once, while
/// the calling task awaits; `None` when the pool is closed (runtime shutting down).
pub(crate) async fn on_hash_pool<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<R> {
    let _permit = ASYNC_SLOTS.acquire().await.ok()?;
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %e, "password check failed to run");
            None
        }
    }
}

/// Authenticates on tokio's blocking pool, at most [`HASH_SLOTS`] at once; the caller's task
/// awaits the verdict (a task serving many clients hands the request to the client's own task
/// and awaits there). A closed pool (runtime shutting down) refuses.
pub async fn authenticate_off_task(
    authn: Arc<Authenticator>,
    creds: OwnedCredentials,
) -> AuthResult {
    let Ok(_permit) = ASYNC_SLOTS.acquire().await else {
        return AuthResult::Deny(crate::DenyReason::NotAuthorized);
    };
    let check = tokio::task::spawn_blocking(move || authn.authenticate(&creds.as_credentials()));
    match check.await {
        Ok(verdict) => verdict,
        Err(e) => {
            tracing::error!(error = %e, "authentication check failed to run");
            AuthResult::Deny(crate::DenyReason::NotAuthorized)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// While hashes hold every slot, other tasks of the runtime keep running, and no more than
    /// HASH_SLOTS hashes ever run at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_are_bounded_and_never_stall_other_tasks() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut hashes = Vec::new();
        for _ in 0..8 {
            let (running, peak) = (running.clone(), peak.clone());
            hashes.push(tokio::spawn(async move {
                offload(|| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    running.fetch_sub(1, Ordering::SeqCst);
                });
            }));
        }
        // A task that needs a worker now: it finishes while the hashes are still queued.
        let quick = tokio::spawn(async { 42 });
        assert_eq!(quick.await.ok(), Some(42));
        let done_before = hashes.iter().filter(|h| h.is_finished()).count();
        assert!(done_before < 8, "the quick task waited for every hash");
        for h in hashes {
            assert!(h.await.is_ok());
        }
        assert!(peak.load(Ordering::SeqCst) <= HASH_SLOTS);
    }
}
