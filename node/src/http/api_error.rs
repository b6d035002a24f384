//! The REST API's errors: `{ "error": { "code", "message" } }` with the status that
//! says what happened, and the JSON body extractor that answers in that form (axum's
//! own rejections are plain text).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::platform::AccountError;
use crate::platform::password::HashError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, for programs: `invalid_request`, `unauthenticated`, `rate_limited`, …
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// Seconds to wait, sent as Retry-After.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// 503 with `Retry-After: 1`: the cluster is electing or cut off, or the node busy.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("valid"));
        if let Some(wait) = self.retry_after {
            headers.insert(header::RETRY_AFTER, wait.into());
        }
        response
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        use AccountError as E;
        let message = e.to_string();
        let (status, code) = match &e {
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            E::SignupClosed => (StatusCode::FORBIDDEN, "signup_closed"),
            E::InviteRequired => (StatusCode::FORBIDDEN, "invite_required"),
            E::InvalidInvite => (StatusCode::FORBIDDEN, "invalid_invite"),
            E::EmailTaken => (StatusCode::CONFLICT, "email_taken"),
            E::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            E::Disabled => (StatusCode::FORBIDDEN, "account_disabled"),
            E::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            E::TooManyAttempts { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            E::NoSuchUser(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::Full | E::TooManyInvites => (StatusCode::FORBIDDEN, "limit_reached"),
            E::Hash(HashError::Busy) | E::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            E::Hash(_) | E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let mut error = ApiError::new(status, code, message);
        if let E::TooManyAttempts { wait_s } = e {
            error.retry_after = Some(wait_s);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            error.retry_after = Some(1);
        }
        error
    }
}

/// A JSON request body, refused in the API's error form when it is not JSON, too
/// large (`http.max_body_bytes`) or not the expected shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

/// axum answers a body of the wrong shape with 422; the API says 400 for every
/// malformed request (docs/api.md), keeping 413 and 415 apart.
fn rejected(rejection: JsonRejection) -> ApiError {
    let (status, code) = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_request"),
    };
    ApiError::new(status, code, rejection.body_text())
}
