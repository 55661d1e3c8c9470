//! The web dashboard: hand-written HTML/CSS/JS embedded at build time (no CDN, no build step).
//! Every dashboard page is a client-side route served by the same `index.html`; unknown
//! `/api/...` paths get the API's JSON 404 instead.

use crate::error::ApiError;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const I18N_JS: &str = include_str!("../assets/i18n.js");
const MQTT_JS: &str = include_str!("../assets/mqtt.js");
const CHART_JS: &str = include_str!("../assets/chart.js");
const SECURITY_JS: &str = include_str!("../assets/security.js");
const RULES_JS: &str = include_str!("../assets/rules.js");
const APP_CSS: &str = include_str!("../assets/app.css");

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Static assets and the page fallback.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    const JS: &str = "text/javascript; charset=utf-8";
    Router::new()
        .route("/assets/app.js", get(|| async { asset(JS, APP_JS) }))
        .route("/assets/i18n.js", get(|| async { asset(JS, I18N_JS) }))
        .route("/assets/mqtt.js", get(|| async { asset(JS, MQTT_JS) }))
        .route("/assets/chart.js", get(|| async { asset(JS, CHART_JS) }))
        .route(
            "/assets/security.js",
            get(|| async { asset(JS, SECURITY_JS) }),
        )
        .route("/assets/rules.js", get(|| async { asset(JS, RULES_JS) }))
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .fallback(page)
}

async fn page(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api") || path.starts_with("/assets/") {
        return ApiError::not_found(format!("no route {path}")).into_response();
    }
    asset("text/html; charset=utf-8", INDEX)
}
