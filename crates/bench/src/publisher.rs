//! One publishing connection: stamps and writes PUBLISHes in batches, at a fixed rate or as fast
//! as the socket takes them, keeps at most `window` QoS 1/2 messages unacknowledged, and after
//! its duration waits (bounded) for the outstanding acks.
//!
//! Owns: packet identifiers of its connection (a 65,536-entry in-use map, so an id is never
//! reused while in flight even if acks come out of order) and the QoS 1/2 sender flows
//! (PUBLISH→PUBACK; PUBLISH→PUBREC→PUBREL→PUBCOMP, MQTT 3.1.1 §4.3).

use crate::stats::{self, Live};
use crate::wire::{self, Frame};
use bytes::{Buf, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Bytes encoded ahead before each write.
const BATCH_BYTES: usize = 64 * 1024;

/// What one publisher does.
#[derive(Debug, Clone)]
pub struct PubSpec {
    /// Publisher id written into each payload.
    pub id: u32,
    /// Topic to publish on.
    pub topic: String,
    /// QoS 0, 1 or 2.
    pub qos: u8,
    /// Payload size in bytes (at least the stamp).
    pub payload_len: usize,
    /// Most unacknowledged QoS 1/2 messages.
    pub window: u16,
    /// Messages per second; 0 = as fast as possible.
    pub rate: f64,
    /// How long to publish.
    pub duration: Duration,
    /// How long to wait for outstanding acks afterwards.
    pub grace: Duration,
}

/// What one publisher did.
#[derive(Debug, Default, Clone)]
pub struct PubOutcome {
    /// Messages written.
    pub sent: u64,
    /// Messages acknowledged (QoS 1/2).
    pub acked: u64,
    /// Retransmissions (UDP clients only).
    pub retransmits: u64,
    /// The error that ended it early, if any.
    pub error: Option<String>,
}

struct Pkids {
    in_use: Vec<bool>,
    next: u16,
    count: usize,
}

impl Pkids {
    fn new() -> Self {
        Pkids {
            in_use: vec![false; 65536],
            next: 1,
            count: 0,
        }
    }

    /// A free identifier; the caller keeps `count` below 65,535 (MQTT-2.3.1-1: never 0).
    fn take(&mut self) -> u16 {
        while self.in_use[usize::from(self.next)] {
            self.next = self.next.checked_add(1).unwrap_or(1);
        }
        let id = self.next;
        self.in_use[usize::from(id)] = true;
        self.count += 1;
        self.next = self.next.checked_add(1).unwrap_or(1);
        id
    }

    /// Frees `id`; false when it was not in flight (a spurious ack).
    fn release(&mut self, id: u16) -> bool {
        let slot = &mut self.in_use[usize::from(id)];
        if !*slot {
            return false;
        }
        *slot = false;
        self.count -= 1;
        true
    }
}

/// Publishes on an established connection until the duration is over and acks are in.
pub async fn run(
    mut stream: TcpStream,
    mut rbuf: BytesMut,
    spec: PubSpec,
    live: Arc<Live>,
) -> PubOutcome {
    let mut out = PubOutcome::default();
    let (mut rd, mut wr) = stream.split();
    let mut payload = vec![0u8; spec.payload_len.max(stats::STAMP_LEN)];
    let mut wbuf = BytesMut::with_capacity(BATCH_BYTES + payload.len() + 64);
    let window = usize::from(spec.window.clamp(1, u16::MAX - 1));
    let mut pkids = Pkids::new();
    let start = Instant::now();
    let end = start + spec.duration;
    let mut grace_end = end + spec.grace;
    let mut stopping = false;
    let mut seq: u64 = 0;
    loop {
        let now = Instant::now();
        if !stopping && now >= end {
            stopping = true;
            grace_end = now + spec.grace;
        }
        let window_open = spec.qos == 0 || pkids.count < window;
        let mut next_token = None;
        if !stopping && window_open {
            let budget = if spec.rate > 0.0 {
                let allowed = (now - start).as_secs_f64() * spec.rate + 1.0;
                (allowed as u64).saturating_sub(seq)
            } else {
                u64::MAX
            };
            let mut written = 0u64;
            while written < budget
                && wbuf.len() < BATCH_BYTES
                && (spec.qos == 0 || pkids.count < window)
            {
                stats::stamp(&mut payload, spec.id, seq, stats::now_ns());
                let pkid = if spec.qos > 0 { pkids.take() } else { 0 };
                wire::publish(&mut wbuf, &spec.topic, spec.qos, pkid, &payload);
                seq += 1;
                written += 1;
            }
            Live::add(&live.sent, written);
            if spec.rate > 0.0 && written == budget {
                next_token = Some(start + Duration::from_secs_f64(seq as f64 / spec.rate));
            }
        }
        if stopping && pkids.count == 0 && wbuf.is_empty() {
            break;
        }
        tokio::select! {
            r = rd.read_buf(&mut rbuf) => match r {
                Ok(0) => { out.error = Some("closed by broker".into()); break; }
                Ok(_) => match on_acks(&mut rbuf, &mut wbuf, &mut pkids, spec.qos) {
                    Ok(n) => { out.acked += n; Live::add(&live.acked, n); }
                    Err(e) => { out.error = Some(e.to_string()); break; }
                },
                Err(e) => { out.error = Some(e.to_string()); break; }
            },
            r = wr.write_buf(&mut wbuf), if !wbuf.is_empty() => {
                if let Err(e) = r { out.error = Some(e.to_string()); break; }
            },
            _ = sleep_until(next_token), if next_token.is_some() => {},
            _ = tokio::time::sleep_until(end), if !stopping => {},
            _ = tokio::time::sleep_until(grace_end), if stopping => {
                out.error = Some(format!("{} messages still unacknowledged after the grace period", pkids.count));
                break;
            },
        }
    }
    out.sent = seq;
    wbuf.clear();
    wire::disconnect(&mut wbuf);
    let _ = wr.write_all(&wbuf).await;
    out
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Handles every buffered ack; returns how many publishes completed.
fn on_acks(
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    pkids: &mut Pkids,
    qos: u8,
) -> Result<u64, wire::WireError> {
    let mut done = 0;
    let mut at = 0;
    while let Some((frame, n)) = wire::parse(&rbuf[at..])? {
        match frame {
            Frame::PubAck(id) if qos == 1 => done += u64::from(pkids.release(id)),
            Frame::PubRec(id) if qos == 2 => wire::ack(wbuf, wire::PUBREL, id),
            Frame::PubComp(id) if qos == 2 => done += u64::from(pkids.release(id)),
            _ => {}
        }
        at += n;
    }
    rbuf.advance(at);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkids_skip_ids_in_flight_and_zero() {
        let mut p = Pkids::new();
        let first = p.take();
        assert_eq!(first, 1);
        for _ in 0..65533 {
            p.take();
        }
        assert_eq!(p.count, 65534);
        assert!(p.release(5));
        assert!(!p.release(5), "double ack is spurious");
        // Only 5 and 65535 are free; wrap-around never yields 0.
        let a = p.take();
        let b = p.take();
        let mut got = [a, b];
        got.sort_unstable();
        assert_eq!(got, [5, 65535]);
    }

    #[test]
    fn qos2_pubrec_answers_pubrel_and_pubcomp_completes() {
        let mut p = Pkids::new();
        let id = p.take();
        let mut rbuf = BytesMut::new();
        let mut wbuf = BytesMut::new();
        wire::ack(&mut rbuf, wire::PUBREC, id);
        assert_eq!(on_acks(&mut rbuf, &mut wbuf, &mut p, 2), Ok(0));
        assert_eq!(&wbuf[..], &[wire::PUBREL, 2, 0, 1]);
        wire::ack(&mut rbuf, wire::PUBCOMP, id);
        rbuf.extend_from_slice(&[0x40]); // half a frame stays buffered
        assert_eq!(on_acks(&mut rbuf, &mut wbuf, &mut p, 2), Ok(1));
        assert_eq!(&rbuf[..], &[0x40]);
        assert_eq!(p.count, 0);
    }
}
