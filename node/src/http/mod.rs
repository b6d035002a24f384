//! HTTP: LL-HLS delivery, the REST API, `/healthz`, `/metrics`, and (only when
//! enabled) fault injection for tests.

pub mod api;
pub mod hls;
pub mod ops;
pub mod viewer;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::Listener;
use ractor::ActorRef;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::cors::{Any, CorsLayer};

use crate::context::NodeContext;
use crate::metrics::HttpLabel;
use crate::node::NodeMsg;

#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<NodeContext>,
    pub node: ActorRef<NodeMsg>,
    /// Salt for anonymous viewer identities, so they cannot be recomputed elsewhere.
    pub viewer_salt: u64,
}

pub async fn serve<L>(listener: L, ctx: Arc<NodeContext>, node: ActorRef<NodeMsg>)
where
    L: Listener<Addr = SocketAddr>,
{
    let app = router(ctx, node);
    if let Err(e) = axum::serve(
        HttpListener(listener),
        app.into_make_service_with_connect_info::<PeerAddr>(),
    )
    .await
    {
        tracing::error!(error = %e, "HTTP server stopped");
    }
}

pub fn router(ctx: Arc<NodeContext>, node: ActorRef<NodeMsg>) -> Router {
    let state = AppState {
        viewer_salt: ctx.seams.entropy.next_u64(),
        ctx: ctx.clone(),
        node,
    };
    let mut app = Router::new()
        .route("/hls/{id}/index.m3u8", get(hls::multivariant))
        .route("/hls/{id}/media.m3u8", get(hls::media_playlist))
        .route("/hls/{id}/{file}", get(hls::media))
        .route("/api/v1/streams", get(api::list))
        .route("/api/v1/streams/{id}", get(api::show))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics));
    if ctx.config.debug.fault_injection {
        tracing::warn!("fault injection endpoints are enabled");
        app = app.route("/debug/streams/{id}/crash/{actor}", post(ops::crash));
    }
    // Media is already compressed; only playlists and JSON are worth gzip.
    let compress = DefaultPredicate::new().and(NotForContentType::const_new("video/"));
    app.layer(middleware::from_fn_with_state(
        state.clone(),
        count_requests,
    ))
    .layer(CompressionLayer::new().compress_when(compress))
    .layer(CorsLayer::new().allow_origin(Any).allow_methods([
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
    ]))
    .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    state
        .ctx
        .metrics
        .http_requests
        .get_or_create(&HttpLabel {
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// The client's address, for any listener the network seam provides (axum only
/// implements `ConnectInfo` for its own `TcpListener`).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// Wraps the seam's listener so [`PeerAddr`] can be implemented for it.
struct HttpListener<L>(L);

impl<L: Listener<Addr = SocketAddr>> Listener for HttpListener<L> {
    type Io = L::Io;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (Self::Io, Self::Addr)> + Send {
        self.0.accept()
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl<L: Listener<Addr = SocketAddr>>
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, HttpListener<L>>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, HttpListener<L>>) -> Self {
        Self(*stream.remote_addr())
    }
}

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
