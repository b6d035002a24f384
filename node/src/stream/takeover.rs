//! A node that becomes a stream's origin continues the stream where it was.
//!
//! When the previous origin died (or its publisher moved here), the nodes that
//! served the stream as edges still hold its window. The new origin asks every
//! other node for its copy (a replay-only subscription), keeps the most advanced
//! one, and continues its run id and media sequence after a discontinuity, so on
//! every edge the sequence never goes back and nothing listed is renamed.

use std::time::Duration;

use tokio::task::JoinSet;

use super::registry::StreamId;
use crate::context::NodeContext;
use crate::hls::window::Replay;

/// Longest a publish waits for the other nodes' copies of the stream.
const ASK_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long the other nodes have to answer once one has.
const AFTER_FIRST_ANSWER: Duration = Duration::from_millis(250);

/// The most advanced copy of stream `id` held by another node, if any answers.
pub async fn find_window(ctx: &NodeContext, id: &StreamId) -> Option<Replay> {
    let mut asks = JoinSet::new();
    for (node, addr) in ctx.registry.peers() {
        let mesh = ctx.mesh.clone()?;
        let id = id.clone();
        asks.spawn(async move {
            let ask = mesh.subscribe(addr, node, id.as_str(), true);
            match tokio::time::timeout(ASK_TIMEOUT, ask).await {
                Ok(Ok((replay, _))) => Some(replay),
                _ => None,
            }
        });
    }
    // A node that died (often the old origin) never answers; the first answer comes
    // from a live edge, and the others that are alive answer about as fast.
    let mut deadline = tokio::time::Instant::now() + ASK_TIMEOUT;
    let mut answers = Vec::new();
    while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, asks.join_next()).await {
        if let Ok(Some(replay)) = answer {
            answers.push(replay);
            deadline = deadline.min(tokio::time::Instant::now() + AFTER_FIRST_ANSWER);
        }
    }
    asks.abort_all();
    let best = answers
        .into_iter()
        .filter(|r| !r.events.is_empty())
        .max_by_key(Replay::progress)?;
    tracing::info!(stream = %id, run = best.run, next_msn = best.next_msn, "found where the stream was");
    Some(best)
}
