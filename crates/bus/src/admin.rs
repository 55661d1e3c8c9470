//! What operators see and do through the admin API: every session of every namespace (online
//! or offline) with its counters, its subscriptions, and subscribing or unsubscribing on a
//! client's behalf. Protocol-neutral: the protocol name is whatever the gateway reported.

use crate::delivery::SubOptions;
use crate::error::BusError;
use crate::handle::BusHandle;
use crate::registry::{Attached, ClientInfo, Entry, Namespace};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;
use switchyard_core::{ClientId, SessionId, SubscriptionFilter};

/// One client as the admin API lists it.
#[derive(Debug, Clone)]
pub struct ClientSummary {
    /// Identity and connection facts as the gateway reported them.
    pub info: Arc<ClientInfo>,
    /// Whether a connection currently owns the session.
    pub connected: bool,
    /// The session.
    pub session: SessionId,
    /// Subscriptions held.
    pub subscriptions: usize,
    /// Outgoing QoS 1/2 messages awaiting acknowledgement.
    pub inflight: usize,
    /// Messages queued.
    pub mqueue_len: usize,
    /// Messages dropped from the queue so far.
    pub mqueue_dropped: u64,
    /// Session expiry in seconds.
    pub expiry_secs: u64,
    /// When the session was created.
    pub created_at: SystemTime,
    /// When its last connection ended (None while connected).
    pub disconnected_at: Option<SystemTime>,
}

fn summary(info: &Arc<ClientInfo>, a: &Attached, connected: bool) -> ClientSummary {
    ClientSummary {
        info: info.clone(),
        connected,
        session: a.session,
        subscriptions: a.shared.subscriptions.lock().len(),
        inflight: a.shared.inflight.load(Ordering::Relaxed),
        mqueue_len: a.outbox.len(),
        mqueue_dropped: a.outbox.dropped(),
        expiry_secs: a.expiry.as_secs(),
        created_at: a.created_at,
        disconnected_at: *a.shared.disconnected_at.lock(),
    }
}

fn entry_summary(e: &Entry) -> Option<ClientSummary> {
    match e {
        Entry::Online {
            info,
            attached: Some(a),
            ..
        } => Some(summary(info, a, true)),
        Entry::Online { attached: None, .. } => None,
        Entry::Offline { info, session, .. } => Some(summary(info, &session.attached(), false)),
    }
}

fn entry_parts(e: &Entry) -> Option<Attached> {
    match e {
        Entry::Online { attached, .. } => attached.clone(),
        Entry::Offline { session, .. } => Some(session.attached()),
    }
}

impl BusHandle {
    /// Every session of every namespace, online and offline (sessions still opening are left
    /// out until their CONNACK).
    pub fn clients(&self) -> Vec<ClientSummary> {
        let reg = self.0.registry.lock();
        reg.entries.values().filter_map(entry_summary).collect()
    }

    /// One client.
    pub fn client(&self, ns: Namespace, id: &ClientId) -> Option<ClientSummary> {
        let reg = self.0.registry.lock();
        reg.entries.get(&(ns, id.clone())).and_then(entry_summary)
    }

    /// A client id in any namespace.
    pub fn find_client(&self, id: &ClientId) -> Vec<ClientSummary> {
        let reg = self.0.registry.lock();
        reg.entries
            .iter()
            .filter(|((_, cid), _)| cid == id)
            .filter_map(|(_, e)| entry_summary(e))
            .collect()
    }

    fn parts(&self, ns: Namespace, id: &ClientId) -> Option<Attached> {
        let reg = self.0.registry.lock();
        reg.entries.get(&(ns, id.clone())).and_then(entry_parts)
    }

    /// A client's subscriptions (including those made on its behalf).
    pub fn client_subscriptions(
        &self,
        ns: Namespace,
        id: &ClientId,
    ) -> Option<Vec<(SubscriptionFilter, SubOptions)>> {
        let parts = self.parts(ns, id)?;
        let subs = parts.shared.subscriptions.lock();
        Some(subs.iter().map(|(f, o)| (f.clone(), *o)).collect())
    }

    /// Subscribes a client, online or offline, as if it had subscribed itself.
    pub fn subscribe_for(
        &self,
        ns: Namespace,
        id: &ClientId,
        sf: SubscriptionFilter,
        opts: SubOptions,
    ) -> Result<(), BusError> {
        let parts = self.parts(ns, id).ok_or(BusError::NotFound)?;
        self.subscribe_parts(&parts, sf, opts).map(|_| ())
    }

    /// Unsubscribes a client; Ok(false) when it did not hold the filter.
    pub fn unsubscribe_for(
        &self,
        ns: Namespace,
        id: &ClientId,
        sf: &SubscriptionFilter,
    ) -> Result<bool, BusError> {
        let parts = self.parts(ns, id).ok_or(BusError::NotFound)?;
        Ok(self.unsubscribe_parts(&parts, sf))
    }

    /// Every subscription of every session.
    pub fn all_subscriptions(&self) -> Vec<(Namespace, ClientId, SubscriptionFilter, SubOptions)> {
        let reg = self.0.registry.lock();
        let mut out = Vec::new();
        for ((ns, id), e) in &reg.entries {
            if let Some(parts) = entry_parts(e) {
                for (f, o) in parts.shared.subscriptions.lock().iter() {
                    out.push((*ns, id.clone(), f.clone(), *o));
                }
            }
        }
        out
    }
}
