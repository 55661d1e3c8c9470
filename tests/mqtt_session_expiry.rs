//! A persistent session whose expiry has passed is gone when its client reconnects, even if
//! the once-a-second reaper has not run yet (MQTT-3.1.2-23): CONNACK says session present 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::raw::{packet, Got, Raw, CONNACK, WAIT};
use common::Broker;
use std::time::Duration;

/// MQTT 5 CONNECT, clean start off, Session Expiry Interval `expiry` seconds; returns the
/// CONNACK's acknowledge flags.
fn connect_v5(raw: &mut Raw, id: &str, expiry: u32) -> u8 {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 5, 0x00, 0, 60];
    body.push(5);
    body.push(0x11);
    body.extend_from_slice(&expiry.to_be_bytes());
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    raw.send(&packet(0x10, &body));
    match raw.read(WAIT) {
        Got::Packet(CONNACK, b) => {
            assert_eq!(b[1], 0, "CONNACK refused");
            b[0]
        }
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn an_expired_session_is_not_resumed_before_the_reaper_runs() {
    let broker = Broker::start();
    let addr = broker.mqtt_addr();
    let mut first = Raw::open(addr);
    assert_eq!(connect_v5(&mut first, "expiring", 1) & 1, 0);
    first.send(&[0xE0, 0]);
    assert!(first.wait_closed(WAIT).is_ok());
    // Reconnecting within the expiry resumes it.
    let mut again = Raw::open(addr);
    assert_eq!(
        connect_v5(&mut again, "expiring", 1) & 1,
        1,
        "session present"
    );
    again.send(&[0xE0, 0]);
    assert!(again.wait_closed(WAIT).is_ok());
    // Deliberate: let the 1 s expiry pass (by less than the reaper's period).
    std::thread::sleep(Duration::from_millis(1100));
    let mut late = Raw::open(addr);
    assert_eq!(
        connect_v5(&mut late, "expiring", 1) & 1,
        0,
        "the expired session is gone"
    );
}
