//! Opening MQTT connections: the TCP socket bound to one of several 127.0.0.x source addresses,
//! the CONNECT/CONNACK handshake and an optional SUBSCRIBE/SUBACK, and raising the process's
//! file limit.
//!
//! Owns: telling "we ran out of file descriptors or source ports" ([`ConnectError::Limit`],
//! a clean stop for the caller) apart from a broker refusing or failing a connection.

use crate::wire::{self, Frame};
use bytes::{Buf, BytesMut};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long a handshake step may take before the connection counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// This process hit its file limit (EMFILE/ENFILE) or ran out of local ports
    /// (EADDRNOTAVAIL): stop opening connections.
    Limit(io::Error),
    /// The broker refused or failed the connection.
    Failed(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Limit(e) => write!(f, "local limit reached: {e}"),
            ConnectError::Failed(e) => write!(f, "{e}"),
        }
    }
}

fn classify(e: io::Error) -> ConnectError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL) => ConnectError::Limit(e),
        _ => ConnectError::Failed(e.to_string()),
    }
}

/// Where connections go and where they come from.
#[derive(Debug, Clone)]
pub struct Target {
    /// The broker.
    pub broker: SocketAddr,
    /// Local addresses to spread connections over (empty: let the kernel choose).
    pub sources: Vec<IpAddr>,
    /// Keepalive sent in CONNECT, seconds.
    pub keep_alive: u16,
    /// Username and password sent in CONNECT (benchmarks of the authenticators); `{i}` in
    /// the username is the connection's number, so each connection can be its own user.
    pub credentials: Option<(String, String)>,
}

impl Target {
    /// `count` source addresses 127.0.0.1, 127.0.0.2, ... when the broker is on loopback.
    pub fn new(broker: SocketAddr, count: u8, keep_alive: u16) -> Self {
        let sources = if broker.ip().is_loopback() && broker.is_ipv4() {
            (1..=count.max(1))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect()
        } else {
            Vec::new()
        };
        Target {
            broker,
            sources,
            keep_alive,
            credentials: None,
        }
    }

    /// Opens TCP connection number `n` (its source address is picked round-robin).
    pub async fn tcp(&self, n: usize) -> Result<TcpStream, ConnectError> {
        let socket = if self.broker.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(classify)?;
        if let Some(ip) = self.sources.get(n % self.sources.len().max(1)) {
            socket.bind(SocketAddr::new(*ip, 0)).map_err(classify)?;
        }
        let stream = socket.connect(self.broker).await.map_err(classify)?;
        stream.set_nodelay(true).map_err(classify)?;
        Ok(stream)
    }

    /// Opens a connection and completes CONNECT (clean session) and, with `subscribe`, one
    /// SUBSCRIBE. Bytes read past the handshake are left in `rbuf`.
    pub async fn mqtt(
        &self,
        n: usize,
        client_id: &str,
        subscribe: Option<(&str, u8)>,
        rbuf: &mut BytesMut,
    ) -> Result<TcpStream, ConnectError> {
        self.mqtt_session(n, client_id, true, subscribe, rbuf).await
    }

    /// As [`Target::mqtt`], with the clean-session flag given: `clean = false` asks for a
    /// persistent session (MQTT 3.1.1 §3.1.2.4), whose QoS 1/2 state the broker must keep.
    pub async fn mqtt_session(
        &self,
        n: usize,
        client_id: &str,
        clean: bool,
        subscribe: Option<(&str, u8)>,
        rbuf: &mut BytesMut,
    ) -> Result<TcpStream, ConnectError> {
        let mut stream = self.tcp(n).await?;
        let mut out = BytesMut::with_capacity(64);
        let user = self
            .credentials
            .as_ref()
            .map(|(u, p)| (u.replace("{i}", &n.to_string()), p.as_str()));
        let creds = user.as_ref().map(|(u, p)| (u.as_str(), *p));
        wire::connect_as(&mut out, client_id, self.keep_alive, clean, creds);
        // SUBSCRIBE only after CONNACK, as ordinary clients do (MQTT-3.1.4 would allow
        // pipelining, but the tool measures what real clients see).
        let step = async {
            stream.write_all(&out).await.map_err(classify)?;
            loop {
                match next_frame(&mut stream, rbuf).await? {
                    (Frame::ConnAck { code: 0 }, n) => {
                        rbuf.advance(n);
                        break;
                    }
                    (Frame::ConnAck { code }, _) => {
                        let e = format!("CONNACK refused, code {code}");
                        return Err(ConnectError::Failed(e));
                    }
                    (_, n) => rbuf.advance(n),
                }
            }
            let Some((filter, qos)) = subscribe else {
                return Ok(());
            };
            out.clear();
            wire::subscribe(&mut out, 1, filter, qos);
            stream.write_all(&out).await.map_err(classify)?;
            loop {
                match next_frame(&mut stream, rbuf).await? {
                    (Frame::SubAck { codes, .. }, n) => {
                        if codes.iter().any(|c| *c >= 0x80) {
                            return Err(ConnectError::Failed("SUBACK refused".into()));
                        }
                        rbuf.advance(n);
                        return Ok(());
                    }
                    (_, n) => rbuf.advance(n),
                }
            }
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, step).await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ConnectError::Failed("handshake timed out".into())),
        }
    }
}

/// Reads until one whole frame is buffered; returns it with its length (not yet consumed).
async fn next_frame<'a>(
    stream: &mut TcpStream,
    rbuf: &'a mut BytesMut,
) -> Result<(Frame<'a>, usize), ConnectError> {
    loop {
        // Checked without borrowing across the read (the frame borrows rbuf).
        if matches!(wire::parse(rbuf), Ok(Some(_))) {
            break;
        }
        if let Err(e) = wire::parse(rbuf) {
            return Err(ConnectError::Failed(e.to_string()));
        }
        match stream.read_buf(rbuf).await {
            Ok(0) => return Err(ConnectError::Failed("closed by broker".into())),
            Ok(_) => {}
            Err(e) => return Err(classify(e)),
        }
    }
    match wire::parse(rbuf) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(ConnectError::Failed("incomplete frame".into())),
        Err(e) => Err(ConnectError::Failed(e.to_string())),
    }
}

/// Raises the soft file limit to the hard limit; returns the new soft limit.
pub fn raise_file_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|_| {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_told_apart_from_failures() {
        for code in [libc::EMFILE, libc::ENFILE, libc::EADDRNOTAVAIL] {
            assert!(matches!(
                classify(io::Error::from_raw_os_error(code)),
                ConnectError::Limit(_)
            ));
        }
        assert!(matches!(
            classify(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
            ConnectError::Failed(_)
        ));
    }

    #[test]
    fn sources_only_on_loopback() {
        let t = Target::new(
            "127.0.0.1:1883".parse().unwrap_or_else(|e| panic!("{e}")),
            3,
            60,
        );
        assert_eq!(t.sources.len(), 3);
        assert_eq!(t.sources[2], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
        let t = Target::new(
            "10.0.0.1:1883".parse().unwrap_or_else(|e| panic!("{e}")),
            3,
            60,
        );
        assert!(t.sources.is_empty());
    }
}
