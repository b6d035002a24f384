//! Cross-site request refusal: a request that may change something (any method but
//! GET, HEAD, OPTIONS) and names an `Origin` must come from the node's own origin or
//! one in `http.allowed_origins`. Browsers send `Origin` with every cross-site POST,
//! so a page elsewhere cannot sign someone in or out or act with their cookie;
//! clients that are not browsers (curl, backends) send none and are not affected.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::api_error::ApiError;

pub async fn same_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match check(&state, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refused) => refused.into_response(),
    }
}

/// Whether a request naming an `Origin` comes from this node's own origin or one in
/// `http.allowed_origins` (no `Origin`: not a browser, allowed). The watch socket
/// checks it on its GET: browsers send cookies with a socket any site opens.
pub fn check(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let scheme = if state.tls { "https" } else { "http" };
    let own = !host.is_empty() && origin == format!("{scheme}://{host}");
    let allowed = state
        .ctx
        .config
        .http
        .allowed_origins
        .iter()
        .any(|a| a.trim_end_matches('/') == origin);
    if own || allowed {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_origin",
        format!(
            "requests from {origin} may not change anything here; add it to http.allowed_origins if it is your frontend"
        ),
    ))
}
