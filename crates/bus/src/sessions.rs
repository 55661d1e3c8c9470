//! Session lifecycle on the bus: open (new, resumed or taken over), release (offline or
//! discarded), expiry, kick, delayed wills. Persistent sessions are mirrored to the store.

use crate::attachment::{control_channel, Attachment, ControlEvents, Request};
use crate::error::BusError;
use crate::handle::{BusHandle, TAKEOVER_TIMEOUT};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::qos::QosEngine;
use crate::registry::{Entry, Key, Namespace, OpenSession, Opened};
use crate::session::{Session, SessionShared};
use crate::store::{durability_scope, StoreLink, StoreOp};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use switchyard_core::{ClientId, Message, SessionId};
use tokio::sync::oneshot;

impl BusHandle {
    pub(crate) fn new_session(
        &self,
        client_id: ClientId,
        expiry: Duration,
        max_inflight: u16,
    ) -> Session {
        let id = SessionId(self.0.next_session.fetch_add(1, Ordering::Relaxed));
        let c = &self.0.config;
        let outbox = Arc::new(
            Outbox::new(
                id,
                client_id.clone(),
                c.max_mqueue_len,
                c.mqueue_store_qos0,
                self.0.metrics.clone(),
            )
            .with_events(self.0.events.clone()),
        );
        Metrics::inc(&self.0.metrics.sessions);
        let mut qos = QosEngine::new(self.qos_config(max_inflight));
        qos.set_events(crate::events::EventLink {
            hub: self.0.events.clone(),
            client_id: client_id.clone(),
        });
        let shared = Arc::new(SessionShared {
            inflight: qos.gauge(),
            ..Default::default()
        });
        Session {
            id,
            client_id,
            outbox,
            qos,
            expiry,
            created_at: SystemTime::now(),
            ext: None,
            shared,
        }
    }

    /// Opens a session for a new connection: resumes the existing one unless `clean_start`,
    /// taking it over from a live connection if there is one (MQTT-3.1.4-2/3). The session comes
    /// with its [`Attachment`]: the connection's control events and its one finish.
    pub async fn open_session(&self, req: OpenSession) -> Result<Opened, BusError> {
        let key: Key = (req.info.namespace, req.info.client_id.clone());
        let (control_tx, control) = control_channel();
        if let Some(will) = self.0.pending_wills.lock().remove(&key) {
            // MQTT 5 §3.1.3.2.2: reconnecting before the delay ends cancels the will.
            will.cancel();
        }
        // A session whose expiry passed is gone even if the periodic reaper has not run yet: a
        // client reconnecting after its session expired must not resume it (MQTT-3.1.2-23).
        self.reap_expired(tokio::time::Instant::now().into_std());
        let generation = self.0.next_generation.fetch_add(1, Ordering::Relaxed);
        let (previous, pending) = {
            let mut reg = self.0.registry.lock();
            let new_entry = Entry::Online {
                generation,
                control: control_tx,
                info: req.info.clone(),
                attached: None,
            };
            match reg.entries.insert(key.clone(), new_entry) {
                None => (None, None),
                Some(Entry::Offline {
                    session,
                    expires_at,
                    generation: g,
                    ..
                }) => {
                    reg.expiries.remove(&(expires_at, g, key.clone()));
                    (Some(*session), None)
                }
                Some(Entry::Online { control, .. }) => {
                    let (tx, rx) = oneshot::channel();
                    // Sent inside the lock: see the module invariant in registry.rs.
                    match control.try_send(Request::Takeover { reply: tx }) {
                        Ok(()) => (None, Some(rx)),
                        Err(_) => (None, None),
                    }
                }
            }
        };
        let previous = match pending {
            None => previous,
            Some(rx) => {
                Metrics::inc(&self.0.metrics.takeovers);
                match tokio::time::timeout(TAKEOVER_TIMEOUT, rx).await {
                    Ok(Ok(session)) => session,
                    Ok(Err(_)) => None,
                    Err(_) => {
                        tracing::warn!(client_id = %key.1, "previous connection did not hand over its session in time");
                        None
                    }
                }
            }
        };
        let (mut session, present) = match previous {
            // A session whose expiry is zero ends with its connection (MQTT 5 §3.1.2.11.2).
            Some(old) if !req.clean_start && !old.expiry.is_zero() => (old, true),
            Some(old) => {
                self.discard(old);
                (
                    self.new_session(key.1.clone(), req.expiry, req.max_inflight),
                    false,
                )
            }
            None => (
                self.new_session(key.1.clone(), req.expiry, req.max_inflight),
                false,
            ),
        };
        session.expiry = req.expiry;
        session
            .qos
            .set_max_inflight(self.qos_config(req.max_inflight).max_inflight);
        session.outbox.set_online(true);
        *session.shared.disconnected_at.lock() = None;
        self.persist_open(&mut session, req.info.namespace).await;
        if let Some(Entry::Online {
            generation: g,
            attached,
            ..
        }) = self.0.registry.lock().entries.get_mut(&key)
        {
            if *g == generation {
                *attached = Some(session.attached());
            }
        }
        self.apply_auto_subscribe(&mut session, &req.info);
        if let Some(peer) = self.0.peer.get() {
            peer.session_opened(req.info.namespace.0, &req.info.client_id);
        }
        Ok(Opened {
            session,
            present,
            attachment: Attachment::new(self.clone(), req.info, generation, present, control),
        })
    }

    /// Mirrors a persistent session to the store, durably before CONNACK; stops mirroring (and
    /// deletes the stored copy) when the session became non-persistent.
    async fn persist_open(&self, session: &mut Session, namespace: Namespace) {
        let store = &self.0.store;
        if !store.is_persistent() {
            return;
        }
        if session.expiry.is_zero() {
            if session.outbox.is_stored() {
                crate::store::submit(
                    store.as_ref(),
                    StoreOp::SessionDelete {
                        session: session.id,
                    },
                );
                session.outbox.set_store(None);
                session.qos.set_store(None);
            }
            return;
        }
        let link = StoreLink {
            session: session.id,
            store: store.clone(),
        };
        session.outbox.set_store(Some(link.clone()));
        session.qos.set_store(Some(link));
        let op = StoreOp::SessionPut {
            session: session.id,
            namespace: namespace.0,
            client_id: session.client_id.as_str().to_string(),
            expiry_secs: session.expiry.as_secs(),
            created_at: session.created_at,
        };
        let ((), ticket) = durability_scope(|| crate::store::submit(store.as_ref(), op));
        if let Some(t) = ticket {
            self.wait_durable(t).await;
        }
    }

    /// Records (or clears) the will of a persistent session, so that it is published after a
    /// crash while the session is within its expiry.
    pub fn set_will(&self, session: &Session, will: Option<(&Message, Duration)>) {
        if !session.outbox.is_stored() {
            return;
        }
        let will = will.map(|(m, delay)| {
            let id = self.store_message(&Arc::new(m.clone()));
            (id, u32::try_from(delay.as_secs()).unwrap_or(u32::MAX))
        });
        crate::store::submit(
            self.0.store.as_ref(),
            StoreOp::WillPut {
                session: session.id,
                will,
            },
        );
    }

    /// Gives a session back when its connection ends ([`Attachment::finish`]). If another
    /// connection took the client id over, the session goes to it (through the reply the
    /// connection already read, else through the request waiting in `control`). Otherwise a
    /// persistent session (non-zero expiry) is kept offline and a clean one is discarded.
    pub(crate) fn release_session(
        &self,
        namespace: Namespace,
        session: Session,
        generation: u64,
        control: &ControlEvents,
    ) {
        session.outbox.set_online(false);
        if let Some(reply) = control.take_takeover() {
            self.hand_over(reply, session);
            return;
        }
        let key: Key = (namespace, session.client_id.clone());
        let mut reg = self.0.registry.lock();
        let info = match reg.entries.get(&key) {
            Some(Entry::Online {
                generation: g,
                info,
                ..
            }) if *g == generation => Some(info.clone()),
            _ => None,
        };
        let Some(info) = info else {
            drop(reg);
            control.close();
            while let Some(msg) = control.pop() {
                if let Request::Takeover { reply } = msg {
                    self.hand_over(reply, session);
                    return;
                }
            }
            self.discard(session);
            return;
        };
        *session.shared.disconnected_at.lock() = Some(SystemTime::now());
        if session.expiry.is_zero() {
            reg.entries.remove(&key);
            drop(reg);
            self.discard(session);
            return;
        }
        let expires_at = tokio::time::Instant::now().into_std() + session.expiry;
        if session.outbox.is_stored() {
            crate::store::submit(
                self.0.store.as_ref(),
                StoreOp::SessionOffline {
                    session: session.id,
                    at: SystemTime::now(),
                },
            );
        }
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

    fn hand_over(&self, reply: oneshot::Sender<Option<Session>>, session: Session) {
        if let Err(Some(session)) = reply.send(Some(session)) {
            // The new connection gave up waiting; nobody owns the session any more.
            self.discard(session);
        }
    }

    /// Ends a session for good: its subscriptions leave the router and its queue is dropped.
    fn discard(&self, session: Session) {
        let subscriptions = std::mem::take(&mut *session.shared.subscriptions.lock());
        for sf in subscriptions.keys() {
            self.0.router.unsubscribe(sf, session.id);
            Metrics::dec(&self.0.metrics.subscriptions);
        }
        if session.outbox.is_stored() {
            crate::store::submit(
                self.0.store.as_ref(),
                StoreOp::SessionDelete {
                    session: session.id,
                },
            );
        }
        session.outbox.close();
        Metrics::dec(&self.0.metrics.sessions);
    }

    /// Discards offline sessions whose expiry has passed; returns how many.
    pub fn reap_expired(&self, now: Instant) -> usize {
        let mut expired = Vec::new();
        {
            let mut reg = self.0.registry.lock();
            while let Some(first) = reg.expiries.first().cloned() {
                if first.0 > now {
                    break;
                }
                reg.expiries.remove(&first);
                let (_, generation, key) = first;
                if matches!(reg.entries.get(&key), Some(Entry::Offline { generation: g, .. }) if *g == generation)
                {
                    if let Some(Entry::Offline { session, .. }) = reg.entries.remove(&key) {
                        expired.push(session);
                    }
                }
            }
        }
        let n = expired.len();
        for s in expired {
            tracing::debug!(client_id = %s.client_id, "session expired");
            Metrics::inc(&self.0.metrics.sessions_expired);
            self.discard(*s);
        }
        n
    }

    /// Publishes `will` after `delay` unless the same client id opens a session first.
    pub fn publish_will_later(
        &self,
        namespace: Namespace,
        client_id: ClientId,
        will: Message,
        delay: Duration,
    ) {
        let key: Key = (namespace, client_id);
        let token = tokio_util::sync::CancellationToken::new();
        if let Some(old) = self
            .0
            .pending_wills
            .lock()
            .insert(key.clone(), token.clone())
        {
            old.cancel();
        }
        let bus = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::time::sleep(delay) => {
                    let mut pending = bus.0.pending_wills.lock();
                    if pending.get(&key).is_some_and(|t| !t.is_cancelled()) {
                        pending.remove(&key);
                        drop(pending);
                        bus.publish(will);
                    }
                }
            }
        });
    }

    /// Discards an offline session (an operator's kick of a client that is not connected).
    /// True if there was one.
    pub fn discard_offline(&self, namespace: Namespace, client_id: &ClientId) -> bool {
        let key: Key = (namespace, client_id.clone());
        let session = {
            let mut reg = self.0.registry.lock();
            match reg.entries.get(&key) {
                Some(Entry::Offline { .. }) => match reg.entries.remove(&key) {
                    Some(Entry::Offline {
                        session,
                        expires_at,
                        generation,
                        ..
                    }) => {
                        reg.expiries.remove(&(expires_at, generation, key.clone()));
                        Some(session)
                    }
                    _ => None,
                },
                _ => None,
            }
        };
        match session {
            Some(s) => {
                self.discard(*s);
                true
            }
            None => false,
        }
    }

    /// Another node opened a session for `client_id` (namespace by name, as it travels between
    /// nodes): one client id has one owner in a cluster, so a connection here closes as taken
    /// over (MQTT 5 0x8E) and its session, or an offline session kept here, is discarded (a
    /// session does not move between nodes yet: docs/cluster.md). True if there was one.
    pub fn taken_over_elsewhere(&self, namespace: &str, client_id: &ClientId) -> bool {
        // Namespaces are a handful of static labels; one that no local client ever used has
        // nothing to take over.
        let ns = self
            .0
            .connections_by_ns
            .lock()
            .keys()
            .copied()
            .find(|n| *n == namespace);
        let Some(ns) = ns else {
            return false;
        };
        let key: Key = (Namespace(ns), client_id.clone());
        let mut reg = self.0.registry.lock();
        match reg.entries.remove(&key) {
            Some(Entry::Online { control, .. }) => {
                // The reply's receiver is dropped: at its finish the connection hands the session
                // to nobody, which discards it. Sent inside the lock (registry.rs invariant).
                let (tx, _) = oneshot::channel();
                let _ = control.try_send(Request::Takeover { reply: tx });
                drop(reg);
                Metrics::inc(&self.0.metrics.takeovers);
                tracing::info!(%client_id, namespace, "session taken over by another node");
                true
            }
            Some(Entry::Offline {
                session,
                expires_at,
                generation,
                ..
            }) => {
                reg.expiries.remove(&(expires_at, generation, key));
                drop(reg);
                self.discard(*session);
                tracing::info!(%client_id, namespace,
                    "offline session dropped: the client connected to another node");
                true
            }
            None => false,
        }
    }

    /// Asks the connection owning a client id to close. True if it was online.
    pub fn kick(&self, namespace: Namespace, client_id: &ClientId) -> bool {
        let reg = self.0.registry.lock();
        match reg.entries.get(&(namespace, client_id.clone())) {
            Some(Entry::Online { control, .. }) => control.try_send(Request::Kick).is_ok(),
            _ => false,
        }
    }
}
