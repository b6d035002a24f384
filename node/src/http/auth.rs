//! `/api/v1/auth/*` and `/api/v1/me`: sign up, sign in, sign out (here or
//! everywhere), who am I, change my password. docs/api.md describes each.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use castmesh_cluster::accounts::UserRecord;
use serde::{Deserialize, Serialize};

use super::api_error::{ApiError, JsonBody};
use super::session::{self, SignedIn};
use super::{AppState, ClientAddr};
use crate::platform::accounts::{NewSession, Signup};

/// A user as they see themselves (and as admins see users).
#[derive(Serialize)]
pub struct UserView {
    pub id: u64,
    pub email: String,
    pub display_name: String,
    pub role: &'static str,
    pub created_at: String,
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z); later times
/// are refused where they come in (`platform::catalog`), and clamped here.
pub const MAX_MILLIS: u64 = 253_402_300_799_999;

pub fn rfc3339(ms: u64) -> String {
    let ms = ms.min(MAX_MILLIS);
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            display_name: u.display_name.clone(),
            role: u.role.as_str(),
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupForm {
    email: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    invite: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

/// The answer that carries a new session: in the body for API clients, as a cookie
/// for browsers.
fn signed_in(state: &AppState, status: StatusCode, session: NewSession) -> Response {
    let now = state.ctx.seams.clock.now_ms();
    let max_age = session.expires_at.saturating_sub(now) / 1000;
    let body = serde_json::json!({
        "user": UserView::from(&session.user),
        "token": session.token.expose(),
        "expires_at": rfc3339(session.expires_at),
    });
    let cookie = session::set_cookie(session.token.expose(), max_age, state.tls);
    (
        status,
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".parse().expect("valid")),
        ],
        Json(body),
    )
        .into_response()
}

pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    JsonBody(form): JsonBody<SignupForm>,
) -> Result<Response, ApiError> {
    let signup = Signup {
        email: form.email,
        password: form.password,
        display_name: form.display_name,
        invite: form.invite,
    };
    let session = state.accounts.signup(signup, client).await?;
    Ok(signed_in(&state, StatusCode::CREATED, session))
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    JsonBody(form): JsonBody<LoginForm>,
) -> Result<Response, ApiError> {
    let session = state
        .accounts
        .login(&form.email, &form.password, client)
        .await?;
    Ok(signed_in(&state, StatusCode::OK, session))
}

fn signed_out(state: &AppState) -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session::clear_cookie(state.tls))],
    )
        .into_response()
}

pub async fn logout(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
) -> Result<Response, ApiError> {
    state.accounts.logout(me.session).await?;
    Ok(signed_out(&state))
}

/// Ends every session of the caller, on every device.
pub async fn logout_everywhere(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
) -> Result<Response, ApiError> {
    state.accounts.logout_everywhere(me.user.id).await?;
    Ok(signed_out(&state))
}

pub async fn me(SignedIn(me): SignedIn) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "user": UserView::from(&me.user) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileForm {
    display_name: Option<String>,
}

/// Changes what the caller may change about themselves: the display name.
pub async fn update_me(
    State(state): State<AppState>,
    SignedIn(me): SignedIn,
    JsonBody(form): JsonBody<ProfileForm>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = state
        .accounts
        .set_display_name(&me.user, form.display_name)
        .await?;
    Ok(Json(serde_json::json!({ "user": UserView::from(&user) })))
}

/// A new password ends every session, this one too; the answer carries a new one.
pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    SignedIn(me): SignedIn,
    JsonBody(form): JsonBody<PasswordForm>,
) -> Result<Response, ApiError> {
    let session = state
        .accounts
        .change_password(&me.user, &form.current_password, &form.new_password, client)
        .await?;
    Ok(signed_in(&state, StatusCode::OK, session))
}
