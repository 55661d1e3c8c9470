//! `summarize`: turns the JSON lines of repeated runs against several brokers into the Markdown
//! table of BENCHMARKS.md — the median of each metric per (scenario, broker) and the ratios of
//! one broker (ours) to each of the others.
//!
//! Owns: which metrics each scenario reports and which direction is better. Loss and
//! duplicates are shown as the worst repetition, not the median: one lossy run matters.

use crate::report::BenchResult;
use std::collections::BTreeMap;
use std::fmt::Write;

struct Metric {
    title: &'static str,
    higher_is_better: bool,
    worst_of: bool,
    get: fn(&BenchResult) -> Option<f64>,
}

fn metrics(scenario: &str) -> Vec<Metric> {
    let m = |title, higher_is_better, get| Metric {
        title,
        higher_is_better,
        worst_of: false,
        get,
    };
    match scenario {
        "conn" => vec![
            m("connections", true, |r| r.connections.map(|c| c as f64)),
            m("connections/s", true, |r| r.conn_per_s),
            m("RSS KiB per connection", false, |r| r.rss_per_conn_kib),
        ],
        "latency" => vec![
            m("p50 us", false, |r| r.latency.map(|l| l.p50_us)),
            m("p99 us", false, |r| r.latency.map(|l| l.p99_us)),
            m("p999 us", false, |r| r.latency.map(|l| l.p999_us)),
            m("max us", false, |r| r.latency.map(|l| l.max_us)),
            Metric {
                title: "lost (worst run)",
                higher_is_better: false,
                worst_of: true,
                get: |r| Some(r.lost as f64),
            },
        ],
        _ => vec![
            m("msg/s", true, |r| Some(r.msgs_per_s)),
            m("msg per broker CPU-s", true, |r| r.msgs_per_cpu_s),
            Metric {
                title: "lost (worst run)",
                higher_is_better: false,
                worst_of: true,
                get: |r| Some(r.lost as f64),
            },
            Metric {
                title: "duplicates (worst run)",
                higher_is_better: false,
                worst_of: true,
                get: |r| Some(r.duplicates as f64),
            },
        ],
    }
}

/// The median (upper median for an even count); `None` for no values.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[values.len() / 2])
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the summary table of `results`; `ours` names the broker the ratios are about.
pub fn render(results: &[BenchResult], ours: &str) -> String {
    let mut labels: Vec<&str> = Vec::new();
    let mut names: Vec<(&str, &str)> = Vec::new();
    let mut groups: BTreeMap<(&str, &str), Vec<&BenchResult>> = BTreeMap::new();
    for r in results {
        if !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
        if !names.iter().any(|(n, _)| *n == r.name) {
            names.push((&r.name, &r.scenario));
        }
        groups.entry((&r.name, &r.label)).or_default().push(r);
    }
    let others: Vec<&str> = labels.iter().copied().filter(|l| *l != ours).collect();
    let mut out = String::new();
    let _ = write!(out, "| scenario | metric |");
    for l in &labels {
        let _ = write!(out, " {l} |");
    }
    for o in &others {
        let _ = write!(out, " {ours}/{o} |");
    }
    out.push('\n');
    out.push_str(&"|---".repeat(2 + labels.len() + others.len()));
    out.push_str("|\n");
    for (name, scenario) in names {
        for metric in metrics(scenario) {
            let value = |label: &str| -> Option<f64> {
                let runs = groups.get(&(name, label))?;
                let mut v: Vec<f64> = runs.iter().filter_map(|r| (metric.get)(r)).collect();
                if metric.worst_of {
                    v.into_iter().reduce(f64::max)
                } else {
                    median(&mut v)
                }
            };
            let arrow = if metric.higher_is_better {
                "↑"
            } else {
                "↓"
            };
            let _ = write!(out, "| {name} | {} {arrow} |", metric.title);
            for l in &labels {
                let cell = value(l).map(fmt_num).unwrap_or_else(|| "–".into());
                let _ = write!(out, " {cell} |");
            }
            for o in &others {
                let cell = match (value(ours), value(o), metric.worst_of) {
                    (Some(a), Some(b), false) if b > 0.0 => format!("{:.2}x", a / b),
                    _ => "–".into(),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }
    out
}

/// Renders one row per scenario of one broker's runs (the gateway and durability runs): median
/// msg/s, msg per broker CPU-s and retransmissions, worst loss and duplicates, and msg/s as a
/// ratio to the median of the `reference` scenario from the same results.
pub fn render_against(results: &[BenchResult], reference: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    let mut groups: BTreeMap<&str, Vec<&BenchResult>> = BTreeMap::new();
    for r in results {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
        groups.entry(&r.name).or_default().push(r);
    }
    let med = |name: &str, get: fn(&BenchResult) -> Option<f64>| {
        let mut v: Vec<f64> = groups
            .get(name)
            .map(|rs| rs.iter().filter_map(|r| get(r)).collect())
            .unwrap_or_default();
        median(&mut v)
    };
    let worst = |name: &str, get: fn(&BenchResult) -> u64| {
        groups
            .get(name)
            .and_then(|rs| rs.iter().map(|r| get(r)).max())
    };
    let base = med(reference, |r| Some(r.msgs_per_s));
    let mut out = format!(
        "| scenario | runs | msg/s ↑ | msg per broker CPU-s ↑ | lost (worst run) | duplicates (worst run) | retransmits (median) | msg/s / {reference} |\n"
    );
    out.push_str(&"|---".repeat(8));
    out.push_str("|\n");
    let cell = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "–".into());
    for name in names {
        let rate = med(name, |r| Some(r.msgs_per_s));
        let ratio = match (rate, base) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "–".into(),
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {ratio} |",
            groups.get(name).map_or(0, Vec::len),
            cell(rate),
            cell(med(name, |r| r.msgs_per_cpu_s)),
            cell(worst(name, |r| r.lost).map(|v| v as f64)),
            cell(worst(name, |r| r.duplicates).map(|v| v as f64)),
            cell(med(name, |r| r.retransmits.map(|v| v as f64))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, label: &str, rate: f64) -> BenchResult {
        BenchResult {
            scenario: "fanin".into(),
            name: name.into(),
            label: label.into(),
            msgs_per_s: rate,
            ..Default::default()
        }
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut []), None);
        let rs = vec![
            r("fanin", "mosq", 10.0),
            r("fanin", "ours", 30.0),
            r("fanin", "mosq", 20.0),
            r("fanin", "ours", 50.0),
            r("fanin", "mosq", 100.0),
            r("fanin", "ours", 40.0),
        ];
        let table = render(&rs, "ours");
        assert!(table.starts_with("| scenario | metric | mosq | ours | ours/mosq |"));
        assert!(
            table.contains("| fanin | msg/s ↑ | 20 | 40 | 2.00x |"),
            "{table}"
        );
    }

    #[test]
    fn rows_against_a_reference_scenario() {
        let mut lossy = r("sn", "ours", 30.0);
        lossy.lost = 7;
        lossy.retransmits = Some(4);
        let rs = vec![
            r("fanin", "ours", 100.0),
            r("fanin", "ours", 80.0),
            r("fanin", "ours", 90.0),
            r("sn", "ours", 45.0),
            lossy,
            r("sn", "ours", 60.0),
        ];
        let table = render_against(&rs, "fanin");
        assert!(
            table.contains("| fanin | 3 | 90 | – | 0 | 0 | – | 1.00x |"),
            "{table}"
        );
        assert!(
            table.contains("| sn | 3 | 45 | – | 7 | 0 | 4 | 0.50x |"),
            "{table}"
        );
    }
}
