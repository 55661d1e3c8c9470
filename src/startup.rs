//! Start-up and shutdown: tracing, binding listeners (a port in use is a clear error), the
//! ready file, and graceful shutdown on SIGINT/SIGTERM (stop accepting, close connections with
//! the right reason, wait for tasks). The API-state store (`<data_dir>/state.db`) is opened
//! once here and shared by everything that keeps state made through the API (built-in users,
//! dashboard admins, API keys), whose views follow its change feed.

use crate::settings;
use anyhow::Context;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::BusHandle;
use switchyard_config::{Config, LogConfig, LogFormat};
use switchyard_mqtt::MqttGateway;
use switchyard_state::{SharedState, SqliteState, StateView};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::EnvFilter;

/// How long shutdown waits for connections to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Sets up logging from `[log]`; `RUST_LOG` overrides the level when set.
pub fn init_tracing(log: &LogConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.is_empty() => EnvFilter::try_new(s),
        _ => EnvFilter::try_new(&log.level),
    }
    .with_context(|| format!("log.level: invalid filter {:?}", log.level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stdout);
    let result = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot initialise logging: {e}"))
}

/// Accept backlog of the stream listeners. Over `max_conn_rate` new connections wait here
/// rather than being refused, so it is larger than tokio's default of 1024 (the kernel caps it
/// at `net.core.somaxconn`).
const ACCEPT_BACKLOG: u32 = 4096;

/// A listening socket as `TcpListener::bind` makes it (SO_REUSEADDR on Unix, so a restart
/// binds while old connections linger in TIME_WAIT), with [`ACCEPT_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Binds a stream listener, logs it, and records its address for the ready file and the API.
async fn bind_tcp(
    name: &str,
    addr: SocketAddr,
    bound: &mut BTreeMap<String, String>,
) -> anyhow::Result<TcpListener> {
    let listener = listen(addr).with_context(|| format!("listener {name}: cannot bind {addr}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(listener = name, %addr, "listener started");
    bound.insert(name.into(), addr.to_string());
    Ok(listener)
}

/// Runs the gateway until a shutdown signal.
pub async fn run(config: Config, ready_file: Option<PathBuf>) -> anyhow::Result<()> {
    for warning in config.warnings() {
        tracing::warn!(key = %warning.key, "{}", warning.message);
    }
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (bus, store) = open_bus(&config)?;
    let mut bound: BTreeMap<String, String> = BTreeMap::new();

    let state: SharedState = Arc::new(
        SqliteState::open(&config.node.data_dir).context("cannot open the API-state store")?,
    );
    // Subscribed before any view loads, so no change falls between loading and following.
    let feed = state.changes();
    let security = settings::security(&config, state.clone())?;
    let mut views: Vec<Arc<dyn StateView>> = vec![security.authn.clone()];
    let mqtt = MqttGateway {
        bus: bus.clone(),
        settings: Arc::new(settings::mqtt_settings(&config, &security)),
    };
    let tcp = &config.listeners.tcp.default;
    if tcp.enable {
        let name = "mqtt:tcp:default";
        let listener = bind_tcp(name, tcp.bind, &mut bound).await?;
        tracker.spawn(switchyard_mqtt::serve_tcp(
            listener,
            name.into(),
            settings::with_authn(&mqtt, tcp.enable_authn),
            settings::limits(tcp.max_connections, tcp.max_conn_rate, tcp.max_conn_burst),
            cancel.clone(),
            tracker.clone(),
        ));
    }
    let ws = &config.listeners.ws.default;
    if ws.enable {
        let name = "mqtt:ws:default";
        let listener = bind_tcp(name, ws.bind, &mut bound).await?;
        tracing::info!(listener = name, path = %ws.path, "WebSocket path");
        tracker.spawn(switchyard_mqtt::serve_ws(
            listener,
            name.into(),
            ws.path.clone(),
            settings::with_authn(&mqtt, ws.enable_authn),
            settings::limits(ws.max_connections, ws.max_conn_rate, ws.max_conn_burst),
            cancel.clone(),
            tracker.clone(),
        ));
    }
    let gateways = Arc::new(crate::gateways::GatewayRunner::new(
        Arc::new(config.clone()),
        bus.clone(),
        security.clone(),
        cancel.clone(),
        tracker.clone(),
    ));
    let enabled = [
        ("mqttsn", config.gateway.mqttsn.enable),
        ("coap", config.gateway.coap.enable),
        ("lwm2m", config.gateway.lwm2m.enable),
    ];
    for (name, enable) in enabled {
        if enable {
            if let Some(addr) = gateways.start(name).await? {
                bound.insert(format!("{name}:udp:default"), addr.to_string());
            }
        }
    }
    start_tls_listeners(&config, &mqtt, &mut bound, &cancel, &tracker).await?;
    let dash = &config.dashboard.listeners.http;
    let dash_tls = &config.dashboard.listeners.https;
    if dash.enable || dash_tls.enable {
        // Last, so the admin API sees every other bound listener (the WebSocket tool needs
        // mqtt:ws:default).
        let name = "dashboard:http:default";
        let admin = switchyard_admin::Admin::open(switchyard_admin::AdminContext {
            bus: bus.clone(),
            authn: security.authn.clone(),
            state: state.clone(),
            config: Arc::new(config.clone()),
            listeners: bound.clone(),
            gateways_built: crate::gateways::BUILT.to_vec(),
            gateway_control: Some(gateways.clone()),
            coap_requests: Some(gateways.clone()),
            version: env!("CARGO_PKG_VERSION"),
        })
        .map_err(|e| anyhow::anyhow!("dashboard: cannot open the admin store: {e}"))?;
        views.push(admin.state_view());
        if dash_tls.enable {
            let name = "dashboard:https:default";
            let tls = tls_listener(name, &dash_tls.tls())?;
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
    tracker.spawn(switchyard_state::follow(
        feed,
        views,
        cancel.clone().cancelled_owned(),
    ));
    if let Some(path) = ready_file {
        write_ready_file(&path, &bound)?;
    }
    tracing::info!(node = %config.node.name, version = env!("CARGO_PKG_VERSION"), "switchyard started");

    let reason = shutdown_signal().await;
    tracing::info!(signal = reason, "shutting down");
    cancel.cancel();
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within the grace period");
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

fn tls_listener(
    name: &str,
    o: &switchyard_config::TlsOptions,
) -> anyhow::Result<switchyard_mqtt::TlsListener> {
    let settings = switchyard_mqtt::tls::TlsSettings {
        certfile: o.certfile.clone(),
        keyfile: o.keyfile.clone(),
        cacertfile: (!o.cacertfile.as_os_str().is_empty()).then(|| o.cacertfile.clone()),
        verify_peer: o.verify == switchyard_config::TlsVerify::VerifyPeer,
        fail_if_no_peer_cert: o.fail_if_no_peer_cert,
        peer_cert_as_username: o.peer_cert_as_username == switchyard_config::PeerCertAsUsername::Cn,
    };
    let acceptor =
        switchyard_mqtt::tls::acceptor(&settings).with_context(|| format!("listener {name}"))?;
    Ok(switchyard_mqtt::TlsListener {
        acceptor,
        cn_as_username: settings.peer_cert_as_username,
    })
}

/// MQTT over TLS (8883) and over secure WebSocket (8084), when enabled; a bad certificate or
/// key is a start-up error naming the file.
async fn start_tls_listeners(
    config: &Config,
    mqtt: &MqttGateway,
    bound: &mut BTreeMap<String, String>,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    let ssl = &config.listeners.ssl.default;
    if ssl.enable {
        let name = "mqtt:ssl:default";
        let tls = tls_listener(name, &ssl.tls())?;
        let listener = bind_tcp(name, ssl.bind, bound).await?;
        tracker.spawn(switchyard_mqtt::serve_tls(
            listener,
            name.into(),
            tls,
            settings::with_authn(mqtt, ssl.enable_authn),
            settings::limits(ssl.max_connections, ssl.max_conn_rate, ssl.max_conn_burst),
            cancel.clone(),
            tracker.clone(),
        ));
    }
    let wss = &config.listeners.wss.default;
    if wss.enable {
        let name = "mqtt:wss:default";
        let tls = tls_listener(name, &wss.tls())?;
        let listener = bind_tcp(name, wss.bind, bound).await?;
        tracing::info!(listener = name, path = %wss.path, "WebSocket path");
        tracker.spawn(switchyard_mqtt::serve_wss(
            listener,
            name.into(),
            wss.path.clone(),
            tls,
            settings::with_authn(mqtt, wss.enable_authn),
            settings::limits(wss.max_connections, wss.max_conn_rate, wss.max_conn_burst),
            cancel.clone(),
            tracker.clone(),
        ));
    }
    Ok(())
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
