//! The device state machine on paused time, against a real bus: register/update/deregister
//! events, command → request, reply → event, one command at a time with the timeout releasing
//! the queue, observe/notify/cancel, queue mode, lifetime.

use super::*;
use crate::settings::Lwm2mSettings;
use serde_json::json;
use switchyard_bus::{Attachment, BusConfig, BusHandle};
use switchyard_coap_transport::coap_lite::MessageType;
use switchyard_coap_transport::demux::ClientChannel;
use switchyard_coap_transport::{Event, Transport, TransportConfig};
use switchyard_core::QoS;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A registration-interface request as the transport hands it up.
fn request(method: u8, path: &[&str], query: &[&str], payload: &[u8], port: u16) -> Request {
    let mut t: Transport<u8> = Transport::new(TransportConfig::default());
    let mut p = Packet::new();
    p.header.set_type(MessageType::Confirmable);
    p.header.message_id = 7;
    p.set_token(vec![1]);
    wire::set_code(&mut p, method);
    for s in path {
        p.add_option(CoapOption::UriPath, s.as_bytes().to_vec());
    }
    for q in query {
        p.add_option(CoapOption::UriQuery, q.as_bytes().to_vec());
    }
    p.payload = payload.to_vec();
    let bytes = p.to_bytes_unlimited().unwrap_or_default();
    match t.handle_datagram(peer(port), &bytes, now()).pop() {
        Some(Event::Request(r)) => r,
        other => panic!("no request: {other:?}"),
    }
}

struct Fixture {
    bus: BusHandle,
    ch: Channel,
    watcher: Session,
    _watcher: Attachment,
}

async fn session(bus: &BusHandle, id: &str) -> (Session, Attachment, Arc<ClientInfo>) {
    let info = Arc::new(ClientInfo {
        namespace: NAMESPACE,
        client_id: id.into(),
        username: None,
        peer: Some(peer(1)),
        proto_name: "LwM2M",
        proto_ver: 1,
        keepalive: 0,
        clean_start: true,
        expiry_interval: 0,
        connected_at: std::time::SystemTime::now(),
    });
    let o = switchyard_coap_transport::demux::open_session(bus, &info)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (o.session, o.attachment, info)
}

async fn fixture(settings: Lwm2mSettings, query: &[&str]) -> Fixture {
    let bus = BusHandle::new(BusConfig::default());
    let (mut watcher, watcher_attachment, _) = session(&bus, "watcher").await;
    let sf = SubscriptionFilter::parse("lwm2m/#", 0).unwrap_or_else(|e| panic!("{e}"));
    bus.subscribe(
        &mut watcher,
        sf,
        SubOptions {
            qos: QoS::AtMostOnce,
            ..SubOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let gw = Lwm2mGateway {
        bus: bus.clone(),
        settings: Arc::new(settings),
        objects: Arc::new(crate::codec::tests::db()),
    };
    let first = request(code::POST, &["rd"], query, b"</1/0>,</3/0>", 5000);
    let reg = Registration::parse(
        &wire::uri_query(&first.packet).unwrap_or_default(),
        b"</1/0>,</3/0>",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (s, attachment, _) = session(&bus, &reg.ep).await;
    let info = Arc::new(client_info(&reg, first.peer));
    let prefix = crate::channel::mount_prefix(&gw, &reg, &info).unwrap_or_else(|e| panic!("{e}"));
    let mut ch = Channel::new(gw, info, s, attachment, reg, prefix, now());
    ch.start(&first.exchange, now())
        .unwrap_or_else(|e| panic!("{e:?}"));
    Fixture {
        bus,
        ch,
        watcher,
        _watcher: watcher_attachment,
    }
}

impl Fixture {
    /// Events published since the last call: (topic, JSON).
    fn events(&mut self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        self.watcher.outbox.drain(now(), |_| true, &mut out);
        out.into_iter()
            .filter(|d| !d.message.topic.as_str().contains("/dn/"))
            .map(|d| {
                let v = serde_json::from_slice(&d.message.payload).unwrap_or(Value::Null);
                (d.message.topic.as_str().to_owned(), v)
            })
            .collect()
    }

    fn command(&mut self, j: &str) {
        let name = TopicName::new("lwm2m/dev1/dn/dm").unwrap_or_else(|e| panic!("{e}"));
        self.bus.publish(Message::new(
            name,
            j.as_bytes().to_vec(),
            QoS::AtMostOnce,
            false,
        ));
        self.ch.pull_deliveries(now());
    }

    /// The CoAP requests sent since the last call: (cid, token, packet).
    fn requests(&mut self) -> Vec<(u64, Vec<u8>, Packet)> {
        self.ch
            .take_outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Request {
                    cid, token, packet, ..
                } => Some((cid, token, packet)),
                _ => None,
            })
            .collect()
    }
}

fn content(c: u8, payload: &[u8], observe: Option<u32>) -> Packet {
    let mut p = Packet::new();
    wire::set_code(&mut p, c);
    p.payload = payload.to_vec();
    if let Some(o) = observe {
        p.set_observe_value(o);
    }
    p
}

#[tokio::test(start_paused = true)]
async fn register_reply_event_and_update() {
    let mut f = fixture(
        Lwm2mSettings::default(),
        &["ep=dev1", "lt=345", "lwm2m=1.0"],
    )
    .await;
    let outs = f.ch.take_outputs();
    let Some(Output::Reply { packet, .. }) = outs.first() else {
        panic!("{outs:?}")
    };
    assert_eq!(wire::code_of(packet), code::CREATED);
    let loc: Vec<_> = packet
        .get_option(CoapOption::LocationPath)
        .map(|l| l.iter().cloned().collect())
        .unwrap_or_default();
    assert_eq!(loc, vec![b"rd".to_vec(), b"dev1".to_vec()]);
    assert_eq!(
        f.events(),
        vec![(
            "lwm2m/dev1/up/resp".to_owned(),
            json!({"msgType":"register","data":{"ep":"dev1","lt":345,"lwm2m":"1.0","alternatePath":"/","objectList":["/1/0","/3/0"]}})
        )]
    );
    f.ch.handle_request(
        request(code::POST, &["rd", "dev1"], &["lt=789"], b"</3/0>", 5000),
        now(),
    );
    let ev = f.events();
    assert_eq!(ev[0].1["msgType"], json!("update"));
    assert_eq!(ev[0].1["data"]["lt"], json!(789));
    assert_eq!(ev[0].1["data"]["objectList"], json!(["/3/0"]));
    // Wrong endpoint path: 4.04.
    f.ch.take_outputs();
    f.ch.handle_request(request(code::POST, &["rd", "other"], &[], b"", 5000), now());
    match f.ch.take_outputs().first() {
        Some(Output::Reply { packet, .. }) => assert_eq!(wire::code_of(packet), code::NOT_FOUND),
        other => panic!("{other:?}"),
    }
    f.ch.handle_request(
        request(code::DELETE, &["rd", "dev1"], &[], b"", 5000),
        now(),
    );
    assert_eq!(f.ch.close_reason(), Some(&CloseReason::ClientDisconnect));
    assert!(f.events().is_empty(), "no event for a de-register");
}

#[tokio::test(start_paused = true)]
async fn one_command_at_a_time_and_timeout_releases_the_queue() {
    let mut f = fixture(Lwm2mSettings::default(), &["ep=dev1", "lt=345", "lwm2m=1"]).await;
    f.ch.take_outputs();
    f.events();
    f.command(r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/0"}}"#);
    f.command(r#"{"reqID":2,"msgType":"read","data":{"path":"/3/0/9"}}"#);
    let sent = f.requests();
    assert_eq!(sent.len(), 1, "one outstanding command");
    let (cid, token, p) = &sent[0];
    assert_eq!(token.len(), 8, "commands carry a non-empty token");
    assert_eq!(wire::uri_path(p).unwrap_or_default(), vec!["3", "0", "0"]);
    assert_eq!(f.ch.queued(), 1);
    f.ch.handle_outcome(*cid, Outcome::Timeout, now());
    let ev = f.events();
    assert_eq!(
        ev[0].1,
        json!({"reqID":1,"msgType":"coap_timeout","data":{"path":"/3/0/0"}})
    );
    let sent = f.requests();
    assert_eq!(sent.len(), 1, "the next command goes out after the timeout");
    f.ch.handle_response(sent[0].0, content(code::CONTENT, b"87", None), now());
    let ev = f.events();
    assert_eq!(
        ev[0].1,
        json!({"reqID":2,"msgType":"read","data":{"reqPath":"/3/0/9","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/9","value":87}]}})
    );
    // Unknown msgType: 4.00 with the keys echoed, nothing sent.
    f.command(r#"{"reqID":3,"msgType":"nope","data":{"path":"/3/0"}}"#);
    assert!(f.requests().is_empty());
    assert_eq!(f.events()[0].1["data"]["codeMsg"], json!("bad_request"));
}

#[tokio::test(start_paused = true)]
async fn ack_then_separate_response_and_reset() {
    let mut f = fixture(Lwm2mSettings::default(), &["ep=dev1", "lt=345", "lwm2m=1"]).await;
    f.ch.take_outputs();
    f.events();
    f.command(r#"{"requestID":206,"cacheID":206,"msgType":"read","data":{"path":"/3/0/0"}}"#);
    let cid = f.requests()[0].0;
    f.ch.handle_outcome(cid, Outcome::Acked, now());
    assert_eq!(
        f.events()[0].1,
        json!({"requestID":206,"cacheID":206,"msgType":"ack","data":{"path":"/3/0/0"}})
    );
    f.ch.handle_response(cid, content(code::CONTENT, b"EMQ", None), now());
    assert_eq!(
        f.events()[0].1["data"]["content"],
        json!([{"path":"/3/0/0","value":"EMQ"}])
    );
    f.command(r#"{"msgType":"execute","data":{"path":"/3/0/4"}}"#);
    let cid = f.requests()[0].0;
    f.ch.handle_outcome(cid, Outcome::Reset, now());
    assert_eq!(f.events()[0].1["msgType"], json!("coap_reset"));
}

#[tokio::test(start_paused = true)]
async fn observe_notify_cancel() {
    let mut f = fixture(Lwm2mSettings::default(), &["ep=dev1", "lt=345", "lwm2m=1"]).await;
    f.ch.take_outputs();
    f.events();
    f.command(r#"{"reqID":5,"msgType":"observe","data":{"path":"/3/0/9"}}"#);
    let (cid, token, _) = f.requests().remove(0);
    f.ch.handle_response(cid, content(code::CONTENT, b"80", Some(0)), now());
    let ev = f.events();
    assert_eq!(ev[0].0, "lwm2m/dev1/up/resp");
    assert_eq!(ev[0].1["msgType"], json!("observe"));
    assert_eq!(f.ch.observations(), 1);
    f.ch.handle_response(cid, content(code::CONTENT, b"79", Some(3)), now());
    f.ch.handle_response(cid, content(code::CONTENT, b"79", Some(3)), now());
    let ev = f.events();
    assert_eq!(ev.len(), 1, "a repeated Observe value is ignored");
    assert_eq!(ev[0].0, "lwm2m/dev1/up/notify");
    assert_eq!(
        ev[0].1,
        json!({"reqID":5,"msgType":"notify","seqNum":3,"data":{"reqPath":"/3/0/9","code":"2.05","codeMsg":"content","content":[{"path":"/3/0/9","value":79}]}})
    );
    f.command(r#"{"reqID":6,"msgType":"cancel-observe","data":{"path":"/3/0/9"}}"#);
    let (cid2, token2, p) = f.requests().remove(0);
    assert_eq!(
        token2, token,
        "cancel uses the observation's token (RFC 7641 §3.6)"
    );
    assert_eq!(p.get_observe_value().and_then(Result::ok), Some(1));
    f.ch.handle_response(cid2, content(code::CONTENT, b"79", None), now());
    assert_eq!(f.events()[0].1["msgType"], json!("cancel-observe"));
    assert_eq!(f.ch.observations(), 0);
}

#[tokio::test(start_paused = true)]
async fn queue_mode_holds_commands_until_update() {
    let settings = Lwm2mSettings {
        qmode_time_window: Duration::from_secs(2),
        ..Lwm2mSettings::default()
    };
    let mut f = fixture(settings, &["ep=dev1", "lt=345", "lwm2m=1", "b=UQ"]).await;
    f.ch.take_outputs();
    f.command(r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/0"}}"#);
    let first = f.requests();
    assert_eq!(first.len(), 1, "inside the window: sent at once");
    f.ch.handle_response(first[0].0, content(code::CONTENT, b"x", None), now());
    tokio::time::advance(Duration::from_millis(2500)).await;
    for i in 2..5 {
        f.command(&format!(
            r#"{{"reqID":{i},"msgType":"read","data":{{"path":"/3/0/0"}}}}"#
        ));
    }
    assert!(f.requests().is_empty(), "held in queue mode");
    assert_eq!(f.ch.queued(), 3);
    f.ch.handle_request(request(code::POST, &["rd", "dev1"], &[], b"", 5000), now());
    let mut n = 0;
    while let Some((cid, _, _)) = f.requests().into_iter().next() {
        n += 1;
        f.ch.handle_response(cid, content(code::CONTENT, b"x", None), now());
    }
    assert_eq!(n, 3, "flushed in order on Update");
}

#[tokio::test(start_paused = true)]
async fn lifetime_expiry_and_clamping() {
    let mut f = fixture(Lwm2mSettings::default(), &["ep=dev1", "lt=2", "lwm2m=1"]).await;
    // lt=2 is raised to lifetime_min (15 s).
    let d = f.ch.next_deadline().unwrap_or_else(now);
    assert_eq!(d.duration_since(now()), Duration::from_secs(15));
    tokio::time::advance(Duration::from_secs(14)).await;
    f.ch.tick(now());
    assert!(f.ch.close_reason().is_none());
    tokio::time::advance(Duration::from_secs(1)).await;
    f.ch.tick(now());
    assert_eq!(f.ch.close_reason(), Some(&CloseReason::KeepaliveTimeout));
    let s = Lwm2mSettings::default();
    assert_eq!(s.lifetime(0), Duration::from_secs(86_400));
    assert_eq!(s.lifetime(100_000), Duration::from_secs(86_400));
    assert_eq!(s.lifetime(60), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn auto_observe_skips_core_and_undefined_objects() {
    let settings = Lwm2mSettings {
        auto_observe: true,
        ..Lwm2mSettings::default()
    };
    let mut f = fixture(settings, &["ep=dev1", "lt=345", "lwm2m=1"]).await;
    let sent = f.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        wire::uri_path(&sent[0].2).unwrap_or_default(),
        vec!["3", "0"]
    );
    f.ch.handle_response(sent[0].0, content(code::CONTENT, b"", Some(0)), now());
    let ev = f.events();
    let obs = ev.iter().find(|(_, v)| v["msgType"] == json!("observe"));
    assert_eq!(
        obs.map(|(_, v)| v["is_auto_observe"].clone()),
        Some(json!(true))
    );
}

/// The channel's command through the real transport on paused time: the CON is retransmitted
/// at ACK_TIMEOUT × 2^n (2, 6, 14, 30 s with factor 1), times out at 62 s, the device gets a
/// `coap_timeout` event, and the next queued command goes out.
#[tokio::test(start_paused = true)]
async fn unanswered_command_is_retransmitted_then_times_out() {
    let mut f = fixture(Lwm2mSettings::default(), &["ep=dev1", "lt=600", "lwm2m=1"]).await;
    f.ch.take_outputs();
    f.events();
    let cfg = TransportConfig {
        ack_random_factor: 1.0,
        ..TransportConfig::default()
    };
    let mut t: Transport<u64> = Transport::with_seed(cfg, 1);
    f.command(r#"{"reqID":1,"msgType":"read","data":{"path":"/3/0/0"}}"#);
    f.command(r#"{"reqID":2,"msgType":"read","data":{"path":"/3/0/1"}}"#);
    let t0 = now();
    let send = |f: &mut Fixture, t: &mut Transport<u64>| {
        for o in f.ch.take_outputs() {
            if let Output::Request {
                peer,
                packet,
                observe,
                token,
                cid,
            } = o
            {
                t.request_with_token(peer, packet, true, observe, token, cid, now());
            }
        }
    };
    send(&mut f, &mut t);
    let mut sent_at = Vec::new();
    let mut first_mid = None;
    let mut timed_out = None;
    for _ in 0..64 {
        while let Some((_, b)) = t.poll_transmit() {
            let p = Packet::from_bytes(&b).unwrap_or_else(|e| panic!("{e}"));
            first_mid.get_or_insert(p.header.message_id);
            if Some(p.header.message_id) == first_mid {
                sent_at.push(now().duration_since(t0).as_secs());
            }
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        for ev in t.poll(now()) {
            if let Event::Timeout { tag, .. } = ev {
                timed_out = Some(now().duration_since(t0).as_secs());
                f.ch.handle_outcome(tag, Outcome::Timeout, now());
                send(&mut f, &mut t);
            }
        }
        if timed_out.is_some() {
            break;
        }
    }
    assert_eq!(sent_at, vec![0, 2, 6, 14, 30]);
    assert_eq!(timed_out, Some(62));
    assert_eq!(
        f.events()[0].1,
        json!({"reqID":1,"msgType":"coap_timeout","data":{"path":"/3/0/0"}})
    );
    let next = t.poll_transmit().map(|(_, b)| Packet::from_bytes(&b));
    let Some(Ok(next)) = next else {
        panic!("the next command was not sent")
    };
    assert_eq!(
        wire::uri_path(&next).unwrap_or_default(),
        vec!["3", "0", "1"]
    );
}
