//! Batched datagram receive: up to [`BATCH`] datagrams per system call with `recvmmsg`
//! (through nix's safe wrapper), so a busy listener pays the system call once per batch rather
//! than once per datagram.
//!
//! Owns: the receive buffers of one socket. Must not know: what the datagrams mean.

use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;
/// Room for the largest MQTT-SN message (3-byte length form: 65,535 bytes).
const SLOT: usize = 65_536;

/// One socket's receive buffers.
pub(crate) struct Batch {
    slots: Vec<Vec<u8>>,
    got: Vec<(usize, Option<SocketAddr>)>,
}

impl Batch {
    pub(crate) fn new() -> Self {
        Batch {
            // Zeroed allocations of this size are mapped lazily: only the bytes the kernel
            // writes are ever backed by memory.
            slots: (0..BATCH).map(|_| vec![0u8; SLOT]).collect(),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Takes what the socket holds now, without waiting: `Ok(0)` when it was empty.
    pub(crate) fn try_recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let fd = socket.as_raw_fd();
        let Batch { slots, got } = self;
        got.clear();
        let r = socket.try_io(Interest::READABLE, || {
            // nix's headers hold raw pointers (not `Send`), so they live for one call only:
            // two allocations per batch of up to 32 datagrams.
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = slots
                .iter_mut()
                .map(|s| [IoSliceMut::new(s.as_mut_slice())])
                .collect();
            let msgs = recvmmsg(
                fd,
                &mut headers,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            for m in msgs {
                if m.flags.contains(MsgFlags::MSG_TRUNC) {
                    // Larger than any MQTT-SN message: not ours to parse.
                    got.push((0, None));
                    continue;
                }
                got.push((m.bytes, m.address.as_ref().and_then(to_std)));
            }
            Ok(())
        });
        match r {
            Ok(()) => Ok(self.got.len()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Datagram `i` of the last batch and its sender (`None` for one to drop: truncated, or a
    /// sender address that is not IP).
    pub(crate) fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (n, from) = self.got.get(i)?;
        let from = (*from)?;
        Some((self.slots.get(i)?.get(..*n)?, from))
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}
