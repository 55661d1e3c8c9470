//! The gateway table, the only list of protocols in the binary ([`GATEWAYS`]: each gateway
//! crate's `switchyard_net::GatewayDescriptor` and the function that builds it from the
//! config), and the runner that starts and stops them, at start-up and at run time from the
//! admin API (`PUT /api/v5/gateways/{name}/enable/{bool}`). Start-up, the admin API (names,
//! namespaces, listener ids, metric labels, the dashboard's protocol list) and the config
//! checks in the tests below all read the table; nothing else names a gateway.
//!
//! Each running gateway has its own cancellation token, a child of the node's: stopping one
//! closes its listeners and its clients (reason `server_shutdown`; persistent sessions stay in
//! the bus), starting it again binds its configured addresses anew (the same ports as before).

use crate::settings;
use anyhow::Context;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use switchyard_auth::Security;
use switchyard_bus::BusHandle;
use switchyard_config::Config;
use switchyard_net::{
    BoundListener, DtlsListener, Gateway, GatewayDescriptor, ListenerKind, TlsListener,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One protocol this binary carries: what it is, and how the binary builds it.
pub struct GatewayEntry {
    /// The gateway crate's descriptor.
    pub descriptor: &'static GatewayDescriptor,
    /// Builds the gateway from the config (`settings.rs`); called at each start.
    pub build: fn(&BuildContext) -> anyhow::Result<Arc<dyn Gateway>>,
}

const fn entry(
    descriptor: &'static GatewayDescriptor,
    build: fn(&BuildContext) -> anyhow::Result<Arc<dyn Gateway>>,
) -> GatewayEntry {
    GatewayEntry { descriptor, build }
}

/// The gateway table, in start and display order. A new protocol is one line here.
pub static GATEWAYS: &[GatewayEntry] = &[
    entry(&switchyard_mqtt::DESCRIPTOR, settings::mqtt_gateway),
    entry(&switchyard_mqttsn::DESCRIPTOR, settings::mqttsn_gateway),
    entry(&switchyard_coap::DESCRIPTOR, settings::coap_gateway),
    entry(&switchyard_lwm2m::DESCRIPTOR, settings::lwm2m_gateway),
];

/// The table's descriptors, as the admin API gets them.
pub fn descriptors() -> Vec<&'static GatewayDescriptor> {
    GATEWAYS.iter().map(|e| e.descriptor).collect()
}

/// What building a gateway may need, shared by every start.
pub struct BuildContext {
    /// The effective configuration.
    pub config: Arc<Config>,
    /// The bus.
    pub bus: BusHandle,
    /// Authentication and authorization, shared by every gateway.
    pub security: Security,
    /// Shared by every CoAP gateway instance, so the admin API reaches the clients of the one
    /// running now, across restarts.
    pub coap_requests: switchyard_coap::CoapRequester,
    /// The pre-shared keys of the DTLS listeners (`None`: `psk_authentication` is off).
    pub psk: Option<switchyard_net::dtls::PskStore>,
}

/// A running gateway: how to stop it, and its tasks (the listeners and their clients, which
/// hold the sockets), so a stop can wait until the ports are free for the next start.
struct Running {
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// How long a stop waits for the gateway's tasks (clients end at once on cancel; this bounds a
/// stuck one).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts and stops the gateways of [`GATEWAYS`].
pub struct GatewayRunner {
    ctx: BuildContext,
    root: CancellationToken,
    tracker: TaskTracker,
    running: tokio::sync::Mutex<HashMap<&'static str, Running>>,
    /// The address each listener got the first time, by listener id: a restart binds it again,
    /// so clients and operators keep the same port even when the config says port 0.
    bound: parking_lot::Mutex<HashMap<String, SocketAddr>>,
}

impl GatewayRunner {
    /// A runner; nothing is started yet.
    pub fn new(
        config: Arc<Config>,
        bus: BusHandle,
        security: Security,
        psk: Option<switchyard_net::dtls::PskStore>,
        root: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        GatewayRunner {
            ctx: BuildContext {
                config,
                bus,
                security,
                coap_requests: switchyard_coap::CoapRequester::new(),
                psk,
            },
            root,
            tracker,
            running: tokio::sync::Mutex::new(HashMap::new()),
            bound: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// Starts gateway `name` (no-op when running): builds it and binds and serves each of its
    /// enabled listeners. Returns each bound listener's id and address.
    pub async fn start(&self, name: &str) -> anyhow::Result<Vec<(String, SocketAddr)>> {
        let mut running = self.running.lock().await;
        let Some(entry) = GATEWAYS.iter().find(|e| e.descriptor.name == name) else {
            anyhow::bail!("no gateway {name}");
        };
        let name = entry.descriptor.name;
        if running.contains_key(name) {
            return Ok(Vec::new());
        }
        let token = self.root.child_token();
        let tasks = TaskTracker::new();
        let started = self.spawn(entry, &token, &tasks).await;
        // Closed at once: `wait` completes when the listeners and every client task have ended.
        tasks.close();
        // The node's shutdown waits for them too.
        let waited = tasks.clone();
        self.tracker.spawn(async move { waited.wait().await });
        match started {
            Ok(bound) => {
                running.insert(
                    name,
                    Running {
                        cancel: token,
                        tasks,
                    },
                );
                Ok(bound)
            }
            Err(e) => {
                // Listeners bound before the failure close again.
                token.cancel();
                Err(e)
            }
        }
    }

    /// Stops a gateway and waits until its sockets are closed (so a start right after can bind
    /// the same ports); true if it was running.
    pub async fn stop(&self, name: &str) -> bool {
        let mut running = self.running.lock().await;
        match running.remove(name) {
            Some(r) => {
                r.cancel.cancel();
                if tokio::time::timeout(STOP_WAIT, r.tasks.wait())
                    .await
                    .is_err()
                {
                    tracing::warn!(gateway = name, "gateway tasks still running after the stop");
                }
                tracing::info!(gateway = name, "gateway stopped");
                true
            }
            None => false,
        }
    }

    async fn spawn(
        &self,
        entry: &GatewayEntry,
        cancel: &CancellationToken,
        tracker: &TaskTracker,
    ) -> anyhow::Result<Vec<(String, SocketAddr)>> {
        let desc = entry.descriptor;
        let section = self
            .ctx
            .config
            .protocol(desc.name)
            .with_context(|| format!("gateway {}: no config section", desc.name))?;
        let gateway = (entry.build)(&self.ctx)?;
        let mut started = Vec::new();
        for spec in desc.listeners {
            let id = desc.listener_id(spec);
            let view = section
                .listener(spec.kind.as_str())
                .with_context(|| format!("listener {id}: no config table"))?;
            if !view.enable {
                continue;
            }
            // A bad certificate or key is an error naming the file, before anything binds.
            let tls = match (&view.tls, spec.kind.is_tls()) {
                (Some(o), true) => Some(tls_listener(&id, o)?),
                _ => None,
            };
            let dtls = match (&view.dtls, spec.kind == ListenerKind::Dtls) {
                (Some(d), true) => Some(dtls_listener(&id, d, self.ctx.psk.as_ref())?),
                _ => None,
            };
            let configured = self.bound.lock().get(&id).copied();
            let addr = configured.unwrap_or(view.bind);
            let socket = switchyard_net::bind(spec, addr)
                .with_context(|| format!("listener {id}: cannot bind {addr}"))?;
            let local = socket.local_addr()?;
            self.bound.lock().insert(id.clone(), local);
            if let Some(path) = &view.ws_path {
                tracing::info!(listener = %id, %path, "WebSocket path");
            }
            let listener = BoundListener {
                id: id.clone(),
                kind: spec.kind,
                socket,
                limits: settings::limits(view),
                enable_authn: view.enable_authn,
                ws_path: view.ws_path.clone(),
                tls,
                dtls,
            };
            let serve = gateway.serve(listener, cancel.clone(), tracker.clone())?;
            tracker.spawn(serve);
            tracing::info!(listener = %id, addr = %local, "listener started");
            started.push((id, local));
        }
        Ok(started)
    }
}

/// The TLS acceptor of listener `name` from its config keys; a bad file is an error naming it.
pub fn tls_listener(name: &str, o: &switchyard_config::TlsOptions) -> anyhow::Result<TlsListener> {
    let settings = switchyard_net::tls::TlsSettings {
        certfile: o.certfile.clone(),
        keyfile: o.keyfile.clone(),
        cacertfile: (!o.cacertfile.as_os_str().is_empty()).then(|| o.cacertfile.clone()),
        verify_peer: o.verify == switchyard_config::TlsVerify::VerifyPeer,
        fail_if_no_peer_cert: o.fail_if_no_peer_cert,
        peer_cert_as_username: o.peer_cert_as_username == switchyard_config::PeerCertAsUsername::Cn,
    };
    TlsListener::new(&settings).with_context(|| format!("listener {name}"))
}

/// The DTLS configuration of listener `name` from its config keys; a bad file is an error naming
/// it.
pub fn dtls_listener(
    name: &str,
    d: &switchyard_config::DtlsView,
    psk: Option<&switchyard_net::dtls::PskStore>,
) -> anyhow::Result<DtlsListener> {
    let o = &d.options;
    let path = |p: &std::path::PathBuf| (!p.as_os_str().is_empty()).then(|| p.clone());
    let settings = switchyard_net::dtls::DtlsSettings {
        certfile: path(&o.certfile),
        keyfile: path(&o.keyfile),
        cacertfile: path(&o.cacertfile),
        verify_peer: o.verify == switchyard_config::TlsVerify::VerifyPeer,
        fail_if_no_peer_cert: o.fail_if_no_peer_cert,
        ciphers: o.ciphers.clone(),
        handshake_timeout: o.handshake_timeout.as_std(),
        max_handshakes: usize::try_from(d.max_handshakes).unwrap_or(usize::MAX),
        psk: psk.cloned(),
        cn_as_username: d.peer_cert_as_username == switchyard_config::PeerCertAsUsername::Cn,
    };
    DtlsListener::new(name, &settings).with_context(|| format!("listener {name}"))
}

impl switchyard_admin::GatewayControl for GatewayRunner {
    fn is_running(&self, name: &str) -> bool {
        self.running
            .try_lock()
            .map(|r| r.contains_key(name))
            .unwrap_or(true)
    }

    fn set_enabled<'a>(
        &'a self,
        name: &'a str,
        enable: bool,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            if enable {
                self.start(name)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{e:#}"))
            } else {
                self.stop(name).await;
                Ok(())
            }
        })
    }
}

impl switchyard_admin::CoapRequests for GatewayRunner {
    fn request(
        &self,
        r: switchyard_admin::CoapRequest,
    ) -> Pin<
        Box<
            dyn Future<
                    Output = Result<
                        switchyard_admin::CoapResponse,
                        switchyard_admin::CoapRequestError,
                    >,
                > + Send
                + '_,
        >,
    > {
        use switchyard_admin::{CoapMethod, CoapRequestError};
        use switchyard_coap::{Method, RequestError};
        Box::pin(async move {
            let request = switchyard_coap::ServerRequest {
                method: match r.method {
                    CoapMethod::Get => Method::Get,
                    CoapMethod::Post => Method::Post,
                    CoapMethod::Put => Method::Put,
                    CoapMethod::Delete => Method::Delete,
                },
                token: r.token,
                path: r.uri_path,
                content_format: r.content_format,
                payload: r.payload,
            };
            let answer = self
                .ctx
                .coap_requests
                .request(&r.client_id, request, r.timeout)
                .await;
            match answer {
                Ok(resp) => Ok(switchyard_admin::CoapResponse {
                    message_id: resp.message_id,
                    token: resp.token,
                    code: resp.code,
                    payload: resp.payload,
                }),
                Err(RequestError::NotFound) => Err(CoapRequestError::NotFound),
                Err(RequestError::Invalid(why)) => Err(CoapRequestError::Invalid(why.to_owned())),
                Err(
                    e @ (RequestError::Timeout | RequestError::Unanswered | RequestError::Closed),
                ) => Err(CoapRequestError::NoResponse(e.to_string())),
            }
        })
    }
}

#[cfg(test)]
#[path = "gateways_tests.rs"]
mod tests;
