//! `[storage]`: where and how durably persistent sessions, their queues and retained messages
//! are kept (the SQLite store under `node.data_dir`).

use serde::{Deserialize, Serialize};

use crate::units::Duration;

/// When an acknowledgement may be sent for state that must survive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityMode {
    /// fsync before PUBACK/PUBREC/PUBCOMP/SUBACK/UNSUBACK/CONNACK of persistent state.
    #[default]
    Strict,
    /// fsync before those acks, but commits are grouped for up to `flush_interval`.
    Batched,
    /// No fsync: survives a process crash, not a power loss.
    Relaxed,
    /// No store: persistent sessions and retained messages live in memory only.
    Memory,
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// strict | batched | relaxed | memory. Default strict.
    pub durability: DurabilityMode,
    /// Longest wait for a grouped commit in `batched` mode. Default "10ms".
    pub flush_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            durability: DurabilityMode::Strict,
            flush_interval: Duration::from_millis(10),
        }
    }
}
