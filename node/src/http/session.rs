//! Who is asking: the session token from `Authorization: Bearer …` (API clients, the
//! seeds' localStorage) or the `castmesh_session` cookie (the web pages), checked with
//! the cluster (`platform::Accounts::authenticate`).

use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};

use super::api_error::ApiError;
use super::{AppState, ClientAddr};
use crate::platform::AccountError;
use crate::platform::accounts::Signed;

pub const COOKIE: &str = "castmesh_session";

/// The caller's session; a request without a good one is answered 401.
pub struct SignedIn(pub Signed);

/// The token a request carries, if any: the Authorization header wins over the
/// cookie, so an API client is never confused by a browser's cookie.
pub fn token(headers: &HeaderMap) -> Option<&str> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let auth = auth.to_str().ok()?;
        let (scheme, token) = auth.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    // A cookie header is `a=1; b=2`: splitting it is all the parsing needed here.
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(&parts.headers).ok_or(AccountError::Unauthenticated)?;
        let client = parts
            .extensions
            .get::<ConnectInfo<ClientAddr>>()
            .map(|c| c.0.0)
            .ok_or_else(|| ApiError::unavailable("no client address"))?;
        let signed = state.accounts.authenticate(token, client).await?;
        Ok(SignedIn(signed))
    }
}

/// `Option<SignedIn>`: no token is `None`; a token that is not a good session is
/// still refused, so a client learns its session ended.
impl OptionalFromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, ApiError> {
        if token(&parts.headers).is_none() {
            return Ok(None);
        }
        <Self as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// The cookie that carries a new session to a browser: not readable by scripts,
/// not sent with cross-site subrequests or form posts, HTTPS-only when served so.
pub fn set_cookie(token: &str, max_age_s: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}")
        .parse()
        .expect("a token is header-safe")
}

pub fn clear_cookie(secure: bool) -> HeaderValue {
    set_cookie("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_header_wins_over_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; castmesh_session=cms_c".parse().unwrap(),
        );
        assert_eq!(token(&h), Some("cms_c"));
        h.insert(header::AUTHORIZATION, "Bearer cms_b".parse().unwrap());
        assert_eq!(token(&h), Some("cms_b"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(token(&h), None, "another scheme is not a session");
        assert!(
            set_cookie("t", 60, true)
                .to_str()
                .unwrap()
                .ends_with("HttpOnly; SameSite=Lax; Max-Age=60; Secure")
        );
    }
}
