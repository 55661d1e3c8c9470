//! Errors the engine returns to gateways; each gateway maps them to its wire's codes.

use switchyard_core::TopicError;
use thiserror::Error;

/// What the bus refused.
#[derive(Debug, Error)]
pub enum BusError {
    /// The filter or topic is not valid.
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    /// The session already holds `max_subscriptions` subscriptions.
    #[error("subscription quota of {0} exceeded")]
    QuotaExceeded(usize),
    /// The previous owner of the session did not hand it over in time.
    #[error("session takeover timed out")]
    TakeoverTimeout,
    /// No session with that client id.
    #[error("no such client")]
    NotFound,
    /// The bus is shutting down.
    #[error("broker is shutting down")]
    ShuttingDown,
}
