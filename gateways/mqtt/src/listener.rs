//! The accept loop shared by the TCP and WebSocket listeners: a connection semaphore (`max_connections`), an accept-rate limit
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
    accept_loop(
        listener,
        name,
        limits,
        cancel,
        tracker,
        move |stream, peer, cancel| run_connection(stream, peer, gw.clone(), cancel),
    )
    .await
}

/// Accepts MQTT-over-WebSocket connections on `listener` (upgrade on `path` only).
pub async fn serve_ws(
    listener: TcpListener,
    name: String,
    path: String,
    gw: MqttGateway,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let path: Arc<str> = Arc::from(path);
    accept_loop(listener, name, limits, cancel, tracker, move |stream, peer, cancel| {
        let gw = gw.clone();
        let path = path.clone();
        async move {
            let handshake = tokio::time::timeout(gw.settings.idle_timeout, crate::ws::accept(stream, &path, gw.settings.max_packet_size));
            match handshake.await {
                Ok(Ok(ws)) => run_connection(ws, peer, gw, cancel).await,
                Ok(Err(e)) => tracing::info!(%peer, proto = "mqtt-ws", error = %e, "WebSocket handshake refused"),
                Err(_) => tracing::info!(%peer, proto = "mqtt-ws", "WebSocket handshake timed out"),
            }
        }
    })
    .await
}

pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    name: String,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
    handle: F,
) where
    F: Fn(tokio::net::TcpStream, std::net::SocketAddr, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
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
        // `map`, not `async move { connection.await }`: an async block that awaits a future it
        // owns reserves room for it twice, which doubled every connection task.
        let connection = handle(stream, peer, cancel.clone());
        tracker.spawn(futures::FutureExt::map(connection, move |()| drop(permit)));
    }
    tracing::debug!(listener = %name, "listener stopped");
}
