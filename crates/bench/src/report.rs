//! Results and how they are shown: the [`BenchResult`] record (one JSON line with `--json`),
//! the final table, the live progress bar on a terminal, and the broker-process sampling
//! (CPU seconds from /proc/PID/stat, RSS from /proc/PID/status) behind `--broker-pid`.

use crate::stats::{Live, Percentiles};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One scenario's outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BenchResult {
    /// Subcommand: conn, pub, sub, fanin, fanout, latency, sn-pub, coap-pub, coap-observe.
    pub scenario: String,
    /// Human name, e.g. "fanin 8->1 qos1"; the key `summarize` groups by.
    pub name: String,
    /// Which broker this ran against (free text from `--label`).
    pub label: String,
    /// Broker address.
    pub broker: String,
    /// QoS used.
    pub qos: u8,
    /// Payload bytes.
    pub payload: usize,
    /// QoS 1/2 window per publisher.
    pub inflight: u16,
    /// Publishing connections.
    pub publishers: usize,
    /// Subscribing connections.
    pub subscribers: usize,
    /// Measured seconds (first publish to last delivery; connect phase for `conn`).
    pub elapsed_s: f64,
    /// Publishes written.
    pub sent: u64,
    /// Publishes acknowledged.
    pub acked: u64,
    /// Deliveries received (duplicates included).
    pub received: u64,
    /// Deliveries that should have arrived, when known.
    pub expected: Option<u64>,
    /// Deliveries that never arrived (expected minus distinct received; gaps for `sub`).
    pub lost: u64,
    /// Deliveries received twice.
    pub duplicates: u64,
    /// Deliveries that arrived after a later one from the same publisher.
    pub reordered: u64,
    /// Retransmitted requests (UDP clients: MQTT-SN QoS 1, CoAP CON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retransmits: Option<u64>,
    /// Deliveries (or, without subscribers, publishes) per second.
    pub msgs_per_s: f64,
    /// Latency percentiles.
    pub latency: Option<Percentiles>,
    /// Connections established (`conn`).
    pub connections: Option<u64>,
    /// Connections established per second (`conn`).
    pub conn_per_s: Option<f64>,
    /// Set when the tool stopped at its own file or port limit.
    pub limit_reached: Option<String>,
    /// Broker CPU seconds during the measurement (with `--broker-pid`).
    pub broker_cpu_s: Option<f64>,
    /// Deliveries per broker CPU second.
    pub msgs_per_cpu_s: Option<f64>,
    /// Broker RSS at the end of the measurement, KiB.
    pub broker_rss_kib: Option<u64>,
    /// (RSS with the connections up − RSS before) / connections, KiB (`conn`).
    pub rss_per_conn_kib: Option<f64>,
    /// Count of connections or flows that failed.
    pub failures: u64,
    /// The first few failure messages.
    pub errors: Vec<String>,
}

impl BenchResult {
    /// Keeps at most a handful of distinct error messages.
    pub fn note_error(&mut self, e: String) {
        self.failures += 1;
        if self.errors.len() < 5 && !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }

    /// Prints the result as a two-column table.
    pub fn print_table(&self) {
        let mut rows: Vec<(&str, String)> = vec![
            ("scenario", self.name.clone()),
            ("broker", format!("{} {}", self.label, self.broker)),
            ("elapsed", format!("{:.2} s", self.elapsed_s)),
        ];
        if self.connections.is_none() {
            rows.push(("sent / acked", format!("{} / {}", self.sent, self.acked)));
            rows.push(("received", self.received.to_string()));
            if let Some(e) = self.expected {
                rows.push(("expected", e.to_string()));
            }
            rows.push((
                "lost / dup / reordered",
                format!("{} / {} / {}", self.lost, self.duplicates, self.reordered),
            ));
            if let Some(r) = self.retransmits {
                rows.push(("retransmits", r.to_string()));
            }
            rows.push(("msg/s", format!("{:.0}", self.msgs_per_s)));
        }
        if let Some(l) = self.latency {
            rows.push((
                "latency p50/p99/p999/max",
                format!(
                    "{:.0} / {:.0} / {:.0} / {:.0} us",
                    l.p50_us, l.p99_us, l.p999_us, l.max_us
                ),
            ));
        }
        if let (Some(c), Some(r)) = (self.connections, self.conn_per_s) {
            rows.push(("connections", c.to_string()));
            rows.push(("connections/s", format!("{r:.0}")));
        }
        if let Some(l) = &self.limit_reached {
            rows.push(("stopped at limit", l.clone()));
        }
        if let Some(c) = self.broker_cpu_s {
            rows.push(("broker CPU", format!("{c:.2} s")));
        }
        if let Some(m) = self.msgs_per_cpu_s {
            rows.push(("msg per broker CPU-s", format!("{m:.0}")));
        }
        if let Some(r) = self.broker_rss_kib {
            rows.push(("broker RSS", format!("{r} KiB")));
        }
        if let Some(r) = self.rss_per_conn_kib {
            rows.push(("broker RSS per connection", format!("{r:.2} KiB")));
        }
        if self.failures > 0 {
            rows.push((
                "failures",
                format!("{} ({})", self.failures, self.errors.join("; ")),
            ));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            println!("{k:<width$}  {v}");
        }
    }
}

/// A broker process to sample.
#[derive(Debug, Clone, Copy)]
pub struct BrokerProc(pub u32);

impl BrokerProc {
    /// utime + stime in seconds (USER_HZ is 100 on Linux; fields 14 and 15 of proc(5) stat).
    pub fn cpu_s(self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).ok()?;
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        let rest = stat.get(stat.rfind(')')? + 1..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / 100.0)
    }

    /// Resident set size in KiB (VmRSS of proc(5) status).
    pub fn rss_kib(self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// A live progress line on a terminal; nothing otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts refreshing from `live` when stdout is a terminal and `quiet` is false.
    pub fn start(live: Arc<Live>, quiet: bool) -> Self {
        if quiet || !std::io::stdout().is_terminal() {
            return Progress {
                bar: None,
                task: None,
            };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let b = bar.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut last = (0u64, 0u64, started);
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let (s, r) = (Live::get(&live.sent), Live::get(&live.received));
                let now = Instant::now();
                let dt = (now - last.2).as_secs_f64().max(1e-3);
                b.set_message(format!(
                    "conns {}  sent {} ({:.0}/s)  acked {}  recv {} ({:.0}/s)",
                    Live::get(&live.connected),
                    s,
                    (s - last.0) as f64 / dt,
                    Live::get(&live.acked),
                    r,
                    (r - last.1) as f64 / dt,
                ));
                b.tick();
                last = (s, r, now);
            }
        });
        Progress {
            bar: Some(bar),
            task: Some(task),
        }
    }

    /// Removes the line.
    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_our_own_process() {
        let me = BrokerProc(std::process::id());
        assert!(me.cpu_s().is_some());
        assert!(me.rss_kib().unwrap_or(0) > 0);
        assert!(BrokerProc(u32::MAX).cpu_s().is_none());
    }

    #[test]
    fn json_round_trips() {
        let r = BenchResult {
            name: "x".into(),
            latency: Some(Percentiles::default()),
            ..Default::default()
        };
        let line = serde_json::to_string(&r).unwrap_or_default();
        let back: BenchResult = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(back.name, "x");
        assert!(back.latency.is_some());
    }
}
