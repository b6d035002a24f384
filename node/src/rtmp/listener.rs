//! Accepts RTMP connections, within the configured limits in total and per client
//! address.

use std::net::SocketAddr;
use std::sync::Arc;

use super::connection;
use crate::admission::Slots;
use crate::context::NodeContext;
use crate::metrics::ReasonLabel;
use crate::node::NodeMsg;
use axum::serve::Listener;
use ractor::ActorRef;

pub async fn run<L>(mut listener: L, ctx: Arc<NodeContext>, node: ActorRef<NodeMsg>)
where
    L: Listener<Addr = SocketAddr>,
{
    let rtmp = &ctx.config.rtmp;
    let slots = Slots::new(rtmp.max_connections, rtmp.max_connections_per_ip);
    loop {
        let (socket, peer) = listener.accept().await;
        let slot = match slots.try_acquire(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                tracing::warn!(%peer, "RTMP connection refused: {refusal}");
                ctx.metrics
                    .rtmp_closed
                    .get_or_create(&ReasonLabel {
                        reason: refusal.label(),
                    })
                    .inc();
                drop(socket);
                continue;
            }
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
