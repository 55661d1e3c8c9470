//! Webhook requests per second (issue 17's benchmark): a bus, the rule engine with one rule
//! (`SELECT * FROM "bench/#"` → `http:hook`) and an axum server on loopback that answers 200.
//! Publishes N messages as fast as `BusHandle::publish` takes them, then waits until the action
//! counted N successes. Run in release: `cargo run --release -p switchyard-rules --example
//! webhook_rate -- [N] [inflight_window] [pool_size]`.

use axum::routing::post;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::BusHandle;
use switchyard_core::{Message, QoS, TopicName};
use switchyard_rules::RuleEngine;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let window: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let pool: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    let app = axum::Router::new().route(
        "/*path",
        post(move |_body: String| {
            let h = h.clone();
            async move {
                h.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let bus = BusHandle::new(Default::default());
    let engine = RuleEngine::new(
        bus.clone(),
        "bench@127.0.0.1",
        None,
        true,
        CancellationToken::new(),
    );
    engine.attach();
    engine.create_connector(
        &json!({"type": "http", "name": "hook", "url": format!("http://{addr}/in"),
        "pool_size": pool, "resource_opts": {"health_check_interval": "100ms"}}),
    )?;
    engine.create_action(&json!({"type": "http", "name": "hook", "connector": "hook",
        "parameters": {"path": "/${topic}", "body": "{\"t\":\"${topic}\",\"p\":${payload}}"},
        "resource_opts": {"inflight_window": window, "request_ttl": "infinity"}}))?;
    engine.create_rule(
        &json!({"id": "bench", "sql": "SELECT topic, payload FROM \"bench/#\"",
        "actions": ["http:hook"]}),
    )?;
    while engine.get_connector("http:hook")?["status"] != json!("connected") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let topic = TopicName::new("bench/1").map_err(|e| format!("{e:?}"))?;
    let start = Instant::now();
    for i in 0..n {
        bus.publish(Message::new(
            topic.clone(),
            format!("{{\"seq\":{i}}}"),
            QoS::AtMostOnce,
            false,
        ));
    }
    let published = start.elapsed();
    let success = || {
        engine
            .action_metrics("http:hook")
            .ok()
            .and_then(|m| m["metrics"]["success"].as_u64())
            .unwrap_or(0)
    };
    while success() < n {
        if start.elapsed() > Duration::from_secs(300) {
            return Err(format!("only {} of {n} delivered", success()).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = start.elapsed();
    println!(
        "{n} webhook requests (inflight_window {window}, pool_size {pool}): {:.0} requests/s; publishing took {:.3}s ({:.0} msg/s), server saw {}",
        n as f64 / total.as_secs_f64(),
        published.as_secs_f64(),
        n as f64 / published.as_secs_f64(),
        hits.load(Ordering::Relaxed)
    );
    Ok(())
}
