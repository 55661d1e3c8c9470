//! Start-up and shutdown: tracing (the console, the log file of `[log.file]`, log traces),
//! binding listeners (a port in use is a clear error), the ready file, systemd's readiness
//! (READY=1 once every listener is bound, STOPPING=1 when shutdown begins: `sdnotify.rs`), the
//! pid file `ctl stop` signals (`pidfile.rs`), and graceful shutdown on SIGINT/SIGTERM (stop
//! accepting, close connections with the right reason, wait for tasks). The API-state store
//! (`<data_dir>/state.db`) is opened once here and shared by everything that keeps state made
//! through the API (built-in users, dashboard admins, API keys, log traces), whose views follow
//! its change feed.

use crate::logfile::{LogFileWriter, RotatingFile};
use crate::settings;
use crate::trace::layer::{TraceFilter, TraceLayer};
use crate::trace::TraceHub;
use anyhow::Context;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::BusHandle;
use switchyard_config::{Config, LogConfig, LogFormat};
use switchyard_state::{SharedState, SqliteState, StateView};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A layer of the one subscriber, each with its own filter (no global filter, so a layer that
/// wants more than the console, such as a log trace, still gets it).
type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Sets up logging from `[log]`: the console (stdout) and, with `log.file.enable`, the same
/// lines in a file rotated by size, both at the configured level (`RUST_LOG` overrides it when
/// set); and the log traces' layer, which gets debug events about traced clients whatever that
/// level. Returns the traces' hub, attached to the store by [`run`].
pub fn init_tracing(log: &LogConfig) -> anyhow::Result<Arc<TraceHub>> {
    let mut level = match std::env::var("RUST_LOG") {
        Ok(s) if !s.is_empty() => s,
        _ => log.level.clone(),
    };
    // The DTLS library warns about every ClientHello extension it does not know (OpenSSL and
    // GnuTLS clients all send some): a ClientHello flood would become a log flood. Our own DTLS
    // lines report each handshake's outcome; name `rtc_dtls` in the filter to see the library's.
    if !level.contains("rtc_dtls") {
        level.push_str(",rtc_dtls=error");
    }
    let filter = || {
        EnvFilter::try_new(&level).with_context(|| format!("log.level: invalid filter {level:?}"))
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut layers: Vec<BoxedLayer> = vec![fmt_layer(log.format, ansi, std::io::stdout, filter()?)];
    if log.file.enable {
        let f = &log.file;
        let file = RotatingFile::open(&f.path, f.max_size.bytes(), f.rotation_count)
            .with_context(|| format!("log.file.path: cannot open {}", f.path.display()))?;
        let writer = LogFileWriter(Arc::new(file));
        layers.push(fmt_layer(log.format, false, writer, filter()?));
    }
    let traces = TraceHub::new();
    layers.push(
        TraceLayer::new(traces.clone())
            .with_filter(TraceFilter::new(traces.clone()))
            .boxed(),
    );
    tracing_subscriber::registry()
        .with(layers)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))?;
    Ok(traces)
}

/// A `fmt` layer in `format` writing to `writer`, filtered by `filter`.
fn fmt_layer<W>(format: LogFormat, ansi: bool, writer: W, filter: EnvFilter) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer.json().with_filter(filter).boxed(),
    }
}

/// Binds the dashboard's stream listener, logs it, and records its address for the ready file
/// and the API (the gateways' listeners are bound by the runner).
async fn bind_tcp(
    name: &str,
    addr: SocketAddr,
    bound: &mut BTreeMap<String, String>,
) -> anyhow::Result<TcpListener> {
    let listener = switchyard_net::listen(addr)
        .with_context(|| format!("listener {name}: cannot bind {addr}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(listener = name, %addr, "listener started");
    bound.insert(name.into(), addr.to_string());
    Ok(listener)
}

/// Runs the gateway until a shutdown signal.
pub async fn run(
    config: Config,
    ready_file: Option<PathBuf>,
    traces: Arc<TraceHub>,
) -> anyhow::Result<()> {
    for warning in config.warnings() {
        tracing::warn!(key = %warning.key, "{}", warning.message);
    }
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (bus, store) = open_bus(&config)?;
    let cluster = crate::cluster::start(&config, &bus)
        .await
        .context("cluster")?;
    let mut bound: BTreeMap<String, String> = BTreeMap::new();

    let state: SharedState = Arc::new(
        SqliteState::open(&config.node.data_dir).context("cannot open the API-state store")?,
    );
    // For `switchyard ctl stop`; removed when this function returns.
    let _pid_file = crate::pidfile::PidFile::create(&config.node.data_dir)?;
    // Subscribed before any view loads, so no change falls between loading and following.
    let feed = state.changes();
    let security = settings::security(&config, state.clone())?;
    crate::delayed_store::attach(&bus, &state).context("delayed messages")?;
    traces
        .attach(state.clone(), &config.node.data_dir)
        .context("log traces")?;
    let psk = crate::psk::open(&config.psk_authentication, &state)?;
    let mut views: Vec<Arc<dyn StateView>> = vec![
        security.authn.clone(),
        security.banned.clone(),
        security.chain.clone(),
        security.authz.clone(),
        traces.clone(),
    ];
    if let Some(p) = &psk {
        views.push(Arc::new(p.clone()));
    }
    // Before any gateway starts: rules see every client from its first connect.
    let rules = crate::rules::open(&config, &bus, &state, cancel.clone())?;
    views.push(rules.clone());
    let gateways = Arc::new(crate::gateways::GatewayRunner::new(
        Arc::new(config.clone()),
        bus.clone(),
        security.clone(),
        psk.map(|p| p.keys),
        cancel.clone(),
        tracker.clone(),
    ));
    // Every protocol of the gateway table whose section is enabled, in the table's order.
    for entry in crate::gateways::GATEWAYS {
        let name = entry.descriptor.name;
        if config.protocol(name).is_some_and(|p| p.enable) {
            for (id, addr) in gateways.start(name).await? {
                bound.insert(id, addr.to_string());
            }
        }
    }
    let dash = &config.dashboard.listeners.http;
    let dash_tls = &config.dashboard.listeners.https;
    if dash.enable || dash_tls.enable {
        // Last, so the admin API sees every other bound listener (the WebSocket tool needs
        // mqtt:ws:default).
        let name = "dashboard:http:default";
        let admin = switchyard_admin::Admin::open(switchyard_admin::AdminContext {
            bus: bus.clone(),
            authn: security.authn.clone(),
            chain: security.chain.clone(),
            authz: security.authz.clone(),
            banned: security.banned.clone(),
            rewrite: security.rewrite.clone(),
            state: state.clone(),
            config: Arc::new(config.clone()),
            listeners: bound.clone(),
            gateways: crate::gateways::descriptors(),
            gateway_control: Some(gateways.clone()),
            coap_requests: Some(gateways.clone()),
            traces: Some(traces.clone()),
            rules: Some(rules.clone()),
            cluster: cluster.as_ref().map(|l| {
                Arc::new(crate::cluster::AdminView(l.view()))
                    as Arc<dyn switchyard_admin::ClusterView>
            }),
            version: env!("CARGO_PKG_VERSION"),
        })
        .map_err(|e| anyhow::anyhow!("dashboard: cannot open the admin store: {e}"))?;
        views.push(admin.state_view());
        if dash_tls.enable {
            let name = "dashboard:https:default";
            let tls = crate::gateways::tls_listener(name, &dash_tls.tls())?;
            let listener = bind_tcp(name, dash_tls.bind, &mut bound).await?;
            tracker.spawn(
                admin
                    .clone()
                    .serve_tls(listener, tls.acceptor, cancel.clone()),
            );
        }
        if dash.enable {
            let listener = bind_tcp(name, dash.bind, &mut bound).await?;
            tracker.spawn(admin.serve(listener, cancel.clone()));
        }
    }

    bus.spawn_background(cancel.clone(), &tracker);
    tracker.spawn(traces.clone().sweep(cancel.clone()));
    tracker.spawn(switchyard_state::follow(
        feed,
        views,
        cancel.clone().cancelled_owned(),
    ));
    if let Some(path) = ready_file {
        write_ready_file(&path, &bound)?;
    }
    // Every listener is bound: a `Type=notify` systemd unit counts as started from here.
    crate::sdnotify::notify_logged("READY=1\nSTATUS=running");
    tracing::info!(node = %config.node.name, version = env!("CARGO_PKG_VERSION"), "switchyard started");

    let reason = shutdown_signal().await;
    tracing::info!(signal = reason, "shutting down");
    crate::sdnotify::notify_logged("STOPPING=1");
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within the grace period");
    }
    if let Some(link) = cluster {
        link.shutdown().await;
    }
    if let Some(store) = store {
        // Commits whatever the closing connections submitted (their sessions going offline).
        store.close();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The bus, with the SQLite store restored into it unless `storage.durability = "memory"`.
fn open_bus(
    config: &Config,
) -> anyhow::Result<(BusHandle, Option<Arc<switchyard_store::SqliteStore>>)> {
    use switchyard_config::DurabilityMode;
    use switchyard_store::{Durability, SqliteStore};
    let bus_config = settings::bus_config(config);
    let mode = match config.storage.durability {
        DurabilityMode::Memory => return Ok((BusHandle::new(bus_config), None)),
        DurabilityMode::Strict => Durability::Strict,
        DurabilityMode::Batched => Durability::Batched(config.storage.flush_interval.as_std()),
        DurabilityMode::Relaxed => Durability::Relaxed,
    };
    let (store, snapshot) =
        SqliteStore::open(&config.node.data_dir, mode).context("cannot open the session store")?;
    let bus = BusHandle::with_store(bus_config, store.clone());
    let report = bus.restore(snapshot);
    tracing::info!(
        data_dir = %config.node.data_dir.display(),
        durability = ?config.storage.durability,
        sessions = report.sessions,
        queued = report.deliveries,
        retained = report.retained,
        expired = report.expired,
        wills = report.wills,
        "session store opened"
    );
    Ok((bus, Some(store)))
}

/// The LwM2M object definitions: every `*.xml` in `xml_dir`. When the default directory does
/// not exist (the binary runs from elsewhere), the shipped definitions compiled into the binary;
/// a configured directory that cannot be loaded is a start-up error.
pub(crate) fn lwm2m_objects(
    g: &switchyard_config::Lwm2mGatewayConfig,
) -> anyhow::Result<switchyard_lwm2m::ObjectDb> {
    let dir = std::path::Path::new(&g.xml_dir);
    let default = switchyard_config::Lwm2mGatewayConfig::default().xml_dir;
    if !dir.exists() && g.xml_dir == default {
        tracing::info!(
            xml_dir = %g.xml_dir,
            "LwM2M xml_dir not found; using the built-in object definitions"
        );
        return Ok(switchyard_lwm2m::ObjectDb::builtin());
    }
    switchyard_lwm2m::ObjectDb::load_dir(dir)
        .map_err(|e| anyhow::anyhow!("gateway.lwm2m.xml_dir: {e}"))
}

fn write_ready_file(
    path: &std::path::Path,
    bound: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let body = serde_json::json!({ "listeners": bound }).to_string();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
