//! `switchyard-bench`: a load generator for any MQTT 3.1.1 broker, in the spirit of emqtt-bench.
//!
//! Owns: the command line and what each subcommand means (`conn`, `pub`, `sub`, `fanin`,
//! `fanout`, `latency`, `summarize`), the runtime, and printing results (a table, or one JSON
//! line per result with `--json`). Packets are hand-rolled ([`wire`]) on a multi-threaded tokio
//! runtime so the tool is not the bottleneck.
//!
//! MQTT-SN (`sn-pub`) and CoAP (`coap-pub`) publishers are planned for when those gateways land.
//!
//! Environment variables: none. (The broker reads every `SWITCHYARD_*` variable as config, so
//! the tool deliberately defines none.)

mod client;
mod conn;
#[cfg(test)]
mod e2e_tests;
mod publisher;
mod report;
mod scenario;
mod stats;
mod subscriber;
mod summary;
mod wire;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "switchyard-bench", version, about = "MQTT load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// Broker address (host:port).
    #[arg(long, short = 'b', default_value = "127.0.0.1:1883")]
    broker: String,
    /// Spread client sockets over this many source addresses 127.0.0.1.. (loopback only).
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Keepalive sent in CONNECT, seconds; clients ping at half of it.
    #[arg(long, default_value_t = 60)]
    keepalive: u16,
    /// QoS of publishes and subscriptions (0, 1 or 2).
    #[arg(long, short = 'q', default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// One JSON line per result instead of a table; no progress line.
    #[arg(long)]
    json: bool,
    /// Name of the broker under test, recorded in results (e.g. mosquitto).
    #[arg(long, default_value = "")]
    label: String,
    /// Result name (default: derived from the scenario and its parameters).
    #[arg(long)]
    name: Option<String>,
    /// PID of the broker, to record its CPU seconds and RSS (Linux /proc).
    #[arg(long)]
    broker_pid: Option<u32>,
}

#[derive(Args, Debug, Clone)]
struct Flow {
    /// Payload size in bytes (at least 20: publisher id, sequence, timestamp).
    #[arg(long, short = 's', default_value_t = 64)]
    payload: usize,
    /// Most unacknowledged QoS 1/2 publishes per publisher.
    #[arg(long, default_value_t = 64)]
    inflight: u16,
    /// How long to publish: 500ms, 10s, 2m.
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Messages per second per publisher (0 = as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// N connections, each subscribing to its own topic, held idle.
    Conn {
        #[command(flatten)]
        common: Common,
        /// Connections to open (stops cleanly at the file limit).
        #[arg(long, short = 'c', default_value_t = 1000)]
        count: usize,
        /// Handshakes in progress at once.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// New connections per second (0 = unlimited).
        #[arg(long, default_value_t = 0.0)]
        conn_rate: f64,
        /// How long to hold the connections once all are up.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        hold: Duration,
    },
    /// P publishers on TOPIC ({i} = publisher index), no subscribers.
    Pub {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        flow: Flow,
        /// Publishing connections.
        #[arg(long, short = 'P', default_value_t = 1)]
        publishers: usize,
        /// Topic; {i} is the publisher index.
        #[arg(long, short = 't', default_value = "bench/{i}")]
        topic: String,
    },
    /// S subscribers on FILTER for the duration; counts gaps, duplicates, reordering.
    Sub {
        #[command(flatten)]
        common: Common,
        /// How long to receive.
        #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Subscribing connections.
        #[arg(long, short = 'S', default_value_t = 1)]
        subscribers: usize,
        /// Filter; {i} is the subscriber index.
        #[arg(long, short = 't', default_value = "bench/#")]
        filter: String,
        /// Keep latency samples (publisher in this process or a synchronised clock only).
        #[arg(long)]
        latency: bool,
    },
    /// P publishers on bench/{i} -> 1 subscriber on bench/#.
    Fanin {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        flow: Flow,
        /// Publishing connections.
        #[arg(long, short = 'P', default_value_t = 8)]
        publishers: usize,
    },
    /// 1 publisher -> S subscribers on one topic.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        flow: Flow,
        /// Subscribing connections.
        #[arg(long, short = 'S', default_value_t = 100)]
        subscribers: usize,
    },
    /// 1 publisher at a fixed rate -> 1 subscriber; latency percentiles.
    Latency {
        #[command(flatten)]
        common: Common,
        /// Payload size in bytes (at least 20).
        #[arg(long, short = 's', default_value_t = 64)]
        payload: usize,
        /// Most unacknowledged QoS 1/2 publishes.
        #[arg(long, default_value_t = 64)]
        inflight: u16,
        /// How long to publish.
        #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Messages per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
    },
    /// Reads JSON result lines (files, or stdin with none) and prints the Markdown table of
    /// medians and ratios.
    Summarize {
        /// Files of JSON lines.
        files: Vec<std::path::PathBuf>,
        /// The broker the ratios are about.
        #[arg(long, default_value = "switchyard")]
        ours: String,
    },
}

/// Parses "250ms", "5s", "2m", or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

fn resolve(common: &Common) -> anyhow::Result<client::Target> {
    let addr: SocketAddr = common
        .broker
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", common.broker))?
        .next()
        .with_context(|| format!("no address for {}", common.broker))?;
    Ok(client::Target::new(addr, common.sources, common.keepalive))
}

fn emit(common: &Common, mut result: report::BenchResult) {
    result.label.clone_from(&common.label);
    if let Some(n) = &common.name {
        result.name.clone_from(n);
    }
    if common.json {
        match serde_json::to_string(&result) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("cannot serialise result: {e}"),
        }
    } else {
        result.print_table();
    }
}

fn flow_plan(scenario: &str, name: String, common: &Common, flow: &Flow) -> scenario::Plan {
    scenario::Plan {
        name,
        scenario: scenario.into(),
        topic: "bench/{i}".into(),
        filter: "bench/#".into(),
        publishers: 0,
        subscribers: 0,
        all_to_all: true,
        qos: common.qos,
        payload: flow.payload,
        inflight: flow.inflight,
        rate: flow.rate,
        duration: flow.duration,
        latency: false,
        client_prefix: format!("sb{}", std::process::id()),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file_limit = client::raise_file_limit();
    let (common, plan) = match cli.command {
        Command::Summarize { files, ours } => {
            let mut text = String::new();
            if files.is_empty() {
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)?;
            }
            for f in &files {
                text.push_str(
                    &std::fs::read_to_string(f).with_context(|| f.display().to_string())?,
                );
            }
            let results: Vec<report::BenchResult> = text
                .lines()
                .filter(|l| l.trim_start().starts_with('{'))
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()
                .context("parsing result lines")?;
            print!("{}", summary::render(&results, &ours));
            return Ok(());
        }
        Command::Conn {
            common,
            count,
            concurrency,
            conn_rate,
            hold,
        } => {
            let target = resolve(&common)?;
            let plan = conn::ConnPlan {
                name: format!("conn {count} qos{}", common.qos),
                count,
                concurrency,
                rate: conn_rate,
                hold,
                qos: common.qos,
                client_prefix: format!("sb{}", std::process::id()),
                file_limit,
            };
            let broker = common.broker_pid.map(report::BrokerProc);
            let result = conn::run(&plan, &target, broker, common.json).await;
            emit(&common, result);
            return Ok(());
        }
        Command::Pub {
            common,
            flow,
            publishers,
            topic,
        } => {
            let mut p = flow_plan(
                "pub",
                format!("pub {publishers} qos{}", common.qos),
                &common,
                &flow,
            );
            p.publishers = publishers;
            p.topic = topic;
            (common, p)
        }
        Command::Sub {
            common,
            duration,
            subscribers,
            filter,
            latency,
        } => {
            let flow = Flow {
                payload: 0,
                inflight: 0,
                duration,
                rate: 0.0,
            };
            let mut p = flow_plan(
                "sub",
                format!("sub {subscribers} qos{}", common.qos),
                &common,
                &flow,
            );
            p.subscribers = subscribers;
            p.filter = filter;
            p.latency = latency;
            p.all_to_all = false;
            (common, p)
        }
        Command::Fanin {
            common,
            flow,
            publishers,
        } => {
            let name = format!("fanin {publishers}->1 qos{}", common.qos);
            let mut p = flow_plan("fanin", name, &common, &flow);
            p.publishers = publishers;
            p.subscribers = 1;
            (common, p)
        }
        Command::Fanout {
            common,
            flow,
            subscribers,
        } => {
            let name = format!("fanout 1->{subscribers} qos{}", common.qos);
            let mut p = flow_plan("fanout", name, &common, &flow);
            p.publishers = 1;
            p.subscribers = subscribers;
            p.topic = "bench/fanout".into();
            p.filter = "bench/fanout".into();
            (common, p)
        }
        Command::Latency {
            common,
            payload,
            inflight,
            duration,
            rate,
        } => {
            let flow = Flow {
                payload,
                inflight,
                duration,
                rate,
            };
            let name = format!("latency {rate:.0}/s qos{}", common.qos);
            let mut p = flow_plan("latency", name, &common, &flow);
            p.publishers = 1;
            p.subscribers = 1;
            p.topic = "bench/latency".into();
            p.filter = "bench/latency".into();
            p.latency = true;
            (common, p)
        }
    };
    let target = resolve(&common)?;
    let broker = common.broker_pid.map(report::BrokerProc);
    let result = scenario::run(&plan, &target, broker, common.json).await?;
    emit(&common, result);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn cli_parses() {
        Cli::command_factory_check();
    }

    impl Cli {
        fn command_factory_check() {
            use clap::CommandFactory;
            Cli::command().debug_assert();
        }
    }
}
