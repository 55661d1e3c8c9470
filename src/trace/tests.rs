//! The trace hub and layer under a scoped subscriber: which events reach which trace file, the
//! console's level left alone, and the store behind the hub.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::layer::{TraceFilter, TraceLayer};
use super::*;
use switchyard_admin::{PayloadEncode, TraceFormatter};
use switchyard_state::SqliteState;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchyard-trace-{tag}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn hub(dir: &Path) -> (Arc<TraceHub>, SharedState) {
    let state: SharedState = Arc::new(SqliteState::open(dir).expect("state"));
    let hub = TraceHub::new();
    hub.attach(state.clone(), dir).expect("attach");
    (hub, state)
}

fn spec(name: &str, kind: TraceKind, filter: &str) -> TraceSpec {
    let now = now_secs();
    TraceSpec {
        name: name.into(),
        kind,
        filter: filter.into(),
        start_at: now.saturating_sub(1),
        end_at: now + 600,
        payload_encode: PayloadEncode::Text,
        formatter: TraceFormatter::Text,
        enable: true,
    }
}

/// Runs `f` under a subscriber with the console at `info` (into a buffer) and the trace layer.
fn with_traces(hub: &Arc<TraceHub>, f: impl FnOnce()) -> String {
    let console = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = console.clone();
    let console_layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(move || SinkWriter(sink.clone()))
        .with_filter(EnvFilter::new("info"));
    let subscriber = tracing_subscriber::registry()
        .with(console_layer)
        .with(TraceLayer::new(hub.clone()).with_filter(TraceFilter::new(hub.clone())));
    tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&console.lock()).into_owned();
    text
}

struct SinkWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn client(peer: &str, id: &str, proto: &str) {
    let span = tracing::info_span!("conn", peer, proto, client_id = tracing::field::Empty);
    let _e = span.enter();
    tracing::debug!("before the client id is known");
    span.record("client_id", id);
    tracing::debug!(topic = "t/1", payload = &b"hi"[..], "publish");
    tracing::info!("client info line");
    tracing::trace!("too fine for a trace");
}

fn read(hub: &TraceHub, name: &str) -> String {
    std::fs::read_to_string(hub.file(name).expect("file")).expect("read")
}

#[test]
fn a_clientid_trace_gets_that_clients_debug_lines_only() {
    let dir = temp("clientid");
    let (hub, _state) = hub(&dir);
    hub.create(spec("c1", TraceKind::ClientId, "c1"))
        .expect("create");
    let console = with_traces(&hub, || {
        client("127.0.0.1:1000", "c1", "mqtt");
        client("127.0.0.1:1001", "c2", "mqtt-sn");
        tracing::debug!(client_id = "c1", "a bus line about c1 outside its span");
    });
    let t = read(&hub, "c1");
    assert!(t.contains("publish topic=\"t/1\" payload=\"hi\""), "{t}");
    assert!(t.contains("client_id=c1"), "{t}");
    assert!(t.contains("client info line"), "{t}");
    assert!(t.contains("a bus line about c1 outside its span"), "{t}");
    // Before its client id was recorded the span did not name it.
    assert!(!t.contains("before the client id is known"), "{t}");
    assert!(!t.contains("c2") && !t.contains("1001"), "{t}");
    assert!(!t.contains("too fine"), "{t}");
    // The console stayed at info: both clients' info lines, no debug line.
    assert!(console.contains("client info line"), "{console}");
    assert!(!console.contains("publish"), "{console}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn topic_and_ip_traces_and_their_formats() {
    let dir = temp("topic");
    let (hub, _state) = hub(&dir);
    let mut t = spec("topic", TraceKind::Topic, "t/+");
    t.payload_encode = PayloadEncode::Hex;
    hub.create(t).expect("create");
    let mut ip = spec("ip", TraceKind::IpAddress, "10.0.0.2");
    ip.formatter = TraceFormatter::Json;
    ip.payload_encode = PayloadEncode::Hidden;
    hub.create(ip).expect("create");
    with_traces(&hub, || {
        client("10.0.0.1:1", "a", "coap");
        client("10.0.0.2:2", "b", "lwm2m");
        tracing::debug!(topic = "other/1", "not this topic");
    });
    let topic = read(&hub, "topic");
    assert_eq!(topic.matches("publish").count(), 2, "{topic}");
    assert!(topic.contains("payload=\"6869\""), "{topic}");
    assert!(!topic.contains("not this topic"), "{topic}");
    let ip = read(&hub, "ip");
    let lines: Vec<serde_json::Value> = ip
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(
        lines.iter().all(|l| l["span"]["peer"] == "10.0.0.2:2"),
        "{ip}"
    );
    let publish = lines
        .iter()
        .find(|l| l["message"] == "publish")
        .expect("publish line");
    assert_eq!(publish["fields"]["payload"], "******");
    assert_eq!(publish["level"], "DEBUG");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stopped_duplicate_and_reloaded_traces() {
    let dir = temp("store");
    let (hub, state) = hub(&dir);
    hub.create(spec("one", TraceKind::ClientId, "c1"))
        .expect("create");
    assert_eq!(
        hub.create(spec("one", TraceKind::Topic, "x")),
        Err(TraceError::AlreadyExists)
    );
    assert_eq!(
        hub.create(spec("two", TraceKind::ClientId, "c1")),
        Err(TraceError::DuplicateCondition("one".into()))
    );
    assert!(hub.any());
    let stopped = hub.stop("one").expect("stop");
    assert!(!stopped.spec.enable);
    assert!(!hub.any(), "a stopped trace is not checked");
    with_traces(&hub, || client("127.0.0.1:1", "c1", "mqtt"));
    assert_eq!(read(&hub, "one"), "");
    // Stopped, so the same condition may be traced again.
    hub.create(spec("two", TraceKind::ClientId, "c1"))
        .expect("create");
    // Another hub on the same store (a restart) sees both, as they were.
    let again = TraceHub::new();
    again.attach(state.clone(), &dir).expect("attach");
    let names: Vec<(String, bool)> = again
        .list()
        .into_iter()
        .map(|i| (i.spec.name, i.spec.enable))
        .collect();
    assert_eq!(names, [("one".into(), false), ("two".into(), true)]);
    // A delete made through the store reaches a view through its feed.
    let path = hub.file("two").expect("file");
    state.delete(KIND, "two").expect("delete");
    again
        .apply(&Change {
            kind: KIND.into(),
            key: "two".into(),
            value: None,
        })
        .expect("apply");
    assert_eq!(again.file("two"), Err(TraceError::NotFound));
    assert!(!path.exists());
    hub.delete("one").expect("delete");
    assert_eq!(hub.delete("one"), Err(TraceError::NotFound));
    let _ = std::fs::remove_dir_all(&dir);
}
