//! MQTT over WebSocket (MQTT 5 §6, MQTT 3.1.1 §6): the HTTP upgrade on the configured path with
//! the MQTT subprotocols, and an adapter that turns the WebSocket's binary messages into a byte
//! stream for the same driver and decoder as TCP. Packets and frames need not line up: a packet
//! may span messages and a message may hold several packets.

use bytes::{Buf, Bytes};
use futures::{Sink, Stream};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

/// Subprotocols MQTT clients offer; any of them (or none) is accepted.
const SUBPROTOCOLS: [&str; 5] = ["mqtt", "mqttv3.1", "mqtt-v3", "mqtt-v3.1.1", "mqtt-v5"];

/// Performs the WebSocket handshake: 404 for any path but `path`, the first MQTT subprotocol the
/// client offers echoed back.
pub async fn accept<S>(
    stream: S,
    path: &str,
    max_packet_size: usize,
) -> Result<WsStream<S>, tokio_tungstenite::tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let expected = path.to_string();
    // The callback signature is fixed by tungstenite.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != expected {
            let mut not_found = ErrorResponse::new(Some("not found".to_string()));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            return Err(not_found);
        }
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| SUBPROTOCOLS.contains(p))
            .map(str::to_string);
        if let Some(proto) = offered {
            if let Ok(v) = HeaderValue::from_str(&proto) {
                resp.headers_mut().insert("sec-websocket-protocol", v);
            }
        }
        Ok(resp)
    };
    // A message may carry a few whole packets; bound it so a peer cannot make us buffer more.
    let limit = max_packet_size.saturating_mul(2).max(64 * 1024);
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok(WsStream {
        inner: ws,
        pending: Bytes::new(),
    })
}

/// A WebSocket connection seen as a byte stream.
#[derive(Debug)]
pub struct WsStream<S> {
    inner: WebSocketStream<S>,
    pending: Bytes,
}

fn to_io(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(WsMessage::Binary(b))) => self.pending = b,
                // MQTT-6.0.0-1: MQTT travels in binary frames; anything else closes.
                Some(Ok(WsMessage::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text frame on an MQTT WebSocket (MQTT-6.0.0-1)",
                    )))
                }
                Some(Ok(WsMessage::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.inner).poll_ready(cx)).map_err(to_io)?;
        Pin::new(&mut self.inner)
            .start_send(WsMessage::Binary(Bytes::copy_from_slice(buf)))
            .map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(to_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx).map_err(to_io)
    }
}
