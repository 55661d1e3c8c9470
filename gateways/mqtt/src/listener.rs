//! The TCP accept loop: a connection semaphore (`max_connections`), an accept-rate limit
//! (`max_conn_rate` per second), back-off on accept errors (e.g. EMFILE), and shutdown on
//! cancellation. Each connection runs in its own task on the shared `TaskTracker`.

use crate::driver::run_connection;
use crate::MqttGateway;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Per-listener limits.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// New connections per second at most (0 = unlimited).
    pub max_conn_rate: u32,
}

/// Accepts MQTT connections on `listener` until `cancel` fires.
pub async fn serve_tcp(
    listener: TcpListener,
    name: String,
    gw: MqttGateway,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let spacing = (limits.max_conn_rate > 0).then(|| Duration::from_secs(1) / limits.max_conn_rate);
    let mut next_slot = tokio::time::Instant::now();
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // EMFILE and friends: wait and retry rather than spin (hickory-dns server).
                tracing::warn!(listener = %name, error = %e, ?backoff, "accept failed");
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(listener = %name, %peer, max = limits.max_connections, "max_connections reached; connection refused");
            drop(stream);
            continue;
        };
        if let Some(spacing) = spacing {
            let now = tokio::time::Instant::now();
            next_slot = next_slot.max(now) + spacing;
            if next_slot > now + Duration::from_secs(1) {
                tracing::warn!(listener = %name, %peer, "max_conn_rate exceeded; connection refused");
                drop(stream);
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        let gw = gw.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            run_connection(stream, peer, gw, cancel).await;
            drop(permit);
        });
    }
    tracing::debug!(listener = %name, "listener stopped");
}
