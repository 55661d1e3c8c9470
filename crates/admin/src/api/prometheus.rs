//! `GET /api/v5/prometheus/stats`: Prometheus text exposition format 0.0.4. Connections and
//! sessions by protocol, every bus metric (messages received by QoS, sent, dropped, queue
//! drops), routes and retained count, the counters of every authenticator, and DTLS handshakes
//! and peers per DTLS listener. Gauge vs counter follows the bus's own split.

use super::{broker, St};
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;

const GAUGES: [&str; 4] = [
    "connections.count",
    "sessions.count",
    "subscriptions.count",
    "retained.count",
];

fn metric_name(dotted: &str) -> String {
    let mut s = String::from("switchyard_");
    s.extend(
        dotted
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
    );
    s
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Counters of every authenticator in the chain, labelled by its id (issue 18 §5).
fn authn_metrics(out: &mut String, statuses: &[switchyard_auth::AuthnStatus]) {
    type Field = fn(&switchyard_auth::AuthnStatus) -> u64;
    let families: [(&str, &str, Field); 6] = [
        ("total", "Times the authenticator was asked.", |s| s.total),
        ("success", "Clients it accepted.", |s| s.success),
        ("failed", "Clients it refused.", |s| s.failed),
        (
            "nomatch",
            "Clients it ignored (unknown, unreachable, timed out).",
            |s| s.nomatch,
        ),
        ("timeouts", "Requests that ran into its timeout.", |s| {
            s.timeouts
        }),
        ("cache_hits", "Answers taken from the result cache.", |s| {
            s.cache_hits
        }),
    ];
    for (name, help, get) in families {
        let metric = format!("switchyard_authn_{name}");
        family(out, &metric, "counter", help);
        for s in statuses {
            let _ = writeln!(out, "{metric}{{authenticator=\"{}\"}} {}", s.id, get(s));
        }
    }
}

/// Counters of every authorization source, labelled by its type.
fn authz_metrics(out: &mut String, statuses: &[switchyard_auth::SourceStatus]) {
    type Field = fn(&switchyard_auth::SourceStatus) -> u64;
    let families: [(&str, &str, Field); 6] = [
        ("total", "Operations the source was asked about.", |s| {
            s.total
        }),
        ("allow", "Operations it allowed.", |s| s.allow),
        ("deny", "Operations it denied.", |s| s.deny),
        ("nomatch", "Operations it had no rule for.", |s| s.nomatch),
        (
            "ignore",
            "Operations it could not answer (unreachable, timed out).",
            |s| s.ignore,
        ),
        ("timeouts", "Requests that ran into its timeout.", |s| {
            s.timeouts
        }),
    ];
    for (name, help, get) in families {
        let metric = format!("switchyard_authz_source_{name}");
        family(out, &metric, "counter", help);
        for s in statuses {
            let _ = writeln!(out, "{metric}{{source=\"{}\"}} {}", s.kind, get(s));
        }
    }
}

/// Every DTLS listener's handshake counters and peers, labelled by listener id (issue 19).
fn dtls_metrics(out: &mut String) {
    let listeners = switchyard_net::dtls::all_stats();
    let Some((_, first)) = listeners.first() else {
        return;
    };
    for (i, (name, _)) in first.snapshot().into_iter().enumerate() {
        let metric = format!("switchyard_dtls_{name}");
        let gauge = matches!(name, "peers" | "handshaking");
        let help = if gauge {
            "DTLS peers of the listener (in handshake or established) now."
        } else {
            "DTLS handshakes of the listener, by outcome."
        };
        family(out, &metric, if gauge { "gauge" } else { "counter" }, help);
        for (id, stats) in &listeners {
            let value = stats.snapshot().get(i).map_or(0, |(_, v)| *v);
            let _ = writeln!(out, "{metric}{{listener=\"{id}\"}} {value}");
        }
    }
}

/// The exposition text.
pub async fn stats(st: St) -> impl IntoResponse {
    let st = &st.0;
    let mut out = String::new();
    let clients = st.ctx.bus.clients();
    family(
        &mut out,
        "switchyard_connections",
        "gauge",
        "Open connections by protocol.",
    );
    for (ns, proto) in st.ctx.gateways.iter().map(|g| (g.namespace, g.proto_name)) {
        let n = clients
            .iter()
            .filter(|c| c.connected && c.info.namespace.0 == ns)
            .count();
        let _ = writeln!(
            out,
            "switchyard_connections{{protocol=\"{proto}\",namespace=\"{ns}\"}} {n}"
        );
    }
    family(
        &mut out,
        "switchyard_sessions",
        "gauge",
        "Sessions held (online and offline) by protocol namespace.",
    );
    for (ns, (_, sessions)) in broker::per_namespace(st) {
        let _ = writeln!(out, "switchyard_sessions{{namespace=\"{ns}\"}} {sessions}");
    }
    let mqueue_dropped: u64 = clients.iter().map(|c| c.mqueue_dropped).sum();
    family(
        &mut out,
        "switchyard_mqueue_dropped",
        "gauge",
        "Messages dropped from the queues of sessions that exist now.",
    );
    let _ = writeln!(out, "switchyard_mqueue_dropped {mqueue_dropped}");
    family(
        &mut out,
        "switchyard_routes",
        "gauge",
        "Distinct subscription filters (topics) in the route table.",
    );
    let _ = writeln!(out, "switchyard_routes {}", broker::topic_count(st));
    let snapshot = st.ctx.bus.metrics().snapshot();
    let by_qos: Vec<(&str, u64)> = snapshot
        .iter()
        .filter_map(|(n, v)| {
            let q = n.strip_prefix("messages.qos")?.strip_suffix(".received")?;
            Some((q, *v))
        })
        .collect();
    family(
        &mut out,
        "switchyard_messages_received_by_qos",
        "counter",
        "Messages received from publishers by QoS.",
    );
    for (q, v) in by_qos {
        let _ = writeln!(
            out,
            "switchyard_messages_received_by_qos{{qos=\"{q}\"}} {v}"
        );
    }
    for (dotted, value) in snapshot {
        let name = metric_name(dotted);
        let kind = if GAUGES.contains(&dotted) {
            "gauge"
        } else {
            "counter"
        };
        family(&mut out, &name, kind, &format!("Bus metric {dotted}."));
        let _ = writeln!(out, "{name} {value}");
    }
    authn_metrics(&mut out, &st.ctx.chain.statuses());
    authz_metrics(&mut out, &st.ctx.authz.source_statuses());
    dtls_metrics(&mut out);
    family(
        &mut out,
        "switchyard_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
    );
    let _ = writeln!(
        out,
        "switchyard_uptime_seconds {}",
        st.ctx.bus.uptime().as_secs()
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
