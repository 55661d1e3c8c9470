//! The cluster link: what makes several Switchyard nodes one broker, over NATS.
//!
//! Owns: the MQTT topic ↔ NATS subject encoding ([`subject`]), the encoding of a message
//! between nodes ([`wire`]), and [`ClusterLink`], which implements the bus's
//! [`Peer`](switchyard_bus::Peer) seam: it subscribes on NATS for each topic filter this node
//! has subscribers for (so a message crosses only to nodes that need it), forwards messages
//! published here, and hands other nodes' messages to
//! [`BusHandle::publish_remote`](switchyard_bus::BusHandle::publish_remote).
//! Must not know: any protocol (gateways reach the cluster only through the bus), the
//! configuration file (the binary builds [`ClusterOptions`]).
//!
//! What this version does and does not do is in docs/cluster.md: routing over core NATS (at most
//! once between nodes) and retained messages on every live node; sessions, QoS ≥ 1 replication
//! and shared groups across nodes are not clustered yet.

#[doc(hidden)]
pub mod fuzzing;
mod link;
pub mod nodes;
pub mod subject;
pub mod wire;

pub use link::{ClusterError, ClusterLink, ClusterOptions, ClusterStats, LinkView, NatsTls};
pub use nodes::{NodeDirectory, NodeInfo};
