//! `switchyard-bench`: a load generator for any MQTT 3.1.1 broker, in the spirit of emqtt-bench.
//!
//! Owns: the command line and what each subcommand means (`conn`, `pub`, `sub`, `fanin`,
//! `fanout`, `latency`, `summarize`), the runtime, and printing results (a table, or one JSON
//! line per result with `--json`). Packets are hand-rolled ([`wire`]) on a multi-threaded tokio
//! runtime so the tool is not the bottleneck.
//!
//! The gateway scenarios speak UDP to Switchyard's gateways: `sn-pub` (MQTT-SN 1.2 publishers),
//! `coap-pub` (CoAP POST publishers) and `coap-observe` (CoAP observers), with MQTT on the other
//! side ([`gateways`]).
//!
//! Environment variables: none. (The broker reads every `SWITCHYARD_*` variable as config, so
//! the tool deliberately defines none.)

mod client;
mod coap;
mod conn;
mod dtls;
#[cfg(test)]
mod e2e_tests;
mod gateways;
mod publisher;
mod report;
mod scenario;
mod sn;
mod stats;
mod subscriber;
mod summary;
mod udp;
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
    /// Username sent in CONNECT (with --password), to measure an authenticator; `{i}` is the
    /// connection's number (one user per connection).
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Password sent in CONNECT (with --username).
    #[arg(long, requires = "username")]
    password: Option<String>,
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

#[derive(Args, Debug, Clone)]
struct UdpFlow {
    /// UDP clients, each with its own socket.
    #[arg(long, short = 'c', default_value_t = 1000)]
    clients: usize,
    /// Payload size in bytes (at least 20).
    #[arg(long, short = 's', default_value_t = 64)]
    payload: usize,
    /// How long to publish.
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Messages per second per client (0 = as fast as possible; QoS 1/CON: one at a time).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
}

#[derive(Args, Debug, Clone)]
struct CoapTiming {
    /// CoAP gateway address (UDP).
    #[arg(long, short = 'g', default_value = "127.0.0.1:5683")]
    gateway: String,
    /// RFC 7252 ACK_TIMEOUT of the clients' CON requests.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    ack_timeout: Duration,
    /// RFC 7252 ACK_RANDOM_FACTOR.
    #[arg(long, default_value_t = 1.5)]
    ack_random_factor: f64,
    /// RFC 7252 MAX_RETRANSMIT.
    #[arg(long, default_value_t = 4)]
    max_retransmit: u32,
    /// coap-pub over DTLS with this pre-shared key, `identity:key` (-g is then the DTLS
    /// listener, e.g. 127.0.0.1:5684); the handshake rate is printed before the run.
    #[arg(long)]
    dtls_psk: Option<String>,
    /// coap-pub over DTLS with the ECDSA certificate suite (the gateway's certificate is not
    /// verified; no client certificate).
    #[arg(long)]
    dtls_ecdsa: bool,
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
        /// Client ids are PREFIX-c0, PREFIX-c1, … (default: sb<pid>); a second run with the
        /// same prefix reconnects the same clients (an authenticator's warm cache).
        #[arg(long)]
        client_prefix: Option<String>,
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
        /// The subscriber uses a persistent session (clean session 0, client id
        /// switchyard-bench-persistent-0), so the broker stores every QoS 1/2 message for it.
        #[arg(long)]
        persistent: bool,
    },
    /// N MQTT-SN clients (CONNECT, REGISTER bench/sn/{i}, PUBLISH at QoS 0 or 1 with one in
    /// flight) -> 1 MQTT subscriber on bench/# (-b).
    SnPub {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        udp: UdpFlow,
        /// MQTT-SN gateway address (UDP).
        #[arg(long, short = 'g', default_value = "127.0.0.1:1884")]
        gateway: String,
        /// Resend an unacknowledged CONNECT, REGISTER or QoS 1 PUBLISH after this long.
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        retry: Duration,
        /// Resends of one message before the client gives up.
        #[arg(long, default_value_t = 5)]
        max_retries: u32,
        /// QoS 0: datagrams each client hands the kernel in one system call (UDP segmentation
        /// offload, where the platform has it; the gateway still receives one datagram per
        /// message). Spares the tool's CPU on a machine it shares with the gateway.
        #[arg(long, default_value_t = 1)]
        burst: usize,
    },
    /// N CoAP clients (POST /ps/bench/coap/{i}?qos=Q; QoS 1 = CON, one at a time, QoS 0 = NON)
    /// -> 1 MQTT subscriber on bench/# (-b).
    CoapPub {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        udp: UdpFlow,
        #[command(flatten)]
        timing: CoapTiming,
    },
    /// N CoAP observers of /ps/bench/obs (CON GET, Observe=0) <- 1 MQTT publisher (-b) at a
    /// fixed rate; QoS 0 -> NON notifications, QoS 1 -> CON (ACKed by the observers).
    CoapObserve {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        timing: CoapTiming,
        /// CoAP observers, each with its own socket.
        #[arg(long, short = 'c', default_value_t = 1000)]
        observers: usize,
        /// Payload size in bytes (at least 20).
        #[arg(long, short = 's', default_value_t = 64)]
        payload: usize,
        /// Most unacknowledged QoS 1 publishes of the MQTT publisher.
        #[arg(long, default_value_t = 64)]
        inflight: u16,
        /// How long to publish.
        #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
        duration: Duration,
        /// Messages per second of the MQTT publisher (each reaches every observer).
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
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
        /// Instead: one row per scenario, msg/s as a ratio to this scenario's (gateways.sh).
        #[arg(long)]
        reference: Option<String>,
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
    let mut target = client::Target::new(addr, common.sources, common.keepalive);
    target.credentials = common.username.clone().zip(common.password.clone());
    Ok(target)
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
        persistent: false,
    }
}

fn udp_addr(s: &str) -> anyhow::Result<SocketAddr> {
    s.to_socket_addrs()
        .with_context(|| format!("resolving {s}"))?
        .next()
        .with_context(|| format!("no address for {s}"))
}

fn udp_plan(scenario: &str, name: String, common: &Common, udp: &UdpFlow) -> scenario::Plan {
    let flow = Flow {
        payload: udp.payload,
        inflight: 1,
        duration: udp.duration,
        rate: udp.rate,
    };
    let mut p = flow_plan(scenario, name, common, &flow);
    p.publishers = udp.clients;
    p.subscribers = 1;
    p
}

fn coap_udp_plan(timing: &CoapTiming) -> anyhow::Result<gateways::UdpPlan> {
    Ok(gateways::UdpPlan {
        burst: 1,
        gateway: udp_addr(&timing.gateway)?,
        retry: coap::coap_retry(timing.ack_timeout, 1.0, timing.max_retransmit, 0),
        coap: Some((
            timing.ack_timeout,
            timing.ack_random_factor,
            timing.max_retransmit,
        )),
    })
}

/// Runs the gateway scenarios; `None` when `command` is not one of them.
async fn run_gateway(command: &Command) -> anyhow::Result<Option<(Common, report::BenchResult)>> {
    let (common, result) = match command {
        Command::SnPub {
            common,
            udp,
            gateway,
            retry,
            max_retries,
            burst,
        } => {
            let name = match *burst {
                0 | 1 => format!("sn-pub {}->1 qos{}", udp.clients, common.qos),
                b => format!("sn-pub {}->1 qos{} burst {b}", udp.clients, common.qos),
            };
            let mut plan = udp_plan("sn-pub", name, common, udp);
            plan.topic = "bench/sn/{i}".into();
            let u = gateways::UdpPlan {
                gateway: udp_addr(gateway)?,
                retry: udp::Retry {
                    first: *retry,
                    factor: 1,
                    max_retransmit: *max_retries,
                },
                coap: None,
                burst: (*burst).max(1),
            };
            let target = resolve(common)?;
            let broker = common.broker_pid.map(report::BrokerProc);
            let r = gateways::sn_pub(&plan, &target, &u, broker, common.json).await?;
            (common, r)
        }
        Command::CoapPub {
            common,
            udp,
            timing,
        } => {
            let kind = if common.qos == 1 { "con" } else { "non" };
            let name = format!("coap-pub {}->1 {kind}", udp.clients);
            let mut plan = udp_plan("coap-pub", name, common, udp);
            plan.topic = "bench/coap/{i}".into();
            let target = resolve(common)?;
            let broker = common.broker_pid.map(report::BrokerProc);
            let u = coap_udp_plan(timing)?;
            let r = if timing.dtls_psk.is_some() || timing.dtls_ecdsa {
                if common.name.is_none() {
                    plan.name.push_str(" dtls");
                }
                let auth = dtls::auth(timing.dtls_psk.as_deref())?;
                dtls::coap_pub(&plan, &target, &u, auth, broker, common.json).await?
            } else {
                gateways::coap_pub(&plan, &target, &u, broker, common.json).await?
            };
            (common, r)
        }
        Command::CoapObserve {
            common,
            timing,
            observers,
            payload,
            inflight,
            duration,
            rate,
        } => {
            let kind = if common.qos == 0 { "non" } else { "con" };
            let name = format!("coap-observe 1->{observers} {kind} {rate:.0}/s");
            let flow = Flow {
                payload: *payload,
                inflight: *inflight,
                duration: *duration,
                rate: *rate,
            };
            let mut plan = flow_plan("coap-observe", name, common, &flow);
            plan.publishers = 1;
            plan.subscribers = *observers;
            plan.topic = "bench/obs".into();
            let target = resolve(common)?;
            let broker = common.broker_pid.map(report::BrokerProc);
            let u = coap_udp_plan(timing)?;
            let r = gateways::coap_observe(&plan, &target, &u, broker, common.json).await?;
            (common, r)
        }
        _ => return Ok(None),
    };
    Ok(Some((common.clone(), result)))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file_limit = client::raise_file_limit();
    if let Some((common, result)) = run_gateway(&cli.command).await? {
        emit(&common, result);
        return Ok(());
    }
    let (common, plan) = match cli.command {
        Command::Summarize {
            files,
            ours,
            reference,
        } => {
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
            match reference {
                Some(r) => print!("{}", summary::render_against(&results, &r)),
                None => print!("{}", summary::render(&results, &ours)),
            }
            return Ok(());
        }
        Command::SnPub { .. } | Command::CoapPub { .. } | Command::CoapObserve { .. } => {
            anyhow::bail!("gateway scenarios are run by run_gateway")
        }
        Command::Conn {
            common,
            count,
            concurrency,
            conn_rate,
            hold,
            client_prefix,
        } => {
            let target = resolve(&common)?;
            let plan = conn::ConnPlan {
                name: format!("conn {count} qos{}", common.qos),
                count,
                concurrency,
                rate: conn_rate,
                hold,
                qos: common.qos,
                client_prefix: client_prefix.unwrap_or_else(|| format!("sb{}", std::process::id())),
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
            persistent,
        } => {
            let session = if persistent { " persistent" } else { "" };
            let name = format!("fanin {publishers}->1 qos{}{session}", common.qos);
            let mut p = flow_plan("fanin", name, &common, &flow);
            p.publishers = publishers;
            p.subscribers = 1;
            p.persistent = persistent;
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
