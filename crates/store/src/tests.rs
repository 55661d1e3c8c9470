//! Store tests: every durability mode round-trips state through a reopen; the writer groups
//! concurrent submissions into few commits and publishes tickets in order; a damaged file is an
//! error, never an empty store.

use crate::{Durability, SqliteStore, StoreError};
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_bus::{RetainHandling, SessionStore, StoreOp, StoredStage, SubOptions};
use switchyard_core::{Message, Properties, QoS, SessionId, SubscriptionFilter, TopicName};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchyard-store-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn msg(topic: &str, payload: &str) -> Arc<Message> {
    let mut m = Message::new(
        TopicName::new(topic).unwrap_or_else(|e| panic!("{e}")),
        payload.to_string(),
        QoS::AtLeastOnce,
        false,
    );
    m.properties = Some(Arc::new(Properties {
        content_type: Some("text/plain".into()),
        message_expiry_interval: Some(3600),
        ..Default::default()
    }));
    Arc::new(m)
}

fn pkid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

async fn wait(store: &SqliteStore, ticket: u64) {
    let mut rx = store.durable();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|t| *t >= ticket))
        .await
        .unwrap_or_else(|_| panic!("ticket {ticket} not durable"))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn populate(store: &SqliteStore) -> u64 {
    let s = SessionId(7);
    let sf = SubscriptionFilter::parse("a/#", 0).unwrap_or_else(|e| panic!("{e}"));
    let opts = SubOptions {
        qos: QoS::ExactlyOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::Never,
        subscription_id: Some(5),
    };
    let ops = vec![
        StoreOp::SessionPut {
            session: s,
            namespace: "mqtt",
            client_id: "c7".into(),
            expiry_secs: 3600,
            created_at: SystemTime::now(),
        },
        StoreOp::SubscriptionPut {
            session: s,
            filter: sf,
            opts,
        },
        StoreOp::MessagePut {
            id: 1,
            message: msg("a/1", "one"),
        },
        StoreOp::MessagePut {
            id: 2,
            message: msg("a/2", "two"),
        },
        StoreOp::MessagePut {
            id: 3,
            message: msg("a/3", "three"),
        },
        StoreOp::QueuePush {
            session: s,
            seq: 1,
            message_id: 1,
            qos: 1,
            retain: false,
            subscription_ids: vec![5],
        },
        StoreOp::QueuePush {
            session: s,
            seq: 2,
            message_id: 2,
            qos: 2,
            retain: false,
            subscription_ids: vec![5, 6],
        },
        StoreOp::QueuePush {
            session: s,
            seq: 3,
            message_id: 3,
            qos: 1,
            retain: false,
            subscription_ids: vec![],
        },
        StoreOp::QueueInflight {
            session: s,
            seq: 2,
            pkid: pkid(9),
            stage: StoredStage::Released,
        },
        StoreOp::QueueRemove { session: s, seq: 3 },
        StoreOp::IncomingPut {
            session: s,
            pkid: pkid(4),
        },
        StoreOp::RetainPut {
            topic: "a/1".into(),
            message_id: 1,
            durable: true,
        },
        StoreOp::SessionOffline {
            session: s,
            at: SystemTime::now(),
        },
        // A clean-up that must leave nothing of session 8.
        StoreOp::SessionPut {
            session: SessionId(8),
            namespace: "mqttsn",
            client_id: "gone".into(),
            expiry_secs: 60,
            created_at: SystemTime::now(),
        },
        StoreOp::QueuePush {
            session: SessionId(8),
            seq: 1,
            message_id: 2,
            qos: 1,
            retain: false,
            subscription_ids: vec![],
        },
        StoreOp::SessionDelete {
            session: SessionId(8),
        },
    ];
    ops.into_iter()
        .map(|op| store.submit(op))
        .max()
        .unwrap_or(0)
}

async fn round_trip(mode: Durability, tag: &str) {
    let d = dir(tag);
    let (store, snap) = SqliteStore::open(&d, mode).unwrap_or_else(|e| panic!("{e}"));
    assert!(snap.sessions.is_empty());
    let last = populate(&store);
    wait(&store, last).await;
    store.close();
    drop(store);
    let (_store, snap) = SqliteStore::open(&d, mode).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        snap.sessions.len(),
        1,
        "{tag}: deleted session left rows behind"
    );
    let s = &snap.sessions[0];
    assert_eq!(
        (s.client_id.as_str(), s.namespace.as_str(), s.expiry_secs),
        ("c7", "mqtt", 3600)
    );
    assert!(s.offline_at.is_some());
    assert_eq!(s.subscriptions.len(), 1);
    assert_eq!(s.subscriptions[0].1.subscription_id, Some(5));
    assert!(s.subscriptions[0].1.no_local && s.subscriptions[0].1.retain_as_published);
    assert_eq!(s.subscriptions[0].1.retain_handling, RetainHandling::Never);
    type Entry = (u64, u64, Option<(NonZeroU16, StoredStage)>);
    let queue: Vec<Entry> = s
        .queue
        .iter()
        .map(|d| (d.seq, d.message_id, d.inflight))
        .collect();
    assert_eq!(
        queue,
        vec![(1, 1, None), (2, 2, Some((pkid(9), StoredStage::Released)))]
    );
    assert_eq!(s.queue[1].subscription_ids, vec![5, 6]);
    assert_eq!(s.queue[0].message.payload, "one");
    assert_eq!(
        s.queue[0]
            .message
            .properties
            .as_ref()
            .and_then(|p| p.content_type.clone()),
        Some("text/plain".into())
    );
    assert!(s.queue[0]
        .message
        .remaining_expiry(std::time::Instant::now())
        .is_some_and(|r| r > 3500));
    assert_eq!(s.incoming, vec![pkid(4)]);
    assert_eq!(snap.retained.len(), 1);
    assert_eq!(snap.retained[0].1.topic.as_str(), "a/1");
    assert_eq!(snap.max_message_id, 3);
}

#[tokio::test]
async fn strict_round_trip() {
    round_trip(Durability::Strict, "strict").await;
}

#[tokio::test]
async fn batched_round_trip() {
    round_trip(Durability::Batched(Duration::from_millis(20)), "batched").await;
}

#[tokio::test]
async fn relaxed_round_trip() {
    round_trip(Durability::Relaxed, "relaxed").await;
}

#[tokio::test]
async fn group_commit_under_concurrent_callers() {
    let d = dir("group");
    let (store, _) = SqliteStore::open(&d, Durability::Strict).unwrap_or_else(|e| panic!("{e}"));
    let threads = 8;
    let per = 200u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                for i in 0..per {
                    let id = t * per + i + 1;
                    let ticket = store.submit(StoreOp::MessagePut {
                        id,
                        message: msg("g/t", "x"),
                    });
                    assert!(ticket > last, "tickets from one caller must increase");
                    let t2 = store.submit(StoreOp::RetainPut {
                        topic: format!("g/{id}"),
                        message_id: id,
                        durable: true,
                    });
                    assert!(t2 > ticket);
                    last = t2;
                }
                last
            })
        })
        .collect();
    let last = handles
        .into_iter()
        .map(|h| h.join().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert_eq!(last, threads * per * 2, "every op got a distinct ticket");
    wait(&store, last).await;
    let commits = store.commits();
    assert!(
        commits < last,
        "{commits} commits for {last} ops: no grouping"
    );
    store.close();
    drop(store);
    let (_s, snap) = SqliteStore::open(&d, Durability::Strict).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        snap.retained.len() as u64,
        threads * per,
        "every committed op is on disk"
    );
}

#[tokio::test]
async fn corrupt_file_is_an_error_not_an_empty_store() {
    let d = dir("corrupt");
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(d.join("switchyard.db"), vec![0x5Au8; 8192]).unwrap_or_else(|e| panic!("{e}"));
    match SqliteStore::open(&d, Durability::Strict) {
        Err(StoreError::Sqlite { .. } | StoreError::Corrupt { .. }) => {}
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a damaged file opened as a store"),
    }
    assert_eq!(
        std::fs::read(d.join("switchyard.db")).map(|b| b.len()).ok(),
        Some(8192),
        "the damaged file was modified"
    );
}
