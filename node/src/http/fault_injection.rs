//! Fault injection for tests: `POST /debug/streams/{id}/crash/{actor}` makes one of
//! a stream's actors panic. This module exists only with the `test-hooks` feature
//! (never in the binary an operator builds), and routes only when
//! `debug.fault_injection` is on.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{AppState, error};
use crate::stream::context::NodeContext;
use crate::stream::registry::StreamId;
use crate::stream::requests::NodeMsg;
use crate::supervision::StreamChild;

/// Adds the route to `app` when the node's config asks for it.
pub fn route(app: Router<AppState>, ctx: &NodeContext) -> Router<AppState> {
    if !ctx.config.debug.fault_injection {
        return app;
    }
    tracing::warn!("fault injection endpoints are enabled");
    app.route("/debug/streams/{id}/crash/{actor}", post(crash))
}

/// `POST /debug/streams/{id}/crash/{actor}`: makes one of the stream's actors panic.
async fn crash(
    State(state): State<AppState>,
    Path((id, actor)): Path<(String, String)>,
) -> Response {
    let child: StreamChild = match serde_json::from_value(serde_json::Value::String(actor.clone()))
    {
        Ok(c) => c,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "actor must be ingest, segmenter, viewer-counter, relay or restream",
            );
        }
    };
    let Ok(id) = StreamId::parse(&id) else {
        return error(StatusCode::NOT_FOUND, "no such stream");
    };
    let found = state
        .node
        .call(
            |reply| NodeMsg::Crash { id, child, reply },
            Some(Duration::from_secs(5)),
        )
        .await;
    match found {
        Ok(ractor::rpc::CallResult::Success(true)) => (
            StatusCode::ACCEPTED,
            format!("{} crash requested\n", child.name()),
        )
            .into_response(),
        _ => error(StatusCode::NOT_FOUND, "no such stream"),
    }
}
