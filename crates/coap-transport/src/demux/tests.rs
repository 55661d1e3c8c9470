//! The demux against a scripted gateway on a real loopback socket: requests reach one task per
//! key, refusals are answered on the socket task (route, may-create, admission 5.03), a panic
//! costs one datagram, outcomes and responses come back to the client that sent, requests
//! resolved on the socket task reach their waiter, a takeover ends the older client, and a
//! client that ended is reaped so its key starts a new one.

use super::*;
use crate::wire;
use coap_lite::{MessageType, Packet};
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::{BusConfig, BusHandle, ClientInfo, Namespace};
use switchyard_core::CloseReason;
use tokio::net::UdpSocket;

const NS: Namespace = Namespace("demux-test");

/// Keys are the first Uri-Path segment; the client id is the key up to a `.`, so `a.1` and
/// `a.2` are two clients of one client id. The second segment says what the client does.
#[derive(Clone)]
struct Scripted {
    bus: BusHandle,
    log: mpsc::UnboundedSender<String>,
}

struct ScriptedChannel {
    base: ChannelBase<Transmit>,
    peer: SocketAddr,
    count: u32,
}

impl ClientChannel for ScriptedChannel {
    type Output = Transmit;
    crate::channel_base!(base);
    fn pull_deliveries(&mut self, _now: std::time::Instant) -> usize {
        0
    }
    fn next_deadline(&self) -> Option<std::time::Instant> {
        None
    }
    fn tick(&mut self, _now: std::time::Instant) {}
}

struct Recorder(mpsc::UnboundedSender<String>);

impl PendingReply for Recorder {
    fn is_abandoned(&self) -> bool {
        self.0.is_closed()
    }
    fn complete(self: Box<Self>, response: Result<Packet, Unanswered>) {
        let text = match response {
            Ok(p) => format!("direct {}", wire::code_string(wire::code_of(&p))),
            Err(Unanswered) => "direct unanswered".to_owned(),
        };
        let _ = self.0.send(text);
    }
}

fn segments(req: &Request) -> Vec<String> {
    wire::uri_path(&req.packet).unwrap_or_default()
}

fn content(payload: &str) -> Packet {
    let mut p = crate::response(code::CONTENT);
    p.payload = payload.as_bytes().to_vec();
    p
}

impl Scripted {
    async fn request(&self, ch: &mut ScriptedChannel, req: Request, uplink: &Uplink) {
        ch.count += 1;
        ch.peer = req.peer;
        let action = segments(&req).get(1).cloned().unwrap_or_default();
        let reply = match action.as_str() {
            "notify" => {
                ch.base.out.push(Transmit::Notify {
                    peer: req.peer,
                    packet: content("n"),
                    confirmable: true,
                    id: 7,
                    resource: "r".to_owned(),
                });
                content("notified")
            }
            "ask" => {
                let mut get = Packet::new();
                wire::set_code(&mut get, code::GET);
                let reply = Box::new(Recorder(self.log.clone()));
                uplink.request(req.peer, get, b"tk".to_vec(), reply).await;
                content("asked")
            }
            "bye" => {
                ch.fail(CloseReason::PeerClosed);
                content("bye")
            }
            _ => content(&ch.count.to_string()),
        };
        ch.base.out.push(Transmit::Reply {
            exchange: req.exchange,
            packet: reply,
        });
    }
}

impl DemuxGateway for Scripted {
    type Key = String;
    type Local = ();
    type Channel = ScriptedChannel;
    const PROTO: &'static str = "test";

    fn transport_config(&self) -> TransportConfig {
        TransportConfig {
            ack_timeout: Duration::from_millis(200),
            ack_random_factor: 1.0,
            max_retransmit: 1,
            ..TransportConfig::default()
        }
    }

    fn metrics(&self) -> &Metrics {
        self.bus.metrics()
    }

    fn route(&self, req: &Request) -> Result<String, Packet> {
        match segments(req).first().map(String::as_str) {
            Some("boom") => panic!("scripted panic on the socket task"),
            Some(key) => Ok(key.to_owned()),
            None => Err(error_response(code::BAD_REQUEST, "no key")),
        }
    }

    fn may_create(&self, req: &Request) -> Result<(), Packet> {
        match segments(req).get(1).map(String::as_str) {
            Some("existing-only") => Err(error_response(code::NOT_FOUND, "no such client")),
            _ => Ok(()),
        }
    }

    async fn run_client(&self, mut link: ClientLink<Self>, first: Request) {
        let key = link.key().clone();
        let client_id = key.split('.').next().unwrap_or_default();
        let info = Arc::new(ClientInfo {
            namespace: NS,
            client_id: client_id.into(),
            username: None,
            peer: Some(first.peer),
            proto_name: "test",
            proto_ver: 1,
            keepalive: 0,
            clean_start: true,
            expiry_interval: 0,
            connected_at: std::time::SystemTime::now(),
        });
        let opened = match open_session(&self.bus, &info).await {
            Ok(o) => o,
            Err(e) => panic!("open_session: {e}"),
        };
        let mut attachment = opened.attachment;
        attachment.report_connected();
        let control = attachment.control();
        let mut ch = ScriptedChannel {
            base: ChannelBase::new(opened.session, attachment),
            peer: first.peer,
            count: 0,
        };
        self.request(&mut ch, first, link.uplink()).await;
        link.drive(self, &mut ch, &control).await;
        let reason = ch.base.close.clone().unwrap_or(CloseReason::ServerShutdown);
        if let (Some(a), Some(s)) = (ch.base.attachment.take(), ch.base.session.take()) {
            a.finish(s, &reason);
        }
        let _ = self.log.send(format!("{key} closed: {}", reason.as_str()));
    }

    async fn handle(&self, ch: &mut ScriptedChannel, msg: Inbound<()>, uplink: &Uplink) {
        match msg {
            Inbound::Request(r) => self.request(ch, *r, uplink).await,
            Inbound::Outcome { id, outcome } => {
                let _ = self.log.send(format!("outcome {id} {outcome:?}"));
            }
            Inbound::Response { id, .. } => {
                let _ = self.log.send(format!("response {id}"));
            }
            Inbound::Local(()) => {}
        }
    }
}

struct Rig {
    bus: BusHandle,
    server: SocketAddr,
    client: UdpSocket,
    log: mpsc::UnboundedReceiver<String>,
    cancel: CancellationToken,
    next_mid: u16,
}

impl Rig {
    async fn start(limits: ListenerLimits) -> Rig {
        let bus = BusHandle::new(BusConfig::default());
        let (tx, log) = mpsc::unbounded_channel();
        let gw = Scripted {
            bus: bus.clone(),
            log: tx,
        };
        let socket = bind().await;
        let server = socket.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        tokio::spawn(serve(
            switchyard_net::DatagramSocket::Plain(std::sync::Arc::new(socket)),
            "test:udp:default".to_owned(),
            gw,
            limits,
            cancel.clone(),
            tracker,
        ));
        Rig {
            bus,
            server,
            client: bind().await,
            log,
            cancel,
            next_mid: 1,
        }
    }

    /// Sends a CON GET on `path`.
    async fn send(&mut self, path: &[&str]) {
        let mut p = Packet::new();
        p.header.set_type(MessageType::Confirmable);
        p.header.message_id = self.next_mid;
        self.next_mid += 1;
        p.set_token(vec![1, 2]);
        wire::set_code(&mut p, code::GET);
        for s in path {
            p.add_option(coap_lite::CoapOption::UriPath, s.as_bytes().to_vec());
        }
        let bytes = p.to_bytes().unwrap_or_else(|e| panic!("{e}"));
        self.client
            .send_to(&bytes, self.server)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    async fn recv(&mut self) -> Packet {
        let mut buf = [0u8; 1500];
        let r = tokio::time::timeout(Duration::from_secs(5), self.client.recv_from(&mut buf));
        let (n, _) = r
            .await
            .unwrap_or_else(|_| panic!("no datagram"))
            .unwrap_or_else(|e| panic!("{e}"));
        Packet::from_bytes(&buf[..n]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends a CON GET on `path` and returns the reply's code and payload.
    async fn ask(&mut self, path: &[&str]) -> (String, String) {
        self.send(path).await;
        let p = self.recv().await;
        (
            wire::code_string(wire::code_of(&p)),
            String::from_utf8_lossy(&p.payload).into_owned(),
        )
    }

    async fn next_log(&mut self) -> String {
        let r = tokio::time::timeout(Duration::from_secs(5), self.log.recv());
        r.await
            .unwrap_or_else(|_| panic!("nothing logged"))
            .unwrap_or_else(|| panic!("log closed"))
    }

    /// Answers a CON from the server with an empty ACK (`reset`: RST).
    async fn ack(&mut self, con: &Packet, reset: bool) {
        let t = if reset { 3u8 } else { 2u8 };
        let [hi, lo] = con.header.message_id.to_be_bytes();
        let bytes = [0x40 | (t << 4), 0, hi, lo];
        self.client
            .send_to(&bytes, self.server)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn bind() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn s(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[tokio::test]
async fn requests_reach_one_task_per_key_and_refusals_are_answered_on_the_socket_task() {
    let mut rig = Rig::start(ListenerLimits::UNLIMITED).await;
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "1"));
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "2"));
    assert_eq!(rig.ask(&["b"]).await, s("2.05", "1"));
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "3"));
    // Routing refused, creation refused: answered without a task.
    assert_eq!(rig.ask(&[]).await, s("4.00", "no key"));
    assert_eq!(
        rig.ask(&["c", "existing-only"]).await,
        s("4.04", "no such client")
    );
    // A live client is not asked whether it may be created.
    assert_eq!(rig.ask(&["b", "existing-only"]).await, s("2.05", "2"));
    rig.cancel.cancel();
}

#[tokio::test]
async fn admission_refuses_new_clients_over_the_limit_with_5_03_until_a_place_frees() {
    let limits = ListenerLimits {
        max_connections: 1,
        ..ListenerLimits::UNLIMITED
    };
    let mut rig = Rig::start(limits).await;
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "1"));
    assert_eq!(rig.ask(&["b"]).await, s("5.03", "too many clients"));
    // The live client is still served.
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "2"));
    // Once it ends and is reaped, its place is free again.
    assert_eq!(rig.ask(&["a", "bye"]).await, s("2.05", "bye"));
    assert_eq!(rig.next_log().await, "a closed: peer_closed");
    let mut answer = rig.ask(&["b"]).await;
    for _ in 0..50 {
        if answer.0 == "2.05" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer = rig.ask(&["b"]).await;
    }
    assert_eq!(answer, s("2.05", "1"));
    rig.cancel.cancel();
}

#[tokio::test]
async fn a_client_that_ended_is_reaped_and_its_key_starts_a_new_one() {
    let mut rig = Rig::start(ListenerLimits::UNLIMITED).await;
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "1"));
    assert_eq!(rig.ask(&["a", "bye"]).await, s("2.05", "bye"));
    assert_eq!(rig.next_log().await, "a closed: peer_closed");
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "1"));
    rig.cancel.cancel();
}

#[tokio::test]
async fn a_panic_on_the_socket_task_costs_one_datagram_and_is_counted() {
    let mut rig = Rig::start(ListenerLimits::UNLIMITED).await;
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "1"));
    rig.send(&["boom"]).await;
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "2"));
    assert_eq!(Metrics::get(&rig.bus.metrics().client_panics), 1);
    rig.cancel.cancel();
}

#[tokio::test]
async fn outcomes_of_a_notification_come_back_to_the_client_that_sent_it() {
    let mut rig = Rig::start(ListenerLimits::UNLIMITED).await;
    rig.send(&["a", "notify"]).await;
    // The reply and the CON notification, in either order.
    let (mut reply, mut notification) = (None, None);
    for _ in 0..2 {
        let p = rig.recv().await;
        if p.header.get_type() == MessageType::Confirmable {
            notification = Some(p);
        } else {
            reply = Some(p);
        }
    }
    assert_eq!(reply.map(|p| p.payload), Some(b"notified".to_vec()));
    let notification = notification.unwrap_or_else(|| panic!("no notification"));
    rig.ack(&notification, false).await;
    assert_eq!(rig.next_log().await, "outcome 7 Acked");
    // A second one is rejected with RST.
    rig.send(&["a", "notify"]).await;
    for _ in 0..2 {
        let p = rig.recv().await;
        if p.header.get_type() == MessageType::Confirmable {
            rig.ack(&p, true).await;
        }
    }
    assert_eq!(rig.next_log().await, "outcome 7 Reset");
    rig.cancel.cancel();
}

#[tokio::test]
async fn a_request_resolved_on_the_socket_task_reaches_its_waiter() {
    let mut rig = Rig::start(ListenerLimits::UNLIMITED).await;
    rig.send(&["a", "ask"]).await;
    // The reply to our request and the server's CON GET, in either order.
    let mut request = None;
    for _ in 0..2 {
        let p = rig.recv().await;
        if p.header.get_type() == MessageType::Confirmable {
            request = Some(p);
        }
    }
    let request = request.unwrap_or_else(|| panic!("no server request"));
    assert_eq!(request.get_token(), b"tk");
    // A piggybacked 2.05.
    let mut ack = Packet::new();
    ack.header.set_type(MessageType::Acknowledgement);
    ack.header.message_id = request.header.message_id;
    ack.set_token(request.get_token().to_vec());
    wire::set_code(&mut ack, code::CONTENT);
    let bytes = ack.to_bytes().unwrap_or_else(|e| panic!("{e}"));
    let server = rig.server;
    rig.client
        .send_to(&bytes, server)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rig.next_log().await, "direct 2.05");
    // Unanswered: never acknowledged (one retransmission, then the timeout).
    rig.send(&["a", "ask"]).await;
    assert_eq!(rig.next_log().await, "direct unanswered");
    rig.cancel.cancel();
}

#[tokio::test]
async fn a_takeover_ends_the_older_client_of_a_client_id() {
    let mut rig = Rig::start(ListenerLimits::UNLIMITED).await;
    assert_eq!(rig.ask(&["a.1"]).await, s("2.05", "1"));
    assert_eq!(rig.ask(&["a.2"]).await, s("2.05", "1"));
    assert_eq!(rig.next_log().await, "a.1 closed: takeover");
    assert_eq!(rig.ask(&["a.2"]).await, s("2.05", "2"));
    rig.cancel.cancel();
}

#[tokio::test]
async fn shutdown_closes_every_client() {
    let mut rig = Rig::start(ListenerLimits::UNLIMITED).await;
    assert_eq!(rig.ask(&["a"]).await, s("2.05", "1"));
    rig.cancel.cancel();
    assert_eq!(rig.next_log().await, "a closed: server_shutdown");
}
