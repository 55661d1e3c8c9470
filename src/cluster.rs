//! `[cluster]` → the cluster link (`switchyard-cluster`), started before any gateway so the
//! link hears every filter from the first subscription (and those of restored sessions).

use switchyard_admin::{ClusterView, PeerNode};
use switchyard_bus::BusHandle;
use switchyard_cluster::{ClusterLink, ClusterOptions, LinkView, NatsTls};
use switchyard_config::Config;

/// Messages queued for NATS before new ones are dropped and counted: about a second of a busy
/// node's traffic, so a short NATS stall loses nothing and a long one costs bounded memory.
const FORWARD_QUEUE: usize = 65_536;

/// The link, when `cluster.enable`; `None` for a single node.
pub async fn start(config: &Config, bus: &BusHandle) -> anyhow::Result<Option<ClusterLink>> {
    let c = &config.cluster;
    if !c.enable {
        return Ok(None);
    }
    let path = |p: &std::path::Path| (!p.as_os_str().is_empty()).then(|| p.to_path_buf());
    let opts = ClusterOptions {
        name: c.name.clone(),
        node: config.node.name.clone(),
        servers: c.nats.servers.clone(),
        user: c.nats.user.clone(),
        password: c.nats.password.clone(),
        token: c.nats.token.clone(),
        creds_file: path(&c.nats.creds_file),
        tls: NatsTls {
            enable: c.nats.tls.enable,
            cacertfile: path(&c.nats.tls.cacertfile),
            certfile: path(&c.nats.tls.certfile),
            keyfile: path(&c.nats.tls.keyfile),
        },
        forward_queue: FORWARD_QUEUE,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let link = ClusterLink::start(opts, bus.clone()).await?;
    Ok(Some(link))
}

/// The link as the admin API shows it (`/api/v5/nodes`, `/status`).
pub struct AdminView(pub LinkView);

impl ClusterView for AdminView {
    fn peers(&self) -> Vec<PeerNode> {
        self.0
            .peers()
            .into_iter()
            .map(|n| PeerNode {
                name: n.name,
                running: n.running,
                version: n.version,
                uptime_ms: n.uptime_ms,
                connections: n.connections,
            })
            .collect()
    }

    fn connected(&self) -> bool {
        self.0.connected()
    }
}
