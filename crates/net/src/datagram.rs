//! The datagram transport the UDP gateways read and write: either a plain UDP socket or a DTLS
//! listener's decrypted side ([`DatagramSocket::Dtls`]), so a gateway's receive path and its
//! replies are the same code over both, and the gateway never sees a DTLS record.
//!
//! Must not know: any protocol.

use crate::dtls::PeerIdentity;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// A decrypted datagram and its peer.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) data: Vec<u8>,
    pub(crate) peer: SocketAddr,
}

/// The identities of a DTLS socket's established peers, by address (written by the DTLS task,
/// read by the gateway when a client authenticates).
#[derive(Debug, Clone, Default)]
pub struct PeerTable(Arc<RwLock<HashMap<SocketAddr, PeerIdentity>>>);

impl PeerTable {
    pub(crate) fn insert(&self, addr: SocketAddr, id: PeerIdentity) {
        self.0.write().insert(addr, id);
    }

    pub(crate) fn remove(&self, addr: &SocketAddr) {
        self.0.write().remove(addr);
    }

    /// The identity of the peer at `addr`, if it completed a handshake.
    pub fn get(&self, addr: &SocketAddr) -> Option<PeerIdentity> {
        self.0.read().get(addr).cloned()
    }

    /// Up to `limit` established peers and their identities.
    pub fn snapshot(&self, limit: usize) -> Vec<(SocketAddr, PeerIdentity)> {
        self.0
            .read()
            .iter()
            .take(limit)
            .map(|(a, i)| (*a, i.clone()))
            .collect()
    }

    /// How many peers are established.
    pub fn len(&self) -> usize {
        self.0.read().len()
    }

    /// Whether no peer is established.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A gateway's datagram socket.
#[derive(Debug)]
pub enum DatagramSocket {
    /// Plain UDP.
    Plain(Arc<UdpSocket>),
    /// The decrypted side of a DTLS listener.
    Dtls(DtlsSocket),
}

/// The gateway's side of a DTLS server task.
#[derive(Debug)]
pub struct DtlsSocket {
    rx: mpsc::Receiver<Received>,
    sender: DatagramSender,
    local: SocketAddr,
}

impl DtlsSocket {
    pub(crate) fn new(
        rx: mpsc::Receiver<Received>,
        tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
        peers: PeerTable,
        local: SocketAddr,
    ) -> Self {
        DtlsSocket {
            rx,
            sender: DatagramSender::Dtls { tx, peers },
            local,
        }
    }
}

impl DatagramSocket {
    /// Receives one datagram into `buf` (truncated to its size). Cancel-safe. On DTLS, once the
    /// server task has stopped (the listener is being cancelled) it waits forever: the caller's
    /// cancellation branch ends its loop, and a reader never spins on a closed queue.
    pub async fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            DatagramSocket::Plain(s) => s.recv_from(buf).await,
            DatagramSocket::Dtls(d) => match d.rx.recv().await {
                Some(r) => {
                    let n = r.data.len().min(buf.len());
                    buf[..n].copy_from_slice(&r.data[..n]);
                    Ok((n, r.peer))
                }
                None => std::future::pending().await,
            },
        }
    }

    /// Where replies go.
    pub fn sender(&self) -> DatagramSender {
        match self {
            DatagramSocket::Plain(s) => DatagramSender::Plain(s.clone()),
            DatagramSocket::Dtls(d) => d.sender.clone(),
        }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            DatagramSocket::Plain(s) => s.local_addr(),
            DatagramSocket::Dtls(d) => Ok(d.local),
        }
    }

    /// The plain socket, when this is one (for system-call batching and broadcast).
    pub fn as_plain(&self) -> Option<&Arc<UdpSocket>> {
        match self {
            DatagramSocket::Plain(s) => Some(s),
            DatagramSocket::Dtls(_) => None,
        }
    }
}

/// Sends a gateway's datagrams: plain, or encrypted by the DTLS server task. Cheap to clone.
#[derive(Debug, Clone)]
pub enum DatagramSender {
    /// Plain UDP.
    Plain(Arc<UdpSocket>),
    /// To the DTLS task, which encrypts for the peer's association.
    Dtls {
        /// The task's queue.
        tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
        /// Peer identities.
        peers: PeerTable,
    },
}

impl DatagramSender {
    /// Sends `data` to `to`.
    pub async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            DatagramSender::Plain(s) => s.send_to(data, to).await,
            DatagramSender::Dtls { tx, .. } => tx
                .send((data.to_vec(), to))
                .await
                .map(|()| data.len())
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "DTLS server stopped")),
        }
    }

    /// What the DTLS handshake of the peer at `addr` proved; `None` on plain UDP.
    pub fn peer_identity(&self, addr: &SocketAddr) -> Option<PeerIdentity> {
        match self {
            DatagramSender::Plain(_) => None,
            DatagramSender::Dtls { peers, .. } => peers.get(addr),
        }
    }

    /// Whether this is a DTLS listener.
    pub fn is_dtls(&self) -> bool {
        matches!(self, DatagramSender::Dtls { .. })
    }
}
