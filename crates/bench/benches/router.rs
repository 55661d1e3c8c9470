//! Criterion benchmarks of routing through `switchyard_bus::Router`'s public API: matching one
//! topic against a trie holding 100,000 filters (exact, `+` and `#`), and fanning one message out
//! to 1, 100 and 10,000 subscribers of one topic.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use switchyard_bus::{Metrics, Outbox, Router, SharedStrategy, SubOptions};
use switchyard_core::{ClientId, Message, QoS, SessionId, SubscriptionFilter, TopicName};

fn outbox(id: u64, metrics: &Arc<Metrics>) -> Arc<Outbox> {
    let o = Arc::new(Outbox::new(
        SessionId(id),
        ClientId::new(format!("c{id}")),
        0,
        true,
        metrics.clone(),
    ));
    o.set_online(true);
    o
}

fn filter(s: &str) -> SubscriptionFilter {
    SubscriptionFilter::parse(s, 0).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn message(topic: &str) -> Arc<Message> {
    let t = TopicName::new(topic).unwrap_or_else(|e| panic!("{topic}: {e}"));
    Arc::new(Message::new(t, vec![0u8; 64], QoS::AtMostOnce, false))
}

/// 100,000 filters shaped like a device fleet: 90% exact `site/{s}/dev/{d}/temp`, 9% `+` per
/// device kind, 1% `#` per site.
fn fleet(router: &Router, metrics: &Arc<Metrics>) {
    for i in 0..100_000u64 {
        let (site, dev) = (i % 100, i / 100);
        let f = match i % 100 {
            0 => format!("site/{site}/#"),
            1..=9 => format!("site/{site}/dev/+/kind{dev}"),
            _ => format!("site/{site}/dev/{dev}/temp"),
        };
        router.subscribe(&filter(&f), outbox(i, metrics), SubOptions::default());
    }
}

fn trie_match(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::default());
    let router = Router::new(SharedStrategy::RoundRobin, false);
    fleet(&router, &metrics);
    let mut g = c.benchmark_group("match_100k_filters");
    g.throughput(Throughput::Elements(1));
    for topic in [
        "site/42/dev/517/temp",
        "site/42/dev/9/kind9",
        "nobody/listens/here",
    ] {
        let msg = message(topic);
        g.bench_with_input(BenchmarkId::from_parameter(topic), &msg, |b, msg| {
            b.iter(|| black_box(router.route(msg)).len())
        });
    }
    g.finish();
}

fn fan_out(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::default());
    let mut g = c.benchmark_group("fan_out");
    for n in [1u64, 100, 10_000] {
        let router = Router::new(SharedStrategy::RoundRobin, false);
        let boxes: Vec<Arc<Outbox>> = (0..n).map(|i| outbox(i, &metrics)).collect();
        for o in &boxes {
            router.subscribe(&filter("bench/fanout"), o.clone(), SubOptions::default());
        }
        let msg = message("bench/fanout");
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("route", n), &msg, |b, msg| {
            b.iter(|| black_box(router.route(msg)).len())
        });
        // Route and push into every outbox, then drain so queues stay short: the publisher's
        // whole share of a fan-out.
        g.bench_with_input(BenchmarkId::new("route_push", n), &msg, |b, msg| {
            let mut sink = Vec::new();
            b.iter(|| {
                for (o, d) in router.route(msg) {
                    o.push(d);
                }
                let now = std::time::Instant::now();
                for o in &boxes {
                    o.drain(now, |_| true, &mut sink);
                    sink.clear();
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, trie_match, fan_out);
criterion_main!(benches);
