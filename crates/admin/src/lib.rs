//! Switchyard's operator surface on one HTTP listener (default 0.0.0.0:18083): the REST API
//! under `/api/v5` with EMQX's paths and JSON field names, Prometheus text at
//! `/api/v5/prometheus/stats`, the OpenAPI document, and the web dashboard at `/`.
//!
//! Owns: the dashboard admins and API keys (kinds `admin_users` and `api_keys` in the API-state
//! store the binary opens, `switchyard_state`, with an in-memory view the store's feed keeps
//! current; the `admin.json` of earlier versions is imported once), login tokens, and the HTTP
//! routes. Knows the bus only through `BusHandle`'s admin calls and the config,
//! and the clients' user database only through `switchyard_auth::Authenticator`; it never
//! names a gateway crate: the binary hands it its gateway table ([`AdminContext::gateways`],
//! `switchyard_net` descriptors), from which the gateway list, the protocol filters, the
//! namespaces and the metric labels derive.
//!
//! Invariants: every route but `GET /status`, `POST /api/v5/login`, the OpenAPI document and
//! the dashboard's static assets requires a bearer token or an API key; request input never
//! panics a handler (errors are `{"code","message"}` with a 4xx status).

mod api;
mod auth;
pub mod ctl;
mod dashboard;
mod error;
mod json;
mod time;
mod view;

pub use api::psk::PSK_KIND;
pub use api::trace::{
    PayloadEncode, TraceControl, TraceError, TraceFormatter, TraceInfo, TraceKind, TraceSpec,
    MAX_TRACES,
};
pub use error::ApiError;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use switchyard_bus::BusHandle;
use switchyard_config::Config;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a browser may take over its TLS handshake on the HTTPS listener.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Everything the admin API needs from the binary.
#[derive(Clone)]
pub struct AdminContext {
    /// The bus every gateway publishes into.
    pub bus: BusHandle,
    /// The built-in user database every gateway authenticates against; the
    /// `/authentication/password_based:built_in_database/users` routes manage it.
    pub authn: Arc<switchyard_auth::Authenticator>,
    /// The chain of authenticators (`/api/v5/authentication`), shared with every gateway.
    pub chain: Arc<switchyard_auth::Chain>,
    /// The ACL every gateway checks (`/api/v5/authorization`).
    pub authz: Arc<switchyard_auth::Authorizer>,
    /// The banned-clients list every gateway checks at connect (`/api/v5/banned`).
    pub banned: Arc<switchyard_auth::Banned>,
    /// The topic rewrite rules every gateway applies (`/api/v5/mqtt/topic_rewrite`).
    pub rewrite: Arc<switchyard_auth::Rewriter>,
    /// The API-state store (the same one the authenticator writes): admins and API keys live
    /// there.
    pub state: switchyard_state::SharedState,
    /// The effective configuration.
    pub config: Arc<Config>,
    /// Bound listener addresses by id (`mqtt:tcp:default` → `127.0.0.1:1883`), as in the ready
    /// file.
    pub listeners: BTreeMap<String, String>,
    /// The binary's gateway table: every protocol it carries (MQTT included), in display
    /// order.
    pub gateways: Vec<&'static switchyard_net::GatewayDescriptor>,
    /// The binary's version.
    pub version: &'static str,
    /// Starts and stops gateways at run time; `None`: the configured state is final.
    pub gateway_control: Option<Arc<dyn GatewayControl>>,
    /// Sends server-initiated CoAP requests (docs/coap.md §3.10); `None`: the request API
    /// answers 404.
    pub coap_requests: Option<Arc<dyn CoapRequests>>,
    /// The log traces (`/api/v5/trace`); `None`: those routes answer 404.
    pub traces: Option<Arc<dyn TraceControl>>,
    /// The rule engine (`/api/v5/rules`, `/connectors`, `/actions`); `None`: those routes
    /// answer 404.
    pub rules: Option<Arc<switchyard_rules::RuleEngine>>,
    /// The other nodes of the cluster (`/api/v5/nodes`, `/status`); `None` on a single node.
    pub cluster: Option<Arc<dyn ClusterView>>,
}

/// The cluster as the admin API shows it; the binary implements it over the cluster link.
pub trait ClusterView: Send + Sync {
    /// Every other node heard from recently, by name.
    fn peers(&self) -> Vec<PeerNode>;
    /// Whether this node's link to the others is up right now.
    fn connected(&self) -> bool;
}

/// Another node, as it last described itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerNode {
    /// Its `node.name`.
    pub name: String,
    /// Heard from within the last few heartbeats.
    pub running: bool,
    /// Its version.
    pub version: String,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Connections open on it.
    pub connections: u64,
}

/// A CoAP request method the request API may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoapMethod {
    /// 0.01 GET.
    Get,
    /// 0.02 POST.
    Post,
    /// 0.03 PUT.
    Put,
    /// 0.04 DELETE.
    Delete,
}

/// A server-initiated CoAP request (docs/coap.md §3.10), validated from the HTTP body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoapRequest {
    /// The connected client (namespace `coap`).
    pub client_id: String,
    /// The method.
    pub method: CoapMethod,
    /// The token, at most 8 bytes (empty: the gateway picks one).
    pub token: Vec<u8>,
    /// Uri-Path segments (EMQX sends none; `uri` is our extension).
    pub uri_path: Vec<String>,
    /// The Content-Format option (0 text/plain, 50 application/json, 42 octet-stream).
    pub content_format: Option<u16>,
    /// The body (already base64-decoded for octet-stream).
    pub payload: Vec<u8>,
    /// How long to wait for the device.
    pub timeout: std::time::Duration,
}

/// The device's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoapResponse {
    /// The response's message id.
    pub message_id: u16,
    /// The response's token.
    pub token: Vec<u8>,
    /// The response code (`class << 5 | detail`, 0x45 for 2.05).
    pub code: u8,
    /// The body.
    pub payload: Vec<u8>,
}

/// Why a CoAP request has no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoapRequestError {
    /// No connected client with that id: 404 CLIENT_NOT_FOUND.
    NotFound,
    /// No response (timeout, RST, the client left): 504 CLIENT_NOT_RESPONSE.
    NoResponse(String),
    /// The gateway refused the request as malformed: 400.
    Invalid(String),
}

/// What the binary lets the admin API do with the CoAP gateway's clients.
pub trait CoapRequests: Send + Sync {
    /// Sends `request` and waits (up to its timeout) for the client's response.
    fn request(
        &self,
        request: CoapRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<CoapResponse, CoapRequestError>> + Send + '_>,
    >;
}

impl std::fmt::Debug for dyn CoapRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CoapRequests")
    }
}

/// What the binary lets the admin API do with its gateways at run time.
pub trait GatewayControl: Send + Sync {
    /// Whether the gateway is running now.
    fn is_running(&self, name: &str) -> bool;
    /// Starts (binding its configured listener) or stops (closing its clients) a gateway.
    fn set_enabled<'a>(
        &'a self,
        name: &'a str,
        enable: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

impl std::fmt::Debug for dyn GatewayControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayControl")
    }
}

/// The admin service, ready to serve.
#[derive(Clone)]
pub struct Admin {
    state: Arc<api::State>,
}

pub use auth::{OpenError, ADMIN_USERS_KIND, API_KEYS_KIND, LEGACY_ADMIN_FILE};

impl Admin {
    /// Loads the admins and API keys from `ctx.state` (importing the `admin.json` of an earlier
    /// version from `node.data_dir` once; creating the default admin on first start).
    pub fn open(ctx: AdminContext) -> Result<Admin, OpenError> {
        let d = &ctx.config.dashboard;
        let auth = auth::AuthStore::open(
            ctx.state.clone(),
            Some(&ctx.config.node.data_dir),
            &d.default_username,
            &d.default_password,
            d.token_expiry.as_std(),
            d.login_max_failures,
        )?;
        Ok(Admin {
            state: Arc::new(api::State::new(ctx, auth)),
        })
    }

    /// The view of the admins and keys, for `switchyard_state::follow`, so changes arriving on
    /// the store's feed reach it.
    pub fn state_view(&self) -> Arc<dyn switchyard_state::StateView> {
        self.state.auth.clone()
    }

    fn app(&self) -> axum::Router {
        api::router(self.state.clone()).merge(dashboard::router())
    }

    /// Serves HTTPS on `listener` until `cancel` fires: each accepted connection does its TLS
    /// handshake in its own task (bounded by a timeout), then HTTP/1.1 on the same routes.
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        acceptor: switchyard_net::tls::TlsAcceptor,
        cancel: CancellationToken,
    ) {
        let app = self.app();
        loop {
            let (tcp, peer) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(listener = "dashboard:https:default", error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (acceptor, app, cancel) = (acceptor.clone(), app.clone(), cancel.clone());
            tokio::spawn(async move {
                let handshake = switchyard_net::tls::accept(&acceptor, tcp, TLS_HANDSHAKE_TIMEOUT);
                let tls = match handshake.await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "dashboard TLS handshake did not complete");
                        return;
                    }
                };
                let service = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        // What `into_make_service_with_connect_info` gives the HTTP listener.
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        let mut app = app.clone();
                        async move { tower::Service::call(&mut app, req).await }
                    },
                );
                let conn = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .http1_only()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .into_owned();
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    r = conn => if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "dashboard HTTPS connection ended");
                    },
                }
            });
        }
    }

    /// Serves HTTP on `listener` until `cancel` fires.
    pub async fn serve(self, listener: TcpListener, cancel: CancellationToken) {
        let app = self.app();
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
        if let Err(e) = served {
            tracing::error!(listener = "dashboard:http:default", error = %e, "admin listener failed");
        }
    }
}
