//! Datagram listeners' sockets: one plain socket, or one per core sharing the port with
//! `SO_REUSEPORT` (the kernel spreads clients over the sockets by 4-tuple, so one client's
//! datagrams always reach the same socket and stay in order), each with a receive buffer large
//! enough for a fleet waking at once.
//!
//! Must not know: any protocol, or how a gateway reads its sockets.

use std::io;
use std::net::SocketAddr;
use tokio::net::UdpSocket;

/// Socket receive buffer asked for. The Linux default (~208 KB) holds only a few hundred small
/// datagrams (each is charged its skb overhead, ~2 KB), so 1,000 clients sending at once
/// overflow it and every lost CON, Register or QoS 1 PUBLISH waits for the client's
/// retransmission (2-3 s for CoAP). The kernel caps it at `net.core.rmem_max`.
pub const RECV_BUFFER: usize = 4 * 1024 * 1024;

/// Most sockets per listener with `per_core`.
pub const MAX_SOCKETS: usize = 8;

/// Binds a datagram listener on `addr`: with `per_core`, one socket per core (at most
/// [`MAX_SOCKETS`]) sharing the port with `SO_REUSEPORT`, or a single plain socket on one core
/// or where the option is refused; otherwise one plain socket. Every socket asks for
/// [`RECV_BUFFER`].
pub fn bind_udp(addr: SocketAddr, per_core: bool) -> io::Result<Vec<UdpSocket>> {
    let want = if per_core {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_SOCKETS)
    } else {
        1
    };
    let sockets = match want {
        1 => bind_one(addr)?,
        n => match bind_reuseport(addr, n) {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, %addr, "SO_REUSEPORT refused: one socket");
                bind_one(addr)?
            }
        },
    };
    for socket in &sockets {
        let sock = socket2::SockRef::from(socket);
        if let Err(e) = sock.set_recv_buffer_size(RECV_BUFFER) {
            tracing::debug!(%addr, error = %e, "cannot enlarge the receive buffer");
        }
        tracing::debug!(%addr, recv_buffer = ?sock.recv_buffer_size().ok(), "UDP socket");
    }
    Ok(sockets)
}

fn bind_one(addr: SocketAddr) -> io::Result<Vec<UdpSocket>> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(vec![UdpSocket::from_std(s)?])
}

fn bind_reuseport(addr: SocketAddr, n: usize) -> io::Result<Vec<UdpSocket>> {
    use socket2::{Domain, Protocol, Socket, Type};
    // With SO_REUSEPORT a second process of the same user could join the port and silently
    // take half of the clients; a plain bind first fails if anyone holds the port already.
    let mut at = std::net::UdpSocket::bind(addr)?.local_addr()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Socket::new(Domain::for_address(at), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.bind(&at.into())?;
        let std: std::net::UdpSocket = s.into();
        at = std.local_addr()?;
        out.push(UdpSocket::from_std(std)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listener's sockets share one port, and nobody else can join it: a second bind of
    /// the same address fails instead of silently taking a share of the clients.
    #[tokio::test]
    async fn sockets_share_one_port_that_no_one_else_can_join() {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let sockets = bind_udp(any, true).expect("bind");
        assert!(!sockets.is_empty() && sockets.len() <= MAX_SOCKETS);
        let ports: Vec<u16> = sockets
            .iter()
            .map(|s| s.local_addr().expect("bound").port())
            .collect();
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0), "{ports:?}");
        let taken = SocketAddr::from(([127, 0, 0, 1], ports[0]));
        assert!(
            bind_udp(taken, true).is_err(),
            "a second listener on the same port"
        );
        assert!(bind_udp(taken, false).is_err(), "nor a plain socket");
        drop(sockets);
        assert!(bind_udp(taken, true).is_ok(), "free again once closed");
    }

    #[tokio::test]
    async fn one_socket_unless_per_core() {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let sockets = bind_udp(any, false).expect("bind");
        assert_eq!(sockets.len(), 1);
        let buffer = socket2::SockRef::from(&sockets[0])
            .recv_buffer_size()
            .expect("readable");
        // Linux reports double what was granted; the grant itself is capped by rmem_max.
        assert!(buffer > 0);
    }
}
