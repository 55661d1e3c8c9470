//! The router: which sessions hold which subscriptions, and for a published topic, which
//! outboxes receive it.
//!
//! One read-mostly trie behind a `RwLock`: publishes take the read lock in the publisher's own
//! task (no router thread, no global mutex on the hot path); subscribe and unsubscribe take the
//! write lock briefly. Overlapping subscriptions of one session are merged into a single
//! delivery at the highest granted QoS with every subscription identifier (MQTT-3.3.5-1,
//! MQTT 5 §3.3.4). Shared groups pick one member per message (MQTT 5 §4.8.2).

use crate::config::SharedStrategy;
use crate::delivery::{Delivery, SubOptions};
use crate::outbox::Outbox;
use crate::trie::Trie;
use parking_lot::RwLock;
use rand::Rng;
use smallvec::SmallVec;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use switchyard_core::{Message, SessionId, SharedGroup, SubscriptionFilter};

/// Where one message goes: an outbox and the delivery for it. Inline up to four, since most
/// messages have few subscribers and this is built for every publish.
pub type Targets = SmallVec<[(Arc<Outbox>, Delivery); 4]>;

/// Direct subscriptions matched, by session, before overlapping ones are merged.
type Direct = SmallVec<[(SessionId, Arc<Outbox>, Delivery); 4]>;

#[derive(Debug, Clone)]
struct Subscriber {
    outbox: Arc<Outbox>,
    opts: SubOptions,
}

#[derive(Debug, Default)]
struct Group {
    members: Vec<(SessionId, Subscriber)>,
    cursor: AtomicUsize,
}

#[derive(Debug, Default)]
struct Leaf {
    direct: HashMap<SessionId, Subscriber>,
    shared: HashMap<SharedGroup, Group>,
}

impl Leaf {
    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.shared.is_empty()
    }
}

/// The subscription table.
pub struct Router {
    trie: RwLock<Trie<Leaf>>,
    strategy: SharedStrategy,
    upgrade_qos: bool,
    /// Told when a filter gets its first subscriber and loses its last (a cluster link).
    peer: std::sync::OnceLock<Arc<dyn crate::peer::Peer>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("strategy", &self.strategy)
            .field("upgrade_qos", &self.upgrade_qos)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// An empty router using `strategy` for shared groups; with `upgrade_qos` deliveries get
    /// the subscription's QoS even when published lower.
    pub fn new(strategy: SharedStrategy, upgrade_qos: bool) -> Self {
        Router {
            trie: RwLock::new(Trie::default()),
            strategy,
            upgrade_qos,
            peer: std::sync::OnceLock::new(),
        }
    }

    /// Reports interest to `peer` from now on, starting with every filter and shared group that
    /// already has subscribers (sessions restored before the link came up), and leaves shared
    /// groups to it: with a peer, one member in the whole cluster gets each message, so the
    /// peer picks the node and [`Router::route_shared`] the member there. Only the first call
    /// counts.
    pub(crate) fn set_peer(&self, peer: Arc<dyn crate::peer::Peer>) {
        let trie = self.trie.write();
        if self.peer.set(peer.clone()).is_ok() {
            trie.for_each_filter(|filter, leaf| {
                if !leaf.direct.is_empty() {
                    peer.interest(filter, true);
                }
                for group in leaf.shared.keys() {
                    peer.shared_interest(group.name(), filter, true);
                }
            });
        }
    }

    /// Adds or replaces a subscription. Returns true when it did not exist before.
    pub fn subscribe(
        &self,
        sf: &SubscriptionFilter,
        outbox: Arc<Outbox>,
        opts: SubOptions,
    ) -> bool {
        let session = outbox.session();
        let sub = Subscriber { outbox, opts };
        let mut trie = self.trie.write();
        let leaf = trie.entry(sf.filter.as_str());
        let peer = self.peer.get();
        match &sf.group {
            None => {
                if leaf.direct.is_empty() {
                    if let Some(peer) = peer {
                        peer.interest(sf.filter.as_str(), true);
                    }
                }
                leaf.direct.insert(session, sub).is_none()
            }
            Some(name) => {
                if !leaf.shared.contains_key(name) {
                    if let Some(peer) = peer {
                        peer.shared_interest(name.name(), sf.filter.as_str(), true);
                    }
                }
                let group = leaf.shared.entry(name.clone()).or_default();
                match group.members.iter_mut().find(|(s, _)| *s == session) {
                    Some(existing) => {
                        existing.1 = sub;
                        false
                    }
                    None => {
                        group.members.push((session, sub));
                        true
                    }
                }
            }
        }
    }

    /// Removes a subscription. Returns true when it existed.
    pub fn unsubscribe(&self, sf: &SubscriptionFilter, session: SessionId) -> bool {
        let mut trie = self.trie.write();
        let Some(leaf) = trie.get_mut(sf.filter.as_str()) else {
            return false;
        };
        let peer = self.peer.get();
        let removed = match &sf.group {
            None => {
                let removed = leaf.direct.remove(&session).is_some();
                if removed && leaf.direct.is_empty() {
                    if let Some(peer) = peer {
                        peer.interest(sf.filter.as_str(), false);
                    }
                }
                removed
            }
            Some(g) => match leaf.shared.get_mut(g) {
                Some(group) => {
                    let before = group.members.len();
                    group.members.retain(|(s, _)| *s != session);
                    let removed = group.members.len() != before;
                    if group.members.is_empty() {
                        leaf.shared.remove(g);
                        if let Some(peer) = peer {
                            peer.shared_interest(g.name(), sf.filter.as_str(), false);
                        }
                    }
                    removed
                }
                None => false,
            },
        };
        trie.prune(sf.filter.as_str(), Leaf::is_empty);
        removed
    }

    /// Every outbox that must receive `msg`, with the per-session delivery decisions.
    pub fn route(&self, msg: &Arc<Message>) -> Targets {
        let origin = msg.origin.as_ref().map(|o| o.session);
        let mut direct: Direct = SmallVec::new();
        let mut shared: Targets = SmallVec::new();
        // Clustered, shared groups are the peer's to pick across nodes (`route_shared`), unless
        // its link is down. Asked only when a matching filter has a group.
        let mut groups_here: Option<bool> = None;
        let mut here = || {
            *groups_here.get_or_insert_with(|| self.peer.get().map_or(true, |p| !p.routes_shared()))
        };
        {
            let trie = self.trie.read();
            trie.for_each_match(msg.topic.as_str(), |leaf| {
                for (session, sub) in &leaf.direct {
                    if sub.opts.no_local && origin == Some(*session) {
                        continue;
                    }
                    direct.push((
                        *session,
                        sub.outbox.clone(),
                        delivery_for(msg, &sub.opts, self.upgrade_qos),
                    ));
                }
                if leaf.shared.is_empty() || !here() {
                    return;
                }
                for group in leaf.shared.values() {
                    if let Some(sub) = self.pick(group, msg) {
                        shared.push((
                            sub.outbox.clone(),
                            delivery_for(msg, &sub.opts, self.upgrade_qos),
                        ));
                    }
                }
            });
        }
        let mut out = merge_overlapping(direct);
        out.extend(shared);
        out
    }

    /// The member of shared group `group` on `filter` that gets `msg` here (the cluster picked
    /// this node for it), if the group still has members and the topic matches (MQTT's rules,
    /// which the cluster's subject match only approximates: `$`-topics and wildcards).
    pub fn route_shared(
        &self,
        msg: &Arc<Message>,
        group: &str,
        filter: &str,
    ) -> Option<(Arc<Outbox>, Delivery)> {
        let trie = self.trie.read();
        let leaf = trie.get(filter)?;
        // The filter must match the topic by MQTT's rules: it does when its leaf is among the
        // topic's matches.
        let mut matches = false;
        trie.for_each_match(msg.topic.as_str(), |l| matches |= std::ptr::eq(l, leaf));
        if !matches {
            return None;
        }
        let (_, g) = leaf.shared.iter().find(|(name, _)| name.name() == group)?;
        let sub = self.pick(g, msg)?;
        Some((
            sub.outbox.clone(),
            delivery_for(msg, &sub.opts, self.upgrade_qos),
        ))
    }

    fn pick<'a>(&self, group: &'a Group, msg: &Message) -> Option<&'a Subscriber> {
        let n = group.members.len();
        if n == 0 {
            return None;
        }
        let start = match self.strategy {
            SharedStrategy::RoundRobin => group.cursor.fetch_add(1, Ordering::Relaxed) % n,
            SharedStrategy::Random => rand::thread_rng().gen_range(0..n),
            SharedStrategy::Sticky => group.cursor.load(Ordering::Relaxed) % n,
            SharedStrategy::HashClientId => {
                let mut h = DefaultHasher::new();
                msg.origin
                    .as_ref()
                    .map(|o| o.client_id.as_str())
                    .hash(&mut h);
                usize::try_from(h.finish() % n as u64).unwrap_or(0)
            }
        };
        // Prefer a member with a live connection; an offline persistent member still queues if
        // nobody is online, so the message is not lost.
        let chosen = (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| group.members[i].1.outbox.is_online())
            .unwrap_or(start);
        if self.strategy == SharedStrategy::Sticky {
            group.cursor.store(chosen, Ordering::Relaxed);
        }
        group.members.get(chosen).map(|(_, s)| s)
    }

    /// Number of distinct (session, filter) subscriptions, for tests and stats.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.trie.read().is_empty()
    }
}

fn delivery_for(msg: &Arc<Message>, opts: &SubOptions, upgrade: bool) -> Delivery {
    Delivery {
        message: msg.clone(),
        // MQTT-3.8.4-6: the lower of published and granted, unless configured to upgrade.
        qos: if upgrade {
            opts.qos
        } else {
            msg.qos.min(opts.qos)
        },
        // MQTT-3.3.1-9 (3.1.1) / MQTT 5 retain-as-published: live deliveries clear retain.
        retain: opts.retain_as_published && msg.retain,
        subscription_ids: opts.subscription_id.into_iter().collect(),
        message_id: 0,
        seq: 0,
    }
}

fn merge_overlapping(mut direct: Direct) -> Targets {
    direct.sort_unstable_by_key(|(s, _, _)| *s);
    let mut out = Targets::with_capacity(direct.len());
    let mut last: Option<SessionId> = None;
    for (session, outbox, d) in direct {
        match out.last_mut() {
            Some((_, prev)) if last == Some(session) => {
                prev.qos = prev.qos.max(d.qos);
                prev.retain |= d.retain;
                prev.subscription_ids.extend(d.subscription_ids);
            }
            _ => out.push((outbox, d)),
        }
        last = Some(session);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use switchyard_core::{ClientId, Origin, QoS, TopicName};

    fn outbox(id: u64) -> Arc<Outbox> {
        let o = Arc::new(Outbox::new(
            SessionId(id),
            ClientId::from("c"),
            0,
            true,
            Arc::new(Metrics::default()),
        ));
        o.set_online(true);
        o
    }
    fn sf(s: &str) -> SubscriptionFilter {
        SubscriptionFilter::parse(s, 0).unwrap_or_else(|e| panic!("{e}"))
    }
    fn msg(topic: &str, qos: QoS) -> Arc<Message> {
        let mut m = Message::new(
            TopicName::new(topic).unwrap_or_else(|e| panic!("{e}")),
            "p",
            qos,
            true,
        );
        m.origin = Some(Origin {
            session: SessionId(1),
            client_id: "pub".into(),
        });
        Arc::new(m)
    }
    fn opts(qos: QoS, id: Option<u32>) -> SubOptions {
        SubOptions {
            qos,
            subscription_id: id,
            ..Default::default()
        }
    }

    #[test]
    fn overlapping_merge_to_max_qos_and_all_ids() {
        let r = Router::new(SharedStrategy::RoundRobin, false);
        let o = outbox(7);
        assert!(r.subscribe(&sf("a/+"), o.clone(), opts(QoS::AtMostOnce, Some(1))));
        assert!(r.subscribe(&sf("a/#"), o.clone(), opts(QoS::ExactlyOnce, Some(2))));
        assert!(!r.subscribe(&sf("a/#"), o.clone(), opts(QoS::AtLeastOnce, Some(2))));
        let out = r.route(&msg("a/b", QoS::ExactlyOnce));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.qos, QoS::AtLeastOnce);
        let mut ids = out[0].1.subscription_ids.clone();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2]);
        assert!(!out[0].1.retain, "live delivery clears retain");
    }

    #[test]
    fn no_local_and_shared_round_robin() {
        let r = Router::new(SharedStrategy::RoundRobin, false);
        let publisher = outbox(1);
        r.subscribe(
            &sf("t"),
            publisher,
            SubOptions {
                no_local: true,
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        );
        assert!(r.route(&msg("t", QoS::AtLeastOnce)).is_empty());
        let (a, b) = (outbox(2), outbox(3));
        r.subscribe(&sf("$share/g/t"), a.clone(), opts(QoS::AtLeastOnce, None));
        r.subscribe(&sf("$share/g/t"), b.clone(), opts(QoS::AtLeastOnce, None));
        let mut counts = HashMap::new();
        for _ in 0..10 {
            for (o, _) in r.route(&msg("t", QoS::AtLeastOnce)) {
                *counts.entry(o.session()).or_insert(0) += 1;
            }
        }
        assert_eq!(counts.get(&SessionId(2)), Some(&5));
        assert_eq!(counts.get(&SessionId(3)), Some(&5));
        b.set_online(false);
        let out = r.route(&msg("t", QoS::AtLeastOnce));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.session(), SessionId(2), "online member preferred");
        assert!(r.unsubscribe(&sf("$share/g/t"), SessionId(2)));
        assert!(r.unsubscribe(&sf("$share/g/t"), SessionId(3)));
        assert!(r.unsubscribe(&sf("t"), SessionId(1)));
        assert!(!r.unsubscribe(&sf("t"), SessionId(1)));
        assert!(r.is_empty());
    }

    #[test]
    fn sticky_and_hash_are_stable() {
        for strategy in [SharedStrategy::Sticky, SharedStrategy::HashClientId] {
            let r = Router::new(strategy, false);
            for i in 2..6 {
                r.subscribe(&sf("$queue/t"), outbox(i), opts(QoS::AtMostOnce, None));
            }
            let first = r.route(&msg("t", QoS::AtMostOnce))[0].0.session();
            for _ in 0..20 {
                assert_eq!(r.route(&msg("t", QoS::AtMostOnce))[0].0.session(), first);
            }
        }
    }
}
