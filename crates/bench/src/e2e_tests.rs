//! End-to-end tests of the scenario runners against a tiny in-process broker: every publish is
//! forwarded at QoS 0 to every connection that subscribed, QoS 1 publishes are PUBACKed.
//! Counts only, never timings (ARCHITECTURE.md habit 2: no timed assertions).

use crate::client::Target;
use crate::report::BrokerProc;
use crate::wire::{self, Frame};
use crate::{conn, scenario};
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<BytesMut>>>>;

async fn mock_broker() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let subs: Subscribers = Arc::default();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, subs.clone()));
        }
    });
    addr
}

async fn serve(stream: TcpStream, subs: Subscribers) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<BytesMut>();
    tokio::spawn(async move {
        while let Some(b) = rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let mut buf = BytesMut::new();
    while let Ok(n) = rd.read_buf(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut out = BytesMut::new();
        let mut at = 0;
        while let Ok(Some((frame, len))) = wire::parse(&buf[at..]) {
            match frame {
                Frame::Other(0x10) => out.extend_from_slice(&[0x20, 2, 0, 0]),
                Frame::Other(0x82) => {
                    out.extend_from_slice(&[0x90, 3, 0, 1, 0]);
                    subs.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(tx.clone());
                }
                Frame::Other(0xC0) => out.extend_from_slice(&[0xD0, 0]),
                Frame::Publish { qos, pkid, payload } => {
                    if qos == 1 {
                        wire::ack(&mut out, wire::PUBACK, pkid);
                    }
                    let mut fwd = BytesMut::new();
                    wire::publish(&mut fwd, "t", 0, 0, payload);
                    for s in subs.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        let _ = s.send(fwd.clone());
                    }
                }
                _ => {}
            }
            at += len;
        }
        buf.advance(at);
        if !out.is_empty() && tx.send(out).is_err() {
            break;
        }
    }
}

fn plan(publishers: usize, subscribers: usize, qos: u8) -> scenario::Plan {
    scenario::Plan {
        persistent: false,
        name: "test".into(),
        scenario: "fanin".into(),
        topic: "bench/{i}".into(),
        filter: "bench/#".into(),
        publishers,
        subscribers,
        all_to_all: true,
        qos,
        payload: 32,
        inflight: 8,
        rate: 2000.0,
        duration: Duration::from_millis(300),
        latency: true,
        client_prefix: "t".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanin_qos1_counts_every_message_once() {
    let target = Target::new(mock_broker().await, 2, 60);
    let me = Some(BrokerProc(std::process::id()));
    let r = scenario::run(&plan(3, 1, 1), &target, me, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(r.sent > 0);
    assert_eq!(r.acked, r.sent);
    assert_eq!(r.expected, Some(r.sent));
    assert_eq!((r.received, r.lost, r.duplicates), (r.sent, 0, 0));
    assert!(r.latency.is_some() && r.broker_cpu_s.is_some());
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_qos0_multiplies_deliveries() {
    let target = Target::new(mock_broker().await, 1, 60);
    let r = scenario::run(&plan(1, 4, 0), &target, None, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.expected, Some(r.sent * 4));
    assert_eq!((r.received, r.lost), (r.sent * 4, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_reaches_its_count_or_says_why() {
    let target = Target::new(mock_broker().await, 3, 60);
    let mut p = conn::ConnPlan {
        name: "conn".into(),
        count: 50,
        concurrency: 10,
        rate: 0.0,
        hold: Duration::ZERO,
        qos: 0,
        client_prefix: "t".into(),
        file_limit: 100_000,
    };
    let r = conn::run(&p, &target, None, true).await;
    assert_eq!(r.connections, Some(50));
    assert!(r.limit_reached.is_none() && r.errors.is_empty());
    // A file limit below the count stops short and says so.
    p.file_limit = 64 + 20;
    let r = conn::run(&p, &target, None, true).await;
    assert_eq!(r.connections, Some(20));
    assert!(r.limit_reached.is_some());
}
