//! The pages: rendered here from templates (node/web/templates) with what the server
//! knows when asked (who is signed in, a stream's record); the scripts keep them
//! current from the API and the watch socket.

use std::convert::Infallible;

use askama::Template;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use castmesh_cluster::StreamId;
use castmesh_cluster::accounts::{Role, UserRecord};
use serde::Deserialize;

use super::assets::HLS_JS_VERSION;
use crate::config::SignupPolicy;
use crate::http::AppState;
use crate::http::session::SignedIn;
use crate::http::streams::{self, StreamView};
use crate::platform::catalog::CatalogError;

/// Scripts only from this node, no inline code, nothing framed: what a page shows
/// (titles, chat) cannot run as code even if an escape were missed. `connect-src
/// 'self'` covers the watch socket (ws:/wss: to this origin); hls.js runs its
/// transmuxer in a worker made from a blob.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; \
frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Who is looking at a page. A stale or unknown cookie means signed out: a page never
/// fails over it (the API answers 401 for the same cookie).
pub struct PageUser(pub Option<UserRecord>);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let signed =
            <SignedIn as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
                .await;
        Ok(PageUser(signed.ok().flatten().map(|s| s.0.user)))
    }
}

/// The signed-in person in the page's header.
pub struct Nav {
    pub name: String,
    pub admin: bool,
}

impl PageUser {
    fn nav(&self) -> Option<Nav> {
        self.0.as_ref().map(|u| Nav {
            name: u.display_name.clone(),
            admin: u.role == Role::Admin,
        })
    }
}

fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [
                // Pages show who is signed in: never cached.
                (header::CACHE_CONTROL, "no-store"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::REFERRER_POLICY, "same-origin"),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page template failed");
            crate::http::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be made",
            )
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct Message {
    nav: Option<Nav>,
    heading: String,
    text: String,
}

fn message(status: StatusCode, nav: Option<Nav>, heading: &str, text: String) -> Response {
    let page = Message {
        nav,
        heading: heading.into(),
        text,
    };
    render(status, &page)
}

#[derive(Template)]
#[template(path = "directory.html")]
struct Directory {
    nav: Option<Nav>,
}

pub async fn directory(user: PageUser) -> Response {
    render(StatusCode::OK, &Directory { nav: user.nav() })
}

#[derive(Template)]
#[template(path = "watch.html")]
struct Watch {
    nav: Option<Nav>,
    stream: StreamView,
    owner: String,
    hls_version: &'static str,
}

pub async fn watch(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
) -> Response {
    let nav = user.nav();
    let missing = |nav| {
        let text = format!("There is no stream {id:?} on this server. It may have been deleted.");
        message(StatusCode::NOT_FOUND, nav, "No such stream", text)
    };
    let Ok(stream_id) = StreamId::parse(&id) else {
        return missing(nav);
    };
    match state.catalog.get(&stream_id).await {
        Ok((record, _)) => {
            let stream = streams::view(&state, &record, None);
            let owner = stream
                .owner
                .as_ref()
                .map_or_else(String::new, |o| o.display_name.clone());
            let page = Watch {
                nav,
                stream,
                owner,
                hls_version: HLS_JS_VERSION,
            };
            render(StatusCode::OK, &page)
        }
        Err(CatalogError::NotFound(_)) => missing(nav),
        Err(e) => unavailable(nav, e),
    }
}

fn unavailable(nav: Option<Nav>, e: CatalogError) -> Response {
    let text = format!("The cluster cannot answer right now ({e}). Reload in a moment.");
    let mut response = message(StatusCode::SERVICE_UNAVAILABLE, nav, "Try again", text);
    response.headers_mut().insert(header::RETRY_AFTER, 1.into());
    response
}

#[derive(Template)]
#[template(path = "studio.html")]
struct Studio {
    nav: Option<Nav>,
    admin: bool,
    can_create: bool,
    rtmp_server: String,
}

pub async fn studio(State(state): State<AppState>, user: PageUser) -> Response {
    let Some(me) = &user.0 else {
        return Redirect::to("/login?next=/studio").into_response();
    };
    let page = Studio {
        admin: me.role == Role::Admin,
        can_create: me.role != Role::Viewer,
        rtmp_server: streams::rtmp_server(&state.ctx.config),
        nav: user.nav(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a path on this site only (`/x`, not `//host` or
/// `https://…`), so a link cannot send someone elsewhere. Browsers drop tabs and line
/// breaks from URLs (`/\t/host` is `//host`) and read `\` as `/`: a path with any
/// control character, space or backslash is refused whole.
fn local_path(next: Option<String>) -> String {
    next.filter(|n| {
        n.starts_with('/')
            && !n.starts_with("//")
            && !n
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    })
    .unwrap_or_else(|| "/".into())
}

#[derive(Template)]
#[template(path = "login.html")]
struct Login {
    nav: Option<Nav>,
    next: String,
}

pub async fn login(user: PageUser, Query(q): Query<Next>) -> Response {
    let page = Login {
        nav: user.nav(),
        next: local_path(q.next),
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "signup.html")]
struct Signup {
    nav: Option<Nav>,
    next: String,
    /// What the node's `accounts.signup` allows: the invitation field, or no form.
    invite: bool,
    closed: bool,
}

pub async fn signup(
    State(state): State<AppState>,
    user: PageUser,
    Query(q): Query<Next>,
) -> Response {
    let policy = state.accounts.config().signup;
    let page = Signup {
        nav: user.nav(),
        next: local_path(q.next),
        invite: policy == SignupPolicy::Invite,
        closed: policy == SignupPolicy::Closed,
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        let next = |s: &str| local_path(Some(s.into()));
        assert_eq!(next("/studio"), "/studio");
        assert_eq!(next("/watch/a?b=1"), "/watch/a?b=1");
        for away in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "studio",
            "",
        ] {
            assert_eq!(next(away), "/", "{away:?}");
        }
        assert_eq!(local_path(None), "/");
    }
}
