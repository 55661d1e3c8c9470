//! The channel and the transport wired together as the driver wires them, on paused tokio time,
//! with a scripted observer in front: what reaches the observer on the wire, and what an
//! RFC 7641 client hands its application after its freshness check (§3.4), when notifications
//! of mixed QoS follow each other and when a CON notification or its ACK is lost.

use super::*;
use crate::transport::observe::is_fresher;
use crate::transport::{Event, Transport, TransportConfig};
use crate::{CoapRequester, CoapSettings};
use coap_lite::MessageType;
use switchyard_bus::{BusConfig, BusHandle};

fn observer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 41000))
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// One notification as the observer received it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    mid: u16,
    con: bool,
    observe: u32,
    payload: Vec<u8>,
}

struct Rig {
    bus: BusHandle,
    ch: Channel,
    t: Transport<u64>,
    /// Every notification datagram that reached the observer, retransmissions included.
    wire: Vec<Seen>,
    /// What the observer's application got: notifications that passed the freshness check.
    app: Vec<Vec<u8>>,
    last: Option<(u32, Instant)>,
    /// Decides, per notification datagram on its way to the observer, whether it is lost.
    lose_notification: Box<dyn FnMut(&Seen) -> bool>,
    /// Decides, per ACK on its way back, whether it is lost.
    lose_ack: Box<dyn FnMut(u16) -> bool>,
}

impl Rig {
    /// A connectionless client observing `t` with a CON GET (so its subscription is QoS 1).
    async fn observing() -> Rig {
        Self::observing_with(crate::NotifyType::Qos).await
    }

    async fn observing_with(notify_type: crate::NotifyType) -> Rig {
        let settings = CoapSettings {
            transport: TransportConfig {
                ack_timeout: Duration::from_secs(2),
                ack_random_factor: 1.0,
                ..TransportConfig::default()
            },
            notify_type,
            ..CoapSettings::default()
        };
        let bus = BusHandle::new(BusConfig::default());
        let gw = CoapGateway {
            bus: bus.clone(),
            settings: Arc::new(settings.clone()),
            requests: CoapRequester::new(),
        };
        let info = Arc::new(client_info(
            &ClientKey::Addr(observer()),
            &Query::default(),
            observer(),
            settings.heartbeat,
        ));
        let opened = crate::transport::demux::open_session(&bus, &info)
            .await
            .unwrap_or_else(|e| panic!("open_session: {e}"));
        let ch = Channel::new(
            gw,
            info,
            opened.session,
            opened.attachment,
            String::new(),
            now(),
        );
        let mut rig = Rig {
            bus,
            ch,
            t: Transport::with_seed(settings.transport, 3),
            wire: Vec::new(),
            app: Vec::new(),
            last: None,
            lose_notification: Box::new(|_| false),
            lose_ack: Box::new(|_| false),
        };
        let mut get = Packet::new();
        get.header.set_type(MessageType::Confirmable);
        get.header.message_id = 1;
        get.set_token(b"ob".to_vec());
        wire::set_code(&mut get, code::GET);
        get.add_option(CoapOption::UriPath, b"ps".to_vec());
        get.add_option(CoapOption::UriPath, b"t".to_vec());
        get.set_observe_value(0);
        let bytes = get.to_bytes().unwrap_or_else(|e| panic!("{e}"));
        let events = rig.t.handle_datagram(observer(), &bytes, now());
        rig.dispatch(events);
        rig.pump();
        rig
    }

    fn publish(&self, payload: &str, qos: QoS) {
        let topic = TopicName::new("t").unwrap_or_else(|e| panic!("{e}"));
        self.bus
            .publish(Message::new(topic, payload.as_bytes().to_vec(), qos, false));
    }

    fn dispatch(&mut self, events: Vec<Event<u64>>) {
        for ev in events {
            match ev {
                Event::Request(r) => self.ch.handle_request(r, now()),
                Event::Acked { tag, .. } => {
                    self.ch
                        .handle_notify_outcome(tag, NotifyOutcome::Acked, now())
                }
                Event::Reset { tag, .. } => {
                    self.ch
                        .handle_notify_outcome(tag, NotifyOutcome::Reset, now())
                }
                Event::Timeout { tag, .. } => {
                    self.ch
                        .handle_notify_outcome(tag, NotifyOutcome::Timeout, now())
                }
                Event::Response { .. } => {}
            }
        }
    }

    /// Runs the channel and the transport until neither has anything left to do now.
    fn pump(&mut self) {
        loop {
            self.ch.pull_deliveries(now());
            let outputs = self.ch.take_outputs();
            let mut sent = false;
            for o in outputs {
                match o {
                    Output::Reply { exchange, packet } => self.t.respond(&exchange, packet, now()),
                    Output::Notify {
                        peer,
                        packet,
                        confirmable,
                        nid,
                        resource,
                    } => {
                        self.t
                            .notify(peer, packet, confirmable, nid, &resource, now());
                    }
                }
            }
            while let Some((to, bytes)) = self.t.poll_transmit() {
                assert_eq!(to, observer());
                sent = true;
                self.observer_receives(&bytes);
            }
            if !sent {
                return;
            }
        }
    }

    /// The observer's side: record, check freshness (RFC 7641 §3.4), ACK a CON.
    fn observer_receives(&mut self, bytes: &[u8]) {
        let p = Packet::from_bytes(bytes).unwrap_or_else(|e| panic!("{e:?}"));
        let t = p.header.get_type();
        if t == MessageType::Acknowledgement || wire::code_of(&p) != code::CONTENT {
            return;
        }
        let seen = Seen {
            mid: p.header.message_id,
            con: t == MessageType::Confirmable,
            observe: p
                .get_observe_value()
                .and_then(Result::ok)
                .unwrap_or_else(|| panic!("a notification without Observe: {p:?}")),
            payload: p.payload.clone(),
        };
        if (self.lose_notification)(&seen) {
            return;
        }
        self.wire.push(seen.clone());
        let duplicate = self.wire[..self.wire.len() - 1]
            .iter()
            .any(|s| s.mid == seen.mid);
        if !duplicate {
            let fresh = self
                .last
                .map_or(true, |(v1, t1)| is_fresher(v1, t1, seen.observe, now()));
            if fresh {
                self.last = Some((seen.observe, now()));
                self.app.push(seen.payload.clone());
            }
        }
        if seen.con && !(self.lose_ack)(seen.mid) {
            let [hi, lo] = seen.mid.to_be_bytes();
            let ack = [0x60, 0, hi, lo];
            let events = self.t.handle_datagram(observer(), &ack, now());
            self.dispatch(events);
        }
    }

    /// Lets `secs` seconds pass, one at a time, firing retransmissions.
    async fn run_for(&mut self, secs: u64) {
        for _ in 0..secs {
            tokio::time::advance(Duration::from_secs(1)).await;
            let events = self.t.poll(now());
            self.dispatch(events);
            self.pump();
        }
    }

    /// The distinct notifications in arrival order; a repeated message id must repeat the
    /// Observe value and payload exactly (a retransmission).
    fn distinct(&self) -> Vec<Seen> {
        let mut out: Vec<Seen> = Vec::new();
        for s in &self.wire {
            match out.iter().find(|o| o.mid == s.mid) {
                Some(o) => assert_eq!(
                    (o.observe, &o.payload),
                    (s.observe, &s.payload),
                    "a retransmission changed: {:#?}",
                    self.wire
                ),
                None => out.push(s.clone()),
            }
        }
        out
    }
}

const MIXED: [(&str, QoS); 8] = [
    ("m0", QoS::AtLeastOnce),
    ("m1", QoS::AtMostOnce),
    ("m2", QoS::ExactlyOnce),
    ("m3", QoS::AtMostOnce),
    ("m4", QoS::AtLeastOnce),
    ("m5", QoS::AtLeastOnce),
    ("m6", QoS::AtMostOnce),
    ("m7", QoS::AtMostOnce),
];

fn want() -> Vec<Vec<u8>> {
    MIXED.iter().map(|(p, _)| p.as_bytes().to_vec()).collect()
}

fn assert_in_order(rig: &Rig) {
    let d = rig.distinct();
    let payloads: Vec<Vec<u8>> = d.iter().map(|s| s.payload.clone()).collect();
    assert_eq!(payloads, want(), "wire: {:#?}", rig.wire);
    assert!(
        d.windows(2).all(|w| w[0].observe < w[1].observe),
        "Observe not strictly increasing: {d:#?}"
    );
    for (s, (_, q)) in d.iter().zip(MIXED) {
        assert_eq!(s.con, q != QoS::AtMostOnce, "notify_type qos: {s:?}");
    }
    assert_eq!(rig.app, want(), "the observer's application view");
}

#[tokio::test(start_paused = true)]
async fn mixed_qos_publishes_are_each_one_notification_in_order() {
    let mut rig = Rig::observing().await;
    for (p, q) in MIXED {
        rig.publish(p, q);
    }
    rig.pump();
    rig.run_for(5).await;
    assert_in_order(&rig);
    assert_eq!(
        rig.wire.len(),
        MIXED.len(),
        "nothing repeated: {:#?}",
        rig.wire
    );
}

#[tokio::test(start_paused = true)]
async fn mixed_qos_publishes_one_at_a_time_are_each_one_notification_in_order() {
    let mut rig = Rig::observing().await;
    for (p, q) in MIXED {
        rig.publish(p, q);
        rig.pump();
    }
    rig.run_for(5).await;
    assert_in_order(&rig);
    assert_eq!(
        rig.wire.len(),
        MIXED.len(),
        "nothing repeated: {:#?}",
        rig.wire
    );
}

/// The first transmission of the first CON notification is lost: its retransmission (same
/// message id, same Observe value) must still reach the application, so nothing newer may have
/// been sent in between (a newer Observe value makes an RFC 7641 client discard it).
#[tokio::test(start_paused = true)]
async fn a_lost_con_notification_is_retransmitted_before_anything_newer() {
    let mut rig = Rig::observing().await;
    let mut lost = false;
    rig.lose_notification = Box::new(move |s| {
        let lose = !lost && s.payload == b"m0";
        lost |= lose;
        lose
    });
    for (p, q) in MIXED {
        rig.publish(p, q);
    }
    rig.pump();
    rig.run_for(10).await;
    assert_in_order(&rig);
}

/// The ACK of the first CON notification is lost: the observer gets the retransmission (same
/// message id and Observe value, which it acknowledges again) and every later message once,
/// in order.
#[tokio::test(start_paused = true)]
async fn a_lost_ack_repeats_the_same_message_not_a_new_notification() {
    let mut rig = Rig::observing().await;
    let mut lost = false;
    rig.lose_ack = Box::new(move |_| {
        let lose = !lost;
        lost = true;
        lose
    });
    for (p, q) in MIXED {
        rig.publish(p, q);
    }
    rig.pump();
    rig.run_for(10).await;
    assert_in_order(&rig);
    let first: Vec<&Seen> = rig.wire.iter().filter(|s| s.payload == b"m0").collect();
    assert_eq!(
        first.len(),
        2,
        "sent, then retransmitted once: {:#?}",
        rig.wire
    );
    assert_eq!(
        (first[0].mid, first[0].observe),
        (first[1].mid, first[1].observe)
    );
}

/// With `notify_type = non` a notification still goes CON once a day (RFC 7641 §4.5); the ones
/// taken with it in the same batch wait for its ACK like any other, so a lost first
/// transmission is not overtaken either.
#[tokio::test(start_paused = true)]
async fn the_daily_con_notification_is_not_overtaken() {
    let mut rig = Rig::observing_with(crate::NotifyType::Non).await;
    tokio::time::advance(crate::transport::observe::CON_INTERVAL).await;
    let mut lost = false;
    rig.lose_notification = Box::new(move |_| {
        let lose = !lost;
        lost = true;
        lose
    });
    for p in ["d0", "d1", "d2"] {
        rig.publish(p, QoS::AtMostOnce);
    }
    rig.pump();
    rig.run_for(5).await;
    let d = rig.distinct();
    let kinds: Vec<(bool, u32, &[u8])> = d
        .iter()
        .map(|s| (s.con, s.observe, s.payload.as_slice()))
        .collect();
    assert_eq!(
        kinds,
        [
            (true, 1, b"d0".as_slice()),
            (false, 2, b"d1".as_slice()),
            (false, 3, b"d2".as_slice())
        ],
        "{:#?}",
        rig.wire
    );
    assert_eq!(rig.app, [b"d0".to_vec(), b"d1".to_vec(), b"d2".to_vec()]);
}

/// Fuzzing regression (coap_channel, fuzz/seeds/coap_channel/regress-two-observations): one
/// message matching two observations of a client went out as two CON notifications at once, two
/// exchanges outstanding to one endpoint against RFC 7252 §4.7 (NSTART = 1) and this channel's
/// invariant. The second observation's notification now waits for the first one's ACK.
#[tokio::test(start_paused = true)]
async fn one_message_for_two_observations_sends_one_con_at_a_time() {
    let mut rig = Rig::observing().await;
    let mut get = Packet::new();
    get.header.set_type(MessageType::Confirmable);
    get.header.message_id = 2;
    get.set_token(b"o2".to_vec());
    wire::set_code(&mut get, code::GET);
    get.add_option(CoapOption::UriPath, b"ps".to_vec());
    get.add_option(CoapOption::UriPath, b"#".to_vec());
    get.set_observe_value(0);
    let bytes = get.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    let events = rig.t.handle_datagram(observer(), &bytes, now());
    rig.dispatch(events);
    rig.pump();
    assert_eq!(rig.ch.observations(), 2);
    rig.lose_ack = Box::new(|_| true);
    rig.publish("both", QoS::AtLeastOnce);
    rig.pump();
    assert_eq!(rig.distinct().len(), 1, "{:#?}", rig.wire);
    assert_eq!(rig.ch.con_inflight.len(), 1);
    rig.lose_ack = Box::new(|_| false);
    rig.run_for(3).await;
    let d = rig.distinct();
    assert_eq!(d.len(), 2, "{d:#?}");
    assert!(d.iter().all(|s| s.con && s.payload == b"both"), "{d:#?}");
    assert!(rig.ch.con_inflight.is_empty());
}
