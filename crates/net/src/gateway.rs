//! The gateway contract on the network side: what a gateway crate declares about itself (a
//! [`GatewayDescriptor`] constant: name, namespace, protocol names, the listeners it offers and
//! their default addresses) and the one way the binary hands it a bound listener to serve
//! ([`Gateway::serve`] with a [`BoundListener`]).
//!
//! The binary keeps the one table of descriptors; start-up, the run-time runner, the admin API
//! and the config checks all read it, so a new protocol is a new crate plus a line there.
//!
//! Must not know: any gateway, the bus, or how the config is loaded.

use crate::admission::ListenerLimits;
use crate::datagram::DatagramSocket;
use crate::dtls::DtlsListener;
use crate::tls::TlsListener;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::Arc;
use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How a listener carries its protocol (EMQX's listener types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Ssl,
    /// WebSocket over TCP.
    Ws,
    /// WebSocket over TLS.
    Wss,
    /// UDP datagrams.
    Udp,
    /// DTLS 1.2 over UDP (the gateway sees the decrypted datagrams).
    Dtls,
}

impl ListenerKind {
    /// Every kind, in the order listeners are started and listed.
    pub const ALL: [ListenerKind; 6] = [
        ListenerKind::Tcp,
        ListenerKind::Ssl,
        ListenerKind::Ws,
        ListenerKind::Wss,
        ListenerKind::Udp,
        ListenerKind::Dtls,
    ];

    /// The name in listener ids and config tables: `tcp`, `ssl`, `ws`, `wss`, `udp`, `dtls`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Ssl => "ssl",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
            ListenerKind::Udp => "udp",
            ListenerKind::Dtls => "dtls",
        }
    }

    /// The kind named `s` (see [`ListenerKind::as_str`]).
    pub fn parse(s: &str) -> Option<ListenerKind> {
        ListenerKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether it accepts connections (TCP underneath) rather than datagrams.
    pub const fn is_stream(self) -> bool {
        !matches!(self, ListenerKind::Udp | ListenerKind::Dtls)
    }

    /// Whether it needs a certificate and key.
    pub const fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Ssl | ListenerKind::Wss)
    }

    /// Whether it needs an HTTP upgrade path.
    pub const fn is_websocket(self) -> bool {
        matches!(self, ListenerKind::Ws | ListenerKind::Wss)
    }
}

impl std::fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One listener a gateway offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerSpec {
    /// Its transport.
    pub kind: ListenerKind,
    /// Its name within the kind (the last part of its id); `default` for every listener today.
    pub name: &'static str,
    /// Where it listens unless configured otherwise (the config's default agrees; the binary
    /// tests that).
    pub default_bind: SocketAddr,
    /// UDP: one `SO_REUSEPORT` socket per core (at most 8) instead of one socket; the gateway
    /// must then serve every socket it is given.
    pub socket_per_core: bool,
}

impl ListenerSpec {
    /// The `default` listener of `kind` on `0.0.0.0:<port>`, one socket.
    pub const fn default_on(kind: ListenerKind, port: u16) -> ListenerSpec {
        ListenerSpec {
            kind,
            name: "default",
            default_bind: any_v4(port),
            socket_per_core: false,
        }
    }

    /// The same listener with one `SO_REUSEPORT` socket per core (UDP).
    pub const fn per_core(self) -> ListenerSpec {
        ListenerSpec {
            socket_per_core: true,
            ..self
        }
    }
}

/// `0.0.0.0:<port>`, usable in constants.
pub const fn any_v4(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
}

/// What the binary, the admin API and the config checks need to know about a gateway. Each
/// gateway crate exports one as `DESCRIPTOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayDescriptor {
    /// Short name: the config section (`[gateway.<name>]`; MQTT's listeners are
    /// `[listeners.*]`), the admin API path segment and the first part of listener ids.
    pub name: &'static str,
    /// The label of the client-id namespace its sessions live in on the bus.
    pub namespace: &'static str,
    /// The `proto_name` its clients report: the `/api/v5/clients?proto_name=` value and the
    /// Prometheus `protocol` label.
    pub proto_name: &'static str,
    /// The name people read (dashboard).
    pub display_name: &'static str,
    /// Listed under `/api/v5/gateways` and started or stopped there, as EMQX's gateways are
    /// (MQTT is the broker itself, not one of them).
    pub emqx_gateway: bool,
    /// The listeners it can serve, in start order.
    pub listeners: &'static [ListenerSpec],
}

impl GatewayDescriptor {
    /// The descriptor of an EMQX-style gateway (listed under `/api/v5/gateways`) whose display
    /// name is its `proto_name`; [`display_name`](Self::display_name) and
    /// [`not_emqx_gateway`](Self::not_emqx_gateway) change those. A `const fn`, so each
    /// gateway's `DESCRIPTOR` is one call with its own values.
    pub const fn new(
        name: &'static str,
        namespace: &'static str,
        proto_name: &'static str,
        listeners: &'static [ListenerSpec],
    ) -> GatewayDescriptor {
        GatewayDescriptor {
            name,
            namespace,
            proto_name,
            display_name: proto_name,
            emqx_gateway: true,
            listeners,
        }
    }

    /// The same descriptor with another display name.
    pub const fn display_name(self, display_name: &'static str) -> GatewayDescriptor {
        GatewayDescriptor {
            display_name,
            ..self
        }
    }

    /// The same descriptor, not listed under `/api/v5/gateways` (the MQTT broker itself).
    pub const fn not_emqx_gateway(self) -> GatewayDescriptor {
        GatewayDescriptor {
            emqx_gateway: false,
            ..self
        }
    }

    /// The id of one of its listeners: `<name>:<kind>:<listener name>`, e.g.
    /// `mqttsn:udp:default`; it keys the ready file and the admin API's listener lists.
    pub fn listener_id(&self, spec: &ListenerSpec) -> String {
        format!("{}:{}:{}", self.name, spec.kind, spec.name)
    }

    /// Its listener of `kind`, if it offers one.
    pub fn listener(&self, kind: ListenerKind) -> Option<&'static ListenerSpec> {
        self.listeners.iter().find(|l| l.kind == kind)
    }
}

/// A bound socket, before anyone serves it.
#[derive(Debug)]
pub enum BoundSocket {
    /// A listening TCP socket (tcp, ssl, ws, wss).
    Stream(TcpListener),
    /// One or more UDP sockets sharing an address (see [`ListenerSpec::socket_per_core`]).
    Datagram(Vec<UdpSocket>),
}

impl BoundSocket {
    /// The address it is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            BoundSocket::Stream(l) => l.local_addr(),
            BoundSocket::Datagram(v) => match v.first() {
                Some(s) => s.local_addr(),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no socket bound",
                )),
            },
        }
    }
}

/// Binds the socket(s) for `spec` on `addr`: [`crate::listen`] for stream kinds,
/// [`crate::bind_udp`] for UDP.
pub fn bind(spec: &ListenerSpec, addr: SocketAddr) -> std::io::Result<BoundSocket> {
    if spec.kind.is_stream() {
        crate::accept::listen(addr).map(BoundSocket::Stream)
    } else {
        crate::udp::bind_udp(addr, spec.socket_per_core).map(BoundSocket::Datagram)
    }
}

/// A bound listener with everything its gateway needs to serve it.
#[derive(Debug)]
pub struct BoundListener {
    /// Its id (see [`GatewayDescriptor::listener_id`]), for log lines.
    pub id: String,
    /// Its transport.
    pub kind: ListenerKind,
    /// The socket(s).
    pub socket: BoundSocket,
    /// Its admission limits.
    pub limits: ListenerLimits,
    /// The listener's own `enable_authn`, when its config has one (MQTT's listeners); `None`:
    /// the gateway's setting applies.
    pub enable_authn: Option<bool>,
    /// WebSocket kinds: the HTTP path of the upgrade.
    pub ws_path: Option<String>,
    /// TLS kinds: the acceptor.
    pub tls: Option<TlsListener>,
    /// DTLS kinds: the handshake configuration.
    pub dtls: Option<DtlsListener>,
}

/// The task serving one listener; it ends when the listener's cancellation token fires.
pub type ServeFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Why a gateway cannot serve a listener it was handed (a wiring mistake in the binary, caught
/// before anything runs).
#[derive(Debug, Error)]
pub enum ServeError {
    /// The gateway offers no listener of this kind.
    #[error("listener {id}: this gateway does not serve {kind} listeners")]
    Unsupported {
        /// the listener
        id: String,
        /// its kind
        kind: ListenerKind,
    },
    /// The listener lacks what its kind needs (a TLS acceptor, a WebSocket path, a socket of
    /// the right transport).
    #[error("listener {id}: {what} missing")]
    Missing {
        /// the listener
        id: String,
        /// what it lacks
        what: &'static str,
    },
}

/// A gateway, as the binary's runner drives it: built from its settings, handed each bound
/// listener of its descriptor.
pub trait Gateway: Send + Sync {
    /// The task that serves `listener` until `cancel` fires, spawning its connection or client
    /// tasks on `tracker` (which the runner waits on when it stops the gateway).
    fn serve(
        &self,
        listener: BoundListener,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<ServeFuture, ServeError>;
}

impl BoundListener {
    /// The listening TCP socket, or [`ServeError::Missing`].
    pub fn into_stream(self) -> Result<(TcpListener, ListenerParts), ServeError> {
        let (socket, parts) = self.split();
        match socket {
            BoundSocket::Stream(l) => Ok((l, parts)),
            BoundSocket::Datagram(_) => Err(ServeError::Missing {
                id: parts.id,
                what: "a TCP socket",
            }),
        }
    }

    /// The UDP sockets (at least one), or [`ServeError::Missing`].
    pub fn into_datagram(self) -> Result<(Vec<UdpSocket>, ListenerParts), ServeError> {
        let (socket, parts) = self.split();
        match socket {
            BoundSocket::Datagram(v) if !v.is_empty() => Ok((v, parts)),
            _ => Err(ServeError::Missing {
                id: parts.id,
                what: "a UDP socket",
            }),
        }
    }

    /// The datagram sockets a UDP gateway reads: plain for a `udp` listener; for a `dtls`
    /// listener, one DTLS server task per socket (spawned on `tracker`, stopped by `cancel`,
    /// new handshakes under the listener's limits) and its decrypted side.
    pub fn into_datagram_sockets(
        self,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<(Vec<DatagramSocket>, ListenerParts), ServeError> {
        let (sockets, mut parts) = self.into_datagram()?;
        if parts.kind != ListenerKind::Dtls {
            let plain = sockets
                .into_iter()
                .map(|s| DatagramSocket::Plain(Arc::new(s)));
            return Ok((plain.collect(), parts));
        }
        let dtls = parts.dtls.take().ok_or_else(|| ServeError::Missing {
            id: parts.id.clone(),
            what: "a DTLS configuration",
        })?;
        let mut out = Vec::with_capacity(sockets.len());
        // One admission for the listener, whatever its number of sockets.
        let admission = crate::Admission::new(parts.limits, tokio::time::Instant::now());
        for s in sockets {
            let socket = crate::dtls::serve(
                &dtls,
                &parts.id,
                s,
                admission.clone(),
                cancel.clone(),
                tracker,
            )
            .map_err(|_| ServeError::Missing {
                id: parts.id.clone(),
                what: "a bound UDP socket",
            })?;
            out.push(socket);
        }
        Ok((out, parts))
    }

    fn split(self) -> (BoundSocket, ListenerParts) {
        let BoundListener {
            id,
            kind,
            socket,
            limits,
            enable_authn,
            ws_path,
            tls,
            dtls,
        } = self;
        let parts = ListenerParts {
            id,
            kind,
            limits,
            enable_authn,
            ws_path,
            tls,
            dtls,
        };
        (socket, parts)
    }
}

/// A [`BoundListener`] without its socket.
#[derive(Debug)]
pub struct ListenerParts {
    /// See [`BoundListener::id`].
    pub id: String,
    /// See [`BoundListener::kind`].
    pub kind: ListenerKind,
    /// See [`BoundListener::limits`].
    pub limits: ListenerLimits,
    /// See [`BoundListener::enable_authn`].
    pub enable_authn: Option<bool>,
    /// See [`BoundListener::ws_path`].
    pub ws_path: Option<String>,
    /// See [`BoundListener::tls`].
    pub tls: Option<TlsListener>,
    /// See [`BoundListener::dtls`].
    pub dtls: Option<DtlsListener>,
}

impl ListenerParts {
    /// The TLS acceptor, or [`ServeError::Missing`].
    pub fn take_tls(&mut self) -> Result<TlsListener, ServeError> {
        self.tls.take().ok_or_else(|| ServeError::Missing {
            id: self.id.clone(),
            what: "a TLS acceptor",
        })
    }

    /// The WebSocket path, or [`ServeError::Missing`].
    pub fn take_ws_path(&mut self) -> Result<String, ServeError> {
        self.ws_path.take().ok_or_else(|| ServeError::Missing {
            id: self.id.clone(),
            what: "a WebSocket path",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: GatewayDescriptor = GatewayDescriptor {
        name: "demo",
        namespace: "demo",
        proto_name: "DEMO",
        display_name: "Demo",
        emqx_gateway: true,
        listeners: &[
            ListenerSpec::default_on(ListenerKind::Tcp, 1),
            ListenerSpec {
                socket_per_core: true,
                ..ListenerSpec::default_on(ListenerKind::Udp, 2)
            },
        ],
    };

    #[test]
    fn the_constructor_fills_what_the_literal_spells_out() {
        const BUILT: GatewayDescriptor = GatewayDescriptor::new(
            "demo",
            "demo",
            "DEMO",
            &[
                ListenerSpec::default_on(ListenerKind::Tcp, 1),
                ListenerSpec::default_on(ListenerKind::Udp, 2).per_core(),
            ],
        )
        .display_name("Demo");
        assert_eq!(BUILT, DEMO);
        let plain = GatewayDescriptor::new("x", "x", "X", &[]);
        assert_eq!(plain.display_name, "X");
        assert!(plain.emqx_gateway);
        assert!(!plain.not_emqx_gateway().emqx_gateway);
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for k in ListenerKind::ALL {
            assert_eq!(ListenerKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ListenerKind::parse("quic"), None);
        assert!(ListenerKind::Wss.is_tls() && ListenerKind::Wss.is_websocket());
        assert!(!ListenerKind::Udp.is_stream());
    }

    #[test]
    fn listener_ids_and_lookup() {
        let udp = DEMO.listener(ListenerKind::Udp).expect("udp");
        assert_eq!(DEMO.listener_id(udp), "demo:udp:default");
        assert_eq!(
            udp.default_bind,
            "0.0.0.0:2".parse::<SocketAddr>().expect("addr")
        );
        assert!(DEMO.listener(ListenerKind::Wss).is_none());
    }

    #[tokio::test]
    async fn bind_makes_the_socket_its_kind_needs() {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        for spec in DEMO.listeners {
            let socket = bind(spec, any).expect("bind");
            assert_ne!(socket.local_addr().expect("bound").port(), 0);
            let listener = BoundListener {
                id: DEMO.listener_id(spec),
                kind: spec.kind,
                socket,
                limits: ListenerLimits::UNLIMITED,
                enable_authn: None,
                ws_path: None,
                tls: None,
                dtls: None,
            };
            match spec.kind {
                ListenerKind::Udp => {
                    let (sockets, mut parts) = listener.into_datagram().expect("datagram");
                    assert!(!sockets.is_empty());
                    assert!(matches!(parts.take_tls(), Err(ServeError::Missing { .. })));
                }
                _ => {
                    let err = listener.into_datagram().expect_err("a stream socket");
                    assert_eq!(
                        err.to_string(),
                        "listener demo:tcp:default: a UDP socket missing"
                    );
                }
            }
        }
    }
}
