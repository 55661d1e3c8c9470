//! The publish/subscribe scenarios (`pub`, `sub`, `fanin`, `fanout`, `latency`) as one plan:
//! connect every subscriber, then every publisher, start them together, let the publishers run
//! their duration, wait for deliveries to settle, and add it all up.
//!
//! The publishers are MQTT connections, or UDP clients (MQTT-SN, CoAP) the caller has already
//! set up and hands over as [`Publishers::Spawn`]; the subscriber side is the same either way.
//!
//! Owns: the measurement window (first publish to last delivery), when a run is over (every
//! expected delivery arrived, or nothing arrived for [`SETTLE`]), and the loss arithmetic
//! (expected deliveries minus distinct deliveries received).

use crate::client::{ConnectError, Target};
use crate::publisher::{self, PubOutcome, PubSpec};
use crate::report::{BenchResult, BrokerProc, Progress};
use crate::stats::{self, Live, SubObservation};
use crate::subscriber::{self, SubSpec};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// With nothing received for this long after the publishers finished, the run is over.
const SETTLE: Duration = Duration::from_secs(2);
/// Upper bound on waiting for deliveries after the publishers finished.
pub const DRAIN_MAX: Duration = Duration::from_secs(30);

/// A publish/subscribe run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Result record name.
    pub name: String,
    /// Subcommand.
    pub scenario: String,
    /// Publisher topic; `{i}` is replaced by the publisher index.
    pub topic: String,
    /// Subscriber filter; `{i}` is replaced by the subscriber index.
    pub filter: String,
    /// Publishing connections.
    pub publishers: usize,
    /// Subscribing connections.
    pub subscribers: usize,
    /// Whether every subscriber receives every publisher's messages (known expectations).
    pub all_to_all: bool,
    /// QoS for publishes and subscriptions.
    pub qos: u8,
    /// Payload size.
    pub payload: usize,
    /// QoS 1/2 window per publisher.
    pub inflight: u16,
    /// Per-publisher rate, messages/s (0 = unlimited).
    pub rate: f64,
    /// Publishing time (for `sub` alone: receiving time).
    pub duration: Duration,
    /// Keep latency samples.
    pub latency: bool,
    /// Prefix of client ids.
    pub client_prefix: String,
    /// Subscribers use persistent sessions (clean session 0, fixed client ids
    /// `switchyard-bench-persistent-{i}`), so the broker stores every QoS 1/2 message for them.
    pub persistent: bool,
}

/// Who publishes in a run.
pub enum Publishers {
    /// `plan.publishers` MQTT connections on `plan.topic`.
    Mqtt,
    /// Publisher tasks the caller starts when the measurement starts (UDP clients whose
    /// handshakes are done); they return what they sent.
    Spawn(Box<dyn FnOnce(Arc<Live>) -> JoinSet<PubOutcome> + Send>),
}

/// Client id of persistent subscriber `i`.
pub fn persistent_id(i: usize) -> String {
    format!("switchyard-bench-persistent-{i}")
}

/// Runs a plan against `target` with MQTT publishers.
pub async fn run(
    plan: &Plan,
    target: &Target,
    broker: Option<BrokerProc>,
    quiet: bool,
) -> anyhow::Result<BenchResult> {
    run_with(plan, target, broker, quiet, Publishers::Mqtt).await
}

/// Runs a plan against `target` with the given publishers.
pub async fn run_with(
    plan: &Plan,
    target: &Target,
    broker: Option<BrokerProc>,
    quiet: bool,
    publishers: Publishers,
) -> anyhow::Result<BenchResult> {
    let live = Arc::new(Live::default());
    let mut result = BenchResult {
        scenario: plan.scenario.clone(),
        name: plan.name.clone(),
        broker: target.broker.to_string(),
        qos: plan.qos,
        payload: plan.payload.max(stats::STAMP_LEN),
        inflight: plan.inflight,
        publishers: plan.publishers,
        subscribers: plan.subscribers,
        ..Default::default()
    };
    let progress = Progress::start(live.clone(), quiet);
    if plan.persistent {
        for i in 0..plan.subscribers {
            wipe_session(target, &persistent_id(i)).await?;
        }
    }
    let subs = connect_all(target, plan, true, 0).await?;
    let udp = matches!(publishers, Publishers::Spawn(_));
    let pubs = match publishers {
        Publishers::Mqtt => connect_all(target, plan, false, subs.len()).await?,
        Publishers::Spawn(_) => Vec::new(),
    };
    Live::add(&live.connected, (subs.len() + pubs.len()) as u64);
    let cpu0 = broker.and_then(|b| b.cpu_s());
    let t0 = stats::now_ns();

    let stop = CancellationToken::new();
    let mut sub_tasks = JoinSet::new();
    for (stream, rbuf) in subs {
        let spec = SubSpec {
            keep_latency: plan.latency,
            keep_alive: target.keep_alive,
        };
        sub_tasks.spawn(subscriber::run(
            stream,
            rbuf,
            spec,
            live.clone(),
            stop.clone(),
        ));
    }
    let mut pub_tasks = match publishers {
        Publishers::Spawn(spawn) => spawn(live.clone()),
        Publishers::Mqtt => JoinSet::new(),
    };
    for (i, (stream, rbuf)) in pubs.into_iter().enumerate() {
        let spec = PubSpec {
            id: u32::try_from(i).unwrap_or(u32::MAX),
            topic: plan.topic.replace("{i}", &i.to_string()),
            qos: plan.qos,
            payload_len: plan.payload,
            window: plan.inflight,
            rate: plan.rate,
            duration: plan.duration,
            grace: DRAIN_MAX,
        };
        pub_tasks.spawn(publisher::run(stream, rbuf, spec, live.clone()));
    }
    let mut outcomes: Vec<PubOutcome> = Vec::new();
    while let Some(r) = pub_tasks.join_next().await {
        outcomes.push(r.unwrap_or_else(|e| PubOutcome {
            error: Some(e.to_string()),
            ..Default::default()
        }));
    }
    let pub_end = stats::now_ns();
    let sent: u64 = outcomes.iter().map(|o| o.sent).sum();
    let expected = (plan.all_to_all && plan.publishers > 0).then(|| sent * plan.subscribers as u64);
    if plan.publishers == 0 {
        tokio::time::sleep(plan.duration).await;
    } else if plan.subscribers > 0 {
        settle(&live, expected).await;
    }
    stop.cancel();
    let mut observations: Vec<SubObservation> = Vec::new();
    while let Some(r) = sub_tasks.join_next().await {
        match r {
            Ok((obs, err)) => {
                if let Some(e) = err {
                    result.note_error(format!("subscriber: {e}"));
                }
                observations.push(obs);
            }
            Err(e) => result.note_error(format!("subscriber task: {e}")),
        }
    }
    progress.finish();
    let cpu1 = broker.and_then(|b| b.cpu_s());

    for o in &outcomes {
        if let Some(e) = &o.error {
            result.note_error(format!("publisher: {e}"));
        }
    }
    if plan.persistent {
        for i in 0..plan.subscribers {
            if let Err(e) = wipe_session(target, &persistent_id(i)).await {
                result.note_error(format!("removing the persistent session: {e}"));
            }
        }
    }
    result.sent = sent;
    result.acked = outcomes.iter().map(|o| o.acked).sum();
    if udp {
        result.retransmits = Some(outcomes.iter().map(|o| o.retransmits).sum());
    }
    add_observations(&mut result, &mut observations, expected, plan.publishers);
    let end = if plan.subscribers > 0 {
        Live::get(&live.last_rx_ns).max(t0)
    } else {
        pub_end
    };
    result.elapsed_s = (end - t0) as f64 / 1e9;
    let count = if plan.subscribers > 0 {
        result.received
    } else {
        result.sent
    };
    result.msgs_per_s = count as f64 / result.elapsed_s.max(1e-9);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        result.broker_cpu_s = Some(b - a);
        result.msgs_per_cpu_s = Some(count as f64 / (b - a).max(0.01));
    }
    result.broker_rss_kib = broker.and_then(|b| b.rss_kib());
    Ok(result)
}

/// Waits until every expected delivery arrived, or deliveries stopped coming.
pub async fn settle(live: &Live, expected: Option<u64>) {
    let deadline = tokio::time::Instant::now() + DRAIN_MAX;
    let mut last = Live::get(&live.received);
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = tokio::time::Instant::now();
        let got = Live::get(&live.received);
        if expected.is_some_and(|e| got >= e) || now >= deadline {
            return;
        }
        if got != last {
            last = got;
            quiet_since = now;
        } else if now - quiet_since >= SETTLE {
            return;
        }
    }
}

/// Adds the subscribers' observations to `result`: received, duplicates, reordering, loss
/// against `expected` (or gaps when unknown), latency; only publisher ids below `publishers`
/// count when there are publishers.
pub fn add_observations(
    result: &mut BenchResult,
    observations: &mut [SubObservation],
    expected: Option<u64>,
    publishers: usize,
) {
    let mut unique = 0;
    let mut gaps = 0;
    let mut samples = Vec::new();
    for o in observations.iter_mut() {
        for (publisher, t) in &o.tracks {
            // Only our own publishers count in composite runs; `sub` alone counts everyone.
            if publishers > 0 && usize::try_from(*publisher).map_or(true, |p| p >= publishers) {
                continue;
            }
            unique += t.unique;
            gaps += t.gaps();
            result.duplicates += t.duplicates;
            result.reordered += t.reordered;
            result.received += t.unique + t.duplicates;
        }
        result.received += o.foreign;
        samples.append(&mut o.latencies);
    }
    result.expected = expected;
    result.lost = match expected {
        Some(e) => e.saturating_sub(unique),
        None => gaps,
    };
    result.latency = stats::percentiles(&mut samples);
}

type Conn = (tokio::net::TcpStream, BytesMut);

/// Connects with a clean session and disconnects: the broker discards any session `id` had
/// (MQTT-3.1.2-6), so a persistent run starts empty and leaves nothing behind.
async fn wipe_session(target: &Target, id: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut rbuf = BytesMut::new();
    let mut s = target
        .mqtt_session(0, id, true, None, &mut rbuf)
        .await
        .map_err(|e| anyhow::anyhow!("clean connect of {id}: {e}"))?;
    s.write_all(&[0xE0, 0]).await?;
    Ok(())
}

/// Connects the plan's subscribers (`subscribe`) or publishers, all at once.
async fn connect_all(
    target: &Target,
    plan: &Plan,
    subscribe: bool,
    offset: usize,
) -> anyhow::Result<Vec<Conn>> {
    let count = if subscribe {
        plan.subscribers
    } else {
        plan.publishers
    };
    let mut set = JoinSet::new();
    for i in 0..count {
        let target = target.clone();
        let role = if subscribe { "s" } else { "p" };
        let persistent = subscribe && plan.persistent;
        let id = if persistent {
            persistent_id(i)
        } else {
            format!("{}-{role}{i}", plan.client_prefix)
        };
        let filter = plan.filter.replace("{i}", &i.to_string());
        let qos = plan.qos;
        set.spawn(async move {
            let mut rbuf = BytesMut::with_capacity(64 * 1024);
            let sub = subscribe.then_some((filter.as_str(), qos));
            let stream = target
                .mqtt_session(offset + i, &id, !persistent, sub, &mut rbuf)
                .await?;
            Ok::<_, ConnectError>((i, stream, rbuf))
        });
    }
    let mut conns = Vec::with_capacity(count);
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(c)) => conns.push(c),
            Ok(Err(e)) => anyhow::bail!("cannot connect: {e}"),
            Err(e) => anyhow::bail!("connect task: {e}"),
        }
    }
    conns.sort_by_key(|(i, _, _)| *i);
    Ok(conns.into_iter().map(|(_, s, b)| (s, b)).collect())
}
