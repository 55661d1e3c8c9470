//! What the UDP clients (`sn-pub`, `coap-pub`, `coap-observe`) share: a socket per client bound
//! to one of the 127.0.0.x source addresses and connected to the gateway, pacing at a fixed rate,
//! and a request/response exchange with retransmission.
//!
//! Owns: the retransmission schedule of the tool's own requests (a timeout per attempt, doubled
//! after every retransmission as RFC 7252 §4.2 does; MQTT-SN 1.2 §6.13 only asks for a fixed
//! Tretry, so `sn-pub` passes a factor of 1).

use crate::client::{ConnectError, Target};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Several equal-sized datagrams handed to the kernel in one system call with UDP segmentation
/// offload (Linux `UDP_SEGMENT`, through quinn-udp): the kernel splits the buffer, and the peer
/// receives ordinary datagrams, one per message. On a machine the tool shares with the gateway
/// this leaves the gateway the CPU that per-datagram `send` calls would burn.
pub struct Burst {
    state: quinn_udp::UdpSocketState,
    max: usize,
    peer: SocketAddr,
}

impl Burst {
    /// `None` where the platform cannot segment (then the caller sends one by one).
    pub fn new(sock: &UdpSocket, want: usize) -> Option<Self> {
        let state = quinn_udp::UdpSocketState::new(sock.into()).ok()?;
        let peer = sock.peer_addr().ok()?;
        let max = want.min(state.max_gso_segments());
        (max > 1).then_some(Burst { state, max, peer })
    }

    /// Most datagrams per call.
    pub fn max_segments(&self) -> usize {
        self.max
    }

    /// Sends `buf`, a run of datagrams of `segment` bytes each, to the socket's peer.
    pub async fn send(&self, sock: &UdpSocket, buf: &[u8], segment: usize) -> io::Result<()> {
        let transmit = quinn_udp::Transmit {
            destination: self.peer,
            ecn: None,
            contents: buf,
            segment_size: Some(segment),
            src_ip: None,
        };
        loop {
            sock.writable().await?;
            match sock.try_io(Interest::WRITABLE, || {
                self.state.try_send(sock.into(), &transmit)
            }) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Opens UDP socket number `n` (source address round-robin over the target's sources) and
/// connects it to `gateway`, so it only receives the gateway's datagrams.
pub async fn socket(
    target: &Target,
    n: usize,
    gateway: SocketAddr,
) -> Result<UdpSocket, ConnectError> {
    let local = match target.sources.get(n % target.sources.len().max(1)) {
        Some(ip) if gateway.is_ipv4() => SocketAddr::new(*ip, 0),
        _ if gateway.is_ipv4() => SocketAddr::from(([0, 0, 0, 0], 0)),
        _ => SocketAddr::from(([0u16; 8], 0)),
    };
    let sock = UdpSocket::bind(local).await.map_err(classify)?;
    sock.connect(gateway).await.map_err(classify)?;
    Ok(sock)
}

fn classify(e: io::Error) -> ConnectError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL) => ConnectError::Limit(e),
        _ => ConnectError::Failed(e.to_string()),
    }
}

/// How many messages a fixed-rate sender may send now: `rate` per second since `start`, one
/// at once at the start; `u64::MAX` when the rate is 0 (unlimited).
pub fn budget(start: Instant, now: Instant, rate: f64, sent: u64) -> u64 {
    if rate <= 0.0 {
        return u64::MAX;
    }
    let allowed = (now - start).as_secs_f64() * rate + 1.0;
    (allowed as u64).saturating_sub(sent)
}

/// When the next message is due at `rate` after `sent` messages (`None` when unlimited).
pub fn next_due(start: Instant, rate: f64, sent: u64) -> Option<Instant> {
    (rate > 0.0).then(|| start + Duration::from_secs_f64(sent as f64 / rate))
}

/// Retransmission timeouts: `first`, then multiplied by `factor` after each retransmission,
/// at most `max_retransmit` retransmissions.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Timeout of the first attempt.
    pub first: Duration,
    /// Multiplier per retransmission (2 for CoAP, 1 for MQTT-SN's fixed Tretry).
    pub factor: u32,
    /// Retransmissions before giving up.
    pub max_retransmit: u32,
}

impl Retry {
    /// The timeout of attempt `attempt` (0 = the first transmission), or `None` past the last.
    pub fn timeout(&self, attempt: u32) -> Option<Duration> {
        if attempt > self.max_retransmit {
            return None;
        }
        let mut t = self.first;
        for _ in 0..attempt {
            t = t.saturating_mul(self.factor);
        }
        Some(t)
    }
}

/// Why an exchange failed.
#[derive(Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// No answer after every retransmission.
    Timeout,
    /// The socket failed.
    Io(String),
    /// The answer refused the request.
    Refused(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Timeout => write!(f, "no answer after retransmissions"),
            ExchangeError::Io(e) => write!(f, "{e}"),
            ExchangeError::Refused(e) => write!(f, "{e}"),
        }
    }
}

/// What a matcher makes of one received datagram during an exchange.
pub enum Reply<T> {
    /// The exchange is over.
    Done(T),
    /// Not the answer: keep waiting.
    Ignore,
    /// Answered, but the real answer comes later (CoAP empty ACK): stop retransmitting.
    Pending,
}

/// Sends `request`, waits for a datagram `matcher` accepts, retransmitting per `retry`
/// (`resend` is what goes out on retransmissions, e.g. with MQTT-SN's DUP flag set). Returns the
/// answer and the number of retransmissions.
pub async fn exchange<T>(
    sock: &UdpSocket,
    request: &[u8],
    resend: &[u8],
    retry: Retry,
    mut matcher: impl FnMut(&[u8]) -> Reply<T>,
) -> Result<(T, u64), ExchangeError> {
    let mut buf = vec![0u8; 2048];
    let mut attempt = 0u32;
    let io = |e: io::Error| ExchangeError::Io(e.to_string());
    sock.send(request).await.map_err(io)?;
    let mut pending = false;
    loop {
        let Some(wait) = retry.timeout(attempt) else {
            return Err(ExchangeError::Timeout);
        };
        let deadline = Instant::now() + wait;
        loop {
            let r = tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await;
            let n = match r {
                Err(_) => break,
                // ICMP port unreachable (gateway not up yet) surfaces as an error: retry.
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => break,
                Ok(Err(e)) => return Err(io(e)),
                Ok(Ok(n)) => n,
            };
            match matcher(buf.get(..n).unwrap_or_default()) {
                Reply::Done(t) => return Ok((t, u64::from(attempt))),
                Reply::Ignore => {}
                Reply::Pending => pending = true,
            }
        }
        attempt += 1;
        if !pending && retry.timeout(attempt).is_some() {
            sock.send(resend).await.map_err(io)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst reaches the peer as separate datagrams, in order, or the platform has no
    /// segmentation offload and `Burst::new` says so (the caller then sends one by one).
    #[tokio::test]
    async fn a_burst_arrives_as_separate_datagrams() {
        let rx = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("loopback socket");
        let tx = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("loopback socket");
        tx.connect(rx.local_addr().expect("loopback socket"))
            .await
            .expect("loopback socket");
        let Some(burst) = Burst::new(&tx, 8) else {
            return;
        };
        assert_eq!(burst.max_segments(), 8);
        let buf: Vec<u8> = (0u8..8).flat_map(|i| [i; 30]).collect();
        burst.send(&tx, &buf, 30).await.expect("loopback socket");
        let mut got = Vec::new();
        let mut one = [0u8; 100];
        for _ in 0..8 {
            let n = tokio::time::timeout(Duration::from_secs(5), rx.recv(&mut one))
                .await
                .expect("datagram within 5 s")
                .expect("loopback socket");
            assert_eq!(n, 30, "one message per datagram");
            got.push(one[0]);
            assert!(one[..n].iter().all(|b| *b == one[0]));
        }
        assert_eq!(got, (0u8..8).collect::<Vec<_>>());
    }

    #[test]
    fn retransmission_schedule_doubles_and_stops() {
        let r = Retry {
            first: Duration::from_secs(2),
            factor: 2,
            max_retransmit: 4,
        };
        let got: Vec<_> = (0..6).map(|a| r.timeout(a).map(|d| d.as_secs())).collect();
        assert_eq!(got, [Some(2), Some(4), Some(8), Some(16), Some(32), None]);
        let fixed = Retry { factor: 1, ..r };
        assert_eq!(fixed.timeout(3), Some(Duration::from_secs(2)));
    }

    #[test]
    fn budget_paces_at_the_rate() {
        let t0 = Instant::now();
        assert_eq!(budget(t0, t0, 0.0, 5), u64::MAX);
        assert_eq!(budget(t0, t0, 100.0, 0), 1);
        assert_eq!(budget(t0, t0 + Duration::from_millis(500), 100.0, 10), 41);
        assert_eq!(budget(t0, t0, 100.0, 3), 0);
        assert_eq!(next_due(t0, 10.0, 5), Some(t0 + Duration::from_millis(500)));
        assert_eq!(next_due(t0, 0.0, 5), None);
    }

    #[tokio::test]
    async fn exchange_retransmits_until_answered() {
        let gw = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let gw_addr = gw.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let target = Target::new(gw_addr, 1, 60);
        let sock = socket(&target, 0, gw_addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The "gateway" ignores the first datagram and answers the retransmission.
        tokio::spawn(async move {
            let mut buf = [0u8; 16];
            let mut seen = 0;
            while let Ok((n, from)) = gw.recv_from(&mut buf).await {
                seen += 1;
                if seen == 2 {
                    let _ = gw.send_to(&buf[..n], from).await;
                }
            }
        });
        let retry = Retry {
            first: Duration::from_millis(50),
            factor: 1,
            max_retransmit: 10,
        };
        let r = exchange(&sock, b"a", b"b", retry, |d| {
            if d == b"b" {
                Reply::Done(())
            } else {
                Reply::Ignore
            }
        })
        .await;
        assert_eq!(r, Ok(((), 1)));
    }
}
