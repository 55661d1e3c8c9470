//! Which nodes are in the cluster: each node says who it is every [`HEARTBEAT`] on
//! `sy.<name>.nodes`, answers "is this name taken?" on `sy.<name>.node.<node>`, and keeps the
//! last word of every other node.
//!
//! Owns: [`NodeDirectory`] and the heartbeat and name-check exchanges.
//! Must not know: the admin API (the binary turns [`NodeInfo`] into its JSON), any protocol.

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_bus::BusHandle;

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node not heard from for this long is shown as stopped.
pub const STALE: Duration = Duration::from_secs(3 * 2 + 1);
/// A stopped node is forgotten after this long.
const FORGET: Duration = Duration::from_secs(600);

/// What a node says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `node.name`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Connections open on it.
    pub connections: u64,
    /// Whether it was heard from within [`STALE`] (always true for this node).
    pub running: bool,
}

impl NodeInfo {
    fn encode(&self) -> Bytes {
        // name \n version \n uptime \n connections: small, and every field is ours.
        Bytes::from(format!(
            "{}\n{}\n{}\n{}",
            self.name, self.version, self.uptime_ms, self.connections
        ))
    }

    fn decode(b: &[u8]) -> Option<NodeInfo> {
        let s = std::str::from_utf8(b).ok()?;
        let mut it = s.split('\n');
        let name = it.next()?.to_owned();
        let version = it.next()?.to_owned();
        let uptime_ms = it.next()?.parse().ok()?;
        let connections = it.next()?.parse().ok()?;
        if name.is_empty() {
            return None;
        }
        Some(NodeInfo {
            name,
            version,
            uptime_ms,
            connections,
            running: true,
        })
    }
}

/// The other nodes, as last heard.
#[derive(Debug, Default)]
pub struct NodeDirectory {
    peers: Mutex<BTreeMap<String, (Instant, NodeInfo)>>,
}

impl NodeDirectory {
    /// Every other node heard from in the last ten minutes, by name, with `running` telling
    /// whether it was heard from recently.
    pub fn peers(&self) -> Vec<NodeInfo> {
        let now = Instant::now();
        let mut peers = self.peers.lock();
        peers.retain(|_, (at, _)| now.duration_since(*at) < FORGET);
        peers
            .values()
            .map(|(at, info)| NodeInfo {
                running: now.duration_since(*at) < STALE,
                ..info.clone()
            })
            .collect()
    }

    fn heard(&self, info: NodeInfo) {
        self.peers
            .lock()
            .insert(info.name.clone(), (Instant::now(), info));
    }
}

/// This node's own info, now.
pub fn own_info(name: &str, version: &str, bus: &BusHandle) -> NodeInfo {
    NodeInfo {
        name: name.to_owned(),
        version: version.to_owned(),
        uptime_ms: u64::try_from(bus.uptime().as_millis()).unwrap_or(u64::MAX),
        connections: switchyard_bus::Metrics::get(&bus.metrics().connections),
        running: true,
    }
}

/// The subject a node answers its name on.
pub fn name_subject(prefix: &str, node: &str) -> String {
    let mut s = String::from(prefix);
    s.push('.');
    crate::subject::encode_level(node, &mut s);
    s
}

/// Whether another live node answers to `node` (asked only once NATS is connected; `None`
/// when it could not be asked).
pub async fn name_taken(client: &async_nats::Client, prefix: &str, node: &str) -> Option<bool> {
    let ask = client.request(name_subject(prefix, node), Bytes::new());
    match tokio::time::timeout(Duration::from_secs(2), ask).await {
        Ok(Ok(_)) => Some(true),
        // No responders (NATS says so at once) or nobody answered in time.
        Ok(Err(e)) if e.kind() == async_nats::client::RequestErrorKind::NoResponders => Some(false),
        Ok(Err(e)) if e.kind() == async_nats::client::RequestErrorKind::TimedOut => Some(false),
        Ok(Err(_)) => None,
        Err(_) => Some(false),
    }
}

/// Answers name checks for this node.
pub async fn answer_name(client: async_nats::Client, mut sub: async_nats::Subscriber) {
    while let Some(m) = sub.next().await {
        if let Some(reply) = m.reply {
            let _ = client.publish(reply, Bytes::from_static(b"taken")).await;
        }
    }
}

/// Says this node is alive every [`HEARTBEAT`].
pub async fn heartbeat(
    client: async_nats::Client,
    subject: String,
    name: String,
    version: String,
    bus: BusHandle,
) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let info = own_info(&name, &version, &bus);
        if let Err(e) = client.publish(subject.clone(), info.encode()).await {
            tracing::debug!(error = %e, "cluster: heartbeat not sent");
        }
    }
}

/// Keeps the directory from other nodes' heartbeats.
pub async fn listen(mut sub: async_nats::Subscriber, dir: Arc<NodeDirectory>, own: String) {
    while let Some(m) = sub.next().await {
        match NodeInfo::decode(&m.payload) {
            Some(info) if info.name != own => dir.heard(info),
            Some(_) => {}
            None => tracing::warn!("cluster: malformed heartbeat, ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_round_trip_and_bad_input() {
        let info = NodeInfo {
            name: "a@127.0.0.1".into(),
            version: "0.1.0".into(),
            uptime_ms: 1234,
            connections: 7,
            running: true,
        };
        assert_eq!(NodeInfo::decode(&info.encode()), Some(info));
        for bad in [
            &b""[..],
            b"a",
            b"a\nv\nx\n1",
            b"\nv\n1\n1",
            b"\xff\nv\n1\n1",
        ] {
            assert_eq!(NodeInfo::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn directory_marks_and_forgets() {
        let d = NodeDirectory::default();
        let info = |n: &str| NodeInfo {
            name: n.into(),
            version: "v".into(),
            uptime_ms: 1,
            connections: 0,
            running: true,
        };
        d.heard(info("b"));
        d.heard(info("a"));
        let names: Vec<_> = d.peers().into_iter().map(|i| (i.name, i.running)).collect();
        assert_eq!(names, vec![("a".into(), true), ("b".into(), true)]);
        // Heard long ago: shown stopped.
        let old = Instant::now().checked_sub(STALE + Duration::from_secs(1));
        if let Some(old) = old {
            d.peers.lock().insert("c".into(), (old, info("c")));
            let c = d.peers().into_iter().find(|i| i.name == "c");
            assert_eq!(c.map(|i| i.running), Some(false));
        }
    }
}
