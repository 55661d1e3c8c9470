//! Durability against the real binary: SIGKILL the broker mid-stream and check that every
//! acknowledged QoS 1/2 message for a persistent session survives, with QoS 2 exactly once,
//! and that retained messages and subscriptions survive while clean sessions leave nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node::Node;
use common::raw::{packet, publish, Connect, Got, Raw, CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(5);

fn persistent(client_id: &str) -> Connect {
    let mut c = Connect::v311(client_id);
    c.flags &= !0x02;
    c
}

/// Connects; returns the connection and the session-present flag.
fn connect(addr: SocketAddr, c: &Connect) -> (Raw, bool) {
    let mut raw = Raw::open(addr);
    raw.send(&c.encode());
    match raw.read(WAIT) {
        Got::Packet(CONNACK, body) => {
            assert_eq!(body.get(1), Some(&0), "CONNACK refused");
            (raw, body[0] & 1 == 1)
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

/// Publishes numbered messages until the broker dies; returns the numbers acknowledged
/// (PUBACK for QoS 1, PUBREC for QoS 2 — the point where the broker owns the message).
/// `started` is set at the first acknowledgement.
fn publish_until_dead(
    addr: SocketAddr,
    qos: u8,
    stop: &AtomicBool,
    started: &AtomicBool,
) -> Vec<u32> {
    let (mut p, _) = connect(addr, &Connect::v311("crash-pub"));
    let mut acked = Vec::new();
    for n in 1..=100_000u32 {
        if stop.load(Ordering::Relaxed) && n % 50 == 0 {
            break;
        }
        let pkid = (n % 60_000 + 1) as u16;
        p.send(&publish("crash/t", qos, pkid, n.to_string().as_bytes()));
        let want = if qos == 1 { PUBACK } else { PUBREC };
        match p.read(WAIT) {
            Got::Packet(h, body) if h == want && body[..2] == pkid.to_be_bytes() => {
                acked.push(n);
                started.store(true, Ordering::Relaxed);
            }
            _ => return acked,
        }
        if qos == 2 {
            p.send(&packet(0x62, &pkid.to_be_bytes()));
            match p.read(WAIT) {
                Got::Packet(PUBCOMP, _) => {}
                _ => return acked,
            }
        }
    }
    acked
}

/// Reads every queued PUBLISH (acknowledging each) until the session is drained.
fn drain(raw: &mut Raw) -> Vec<(u32, bool)> {
    let mut got = Vec::new();
    loop {
        match raw.read(Duration::from_millis(1500)) {
            Got::Packet(h, body) if h & 0xF0 == PUBLISH => {
                let dup = h & 0x08 != 0;
                let (_, _topic, pkid, payload) = common::raw::split_publish(h, &body);
                let n: u32 = String::from_utf8(payload).unwrap().parse().unwrap();
                got.push((n, dup));
                let id = pkid.expect("QoS 1/2 publish has a packet id").to_be_bytes();
                // Acknowledge by the delivery's own QoS (it may be below the subscription's).
                if (h >> 1) & 0x03 == 1 {
                    raw.send(&packet(PUBACK, &id));
                } else {
                    raw.send(&packet(PUBREC, &id));
                }
            }
            Got::Packet(0x62, body) => raw.send(&packet(PUBCOMP, &body[..2])),
            Got::Packet(..) => {}
            Got::Timeout | Got::Closed => return got,
        }
    }
}

fn crash_round(qos: u8, kill_after: Duration) {
    let mut node = Node::new(&format!("crash-q{qos}"));
    let addr = node.start();
    // The persistent subscriber subscribes and goes away.
    let (mut sub, _) = connect(addr, &persistent("crash-sub"));
    sub.subscribe(1, "crash/+", qos);
    sub.send(&[0xE0, 0x00]);
    drop(sub);
    // A retained message and a clean session that must leave nothing behind.
    let (mut r, _) = connect(addr, &Connect::v311("crash-retainer"));
    let mut retained = publish("keep/retained", 1, 1, b"kept");
    retained[0] |= 0x01; // RETAIN
    r.send(&retained);
    assert!(matches!(r.read(WAIT), Got::Packet(PUBACK, _)));
    let (mut clean, _) = connect(addr, &Connect::v311("crash-clean"));
    clean.subscribe(1, "clean/#", 1);

    let stop = Arc::new(AtomicBool::new(false));
    let killer_stop = stop.clone();
    let publishing = AtomicBool::new(false);
    let started = Instant::now();
    let acked = std::thread::scope(|s| {
        let publisher = s.spawn(|| publish_until_dead(addr, qos, &stop, &publishing));
        // The stream is under way once the broker acknowledged its first message...
        let under_way = common::wait_until(WAIT, || publishing.load(Ordering::Relaxed));
        // ...and the kill comes `kill_after` into it: letting time pass is the point, each
        // round crashes the broker at a different depth of the stream.
        if under_way {
            std::thread::sleep(kill_after);
        }
        node.kill();
        killer_stop.store(true, Ordering::Relaxed);
        publisher.join().unwrap()
    });
    assert!(
        !acked.is_empty(),
        "nothing was acknowledged before the kill at {kill_after:?} ({:?} elapsed)",
        started.elapsed()
    );

    let addr = node.start();
    let (mut sub, present) = connect(addr, &persistent("crash-sub"));
    assert!(present, "session not present after restart");
    let got = drain(&mut sub);
    let mut seen: BTreeMap<u32, Vec<bool>> = BTreeMap::new();
    for (n, dup) in &got {
        seen.entry(*n).or_default().push(*dup);
    }
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|n| !seen.contains_key(n))
        .collect();
    assert!(lost.is_empty(), "QoS {qos}: {} acknowledged messages lost after SIGKILL at {kill_after:?} (of {}), e.g. {:?}", lost.len(), acked.len(), &lost[..lost.len().min(10)]);
    for (n, dups) in &seen {
        if qos == 2 {
            assert_eq!(
                dups.len(),
                1,
                "QoS 2 message {n} delivered {} times",
                dups.len()
            );
        } else {
            assert!(
                dups.iter().skip(1).all(|d| *d),
                "QoS 1 message {n} duplicated without DUP: {dups:?}"
            );
        }
    }
    // Order: the first delivery of each number comes in publish order.
    let firsts: Vec<u32> = {
        let mut s = std::collections::HashSet::new();
        got.iter()
            .filter(|(n, _)| s.insert(*n))
            .map(|(n, _)| *n)
            .collect()
    };
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "redelivery out of order"
    );

    // The subscription survived: a new message reaches the resumed session.
    let (mut p, _) = connect(addr, &Connect::v311("crash-pub2"));
    p.send(&publish("crash/t", 1, 7, b"999999"));
    assert!(matches!(p.read(WAIT), Got::Packet(PUBACK, _)));
    let after = drain(&mut sub);
    assert!(
        after.iter().any(|(n, _)| *n == 999_999),
        "subscription lost across the crash"
    );
    // The retained message survived.
    let (mut r, _) = connect(addr, &Connect::v311("crash-reader"));
    r.subscribe(1, "keep/retained", 1);
    let (_, topic, payload) = r.expect_publish("retained message after restart");
    assert_eq!(
        (topic.as_str(), payload.as_slice()),
        ("keep/retained", &b"kept"[..])
    );
    drop(sub);
    // Acknowledged deliveries leave the store: after a clean stop nothing comes back.
    node.stop();
    let addr = node.start();
    let (mut sub, present) = connect(addr, &persistent("crash-sub"));
    assert!(present, "session not present after a clean restart");
    let again = drain(&mut sub);
    assert!(
        again.is_empty(),
        "{} acknowledged messages came back after a clean restart",
        again.len()
    );
    node.kill();
    assert_no_clean_session(&node.db());
}

/// The clean session's client id appears nowhere in the store.
fn assert_no_clean_session(db: &Path) {
    let out = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute(\"select count(*) from sessions where client_id like 'crash-clean%' or client_id like 'crash-pub%' or client_id like 'crash-reader%'\").fetchone()[0]); print(c.execute('select count(*) from sessions').fetchone()[0])")
        .arg(db)
        .output()
        .expect("python3 with sqlite3");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("0"),
        "a clean session was written to the store: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines.next(),
        Some("1"),
        "exactly the persistent subscriber's session is stored"
    );
}

#[test]
fn qos1_acknowledged_messages_survive_sigkill_at_several_points() {
    for ms in [40, 250, 700] {
        crash_round(1, Duration::from_millis(ms));
    }
}

#[test]
fn qos2_acknowledged_messages_survive_sigkill_exactly_once() {
    for ms in [40, 250, 700] {
        crash_round(2, Duration::from_millis(ms));
    }
}
