//! The engine on a real bus: rules run on published messages and client events, republish
//! reaches subscribers without re-entering its rule, and the HTTP action delivers templated
//! requests to a local server, retries, and waits out an outage.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use switchyard_bus::{BusHandle, ClientInfo, Namespace, OpenSession, Opened, SubOptions};
use switchyard_core::{Message, QoS, SubscriptionFilter, TopicName};
use switchyard_rules::RuleEngine;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn info(id: &str) -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        namespace: Namespace("test"),
        client_id: id.into(),
        username: Some(format!("user-{id}")),
        peer: Some(([10, 0, 0, 7], 4242).into()),
        proto_name: "MQTT",
        proto_ver: 5,
        keepalive: 30,
        clean_start: true,
        expiry_interval: 0,
        connected_at: SystemTime::now(),
    })
}

async fn connect(bus: &BusHandle, id: &str) -> Opened {
    let mut o = bus
        .open_session(OpenSession {
            info: info(id),
            clean_start: true,
            expiry: Duration::ZERO,
            max_inflight: 32,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    o.attachment.report_connected();
    o
}

fn subscribe(bus: &BusHandle, o: &mut Opened, f: &str) {
    let sf = SubscriptionFilter::parse(f, 0).unwrap_or_else(|e| panic!("{e}"));
    let opts = SubOptions {
        qos: QoS::AtLeastOnce,
        ..Default::default()
    };
    let _ = bus.subscribe(&mut o.session, sf, opts);
}

fn publish(bus: &BusHandle, from: &Opened, topic: &str, payload: &str) {
    let mut m = Message::new(
        TopicName::new(topic).unwrap_or_else(|e| panic!("{e}")),
        payload.to_string(),
        QoS::AtLeastOnce,
        false,
    );
    m.origin = Some(switchyard_core::Origin {
        session: from.session.id,
        client_id: from.session.client_id.clone(),
    });
    bus.publish(m);
}

fn received(o: &Opened) -> Vec<(String, String)> {
    let mut out = Vec::new();
    o.session.outbox.drain(Instant::now(), |_| true, &mut out);
    out.into_iter()
        .map(|d| {
            (
                d.message.topic.as_str().to_string(),
                String::from_utf8_lossy(&d.message.payload).into_owned(),
            )
        })
        .collect()
}

fn engine(bus: &BusHandle) -> Arc<RuleEngine> {
    let e = RuleEngine::new(
        bus.clone(),
        "sy@127.0.0.1",
        None,
        true,
        CancellationToken::new(),
    );
    e.attach();
    e
}

fn metric(e: &RuleEngine, id: &str, k: &str) -> u64 {
    e.rule_metrics(id)
        .and_then(|m| m["metrics"][k].as_u64())
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn republish_reaches_subscribers_and_never_reenters_its_rule() {
    let bus = BusHandle::new(Default::default());
    let e = engine(&bus);
    let created = e.create_rule(&json!({
        "id": "r1",
        "sql": "SELECT payload.temp AS t, clientid, username FROM \"sensors/#\", \"alerts/#\" WHERE payload.temp > 30",
        "actions": [{"function": "republish",
                     "args": {"topic": "alerts/${clientid}", "payload": "${t} from ${username}/${nope}", "qos": 1}}]
    }));
    assert!(created.is_ok(), "{created:?}");
    let mut sub = connect(&bus, "sub").await;
    subscribe(&bus, &mut sub, "alerts/#");
    let dev = connect(&bus, "dev1").await;
    publish(&bus, &dev, "sensors/1", r#"{"temp": 35}"#);
    publish(&bus, &dev, "sensors/1", r#"{"temp": 20}"#);
    publish(&bus, &dev, "sensors/1", "not json");
    assert_eq!(
        received(&sub),
        vec![(
            "alerts/dev1".to_string(),
            "35 from user-dev1/undefined".to_string()
        )]
    );
    // The republished message matched "alerts/#" of the same rule but was not re-applied.
    assert_eq!(metric(&e, "r1", "matched"), 3);
    assert_eq!(metric(&e, "r1", "passed"), 1);
    assert_eq!(metric(&e, "r1", "failed.no_result"), 1);
    assert_eq!(metric(&e, "r1", "failed.exception"), 1);
    assert_eq!(metric(&e, "r1", "actions.success"), 1);
    // Disabling by a partial PUT stops it and resets its metrics.
    let r = e.update_rule("r1", &json!({"enable": false}));
    assert_eq!(r.ok().map(|r| r["enable"].clone()), Some(json!(false)));
    publish(&bus, &dev, "sensors/1", r#"{"temp": 35}"#);
    assert!(received(&sub).is_empty());
    assert_eq!(metric(&e, "r1", "matched"), 0);
}

#[tokio::test]
async fn client_and_session_events_feed_rules() {
    let bus = BusHandle::new(Default::default());
    let e = engine(&bus);
    for (id, ev) in [
        ("c", "client_connected"),
        ("d", "client_disconnected"),
        ("s", "session_subscribed"),
        ("u", "session_unsubscribed"),
        ("dl", "message_delivered"),
        ("ak", "message_acked"),
        ("dr", "message_dropped"),
    ] {
        let sql = format!("SELECT * FROM \"$events/{ev}\"");
        let r = e.create_rule(&json!({"id": id, "sql": sql, "actions": [
            {"function": "republish", "args": {"topic": "ev/{}", "payload": "${.}"}}]}));
        assert!(r.is_ok(), "{r:?}");
        // Topic templates are per rule: set the event name in it.
        let fixed = json!({"actions": [{"function": "republish",
            "args": {"topic": format!("ev/{ev}"), "payload": "${.}", "qos": 0}}]});
        assert!(e.update_rule(id, &fixed).is_ok());
    }
    let mut watcher = connect(&bus, "watcher").await;
    subscribe(&bus, &mut watcher, "ev/#");
    let mut dev = connect(&bus, "dev").await;
    subscribe(&bus, &mut dev, "t/#");
    publish(&bus, &dev, "t/1", "hi");
    publish(&bus, &dev, "nowhere/1", "lost");
    let mut out = Vec::new();
    dev.session.take_deliveries(Instant::now(), 10, &mut out);
    for d in out {
        let sent = dev.session.qos.send(d, Instant::now());
        if let Some(pkid) = sent.pkid {
            let _ = dev.session.qos.on_puback(pkid);
        }
    }
    let sf = SubscriptionFilter::parse("t/#", 0).unwrap_or_else(|e| panic!("{e}"));
    bus.unsubscribe(&mut dev.session, &sf);
    dev.attachment
        .finish(dev.session, &switchyard_core::CloseReason::Kicked);
    let got = received(&watcher);
    let by: std::collections::HashMap<String, Value> = got
        .into_iter()
        .filter(|(t, _)| t.starts_with("ev/"))
        .map(|(t, p)| (t, serde_json::from_str(&p).unwrap_or(Value::Null)))
        .filter(|(_, v)| v["clientid"] == json!("dev"))
        .collect();
    let c = &by["ev/client_connected"];
    assert_eq!(c["username"], json!("user-dev"));
    assert_eq!(c["peername"], json!("10.0.0.7:4242"));
    assert_eq!(c["proto_name"], json!("MQTT"));
    assert_eq!(c["event"], json!("client.connected"));
    assert_eq!(by["ev/client_disconnected"]["reason"], json!("kicked"));
    assert_eq!(by["ev/session_subscribed"]["topic"], json!("t/#"));
    assert_eq!(by["ev/session_unsubscribed"]["topic"], json!("t/#"));
    let d = &by["ev/message_delivered"];
    assert_eq!(
        (
            d["from_clientid"].clone(),
            d["topic"].clone(),
            d["payload"].clone()
        ),
        (json!("dev"), json!("t/1"), json!("hi"))
    );
    assert_eq!(by["ev/message_acked"]["topic"], json!("t/1"));
    assert!(by.contains_key("ev/message_acked"));
    // message_dropped is about the publisher (dev) of nowhere/1.
    let dr = &by["ev/message_dropped"];
    assert_eq!(
        (dr["reason"].clone(), dr["topic"].clone()),
        (json!("no_subscribers"), json!("nowhere/1"))
    );
}

#[tokio::test]
async fn rule_test_dry_run() {
    let bus = BusHandle::new(Default::default());
    let e = engine(&bus);
    let ok = e.test_sql(
        "SELECT payload.temp as t FROM \"t/#\" WHERE payload.temp > 20",
        &json!({"topic": "t/1", "payload": "{\"temp\": 25}"}),
    );
    assert_eq!(ok.ok(), Some(json!({"t": 25})));
    let no = e.test_sql("SELECT * FROM \"x/#\"", &json!({"topic": "t/1"}));
    assert!(matches!(no, Err(switchyard_rules::TestError::NotMatch)));
    let ev = e.test_sql(
        "SELECT clientid FROM \"$events/client_connected\"",
        &json!({"event_type": "client_connected", "clientid": "c9"}),
    );
    assert_eq!(ev.ok(), Some(json!({"clientid": "c9"})));
    let fe = e.test_sql(
        "FOREACH payload.l AS x DO x + 1 AS v INCASE x > 1 FROM \"t/#\"",
        &json!({"topic": "t/1", "payload": "{\"l\": [1, 2, 3]}"}),
    );
    assert_eq!(fe.ok(), Some(json!([{"v": 3}, {"v": 4}])));
    let bad = e.test_sql(
        "SELECT payload.x FROM \"t/#\"",
        &json!({"topic": "t/1", "payload": "zz"}),
    );
    assert!(matches!(bad, Err(switchyard_rules::TestError::Eval(_))));
}

/// A local webhook receiver: answers `plan[i]` to the i-th request (then 200), reports bodies.
#[derive(Clone)]
struct Hook {
    tx: mpsc::UnboundedSender<(String, String)>,
    plan: Arc<Vec<u16>>,
    seen: Arc<AtomicUsize>,
}

async fn hook(
    State(h): State<Hook>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: String,
) -> StatusCode {
    let i = h.seen.fetch_add(1, Ordering::SeqCst);
    let code = h.plan.get(i).copied().unwrap_or(200);
    let tag = headers
        .get("x-dev")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let _ = h.tx.send((format!("{} {} {code}", uri.path(), tag), body));
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}

async fn serve_hook(
    listener: tokio::net::TcpListener,
    plan: Vec<u16>,
) -> (mpsc::UnboundedReceiver<(String, String)>, CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let h = Hook {
        tx,
        plan: Arc::new(plan),
        seen: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new().route("/*path", post(hook)).with_state(h);
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await;
    });
    (rx, stop)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| ("timeout".into(), String::new()))
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn action_metric(e: &RuleEngine, k: &str) -> u64 {
    e.action_metrics("http:hook")
        .ok()
        .and_then(|m| m["metrics"][k].as_u64())
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn webhook_templates_retries_and_outage() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    // First request: 503 (retried), then 200; the third request gets a 400 (failed, no retry).
    let (mut rx, stop) = serve_hook(listener, vec![503, 200, 400]).await;
    let bus = BusHandle::new(Default::default());
    let e = engine(&bus);
    let c = e.create_connector(&json!({"type": "http", "name": "hook",
        "url": format!("http://{addr}/base"),
        "resource_opts": {"health_check_interval": "100ms"}}));
    assert!(c.is_ok(), "{c:?}");
    let a = e.create_action(&json!({"type": "http", "name": "hook", "connector": "hook",
        "parameters": {"path": "/events/${clientid}", "method": "post",
                       "headers": {"x-dev": "${clientid}"},
                       "body": "{\"id\":\"${id}\",\"temp\":${payload.temp},\"miss\":\"${nope}\"}",
                       "max_retries": 2},
        "resource_opts": {"request_ttl": "infinity"}}));
    assert!(a.is_ok(), "{a:?}");
    assert!(e
        .create_rule(&json!({"id": "w", "sql": "SELECT * FROM \"s/#\"", "actions": ["http:hook"]}))
        .is_ok());
    wait_until("connector connected", || {
        e.get_connector("http:hook")
            .ok()
            .map(|c| c["status"].clone())
            == Some(json!("connected"))
    })
    .await;
    let dev = connect(&bus, "dev9").await;
    publish(&bus, &dev, "s/1", r#"{"temp": 21}"#);
    let (first, body) = next(&mut rx).await;
    assert_eq!(first, "/base/events/dev9 dev9 503");
    let (second, body2) = next(&mut rx).await;
    assert_eq!(second, "/base/events/dev9 dev9 200");
    assert_eq!(body, body2);
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(
        (v["temp"].clone(), v["miss"].clone()),
        (json!(21), json!("undefined"))
    );
    assert_eq!(v["id"].as_str().map(str::len), Some(32));
    wait_until("success", || action_metric(&e, "success") == 1).await;
    assert_eq!(action_metric(&e, "retried"), 1);
    publish(&bus, &dev, "s/1", r#"{"temp": 22}"#);
    assert_eq!(next(&mut rx).await.0, "/base/events/dev9 dev9 400");
    wait_until("failed", || action_metric(&e, "failed") == 1).await;

    // The server goes away: publishers are not blocked, requests queue.
    stop.cancel();
    drop(rx);
    wait_until("disconnected", || {
        e.get_connector("http:hook")
            .ok()
            .map(|c| c["status"].clone())
            == Some(json!("disconnected"))
    })
    .await;
    let t0 = Instant::now();
    for i in 0..5 {
        publish(&bus, &dev, "s/1", &format!("{{\"temp\": {i}}}"));
    }
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "publishers waited for the sink"
    );
    wait_until("queued", || action_metric(&e, "queuing") == 5).await;
    assert_eq!(
        e.get_action("http:hook").ok().map(|a| a["status"].clone()),
        Some(json!("disconnected"))
    );
    // Back on the same port: everything queued is delivered, in order.
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut rx, _stop) = serve_hook(listener, vec![]).await;
    let mut temps = Vec::new();
    for _ in 0..5 {
        let (_, b) = next(&mut rx).await;
        let v: Value = serde_json::from_str(&b).unwrap_or(Value::Null);
        temps.push(v["temp"].as_i64().unwrap_or(-1));
    }
    temps.sort_unstable();
    assert_eq!(temps, vec![0, 1, 2, 3, 4]);
    wait_until("all delivered", || action_metric(&e, "success") == 6).await;
    assert_eq!(action_metric(&e, "queuing"), 0);
    assert_eq!(metric(&e, "w", "actions.success"), 7);
}

#[tokio::test]
async fn full_buffer_drops_the_oldest_and_missing_action_counts_out_of_service() {
    let bus = BusHandle::new(Default::default());
    let e = engine(&bus);
    // A port nobody listens on: the connector never connects, so everything queues.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = free.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(free);
    assert!(e
        .create_connector(&json!({"type": "http", "name": "down", "url": format!("http://{addr}")}))
        .is_ok());
    let a = e.create_action(&json!({"type": "http", "name": "hook", "connector": "down",
        "parameters": {"body": "0123456789"},
        "resource_opts": {"max_buffer_bytes": 100}}));
    assert!(a.is_ok(), "{a:?}");
    assert!(e
        .create_rule(&json!({"id": "b", "sql": "SELECT * FROM \"b/#\"",
        "actions": ["http:hook", "http:missing"]}))
        .is_ok());
    let dev = connect(&bus, "d").await;
    for _ in 0..20 {
        publish(&bus, &dev, "b/1", "x");
    }
    // Each request is 10 body bytes + the URL; only the newest few fit in 100 bytes.
    let dropped = action_metric(&e, "dropped.queue_full");
    let queued = action_metric(&e, "queuing");
    assert!(
        dropped > 0 && queued > 0 && dropped + queued == 20,
        "{dropped} {queued}"
    );
    assert!(action_metric(&e, "queuing_bytes") <= 100);
    assert_eq!(metric(&e, "b", "actions.failed.out_of_service"), 20);
    assert_eq!(metric(&e, "b", "actions.success"), 20);
    // Deleting an action a rule uses is refused, and names the rule.
    match e.delete_action("http:hook", false) {
        Err(switchyard_rules::RulesError::InUse(r)) => assert_eq!(r, vec!["b".to_string()]),
        other => panic!("{other:?}"),
    }
    assert!(e.delete_action("http:hook", true).is_ok());
    assert_eq!(
        e.get_rule("b").map(|r| r["actions"].clone()),
        Some(json!(["http:missing"]))
    );
}

#[tokio::test]
async fn requests_past_their_ttl_expire_while_the_server_is_away() {
    let bus = BusHandle::new(Default::default());
    let e = engine(&bus);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let addr = free.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(free);
    assert!(e
        .create_connector(&json!({"type": "http", "name": "down", "url": format!("http://{addr}")}))
        .is_ok());
    assert!(e
        .create_action(&json!({"type": "http", "name": "hook", "connector": "down",
            "parameters": {}, "resource_opts": {"request_ttl": "200ms"}}))
        .is_ok());
    assert!(e
        .create_rule(&json!({"id": "x", "sql": "SELECT * FROM \"x/#\"", "actions": ["http:hook"]}))
        .is_ok());
    let dev = connect(&bus, "d").await;
    // A huge, non-JSON payload: SELECT * takes it as text, nothing breaks.
    let big = "\u{fffd}".repeat(300_000);
    publish(&bus, &dev, "x/1", &big);
    publish(&bus, &dev, "x/1", "small");
    assert_eq!(action_metric(&e, "queuing"), 2);
    wait_until("expired", || action_metric(&e, "dropped.expired") == 2).await;
    assert_eq!(action_metric(&e, "queuing"), 0);
    assert_eq!(action_metric(&e, "queuing_bytes"), 0);
}

#[tokio::test]
async fn webhook_over_https_with_the_connectors_ca() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("sy-rules-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("{e}"))
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap_or_else(|e| panic!("{e}"));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let body = axum::body::to_bytes(
                                axum::body::Body::new(req.into_body()),
                                1 << 20,
                            )
                            .await
                            .unwrap_or_default();
                            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                axum::body::Body::from("ok"),
                            ))
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    let bus = BusHandle::new(Default::default());
    let e = engine(&bus);
    let c = e.create_connector(&json!({"type": "http", "name": "tls",
        "url": format!("https://localhost:{port}/in"),
        "ssl": {"enable": true, "cacertfile": ca.to_string_lossy()},
        "resource_opts": {"health_check_interval": "100ms"}}));
    assert!(c.is_ok(), "{c:?}");
    assert!(e
        .create_action(&json!({"type": "http", "name": "hook", "connector": "tls",
            "parameters": {"body": "secure ${payload}"}}))
        .is_ok());
    assert!(e
        .create_rule(
            &json!({"id": "s", "sql": "SELECT payload FROM \"s/#\"", "actions": ["http:hook"]})
        )
        .is_ok());
    wait_until("connected", || {
        e.get_connector("http:tls")
            .ok()
            .map(|c| c["status"].clone())
            == Some(json!("connected"))
    })
    .await;
    let dev = connect(&bus, "tlsdev").await;
    publish(&bus, &dev, "s/1", "hello");
    let got = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten();
    assert_eq!(got.as_deref(), Some("secure hello"));
    wait_until("success", || action_metric(&e, "success") == 1).await;
    let _ = std::fs::remove_dir_all(&dir);
}
