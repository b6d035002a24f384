//! Accepts RTMP connections, within the configured connection limit.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::Listener;
use ractor::ActorRef;
use tokio::sync::Semaphore;

use super::connection;
use crate::context::NodeContext;
use crate::metrics::ReasonLabel;
use crate::node::NodeMsg;

pub async fn run<L>(mut listener: L, ctx: Arc<NodeContext>, node: ActorRef<NodeMsg>)
where
    L: Listener<Addr = SocketAddr>,
{
    let slots = Arc::new(Semaphore::new(ctx.config.rtmp.max_connections));
    loop {
        let (socket, peer) = listener.accept().await;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = ctx.config.rtmp.max_connections, "RTMP connection refused: connection limit reached");
            ctx.metrics
                .rtmp_closed
                .get_or_create(&ReasonLabel {
                    reason: "connection_limit",
                })
                .inc();
            drop(socket);
            continue;
        };
        let task = tokio::spawn(connection::serve(socket, peer, ctx.clone(), node.clone()));
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = task.await
                && e.is_panic()
            {
                tracing::error!(%peer, "RTMP connection task panicked; connection closed");
                ctx.metrics
                    .rtmp_closed
                    .get_or_create(&ReasonLabel { reason: "panic" })
                    .inc();
            }
            drop(slot);
        });
    }
}
