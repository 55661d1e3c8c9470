//! MQTT 3.1 and 3.1.1 with Debian's mosquitto_sub / mosquitto_pub (mosquitto-clients), clients
//! we did not write. scripts/install-test-deps.sh installs them.
//!
//! mosquitto_sub runs with `-d` (its debug lines tell us when the SUBACK arrived, so publishing
//! never races the subscription) and `-F 'MSG|%t|%q|%r|%p'` (topic, QoS, retain, payload).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use common::{require_program, wait_child, Broker};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    topic: String,
    qos: u8,
    retain: bool,
    payload: String,
}

/// A running mosquitto_sub whose output is collected line by line.
struct Sub {
    child: Child,
    lines: Receiver<String>,
    output: Vec<String>,
    what: String,
}

impl Sub {
    /// Starts `mosquitto_sub` against `addr` with protocol `version` and `args`.
    fn spawn(addr: SocketAddr, version: &str, args: &[&str]) -> Sub {
        // stdbuf: mosquitto_sub's stdout is a pipe, so without line buffering its debug lines
        // (the SUBACK we wait for) would sit in the stdio buffer.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub"])
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(["-V", version, "-d", "-F", "MSG|%t|%q|%r|%p"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("{cmd:?}");
        let mut child = cmd.spawn().expect("spawn mosquitto_sub");
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx2.send(format!("stderr: {line}")).is_err() {
                    return;
                }
            }
        });
        Sub {
            child,
            lines,
            output: Vec::new(),
            what,
        }
    }

    /// Collects output until a line satisfies `pred` or `within` passes.
    fn wait_line(&mut self, within: Duration, pred: impl Fn(&str) -> bool) -> bool {
        if self.output.iter().any(|l| pred(l)) {
            return true;
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.output.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return false
                }
            }
        }
    }

    /// Waits for the SUBACK ("Subscribed (mid: 1): <granted qos>"); returns the granted QoS.
    fn wait_subscribed(&mut self) -> u8 {
        if !self.wait_line(WAIT, |l| l.starts_with("Subscribed (mid")) {
            panic!(
                "mosquitto_sub got no SUBACK within {WAIT:?}\n{}\n{}",
                self.what,
                self.output.join("\n")
            );
        }
        let line = self
            .output
            .iter()
            .find(|l| l.starts_with("Subscribed (mid"))
            .unwrap();
        line.rsplit(": ")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap_or(255)
    }

    /// Waits for the process to exit (bounded), collecting the rest of its output.
    fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let status = wait_child(&mut self.child, within);
        // The reader threads end with the process; drain what they read.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.output.push(line);
        }
        status
    }

    /// Messages printed so far.
    fn messages(&mut self) -> Vec<Msg> {
        while let Ok(line) = self.lines.try_recv() {
            self.output.push(line);
        }
        self.output
            .iter()
            .filter_map(|l| l.strip_prefix("MSG|"))
            .map(|l| {
                let mut f = l.splitn(4, '|');
                Msg {
                    topic: f.next().unwrap_or_default().to_owned(),
                    qos: f.next().unwrap_or_default().parse().unwrap_or(255),
                    retain: f.next() == Some("1"),
                    payload: f.next().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }

    fn transcript(&self) -> String {
        format!("{}\n{}", self.what, self.output.join("\n"))
    }

    /// Kills with SIGKILL: the TCP connection drops without DISCONNECT.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = wait_child(&mut self.child, Duration::from_secs(5));
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs mosquitto_pub to completion and asserts it succeeded; with `stdin_lines`, `-l` sends
/// one message per line.
fn pub_(addr: SocketAddr, version: &str, args: &[&str], stdin_lines: Option<&[String]>) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-V", version])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin_lines.is_some() {
        cmd.arg("-l");
    }
    let mut child = cmd.spawn().expect("spawn mosquitto_pub");
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(lines) = stdin_lines {
            stdin
                .write_all((lines.join("\n") + "\n").as_bytes())
                .expect("write mosquitto_pub stdin");
        }
    }
    let status = wait_child(&mut child, WAIT);
    if status.is_none() {
        let _ = child.kill();
        let _ = wait_child(&mut child, Duration::from_secs(5));
    }
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "{cmd:?} failed: {status:?}\nstdout: {out}\nstderr: {err}"
    );
}

fn clients_present() -> bool {
    require_program("mosquitto_sub") && require_program("mosquitto_pub")
}

/// N messages at `qos`, published with `-l`, arrive in order at `qos` and the subscriber's `-C`
/// count ends it with exit 0.
fn pubsub(version: &str, qos: u8) {
    if !clients_present() {
        return;
    }
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let q = qos.to_string();
    let topic = format!("mosq/{version}/q{qos}");
    let mut sub = Sub::spawn(
        addr,
        version,
        &["-t", &topic, "-q", &q, "-C", "5", "-W", "15"],
    );
    assert_eq!(
        sub.wait_subscribed(),
        qos,
        "granted QoS\n{}",
        sub.transcript()
    );
    let lines: Vec<String> = (0..5)
        .map(|i| format!("{version} qos{qos} msg {i}"))
        .collect();
    pub_(addr, version, &["-t", &topic, "-q", &q], Some(&lines));
    let status = sub.wait_exit(WAIT);
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "mosquitto_sub -C 5 did not get 5 messages: {status:?}\n{}",
        sub.transcript()
    );
    let got = sub.messages();
    let want: Vec<Msg> = lines
        .iter()
        .map(|p| Msg {
            topic: topic.clone(),
            qos,
            retain: false,
            payload: p.clone(),
        })
        .collect();
    assert_eq!(got, want, "{}", sub.transcript());
}

#[test]
fn mqttv31_qos0() {
    pubsub("mqttv31", 0);
}
#[test]
fn mqttv31_qos1() {
    pubsub("mqttv31", 1);
}
#[test]
fn mqttv31_qos2() {
    pubsub("mqttv31", 2);
}
#[test]
fn mqttv311_qos0() {
    pubsub("mqttv311", 0);
}
#[test]
fn mqttv311_qos1() {
    pubsub("mqttv311", 1);
}
#[test]
fn mqttv311_qos2() {
    pubsub("mqttv311", 2);
}

/// A 3.1 publisher and a 3.1.1 subscriber (and back) see each other.
#[test]
fn mqttv31_and_mqttv311_interoperate() {
    if !clients_present() {
        return;
    }
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    for (sub_v, pub_v) in [("mqttv311", "mqttv31"), ("mqttv31", "mqttv311")] {
        let topic = format!("interop/{sub_v}");
        let mut sub = Sub::spawn(
            addr,
            sub_v,
            &["-t", &topic, "-q", "1", "-C", "1", "-W", "15"],
        );
        sub.wait_subscribed();
        pub_(
            addr,
            pub_v,
            &["-t", &topic, "-q", "1", "-m", &format!("from {pub_v}")],
            None,
        );
        assert!(
            sub.wait_exit(WAIT).map(|s| s.success()).unwrap_or(false),
            "{}",
            sub.transcript()
        );
        assert_eq!(sub.messages()[0].payload, format!("from {pub_v}"));
    }
}

/// `-r` retains; a later subscriber gets it with the retain flag; `-r -n` clears it.
fn retained(version: &str) {
    if !clients_present() {
        return;
    }
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let topic = format!("mosq/{version}/retained");
    pub_(
        addr,
        version,
        &["-t", &topic, "-q", "1", "-r", "-m", "kept"],
        None,
    );

    let mut sub = Sub::spawn(
        addr,
        version,
        &["-t", &topic, "-q", "1", "-C", "1", "-W", "15"],
    );
    assert!(
        sub.wait_exit(WAIT).map(|s| s.success()).unwrap_or(false),
        "the retained message must arrive on subscribe\n{}",
        sub.transcript()
    );
    assert_eq!(
        sub.messages(),
        vec![Msg {
            topic: topic.clone(),
            qos: 1,
            retain: true,
            payload: "kept".into()
        }],
        "{}",
        sub.transcript()
    );

    pub_(addr, version, &["-t", &topic, "-q", "1", "-r", "-n"], None);
    let mut sub = Sub::spawn(
        addr,
        version,
        &["-t", &topic, "-q", "1", "-C", "1", "-W", "2"],
    );
    sub.wait_subscribed();
    let status = sub.wait_exit(WAIT);
    assert!(
        sub.messages().is_empty(),
        "an empty retained publish (-r -n) must clear the retained message\n{}",
        sub.transcript()
    );
    assert!(
        status.map(|s| !s.success()).unwrap_or(false),
        "mosquitto_sub -W 2 must time out with no message: {status:?}\n{}",
        sub.transcript()
    );
}

#[test]
fn mqttv31_retained() {
    retained("mqttv31");
}
#[test]
fn mqttv311_retained() {
    retained("mqttv311");
}

/// SIGKILL'd client → its will reaches a subscriber (MQTT-3.1.2-8).
fn will_on_kill(version: &str) {
    if !clients_present() {
        return;
    }
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let will_topic = format!("mosq/{version}/will");
    let mut watcher = Sub::spawn(
        addr,
        version,
        &["-t", &will_topic, "-q", "1", "-C", "1", "-W", "15"],
    );
    watcher.wait_subscribed();
    let mut victim = Sub::spawn(
        addr,
        version,
        &[
            "-t",
            "mosq/victim",
            "-k",
            "60",
            "--will-topic",
            &will_topic,
            "--will-payload",
            "victim died",
            "--will-qos",
            "1",
        ],
    );
    victim.wait_subscribed();
    victim.kill9();
    let status = watcher.wait_exit(WAIT);
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "the will of a SIGKILLed client must be published\nwatcher: {}\nvictim: {}",
        watcher.transcript(),
        victim.transcript()
    );
    let got = watcher.messages();
    assert_eq!(got.len(), 1, "{}", watcher.transcript());
    assert_eq!(
        (got[0].topic.as_str(), got[0].payload.as_str()),
        (will_topic.as_str(), "victim died")
    );
    assert!(!got[0].retain);
}

#[test]
fn mqttv31_will_on_sigkill() {
    will_on_kill("mqttv31");
}
#[test]
fn mqttv311_will_on_sigkill() {
    will_on_kill("mqttv311");
}

/// A client that ends normally (DISCONNECT) has no will published (MQTT-3.1.2-10).
fn no_will_on_disconnect(version: &str) {
    if !clients_present() {
        return;
    }
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let will_topic = format!("mosq/{version}/nowill");
    let polite_id = format!("polite-{version}");
    // The watcher also follows the polite client's `$SYS/.../disconnected` event: the broker
    // publishes a will (if any) before it reports the disconnect, so once the event has arrived
    // a wrongly published will would have arrived ahead of it.
    let gone_topic = format!("$SYS/brokers/+/clients/{polite_id}/disconnected");
    let mut watcher = Sub::spawn(
        addr,
        version,
        &["-t", &will_topic, "-t", &gone_topic, "-q", "1"],
    );
    watcher.wait_subscribed();
    let mut polite = Sub::spawn(
        addr,
        version,
        &[
            "-i",
            &polite_id,
            "-t",
            "mosq/polite",
            "-C",
            "1",
            "-W",
            "15",
            "--will-topic",
            &will_topic,
            "--will-payload",
            "should not appear",
            "--will-qos",
            "1",
        ],
    );
    polite.wait_subscribed();
    pub_(addr, version, &["-t", "mosq/polite", "-m", "bye"], None);
    let status = polite.wait_exit(WAIT);
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "mosquitto_sub -C 1 should exit 0 after one message: {status:?}\n{}",
        polite.transcript()
    );
    assert!(
        polite
            .output
            .iter()
            .any(|l| l.contains("sending DISCONNECT")),
        "precondition: the client sent DISCONNECT\n{}",
        polite.transcript()
    );
    let gone_suffix = format!("/clients/{polite_id}/disconnected|");
    assert!(
        watcher.wait_line(WAIT, |l| l.starts_with("MSG|$SYS/brokers/")
            && l.contains(&gone_suffix)),
        "the polite client's disconnected event never arrived\n{}",
        watcher.transcript()
    );
    let wills: Vec<Msg> = watcher
        .messages()
        .into_iter()
        .filter(|m| m.topic == will_topic)
        .collect();
    assert!(
        wills.is_empty(),
        "no will may be published after a DISCONNECT: {wills:?}\n{}",
        watcher.transcript()
    );
}

#[test]
fn mqttv31_no_will_on_disconnect() {
    no_will_on_disconnect("mqttv31");
}
#[test]
fn mqttv311_no_will_on_disconnect() {
    no_will_on_disconnect("mqttv311");
}

/// Wildcard subscription with mosquitto_sub; messages to several topics arrive with their topics.
#[test]
fn mqttv311_wildcard_subscription() {
    if !clients_present() {
        return;
    }
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut sub = Sub::spawn(
        addr,
        "mqttv311",
        &["-t", "wc/+/x", "-q", "1", "-C", "2", "-W", "15"],
    );
    sub.wait_subscribed();
    for t in ["wc/a/x", "wc/a/y", "wc/a/b/x", "wc/b/x"] {
        pub_(addr, "mqttv311", &["-t", t, "-q", "1", "-m", t], None);
    }
    assert!(
        sub.wait_exit(WAIT).map(|s| s.success()).unwrap_or(false),
        "{}",
        sub.transcript()
    );
    let topics: Vec<String> = sub.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(topics, vec!["wc/a/x", "wc/b/x"], "{}", sub.transcript());
}
