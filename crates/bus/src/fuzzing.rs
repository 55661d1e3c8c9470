//! Fuzzing support, shared by every crate's harness (doc-hidden; not an API).
//!
//! Owns: [`Input`], the byte reader the stateful harnesses decode their operations from (no
//! `arbitrary` dependency: a short input simply reads as zeros, so every byte string is a valid
//! program); [`runtime`] and [`open_session`], which let a synchronous harness open bus sessions
//! the way a driver does, serving takeovers of the connections it holds; [`replay_dir`], which
//! runs a committed seed corpus through a harness in the normal test suite; and the QoS engine
//! target [`qos_engine`]; and [`slots`], the session model and world that the channel harnesses
//! of the protocols built on the QoS engine share.
//!
//! The cargo-fuzz targets in `fuzz/` (outside the workspace) are one-line calls into these
//! harness functions, so the fuzzer and `cargo test` run the same code.

pub mod slots;

use crate::delivery::Delivery;
use crate::error::BusError;
use crate::handle::BusHandle;
use crate::qos::{AckError, Incoming2, QosConfig, QosEngine, Resend};
use crate::registry::{OpenSession, Opened};
use slots::Stage;
use std::collections::HashMap;
use std::num::NonZeroU16;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::{Message, QoS, TopicName};

/// Reads fuzz input as a stream of small values; past the end every read is zero.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// One bit of the next byte.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        if n <= 256 {
            usize::from(self.u8()) % n
        } else {
            usize::from(self.u16()) % n
        }
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        let i = self.below(items.len());
        &items[i]
    }

    /// A QoS level.
    pub fn qos(&mut self) -> QoS {
        match self.u8() % 3 {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }

    /// A length byte (at most `max`), then that many bytes (fewer at the end of the input).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.u8()).min(max).min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    /// A two-byte length (at most `max`), then that many bytes.
    pub fn long_bytes(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.u16()).min(max).min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// A clock step: mostly small, sometimes past keepalives, retries and lifetimes.
    pub fn step(&mut self) -> Duration {
        let v = u64::from(self.u8());
        match self.u8() % 4 {
            0 => Duration::from_millis(v * 10),
            1 => Duration::from_secs(v),
            2 => Duration::from_secs(v * 60),
            _ => Duration::from_secs(v * 3600),
        }
    }
}

/// A current-thread runtime with a timer, for the harnesses' session opens (and the tasks the
/// bus spawns, such as delayed wills, which never run unless the harness awaits them).
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    }
}

/// A stateful harness: a world of channels on one bus, driven by operations decoded from the
/// input, as [`run`] drives it.
pub trait Harness {
    /// One operation decoded from the input.
    fn op(&mut self, input: &mut Input<'_>);
    /// What follows every operation (e.g. pulling deliveries); nothing by default.
    fn after_op(&mut self) {}
    /// After the last operation: settles what is in flight, checks the end state and finishes
    /// every channel.
    fn finish(&mut self);
}

/// Runs a stateful harness over `data`: builds it from the input's first bytes and the runtime
/// its session opens run on (`new`), applies at most `max_ops` operations while the input lasts,
/// inside that runtime's context, then finishes it.
pub fn run<H: Harness>(
    data: &[u8],
    max_ops: usize,
    new: impl FnOnce(&mut Input<'_>, Arc<tokio::runtime::Runtime>) -> H,
) {
    let mut input = Input::new(data);
    let rt = Arc::new(runtime());
    let mut harness = new(&mut input, rt.clone());
    let _guard = rt.enter();
    let mut ops = 0;
    while !input.is_empty() && ops < max_ops {
        ops += 1;
        harness.op(&mut input);
        harness.after_op();
    }
    harness.finish();
}

/// Opens a session as a driver does. `serve_controls` is called while the open waits, so the
/// harness can answer a takeover of a connection it holds (a `ControlEvent::Takeover` from that
/// connection's `ControlEvents::try_recv`: close it and finish it, which hands the session over).
pub fn open_session(
    rt: &tokio::runtime::Runtime,
    bus: &BusHandle,
    req: OpenSession,
    mut serve_controls: impl FnMut(),
) -> Result<Opened, BusError> {
    rt.block_on(async {
        let open = bus.open_session(req);
        tokio::pin!(open);
        loop {
            tokio::select! {
                biased;
                r = &mut open => return r,
                () = tokio::task::yield_now() => serve_controls(),
            }
        }
    })
}

/// Runs every file in `dir` through `harness`, in name order; a panic names the file. Returns
/// how many files ran.
pub fn replay_dir(dir: &Path, harness: impl Fn(&[u8])) -> usize {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(e) => panic!("seed corpus {}: {e}", dir.display()),
    };
    files.sort();
    for f in &files {
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) => panic!("{}: {e}", f.display()),
        };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| harness(&data)));
        if run.is_err() {
            panic!("seed {} fails its harness", f.display());
        }
    }
    files.len()
}

/// Replays the committed seed corpus of `target` (under `fuzz/seeds/`) through `harness`, as
/// `cargo test` does for every fuzz target; fails when the corpus is empty or a seed fails.
pub fn replay_seeds(manifest_dir: &str, target: &str, harness: impl Fn(&[u8])) {
    let dir = seeds(manifest_dir, target);
    assert!(
        replay_dir(&dir, harness) > 0,
        "no seeds in {}",
        dir.display()
    );
}

/// The seed corpus directory of a fuzz target, from a crate's manifest directory (every crate
/// sits two levels below the workspace root).
pub fn seeds(manifest_dir: &str, target: &str) -> std::path::PathBuf {
    Path::new(manifest_dir)
        .join("../../fuzz/seeds")
        .join(target)
}

/// One outgoing entry as the model sees it: id, stage, the delivery's tag, when last sent.
#[derive(Debug, Clone)]
struct Entry {
    id: u16,
    stage: Stage,
    tag: u64,
    sent_at: Instant,
}

fn delivery(qos: QoS, tag: u64) -> Delivery {
    let topic = match TopicName::new("fuzz/qos") {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let message = Message::new(topic, tag.to_be_bytes().to_vec(), qos, false);
    Delivery::new(Arc::new(message), qos, false)
}

fn tag_of(d: &Delivery) -> u64 {
    let b: [u8; 8] = d.message.payload.as_ref().try_into().unwrap_or([0; 8]);
    u64::from_be_bytes(b)
}

/// The model of a [`QosEngine`] and the engine itself, driven side by side.
struct QosModel {
    engine: QosEngine,
    cfg: QosConfig,
    out: Vec<Entry>,
    incoming: HashMap<u16, Instant>,
    /// The largest the window was allowed to be (restores and `set_max_inflight` included).
    peak: usize,
    next_tag: u64,
}

impl QosModel {
    fn pick_id(&self, input: &mut Input<'_>) -> u16 {
        let raw = input.u16();
        if raw & 0x8000 == 0 && !self.out.is_empty() {
            self.out[usize::from(raw) % self.out.len()].id
        } else {
            raw & 0x7fff
        }
    }

    fn expected(&self, id: u16, stage: Stage) -> Result<usize, AckError> {
        match self.out.iter().position(|e| e.id == id) {
            None => Err(AckError::UnknownPacketId(id)),
            Some(i) if self.out[i].stage == stage => Ok(i),
            Some(_) => Err(AckError::WrongStage(id)),
        }
    }

    fn send(&mut self, qos: QoS, now: Instant) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let d = delivery(qos, tag);
        if !self.engine.can_send(&d) {
            assert!(self.out.len() >= usize::from(self.cfg.max_inflight));
            return;
        }
        let s = self.engine.send(d, now);
        assert_eq!(tag_of(&s.delivery), tag);
        assert!(!s.dup);
        let Some(id) = s.pkid.map(NonZeroU16::get) else {
            assert_eq!(qos, QoS::AtMostOnce, "QoS 1/2 sent without a packet id");
            return;
        };
        assert_ne!(qos, QoS::AtMostOnce, "QoS 0 sent with a packet id");
        assert!(
            self.out.iter().all(|e| e.id != id),
            "packet id {id} handed out while in flight"
        );
        let stage = if qos == QoS::AtLeastOnce {
            Stage::Ack
        } else {
            Stage::Rec
        };
        self.out.push(Entry {
            id,
            stage,
            tag,
            sent_at: now,
        });
    }

    fn check_resends(&self, resent: &[Resend], expect: &[Entry]) {
        assert_eq!(resent.len(), expect.len(), "{resent:?} vs {expect:?}");
        for (r, e) in resent.iter().zip(expect) {
            match r {
                Resend::Publish(s) => {
                    assert!(s.dup);
                    assert_eq!(s.pkid.map(NonZeroU16::get), Some(e.id));
                    assert_eq!(tag_of(&s.delivery), e.tag);
                    assert_ne!(e.stage, Stage::Comp);
                }
                Resend::PubRel(p) => {
                    assert_eq!(p.get(), e.id);
                    assert_eq!(e.stage, Stage::Comp);
                }
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let retry = self
            .cfg
            .retry_interval
            .and_then(|r| self.out.iter().map(|e| e.sent_at + r).min());
        let rel = self
            .incoming
            .values()
            .map(|t| *t + self.cfg.await_rel_timeout)
            .min();
        match (retry, rel) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn step(&mut self, input: &mut Input<'_>, now: Instant) {
        match input.u8() % 12 {
            0..=2 => {
                let q = input.qos();
                self.send(q, now);
            }
            3 => {
                let id = self.pick_id(input);
                let Some(pkid) = NonZeroU16::new(id) else {
                    return;
                };
                let want = self.expected(id, Stage::Ack);
                let got = self.engine.on_puback(pkid);
                assert_eq!(got.map(|d| tag_of(&d)), want.map(|i| self.out[i].tag));
                if let Ok(i) = want {
                    self.out.remove(i);
                }
            }
            4 => {
                let id = self.pick_id(input);
                let accepted = input.u8() % 4 != 0;
                let Some(pkid) = NonZeroU16::new(id) else {
                    return;
                };
                let pos = self.out.iter().position(|e| e.id == id);
                let want = match pos.map(|i| (i, self.out[i].stage)) {
                    None => Err(AckError::UnknownPacketId(id)),
                    Some((_, Stage::Ack)) => Err(AckError::WrongStage(id)),
                    Some((i, Stage::Rec)) => {
                        if accepted {
                            self.out[i].stage = Stage::Comp;
                            self.out[i].sent_at = now;
                        } else {
                            self.out.remove(i);
                        }
                        Ok(())
                    }
                    Some((_, Stage::Comp)) => Ok(()),
                };
                assert_eq!(self.engine.on_pubrec(pkid, accepted, now), want);
            }
            5 => {
                let id = self.pick_id(input);
                let Some(pkid) = NonZeroU16::new(id) else {
                    return;
                };
                let want = self.expected(id, Stage::Comp);
                let got = self.engine.on_pubcomp(pkid);
                assert_eq!(got.map(|d| tag_of(&d)), want.map(|i| self.out[i].tag));
                if let Ok(i) = want {
                    self.out.remove(i);
                }
            }
            6 => {
                let resent = self.engine.resume(now);
                for e in &mut self.out {
                    e.sent_at = now;
                }
                self.check_resends(&resent, &self.out);
            }
            7 => {
                let due = self.engine.poll_retry(now);
                let Some(retry) = self.cfg.retry_interval else {
                    assert!(due.is_empty());
                    return;
                };
                let mut expect = Vec::new();
                for e in &mut self.out {
                    if now.saturating_duration_since(e.sent_at) >= retry {
                        e.sent_at = now;
                        expect.push(e.clone());
                    }
                }
                self.check_resends(&due, &expect);
            }
            8 => {
                let id = input.u16() % 64;
                let Some(pkid) = NonZeroU16::new(id) else {
                    return;
                };
                let want = if self.incoming.contains_key(&id) {
                    Incoming2::Duplicate
                } else if self.cfg.max_awaiting_rel > 0
                    && self.incoming.len() >= self.cfg.max_awaiting_rel
                {
                    Incoming2::TooMany
                } else {
                    self.incoming.insert(id, now);
                    Incoming2::New
                };
                assert_eq!(self.engine.on_incoming_qos2(pkid, now), want);
            }
            9 => {
                let id = input.u16() % 64;
                let Some(pkid) = NonZeroU16::new(id) else {
                    return;
                };
                let known = self.incoming.remove(&id).is_some();
                assert_eq!(self.engine.on_pubrel(pkid), known);
            }
            10 => {
                let timeout = self.cfg.await_rel_timeout;
                let before = self.incoming.len();
                self.incoming
                    .retain(|_, t| now.saturating_duration_since(*t) < timeout);
                assert_eq!(
                    self.engine.expire_awaiting_rel(now),
                    before - self.incoming.len()
                );
            }
            _ => match input.u8() % 4 {
                0 => {
                    let taken = self.engine.take_unacked();
                    let expect: Vec<u64> = self
                        .out
                        .iter()
                        .filter(|e| e.stage != Stage::Comp)
                        .map(|e| e.tag)
                        .collect();
                    assert_eq!(taken.iter().map(tag_of).collect::<Vec<_>>(), expect);
                    self.out.clear();
                }
                1 => {
                    let max = 1 + u16::from(input.u8()) % 80;
                    self.engine.set_max_inflight(max);
                    self.cfg.max_inflight = max;
                    self.peak = self.peak.max(usize::from(max));
                }
                2 => {
                    let retry = match input.u8() % 3 {
                        0 => None,
                        n => Some(Duration::from_secs(u64::from(n))),
                    };
                    self.engine.set_retry_interval(retry);
                    self.cfg.retry_interval = retry;
                }
                _ => {
                    for _ in 0..(1 + input.u8() % 100) {
                        self.send(QoS::AtLeastOnce, now);
                    }
                }
            },
        }
    }

    fn check(&self) {
        let len = self.engine.inflight_len();
        assert_eq!(
            len,
            self.out.len(),
            "engine and model disagree on the window"
        );
        assert!(
            len <= self.peak,
            "window {len} above its bound {}",
            self.peak
        );
        let window = usize::from(self.cfg.max_inflight);
        assert_eq!(self.engine.has_credit(), len < window);
        assert_eq!(self.engine.credit(), window.saturating_sub(len));
        assert_eq!(self.engine.awaiting_rel_len(), self.incoming.len());
        assert_eq!(self.engine.next_timeout(), self.next_timeout());
        let mut ids: Vec<u16> = self.out.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), self.out.len(), "duplicate packet ids in flight");
    }
}

/// The QoS engine target: a window (small, or past the id index's threshold), restored entries
/// (which move the next packet id anywhere, wrap-around included), then a sequence of sends,
/// acknowledgements (for ids in flight in any stage, and stray ones), resumes, retries, incoming
/// QoS 2 ids and clock steps, each checked against a plain model: results agree, ids are unique,
/// the window holds, resends come in send order, and the next timeout is exact.
pub fn qos_engine(data: &[u8]) {
    let mut input = Input::new(data);
    let max_inflight = if input.bool() {
        1 + u16::from(input.u8()) % 8
    } else {
        1 + input.u16() % 300
    };
    let retry_interval = match input.u8() % 3 {
        0 => None,
        _ => Some(Duration::from_secs(1 + u64::from(input.u8() % 30))),
    };
    let cfg = QosConfig {
        max_inflight,
        retry_interval,
        max_awaiting_rel: usize::from(input.u8() % 8),
        await_rel_timeout: Duration::from_secs(1 + u64::from(input.u8())),
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut m = QosModel {
        engine: QosEngine::new(cfg),
        cfg,
        out: Vec::new(),
        incoming: HashMap::new(),
        peak: usize::from(max_inflight),
        next_tag: 1,
    };
    // Start-up restore: ids anywhere in the space, so allocation starts past the largest.
    for _ in 0..(input.u8() % 4).min(u8::try_from(max_inflight).unwrap_or(u8::MAX)) {
        let Some(pkid) = NonZeroU16::new(input.u16()) else {
            continue;
        };
        if m.out.iter().any(|e| e.id == pkid.get()) {
            continue;
        }
        let qos = if input.bool() {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        let released = qos == QoS::ExactlyOnce && input.bool();
        let tag = m.next_tag;
        m.next_tag += 1;
        m.engine
            .restore_inflight(pkid, delivery(qos, tag), released, now);
        let stage = match (qos, released) {
            (_, true) => Stage::Comp,
            (QoS::ExactlyOnce, false) => Stage::Rec,
            _ => Stage::Ack,
        };
        m.out.push(Entry {
            id: pkid.get(),
            stage,
            tag,
            sent_at: now,
        });
    }
    m.check();
    let mut ops = 0;
    while !input.is_empty() && ops < 2000 {
        ops += 1;
        if input.u8() % 5 == 0 {
            now += input.step();
        }
        m.step(&mut input, now);
        m.check();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_engine_seed_corpus_replays() {
        let dir = seeds(env!("CARGO_MANIFEST_DIR"), "qos_engine");
        assert!(
            replay_dir(&dir, qos_engine) > 0,
            "no seeds in {}",
            dir.display()
        );
    }

    #[test]
    fn input_reads_zeros_past_the_end() {
        let mut i = Input::new(&[1, 2]);
        assert_eq!(i.u16(), 0x0102);
        assert!(i.is_empty());
        assert_eq!(i.u32(), 0);
        assert!(i.bytes(10).is_empty());
        assert_eq!(i.below(7), 0);
    }
}
