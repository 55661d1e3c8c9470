//! Start-up restore: rebuilds every stored persistent session (subscriptions, queue, in-flight
//! and QoS 2 state) and the retained messages before any listener accepts a connection.
//! Sessions that were online when the broker stopped are offline from now on, and their wills
//! are published (after their delay) as for any connection that ended without DISCONNECT.

use crate::delivery::Delivery;
use crate::handle::BusHandle;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::qos::QosEngine;
use crate::registry::{ClientInfo, Entry, Key, Namespace};
use crate::session::{Session, SessionShared, SubscriptionSet};
use crate::store::{Snapshot, StoreLink, StoreOp, StoredSession, StoredStage};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use switchyard_core::{ClientId, QoS};

/// What a restore brought back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RestoreReport {
    /// Sessions restored.
    pub sessions: usize,
    /// Sessions found already expired and deleted.
    pub expired: usize,
    /// Queued or in-flight deliveries restored.
    pub deliveries: usize,
    /// Retained messages restored.
    pub retained: usize,
    /// Wills scheduled for sessions that were online when the broker stopped.
    pub wills: usize,
}

/// Namespaces are `&'static str` labels; stored ones are interned once each.
fn intern(name: &str, known: &mut HashMap<String, &'static str>) -> &'static str {
    if let Some(s) = known.get(name) {
        return s;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    known.insert(name.to_string(), leaked);
    leaked
}

impl BusHandle {
    /// Loads a snapshot into the empty bus. Call before accepting connections.
    pub fn restore(&self, snap: Snapshot) -> RestoreReport {
        let mut report = RestoreReport::default();
        let inner = &self.0;
        inner
            .next_message_id
            .fetch_max(snap.max_message_id + 1, Ordering::Relaxed);
        for (id, m) in snap.retained {
            if inner.retain.set(Arc::new(m), id) == 1 {
                Metrics::inc(&inner.metrics.retained);
                report.retained += 1;
            }
        }
        let mut names = HashMap::new();
        for s in snap.sessions {
            inner
                .next_session
                .fetch_max(s.session.0 + 1, Ordering::Relaxed);
            let namespace = Namespace(intern(&s.namespace, &mut names));
            match self.restore_session(s, namespace) {
                Some((n, will)) => {
                    report.sessions += 1;
                    report.deliveries += n;
                    report.wills += usize::from(will);
                }
                None => report.expired += 1,
            }
        }
        report
    }

    /// Returns (deliveries restored, will scheduled), or None when the session had expired.
    fn restore_session(&self, s: StoredSession, namespace: Namespace) -> Option<(usize, bool)> {
        let inner = &self.0;
        let store = &inner.store;
        let expiry = Duration::from_secs(s.expiry_secs);
        let now_wall = SystemTime::now();
        let elapsed = s
            .offline_at
            .and_then(|t| now_wall.duration_since(t).ok())
            .unwrap_or_default();
        if elapsed >= expiry {
            crate::store::submit(
                store.as_ref(),
                StoreOp::SessionDelete { session: s.session },
            );
            return None;
        }
        let client_id = ClientId::new(s.client_id.as_str());
        let link = StoreLink {
            session: s.session,
            store: store.clone(),
        };
        let c = &inner.config;
        let outbox = Arc::new(
            Outbox::new(
                s.session,
                client_id.clone(),
                c.max_mqueue_len,
                c.mqueue_store_qos0,
                inner.metrics.clone(),
            )
            .with_events(inner.events.clone()),
        );
        let mut qos = QosEngine::new(self.qos_config(c.max_inflight));
        qos.set_events(crate::events::EventLink {
            hub: inner.events.clone(),
            client_id: client_id.clone(),
        });
        let now = tokio::time::Instant::now().into_std();
        let mut subscriptions = SubscriptionSet::default();
        for (sf, opts) in s.subscriptions {
            inner.router.subscribe(&sf, outbox.clone(), opts);
            Metrics::inc(&inner.metrics.subscriptions);
            subscriptions.insert(sf, opts);
        }
        let restored = s.queue.len();
        for d in s.queue {
            let delivery = Delivery {
                message: Arc::new(d.message),
                qos: QoS::try_from(d.qos).unwrap_or(QoS::AtLeastOnce),
                retain: d.retain,
                subscription_ids: d.subscription_ids,
                message_id: d.message_id,
                seq: d.seq,
            };
            outbox.reserve_seq(d.seq);
            match d.inflight {
                Some((pkid, stage)) => {
                    qos.restore_inflight(pkid, delivery, stage == StoredStage::Released, now)
                }
                None => outbox.restore(delivery),
            }
        }
        for pkid in s.incoming {
            qos.restore_incoming(pkid, now);
        }
        outbox.set_store(Some(link.clone()));
        qos.set_store(Some(link));
        let was_online = s.offline_at.is_none();
        if was_online {
            crate::store::submit(
                store.as_ref(),
                StoreOp::SessionOffline {
                    session: s.session,
                    at: now_wall,
                },
            );
        }
        let shared = Arc::new(SessionShared {
            subscriptions: parking_lot::Mutex::new(subscriptions),
            inflight: qos.gauge(),
            disconnected_at: parking_lot::Mutex::new(Some(s.offline_at.unwrap_or(now_wall))),
        });
        let session = Session {
            id: s.session,
            client_id: client_id.clone(),
            outbox,
            qos,
            expiry,
            created_at: s.created_at,
            ext: None,
            shared,
        };
        let info = Arc::new(ClientInfo {
            namespace,
            client_id: client_id.clone(),
            username: None,
            peer: None,
            proto_name: namespace.0,
            proto_ver: 0,
            keepalive: 0,
            clean_start: false,
            expiry_interval: s.expiry_secs,
            connected_at: s.offline_at.unwrap_or(now_wall),
        });
        Metrics::inc(&inner.metrics.sessions);
        let generation = inner.next_generation.fetch_add(1, Ordering::Relaxed);
        let expires_at = now + (expiry - elapsed);
        let key: Key = (namespace, client_id.clone());
        {
            let mut reg = inner.registry.lock();
            reg.expiries.insert((expires_at, generation, key.clone()));
            reg.entries.insert(
                key,
                Entry::Offline {
                    generation,
                    session: Box::new(session),
                    expires_at,
                    info,
                },
            );
        }
        let mut will_scheduled = false;
        if let (true, Some((will, delay))) = (was_online, s.will) {
            // The connection ended with the broker: its will goes out as for an abrupt close.
            let delay = Duration::from_secs(u64::from(delay)).min(expiry);
            crate::store::submit(
                store.as_ref(),
                StoreOp::WillPut {
                    session: s.session,
                    will: None,
                },
            );
            if delay.is_zero() {
                self.publish(will);
            } else {
                self.publish_will_later(namespace, client_id, will, delay);
            }
            will_scheduled = true;
        }
        Some((restored, will_scheduled))
    }
}
