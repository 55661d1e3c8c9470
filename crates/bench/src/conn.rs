//! The `conn` scenario: N connections, each subscribing to its own topic, opened at a given
//! concurrency and rate, held idle (pinging at keepalive/2) and then closed.
//!
//! Owns: the connect-rate figure (connections established / time until the last one was
//! established), stopping cleanly at this process's file or port limit and saying so, and the
//! broker's RSS per idle connection ((RSS with every connection up − RSS before) / N).

use crate::client::{ConnectError, Target};
use crate::report::{BenchResult, BrokerProc, Progress};
use crate::stats::Live;
use crate::subscriber;
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// File descriptors kept back for the runtime, stdout and the like.
const FD_RESERVE: u64 = 64;

/// What `conn` does.
#[derive(Debug, Clone)]
pub struct ConnPlan {
    /// Result record name.
    pub name: String,
    /// Connections to open.
    pub count: usize,
    /// Handshakes in progress at once.
    pub concurrency: usize,
    /// New connections per second (0 = unlimited).
    pub rate: f64,
    /// How long to hold the connections once all are up.
    pub hold: Duration,
    /// QoS of each subscription.
    pub qos: u8,
    /// Prefix of client ids.
    pub client_prefix: String,
    /// The process's file limit, to stop just below it.
    pub file_limit: u64,
}

enum Event {
    Up,
    Limit(String),
    Failed(String),
}

/// Runs `conn`.
pub async fn run(
    plan: &ConnPlan,
    target: &Target,
    broker: Option<BrokerProc>,
    quiet: bool,
) -> BenchResult {
    let live = Arc::new(Live::default());
    let mut result = BenchResult {
        scenario: "conn".into(),
        name: plan.name.clone(),
        broker: target.broker.to_string(),
        qos: plan.qos,
        subscribers: plan.count,
        ..Default::default()
    };
    let rss0 = broker.and_then(|b| b.rss_kib());
    let cpu0 = broker.and_then(|b| b.cpu_s());
    let progress = Progress::start(live.clone(), quiet);
    let max_by_fds =
        usize::try_from(plan.file_limit.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX);
    // Stopping short of the file limit is reported like hitting it (EMFILE), after the run.
    let mut capped = None;
    let count = if plan.count > max_by_fds {
        capped = Some(format!(
            "file limit {} allows about {max_by_fds} connections",
            plan.file_limit
        ));
        max_by_fds
    } else {
        plan.count
    };

    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(plan.concurrency.max(1)));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut holders = JoinSet::new();
    let start = Instant::now();
    let mut last_up = start;
    let (mut up, mut done) = (0u64, 0usize);
    let mut launched = 0usize;
    while launched < count && result.limit_reached.is_none() || done < launched {
        if launched < count && result.limit_reached.is_none() {
            if plan.rate > 0.0 {
                tokio::time::sleep_until(
                    start + Duration::from_secs_f64(launched as f64 / plan.rate),
                )
                .await;
            }
            tokio::select! {
                permit = gate.clone().acquire_owned() => {
                    let Ok(permit) = permit else { break };
                    let target = target.clone();
                    let id = format!("{}-c{launched}", plan.client_prefix);
                    let filter = format!("bench/conn/{}/{launched}", plan.client_prefix);
                    let (tx, stop, qos, n) = (events_tx.clone(), stop.clone(), plan.qos, launched);
                    holders.spawn(async move {
                        let mut rbuf = BytesMut::with_capacity(64);
                        let r = target.mqtt(n, &id, Some((filter.as_str(), qos)), &mut rbuf).await;
                        drop(permit);
                        match r {
                            Ok(stream) => {
                                let _ = tx.send(Event::Up);
                                subscriber::hold(stream, target.keep_alive, stop).await
                            }
                            Err(ConnectError::Limit(e)) => { let _ = tx.send(Event::Limit(e.to_string())); true }
                            Err(ConnectError::Failed(e)) => { let _ = tx.send(Event::Failed(e)); true }
                        }
                    });
                    launched += 1;
                    continue;
                }
                Some(ev) = events.recv() => { on_event(ev, &mut result, &mut up, &mut last_up, &live); done += 1; }
            }
        } else if let Some(ev) = events.recv().await {
            on_event(ev, &mut result, &mut up, &mut last_up, &live);
            done += 1;
        } else {
            break;
        }
    }
    if result.limit_reached.is_none() {
        result.limit_reached = capped;
    }
    let connect_s = (last_up - start).as_secs_f64();
    // Let the broker settle so RSS reflects idle connections, not handshakes in progress.
    tokio::time::sleep(plan.hold).await;
    let rss1 = broker.and_then(|b| b.rss_kib());
    let cpu1 = broker.and_then(|b| b.cpu_s());
    stop.cancel();
    let mut dropped = 0u64;
    while let Some(r) = holders.join_next().await {
        if !r.unwrap_or(false) {
            dropped += 1;
        }
    }
    progress.finish();
    if dropped > 0 {
        result.note_error(format!(
            "{dropped} connections closed by the broker while idle"
        ));
    }
    result.connections = Some(up);
    result.elapsed_s = connect_s;
    result.conn_per_s = Some(up as f64 / connect_s.max(1e-9));
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        result.broker_cpu_s = Some(b - a);
    }
    result.broker_rss_kib = rss1;
    if let (Some(a), Some(b)) = (rss0, rss1) {
        if up > 0 {
            result.rss_per_conn_kib = Some(b.saturating_sub(a) as f64 / up as f64);
        }
    }
    result
}

fn on_event(ev: Event, result: &mut BenchResult, up: &mut u64, last_up: &mut Instant, live: &Live) {
    match ev {
        Event::Up => {
            *up += 1;
            *last_up = Instant::now();
            Live::add(&live.connected, 1);
        }
        Event::Limit(e) => {
            if result.limit_reached.is_none() {
                result.limit_reached = Some(e);
            }
        }
        Event::Failed(e) => result.note_error(e),
    }
}
