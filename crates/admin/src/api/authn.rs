//! `/api/v5/authentication/{id}/users`: the built-in user database that MQTT, MQTT-SN, CoAP
//! and LwM2M clients log in with, managed as EMQX 5.8 manages its
//! `password_based:built_in_database` users (EMQX 5.8's REST contract for built-in users).
//!
//! The store is the [`Authenticator`] every gateway checks, so a user created here can connect
//! at once, and a changed or deleted password stops working at once (the authenticator forgets
//! its remembered verifications of that user). Hashing (argon2 or PBKDF2) and the fsynced
//! write to the API-state store run on the blocking pool, never on an async worker.
//! Passwords are never logged or answered.

use super::{body, no_content, St};
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{opt_bool, opt_str, Page, Params};
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use switchyard_auth::{AuthError, Authenticator, UserInfo};

/// The one authenticator with users: EMQX's id for the built-in database.
pub const BUILT_IN: &str = "password_based:built_in_database";

/// The built-in database, if `id` names it. Any other id is EMQX's "User error" 400: the
/// chain holds no such authenticator, or one without users.
fn users_of(st: &St, id: &str) -> ApiResult<Arc<Authenticator>> {
    if id == BUILT_IN {
        Ok(st.0.ctx.authn.clone())
    } else {
        Err(ApiError::bad_request(format!(
            "User error: authenticator {id:?} has no users; the built-in user database is {BUILT_IN}"
        )))
    }
}

fn user_json(u: &UserInfo) -> Value {
    json!({ "user_id": u.user_id, "is_superuser": u.is_superuser })
}

fn not_found() -> ApiError {
    ApiError::not_found("User not found")
}

/// Maps the store's errors onto EMQX's answers.
fn store_error(e: AuthError) -> ApiError {
    match e {
        AuthError::AlreadyExists(_) => ApiError::new(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            "User already exists",
        ),
        AuthError::NotFound(_) => not_found(),
        AuthError::EmptyUserId => ApiError::bad_request("user_id must not be empty"),
        other => {
            tracing::error!(error = %other, "built-in user database: change not saved");
            ApiError::internal(other.to_string())
        }
    }
}

/// Runs a store call that hashes or writes the file on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(store_error)
}

/// `GET /api/v5/authentication/{id}/users?page=&limit=&like_user_id=&is_superuser=` →
/// `{"data": [{user_id, is_superuser}], "meta": {page, limit, count, hasnext}}`, by user id.
pub async fn list(
    st: St,
    Path(id): Path<String>,
    Query(q): Query<Params>,
) -> ApiResult<Json<Value>> {
    let users = users_of(&st, &id)?;
    let page = Page::from(&q)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER", e.message))?;
    let like = opt_str(&q, "like_user_id");
    let superuser = opt_bool(&q, "is_superuser")?;
    let items = users
        .list_users()
        .iter()
        .filter(|u| like.map_or(true, |p| u.user_id.contains(p)))
        .filter(|u| superuser.map_or(true, |s| u.is_superuser == s))
        .map(user_json)
        .collect();
    Ok(Json(page.wrap(items)))
}

#[derive(Deserialize)]
struct NewUser {
    user_id: String,
    password: String,
    #[serde(default)]
    is_superuser: bool,
}

/// `POST /api/v5/authentication/{id}/users` `{user_id, password, is_superuser?}` → 201
/// `{user_id, is_superuser}`; 409 ALREADY_EXISTS for a taken id.
pub async fn create(
    st: St,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Response> {
    let users = users_of(&st, &id)?;
    let b: NewUser = body(&raw)?;
    let user = blocking(move || users.add_user(&b.user_id, &b.password, b.is_superuser)).await?;
    tracing::info!(by = who.name(), user_id = %user.user_id, is_superuser = user.is_superuser,
        "built-in user created");
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

/// `GET /api/v5/authentication/{id}/users/{user_id}` → `{user_id, is_superuser}`; 404.
pub async fn get(st: St, Path((id, user_id)): Path<(String, String)>) -> ApiResult<Json<Value>> {
    let users = users_of(&st, &id)?;
    let user = users.get_user(&user_id).ok_or_else(not_found)?;
    Ok(Json(user_json(&user)))
}

#[derive(Deserialize)]
struct UserUpdate {
    password: Option<String>,
    is_superuser: Option<bool>,
}

/// `PUT /api/v5/authentication/{id}/users/{user_id}` `{password?, is_superuser?}` (at least
/// one) → `{user_id, is_superuser}`; 404.
pub async fn update(
    st: St,
    Extension(who): Extension<Principal>,
    Path((id, user_id)): Path<(String, String)>,
    raw: Bytes,
) -> ApiResult<Json<Value>> {
    let users = users_of(&st, &id)?;
    let b: UserUpdate = body(&raw)?;
    if b.password.is_none() && b.is_superuser.is_none() {
        return Err(ApiError::bad_request(
            "invalid body: give password, is_superuser or both",
        ));
    }
    let password_changed = b.password.is_some();
    let user = blocking(move || users.update_user(&user_id, b.password.as_deref(), b.is_superuser))
        .await?;
    tracing::info!(by = who.name(), user_id = %user.user_id, is_superuser = user.is_superuser,
        password_changed, "built-in user updated");
    Ok(Json(user_json(&user)))
}

/// `DELETE /api/v5/authentication/{id}/users/{user_id}` → 204; 404.
pub async fn delete(
    st: St,
    Extension(who): Extension<Principal>,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let users = users_of(&st, &id)?;
    let deleted = user_id.clone();
    blocking(move || users.delete_user(&user_id)).await?;
    tracing::info!(by = who.name(), user_id = %deleted, "built-in user deleted");
    Ok(no_content())
}
