//! The seam to other nodes: what the bus tells a cluster link, and how messages from other
//! nodes come back in.
//!
//! Owns: the [`Peer`] trait the bus calls (which topic filters this node has subscribers for,
//! and each message published here), and [`BusHandle::publish_remote`](crate::BusHandle) for
//! messages another node published.
//! Must not know: how nodes talk to each other (the cluster crate does: NATS subjects, wire
//! encoding), or any protocol.
//!
//! Why interest is reported per distinct filter, from inside the router's write lock: a node
//! must receive exactly the messages some local subscription may match, so the first
//! subscription on a filter and the removal of the last one must reach the link in the order
//! they happened. The link only queues the change (no I/O under the lock).

use std::sync::Arc;
use switchyard_core::{ClientId, Message, Origin, SessionId};

/// A link to other nodes. Calls come from publishers' and subscribers' tasks and from inside
/// the router's lock: implementations queue and return, they never block or do I/O.
pub trait Peer: Send + Sync + 'static {
    /// Local (non-shared) subscriptions on `filter` started (`present`) or ended: from now on
    /// this node does (or does not) need the messages other nodes publish on matching topics.
    fn interest(&self, filter: &str, present: bool);

    /// Shared group `group` on `filter` got its first local member (`present`) or lost its
    /// last. With a peer, shared groups are cluster-wide: the router leaves them out of local
    /// routing, the peer picks one node among those with members for each message, and that
    /// node delivers it with [`BusHandle::publish_remote_shared`](crate::BusHandle).
    fn shared_interest(&self, group: &str, filter: &str, present: bool);

    /// Whether the peer can deliver to shared groups right now; while it cannot (its link is
    /// down), the router picks local members itself, so local clients keep being served.
    fn routes_shared(&self) -> bool {
        true
    }

    /// A message published on this node (after local routing): send it to the nodes that need
    /// it, and to the cluster's shared groups. Not called for messages that came from another
    /// node.
    fn forward(&self, message: &Arc<Message>);

    /// A client opened a session on this node: a connection or session of the same client id on
    /// another node must end ([`BusHandle::taken_over_elsewhere`](crate::BusHandle) there).
    fn session_opened(&self, _namespace: &str, _client_id: &ClientId) {}
}

/// The session id a message from another node carries as its origin: never allocated here
/// (ids count up from 1), so no local subscription's no-local option ever matches it, while
/// the client id stays visible to logs and rules.
pub const REMOTE_SESSION: SessionId = SessionId(u64::MAX);

/// The origin of a message another node published on behalf of `client_id`.
pub fn remote_origin(client_id: ClientId) -> Origin {
    Origin {
        session: REMOTE_SESSION,
        client_id,
    }
}
