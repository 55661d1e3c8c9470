//! One subscribing connection: reads deliveries, answers the QoS 1/2 receiver flows (PUBACK;
//! PUBREC then PUBCOMP on PUBREL, MQTT 3.1.1 §4.3), records every stamped payload, and pings
//! so the broker's keepalive sees a live client even when the subscriber never publishes.
//!
//! Also holds idle connections for the `conn` scenario ([`hold`]).

use crate::stats::{self, Live, SubObservation};
use crate::wire::{self, Frame};
use bytes::{Buf, BytesMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How a subscriber behaves once connected.
#[derive(Debug, Clone)]
pub struct SubSpec {
    /// Keep one latency sample per message.
    pub keep_latency: bool,
    /// Keepalive in seconds (pings every half of it; 0 = never).
    pub keep_alive: u16,
}

fn ping_every(keep_alive: u16) -> Duration {
    if keep_alive == 0 {
        Duration::from_secs(24 * 3600)
    } else {
        Duration::from_millis(u64::from(keep_alive) * 500)
    }
}

/// Receives until `stop`; returns what it saw, or the error that ended it with what it saw.
pub async fn run(
    mut stream: TcpStream,
    mut rbuf: BytesMut,
    spec: SubSpec,
    live: Arc<Live>,
    stop: CancellationToken,
) -> (SubObservation, Option<String>) {
    let mut obs = SubObservation::default();
    let (mut rd, mut wr) = stream.split();
    let mut wbuf = BytesMut::with_capacity(4096);
    let mut ping = tokio::time::interval(ping_every(spec.keep_alive));
    ping.tick().await;
    let mut error = None;
    if let Err(e) = on_frames(&mut rbuf, &mut wbuf, &mut obs, &spec, &live) {
        return (obs, Some(e.to_string()));
    }
    loop {
        if rbuf.capacity() - rbuf.len() < 16 * 1024 {
            rbuf.reserve(64 * 1024);
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = wr.write_buf(&mut wbuf), if !wbuf.is_empty() => {
                if let Err(e) = r { error = Some(e.to_string()); break; }
            },
            r = rd.read_buf(&mut rbuf) => match r {
                Ok(0) => { error = Some("closed by broker".into()); break; }
                Ok(_) => {
                    if let Err(e) = on_frames(&mut rbuf, &mut wbuf, &mut obs, &spec, &live) {
                        error = Some(e.to_string());
                        break;
                    }
                }
                Err(e) => { error = Some(e.to_string()); break; }
            },
            _ = ping.tick() => wire::pingreq(&mut wbuf),
        }
    }
    if error.is_none() {
        let _ = wr.write_all(&wbuf).await;
        wbuf.clear();
        wire::disconnect(&mut wbuf);
        let _ = wr.write_all(&wbuf).await;
    }
    (obs, error)
}

fn on_frames(
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    obs: &mut SubObservation,
    spec: &SubSpec,
    live: &Live,
) -> Result<(), wire::WireError> {
    let now = stats::now_ns();
    let mut at = 0;
    let mut received = 0;
    while let Some((frame, n)) = wire::parse(&rbuf[at..])? {
        match frame {
            Frame::Publish { qos, pkid, payload } => {
                obs.record(payload, now, spec.keep_latency);
                received += 1;
                match qos {
                    1 => wire::ack(wbuf, wire::PUBACK, pkid),
                    2 => wire::ack(wbuf, wire::PUBREC, pkid),
                    _ => {}
                }
            }
            Frame::PubRel(pkid) => wire::ack(wbuf, wire::PUBCOMP, pkid),
            _ => {}
        }
        at += n;
    }
    rbuf.advance(at);
    if received > 0 {
        Live::add(&live.received, received);
        live.last_rx_ns.fetch_max(now, Ordering::Relaxed);
    }
    Ok(())
}

/// Keeps an idle connection open (pinging) until `stop`, then disconnects. Returns false when
/// the broker closed it first.
pub async fn hold(mut stream: TcpStream, keep_alive: u16, stop: CancellationToken) -> bool {
    let mut rbuf = [0u8; 64];
    let mut ping = tokio::time::interval(ping_every(keep_alive));
    ping.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                let _ = stream.write_all(&[0xE0, 0]).await;
                return true;
            }
            r = stream.read(&mut rbuf) => match r {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            },
            _ = ping.tick() => {
                if stream.write_all(&[0xC0, 0]).await.is_err() {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_flows_answer_each_qos() {
        let spec = SubSpec {
            keep_latency: true,
            keep_alive: 60,
        };
        let live = Live::default();
        let mut obs = SubObservation::default();
        let mut rbuf = BytesMut::new();
        let mut wbuf = BytesMut::new();
        let mut payload = vec![0u8; stats::STAMP_LEN];
        for (qos, seq) in [(0u8, 0u64), (1, 1), (2, 2)] {
            stats::stamp(&mut payload, 3, seq, 0);
            wire::publish(&mut rbuf, "t", qos, 10 + seq as u16, &payload);
        }
        wire::ack(&mut rbuf, wire::PUBREL, 12);
        assert_eq!(
            on_frames(&mut rbuf, &mut wbuf, &mut obs, &spec, &live),
            Ok(())
        );
        assert!(rbuf.is_empty());
        assert_eq!(
            &wbuf[..],
            &[
                wire::PUBACK,
                2,
                0,
                11,
                wire::PUBREC,
                2,
                0,
                12,
                wire::PUBCOMP,
                2,
                0,
                12
            ]
        );
        assert_eq!(obs.tracks.get(&3).map(|t| t.unique), Some(3));
        assert_eq!(obs.latencies.len(), 3);
        assert_eq!(Live::get(&live.received), 3);
    }
}
