//! `[cluster]`: joining other nodes over NATS (docs/cluster.md).
//!
//! Must not know: NATS or sockets; the binary hands these values to `switchyard-cluster`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[cluster]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Whether this node joins a cluster. Default false: a single node.
    pub enable: bool,
    /// Nodes with the same name over the same NATS servers form one cluster. Default
    /// "switchyard".
    pub name: String,
    /// Copies JetStream keeps of replicated state, capped at the number of NATS servers.
    /// Default 3.
    pub replicas: u32,
    /// `[cluster.nats]`
    pub nats: ClusterNatsConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enable: false,
            name: "switchyard".to_owned(),
            replicas: 3,
            nats: ClusterNatsConfig::default(),
        }
    }
}

/// `[cluster.nats]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterNatsConfig {
    /// NATS servers to connect to (any of them; the client fails over between them).
    /// Default ["nats://127.0.0.1:4222"].
    pub servers: Vec<String>,
    /// User name for NATS, with `password`. Default "" (none).
    pub user: String,
    /// Password for NATS. Default "" (none).
    pub password: String,
    /// Token for NATS. Default "" (none).
    pub token: String,
    /// A NATS credentials file (JWT + NKey). Default "" (none).
    pub creds_file: PathBuf,
    /// `[cluster.nats.tls]`
    pub tls: ClusterNatsTlsConfig,
}

impl Default for ClusterNatsConfig {
    fn default() -> Self {
        ClusterNatsConfig {
            servers: vec!["nats://127.0.0.1:4222".to_owned()],
            user: String::new(),
            password: String::new(),
            token: String::new(),
            creds_file: PathBuf::new(),
            tls: ClusterNatsTlsConfig::default(),
        }
    }
}

/// `[cluster.nats.tls]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterNatsTlsConfig {
    /// Whether to require TLS to the NATS servers. Default false.
    pub enable: bool,
    /// CA certificates (PEM) to verify the servers by. Default "" (the system's roots).
    pub cacertfile: PathBuf,
    /// Client certificate (PEM), when the servers ask for one. Default "" (none).
    pub certfile: PathBuf,
    /// Client key (PEM). Default "" (none).
    pub keyfile: PathBuf,
}
