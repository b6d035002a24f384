//! Operator endpoints: `/healthz`, `/metrics`, and test-only fault injection.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AppState, error};
use crate::node::NodeMsg;
use crate::stream::registry::StreamId;
use crate::supervision::StreamChild;

pub async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "streams": state.ctx.directory.len(),
    }))
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.ctx.metrics.encode(),
    )
        .into_response()
}

/// `POST /debug/streams/{id}/crash/{actor}`: makes one of the stream's actors panic.
/// Routed only when `debug.fault_injection` is on.
pub async fn crash(
    State(state): State<AppState>,
    Path((id, actor)): Path<(String, String)>,
) -> Response {
    let child: StreamChild = match serde_json::from_value(serde_json::Value::String(actor.clone()))
    {
        Ok(c) => c,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "actor must be ingest, segmenter or viewer-counter",
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
