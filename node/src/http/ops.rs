//! Operator endpoints: `/healthz` (liveness: the process answers), `/readyz`
//! (readiness: it can take work), `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use castmesh_cluster::member::NotReady;

use super::AppState;

pub async fn healthz(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "streams": state.ctx.directory.len(),
    }))
}

/// How long one readiness answer is reused: each check makes a synced write, and
/// load balancers (or strangers) may ask many times a second.
const READINESS_REUSE: Duration = Duration::from_secs(1);

/// The last readiness answer; the lock also makes concurrent probes share one check.
#[derive(Default)]
pub struct ReadinessCache(tokio::sync::Mutex<Option<(tokio::time::Instant, Result<(), NotReady>)>>);

/// `/readyz`: 200 when the node can take work (Raft running, this node a member with
/// a leader known, storage taking synced writes; its listeners are bound before it
/// answers at all), else 503 with the reason.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let mut last = state.readiness.0.lock().await;
    let answer = match &*last {
        Some((at, answer)) if at.elapsed() < READINESS_REUSE => answer.clone(),
        _ => {
            let answer = state.ctx.registry.readiness().await;
            *last = Some((tokio::time::Instant::now(), answer.clone()));
            answer
        }
    };
    match answer {
        Ok(()) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "not ready", "reason": reason.to_string() })),
        )
            .into_response(),
    }
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
