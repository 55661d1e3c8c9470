//! Where durable state goes. The bus reports every change a restart must survive through
//! [`SessionStore`]; the in-memory default keeps nothing beyond the process, and the SQLite
//! implementation of the durability issue fills the same trait.

use std::sync::Arc;
use switchyard_core::{ClientId, Message, SessionId, SubscriptionFilter};

use crate::delivery::SubOptions;

/// Durable state changes, in the order the bus makes them.
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// A retained message was set (non-empty payload).
    fn retained_set(&self, msg: &Arc<Message>);
    /// The retained message on a topic was cleared.
    fn retained_cleared(&self, topic: &str);
    /// A persistent session gained or changed a subscription.
    fn subscription_saved(
        &self,
        session: SessionId,
        client: &ClientId,
        filter: &SubscriptionFilter,
        opts: &SubOptions,
    );
    /// A persistent session dropped a subscription.
    fn subscription_removed(&self, session: SessionId, filter: &SubscriptionFilter);
    /// A session ended for good (clean start, expiry, or a clean session's disconnect).
    fn session_discarded(&self, session: SessionId);
}

/// Keeps nothing: state lives only in memory, as the foundation specifies until the durability
/// issue lands.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl SessionStore for MemoryStore {
    fn retained_set(&self, _msg: &Arc<Message>) {}
    fn retained_cleared(&self, _topic: &str) {}
    fn subscription_saved(
        &self,
        _: SessionId,
        _: &ClientId,
        _: &SubscriptionFilter,
        _: &SubOptions,
    ) {
    }
    fn subscription_removed(&self, _: SessionId, _: &SubscriptionFilter) {}
    fn session_discarded(&self, _: SessionId) {}
}
