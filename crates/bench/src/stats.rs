//! What the tool measures: the payload stamp, per-publisher sequence tracking (loss, duplicates,
//! reordering), latency samples and percentiles, and the live counters the progress bar reads.
//!
//! Payload layout (big-endian, then zero padding to the requested size): publisher id `u32`,
//! sequence number `u64`, send time `u64` in nanoseconds since [`now_ns`]'s epoch. Publisher and
//! subscriber run in one process for the composite scenarios, so the clock is shared.
//! Invariant: a payload the tool did not write (another client on the broker) is counted as
//! foreign and never grows the trackers beyond [`MAX_SEQ`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Bytes of the stamp at the start of every payload.
pub const STAMP_LEN: usize = 20;
/// Highest sequence number tracked; larger ones are treated as foreign.
pub const MAX_SEQ: u64 = 1 << 31;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's first call.
pub fn now_ns() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Writes the stamp into the front of `payload` (which must be at least [`STAMP_LEN`] long).
pub fn stamp(payload: &mut [u8], publisher: u32, seq: u64, sent_ns: u64) {
    if let Some(head) = payload.get_mut(..STAMP_LEN) {
        head[..4].copy_from_slice(&publisher.to_be_bytes());
        head[4..12].copy_from_slice(&seq.to_be_bytes());
        head[12..20].copy_from_slice(&sent_ns.to_be_bytes());
    }
}

/// Reads a stamp: (publisher, seq, sent_ns).
pub fn read_stamp(payload: &[u8]) -> Option<(u32, u64, u64)> {
    let head = payload.get(..STAMP_LEN)?;
    let publisher = u32::from_be_bytes(head[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(head[4..12].try_into().ok()?);
    let sent = u64::from_be_bytes(head[12..20].try_into().ok()?);
    Some((publisher, seq, sent))
}

/// Sequence bookkeeping for one publisher as seen by one subscriber.
#[derive(Debug, Default, Clone)]
pub struct SeqTrack {
    seen: Vec<u64>,
    next_max: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Sequence numbers received more than once.
    pub duplicates: u64,
    /// Messages that arrived after a later one from the same publisher.
    pub reordered: u64,
}

impl SeqTrack {
    /// Records one received sequence number.
    pub fn observe(&mut self, seq: u64) {
        let word = usize::try_from(seq / 64).unwrap_or(usize::MAX);
        if word >= self.seen.len() {
            self.seen
                .resize(word.saturating_add(1).max(self.seen.len() * 2), 0);
        }
        let bit = 1u64 << (seq % 64);
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        if seq < self.next_max {
            self.reordered += 1;
        } else {
            self.next_max = seq + 1;
        }
    }

    /// Sequence numbers below the highest one seen that never arrived.
    pub fn gaps(&self) -> u64 {
        self.next_max.saturating_sub(self.unique)
    }
}

/// Everything one subscriber observed.
#[derive(Debug, Default)]
pub struct SubObservation {
    /// Per publisher id.
    pub tracks: HashMap<u32, SeqTrack>,
    /// Publishes whose payload carried no valid stamp.
    pub foreign: u64,
    /// Latency samples in nanoseconds (only when asked for).
    pub latencies: Vec<u64>,
}

impl SubObservation {
    /// Records one received payload; `now` is [`now_ns`] at receipt.
    pub fn record(&mut self, payload: &[u8], now: u64, keep_latency: bool) {
        match read_stamp(payload) {
            Some((publisher, seq, sent)) if seq < MAX_SEQ => {
                self.tracks.entry(publisher).or_default().observe(seq);
                if keep_latency {
                    self.latencies.push(now.saturating_sub(sent));
                }
            }
            _ => self.foreign += 1,
        }
    }
}

/// Shared live counters, updated in batches by every task and read by the progress bar.
#[derive(Debug, Default)]
pub struct Live {
    /// Publishes written.
    pub sent: AtomicU64,
    /// Publishes acknowledged (QoS 1: PUBACK, QoS 2: PUBCOMP).
    pub acked: AtomicU64,
    /// Publishes received by subscribers.
    pub received: AtomicU64,
    /// Connections established (CONNACK accepted, subscription granted).
    pub connected: AtomicU64,
    /// Time of the last receipt, [`now_ns`].
    pub last_rx_ns: AtomicU64,
}

impl Live {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

/// Nearest-rank percentiles of `samples` (nanoseconds); `None` when there are none.
pub fn percentiles(samples: &mut [u64]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = (q * samples.len() as f64).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1] as f64 / 1000.0
    };
    Some(Percentiles {
        p50_us: at(0.50),
        p99_us: at(0.99),
        p999_us: at(0.999),
        max_us: at(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let mut p = vec![0u8; 64];
        stamp(&mut p, 7, 123_456, 99);
        assert_eq!(read_stamp(&p), Some((7, 123_456, 99)));
        assert_eq!(read_stamp(&p[..10]), None);
    }

    #[test]
    fn tracker_counts_loss_dups_and_reordering() {
        let mut t = SeqTrack::default();
        for seq in [0, 1, 3, 2, 3, 5, 200] {
            t.observe(seq);
        }
        assert_eq!(t.unique, 6);
        assert_eq!(t.duplicates, 1);
        assert_eq!(t.reordered, 1);
        // 0..=200 minus six distinct seen.
        assert_eq!(t.gaps(), 201 - 6);
    }

    #[test]
    fn foreign_payloads_are_counted_not_tracked() {
        let mut o = SubObservation::default();
        o.record(b"hello", 0, true);
        let mut p = vec![0u8; STAMP_LEN];
        stamp(&mut p, 1, MAX_SEQ, 0);
        o.record(&p, 0, true);
        assert_eq!(o.foreign, 2);
        assert!(o.tracks.is_empty() && o.latencies.is_empty());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut s: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let p = percentiles(&mut s).unwrap_or_default();
        assert_eq!(p.p50_us, 500.0);
        assert_eq!(p.p99_us, 990.0);
        assert_eq!(p.p999_us, 999.0);
        assert_eq!(p.max_us, 1000.0);
        assert!(percentiles(&mut []).is_none());
    }
}
