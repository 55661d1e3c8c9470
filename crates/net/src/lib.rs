//! Shared networking for every gateway and the dashboard: the gateway contract on the network
//! side ([`GatewayDescriptor`], [`BoundListener`], [`Gateway`]), binding listeners ([`bind`],
//! [`listen`], [`bind_udp`]), the TCP accept loop ([`accept_loop`]), TLS ([`tls`]), the one
//! admission limiter ([`Admission`] under [`ListenerLimits`]), DTLS for the datagram listeners
//! ([`dtls`], seen by gateways as a [`DatagramSocket`]), and the drivers' clock ([`clock`]:
//! `now`, `sleep_until`).
//!
//! Owns: sockets, listener limits and their meaning on both transports (stream listeners pause
//! accepting over `max_conn_rate`, datagram listeners refuse the new client), accept back-off,
//! TLS configuration and handshakes, DTLS associations.
//! Must not know: any protocol, any gateway, the bus or the config; gateways depend on it,
//! never the reverse.

mod accept;
mod admission;
pub mod clock;
mod conn_rate;
mod datagram;
pub mod dtls;
mod gateway;
pub mod tls;
mod udp;

pub use accept::{accept_loop, listen, ACCEPT_BACKLOG};
pub use admission::{Admission, ListenerLimits, Permit, Refusal};
pub use datagram::{DatagramSender, DatagramSocket, DtlsSocket, PeerTable};
pub use dtls::{DtlsListener, PeerIdentity};
pub use gateway::{
    any_v4, bind, BoundListener, BoundSocket, Gateway, GatewayDescriptor, ListenerKind,
    ListenerParts, ListenerSpec, ServeError, ServeFuture,
};
pub use tls::TlsListener;
pub use udp::{bind_udp, MAX_SOCKETS, RECV_BUFFER};
