//! `GET /api/v1/users`: every account, for admins (the studio's user list; operators
//! also have `castctl user list`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use castmesh_cluster::accounts::Role;
use serde::Serialize;

use super::AppState;
use super::api_error::ApiError;
use super::auth::UserView;
use super::session::SignedIn;

#[derive(Serialize)]
pub struct AdminUserView {
    #[serde(flatten)]
    user: UserView,
    disabled: bool,
}

pub async fn list(
    State(state): State<AppState>,
    SignedIn(signed): SignedIn,
) -> Result<Json<serde_json::Value>, ApiError> {
    if signed.user.role != Role::Admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only admins list accounts",
        ));
    }
    let mut users = state.accounts.users().await?;
    users.sort_by_key(|u| u.id);
    let users: Vec<AdminUserView> = users
        .iter()
        .map(|u| AdminUserView {
            user: UserView::from(u),
            disabled: u.disabled,
        })
        .collect();
    Ok(Json(serde_json::json!({ "users": users })))
}
