//! HTTP: LL-HLS delivery, the REST API, the web app (`crate::web`), `/healthz`,
//! `/metrics`, and (only when enabled) fault injection for tests.

pub mod api;
pub mod api_error;
pub mod auth;
pub mod destinations;
#[cfg(feature = "test-hooks")]
mod fault_injection;
pub mod hls;
pub mod ops;
pub mod origin;
pub mod session;
pub mod streams;
pub mod tls;
pub mod users;
pub mod viewer;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ractor::ActorRef;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::cors::{Any, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::admission::Slots;
use crate::deadline_io::{DeadlineIo, missed_deadline};
use crate::metrics::{HttpLabel, ReasonLabel};
use crate::platform::{Accounts, Catalog, Platform};
use crate::stream::context::NodeContext;
use crate::stream::requests::NodeMsg;

/// What every handler shares. One `Arc` around it all: axum clones the state for
/// every request (router, middleware, handler), and ten shared counters touched
/// from both cores per request cost more than the playlist they serve (bench-serve's
/// profile: `drop_in_place<AppState>` alone was 3 % of the node's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub ctx: Arc<NodeContext>,
    pub node: ActorRef<NodeMsg>,
    /// Salt for anonymous viewer identities, so they cannot be recomputed elsewhere.
    pub viewer_salt: u64,
    pub readiness: Arc<ops::ReadinessCache>,
    pub accounts: Arc<Accounts>,
    pub catalog: Arc<Catalog>,
    pub chat: Arc<crate::chat::Hub>,
    pub status_cache: Arc<streams::StatusCache>,
    /// Open watch sockets, in total and per client address.
    pub watch_sockets: Arc<Slots>,
    /// Served over TLS: cookies are marked Secure, the own origin is https.
    pub tls: bool,
}

/// Serves HTTP/1.1 on `listener` until the task is dropped. Each connection holds a
/// slot (in total and per client address) and is bounded in time: its next request's
/// headers within `http.header_timeout` (this also ends idle keep-alive
/// connections), every write within `http.write_timeout`, every handler within
/// `http.request_timeout`. axum's own `serve` sets none of these (hyper's header
/// timeout needs a timer it does not give), hence this loop.
pub async fn serve<L>(
    mut listener: L,
    ctx: Arc<NodeContext>,
    node: ActorRef<NodeMsg>,
    platform: Platform,
    tls: Option<TlsAcceptor>,
) where
    L: Listener<Addr = SocketAddr>,
{
    let config = &ctx.config.http;
    let state = app_state(ctx.clone(), node, platform);
    let app = router(state.clone()).layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        config.request_timeout,
    ));
    let slots = Slots::new(config.max_connections, config.max_connections_per_ip);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    loop {
        let (io, peer) = listener.accept().await;
        let proxies = &config.trusted_proxies;
        let via_proxy = proxies.contains(peer.ip());
        let admitted = if via_proxy {
            slots.try_acquire_shared()
        } else {
            slots.try_acquire(peer.ip())
        };
        let slot = match admitted {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::debug!(%peer, "HTTP connection refused: {refusal}");
                closed(&ctx, refusal.label());
                continue;
            }
        };
        let io = DeadlineIo::new(io, None, config.write_timeout);
        let app = app.clone();
        let state = state.clone();
        let proxies = via_proxy.then(|| proxies.clone());
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let client = match &proxies {
                Some(p) => p.http_client(peer.ip(), req.headers()),
                None => peer.ip(),
            };
            let app = app.clone();
            let state = state.clone();
            async move {
                // HLS, most of what a node serves, skips the router and its layers
                // (see `hls::serve`).
                if let Some(request) = hls::Request::of(&req) {
                    return Ok(hls::serve(&state, request, req.headers(), client).await);
                }
                req.extensions_mut().insert(ConnectInfo(ClientAddr(client)));
                app.oneshot(req.map(Body::new)).await
            }
        });
        let ctx = ctx.clone();
        let http1 = http1.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    let connection = http1.serve_connection(TokioIo::new(io), service);
                    connection.with_upgrades().await
                }
                Some(tls) => {
                    // The handshake is held to the header timeout, as a request is.
                    let limit = ctx.config.http.header_timeout;
                    match tokio::time::timeout(limit, tls.accept(io)).await {
                        Ok(Ok(stream)) => {
                            let connection = http1.serve_connection(TokioIo::new(stream), service);
                            connection.with_upgrades().await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            closed(&ctx, "tls_handshake");
                            Ok(())
                        }
                        Err(_) => {
                            closed(&ctx, "header_timeout");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = served {
                // Clients going away and malformed requests are theirs; timeouts are
                // the server closing on them, and counted.
                let timeout = if e.is_timeout() {
                    Some("header_timeout")
                } else {
                    missed_deadline(&e)
                };
                tracing::debug!(%peer, reason = timeout.unwrap_or("error"), error = %e, "HTTP connection closed");
                if let Some(reason) = timeout {
                    closed(&ctx, reason);
                }
            }
            drop(slot);
        });
    }
}

/// Counts a connection the server refused or closed, by reason.
fn closed(ctx: &NodeContext, reason: &'static str) {
    ctx.metrics
        .http_closed
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

fn app_state(ctx: Arc<NodeContext>, node: ActorRef<NodeMsg>, platform: Platform) -> AppState {
    AppState(Arc::new(Shared {
        viewer_salt: ctx.seams.entropy.next_u64(),
        ctx: ctx.clone(),
        node,
        readiness: Arc::default(),
        accounts: platform.accounts,
        catalog: platform.catalog,
        chat: platform.chat,
        status_cache: Arc::default(),
        watch_sockets: Slots::new(
            ctx.config.chat.max_sockets,
            ctx.config.chat.max_sockets_per_ip,
        ),
        tls: ctx.config.http.tls(),
    }))
}

/// Everything but HLS, which `serve` hands to `hls::serve` before routing.
fn router(state: AppState) -> Router {
    let ctx = &state.ctx;
    let api = Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/logout-everywhere", post(auth::logout_everywhere))
        .route("/me", get(auth::me).patch(auth::update_me))
        .route("/me/password", post(auth::change_password))
        .route("/streams", get(streams::list).post(streams::create))
        .route(
            "/streams/{id}",
            get(streams::show)
                .patch(streams::update)
                .delete(streams::delete),
        )
        .route("/streams/{id}/status", get(streams::status))
        .route("/streams/{id}/start", post(streams::start))
        .route("/streams/{id}/stop", post(streams::stop))
        .route("/streams/{id}/cancel", post(streams::cancel))
        .route("/streams/{id}/rotate-key", post(streams::rotate_key))
        .route("/streams/{id}/live", get(crate::web::watch_socket::upgrade))
        .route(
            "/streams/{id}/destinations",
            get(destinations::list).post(destinations::create),
        )
        .route(
            "/streams/{id}/destinations/{dest}",
            patch(destinations::update).delete(destinations::delete),
        )
        .route(
            "/streams/{id}/destinations/{dest}/start",
            post(destinations::start),
        )
        .route(
            "/streams/{id}/destinations/{dest}/stop",
            post(destinations::stop),
        )
        .route("/users", get(users::list))
        .route("/node/streams", get(api::list))
        .layer(DefaultBodyLimit::max(ctx.config.http.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            origin::same_origin,
        ));
    let app = Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(crate::web::routes());
    #[cfg(feature = "test-hooks")]
    let app = fault_injection::route(app, ctx);
    // Media is already compressed; only playlists and JSON are worth gzip.
    let compress = DefaultPredicate::new().and(NotForContentType::const_new("video/"));
    app.layer(middleware::from_fn_with_state(
        state.clone(),
        count_requests,
    ))
    .layer(CompressionLayer::new().compress_when(compress))
    // Any page may read (players, the seeds' separate frontends); changes are held to
    // the allowed origins by `origin::same_origin`, and no cookie crosses origins.
    .layer(
        CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
    )
    .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    count(&state, route.into(), response.status());
    response
}

/// Counts a request answered, by route and status.
fn count(state: &AppState, route: std::borrow::Cow<'static, str>, status: StatusCode) {
    state
        .ctx
        .metrics
        .http_requests
        .get_or_create(&HttpLabel {
            route,
            status: status.as_u16(),
        })
        .inc();
}

/// The client's address, as handlers extract it (`ConnectInfo<ClientAddr>`): the TCP
/// peer's, or the one a trusted proxy forwarded (`http.trusted_proxies`).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

/// A short plain-text error, as every client (ffmpeg, curl, browsers) can show it.
pub fn error(status: StatusCode, reason: impl Into<String>) -> Response {
    let mut body = reason.into();
    body.push('\n');
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
