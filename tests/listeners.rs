//! Listener behaviour a user meets on day one, against the real binary: a connection surge
//! over `max_conn_rate` is paced, not refused (EMQX's "pause receiving new connections"), and a
//! TLS listener given certificate files but not `enable = true` says so in the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::raw::{Connect, CONNACK};
use common::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

/// Clients connecting at once, against a rate of 200/s with bursts of 200: the first 200 are
/// accepted at once and the other 400 wait in the backlog, one every 5 ms, so the last
/// CONNACK cannot come before 2 s.
const CLIENTS: usize = 600;
const RATE: u32 = 200;
const BURST: u32 = 200;

/// What one client saw: its CONNACK return code, or why it got none.
async fn connect_one(addr: SocketAddr, i: usize) -> Result<(Instant, TcpStream), String> {
    let mut stream = timeout(Duration::from_secs(9), TcpStream::connect(addr))
        .await
        .map_err(|_| "TCP connect timed out".to_owned())?
        .map_err(|e| format!("TCP connect: {e}"))?;
    let connect = Connect {
        keepalive: 60,
        ..Connect::v311(&format!("pace-{i}"))
    };
    stream
        .write_all(&connect.encode())
        .await
        .map_err(|e| format!("write CONNECT: {e}"))?;
    let mut connack = [0u8; 4];
    match timeout(Duration::from_secs(9), stream.read_exact(&mut connack)).await {
        Err(_) => Err("no CONNACK within 9 s".to_owned()),
        Ok(Err(e)) => Err(format!("closed before CONNACK (refused?): {e}")),
        Ok(Ok(_)) if connack == [CONNACK, 2, 0, 0] => Ok((Instant::now(), stream)),
        Ok(Ok(_)) => Err(format!("CONNACK {connack:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_over_max_conn_rate_waits_in_the_backlog_and_none_is_refused() {
    let broker = Broker::start_with(&format!(
        "[listeners.tcp.default]\nmax_conn_rate = {RATE}\nmax_conn_burst = {BURST}\n"
    ));
    let addr = broker.mqtt_addr();
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(connect_one(addr, i)))
        .collect();
    let mut accepted = Vec::with_capacity(CLIENTS);
    let mut refused = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.expect("client task") {
            // The stream stays open until the end, so every connection counts at once.
            Ok((at, stream)) => accepted.push((at, stream)),
            Err(why) => refused.push(format!("pace-{i}: {why}")),
        }
    }
    assert!(
        refused.is_empty(),
        "{} of {CLIENTS} clients got no CONNACK success, e.g. {:?}",
        refused.len(),
        &refused[..refused.len().min(5)]
    );
    // Paced, not all taken in the first burst: accepting the 400 past the burst takes
    // 400 / 200 per second = 2 s at least, however fast the machine is.
    let last = accepted.iter().map(|(at, _)| *at).max().expect("clients");
    let took = last - start;
    assert!(
        took >= Duration::from_millis(1800),
        "all {CLIENTS} accepted within {took:?}: the rate did not pace the accept loop"
    );
    assert!(
        broker.log_contains("max_conn_rate reached; new connections wait in the accept backlog"),
        "the pause is logged"
    );
    assert!(
        !broker.log_contains("connection refused"),
        "nothing refused"
    );
}

#[test]
fn tls_files_on_a_listener_that_is_not_enabled_log_a_warning() {
    // Files that do not exist: a disabled listener never reads them, so start-up succeeds.
    let broker = Broker::start_with(
        "[listeners.ssl.default]\ncertfile = \"/nonexistent/server.pem\"\n\
         keyfile = \"/nonexistent/server.key\"\n",
    );
    let log = broker.log();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("listener listeners.ssl.default:"))
        .unwrap_or_else(|| panic!("no warning naming listeners.ssl.default in:\n{log}"));
    assert!(
        warning.contains("not enabled") && warning.contains("enable = true"),
        "{warning}"
    );
    assert!(
        !log.contains("listeners.wss.default:"),
        "no warning for a TLS listener without files"
    );
    assert!(
        !broker.listeners().contains_key("mqtt:ssl:default"),
        "the files alone start nothing"
    );
}
