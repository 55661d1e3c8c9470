//! The TLS listeners: MQTT over TLS (8883) and MQTT over WebSocket over TLS (8084). The TLS
//! handshake (and the WebSocket upgrade) must finish within `idle_timeout`; a failed handshake
//! is one log line and closes only that socket.

use crate::driver::run_connection_as;
use crate::listener::{accept_loop, ListenerLimits};
use crate::tls::peer_common_name;
use crate::MqttGateway;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A TLS listener's acceptor and options.
#[derive(Clone)]
pub struct TlsListener {
    /// The rustls acceptor built by [`crate::tls::acceptor`].
    pub acceptor: TlsAcceptor,
    /// Use the client certificate's Common Name as the username.
    pub cn_as_username: bool,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("cn_as_username", &self.cn_as_username)
            .finish()
    }
}

async fn handshake(
    tls: &TlsListener,
    gw: &MqttGateway,
    stream: TcpStream,
    peer: SocketAddr,
    proto: &str,
) -> Option<(TlsStream<TcpStream>, Option<String>)> {
    match tokio::time::timeout(gw.settings.idle_timeout, tls.acceptor.accept(stream)).await {
        Ok(Ok(s)) => {
            let cn = if tls.cn_as_username {
                peer_common_name(s.get_ref().1)
            } else {
                None
            };
            Some((s, cn))
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, proto, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(%peer, proto, "TLS handshake timed out");
            None
        }
    }
}

/// Accepts MQTT over TLS until `cancel` fires.
pub async fn serve_tls(
    listener: TcpListener,
    name: String,
    tls: TlsListener,
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
        move |stream, peer, cancel| {
            let (gw, tls) = (gw.clone(), tls.clone());
            async move {
                if let Some((stream, cn)) = handshake(&tls, &gw, stream, peer, "mqtt-tls").await {
                    run_connection_as(stream, peer, gw, cancel, cn).await;
                }
            }
        },
    )
    .await
}

/// Accepts MQTT over WebSocket over TLS (upgrade on `path` only) until `cancel` fires.
#[allow(clippy::too_many_arguments)]
pub async fn serve_wss(
    listener: TcpListener,
    name: String,
    path: String,
    tls: TlsListener,
    gw: MqttGateway,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let path: Arc<str> = Arc::from(path);
    accept_loop(listener, name, limits, cancel, tracker, move |stream, peer, cancel| {
        let (gw, tls, path) = (gw.clone(), tls.clone(), path.clone());
        async move {
            let Some((stream, cn)) = handshake(&tls, &gw, stream, peer, "mqtt-wss").await else { return };
            let upgrade = crate::ws::accept(stream, &path, gw.settings.max_packet_size);
            match tokio::time::timeout(gw.settings.idle_timeout, upgrade).await {
                Ok(Ok(ws)) => run_connection_as(ws, peer, gw, cancel, cn).await,
                Ok(Err(e)) => tracing::info!(%peer, proto = "mqtt-wss", error = %e, "WebSocket handshake refused"),
                Err(_) => tracing::info!(%peer, proto = "mqtt-wss", "WebSocket handshake timed out"),
            }
        }
    })
    .await
}
