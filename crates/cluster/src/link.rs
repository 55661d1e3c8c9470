//! [`ClusterLink`]: this node's connection to the cluster over NATS.
//!
//! Owns: the NATS connection, one NATS subscription per subject this node's filters need
//! (reference-counted, since `a/#` and `a` share the subject of `a`), the queue of messages to
//! forward, and the tasks that hand other nodes' messages to the bus.
//! Must not know: any protocol, the configuration file.
//!
//! Two subject trees per cluster: `sy.<name>.m.<topic>` carries ordinary messages and reaches
//! only nodes whose filters match (NATS propagates each node's interest, and a node that dies
//! takes its interest with it: no stale routes); `sy.<name>.r.<topic>` carries retained
//! messages, which every node subscribes to as a whole so each keeps the retained set (and
//! routes them to its own subscribers from there: a retained message is sent on that tree only,
//! never twice). The connection is made with `no_echo`, so a node never receives its own
//! messages back: local subscribers got them when they were published.
//!
//! Shared subscriptions are cluster-wide: each message also goes to `sy.<name>.s.<topic>`, on a
//! second NATS connection made without `no_echo` (the publishing node's own members compete
//! too); a node with members of `$share/<group>/<filter>` subscribes to the filter's subjects
//! there in the NATS queue group named after (group, filter), so NATS hands each message to one
//! node per group, and that node picks one of its members
//! ([`BusHandle::publish_remote_shared`]).
//!
//! Client ids have one owner in the cluster: a node that opens a session announces it on
//! `sy.<name>.takeover` (namespace, a NUL, the client id), and every other node closes its
//! connection of that id as taken over (MQTT 5 0x8E) and drops its session of that id.
//!
//! NATS delivers one copy per matching subscription, and a topic can match several of a node's
//! subjects, so every subscription feeds one queue read by one task, which keeps the first copy
//! of each message ([`wire::Dedup`]). Each subscription's order is NATS's order, and a topic's
//! messages all match the same subscriptions, so the first copies of one topic's messages come
//! out in the order they were published (MQTT 5 §4.6 asks for order per topic).

use crate::nodes::{self, NodeDirectory};
use crate::subject;
use crate::wire;
use bytes::Bytes;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use switchyard_bus::{BusHandle, Peer};
use switchyard_core::{ClientId, Message, TopicName};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How the node reaches the cluster (built by the binary from `[cluster]`).
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The cluster's name: nodes with the same name on the same NATS servers form one cluster.
    pub name: String,
    /// This node's name, as NATS shows the connection.
    pub node: String,
    /// NATS server URLs.
    pub servers: Vec<String>,
    /// User and password, when both are non-empty.
    pub user: String,
    /// See `user`.
    pub password: String,
    /// Token, when non-empty.
    pub token: String,
    /// Credentials file, when set.
    pub creds_file: Option<PathBuf>,
    /// TLS to the NATS servers.
    pub tls: NatsTls,
    /// Messages waiting to be forwarded before new ones are dropped (and counted).
    pub forward_queue: usize,
    /// This node's version, as other nodes list it.
    pub version: String,
}

/// TLS to the NATS servers.
#[derive(Debug, Clone, Default)]
pub struct NatsTls {
    /// Require TLS.
    pub enable: bool,
    /// CA certificates (PEM).
    pub cacertfile: Option<PathBuf>,
    /// Client certificate and key (PEM).
    pub certfile: Option<PathBuf>,
    /// See `certfile`.
    pub keyfile: Option<PathBuf>,
}

/// Why the link could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A server URL that does not parse.
    #[error("cluster.nats.servers: {url}: {reason}")]
    Server {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No servers configured.
    #[error("cluster.nats.servers is empty")]
    NoServers,
    /// A credentials or TLS file that cannot be read.
    #[error("{what} {path}: {reason}")]
    File {
        /// Which setting.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        reason: String,
    },
    /// The NATS client refused the options.
    #[error("NATS: {0}")]
    Connect(String),
    /// Another live node of the cluster has this node's name.
    #[error("node.name {node} is already used by a running node of cluster {cluster}")]
    NameTaken {
        /// The name.
        node: String,
        /// The cluster.
        cluster: String,
    },
}

/// Counters of the link, for the API and logs.
#[derive(Debug, Default)]
pub struct ClusterStats {
    /// Messages sent to other nodes.
    pub forwarded: AtomicU64,
    /// Messages received from other nodes and handed to the bus.
    pub received: AtomicU64,
    /// Messages not forwarded because the queue was full (NATS slow or away).
    pub dropped_queue_full: AtomicU64,
    /// Messages NATS refused to take (connection closed).
    pub dropped_publish_failed: AtomicU64,
    /// Envelopes from other nodes that did not decode.
    pub malformed: AtomicU64,
    /// Second copies of a message (one per extra matching subscription), dropped.
    pub duplicates: AtomicU64,
}

enum Interest {
    Add(String),
    Remove(String),
    /// (group, filter)
    AddShared(String, String),
    RemoveShared(String, String),
}

/// Where a queued message goes: the main connection (no echo) or the shared-groups one.
type Outgoing = (bool, String, Bytes);

/// The bus's [`Peer`]: queues, never blocks.
struct Seam {
    interest: mpsc::UnboundedSender<Interest>,
    forward: mpsc::Sender<Outgoing>,
    messages: String,
    retained: String,
    shared: String,
    shared_client: async_nats::Client,
    takeover: String,
    stats: Arc<ClusterStats>,
    /// This node's id in envelopes, new at every start.
    node_id: u64,
    seq: AtomicU64,
}

impl Peer for Seam {
    fn session_opened(&self, namespace: &str, client_id: &ClientId) {
        let mut body = Vec::with_capacity(namespace.len() + 1 + client_id.as_str().len());
        body.extend_from_slice(namespace.as_bytes());
        body.push(0);
        body.extend_from_slice(client_id.as_str().as_bytes());
        if self
            .forward
            .try_send((false, self.takeover.clone(), Bytes::from(body)))
            .is_err()
        {
            self.stats
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%client_id,
                "cluster: forward queue full, other nodes not told of this session");
        }
    }

    fn interest(&self, filter: &str, present: bool) {
        let change = if present {
            Interest::Add(filter.to_owned())
        } else {
            Interest::Remove(filter.to_owned())
        };
        // Closed only when the link is shutting down, and then nothing needs the change.
        let _ = self.interest.send(change);
    }

    fn routes_shared(&self) -> bool {
        matches!(
            self.shared_client.connection_state(),
            async_nats::connection::State::Connected
        )
    }

    fn shared_interest(&self, group: &str, filter: &str, present: bool) {
        let (g, f) = (group.to_owned(), filter.to_owned());
        let change = if present {
            Interest::AddShared(g, f)
        } else {
            Interest::RemoveShared(g, f)
        };
        let _ = self.interest.send(change);
    }

    fn forward(&self, message: &Arc<Message>) {
        let prefix = if message.retain {
            &self.retained
        } else {
            &self.messages
        };
        let subject = subject::subject_for_topic(prefix, message.topic.as_str());
        let stamp = wire::Stamp {
            node: self.node_id,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        };
        let body = wire::encode(message, stamp, Instant::now());
        // The shared-groups copy only while that link is up: while it is down the router
        // served the local members itself (`routes_shared`).
        let to_groups = self.routes_shared();
        // Capacity checked first, so (but for a race between publishers) a full queue drops
        // both copies rather than one.
        let full = self.forward.capacity() < 2
            || self
                .forward
                .try_send((false, subject, body.clone()))
                .is_err()
            || (to_groups
                && self
                    .forward
                    .try_send((
                        true,
                        subject::subject_for_topic(&self.shared, message.topic.as_str()),
                        body,
                    ))
                    .is_err());
        if full {
            let n = self
                .stats
                .dropped_queue_full
                .fetch_add(1, Ordering::Relaxed);
            // One line per thousand, so a NATS outage does not flood the log.
            if n % 1000 == 0 {
                tracing::warn!(topic = %message.topic, dropped = n + 1,
                    "cluster: forward queue full, message not sent to other nodes");
            }
        }
    }
}

/// The link as status pages see it.
#[derive(Clone)]
pub struct LinkView {
    client: async_nats::Client,
    nodes: Arc<NodeDirectory>,
}

impl std::fmt::Debug for LinkView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkView").finish_non_exhaustive()
    }
}

impl LinkView {
    /// Whether the NATS connection is up right now.
    pub fn connected(&self) -> bool {
        matches!(
            self.client.connection_state(),
            async_nats::connection::State::Connected
        )
    }

    /// The other nodes, as last heard.
    pub fn peers(&self) -> Vec<crate::NodeInfo> {
        self.nodes.peers()
    }
}

/// A running link; dropping it leaves the tasks running until [`ClusterLink::shutdown`].
pub struct ClusterLink {
    client: async_nats::Client,
    stats: Arc<ClusterStats>,
    nodes: Arc<NodeDirectory>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink").finish_non_exhaustive()
    }
}

impl ClusterLink {
    /// Connects to NATS (in the background: while no server answers the node keeps serving its
    /// own clients and the client retries, logging each attempt) and links `bus` to the cluster.
    pub async fn start(opts: ClusterOptions, bus: BusHandle) -> Result<Self, ClusterError> {
        let client = connect(&opts, false).await?;
        // Shared groups' traffic, echo included: this node's own members compete too.
        let shared_client = connect(&opts, true).await?;
        let names = subject::prefix(&opts.name, "node");
        // A node name must be unique in the cluster: ask before answering to it. Only possible
        // once NATS answers; a node that starts while NATS is away skips the check.
        if wait_connected(&client, NAME_CHECK_WAIT).await {
            match nodes::name_taken(&client, &names, &opts.node).await {
                Some(true) => {
                    return Err(ClusterError::NameTaken {
                        node: opts.node.clone(),
                        cluster: opts.name.clone(),
                    })
                }
                Some(false) => {}
                None => tracing::warn!(node = %opts.node,
                    "cluster: could not check that this node's name is unique"),
            }
        } else {
            tracing::warn!(servers = ?opts.servers,
                "cluster: NATS not reachable yet; serving local clients and retrying \
                 (node name uniqueness not checked)");
        }
        let stats = Arc::new(ClusterStats::default());
        let directory = Arc::new(NodeDirectory::default());
        let messages = subject::prefix(&opts.name, "m");
        let retained = subject::prefix(&opts.name, "r");
        let takeover = subject::prefix(&opts.name, "takeover");
        let shared = subject::prefix(&opts.name, "s");
        let (itx, irx) = mpsc::unbounded_channel();
        let (ftx, frx) = mpsc::channel(opts.forward_queue.max(1));
        // Bounded: a node that cannot route as fast as NATS delivers slows its subscriptions'
        // readers, and NATS then treats it as a slow consumer, rather than memory growing.
        let (rtx, rrx) = mpsc::channel(opts.forward_queue.max(1));
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(forward_task(
            client.clone(),
            shared_client.clone(),
            frx,
            stats.clone(),
        )));
        let (stx, srx) = mpsc::channel(opts.forward_queue.max(1));
        tasks.push(tokio::spawn(deliver_shared_task(
            srx,
            bus.clone(),
            stats.clone(),
        )));
        tasks.push(tokio::spawn(deliver_task(rrx, bus.clone(), stats.clone())));
        // Every node keeps the retained set: one subscription on the whole retained tree.
        let all_retained = format!("{retained}.>");
        let sub = client
            .subscribe(all_retained.clone())
            .await
            .map_err(|e| ClusterError::Connect(e.to_string()))?;
        tasks.push(tokio::spawn(receive_task(
            sub,
            retained.clone(),
            rtx.clone(),
        )));
        let sub = client
            .subscribe(takeover.clone())
            .await
            .map_err(|e| ClusterError::Connect(e.to_string()))?;
        tasks.push(tokio::spawn(takeover_task(sub, bus.clone())));
        let sub = client
            .subscribe(nodes::name_subject(&names, &opts.node))
            .await
            .map_err(|e| ClusterError::Connect(e.to_string()))?;
        tasks.push(tokio::spawn(nodes::answer_name(client.clone(), sub)));
        let heartbeats = subject::prefix(&opts.name, "nodes");
        let sub = client
            .subscribe(heartbeats.clone())
            .await
            .map_err(|e| ClusterError::Connect(e.to_string()))?;
        tasks.push(tokio::spawn(nodes::listen(
            sub,
            directory.clone(),
            opts.node.clone(),
        )));
        tasks.push(tokio::spawn(nodes::heartbeat(
            client.clone(),
            heartbeats,
            opts.node.clone(),
            opts.version.clone(),
            bus.clone(),
        )));
        tasks.push(tokio::spawn(interest_task(
            client.clone(),
            shared_client.clone(),
            irx,
            (messages.clone(), shared.clone()),
            rtx,
            stx,
        )));
        bus.set_peer(Arc::new(Seam {
            interest: itx,
            forward: ftx,
            messages,
            retained,
            shared,
            shared_client: shared_client.clone(),
            takeover,
            stats: stats.clone(),
            node_id: node_id(),
            seq: AtomicU64::new(1),
        }));
        tracing::info!(cluster = %opts.name, node = %opts.node, servers = ?opts.servers,
            "cluster link started");
        Ok(ClusterLink {
            client,
            stats,
            nodes: directory,
            tasks,
        })
    }

    /// The other nodes, as last heard.
    pub fn nodes(&self) -> &Arc<NodeDirectory> {
        &self.nodes
    }

    /// What status pages need, kept after the link is moved: connected or not, other nodes.
    pub fn view(&self) -> LinkView {
        LinkView {
            client: self.client.clone(),
            nodes: self.nodes.clone(),
        }
    }

    /// The link's counters.
    pub fn stats(&self) -> &Arc<ClusterStats> {
        &self.stats
    }

    /// Whether the NATS connection is up right now.
    pub fn connected(&self) -> bool {
        matches!(
            self.client.connection_state(),
            async_nats::connection::State::Connected
        )
    }

    /// Flushes what is queued to NATS and stops the link's tasks.
    pub async fn shutdown(self) {
        let _ = self.client.flush().await;
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// How long start-up waits for NATS before going on without it (the client keeps retrying).
const NAME_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether the client is connected within `within` (polled: the client reports no event for
/// a connection made before its callback was set).
async fn wait_connected(client: &async_nats::Client, within: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if matches!(
            client.connection_state(),
            async_nats::connection::State::Connected
        ) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn connect(opts: &ClusterOptions, echo: bool) -> Result<async_nats::Client, ClusterError> {
    if opts.servers.is_empty() {
        return Err(ClusterError::NoServers);
    }
    let mut addrs = Vec::with_capacity(opts.servers.len());
    for url in &opts.servers {
        let addr: async_nats::ServerAddr =
            url.parse()
                .map_err(|e: std::io::Error| ClusterError::Server {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
        addrs.push(addr);
    }
    let mut o = async_nats::ConnectOptions::new()
        .name(format!("switchyard {}", opts.node))
        .retry_on_initial_connect()
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("cluster: connected to NATS"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("cluster: NATS connection lost, reconnecting")
                }
                other => tracing::info!(event = %other, "cluster: NATS event"),
            }
        });
    if !echo {
        o = o.no_echo();
    }
    if !opts.user.is_empty() || !opts.password.is_empty() {
        o = o.user_and_password(opts.user.clone(), opts.password.clone());
    }
    if !opts.token.is_empty() {
        o = o.token(opts.token.clone());
    }
    if let Some(path) = &opts.creds_file {
        o = o
            .credentials_file(path.clone())
            .await
            .map_err(|e| ClusterError::File {
                what: "cluster.nats.creds_file",
                path: path.clone(),
                reason: e.to_string(),
            })?;
    }
    if opts.tls.enable {
        o = o.require_tls(true);
        if let Some(ca) = &opts.tls.cacertfile {
            readable("cluster.nats.tls.cacertfile", ca)?;
            o = o.add_root_certificates(ca.clone());
        }
        match (&opts.tls.certfile, &opts.tls.keyfile) {
            (Some(cert), Some(key)) => {
                readable("cluster.nats.tls.certfile", cert)?;
                readable("cluster.nats.tls.keyfile", key)?;
                o = o.add_client_certificate(cert.clone(), key.clone());
            }
            (None, None) => {}
            _ => {
                return Err(ClusterError::Connect(
                    "cluster.nats.tls: certfile and keyfile go together".into(),
                ))
            }
        }
    }
    o.connect(addrs)
        .await
        .map_err(|e| ClusterError::Connect(e.to_string()))
}

fn readable(what: &'static str, path: &PathBuf) -> Result<(), ClusterError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| ClusterError::File {
            what,
            path: path.clone(),
            reason: e.to_string(),
        })
}

async fn forward_task(
    client: async_nats::Client,
    shared_client: async_nats::Client,
    mut rx: mpsc::Receiver<Outgoing>,
    stats: Arc<ClusterStats>,
) {
    while let Some((shared, subject, body)) = rx.recv().await {
        let c = if shared { &shared_client } else { &client };
        match c.publish(subject, body).await {
            Ok(()) => {
                stats.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                stats.dropped_publish_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "cluster: NATS refused a message");
            }
        }
    }
}

/// A random id for this process start: ids of restarted nodes never collide with old ones.
fn node_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// A message from NATS on its way to the one delivering task: its subject's prefix (which tree
/// it came from) and the NATS message.
type Incoming = (Arc<str>, async_nats::Message);

/// Keeps one NATS subscription per subject some local filter needs.
async fn interest_task(
    client: async_nats::Client,
    shared_client: async_nats::Client,
    mut rx: mpsc::UnboundedReceiver<Interest>,
    (prefix, shared_prefix): (String, String),
    out: mpsc::Sender<Incoming>,
    shared_out: mpsc::Sender<SharedIncoming>,
) {
    let tree: Arc<str> = Arc::from(prefix.as_str());
    let shared_tree: Arc<str> = Arc::from(shared_prefix.as_str());
    // One queue subscription per (group, filter, subject); the router reports each pair once.
    let mut shared_subs: HashMap<(String, String), Vec<JoinHandle<()>>> = HashMap::new();
    let mut subs: HashMap<String, (usize, JoinHandle<()>)> = HashMap::new();
    while let Some(change) = rx.recv().await {
        match change {
            Interest::Add(filter) => {
                for s in subject::subjects_for_filter(&prefix, &filter) {
                    if let Some((n, _)) = subs.get_mut(&s) {
                        *n += 1;
                        continue;
                    }
                    match client.subscribe(s.clone()).await {
                        Ok(sub) => {
                            tracing::debug!(subject = %s, "cluster: interest added");
                            let task = tokio::spawn(receive_task(sub, tree.clone(), out.clone()));
                            subs.insert(s, (1, task));
                        }
                        Err(e) => {
                            tracing::error!(subject = %s, error = %e,
                                "cluster: NATS refused a subscription; other nodes' messages \
                                 on it will not arrive");
                        }
                    }
                }
            }
            Interest::AddShared(group, filter) => {
                let queue = queue_name(&group, &filter);
                let mut tasks = Vec::new();
                for s in subject::subjects_for_filter(&shared_prefix, &filter) {
                    match shared_client
                        .queue_subscribe(s.clone(), queue.clone())
                        .await
                    {
                        Ok(sub) => {
                            tracing::debug!(subject = %s, %queue, "cluster: shared group joined");
                            let key: Arc<(String, String)> =
                                Arc::new((group.clone(), filter.clone()));
                            tasks.push(tokio::spawn(receive_shared_task(
                                sub,
                                shared_tree.clone(),
                                key,
                                shared_out.clone(),
                            )));
                        }
                        Err(e) => tracing::error!(subject = %s, error = %e,
                            "cluster: NATS refused a shared-group subscription"),
                    }
                }
                if let Some(old) = shared_subs.insert((group, filter), tasks) {
                    old.iter().for_each(JoinHandle::abort);
                }
            }
            Interest::RemoveShared(group, filter) => {
                if let Some(tasks) = shared_subs.remove(&(group, filter)) {
                    tasks.iter().for_each(JoinHandle::abort);
                }
            }
            Interest::Remove(filter) => {
                for s in subject::subjects_for_filter(&prefix, &filter) {
                    let gone = match subs.get_mut(&s) {
                        Some((n, _)) => {
                            *n -= 1;
                            *n == 0
                        }
                        None => false,
                    };
                    if gone {
                        if let Some((_, task)) = subs.remove(&s) {
                            // Dropping the subscriber (with its task) unsubscribes on NATS.
                            task.abort();
                            tracing::debug!(subject = %s, "cluster: interest removed");
                        }
                    }
                }
            }
        }
    }
    for (_, (_, task)) in subs {
        task.abort();
    }
    for (_, tasks) in shared_subs {
        tasks.iter().for_each(JoinHandle::abort);
    }
}

/// The NATS queue group of a shared group on a filter: both encoded as subject tokens, so any
/// names give a valid queue name and different pairs never share one.
fn queue_name(group: &str, filter: &str) -> String {
    let mut q = String::from("sq.");
    subject::encode_level(group, &mut q);
    for level in filter.split('/') {
        q.push('.');
        subject::encode_level(level, &mut q);
    }
    q
}

/// A shared-group message on its way to delivery: the tree prefix, the (group, filter) it was
/// queued for, the NATS message.
type SharedIncoming = (Arc<str>, Arc<(String, String)>, async_nats::Message);

/// Passes each message of one shared-group subscription on, in NATS's order.
async fn receive_shared_task(
    mut sub: async_nats::Subscriber,
    tree: Arc<str>,
    key: Arc<(String, String)>,
    out: mpsc::Sender<SharedIncoming>,
) {
    while let Some(m) = sub.next().await {
        if out.send((tree.clone(), key.clone(), m)).await.is_err() {
            return;
        }
    }
}

/// Hands each message NATS gave this node for a shared group to one local member.
async fn deliver_shared_task(
    mut rx: mpsc::Receiver<SharedIncoming>,
    bus: BusHandle,
    stats: Arc<ClusterStats>,
) {
    while let Some((tree, key, m)) = rx.recv().await {
        let topic = subject::topic_for_subject(&tree, m.subject.as_str())
            .and_then(|t| TopicName::new(t).ok());
        let Some(topic) = topic else {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        match wire::decode(topic, m.payload, Instant::now()) {
            Ok((_, msg)) => {
                stats.received.fetch_add(1, Ordering::Relaxed);
                let (group, filter) = (&key.0, &key.1);
                let bus = &bus;
                match switchyard_bus::contain(|| bus.publish_remote_shared(msg, group, filter)) {
                    Ok(true) => {}
                    Ok(false) => tracing::debug!(%group, %filter,
                        "cluster: shared-group message arrived after the group's last member left"),
                    Err(p) => tracing::error!(panic = %p.0,
                        "cluster: delivering a shared-group message panicked"),
                }
            }
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subject = %m.subject, error = %e,
                    "cluster: malformed shared-group message, dropped");
            }
        }
    }
}

/// Ends local connections and sessions of client ids that opened a session on another node.
async fn takeover_task(mut sub: async_nats::Subscriber, bus: BusHandle) {
    while let Some(m) = sub.next().await {
        let body = &m.payload[..];
        let parsed = body.iter().position(|b| *b == 0).and_then(|nul| {
            let ns = std::str::from_utf8(&body[..nul]).ok()?;
            let id = std::str::from_utf8(&body[nul + 1..]).ok()?;
            Some((ns, id))
        });
        match parsed {
            Some((ns, id)) => {
                bus.taken_over_elsewhere(ns, &ClientId::from(id));
            }
            None => tracing::warn!("cluster: malformed takeover notice, ignored"),
        }
    }
}

/// Passes each message of one NATS subscription to the delivering task, in NATS's order.
async fn receive_task(
    mut sub: async_nats::Subscriber,
    tree: impl Into<Arc<str>>,
    out: mpsc::Sender<Incoming>,
) {
    let tree = tree.into();
    while let Some(m) = sub.next().await {
        if out.send((tree.clone(), m)).await.is_err() {
            return;
        }
    }
}

/// Decodes, keeps the first copy of each message, and hands it to the bus.
async fn deliver_task(mut rx: mpsc::Receiver<Incoming>, bus: BusHandle, stats: Arc<ClusterStats>) {
    let mut dedup = wire::Dedup::default();
    while let Some((tree, m)) = rx.recv().await {
        let topic = subject::topic_for_subject(&tree, m.subject.as_str())
            .and_then(|t| TopicName::new(t).ok());
        let Some(topic) = topic else {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(subject = %m.subject, "cluster: subject is not a topic, dropped");
            continue;
        };
        match wire::decode(topic, m.payload, Instant::now()) {
            Ok((stamp, msg)) => {
                if !dedup.first(stamp) {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                stats.received.fetch_add(1, Ordering::Relaxed);
                // A panic while routing one message must not end the link.
                let bus = &bus;
                if let Err(p) = switchyard_bus::contain(|| bus.publish_remote(msg)) {
                    tracing::error!(panic = %p.0,
                        "cluster: routing a message from another node panicked");
                }
            }
            Err(e) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subject = %m.subject, error = %e,
                    "cluster: malformed message from another node, dropped");
            }
        }
    }
}
