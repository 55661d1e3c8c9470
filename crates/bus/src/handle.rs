//! [`BusHandle`]: the one API gateways use — open sessions (each comes with its
//! [`Attachment`](crate::Attachment), which reports the connect and ends the connection),
//! publish, subscribe. Cheap to clone; every method is callable from any task.

use crate::config::BusConfig;
use crate::delivery::{Delivery, RetainHandling, SubOptions};
use crate::error::BusError;
use crate::metrics::Metrics;
use crate::qos::QosConfig;
use crate::registry::{Attached, ClientInfo, Key, Registry};
use crate::retain::RetainStore;
use crate::router::Router;
use crate::session::Session;
use crate::store::{MemoryStore, SessionStore, StoreOp, Ticket};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::{CloseReason, Message, QoS, SubscriptionFilter};

/// How long a new connection waits for the old owner of its client id to hand the session over.
pub(crate) const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Inner {
    pub(crate) config: BusConfig,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) router: Router,
    pub(crate) retain: RetainStore,
    pub(crate) delayed: crate::delayed::Delayed,
    pub(crate) auto_subscribe: parking_lot::RwLock<Vec<crate::autosub::AutoSubscription>>,
    pub(crate) registry: Mutex<Registry>,
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) next_session: AtomicU64,
    pub(crate) next_generation: AtomicU64,
    /// Ids of messages handed to the store.
    pub(crate) next_message_id: AtomicU64,
    pub(crate) started: Instant,
    /// Open connections per namespace label.
    pub(crate) connections_by_ns: Mutex<std::collections::HashMap<&'static str, u64>>,
    /// Wills waiting out their delay ([`BusHandle::publish_will_later`]): an MQTT connection's
    /// Will Delay Interval (the gateway caps it at the session expiry), or the will of a session
    /// restored after a restart. Each entry is the cancellation token of a sleeping task, keyed
    /// by (namespace, client id): a session opened for that key cancels it (`open_session`,
    /// MQTT 5 §3.1.2.5), a newer will for the key replaces it, and the task removes its entry
    /// when it publishes. Kept in memory only.
    pub(crate) pending_wills:
        Mutex<std::collections::HashMap<Key, tokio_util::sync::CancellationToken>>,
    /// The event tap (the rule engine listens there); costs one atomic load per emit point
    /// while nothing listens.
    pub(crate) events: Arc<crate::events::EventHub>,
    /// The link to other nodes, when clustered ([`BusHandle::set_peer`]).
    pub(crate) peer: std::sync::OnceLock<Arc<dyn crate::peer::Peer>>,
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
        Self::with_store(config, Arc::new(MemoryStore::default()))
    }

    /// A bus reporting durable changes to `store`.
    pub fn with_store(config: BusConfig, store: Arc<dyn SessionStore>) -> Self {
        BusHandle(Arc::new(Inner {
            router: Router::new(config.shared_strategy, config.upgrade_qos),
            retain: RetainStore::with_limits(config.retain_limits),
            delayed: crate::delayed::Delayed::new(config.delayed_enable, config.delayed_max),
            auto_subscribe: parking_lot::RwLock::new(config.auto_subscribe.clone()),
            config,
            metrics: Arc::new(Metrics::default()),
            registry: Mutex::new(Registry::default()),
            store,
            next_session: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            next_message_id: AtomicU64::new(1),
            started: Instant::now(),
            pending_wills: Mutex::new(std::collections::HashMap::new()),
            connections_by_ns: Mutex::new(std::collections::HashMap::new()),
            events: Arc::default(),
            peer: std::sync::OnceLock::new(),
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

    /// The event tap: where a listener (the rule engine) hears about messages, clients and
    /// subscriptions.
    pub fn events(&self) -> &Arc<crate::events::EventHub> {
        &self.0.events
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
        // In the publisher's task, so inside its connection's span: a log trace of the client
        // (or of the topic) shows it.
        tracing::debug!(topic = %msg.topic, qos = msg.qos.as_u8(), retain = msg.retain,
            payload = msg.payload.as_ref(), "message published");
        if msg.topic.as_str().starts_with(crate::delayed::PREFIX) {
            // Held, not routed: published to its target topic when due. Counts as one taker.
            return match self.0.delayed.hold(&msg, m) {
                Ok(_) => 1,
                Err(e) => {
                    Metrics::inc(&m.delayed_dropped);
                    tracing::warn!(topic = %msg.topic, error = %e, "delayed publish dropped");
                    0
                }
            };
        }
        // After the delayed check: a held message is seen when it is really published.
        self.0
            .events
            .emit(crate::events::BusEvent::MessagePublish(&msg));
        let msg = Arc::new(msg);
        let n = self.route_here(&msg, true);
        if let Some(peer) = self.0.peer.get() {
            peer.forward(&msg);
        }
        n
    }

    /// Links this node to others: `peer` hears which filters have local subscribers (those
    /// already subscribed at once) and every message published here. Only the first call counts.
    pub fn set_peer(&self, peer: Arc<dyn crate::peer::Peer>) {
        if self.0.peer.set(peer.clone()).is_ok() {
            self.0.router.set_peer(peer);
        }
    }

    /// Delivers a message another node published (it reached this node because a local
    /// subscription may match it): stored if retained, routed to local subscribers, never
    /// forwarded again. Counted once, on the node where it was published, so not here.
    pub fn publish_remote(&self, msg: Message) -> usize {
        Metrics::inc(&self.0.metrics.messages_from_peers);
        let msg = Arc::new(msg);
        self.route_here(&msg, false)
    }

    /// Delivers a message to the member of shared group `group` on `filter` that this node
    /// picks: the cluster chose this node for it (see [`Peer::shared_interest`]). False when
    /// the group has no member here any more (the message is then dropped and counted).
    ///
    /// [`Peer::shared_interest`]: crate::Peer::shared_interest
    pub fn publish_remote_shared(&self, msg: Message, group: &str, filter: &str) -> bool {
        let msg = Arc::new(msg);
        let Some((outbox, delivery)) = self.0.router.route_shared(&msg, group, filter) else {
            Metrics::inc(&self.0.metrics.messages_dropped_no_subscribers);
            return false;
        };
        self.push_delivery(&msg, &outbox, delivery, &mut 0);
        true
    }

    /// Stores a retained message and routes `msg` to this node's subscribers; `local` says
    /// whether it was published here (only then is "no subscribers" a drop worth reporting).
    fn route_here(&self, msg: &Arc<Message>, local: bool) -> usize {
        let m = &self.0.metrics;
        let mut stored_id = 0;
        if msg.retain && self.0.config.retain_available {
            stored_id = self.store_retained(msg);
        }
        let targets = self.0.router.route(msg);
        if targets.is_empty() && local && self.0.peer.get().is_none() {
            Metrics::inc(&m.messages_dropped_no_subscribers);
            self.0.events.emit(crate::events::BusEvent::MessageDropped {
                message: msg,
                reason: "no_subscribers",
            });
        }
        let n = targets.len();
        for (outbox, delivery) in targets {
            self.push_delivery(msg, &outbox, delivery, &mut stored_id);
        }
        n
    }

    /// Queues one delivery of `msg`; a QoS 1/2 delivery to a stored queue references the
    /// message in the store, written once per message (`stored_id`, 0 until then).
    fn push_delivery(
        &self,
        msg: &Arc<Message>,
        outbox: &crate::Outbox,
        mut delivery: Delivery,
        stored_id: &mut u64,
    ) {
        if delivery.qos != QoS::AtMostOnce && outbox.is_stored() {
            if *stored_id == 0 {
                *stored_id = self.store_message(msg);
            }
            delivery.message_id = *stored_id;
        }
        outbox.push(delivery);
    }

    /// Hands a message to the store once, however many queues reference it; returns its id.
    pub(crate) fn store_message(&self, msg: &Arc<Message>) -> u64 {
        let id = self.0.next_message_id.fetch_add(1, Ordering::Relaxed);
        crate::store::submit(
            self.0.store.as_ref(),
            StoreOp::MessagePut {
                id,
                message: msg.clone(),
            },
        );
        id
    }

    /// Whether a persistent store is configured.
    pub fn has_store(&self) -> bool {
        self.0.store.is_persistent()
    }

    /// The store's durable ticket, for gateways holding acknowledgements.
    pub fn durable(&self) -> tokio::sync::watch::Receiver<Ticket> {
        self.0.store.durable()
    }

    /// Waits until `ticket` is durable.
    pub async fn wait_durable(&self, ticket: Ticket) {
        let mut rx = self.0.store.durable();
        let _ = rx.wait_for(|t| *t >= ticket).await;
    }

    /// Deletes the retained message on `topic` (operator action); true if there was one.
    pub fn delete_retained(&self, topic: &str) -> bool {
        let removed = self.0.retain.remove(topic);
        if removed {
            Metrics::dec(&self.0.metrics.retained);
            if self.0.store.is_persistent() {
                crate::store::submit(
                    self.0.store.as_ref(),
                    StoreOp::RetainDelete {
                        topic: topic.to_string(),
                    },
                );
            }
        }
        removed
    }

    /// Stores or clears the retained message; returns its store id (0 when not stored).
    fn store_retained(&self, msg: &Arc<Message>) -> u64 {
        if let Err(why) = self.0.retain.admits(msg) {
            // Routed all the same; only the store refuses it ([retainer] limits).
            Metrics::inc(&self.0.metrics.retained_not_stored);
            tracing::warn!(topic = %msg.topic, reason = ?why, "retained message not stored");
            return 0;
        }
        let persistent = self.0.store.is_persistent();
        let id = if persistent && !msg.payload.is_empty() {
            self.store_message(msg)
        } else {
            0
        };
        match self.0.retain.set(msg.clone(), id) {
            1 => Metrics::inc(&self.0.metrics.retained),
            -1 => Metrics::dec(&self.0.metrics.retained),
            _ => {}
        }
        if persistent {
            let topic = msg.topic.as_str().to_string();
            let op = if msg.payload.is_empty() {
                StoreOp::RetainDelete { topic }
            } else {
                StoreOp::RetainPut {
                    topic,
                    message_id: id,
                    durable: msg.qos != QoS::AtMostOnce,
                }
            };
            crate::store::submit(self.0.store.as_ref(), op);
        }
        id
    }

    /// Adds (or replaces) a subscription of `session` and queues the matching retained
    /// messages per the retain handling (none for shared subscriptions, MQTT 5 §4.8.2).
    pub fn subscribe(
        &self,
        session: &mut Session,
        sf: SubscriptionFilter,
        opts: SubOptions,
    ) -> Result<SubscribeOutcome, BusError> {
        self.subscribe_parts(&session.attached(), sf, opts)
    }

    /// The subscribe itself, on the parts of a session other tasks may hold (so an operator can
    /// subscribe on behalf of a client whose connection owns the session).
    pub(crate) fn subscribe_parts(
        &self,
        s: &Attached,
        sf: SubscriptionFilter,
        opts: SubOptions,
    ) -> Result<SubscribeOutcome, BusError> {
        let max = self.0.config.max_subscriptions;
        let exists = {
            let mut subs = s.shared.subscriptions.lock();
            let exists = subs.contains_key(&sf);
            if !exists && max > 0 && subs.len() >= max {
                return Err(BusError::QuotaExceeded(max));
            }
            subs.insert(sf.clone(), opts);
            exists
        };
        self.0.router.subscribe(&sf, s.outbox.clone(), opts);
        tracing::debug!(topic = %sf, qos = opts.qos.as_u8(), "subscribed");
        self.0
            .events
            .emit(crate::events::BusEvent::SessionSubscribed {
                client_id: s.outbox.client_id(),
                filter: &sf,
                opts: &opts,
            });
        if !exists {
            Metrics::inc(&self.0.metrics.subscriptions);
        }
        if s.outbox.is_stored() {
            crate::store::submit(
                self.0.store.as_ref(),
                StoreOp::SubscriptionPut {
                    session: s.session,
                    filter: sf.clone(),
                    opts,
                },
            );
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
            // Expiry is checked where the subscriber's driver drains its outbox, with its `now`
            // (and counted there as messages.expired): the engine never reads the clock.
            for (m, id) in self.0.retain.matching(&sf.filter, None) {
                let d = Delivery {
                    qos: m.qos.min(opts.qos),
                    message: m,
                    retain: true,
                    subscription_ids: opts.subscription_id.into_iter().collect(),
                    message_id: id,
                    seq: 0,
                };
                s.outbox.push(d);
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
        self.unsubscribe_parts(&session.attached(), sf)
    }

    pub(crate) fn unsubscribe_parts(&self, s: &Attached, sf: &SubscriptionFilter) -> bool {
        if s.shared.subscriptions.lock().remove(sf).is_none() {
            return false;
        }
        self.0.router.unsubscribe(sf, s.session);
        tracing::debug!(topic = %sf, "unsubscribed");
        self.0
            .events
            .emit(crate::events::BusEvent::SessionUnsubscribed {
                client_id: s.outbox.client_id(),
                filter: sf,
            });
        Metrics::dec(&self.0.metrics.subscriptions);
        if s.outbox.is_stored() {
            crate::store::submit(
                self.0.store.as_ref(),
                StoreOp::SubscriptionDelete {
                    session: s.session,
                    filter: sf.clone(),
                },
            );
        }
        true
    }

    /// Open connections per namespace label (one per protocol family), for `$SYS` and metrics.
    pub fn connections_by_namespace(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self
            .0
            .connections_by_ns
            .lock()
            .iter()
            .map(|(k, n)| (*k, *n))
            .collect();
        v.sort_unstable();
        v
    }

    /// Ends a connection that closed before it connected (refused, timed out in its handshake,
    /// malformed first packet), which has no session to report: counts its close reason and
    /// writes its close log line, as [`Attachment::finish`](crate::Attachment::finish) does for
    /// a connected one.
    pub fn connection_refused(&self, reason: &CloseReason) {
        self.0.metrics.count_close(reason);
        crate::attachment::log_close(reason);
    }

    /// The held `$delayed/` messages and their settings.
    pub fn delayed(&self) -> &crate::delayed::Delayed {
        &self.0.delayed
    }

    /// Publishes the delayed messages due at `now_ms` (wall clock, ms since the epoch); the
    /// scheduler task's step.
    pub fn publish_due_delayed(&self, now_ms: u64) -> usize {
        let due = self.0.delayed.take_due(now_ms);
        for r in &due {
            match crate::delayed::message_of(r) {
                Some(msg) => {
                    self.publish(msg);
                }
                None => tracing::warn!(topic = r.topic, "delayed message with a bad topic dropped"),
            }
            self.0.delayed.published(r.id);
        }
        due.len()
    }

    /// Removes the retained messages whose time is up at `now` (the `[retainer]` clear task).
    pub fn clear_expired_retained(&self, now: std::time::Instant) -> usize {
        let gone = self.0.retain.clear_expired(now);
        for _ in &gone {
            Metrics::dec(&self.0.metrics.retained);
            Metrics::inc(&self.0.metrics.messages_expired);
        }
        if self.0.store.is_persistent() {
            for (topic, _) in &gone {
                let op = StoreOp::RetainDelete {
                    topic: topic.as_str().to_owned(),
                };
                crate::store::submit(self.0.store.as_ref(), op);
            }
        }
        gone.len()
    }

    /// Reports a successful connect: counts it and publishes the `$SYS` presence event
    /// ([`Attachment::report_connected`](crate::Attachment::report_connected)).
    pub(crate) fn client_connected(&self, info: &ClientInfo) {
        Metrics::inc(&self.0.metrics.connections);
        *self
            .0
            .connections_by_ns
            .lock()
            .entry(info.namespace.0)
            .or_insert(0) += 1;
        if self.0.config.sys_client_connected {
            crate::sys::publish_connected(self, info);
        }
        self.0
            .events
            .emit(crate::events::BusEvent::ClientConnected(info));
    }

    /// Reports the end of a connection that had connected (through
    /// [`Attachment::finish`](crate::Attachment::finish)): the close is counted under its reason
    /// and logged here, once, for every protocol.
    pub(crate) fn client_disconnected(&self, info: &ClientInfo, reason: &CloseReason) {
        self.0.metrics.count_close(reason);
        crate::attachment::log_close(reason);
        Metrics::dec(&self.0.metrics.connections);
        if let Some(n) = self.0.connections_by_ns.lock().get_mut(info.namespace.0) {
            *n = n.saturating_sub(1);
        }
        if self.0.config.sys_client_disconnected {
            crate::sys::publish_disconnected(self, info, reason);
        }
        self.0
            .events
            .emit(crate::events::BusEvent::ClientDisconnected { info, reason });
    }
}

#[cfg(test)]
mod tests;
