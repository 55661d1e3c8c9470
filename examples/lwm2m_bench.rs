//! Registration rate and command round-trip latency of the LwM2M gateway with many simulated
//! devices (`switchyard_lwm2m::sim::Device`, one UDP socket and task each) and one rumqttc
//! back-end. Run it against a release broker, with the same machine's numbers for comparison:
//!
//! ```text
//! cargo run --release -- --config config/switchyard.toml &
//! cargo run --release --example lwm2m_bench -- 127.0.0.1:5783 127.0.0.1:1883 1000
//! ```
//!
//! Prints: registrations per second (all devices registering at once), and the p50/p99/max of
//! read round trips (MQTT command → CoAP GET → device reply → MQTT response), one read per
//! device, all in flight together.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use switchyard_lwm2m::sim::Device;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let lwm2m: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:5783").parse()?;
    let mqtt: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:1883").parse()?;
    let n: usize = args.next().as_deref().unwrap_or("1000").parse()?;

    let mut opts = MqttOptions::new("lwm2m-bench", mqtt.ip().to_string(), mqtt.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = AsyncClient::new(opts, 10_000);
    client.subscribe("lwm2m/+/up/resp", QoS::AtMostOnce).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                let _ = tx.send((Instant::now(), p.payload.to_vec()));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let start = Instant::now();
    let (reg_tx, mut reg_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..n {
        let reg_tx = reg_tx.clone();
        tokio::spawn(async move {
            let Ok(mut dev) = Device::bind(lwm2m, &format!("bench-{i}")).await else {
                return;
            };
            let ok = dev.register().await == Some(0x41);
            let _ = reg_tx.send(ok);
            loop {
                dev.serve_for(Duration::from_secs(3600)).await;
            }
        });
    }
    let mut registered = 0;
    for _ in 0..n {
        if reg_rx.recv().await == Some(true) {
            registered += 1;
        }
    }
    let reg_time = start.elapsed();
    println!(
        "{registered}/{n} devices registered in {:.3} s: {:.0} registrations/s",
        reg_time.as_secs_f64(),
        registered as f64 / reg_time.as_secs_f64()
    );
    // Drain the register events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while rx.try_recv().is_ok() {}

    let mut sent = HashMap::new();
    for i in 0..n {
        let cmd = format!(r#"{{"reqID":{i},"msgType":"read","data":{{"path":"/3/0/0"}}}}"#);
        sent.insert(i as u64, Instant::now());
        client
            .publish(
                format!("lwm2m/bench-{i}/dn/dm"),
                QoS::AtMostOnce,
                false,
                cmd,
            )
            .await?;
    }
    let mut rtts = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while rtts.len() < registered {
        let Ok(Some((at, payload))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        if let Some(t0) = v["reqID"].as_u64().and_then(|id| sent.get(&id)) {
            rtts.push(at.duration_since(*t0));
        }
    }
    rtts.sort();
    let pct = |p: f64| {
        let i = ((rtts.len() as f64 * p) as usize).min(rtts.len().saturating_sub(1));
        rtts.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{} read round trips: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        rtts.len(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
