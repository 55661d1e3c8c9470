//! The MQTT listeners on `switchyard_net`'s accept loop (admission, pacing, back-off): plain
//! TCP (1883), WebSocket (8083), TLS (8883) and WebSocket over TLS (8084), and how the binary
//! hands them to this gateway ([`switchyard_net::Gateway`] for [`MqttGateway`]). The TLS
//! handshake and the WebSocket upgrade must finish within `idle_timeout`; a failed one is one
//! log line and closes only that socket.

use crate::driver::{run_connection, run_connection_as};
use crate::MqttGateway;
use std::net::SocketAddr;
use std::sync::Arc;
use switchyard_net::tls::HandshakeError;
use switchyard_net::{
    accept_loop, BoundListener, Gateway, ListenerKind, ListenerLimits, ServeError, ServeFuture,
    TlsListener,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

impl Gateway for MqttGateway {
    fn serve(
        &self,
        listener: BoundListener,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<ServeFuture, ServeError> {
        let (socket, mut parts) = listener.into_stream()?;
        let gw = match parts.enable_authn {
            Some(enable) => self.with_authn(enable),
            None => self.clone(),
        };
        let (id, limits) = (parts.id.clone(), parts.limits);
        let serve: ServeFuture = match parts.kind {
            ListenerKind::Tcp => Box::pin(serve_tcp(socket, id, gw, limits, cancel, tracker)),
            ListenerKind::Ws => {
                let path = parts.take_ws_path()?;
                Box::pin(serve_ws(
                    socket, id, path, None, gw, limits, cancel, tracker,
                ))
            }
            ListenerKind::Ssl => {
                let tls = parts.take_tls()?;
                Box::pin(serve_tls(socket, id, tls, gw, limits, cancel, tracker))
            }
            ListenerKind::Wss => {
                let path = parts.take_ws_path()?;
                let tls = parts.take_tls()?;
                Box::pin(serve_ws(
                    socket,
                    id,
                    path,
                    Some(tls),
                    gw,
                    limits,
                    cancel,
                    tracker,
                ))
            }
            kind @ (ListenerKind::Udp | ListenerKind::Dtls) => {
                return Err(ServeError::Unsupported { id, kind })
            }
        };
        Ok(serve)
    }
}

impl MqttGateway {
    /// This gateway for a listener with this `enable_authn` (each MQTT listener has its own).
    pub fn with_authn(&self, enable_authn: bool) -> MqttGateway {
        if self.settings.enable_authn == enable_authn {
            return self.clone();
        }
        let mut settings = (*self.settings).clone();
        settings.enable_authn = enable_authn;
        MqttGateway {
            bus: self.bus.clone(),
            settings: Arc::new(settings),
        }
    }
}

/// Accepts MQTT connections on `listener` until `cancel` fires.
async fn serve_tcp(
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

/// The TLS handshake of one connection; a failure is logged and ends only that connection.
async fn handshake(
    tls: &TlsListener,
    gw: &MqttGateway,
    stream: TcpStream,
    peer: SocketAddr,
    proto: &str,
) -> Option<(switchyard_net::tls::TlsStream<TcpStream>, Option<String>)> {
    match tls.handshake(stream, gw.settings.idle_timeout).await {
        Ok(accepted) => Some(accepted),
        Err(HandshakeError::Failed(e)) => {
            tracing::info!(%peer, proto, error = %e, "TLS handshake failed");
            None
        }
        Err(HandshakeError::TimedOut) => {
            tracing::info!(%peer, proto, "TLS handshake timed out");
            None
        }
    }
}

/// Accepts MQTT over TLS until `cancel` fires.
async fn serve_tls(
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

/// Accepts MQTT over WebSocket (upgrade on `path` only), over TLS when `tls` is given, until
/// `cancel` fires.
#[allow(clippy::too_many_arguments)]
async fn serve_ws(
    listener: TcpListener,
    name: String,
    path: String,
    tls: Option<TlsListener>,
    gw: MqttGateway,
    limits: ListenerLimits,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let path: Arc<str> = Arc::from(path);
    accept_loop(
        listener,
        name,
        limits,
        cancel,
        tracker,
        move |stream, peer, cancel| {
            let (gw, tls, path) = (gw.clone(), tls.clone(), path.clone());
            async move {
                match tls {
                    None => upgrade(stream, peer, &path, gw, cancel, None, "mqtt-ws").await,
                    Some(tls) => {
                        let Some((stream, cn)) =
                            handshake(&tls, &gw, stream, peer, "mqtt-wss").await
                        else {
                            return;
                        };
                        upgrade(stream, peer, &path, gw, cancel, cn, "mqtt-wss").await;
                    }
                }
            }
        },
    )
    .await
}

/// The WebSocket upgrade of one connection, then the MQTT driver on it.
async fn upgrade<S>(
    stream: S,
    peer: SocketAddr,
    path: &str,
    gw: MqttGateway,
    cancel: CancellationToken,
    cn: Option<String>,
    proto: &str,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let handshake = crate::ws::accept(stream, path, gw.settings.max_packet_size);
    match tokio::time::timeout(gw.settings.idle_timeout, handshake).await {
        Ok(Ok(ws)) => run_connection_as(ws, peer, gw, cancel, cn).await,
        Ok(Err(e)) => tracing::info!(%peer, proto, error = %e, "WebSocket handshake refused"),
        Err(_) => tracing::info!(%peer, proto, "WebSocket handshake timed out"),
    }
}
