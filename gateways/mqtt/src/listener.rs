//! The accept loop shared by the TCP, TLS and WebSocket listeners: a connection semaphore
//! (`max_connections`), accept pacing (`max_conn_rate` per second with bursts of
//! `max_conn_burst`: over the rate the loop stops calling `accept`, so new connections wait in
//! the kernel's backlog instead of being refused), back-off on accept errors (e.g. EMFILE), and
//! shutdown on cancellation. Each connection runs in its own task on the shared `TaskTracker`.

use crate::conn_rate::ConnRate;
use crate::driver::run_connection;
use crate::MqttGateway;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Per-listener limits.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// New connections accepted per second on average (0 = unlimited); over it accepting
    /// pauses.
    pub max_conn_rate: u32,
    /// Connections accepted at once before the rate paces them (0 = equal to the rate).
    pub max_conn_burst: u32,
}

/// At most one "paused accepting" log line per listener in this span, so a long surge is one
/// line every few seconds rather than one per connection.
const PAUSE_LOG_EVERY: Duration = Duration::from_secs(10);

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
    let mut rate = ConnRate::new(limits.max_conn_rate, limits.max_conn_burst, Instant::now());
    let mut last_pause_log: Option<Instant> = None;
    let mut backoff = Duration::from_millis(5);
    loop {
        if let Some(rate) = &rate {
            let now = Instant::now();
            let ready = rate.ready_at(now);
            if ready > now {
                if last_pause_log.map_or(true, |t| now.duration_since(t) >= PAUSE_LOG_EVERY) {
                    last_pause_log = Some(now);
                    tracing::info!(
                        listener = %name,
                        max_conn_rate = limits.max_conn_rate,
                        max_conn_burst = limits.max_conn_burst,
                        "max_conn_rate reached; new connections wait in the accept backlog"
                    );
                }
                // Not calling accept is the pause: the kernel holds the connections.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep_until(ready) => {}
                }
            }
        }
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                if let Some(rate) = rate.as_mut() {
                    rate.take(Instant::now());
                }
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
        let _ = stream.set_nodelay(true);
        // `map`, not `async move { connection.await }`: an async block that awaits a future it
        // owns reserves room for it twice, which doubled every connection task.
        let connection = handle(stream, peer, cancel.clone());
        tracker.spawn(futures::FutureExt::map(connection, move |()| drop(permit)));
    }
    tracing::debug!(listener = %name, "listener stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over the rate, connections wait in the backlog and are accepted at the bucket's pace;
    /// none is dropped. Paused time: the loop's sleeps end as soon as the runtime is idle, so
    /// the accept times below are the bucket's schedule, not the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn over_the_rate_connections_wait_and_none_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Every client has finished its handshake (it sits in the backlog) before the loop runs.
        let mut clients = Vec::new();
        for _ in 0..30 {
            clients.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let t0 = Instant::now();
        let limits = ListenerLimits {
            max_connections: 1000,
            max_conn_rate: 100,
            max_conn_burst: 10,
        };
        let serve = accept_loop(
            listener,
            "test".into(),
            limits,
            cancel.clone(),
            tracker.clone(),
            move |stream, _, _| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((Instant::now(), stream));
                }
            },
        );
        let serve = tokio::spawn(serve);
        let mut accepted = Vec::new();
        while accepted.len() < clients.len() {
            match rx.recv().await {
                Some((at, stream)) => accepted.push((at, stream)),
                None => break,
            }
        }
        cancel.cancel();
        let _ = serve.await;
        assert_eq!(accepted.len(), 30, "every waiting connection is accepted");
        let offsets: Vec<Duration> = accepted.iter().map(|(at, _)| *at - t0).collect();
        assert!(
            offsets[..10].iter().all(|d| d.is_zero()),
            "burst of 10: {offsets:?}"
        );
        for (i, d) in offsets[10..].iter().enumerate() {
            let expected = Duration::from_millis(10) * (i as u32 + 1);
            assert_eq!(*d, expected, "connection {} at 100/s: {offsets:?}", i + 10);
        }
    }
}
