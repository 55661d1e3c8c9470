//! The gateway scenarios: `sn-pub` (MQTT-SN clients -> one MQTT subscriber), `coap-pub` (CoAP
//! clients -> one MQTT subscriber) and `coap-observe` (one MQTT publisher -> CoAP observers).
//!
//! Owns: setting the UDP clients up before the measurement (handshakes and registrations
//! happen outside the measured window; a client whose setup fails is counted as a failure and
//! left out), and for `coap-observe` the measurement itself: expected notifications are the
//! publisher's messages times the observers that registered.

use crate::client::Target;
use crate::coap::{self, CoapPubSpec, Request, Template};
use crate::publisher::{self, PubOutcome, PubSpec};
use crate::report::{BenchResult, BrokerProc, Progress};
use crate::scenario::{self, Plan, Publishers};
use crate::sn::{self, SnPubSpec};
use crate::stats::{self, Live, SubObservation};
use crate::udp::{self, Retry};
use bytes::BytesMut;
use coap_lite::RequestType;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What the UDP scenarios share.
#[derive(Debug, Clone)]
pub struct UdpPlan {
    /// The gateway's UDP address.
    pub gateway: SocketAddr,
    /// Retransmission of the tool's confirmable requests.
    pub retry: Retry,
    /// For CoAP: ACK_TIMEOUT, random factor, MAX_RETRANSMIT (each client jitters its own).
    pub coap: Option<(Duration, f64, u32)>,
    /// QoS 0 datagrams per system call (MQTT-SN only; 1 = one `send` each).
    pub burst: usize,
}

impl UdpPlan {
    pub(crate) fn retry_for(&self, n: u64) -> Retry {
        match self.coap {
            Some((t, f, m)) => coap::coap_retry(t, f, m, n),
            None => self.retry,
        }
    }
}

/// MQTT-SN publishers -> one MQTT subscriber on `plan.filter`.
pub async fn sn_pub(
    plan: &Plan,
    target: &Target,
    udp_plan: &UdpPlan,
    broker: Option<BrokerProc>,
    quiet: bool,
) -> anyhow::Result<BenchResult> {
    anyhow::ensure!(plan.qos <= 1, "sn-pub publishes at QoS 0 or 1");
    let mut set = JoinSet::new();
    for i in 0..plan.publishers {
        let target = target.clone();
        let (gateway, retry) = (udp_plan.gateway, udp_plan.retry);
        let client_id = format!("{}-sn{i}", plan.client_prefix);
        let topic = plan.topic.replace("{i}", &i.to_string());
        set.spawn(async move {
            let sock = udp::socket(&target, i, gateway)
                .await
                .map_err(|e| e.to_string())?;
            sn::handshake(sock, &client_id, &topic, target.keep_alive, retry)
                .await
                .map(|c| (i, c))
                .map_err(|e| format!("MQTT-SN handshake: {e}"))
        });
    }
    let mut clients = Vec::new();
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(c)) => clients.push(c),
            Ok(Err(e)) => failures.push(e),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let spec = SnPubSpec {
        id: 0,
        qos: plan.qos,
        payload_len: plan.payload,
        rate: plan.rate,
        duration: plan.duration,
        retry: udp_plan.retry,
        burst: udp_plan.burst,
    };
    let spawn = move |live: Arc<Live>| {
        let mut tasks = JoinSet::new();
        for (i, client) in clients {
            let spec = SnPubSpec {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                ..spec.clone()
            };
            tasks.spawn(sn::publish(client, spec, live.clone()));
        }
        tasks
    };
    let mut result = scenario::run_with(
        plan,
        target,
        broker,
        quiet,
        Publishers::Spawn(Box::new(spawn)),
    )
    .await?;
    for f in failures {
        result.note_error(f);
    }
    Ok(result)
}

/// CoAP publishers (POST `/ps/{plan.topic}?qos=`) -> one MQTT subscriber on `plan.filter`.
pub async fn coap_pub(
    plan: &Plan,
    target: &Target,
    udp_plan: &UdpPlan,
    broker: Option<BrokerProc>,
    quiet: bool,
) -> anyhow::Result<BenchResult> {
    anyhow::ensure!(
        plan.qos <= 1,
        "coap-pub publishes as NON (QoS 0) or CON (QoS 1)"
    );
    let confirmable = plan.qos == 1;
    let query = format!("qos={}", plan.qos);
    let mut clients = Vec::new();
    let mut failures = Vec::new();
    for i in 0..plan.publishers {
        let topic = plan.topic.replace("{i}", &i.to_string());
        let mut path = vec!["ps"];
        path.extend(topic.split('/'));
        let template = Template::new(&Request {
            confirmable,
            method: RequestType::Post,
            path: &path,
            query: &[&query],
            observe: None,
            payload_len: plan.payload.max(stats::STAMP_LEN),
        })
        .map_err(|e| anyhow::anyhow!(e))?;
        match udp::socket(target, i, udp_plan.gateway).await {
            Ok(s) => clients.push((i, s, template)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let (rate, duration, payload_len) = (plan.rate, plan.duration, plan.payload);
    let udp_plan = udp_plan.clone();
    let spawn = move |live: Arc<Live>| {
        let mut tasks = JoinSet::new();
        for (i, sock, template) in clients {
            let spec = CoapPubSpec {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                confirmable,
                payload_len,
                rate,
                duration,
                retry: udp_plan.retry_for(i as u64),
            };
            tasks.spawn(coap::publish(sock, template, spec, live.clone()));
        }
        tasks
    };
    let mut result = scenario::run_with(
        plan,
        target,
        broker,
        quiet,
        Publishers::Spawn(Box::new(spawn)),
    )
    .await?;
    for f in failures {
        result.note_error(f);
    }
    Ok(result)
}

/// One MQTT publisher on `plan.topic` at `plan.rate` -> `plan.subscribers` CoAP observers of
/// `/ps/{plan.topic}`. msg/s counts notifications received.
pub async fn coap_observe(
    plan: &Plan,
    target: &Target,
    udp_plan: &UdpPlan,
    broker: Option<BrokerProc>,
    quiet: bool,
) -> anyhow::Result<BenchResult> {
    let live = Arc::new(Live::default());
    let mut result = BenchResult {
        scenario: plan.scenario.clone(),
        name: plan.name.clone(),
        broker: format!("{} + {}", target.broker, udp_plan.gateway),
        qos: plan.qos,
        payload: plan.payload.max(stats::STAMP_LEN),
        inflight: plan.inflight,
        publishers: 1,
        subscribers: plan.subscribers,
        ..Default::default()
    };
    let mut path: Vec<String> = vec!["ps".into()];
    path.extend(plan.topic.split('/').map(String::from));
    let mut set = JoinSet::new();
    for i in 0..plan.subscribers {
        let target = target.clone();
        let gateway = udp_plan.gateway;
        let retry = udp_plan.retry_for(i as u64);
        let path = path.clone();
        set.spawn(async move {
            let sock = udp::socket(&target, i, gateway)
                .await
                .map_err(|e| e.to_string())?;
            let segs: Vec<&str> = path.iter().map(String::as_str).collect();
            let n = u32::try_from(i).unwrap_or(u32::MAX);
            coap::register(sock, n, &segs, retry)
                .await
                .map_err(|e| format!("observe registration: {e}"))
        });
    }
    let mut observers = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(o)) => observers.push(o),
            Ok(Err(e)) => result.note_error(e),
            Err(e) => result.note_error(e.to_string()),
        }
    }
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let stream = target
        .mqtt(0, &format!("{}-p0", plan.client_prefix), None, &mut rbuf)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect the publisher: {e}"))?;
    let progress = Progress::start(live.clone(), quiet);
    Live::add(&live.connected, observers.len() as u64 + 1);
    result.retransmits = Some(observers.iter().map(|o| o.retransmits).sum());
    let registered = observers.len() as u64;
    let cpu0 = broker.and_then(|b| b.cpu_s());
    let t0 = stats::now_ns();
    let stop = CancellationToken::new();
    let mut obs_tasks = JoinSet::new();
    for o in observers {
        obs_tasks.spawn(coap::observe(o, path.clone(), live.clone(), stop.clone()));
    }
    let spec = PubSpec {
        id: 0,
        topic: plan.topic.clone(),
        qos: plan.qos,
        payload_len: plan.payload,
        window: plan.inflight,
        rate: plan.rate,
        duration: plan.duration,
        grace: scenario::DRAIN_MAX,
    };
    let outcome: PubOutcome = publisher::run(stream, rbuf, spec, live.clone()).await;
    let expected = outcome.sent * registered;
    scenario::settle(&live, Some(expected)).await;
    stop.cancel();
    let mut observations: Vec<SubObservation> = Vec::new();
    while let Some(r) = obs_tasks.join_next().await {
        match r {
            Ok((o, err)) => {
                if let Some(e) = err {
                    result.note_error(format!("observer: {e}"));
                }
                observations.push(o);
            }
            Err(e) => result.note_error(format!("observer task: {e}")),
        }
    }
    progress.finish();
    let cpu1 = broker.and_then(|b| b.cpu_s());
    if let Some(e) = outcome.error {
        result.note_error(format!("publisher: {e}"));
    }
    result.sent = outcome.sent;
    result.acked = outcome.acked;
    scenario::add_observations(&mut result, &mut observations, Some(expected), 1);
    let end = Live::get(&live.last_rx_ns).max(t0);
    result.elapsed_s = (end - t0) as f64 / 1e9;
    result.msgs_per_s = result.received as f64 / result.elapsed_s.max(1e-9);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        result.broker_cpu_s = Some(b - a);
        result.msgs_per_cpu_s = Some(result.received as f64 / (b - a).max(0.01));
    }
    result.broker_rss_kib = broker.and_then(|b| b.rss_kib());
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use switchyard_mqttsn::codec::{decode, encode, Packet};
    use tokio::net::UdpSocket;

    fn stamped(publisher: u32, seq: u64) -> Vec<u8> {
        let mut p = vec![0u8; stats::STAMP_LEN];
        stats::stamp(&mut p, publisher, seq, 0);
        p
    }

    #[test]
    fn observers_loss_and_duplicates_add_up() {
        // Two observers of publisher 0's messages 0..4: one misses 2, one gets 3 twice; a
        // payload from an unknown publisher (id 5) is not ours.
        let mut a = SubObservation::default();
        let mut b = SubObservation::default();
        for seq in [0, 1, 3] {
            a.record(&stamped(0, seq), 0, false);
        }
        for seq in [0, 1, 2, 3, 3] {
            b.record(&stamped(0, seq), 0, false);
        }
        b.record(&stamped(5, 0), 0, false);
        let mut result = BenchResult::default();
        scenario::add_observations(&mut result, &mut [a, b], Some(4 * 2), 1);
        assert_eq!(result.lost, 1);
        assert_eq!(result.duplicates, 1);
        assert_eq!(result.received, 3 + 5);
    }

    /// A gateway that accepts CONNECT and REGISTER, drops the first PUBLISH it sees and
    /// PUBACKs every later one.
    async fn lossy_sn_gateway() -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = sock.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let mut dropped = false;
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let reply = match decode(&Bytes::copy_from_slice(&buf[..n])) {
                    Ok(Packet::Connect(_)) => Packet::ConnAck { rc: 0 },
                    Ok(Packet::Register { msg_id, .. }) => Packet::RegAck {
                        topic_id: 1025,
                        msg_id,
                        rc: 0,
                    },
                    Ok(Packet::Publish(_)) if !dropped => {
                        dropped = true;
                        continue;
                    }
                    Ok(Packet::Publish(p)) => Packet::PubAck {
                        topic_id: p.topic_id,
                        msg_id: p.msg_id,
                        rc: 0,
                    },
                    _ => continue,
                };
                let mut out = BytesMut::new();
                let _ = encode(&reply, &mut out);
                let _ = sock.send_to(&out, from).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn sn_qos1_resends_a_lost_publish_and_counts_it() {
        let gw = lossy_sn_gateway().await;
        let target = Target::new(gw, 1, 60);
        let retry = Retry {
            first: Duration::from_millis(50),
            factor: 1,
            max_retransmit: 10,
        };
        let sock = udp::socket(&target, 0, gw)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = sn::handshake(sock, "c", "bench/sn/0", 60, retry)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.topic_id, 1025);
        let spec = SnPubSpec {
            id: 0,
            qos: 1,
            payload_len: 20,
            rate: 0.0,
            duration: Duration::from_millis(100),
            retry,
            burst: 1,
        };
        let live = Arc::new(Live::default());
        let out = sn::publish(client, spec, live).await;
        assert_eq!(out.error, None);
        assert!(out.sent >= 1);
        assert_eq!(out.acked, out.sent, "window 1: every sent message is acked");
        // At least once: a slow machine may resend a later one too (counts, not timings).
        assert!(out.retransmits >= 1, "the dropped PUBLISH was resent");
    }
}
