//! Server-initiated requests (docs/coap.md §3.10): the gateway sends a CON request to a connected
//! client and hands back its response. [`CoapRequester`] is the typed entry point for the binary
//! (the admin API turns HTTP into it); this module knows nothing of HTTP.
//!
//! Owns: the directory of live clients by client id (each client task enters itself when it
//! starts and leaves when it ends), shared by every running instance of the gateway, so a
//! handle taken before a restart of the gateway reaches the clients of the new instance.
//! Invariants: a request reaches a client only through that client's task (it knows the
//! client's current address and whether it is connected); a caller never waits longer than its
//! timeout; the directory lock is never held across an `.await`.

use crate::transport::demux::{ClientSender, Inbound, PendingReply, Unanswered};
use coap_lite::{CoapOption, Packet};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A request method the gateway may send (RFC 7252 §5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// 0.01 GET.
    Get,
    /// 0.02 POST.
    Post,
    /// 0.03 PUT.
    Put,
    /// 0.04 DELETE.
    Delete,
}

impl Method {
    /// The request code (`0.0x`).
    pub fn code(self) -> u8 {
        match self {
            Method::Get => crate::transport::wire::code::GET,
            Method::Post => crate::transport::wire::code::POST,
            Method::Put => crate::transport::wire::code::PUT,
            Method::Delete => crate::transport::wire::code::DELETE,
        }
    }
}

/// What to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRequest {
    /// The method.
    pub method: Method,
    /// The token (at most 8 bytes, RFC 7252 §5.3.1; an empty one is replaced by a random one,
    /// so a response can always be matched).
    pub token: Vec<u8>,
    /// Uri-Path segments; EMQX sends none (docs/coap.md §3.10), so the default is none.
    pub path: Vec<String>,
    /// The Content-Format option (RFC 7252 §12.3), if any.
    pub content_format: Option<u16>,
    /// The body.
    pub payload: Vec<u8>,
}

/// The client's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerResponse {
    /// The response's message id.
    pub message_id: u16,
    /// The response's token (the request's).
    pub token: Vec<u8>,
    /// The response code (`class << 5 | detail`, e.g. 0x45 for 2.05).
    pub code: u8,
    /// The Content-Format option of the response, if any.
    pub content_format: Option<u16>,
    /// The body.
    pub payload: Vec<u8>,
}

impl ServerResponse {
    /// From a response packet.
    pub fn from_packet(p: &Packet) -> Self {
        let content_format = crate::transport::wire::uint_option(p, CoapOption::ContentFormat)
            .and_then(Result::ok)
            .and_then(|v| u16::try_from(v).ok());
        ServerResponse {
            message_id: p.header.message_id,
            token: p.get_token().to_vec(),
            code: crate::transport::wire::code_of(p),
            content_format,
            payload: p.payload.clone(),
        }
    }
}

/// Why a server-initiated request has no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// No connected client has that client id (docs/coap.md §3.10: 404 CLIENT_NOT_FOUND).
    #[error("client not found")]
    NotFound,
    /// The request is malformed (e.g. a token longer than 8 bytes).
    #[error("invalid request: {0}")]
    Invalid(&'static str),
    /// No response within the caller's timeout (docs/coap.md §3.10: 504 CLIENT_NOT_RESPONSE).
    #[error("no response in time")]
    Timeout,
    /// The client rejected the request with RST (RFC 7252 §4.2) or never acknowledged it.
    #[error("request rejected or not acknowledged")]
    Unanswered,
    /// The client went away (or the gateway stopped) before answering.
    #[error("client closed before answering")]
    Closed,
}

/// The reply channel of one request.
pub(crate) type Reply = oneshot::Sender<Result<ServerResponse, RequestError>>;

/// A server-initiated request on its way to a client's task (what the CoAP gateway sends its
/// clients through their queues; opaque outside this crate).
#[derive(Debug)]
pub struct Admin {
    pub(crate) request: Box<ServerRequest>,
    pub(crate) reply: Reply,
}

/// The caller's side of a request the socket task resolves.
pub(crate) struct AdminReply(pub(crate) Reply);

impl PendingReply for AdminReply {
    fn is_abandoned(&self) -> bool {
        self.0.is_closed()
    }

    fn complete(self: Box<Self>, response: Result<Packet, Unanswered>) {
        let response = match response {
            Ok(p) => Ok(ServerResponse::from_packet(&p)),
            Err(Unanswered) => Err(RequestError::Unanswered),
        };
        // A caller that gave up has dropped its receiver: nothing to tell.
        let _ = self.0.send(response);
    }
}

/// Live clients by client id.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    clients: Mutex<HashMap<String, ClientSender<Admin>>>,
}

impl Directory {
    pub(crate) fn insert(&self, client_id: &str, tx: ClientSender<Admin>) {
        if let Ok(mut m) = self.clients.lock() {
            m.insert(client_id.to_owned(), tx);
        }
    }

    /// Removes the entry only if it is still `tx`'s (a newer client may have the id now).
    pub(crate) fn remove(&self, client_id: &str, tx: &ClientSender<Admin>) {
        if let Ok(mut m) = self.clients.lock() {
            if m.get(client_id).is_some_and(|t| t.same_channel(tx)) {
                m.remove(client_id);
            }
        }
    }

    fn get(&self, client_id: &str) -> Option<ClientSender<Admin>> {
        let mut m = self.clients.lock().ok()?;
        let tx = m.get(client_id)?.clone();
        if tx.is_closed() {
            // Its task ended without the socket task reaping it (the gateway was stopped).
            m.remove(client_id);
            return None;
        }
        Some(tx)
    }
}

/// Sends requests to the gateway's clients. Cheap to clone; give the same one to every
/// [`CoapGateway`](crate::CoapGateway) instance so it follows restarts.
#[derive(Debug, Clone, Default)]
pub struct CoapRequester {
    pub(crate) directory: Arc<Directory>,
}

impl CoapRequester {
    /// A requester with an empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `request` as CON to the connected client `client_id` (namespace
    /// [`NAMESPACE`](crate::NAMESPACE)) and waits up to `timeout` for its response.
    pub async fn request(
        &self,
        client_id: &str,
        request: ServerRequest,
        timeout: Duration,
    ) -> Result<ServerResponse, RequestError> {
        if request.token.len() > 8 {
            return Err(RequestError::Invalid("token longer than 8 bytes"));
        }
        let tx = self
            .directory
            .get(client_id)
            .ok_or(RequestError::NotFound)?;
        let (reply, rx) = oneshot::channel();
        let sent = tokio::time::timeout(timeout, async {
            let request = Box::new(request);
            tx.send(Inbound::Local(Admin { request, reply }))
                .await
                .map_err(|_| RequestError::NotFound)?;
            rx.await.map_err(|_| RequestError::Closed)?
        })
        .await;
        sent.unwrap_or(Err(RequestError::Timeout))
    }
}

/// The packet for `request` (type, message id and token are the transport's).
pub(crate) fn packet(request: &ServerRequest) -> Packet {
    let mut p = Packet::new();
    crate::transport::wire::set_code(&mut p, request.method.code());
    for seg in &request.path {
        p.add_option(CoapOption::UriPath, seg.as_bytes().to_vec());
    }
    if let Some(cf) = request.content_format {
        crate::transport::wire::set_uint_option(&mut p, CoapOption::ContentFormat, u32::from(cf));
    }
    p.payload = request.payload.clone();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    fn req(token: &[u8]) -> ServerRequest {
        ServerRequest {
            method: Method::Put,
            token: token.to_vec(),
            path: vec!["a".into(), "b".into()],
            content_format: Some(50),
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn packet_carries_method_path_format_and_payload() {
        let p = packet(&req(b"t"));
        assert_eq!(crate::transport::wire::code_of(&p), 0x03);
        assert_eq!(
            crate::transport::wire::uri_path(&p),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            crate::transport::wire::uint_option(&p, CoapOption::ContentFormat),
            Some(Ok(50))
        );
        assert_eq!(p.payload, b"{}");
    }

    #[tokio::test]
    async fn unknown_client_and_long_token_are_refused() {
        let r = CoapRequester::new();
        let d = Duration::from_millis(10);
        assert_eq!(
            r.request("nobody", req(b"t"), d).await,
            Err(RequestError::NotFound)
        );
        assert_eq!(
            r.request("nobody", req(b"123456789"), d).await,
            Err(RequestError::Invalid("token longer than 8 bytes"))
        );
    }

    #[tokio::test]
    async fn silent_client_times_out_and_gone_client_is_not_found() {
        let r = CoapRequester::new();
        let (tx, rx) = mpsc::channel(1);
        r.directory.insert("c1", tx.clone());
        let d = Duration::from_millis(20);
        assert_eq!(
            r.request("c1", req(b"t"), d).await,
            Err(RequestError::Timeout)
        );
        drop(rx);
        assert_eq!(
            r.request("c1", req(b"t"), d).await,
            Err(RequestError::NotFound)
        );
        r.directory.remove("c1", &tx);
        assert!(r.directory.get("c1").is_none());
    }
}
