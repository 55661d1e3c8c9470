//! Login, logout, dashboard admins and API keys (EMQX's `/login`, `/logout`, `/users`,
//! `/users/{username}/change_pwd`, `/api_key`).

use super::{body, no_content, St};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// `POST /api/v5/login` → `{"token", "must_change_password", "expires_in", "version"}`.
pub async fn login(
    st: St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    let b: LoginBody = body(&raw)?;
    let auth = st.0.auth.clone();
    // Argon2 is deliberately slow: keep it off the async workers.
    let login =
        tokio::task::spawn_blocking(move || auth.login(peer.ip(), &b.username, &b.password))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({
        "token": login.token,
        "must_change_password": login.must_change_password,
        "expires_in": st.0.auth.token_ttl().as_secs(),
        "version": st.0.ctx.version,
        "license": { "edition": "opensource" },
    })))
}

/// `POST /api/v5/logout` → 204.
pub async fn logout(st: St, Extension(p): Extension<Principal>) -> Response {
    if let Principal::User { token, .. } = p {
        st.0.auth.logout(&token);
    }
    no_content()
}

/// `GET /api/v5/users`.
pub async fn users(st: St) -> Json<Value> {
    Json(json!(st.0.auth.users()))
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    description: String,
}

/// `POST /api/v5/users` → 200 with the user.
pub async fn add_user(st: St, raw: Bytes) -> ApiResult<Json<Value>> {
    let b: NewUser = body(&raw)?;
    let auth = st.0.auth.clone();
    let (u, d) = (b.username.clone(), b.description.clone());
    tokio::task::spawn_blocking(move || auth.add_user(&b.username, &b.password, &b.description))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({ "username": u, "description": d })))
}

/// `DELETE /api/v5/users/{username}` → 204.
pub async fn delete_user(
    st: St,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
) -> ApiResult<Response> {
    if matches!(&p, Principal::User { username: me, .. } if *me == username) {
        return Err(ApiError::bad_request("cannot delete yourself"));
    }
    let auth = st.0.auth.clone();
    blocking(move || auth.delete_user(&username)).await?;
    Ok(no_content())
}

#[derive(Deserialize)]
struct ChangePwd {
    old_pwd: String,
    new_pwd: String,
}

/// `POST /api/v5/users/{username}/change_pwd` with `{"old_pwd","new_pwd"}` → 204. A user may
/// change its own password; an API key may change anyone's (it still needs the old one).
pub async fn change_pwd(
    st: St,
    Extension(p): Extension<Principal>,
    Path(username): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let b: ChangePwd = body(&raw)?;
    let keep = match &p {
        Principal::User {
            username: me,
            token,
            ..
        } => {
            if *me != username {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                    "a user may only change its own password",
                ));
            }
            Some(token.clone())
        }
        Principal::ApiKey(_) => None,
    };
    let auth = st.0.auth.clone();
    tokio::task::spawn_blocking(move || {
        auth.change_password(&username, &b.old_pwd, &b.new_pwd, keep.as_deref())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(no_content())
}

/// `GET /api/v5/api_key`.
pub async fn api_keys(st: St) -> Json<Value> {
    Json(json!(st.0.auth.api_keys()))
}

#[derive(Deserialize)]
struct NewKey {
    name: String,
    #[serde(default)]
    desc: String,
    #[serde(default = "yes")]
    enable: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/v5/api_key` → 200 `{name, api_key, api_secret, ...}` (the secret only now).
pub async fn add_api_key(st: St, raw: Bytes) -> ApiResult<Response> {
    let b: NewKey = body(&raw)?;
    let auth = st.0.auth.clone();
    let v = blocking(move || auth.add_api_key(&b.name, &b.desc, b.enable)).await?;
    Ok((StatusCode::OK, Json(v)).into_response())
}

/// `DELETE /api/v5/api_key/{name}` → 204.
pub async fn delete_api_key(st: St, Path(name): Path<String>) -> ApiResult<Response> {
    let auth = st.0.auth.clone();
    blocking(move || auth.delete_api_key(&name)).await?;
    Ok(no_content())
}

/// Runs an admin-store call on the blocking pool: it writes the state store, which syncs to
/// disk before it returns.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}
