//! Our small sans-I/O view of one DTLS 1.2 server association, and its implementation over
//! `rtc-dtls` (webrtc-rs). The server task ([`super::server`]) only speaks this trait, so the
//! library can be swapped (e.g. for `dimpl`) by writing one more impl.
//!
//! Owns: the translation of the library's API and errors into [`AssocEvent`] and
//! [`AssocError`]. Must not know: sockets, clocks (every call gets `now`), or what the
//! application data means.

use super::PeerIdentity;
use rtc_dtls::config::HandshakeConfig;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// What feeding a datagram produced.
#[derive(Debug, PartialEq, Eq)]
pub enum AssocEvent {
    /// The handshake finished; application data may flow.
    Established,
    /// Decrypted application data.
    Data(Vec<u8>),
    /// The peer sent close_notify (our reply is queued).
    Closed,
}

/// Why an association ended in error. The message is the library's, for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AssocError(pub String);

/// One peer's DTLS state machine, server side.
pub trait Association: Send {
    /// Feeds one datagram received from the peer.
    fn handle_datagram(&mut self, now: Instant, data: &[u8])
        -> Result<Vec<AssocEvent>, AssocError>;
    /// Encrypts `data` as application data (queued until established).
    fn write(&mut self, now: Instant, data: &[u8]) -> Result<(), AssocError>;
    /// The next datagram to send to the peer.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// When [`Association::handle_timeout`] is next due (handshake retransmission).
    fn poll_timeout(&self) -> Option<Instant>;
    /// Retransmits the last flight when due; an error when retransmissions are exhausted.
    fn handle_timeout(&mut self, now: Instant) -> Result<(), AssocError>;
    /// Queues close_notify; the association is finished afterwards.
    fn close(&mut self, now: Instant);
    /// Who the peer proved to be, once established; `cn_as_username` is the listener's policy.
    fn identity(&self, cn_as_username: bool) -> PeerIdentity;
}

/// One `rtc-dtls` endpoint per peer: the library's endpoint multiplexes by address too, but its
/// timers are per address and its connection type keeps the handshake calls crate-private, so a
/// one-peer endpoint is the narrowest public surface that still gives per-peer deadlines.
pub struct RtcAssociation {
    endpoint: Endpoint,
    remote: SocketAddr,
}

impl RtcAssociation {
    /// A server association for `remote` on `local` with the listener's handshake config.
    pub fn new(local: SocketAddr, remote: SocketAddr, config: Arc<HandshakeConfig>) -> Self {
        RtcAssociation {
            endpoint: Endpoint::new(local, rtc_shared::TransportProtocol::UDP, Some(config)),
            remote,
        }
    }
}

impl Association for RtcAssociation {
    fn handle_datagram(
        &mut self,
        now: Instant,
        data: &[u8],
    ) -> Result<Vec<AssocEvent>, AssocError> {
        let events = self
            .endpoint
            .read(now, self.remote, None, bytes::BytesMut::from(data))
            .map_err(|e| AssocError(e.to_string()))?;
        Ok(events
            .into_iter()
            .filter_map(|e| match e {
                EndpointEvent::HandshakeComplete => Some(AssocEvent::Established),
                EndpointEvent::ApplicationData(d) => Some(AssocEvent::Data(d.to_vec())),
                EndpointEvent::PeerClosed => Some(AssocEvent::Closed),
                _ => None,
            })
            .collect())
    }

    fn write(&mut self, now: Instant, data: &[u8]) -> Result<(), AssocError> {
        self.endpoint
            .write(now, self.remote, data)
            .map_err(|e| AssocError(e.to_string()))
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.endpoint.poll_transmit().map(|t| t.message.to_vec())
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.endpoint.poll_timeout(&self.remote)
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), AssocError> {
        match self.endpoint.handle_timeout(self.remote, now) {
            Ok(()) => Ok(()),
            // Gone already (closed by the peer): nothing to retransmit.
            Err(rtc_shared::error::Error::InvalidRemoteAddress(_)) => Ok(()),
            Err(e) => Err(AssocError(e.to_string())),
        }
    }

    fn close(&mut self, now: Instant) {
        let _ = self.endpoint.stop(now, self.remote);
    }

    fn identity(&self, cn_as_username: bool) -> PeerIdentity {
        match self.endpoint.get_connection_state(self.remote) {
            Some(state) if !state.identity_hint.is_empty() => {
                PeerIdentity::Psk(String::from_utf8_lossy(&state.identity_hint).into_owned())
            }
            Some(state) => match state.peer_certificates.first() {
                Some(der) => PeerIdentity::Certificate {
                    common_name: super::common_name(der),
                    cn_as_username,
                },
                None => PeerIdentity::Anonymous,
            },
            None => PeerIdentity::Anonymous,
        }
    }
}
