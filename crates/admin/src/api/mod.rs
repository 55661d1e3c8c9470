//! The `/api/v5` routes, the authentication middleware and the shared handler state.

mod authn;
mod authn_chain;
mod authz;
mod banned;
mod broker;
mod clients;
mod coap;
mod gateways;
mod lwm2m;
mod messages;
mod openapi;
mod ops;
mod prometheus;
pub mod psk;
mod rules;
mod session;
pub mod trace;

use crate::auth::{AuthStore, Principal};
use crate::error::{ApiError, ApiResult};
use crate::AdminContext;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use base64::Engine;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::SystemTime;
use switchyard_net::GatewayDescriptor;

/// What every handler sees.
pub struct State {
    /// From the binary.
    pub ctx: AdminContext,
    /// Admins, keys, tokens.
    pub auth: Arc<AuthStore>,
    /// When the admin service started (gateway `started_at`).
    pub started_at: SystemTime,
}

impl State {
    /// Wraps the context and the auth store.
    pub fn new(ctx: AdminContext, auth: AuthStore) -> Self {
        State {
            ctx,
            auth: Arc::new(auth),
            started_at: SystemTime::now(),
        }
    }

    /// The node name (`switchyard@127.0.0.1`).
    pub fn node(&self) -> &str {
        &self.ctx.config.node.name
    }

    /// Protocol `name` from the binary's gateway table, when this binary carries it.
    pub fn protocol(&self, name: &str) -> Option<&'static GatewayDescriptor> {
        self.ctx.gateways.iter().copied().find(|g| g.name == name)
    }
}

/// Shared state extractor.
pub type St = AxState<Arc<State>>;

/// Parses a JSON body into `T`, answering 400 with our error shape on failure.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Every route.
pub fn router(state: Arc<State>) -> Router {
    let protected = Router::new()
        .route("/api/v5/logout", post(session::logout))
        .route("/api/v5/banned", get(banned::list).post(banned::create))
        .route("/api/v5/banned/:as/:who", delete(banned::delete))
        .route("/api/v5/psk", get(psk::list).post(psk::create))
        .route("/api/v5/psk/:identity", delete(psk::delete))
        .route(
            "/api/v5/trace",
            get(trace::list).post(trace::create).delete(trace::clear),
        )
        .route("/api/v5/trace/:name", delete(trace::delete))
        .route("/api/v5/trace/:name/stop", put(trace::stop))
        .route("/api/v5/trace/:name/download", get(trace::download))
        .route("/api/v5/trace/:name/log", get(trace::log))
        .route("/api/v5/trace/:name/log_detail", get(trace::log_detail))
        .route(
            "/api/v5/mqtt/delayed",
            get(ops::delayed_settings).put(ops::put_delayed_settings),
        )
        .route("/api/v5/mqtt/delayed/messages", get(ops::delayed_messages))
        .route(
            "/api/v5/mqtt/delayed/messages/:msgid",
            get(ops::delayed_message).delete(ops::delete_delayed_message),
        )
        .route(
            "/api/v5/mqtt/auto_subscribe",
            get(ops::auto_subscribe).put(ops::put_auto_subscribe),
        )
        .route(
            "/api/v5/mqtt/topic_rewrite",
            get(ops::topic_rewrite).put(ops::put_topic_rewrite),
        )
        .route("/api/v5/users", get(session::users).post(session::add_user))
        .route("/api/v5/users/:username", delete(session::delete_user))
        .route(
            "/api/v5/users/:username/change_pwd",
            post(session::change_pwd),
        )
        .route(
            "/api/v5/api_key",
            get(session::api_keys).post(session::add_api_key),
        )
        .route("/api/v5/api_key/:name", delete(session::delete_api_key))
        .route(
            "/api/v5/authentication",
            get(authn_chain::list).post(authn_chain::create),
        )
        .route("/api/v5/authentication/order", put(authn_chain::order))
        .route(
            "/api/v5/authorization/sources",
            get(authz::sources).post(authz::create),
        )
        .route("/api/v5/authorization/sources/order", put(authz::order))
        .route(
            "/api/v5/authorization/sources/:type",
            get(authz::source).put(authz::update).delete(authz::delete),
        )
        .route(
            "/api/v5/authorization/sources/:type/status",
            get(authz::status),
        )
        .route(
            "/api/v5/authorization/sources/:type/move",
            post(authz::move_to),
        )
        .route(
            "/api/v5/authorization/settings",
            get(authz::settings).put(authz::put_settings),
        )
        .route("/api/v5/authorization/cache", delete(authz::clean_cache))
        .route(
            "/api/v5/authentication/:id",
            get(authn_chain::get)
                .put(authn_chain::update)
                .delete(authn_chain::delete),
        )
        .route(
            "/api/v5/authentication/:id/position/:position",
            put(authn_chain::position),
        )
        .route(
            "/api/v5/authentication/:id/move",
            post(authn_chain::move_legacy),
        )
        .route(
            "/api/v5/authentication/:id/status",
            get(authn_chain::status),
        )
        .route(
            "/api/v5/authentication/:id/users",
            get(authn::list).post(authn::create),
        )
        .route(
            "/api/v5/authentication/:id/users/:user_id",
            get(authn::get).put(authn::update).delete(authn::delete),
        )
        .route("/api/v5/stats", get(broker::stats))
        .route("/api/v5/metrics", get(broker::metrics))
        .route("/api/v5/nodes", get(broker::nodes))
        .route("/api/v5/nodes/:node", get(broker::node))
        .route("/api/v5/listeners", get(broker::listeners))
        .route("/api/v5/clients", get(clients::list))
        .route(
            "/api/v5/clients/:clientid",
            get(clients::get).delete(clients::kick),
        )
        .route(
            "/api/v5/clients/:clientid/subscriptions",
            get(clients::subscriptions),
        )
        .route(
            "/api/v5/clients/:clientid/subscribe",
            post(clients::subscribe),
        )
        .route(
            "/api/v5/clients/:clientid/subscribe/bulk",
            post(clients::subscribe_bulk),
        )
        .route(
            "/api/v5/clients/:clientid/unsubscribe",
            post(clients::unsubscribe),
        )
        .route("/api/v5/subscriptions", get(messages::subscriptions))
        .route("/api/v5/topics", get(messages::topics))
        .route("/api/v5/publish", post(messages::publish))
        .route("/api/v5/publish/bulk", post(messages::publish_bulk))
        .route(
            "/api/v5/mqtt/retainer/messages",
            get(messages::retained_list),
        )
        .route(
            "/api/v5/mqtt/retainer/message/*topic",
            get(messages::retained_get).delete(messages::retained_delete),
        )
        .route("/api/v5/protocols", get(gateways::protocols))
        .route("/api/v5/gateways", get(gateways::list))
        .route("/api/v5/gateways/:name", get(gateways::get))
        .route(
            "/api/v5/gateways/:name/enable/:enable",
            put(gateways::enable),
        )
        .route("/api/v5/gateways/:name/clients", get(gateways::clients))
        .route(
            "/api/v5/gateways/:name/clients/:clientid",
            get(gateways::client).delete(gateways::kick),
        )
        .route(
            "/api/v5/gateways/:name/clients/:clientid/subscriptions",
            get(gateways::subscriptions).post(gateways::subscribe),
        )
        .route(
            "/api/v5/gateways/:name/clients/:clientid/:action",
            post(client_action).get(lwm2m::lookup),
        )
        .route(
            "/api/v5/gateways/:name/clients/:clientid/subscriptions/*topic",
            delete(gateways::unsubscribe),
        );
    // EMQX 5 serves the Prometheus endpoint without credentials unless
    // prometheus.enable_basic_auth is set.
    let prometheus = Router::new()
        .route("/api/v5/prometheus/stats", get(prometheus::stats))
        .route(
            "/api/v5/prometheus/data_integration",
            get(rules::prometheus),
        );
    let (open, protected) = if state.ctx.config.prometheus.enable_basic_auth {
        (Router::new(), protected.merge(prometheus))
    } else {
        (prometheus, protected)
    };
    let protected = protected
        .merge(rules::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    Router::new()
        .merge(open)
        .route("/status", get(broker::status))
        .route("/api/v5/status", get(broker::status))
        .route("/api/v5/login", post(session::login))
        .route("/api-docs/openapi.json", get(openapi::document))
        .merge(protected)
        .with_state(state)
}

/// `POST /api/v5/gateways/{name}/clients/{clientid}/{action}`: the CoAP request API
/// (docs/coap.md §3.10) or the LwM2M helpers (docs/lwm2m.md §4.11).
async fn client_action(
    st: St,
    Path((name, id, action)): Path<(String, String, String)>,
    q: Query<crate::json::Params>,
    raw: Bytes,
) -> ApiResult<Response> {
    if name == "coap" && action == "request" {
        return coap::request(st, id, raw)
            .await
            .map(IntoResponse::into_response);
    }
    lwm2m::action(st, Path((name, id, action)), q).await
}

/// Bearer token or HTTP Basic API key; a user still on its default password may only change
/// it or log out.
async fn require_auth(st: St, mut req: Request, next: Next) -> Response {
    let principal = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| authenticate(&st.0.auth, v));
    let Some(principal) = principal else {
        return ApiError::unauthorized("missing or invalid token or API key").into_response();
    };
    if let Principal::User {
        must_change_password: true,
        ..
    } = &principal
    {
        let path = req.uri().path();
        if !(path.ends_with("/change_pwd") || path == "/api/v5/logout") {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "PASSWORD_CHANGE_REQUIRED",
                "change the default password first (POST /api/v5/users/{username}/change_pwd)",
            )
            .into_response();
        }
    }
    tracing::debug!(who = principal.name(), method = %req.method(), path = %req.uri().path(), "admin API request");
    req.extensions_mut().insert(principal);
    next.run(req).await
}

fn authenticate(auth: &AuthStore, value: &str) -> Option<Principal> {
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        auth.check_token(rest)
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (key, secret) = text.split_once(':')?;
        auth.check_api_key(key, secret)
    } else {
        None
    }
}
