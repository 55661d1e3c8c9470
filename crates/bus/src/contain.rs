//! Panic containment for tasks that serve many clients (a UDP socket task, a receiver that
//! hands datagrams straight to each client's protocol state).
//!
//! A bug triggered by one client's input must cost that client its connection, never the
//! others on the same task: the caller runs the client's step through [`contain`], and on a
//! panic closes that one client (with [`CloseReason::InternalError`]) and carries on. The
//! panic is logged once with the client's identity and counted in `client.panicked`.
//!
//! [`CloseReason::InternalError`]: switchyard_core::CloseReason::InternalError

use crate::metrics::Metrics;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A contained panic: what it said. Report it once with [`Panicked::report`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked(pub String);

impl Panicked {
    /// Logs the panic with the client it cost and counts it in `client.panicked`.
    pub fn report(&self, metrics: &Metrics, who: &str) {
        Metrics::inc(&metrics.client_panics);
        tracing::error!(client = who, panic = %self.0, "panic while serving a client: closing it");
    }
}

/// Runs `f`, one client's step on a task shared by many; `Err` when it panicked.
///
/// The closure is asserted unwind-safe: the caller must treat whatever `f` was mutating for that
/// client as poisoned and close the client, which is what the `Err` arm is for. Costs nothing
/// measurable when nothing panics, so it wraps every datagram.
pub fn contain<R>(f: impl FnOnce() -> R) -> Result<R, Panicked> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Panicked(panic_message(payload.as_ref())))
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_contained_counted_and_named() {
        let m = Metrics::default();
        assert_eq!(contain(|| 7), Ok(7));
        let r = contain(|| -> () { panic!("boom {}", 1) });
        assert_eq!(r, Err(Panicked("boom 1".to_owned())));
        let r = contain(|| -> () { panic!("static") });
        let Err(p) = r else { panic!("not contained") };
        assert_eq!(p.0, "static");
        p.report(&m, "c");
        assert_eq!(Metrics::get(&m.client_panics), 1);
    }
}
