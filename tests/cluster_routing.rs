//! Two Switchyard nodes over two clustered nats-servers (each node on its own server, so
//! interest crosses a NATS route): messages published on one node reach the other's
//! subscribers in order (per topic, as MQTT orders them) and once, also when a topic matches
//! several of the receiving node's filters; local subscribers get them once (not again through
//! NATS),
//! retained messages are kept on every node, and a node whose NATS server is not up yet
//! serves its own clients and joins when the server comes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "admin_support/mod.rs"]
mod admin_support;
mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mqtt::Client;
use common::{require_program, temp_dir, wait_until, Broker};
use rumqttc::QoS;

/// One nats-server on loopback, killed (by PID) when dropped.
struct Nats {
    child: Child,
    port: u16,
    _dir: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Nats {
    /// A server on `port`, in a cluster listening on `cluster_port` with `routes` to others.
    fn start(port: u16, cluster_port: u16, routes: &[u16]) -> Nats {
        let dir = temp_dir("nats");
        let log = std::fs::File::create(dir.join("nats.log")).unwrap();
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["--cluster_name", "sy-test"])
            .args(["--cluster", &format!("nats://127.0.0.1:{cluster_port}")]);
        if !routes.is_empty() {
            let r: Vec<String> = routes
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect();
            cmd.args(["--routes", &r.join(",")]);
        }
        let child = cmd
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn nats-server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect(addr).is_ok()),
            "nats-server did not listen on {addr}"
        );
        Nats {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node(name: &str, nats_port: u16) -> Broker {
    Broker::start_with(&format!(
        "[node]\nname = \"{name}@127.0.0.1\"\n\
         [cluster]\nenable = true\nname = \"t{}\"\n\
         [cluster.nats]\nservers = [\"nats://127.0.0.1:{nats_port}\"]\n",
        std::process::id()
    ))
}

/// Publishes `probe` messages from `from` until `to` gets one: the other node's interest has
/// reached this node's NATS server. Returns how many probes it took.
async fn await_route(from: &mut Client, to: &mut Client, topic: &str) -> usize {
    for i in 1..=100 {
        from.publish(topic, QoS::AtMostOnce, false, b"probe").await;
        if let Some(p) = to.next_publish(Duration::from_millis(200)).await {
            assert_eq!(&p.payload[..], b"probe");
            // Later probes may still be in flight: drain them.
            while let Some(p) = to.next_publish(Duration::from_millis(300)).await {
                assert_eq!(&p.payload[..], b"probe", "{}", p.topic);
            }
            return i;
        }
    }
    panic!("no route from one node to the other for {topic} after 100 probes");
}

/// Two servers in one NATS cluster, two nodes, one on each.
fn cluster_of_two() -> (Nats, Nats, Broker, Broker) {
    let (c1, c2) = (free_port(), free_port());
    let n1 = Nats::start(free_port(), c1, &[c2]);
    let n2 = Nats::start(free_port(), c2, &[c1]);
    let a = node("a", n1.port);
    let b = node("b", n2.port);
    (n1, n2, a, b)
}

#[tokio::test]
async fn messages_cross_nodes_in_order_and_once() {
    if !require_program("nats-server") {
        return;
    }
    let (_n1, _n2, a, b) = cluster_of_two();
    let mut sub_b = Client::connect(b.mqtt_addr(), "sub-b").await;
    let mut sub_a = Client::connect(a.mqtt_addr(), "sub-a").await;
    let mut publ = Client::connect(a.mqtt_addr(), "pub-a").await;
    sub_b.subscribe("t/+/x", QoS::AtLeastOnce).await;
    sub_b.subscribe("w/#", QoS::AtLeastOnce).await;
    sub_a.subscribe("t/+/x", QoS::AtLeastOnce).await;
    await_route(&mut publ, &mut sub_b, "t/probe/x").await;
    // sub-a got the probes locally, once each; drop them.
    while sub_a
        .next_publish(Duration::from_millis(300))
        .await
        .is_some()
    {}

    // Levels NATS could not carry as they are: dots, spaces, empty, UTF-8.
    let odd = ["a.b", "two words", "", "温度", "~7E"];
    let n = 200;
    for i in 0..n {
        let level = odd[i % odd.len()];
        publ.publish(
            &format!("t/{level}/x"),
            QoS::AtLeastOnce,
            false,
            format!("{i}").as_bytes(),
        )
        .await;
    }
    publ.publish("w", QoS::AtLeastOnce, false, b"parent").await;
    publ.publish("w/1/2", QoS::AtLeastOnce, false, b"child")
        .await;

    for (who, sub) in [("remote", &mut sub_b), ("local", &mut sub_a)] {
        for i in 0..n {
            let p = sub.expect_publish(&format!("{who} message {i}")).await;
            assert_eq!(
                String::from_utf8_lossy(&p.payload),
                i.to_string(),
                "{who}: order kept per publisher"
            );
            assert_eq!(
                p.topic,
                format!("t/{}/x", odd[i % odd.len()]),
                "{who}: topic intact"
            );
        }
    }
    // Two topics, two NATS subjects: MQTT orders per topic, so compare as a set.
    let mut w: Vec<(String, Vec<u8>)> = Vec::new();
    for what in ["w (w/# matches its parent)", "w/1/2"] {
        let p = sub_b.expect_publish(what).await;
        w.push((p.topic.clone(), p.payload.to_vec()));
    }
    w.sort();
    assert_eq!(
        w,
        vec![
            ("w".into(), b"parent".to_vec()),
            ("w/1/2".into(), b"child".to_vec())
        ]
    );
    sub_a
        .expect_no_publish(
            Duration::from_millis(500),
            "a local subscriber gets each message once",
        )
        .await;
    sub_b
        .expect_no_publish(
            Duration::from_millis(500),
            "a remote subscriber gets each message once",
        )
        .await;
    assert!(
        a.log_contains("cluster link started"),
        "{}",
        a.log_excerpt()
    );
}

#[tokio::test]
async fn a_topic_matching_several_filters_of_a_node_is_delivered_once() {
    if !require_program("nats-server") {
        return;
    }
    let (_n1, _n2, a, b) = cluster_of_two();
    // Three filters on b that all match d/1/x: three NATS subscriptions, three copies on the
    // wire; each subscriber must still get each message once, in order.
    let mut plus = Client::connect(b.mqtt_addr(), "plus").await;
    plus.subscribe("d/+/x", QoS::AtLeastOnce).await;
    let mut hash = Client::connect(b.mqtt_addr(), "hash").await;
    hash.subscribe("d/#", QoS::AtLeastOnce).await;
    let mut both = Client::connect(b.mqtt_addr(), "both").await;
    both.subscribe("d/1/x", QoS::AtLeastOnce).await;
    both.subscribe("#", QoS::AtLeastOnce).await;
    let mut publ = Client::connect(a.mqtt_addr(), "pub-a").await;
    await_route(&mut publ, &mut plus, "d/probe/x").await;
    while hash
        .next_publish(Duration::from_millis(300))
        .await
        .is_some()
    {}
    while both
        .next_publish(Duration::from_millis(300))
        .await
        .is_some()
    {}

    for i in 0..50 {
        publ.publish("d/1/x", QoS::AtLeastOnce, false, format!("{i}").as_bytes())
            .await;
    }
    for (who, sub) in [
        ("plus", &mut plus),
        ("hash", &mut hash),
        ("both", &mut both),
    ] {
        for i in 0..50 {
            let p = sub.expect_publish(&format!("{who}: message {i}")).await;
            assert_eq!(String::from_utf8_lossy(&p.payload), i.to_string(), "{who}");
        }
        sub.expect_no_publish(Duration::from_millis(500), "each message once")
            .await;
    }
}

#[tokio::test]
async fn retained_messages_are_kept_on_every_node() {
    if !require_program("nats-server") {
        return;
    }
    let (_n1, _n2, a, b) = cluster_of_two();
    // A node-wide probe first: once b routes a's messages, NATS carries a's retained tree too.
    let mut probe_sub = Client::connect(b.mqtt_addr(), "probe-sub").await;
    probe_sub.subscribe("probe", QoS::AtMostOnce).await;
    let mut publ = Client::connect(a.mqtt_addr(), "pub-a").await;
    await_route(&mut publ, &mut probe_sub, "probe").await;

    // No subscriber anywhere for these topics.
    publ.publish("r/1", QoS::AtLeastOnce, true, b"one").await;
    publ.publish("r/2", QoS::AtLeastOnce, true, b"two").await;
    publ.publish("r/2", QoS::AtLeastOnce, true, b"").await; // clears r/2 everywhere
    publ.publish("r/3", QoS::AtLeastOnce, true, b"three").await;
    // A subscriber on b that arrives later gets them from b's own store.
    let mut got = Vec::new();
    for attempt in 0..50 {
        let mut late = Client::connect(b.mqtt_addr(), &format!("late-{attempt}")).await;
        late.subscribe("r/#", QoS::AtLeastOnce).await;
        got = late.publishes_for(Duration::from_millis(300)).await;
        if got.len() >= 2 {
            break;
        }
    }
    let mut seen: Vec<(String, String, bool)> = got
        .iter()
        .map(|p| {
            (
                p.topic.clone(),
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.retain,
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("r/1".to_string(), "one".to_string(), true),
            ("r/3".to_string(), "three".to_string(), true)
        ]
    );
}

#[tokio::test]
async fn a_node_serves_its_clients_before_nats_is_up_and_joins_later() {
    if !require_program("nats-server") {
        return;
    }
    let (c1, c2) = (free_port(), free_port());
    let n1 = Nats::start(free_port(), c1, &[c2]);
    let late_port = free_port();
    let a = node("a", n1.port);
    // b's server is not running yet: b starts all the same.
    let b = node("b", late_port);
    let mut sub_b = Client::connect(b.mqtt_addr(), "sub-b").await;
    sub_b.subscribe("j/#", QoS::AtLeastOnce).await;
    let mut member = Client::connect(b.mqtt_addr(), "member-b").await;
    member.subscribe("$share/g/j/#", QoS::AtLeastOnce).await;
    let mut local = Client::connect(b.mqtt_addr(), "local-b").await;
    local
        .publish("j/local", QoS::AtLeastOnce, false, b"here")
        .await;
    let p = sub_b
        .expect_publish("a local message while NATS is away")
        .await;
    assert_eq!(&p.payload[..], b"here");
    let p = member
        .expect_publish("a shared group's local member while NATS is away")
        .await;
    assert_eq!(&p.payload[..], b"here");

    let _n2 = Nats::start(late_port, c2, &[c1]);
    assert!(
        wait_until(Duration::from_secs(20), || b
            .log_contains("connected to NATS")),
        "b never connected: {}",
        b.log_excerpt()
    );
    let mut publ = Client::connect(a.mqtt_addr(), "pub-a").await;
    let probes = await_route(&mut publ, &mut sub_b, "j/probe").await;
    assert!(probes >= 1);
    publ.publish("j/after", QoS::AtLeastOnce, false, b"joined")
        .await;
    let p = sub_b.expect_publish("a message from the other node").await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("j/after", &b"joined"[..])
    );
}

/// An MQTT 5 CONNECT, clean start, no properties.
fn connect_v5(client_id: &str) -> Vec<u8> {
    use common::raw::{mqtt_str, packet, CONNECT};
    let mut body = mqtt_str(b"MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 30, 0]);
    body.extend(mqtt_str(client_id.as_bytes()));
    packet(CONNECT, &body)
}

#[test]
fn connecting_on_another_node_takes_the_client_id_over() {
    use common::raw::{Got, Raw, CONNACK, DISCONNECT, PINGREQ, PINGRESP};
    if !require_program("nats-server") {
        return;
    }
    let (_n1, _n2, a, b) = cluster_of_two();
    let mut old = Raw::open(a.mqtt_addr());
    old.send(&connect_v5("dev-1"));
    assert!(matches!(
        old.read(common::raw::WAIT),
        Got::Packet(CONNACK, _)
    ));
    // Takeover notices ride the same NATS connection as messages: wait until the nodes see
    // each other before the second connect (a probe message, a's filter, b publishes).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut sub = Client::connect(a.mqtt_addr(), "probe-sub").await;
        sub.subscribe("probe", QoS::AtMostOnce).await;
        let mut publ = Client::connect(b.mqtt_addr(), "probe-pub").await;
        await_route(&mut publ, &mut sub, "probe").await;
    });

    let mut new = Raw::open(b.mqtt_addr());
    new.send(&connect_v5("dev-1"));
    assert!(matches!(
        new.read(common::raw::WAIT),
        Got::Packet(CONNACK, _)
    ));
    let seen = old.expect_closed("the connection on the first node is taken over");
    let reason = seen
        .iter()
        .find(|(first, _)| *first == DISCONNECT)
        .and_then(|(_, body)| body.first().copied());
    assert_eq!(
        reason,
        Some(0x8E),
        "DISCONNECT 0x8E (session taken over); got {seen:?}"
    );
    // The new connection lives on.
    new.send(&[PINGREQ, 0]);
    assert!(matches!(
        new.read(common::raw::WAIT),
        Got::Packet(PINGRESP, _)
    ));
    assert!(
        a.log_contains("session taken over by another node"),
        "{}",
        a.log_excerpt()
    );
}

#[tokio::test]
async fn every_node_lists_the_cluster_and_names_are_unique() {
    if !require_program("nats-server") {
        return;
    }
    let (n1, _n2, a, b) = cluster_of_two();
    let api = admin_support::Api::ready(&a).await;
    // Heartbeats every 2 s: wait for b to appear on a, polling the API (bounded).
    let mut listed = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, v) = api.get("/api/v5/nodes").await;
        assert_eq!(status, reqwest::StatusCode::OK, "{v}");
        if v.as_array().is_some_and(|l| l.len() == 2) {
            listed = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut nodes: Vec<(String, String)> = listed
        .as_array()
        .unwrap_or_else(|| panic!("b never listed on a"))
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap_or_default().to_owned(),
                n["node_status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        vec![
            ("a@127.0.0.1".to_string(), "running".to_string()),
            ("b@127.0.0.1".to_string(), "running".to_string())
        ]
    );
    let (status, v) = api.get("/api/v5/nodes/b@127.0.0.1").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{v}");
    assert_eq!(v["node"], "b@127.0.0.1");
    let text = reqwest::get(api.url("/status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("cluster: connected to NATS"), "{text}");

    // A third node named like b is refused at start, naming the name.
    let config = format!(
        "[node]\nname = \"b@127.0.0.1\"\n[cluster]\nenable = true\nname = \"t{}\"\n\
         [cluster.nats]\nservers = [\"nats://127.0.0.1:{}\"]\n",
        std::process::id(),
        n1.port
    );
    match Broker::try_start(&config, &[]) {
        Ok(_) => panic!("a second node named b@127.0.0.1 started"),
        Err(log) => assert!(
            log.contains("b@127.0.0.1 is already used by a running node"),
            "{log}"
        ),
    }
    drop(b);
}

#[tokio::test]
async fn a_shared_group_across_nodes_gets_each_message_once() {
    if !require_program("nats-server") {
        return;
    }
    let (_n1, _n2, a, b) = cluster_of_two();
    let mut m_a = Client::connect(a.mqtt_addr(), "member-a").await;
    m_a.subscribe("$share/g/sh/#", QoS::AtLeastOnce).await;
    let mut m_b = Client::connect(b.mqtt_addr(), "member-b").await;
    m_b.subscribe("$share/g/sh/#", QoS::AtLeastOnce).await;
    // Another group on b, alone: it gets every message.
    let mut solo = Client::connect(b.mqtt_addr(), "solo-b").await;
    solo.subscribe("$share/other/sh/+", QoS::AtLeastOnce).await;
    let mut publ = Client::connect(a.mqtt_addr(), "pub-a").await;
    // Until the solo group's queue subscription is known on a's server.
    await_route(&mut publ, &mut solo, "sh/probe").await;
    // Probes went to one member of g each: drop them.
    while m_a.next_publish(Duration::from_millis(300)).await.is_some() {}
    while m_b.next_publish(Duration::from_millis(300)).await.is_some() {}

    let n = 100;
    for i in 0..n {
        publ.publish("sh/t", QoS::AtLeastOnce, false, format!("{i}").as_bytes())
            .await;
    }
    let mut got: Vec<u32> = Vec::new();
    let mut per_member = [0usize; 2];
    // Every message reaches exactly one of the two members.
    while got.len() < n {
        let mut progressed = false;
        for (k, m) in [&mut m_a, &mut m_b].into_iter().enumerate() {
            if let Some(p) = m.next_publish(Duration::from_millis(200)).await {
                got.push(String::from_utf8_lossy(&p.payload).parse().unwrap());
                per_member[k] += 1;
                progressed = true;
            }
        }
        assert!(progressed, "stalled at {} of {n}: {got:?}", got.len());
    }
    m_a.expect_no_publish(Duration::from_millis(500), "no duplicates")
        .await;
    m_b.expect_no_publish(Duration::from_millis(500), "no duplicates")
        .await;
    got.sort_unstable();
    assert_eq!(
        got,
        (0..n as u32).collect::<Vec<_>>(),
        "each message once in group g"
    );
    assert!(
        per_member.iter().all(|c| *c > 0),
        "both nodes' members took part: {per_member:?}"
    );
    for i in 0..n {
        let p = solo
            .expect_publish(&format!("group other, message {i}"))
            .await;
        assert_eq!(String::from_utf8_lossy(&p.payload), i.to_string());
    }
}
