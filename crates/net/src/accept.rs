//! Stream listeners: binding a listening socket ([`listen`]) and the accept loop every TCP,
//! TLS and WebSocket listener runs ([`accept_loop`]): admission (a place among
//! `max_connections`, accept pacing over `max_conn_rate` with bursts of `max_conn_burst`: over
//! the rate the loop stops calling `accept`, so new connections wait in the kernel's backlog
//! instead of being refused), back-off on accept errors (e.g. EMFILE), and shutdown on
//! cancellation. Each connection runs in its own task on the listener's `TaskTracker`.
//!
//! Must not know: any protocol; what runs on an accepted connection is the caller's closure.

use crate::admission::{Admission, ListenerLimits};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Accept backlog of the stream listeners. Over `max_conn_rate` new connections wait here
/// rather than being refused, so it is larger than tokio's default of 1024 (the kernel caps it
/// at `net.core.somaxconn`).
pub const ACCEPT_BACKLOG: u32 = 4096;

/// At most one "paused accepting" log line per listener in this span, so a long surge is one
/// line every few seconds rather than one per connection.
const PAUSE_LOG_EVERY: Duration = Duration::from_secs(10);

/// A listening socket as `TcpListener::bind` makes it (SO_REUSEADDR on Unix, so a restart
/// binds while old connections linger in TIME_WAIT), with [`ACCEPT_BACKLOG`].
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Accepts connections on `listener` until `cancel` fires, running `handle(stream, peer,
/// cancel)` for each admitted one in its own task on `tracker`; `name` is the listener id in
/// log lines.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    name: String,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let admission = Admission::new(limits, Instant::now());
    let mut last_pause_log: Option<Instant> = None;
    let mut backoff = Duration::from_millis(5);
    loop {
        let now = Instant::now();
        if let Some(ready) = admission.paused_until(now) {
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
        let Ok(permit) = admission.accepted(Instant::now()) else {
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
            clients.push(TcpStream::connect(addr).await.expect("connect"));
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

    /// Past `max_connections` a connection is accepted and closed at once; a finished
    /// connection gives its place back.
    #[tokio::test]
    async fn past_max_connections_a_connection_is_closed_and_a_freed_place_is_reused() {
        use tokio::io::AsyncReadExt;
        let listener = listen("127.0.0.1:0".parse().expect("addr")).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        // Each connection holds its stream until the gate lets it finish.
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let release = gate.clone();
        let limits = ListenerLimits {
            max_connections: 1,
            ..ListenerLimits::UNLIMITED
        };
        let serve = tokio::spawn(accept_loop(
            listener,
            "test".into(),
            limits,
            cancel.clone(),
            TaskTracker::new(),
            move |stream, _, _| {
                let gate = gate.clone();
                async move {
                    let _held = stream;
                    let _ = gate.acquire().await.map(|p| p.forget());
                }
            },
        ));
        let _held = TcpStream::connect(addr).await.expect("first");
        // Give the loop time to admit the first before the second arrives.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut refused = TcpStream::connect(addr).await.expect("second connects");
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), refused.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "closed past max_connections: {read:?}"
        );
        release.add_permits(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut again = TcpStream::connect(addr).await.expect("third");
        let read = tokio::time::timeout(Duration::from_millis(200), again.read(&mut buf)).await;
        assert!(
            read.is_err(),
            "the freed place holds the new connection open"
        );
        cancel.cancel();
        let _ = serve.await;
    }
}
