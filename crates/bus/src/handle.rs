//! [`BusHandle`]: the one API gateways use — open and release sessions, publish, subscribe,
//! report connects and disconnects. Cheap to clone; every method is callable from any task.

use crate::config::BusConfig;
use crate::delivery::{Delivery, RetainHandling, SubOptions};
use crate::error::BusError;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::qos::{QosConfig, QosEngine};
use crate::registry::{
    ClientInfo, Control, ControlRx, Entry, Key, Namespace, OpenSession, Opened, Registry,
};
use crate::retain::RetainStore;
use crate::router::Router;
use crate::session::Session;
use crate::store::{MemoryStore, SessionStore};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use switchyard_core::{ClientId, CloseReason, Message, QoS, SessionId, SubscriptionFilter};
use tokio::sync::oneshot;

/// How long a new connection waits for the old owner of its client id to hand the session over.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Inner {
    pub(crate) config: BusConfig,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) router: Router,
    pub(crate) retain: RetainStore,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) store: Arc<dyn SessionStore>,
    next_session: AtomicU64,
    next_generation: AtomicU64,
    pub(crate) started: Instant,
    /// Delayed wills (MQTT 5 will delay), cancelled when their client reconnects.
    pending_wills: Mutex<std::collections::HashMap<Key, tokio_util::sync::CancellationToken>>,
}

/// Handle to the bus.
#[derive(Clone)]
pub struct BusHandle(pub(crate) Arc<Inner>);

impl std::fmt::Debug for BusHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusHandle")
            .field("node", &self.0.config.node_name)
            .finish()
    }
}

/// The result of a subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The session did not hold this filter before.
    pub is_new: bool,
    /// Retained messages queued for the subscriber.
    pub retained: usize,
}

impl BusHandle {
    /// A bus with the in-memory store.
    pub fn new(config: BusConfig) -> Self {
        Self::with_store(config, Arc::new(MemoryStore))
    }

    /// A bus reporting durable changes to `store`.
    pub fn with_store(config: BusConfig, store: Arc<dyn SessionStore>) -> Self {
        BusHandle(Arc::new(Inner {
            router: Router::new(config.shared_strategy, config.upgrade_qos),
            config,
            metrics: Arc::new(Metrics::default()),
            retain: RetainStore::default(),
            registry: Mutex::new(Registry::default()),
            store,
            next_session: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            started: Instant::now(),
            pending_wills: Mutex::new(std::collections::HashMap::new()),
        }))
    }

    /// The engine's settings.
    pub fn config(&self) -> &BusConfig {
        &self.0.config
    }

    /// Node-wide metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Retained messages.
    pub fn retained(&self) -> &RetainStore {
        &self.0.retain
    }

    /// Time since the bus started.
    pub fn uptime(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// QoS engine settings for a connection with the given window.
    pub fn qos_config(&self, max_inflight: u16) -> QosConfig {
        let c = &self.0.config;
        QosConfig {
            max_inflight: max_inflight.clamp(1, c.max_inflight.max(1)),
            retry_interval: c.retry_interval,
            max_awaiting_rel: c.max_awaiting_rel,
            await_rel_timeout: c.await_rel_timeout,
        }
    }

    fn new_session(&self, client_id: ClientId, expiry: Duration, max_inflight: u16) -> Session {
        let id = SessionId(self.0.next_session.fetch_add(1, Ordering::Relaxed));
        let c = &self.0.config;
        let outbox = Arc::new(Outbox::new(
            id,
            client_id.clone(),
            c.max_mqueue_len,
            c.mqueue_store_qos0,
            self.0.metrics.clone(),
        ));
        Metrics::inc(&self.0.metrics.sessions);
        Session {
            id,
            client_id,
            outbox,
            qos: QosEngine::new(self.qos_config(max_inflight)),
            subscriptions: BTreeMap::new(),
            expiry,
            created_at: SystemTime::now(),
            ext: None,
        }
    }

    /// Opens a session for a new connection: resumes the existing one unless `clean_start`,
    /// taking it over from a live connection if there is one (MQTT-3.1.4-2/3).
    pub async fn open_session(&self, req: OpenSession) -> Result<Opened, BusError> {
        let key: Key = (req.info.namespace, req.info.client_id.clone());
        if let Some(will) = self.0.pending_wills.lock().remove(&key) {
            // MQTT 5 §3.1.3.2.2: reconnecting before the delay ends cancels the will.
            will.cancel();
        }
        let generation = self.0.next_generation.fetch_add(1, Ordering::Relaxed);
        let (previous, pending) = {
            let mut reg = self.0.registry.lock();
            let new_entry = Entry::Online {
                generation,
                control: req.control.clone(),
                info: req.info.clone(),
            };
            match reg.entries.insert(key.clone(), new_entry) {
                None => (None, None),
                Some(Entry::Offline {
                    session,
                    expires_at,
                    generation: g,
                }) => {
                    reg.expiries.remove(&(expires_at, g, key.clone()));
                    (Some(*session), None)
                }
                Some(Entry::Online { control, .. }) => {
                    let (tx, rx) = oneshot::channel();
                    // Sent inside the lock: see the module invariant in registry.rs.
                    match control.try_send(Control::Takeover { reply: tx }) {
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
        Ok(Opened {
            session,
            present,
            generation,
        })
    }

    /// Gives a session back when its connection ends. If another connection took the client id
    /// over, the session goes to it (through `takeover` if the caller already received the
    /// request, else through the request waiting in `control`). Otherwise a persistent session
    /// (non-zero expiry) is kept offline and a clean one is discarded.
    pub fn release_session(
        &self,
        namespace: Namespace,
        session: Session,
        generation: u64,
        control: &mut ControlRx,
        takeover: Option<oneshot::Sender<Option<Session>>>,
    ) {
        session.outbox.set_online(false);
        if let Some(reply) = takeover {
            self.hand_over(reply, session);
            return;
        }
        let key: Key = (namespace, session.client_id.clone());
        let mut reg = self.0.registry.lock();
        let mine = matches!(reg.entries.get(&key), Some(Entry::Online { generation: g, .. }) if *g == generation);
        if !mine {
            drop(reg);
            control.close();
            while let Ok(msg) = control.try_recv() {
                if let Control::Takeover { reply } = msg {
                    self.hand_over(reply, session);
                    return;
                }
            }
            self.discard(session);
            return;
        }
        if session.expiry.is_zero() {
            reg.entries.remove(&key);
            drop(reg);
            self.discard(session);
            return;
        }
        let expires_at = tokio::time::Instant::now().into_std() + session.expiry;
        reg.expiries.insert((expires_at, generation, key.clone()));
        reg.entries.insert(
            key,
            Entry::Offline {
                generation,
                session: Box::new(session),
                expires_at,
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
        for sf in session.subscriptions.keys() {
            self.0.router.unsubscribe(sf, session.id);
            Metrics::dec(&self.0.metrics.subscriptions);
        }
        session.outbox.close();
        self.0.store.session_discarded(session.id);
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

    /// Asks the connection owning a client id to close. True if it was online.
    pub fn kick(&self, namespace: Namespace, client_id: &ClientId) -> bool {
        let reg = self.0.registry.lock();
        match reg.entries.get(&(namespace, client_id.clone())) {
            Some(Entry::Online { control, .. }) => control.try_send(Control::Kick).is_ok(),
            _ => false,
        }
    }

    /// Clients currently connected.
    pub fn online_clients(&self) -> Vec<Arc<ClientInfo>> {
        self.0.registry.lock().online()
    }

    /// Publishes a message: stores it if retained, routes it to every matching outbox.
    /// Runs in the caller's task and never waits on a subscriber. Returns the number of
    /// deliveries queued.
    pub fn publish(&self, msg: Message) -> usize {
        let m = &self.0.metrics;
        Metrics::inc(&m.messages_received);
        Metrics::inc(match msg.qos {
            QoS::AtMostOnce => &m.messages_qos0_received,
            QoS::AtLeastOnce => &m.messages_qos1_received,
            QoS::ExactlyOnce => &m.messages_qos2_received,
        });
        let msg = Arc::new(msg);
        if msg.retain && self.0.config.retain_available {
            self.store_retained(&msg);
        }
        let targets = self.0.router.route(&msg);
        if targets.is_empty() {
            Metrics::inc(&m.messages_dropped_no_subscribers);
        }
        let n = targets.len();
        for (outbox, delivery) in targets {
            outbox.push(delivery);
        }
        n
    }

    fn store_retained(&self, msg: &Arc<Message>) {
        match self.0.retain.set(msg.clone()) {
            1 => Metrics::inc(&self.0.metrics.retained),
            -1 => Metrics::dec(&self.0.metrics.retained),
            _ => {}
        }
        if msg.payload.is_empty() {
            self.0.store.retained_cleared(msg.topic.as_str());
        } else {
            self.0.store.retained_set(msg);
        }
    }

    /// Adds (or replaces) a subscription of `session` and queues the matching retained
    /// messages per the retain handling (none for shared subscriptions, MQTT 5 §4.8.2).
    pub fn subscribe(
        &self,
        session: &mut Session,
        sf: SubscriptionFilter,
        opts: SubOptions,
    ) -> Result<SubscribeOutcome, BusError> {
        let max = self.0.config.max_subscriptions;
        let exists = session.subscriptions.contains_key(&sf);
        if !exists && max > 0 && session.subscriptions.len() >= max {
            return Err(BusError::QuotaExceeded(max));
        }
        self.0.router.subscribe(&sf, session.outbox.clone(), opts);
        session.subscriptions.insert(sf.clone(), opts);
        if !exists {
            Metrics::inc(&self.0.metrics.subscriptions);
        }
        if !session.expiry.is_zero() {
            self.0
                .store
                .subscription_saved(session.id, &session.client_id, &sf, &opts);
        }
        let send_retained = self.0.config.retain_available
            && !sf.is_shared()
            && match opts.retain_handling {
                RetainHandling::OnSubscribe => true,
                RetainHandling::OnNewSubscribe => !exists,
                RetainHandling::Never => false,
            };
        let mut retained = 0;
        if send_retained {
            for m in self.0.retain.matching(&sf.filter, Instant::now()) {
                let d = Delivery {
                    qos: m.qos.min(opts.qos),
                    message: m,
                    retain: true,
                    subscription_ids: opts.subscription_id.into_iter().collect(),
                };
                session.outbox.push(d);
                retained += 1;
            }
        }
        Ok(SubscribeOutcome {
            is_new: !exists,
            retained,
        })
    }

    /// Removes a subscription; true if the session held it.
    pub fn unsubscribe(&self, session: &mut Session, sf: &SubscriptionFilter) -> bool {
        if session.subscriptions.remove(sf).is_none() {
            return false;
        }
        self.0.router.unsubscribe(sf, session.id);
        Metrics::dec(&self.0.metrics.subscriptions);
        if !session.expiry.is_zero() {
            self.0.store.subscription_removed(session.id, sf);
        }
        true
    }

    /// Reports a successful connect: counts it and publishes the `$SYS` presence event.
    pub fn client_connected(&self, info: &ClientInfo) {
        Metrics::inc(&self.0.metrics.connections);
        if self.0.config.sys_client_connected {
            crate::sys::publish_connected(self, info);
        }
    }

    /// Reports the end of a connection that had connected.
    pub fn client_disconnected(&self, info: &ClientInfo, reason: &CloseReason) {
        Metrics::dec(&self.0.metrics.connections);
        if self.0.config.sys_client_disconnected {
            crate::sys::publish_disconnected(self, info, reason);
        }
    }
}

#[cfg(test)]
mod tests;
