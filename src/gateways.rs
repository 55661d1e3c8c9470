//! Starting and stopping the UDP gateways (MQTT-SN, CoAP, LwM2M), at start-up and at run time
//! from the admin API (`PUT /api/v5/gateways/{name}/enable/{bool}`). Each running gateway has
//! its own cancellation token, a child of the node's: stopping one closes its socket and its
//! clients (reason `server_shutdown`; persistent sessions stay in the bus), starting it again
//! binds its configured address anew.

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
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The UDP gateways this binary carries.
pub const BUILT: [&str; 3] = ["mqttsn", "coap", "lwm2m"];

/// A running gateway: how to stop it, and its tasks (the listener and its clients, which hold
/// the socket), so a stop can wait until the port is free for the next start.
struct Running {
    cancel: CancellationToken,
    tasks: TaskTracker,
}

/// How long a stop waits for the gateway's tasks (clients end at once on cancel; this bounds a
/// stuck one).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts and stops the UDP gateways.
pub struct GatewayRunner {
    config: Arc<Config>,
    bus: BusHandle,
    security: Security,
    root: CancellationToken,
    tracker: TaskTracker,
    running: tokio::sync::Mutex<HashMap<&'static str, Running>>,
    /// The address each gateway got the first time: a restart binds it again, so clients and
    /// operators keep the same port even when the config says port 0.
    bound: parking_lot::Mutex<HashMap<&'static str, SocketAddr>>,
    /// Shared by every CoAP gateway instance, so the admin API reaches the clients of the one
    /// running now, across restarts.
    coap_requests: switchyard_coap::CoapRequester,
}

impl GatewayRunner {
    /// A runner; nothing is started yet.
    pub fn new(
        config: Arc<Config>,
        bus: BusHandle,
        security: Security,
        root: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        GatewayRunner {
            config,
            bus,
            security,
            root,
            tracker,
            running: tokio::sync::Mutex::new(HashMap::new()),
            bound: parking_lot::Mutex::new(HashMap::new()),
            coap_requests: switchyard_coap::CoapRequester::new(),
        }
    }

    /// Starts a gateway (no-op when running); returns its bound address.
    pub async fn start(&self, name: &str) -> anyhow::Result<Option<SocketAddr>> {
        let mut running = self.running.lock().await;
        let Some(&name) = BUILT.iter().find(|g| **g == name) else {
            anyhow::bail!("no gateway {name}");
        };
        if running.contains_key(name) {
            return Ok(None);
        }
        let token = self.root.child_token();
        let tasks = TaskTracker::new();
        let addr = self.spawn(name, token.clone(), tasks.clone()).await?;
        // Closed at once: `wait` completes when the listener and every client task have ended.
        tasks.close();
        // The node's shutdown waits for them too.
        let waited = tasks.clone();
        self.tracker.spawn(async move { waited.wait().await });
        running.insert(
            name,
            Running {
                cancel: token,
                tasks,
            },
        );
        Ok(Some(addr))
    }

    /// Stops a gateway and waits until its socket is closed (so a start right after can bind
    /// the same port); true if it was running.
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
        name: &'static str,
        cancel: CancellationToken,
        tracker: TaskTracker,
    ) -> anyhow::Result<SocketAddr> {
        let c = &self.config;
        let (listener, bind) = match name {
            "mqttsn" => (
                "mqttsn:udp:default",
                c.gateway.mqttsn.listeners.udp.default.bind,
            ),
            "coap" => (
                "coap:udp:default",
                c.gateway.coap.listeners.udp.default.bind,
            ),
            _ => (
                "lwm2m:udp:default",
                c.gateway.lwm2m.listeners.udp.default.bind,
            ),
        };
        let bind = self.bound.lock().get(name).copied().unwrap_or(bind);
        // MQTT-SN spreads its clients over one socket per core (SO_REUSEPORT); the CoAP-based
        // gateways keep one socket.
        let mut sockets = if name == "mqttsn" {
            switchyard_mqttsn::bind_udp(bind)
        } else {
            tokio::net::UdpSocket::bind(bind).await.map(|s| vec![s])
        }
        .with_context(|| format!("listener {listener}: cannot bind {bind}"))?;
        let addr = sockets.first().context("no socket bound")?.local_addr()?;
        self.bound.lock().insert(name, addr);
        match name {
            "mqttsn" => {
                let udp = &c.gateway.mqttsn.listeners.udp.default;
                let gateway = switchyard_mqttsn::MqttSnGateway {
                    bus: self.bus.clone(),
                    settings: Arc::new(settings::mqttsn_settings(c, &self.security)),
                };
                let limits = settings::udp_limits(udp.max_connections, udp.max_conn_rate);
                tracker.spawn(switchyard_mqttsn::serve_udp(
                    sockets,
                    listener.into(),
                    gateway,
                    limits,
                    cancel,
                    tracker.clone(),
                ));
            }
            "coap" => {
                let gateway = switchyard_coap::CoapGateway {
                    bus: self.bus.clone(),
                    settings: Arc::new(settings::coap_settings(c, &self.security)?),
                    requests: self.coap_requests.clone(),
                };
                tracker.spawn(switchyard_coap::serve_udp(
                    sockets.remove(0),
                    listener.into(),
                    gateway,
                    cancel,
                    tracker.clone(),
                ));
            }
            _ => {
                let g = &c.gateway.lwm2m;
                let gateway = switchyard_lwm2m::Lwm2mGateway {
                    bus: self.bus.clone(),
                    settings: Arc::new(settings::lwm2m_settings(c, &self.security)?),
                    objects: Arc::new(crate::startup::lwm2m_objects(g)?),
                };
                tracker.spawn(switchyard_lwm2m::serve_udp(
                    sockets.remove(0),
                    listener.into(),
                    gateway,
                    cancel,
                    tracker.clone(),
                ));
            }
        }
        tracing::info!(listener, %addr, "listener started");
        Ok(addr)
    }
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
