//! RFC 7641 notifications end to end: an observer on libcoap's `coap-client` (Debian
//! libcoap3-bin, `coap-client-notls`) and publishers on MQTT (rumqttc), against the real binary.
//!
//! What is checked is the observer's raw view (`coap-client -v 6` prints every message it
//! receives, retransmissions included): every published message is one notification of its
//! own, in publish order, each with a strictly newer Observe value; a message id seen twice is a
//! retransmission and must repeat the same Observe value and payload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use coap_lite::{MessageClass, MessageType, Packet, ResponseType};

use common::mqtt::Client;
use common::{require_program, temp_dir, wait_until, Broker};
use rumqttc::QoS;

/// RFC 7252 timers at ~100 ms so a lost ACK would show up as retransmissions within the test.
const FAST: &str = "[gateway.coap]\nack_timeout = \"100ms\"\n";

/// QoS of each publish: every pair of neighbours (NON after CON, CON after NON, two CONs and
/// two NONs in a row, QoS 2 after 0 and 1).
const ORDER: [QoS; 13] = [
    QoS::AtLeastOnce,
    QoS::AtMostOnce,
    QoS::ExactlyOnce,
    QoS::AtMostOnce,
    QoS::AtLeastOnce,
    QoS::ExactlyOnce,
    QoS::AtMostOnce,
    QoS::AtMostOnce,
    QoS::AtLeastOnce,
    QoS::AtLeastOnce,
    QoS::ExactlyOnce,
    QoS::ExactlyOnce,
    QoS::AtMostOnce,
];

fn coap_client() -> Option<&'static str> {
    ["coap-client-notls", "coap-client"]
        .into_iter()
        .find(|p| common::have_program(p))
        .or_else(|| {
            require_program("coap-client-notls");
            None
        })
}

/// One message the observer printed as received.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    kind: String,
    mid: String,
    observe: Option<u32>,
    payload: String,
}

/// Every `v:1 t:<type> c:2.05 i:<mid> {…} [ …Observe:<n>… ] :: '<payload>'` line. coap-client
/// writes the payload it received right before the next log line, so a line may start with it.
fn notifications(out: &str) -> Vec<Seen> {
    out.lines()
        .filter_map(|l| {
            let l = &l[l.find("v:1 t:")?..];
            let kind = l.split("t:").nth(1)?.split_whitespace().next()?.to_owned();
            let code = l.split(" c:").nth(1)?.split_whitespace().next()?;
            if code != "2.05" || !(kind == "CON" || kind == "NON") {
                return None;
            }
            let mid = l.split(" i:").nth(1)?.split_whitespace().next()?.to_owned();
            let observe = l
                .split("Observe:")
                .nth(1)
                .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|s| s.parse().ok());
            let payload = l
                .split(":: '")
                .nth(1)
                .map(|s| s.trim_end().trim_end_matches('\'').to_owned())
                .unwrap_or_default();
            Some(Seen {
                kind,
                mid,
                observe,
                payload,
            })
        })
        .collect()
}

/// The distinct notifications, in arrival order; panics if a repeated message id changed its
/// Observe value or payload (a retransmission must be byte-identical).
fn distinct(seen: &[Seen]) -> Vec<Seen> {
    let mut by_mid: HashMap<&str, &Seen> = HashMap::new();
    let mut out = Vec::new();
    for s in seen {
        match by_mid.get(s.mid.as_str()) {
            Some(first) => assert_eq!(
                (first.observe, &first.payload),
                (s.observe, &s.payload),
                "a retransmission of {} changed: {seen:#?}",
                s.mid
            ),
            None => {
                by_mid.insert(&s.mid, s);
                out.push(s.clone());
            }
        }
    }
    out
}

/// coap-client on a line-buffered stdout (stdbuf, coreutils): its log is read while it runs,
/// and a pipe or file would otherwise hold it back until exit.
fn spawn_observer(prog: &str, target: &str, dir: &Path) -> Child {
    require_program("stdbuf");
    let out = std::fs::File::create(dir.join("observer.out")).unwrap();
    let err = std::fs::File::create(dir.join("observer.err")).unwrap();
    Command::new("stdbuf")
        .args(["-oL", "-eL", prog])
        .args(["-v", "6", "-m", "get", "-s", "60", "-T", "ob", target])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap()
}

fn output(dir: &Path) -> String {
    let out = std::fs::read_to_string(dir.join("observer.out")).unwrap_or_default();
    let err = std::fs::read_to_string(dir.join("observer.err")).unwrap_or_default();
    format!("{out}\n{err}")
}

/// The registration was answered (2.05 with Observe:0): the subscription exists from here on.
fn registered(out: &str) -> bool {
    out.lines()
        .any(|l| l.contains("t:ACK c:2.05") && l.contains("Observe:0"))
}

/// A UDP relay between one observer and the broker that loses the first transmission of the
/// first CON notification (2.05 with Observe ≥ 1) on its way to the observer, as a lossy link
/// would; everything else passes both ways.
struct LossyRelay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn is_con_notification(buf: &[u8]) -> bool {
    let Ok(p) = Packet::from_bytes(buf) else {
        return false;
    };
    p.header.get_type() == MessageType::Confirmable
        && p.header.code == MessageClass::Response(ResponseType::Content)
        && p.get_observe_value()
            .and_then(Result::ok)
            .is_some_and(|v| v >= 1)
}

impl LossyRelay {
    fn start(broker: SocketAddr) -> LossyRelay {
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        back.connect(broker).unwrap();
        // Short read timeouts so both threads see `stop` promptly.
        let tick = Some(Duration::from_millis(50));
        front.set_read_timeout(tick).unwrap();
        back.set_read_timeout(tick).unwrap();
        let addr = front.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicBool::new(false));
        let observer: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let up = {
            let (front, back) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (stop, observer) = (stop.clone(), observer.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = front.recv_from(&mut buf) {
                        *observer.lock().unwrap() = Some(from);
                        let _ = back.send(&buf[..n]);
                    }
                }
            })
        };
        let down = {
            let (stop, dropped) = (stop.clone(), dropped.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(n) = back.recv(&mut buf) else { continue };
                    if is_con_notification(&buf[..n]) && !dropped.swap(true, Ordering::Relaxed) {
                        continue;
                    }
                    if let Some(to) = *observer.lock().unwrap() {
                        let _ = front.send_to(&buf[..n], to);
                    }
                }
            })
        };
        LossyRelay {
            addr,
            stop,
            dropped,
            threads: vec![up, down],
        }
    }
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Observes `topic` with coap-client, runs `publish`, waits for the `end` marker and returns
/// the distinct notifications the observer received.
async fn observe_while<F, Fut>(broker: &Broker, topic: &str, publish: F) -> (Vec<Seen>, String)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Client>,
{
    observe_via(broker, broker.listener("coap:udp:default"), topic, publish).await
}

/// [`observe_while`] with the observer talking to `coap` (the broker or a relay in front).
async fn observe_via<F, Fut>(
    broker: &Broker,
    coap: SocketAddr,
    topic: &str,
    publish: F,
) -> (Vec<Seen>, String)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Client>,
{
    let prog = coap_client().expect("coap-client");
    let dir = temp_dir("coap-observe");
    let target = format!("coap://{coap}/ps/{topic}");
    let mut observer = spawn_observer(prog, &target, &dir);
    assert!(
        wait_until(Duration::from_secs(10), || registered(&output(&dir))),
        "no registration:\n{}",
        output(&dir)
    );
    let publisher = Client::connect(broker.mqtt_addr(), "order-pub").await;
    let mut publisher = publish(publisher).await;
    // A last QoS 1 marker: once the observer printed it, everything before it has arrived.
    publisher
        .publish(topic, QoS::AtLeastOnce, false, b"end")
        .await;
    let done = wait_until(Duration::from_secs(15), || {
        notifications(&output(&dir))
            .iter()
            .any(|n| n.payload == "end")
    });
    let _ = observer.kill();
    let _ = common::wait_child(&mut observer, Duration::from_secs(5));
    let out = output(&dir);
    assert!(done, "the marker never arrived:\n{out}");
    (distinct(&notifications(&out)), out)
}

fn payload(i: usize, q: QoS) -> String {
    format!("m{i}-q{}", q as u8)
}

fn check_order(got: &[Seen], out: &str) {
    let want: Vec<String> = ORDER
        .iter()
        .enumerate()
        .map(|(i, q)| payload(i, *q))
        .chain(std::iter::once("end".to_owned()))
        .collect();
    let payloads: Vec<&str> = got.iter().map(|n| n.payload.as_str()).collect();
    assert_eq!(payloads, want, "notifications:\n{out}");
    let observes: Vec<u32> = got
        .iter()
        .map(|n| n.observe.expect("Observe on every notification"))
        .collect();
    assert!(
        observes.windows(2).all(|w| w[0] < w[1]),
        "Observe values not strictly increasing: {observes:?}\n{out}"
    );
    // notify_type = qos: QoS 0 → NON, QoS 1/2 → CON (the marker is QoS 1).
    for (n, q) in got.iter().zip(ORDER.iter().chain([&QoS::AtLeastOnce])) {
        let want = if *q == QoS::AtMostOnce { "NON" } else { "CON" };
        assert_eq!(n.kind, want, "{n:?}\n{out}");
    }
}

#[tokio::test]
async fn libcoap_observer_gets_each_mixed_qos_publish_once_in_order() {
    if coap_client().is_none() {
        return;
    }
    let broker = Broker::start_with(FAST);
    // One publish at a time: each QoS 1/2 publish is acknowledged before the next one.
    let (got, out) = observe_while(&broker, "order/seq", |mut p| async move {
        for (i, q) in ORDER.iter().enumerate() {
            p.publish("order/seq", *q, false, payload(i, *q).as_bytes())
                .await;
        }
        p
    })
    .await;
    check_order(&got, &out);
}

#[tokio::test]
async fn libcoap_observer_gets_each_pipelined_mixed_qos_publish_once_in_order() {
    if coap_client().is_none() {
        return;
    }
    let broker = Broker::start_with(FAST);
    // Every publish queued at once, so several deliveries wait in the observer's outbox together
    // and CON and NON notifications are taken in one batch.
    let (got, out) =
        observe_while(&broker, "order/burst", |p| publish_burst(p, "order/burst")).await;
    check_order(&got, &out);
}

/// Queues every publish of [`ORDER`] at once on `p`.
async fn publish_burst(p: Client, topic: &str) -> Client {
    for (i, q) in ORDER.iter().enumerate() {
        p.client
            .publish(topic, *q, false, payload(i, *q).into_bytes())
            .await
            .expect("queue PUBLISH");
    }
    p
}

/// The first CON notification is lost once: its retransmission (same message id, same Observe
/// value) must come before any newer notification, NON included, or the observer (RFC 7641
/// §3.4) would discard it as stale.
#[tokio::test]
async fn libcoap_observer_behind_a_lossy_link_still_gets_every_publish_in_order() {
    if coap_client().is_none() {
        return;
    }
    let broker = Broker::start_with(FAST);
    let relay = LossyRelay::start(broker.listener("coap:udp:default"));
    let (got, out) = observe_via(&broker, relay.addr, "order/lossy", |p| {
        publish_burst(p, "order/lossy")
    })
    .await;
    assert!(
        relay.dropped.load(Ordering::Relaxed),
        "nothing was lost:\n{out}"
    );
    check_order(&got, &out);
}

/// The same with aiocoap as the observer (tests/py/coap_aiocoap.py `observe_order`, which
/// checks the raw stream and the application's view).
#[test]
fn aiocoap_observer_behind_a_lossy_link_still_gets_every_publish_in_order() {
    if !aiocoap_available() {
        return;
    }
    let broker = Broker::start_with(FAST);
    let relay = LossyRelay::start(broker.listener("coap:udp:default"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/coap_aiocoap.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args([
        "observe_order",
        &relay.addr.to_string(),
        &broker.mqtt_addr().to_string(),
    ]);
    let (status, out, err) = common::run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert!(relay.dropped.load(Ordering::Relaxed), "nothing was lost");
    assert!(
        status.is_some_and(|s| s.success()) && out.contains("OK observe_order"),
        "{status:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
}

fn aiocoap_available() -> bool {
    if !require_program("python3") {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import aiocoap, paho.mqtt.client"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if std::env::var_os("SY_SKIP_EXTERNAL_CLIENTS").is_some() {
        eprintln!("skipping: aiocoap not importable and SY_SKIP_EXTERNAL_CLIENTS is set");
        return false;
    }
    panic!("python3 cannot import aiocoap and paho-mqtt: run scripts/install-test-deps.sh");
}
