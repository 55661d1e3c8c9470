//! `coap-pub` over DTLS (`--dtls-psk identity:key` or `--dtls-ecdsa`): every client handshakes
//! first with the client side of `switchyard_net::dtls` (timed: the handshake rate is reported),
//! then publishes POST `/ps/...` over its association exactly as the plain publishers do, so the
//! two runs compare the gateway's cost of DTLS.
//!
//! Owns: the DTLS clients' setup and their publish loop. Must not know: the gateway's insides.

use crate::client::Target;
use crate::coap::{self, Answer, CoapPubSpec, Request, Template};
use crate::gateways::UdpPlan;
use crate::publisher::PubOutcome;
use crate::report::{BenchResult, BrokerProc};
use crate::scenario::{self, Plan, Publishers};
use crate::stats::{self, Live};
use crate::udp;
use coap_lite::RequestType;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_net::dtls::client::{ClientAuth, DtlsClient};
use tokio::task::JoinSet;

/// Handshakes in flight at once during setup (the gateway's `max_handshakes` is 1000 by
/// default; this stays well under it and under its `max_conn_rate` when raised).
const SETUP_CONCURRENCY: usize = 64;

/// How a bench client authenticates: `identity:key`, or `None` for the ECDSA certificate suite.
pub fn auth(psk: Option<&str>) -> anyhow::Result<ClientAuth> {
    match psk {
        Some(s) => {
            let (id, key) = s
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--dtls-psk wants identity:key"))?;
            Ok(ClientAuth::Psk {
                identity: id.as_bytes().to_vec(),
                key: key.as_bytes().to_vec(),
            })
        }
        None => Ok(ClientAuth::Certificate { cert_pem: None }),
    }
}

/// CoAP publishers over DTLS -> one MQTT subscriber, like `gateways::coap_pub`.
pub async fn coap_pub(
    plan: &Plan,
    _target: &Target,
    u: &UdpPlan,
    auth: ClientAuth,
    broker: Option<BrokerProc>,
    quiet: bool,
) -> anyhow::Result<BenchResult> {
    anyhow::ensure!(
        plan.qos <= 1,
        "coap-pub publishes as NON (QoS 0) or CON (QoS 1)"
    );
    let confirmable = plan.qos == 1;
    let query = format!("qos={}", plan.qos);
    let auth = Arc::new(auth);
    let started = Instant::now();
    let mut setup = JoinSet::new();
    let mut clients = Vec::new();
    let mut failures = Vec::new();
    for i in 0..plan.publishers {
        if setup.len() >= SETUP_CONCURRENCY {
            collect(setup.join_next().await, &mut clients, &mut failures);
        }
        let (gw, auth) = (u.gateway, auth.clone());
        setup.spawn(async move {
            let c = DtlsClient::connect(gw, &auth, None, Duration::from_secs(30)).await;
            (i, c.map_err(|e| e.to_string()))
        });
    }
    while let Some(r) = setup.join_next().await {
        collect(Some(r), &mut clients, &mut failures);
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "dtls handshakes: {} ok, {} failed in {secs:.2} s = {:.0}/s",
        clients.len(),
        failures.len(),
        clients.len() as f64 / secs.max(1e-9)
    );
    let mut prepared = Vec::new();
    for (i, c) in clients {
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
        prepared.push((i, c, template));
    }
    let (rate, duration, payload_len) = (plan.rate, plan.duration, plan.payload);
    let u = u.clone();
    let spawn = move |live: Arc<Live>| {
        let mut tasks = JoinSet::new();
        for (i, c, template) in prepared {
            let spec = CoapPubSpec {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                confirmable,
                payload_len,
                rate,
                duration,
                retry: u.retry_for(i as u64),
            };
            tasks.spawn(publish(c, template, spec, live.clone()));
        }
        tasks
    };
    let mut result = scenario::run_with(
        plan,
        _target,
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

type Setup = Result<(usize, Result<DtlsClient, String>), tokio::task::JoinError>;

fn collect(r: Option<Setup>, clients: &mut Vec<(usize, DtlsClient)>, failures: &mut Vec<String>) {
    match r {
        Some(Ok((i, Ok(c)))) => clients.push((i, c)),
        Some(Ok((i, Err(e)))) => failures.push(format!("client {i}: handshake: {e}")),
        Some(Err(e)) => failures.push(e.to_string()),
        None => {}
    }
}

/// The plain publisher's loop (`coap::publish`) over a DTLS association.
async fn publish(
    mut c: DtlsClient,
    mut template: Template,
    spec: CoapPubSpec,
    live: Arc<Live>,
) -> PubOutcome {
    let mut out = PubOutcome::default();
    let mut payload = vec![0u8; spec.payload_len.max(stats::STAMP_LEN)];
    let start = tokio::time::Instant::now();
    let end = start + spec.duration;
    let mut seq: u64 = 0;
    let mut msg_id = (spec.id as u16).wrapping_mul(7919);
    while tokio::time::Instant::now() < end {
        if udp::budget(start, tokio::time::Instant::now(), spec.rate, seq) == 0 {
            if let Some(due) = udp::next_due(start, spec.rate, seq) {
                tokio::time::sleep_until(due.min(end)).await;
            }
            continue;
        }
        stats::stamp(&mut payload, spec.id, seq, stats::now_ns());
        msg_id = msg_id.wrapping_add(1);
        let token = seq as u32;
        let bytes = template.fill(msg_id, token, &payload).to_vec();
        seq += 1;
        Live::add(&live.sent, 1);
        if let Err(e) = c.send(&bytes).await {
            out.error = Some(e.to_string());
            break;
        }
        if !spec.confirmable {
            continue;
        }
        match exchange(&mut c, &bytes, msg_id, &token.to_be_bytes(), &spec).await {
            Ok(n) => {
                out.retransmits += n;
                out.acked += 1;
                Live::add(&live.acked, 1);
            }
            Err(e) => {
                out.error = Some(format!("message {}: {e}", seq - 1));
                break;
            }
        }
    }
    out.sent = seq;
    out
}

/// Waits for the 2.04 of a CON request already sent, retransmitting as the plain client does.
async fn exchange(
    c: &mut DtlsClient,
    bytes: &[u8],
    msg_id: u16,
    token: &[u8],
    spec: &CoapPubSpec,
) -> Result<u64, String> {
    let mut wait = spec.retry.first;
    let mut retransmits = 0;
    loop {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Ok(d) = c.recv(left).await else { break };
            match coap::answer(&d, msg_id, token) {
                Answer::Response { code: 204, ack } => {
                    if let Some(id) = ack {
                        let _ = c.send(&coap::empty_ack(id)).await;
                    }
                    return Ok(retransmits);
                }
                Answer::Response { code, .. } => {
                    return Err(format!("POST answered {}.{:02}", code / 100, code % 100))
                }
                Answer::Reset => return Err("RST".into()),
                Answer::EmptyAck | Answer::Other => {}
            }
        }
        if retransmits >= u64::from(spec.retry.max_retransmit) {
            return Err("no response".into());
        }
        retransmits += 1;
        wait = wait.saturating_mul(spec.retry.factor);
        c.send(bytes).await.map_err(|e| e.to_string())?;
    }
}
