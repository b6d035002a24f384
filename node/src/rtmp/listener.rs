//! Accepts RTMP connections, within the configured limits in total and per client
//! address. A connection from a trusted TCP load balancer starts with a PROXY
//! protocol header naming the client, whose address the limits then count.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::connection;
use super::read_ticks::ReadTicks;
use crate::admission::{Refusal, Slot, Slots};
use crate::client_addr::{self, ProxyHeader};
use crate::metrics::ReasonLabel;
use crate::stream::context::NodeContext;
use crate::stream::requests::NodeMsg;
use axum::serve::Listener;
use ractor::ActorRef;

pub async fn run<L>(mut listener: L, ctx: Arc<NodeContext>, node: ActorRef<NodeMsg>)
where
    L: Listener<Addr = SocketAddr>,
{
    let rtmp = &ctx.config.rtmp;
    let slots = Slots::new(rtmp.max_connections, rtmp.max_connections_per_ip);
    // One grid for all of the node's publishers, so one wake-up serves them all.
    let ticks = ReadTicks::new(rtmp.read_interval);
    loop {
        let (socket, peer) = listener.accept().await;
        let (ctx, node, slots, ticks) = (ctx.clone(), node.clone(), slots.clone(), ticks.clone());
        if ctx.config.rtmp.trusted_proxies.contains(peer.ip()) {
            // The client's address is known only once its header is read: admitted
            // then, in the connection's own task.
            tokio::spawn(async move {
                let Some((socket, client, early)) = proxied(socket, peer, &ctx).await else {
                    return;
                };
                if let Some(slot) = admit(&slots, client, &ctx) {
                    serve(socket, client, early, slot, ctx, node, ticks).await;
                }
            });
            continue;
        }
        if let Some(slot) = admit(&slots, peer, &ctx) {
            tokio::spawn(serve(socket, peer, Vec::new(), slot, ctx, node, ticks));
        }
    }
}

fn admit(slots: &Arc<Slots>, client: SocketAddr, ctx: &NodeContext) -> Option<Slot> {
    slots
        .try_acquire(client.ip())
        .map_err(|refusal: Refusal| {
            tracing::warn!(peer = %client, "RTMP connection refused: {refusal}");
            closed(ctx, refusal.label());
        })
        .ok()
}

fn closed(ctx: &NodeContext, reason: &'static str) {
    ctx.metrics
        .rtmp_closed
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

/// Reads the PROXY header a trusted proxy starts with, within the handshake timeout;
/// returns the client's address and the bytes read past the header.
async fn proxied<S>(
    mut socket: S,
    proxy: SocketAddr,
    ctx: &NodeContext,
) -> Option<(S, SocketAddr, Vec<u8>)>
where
    S: AsyncRead + Unpin,
{
    let limit = ctx.config.rtmp.handshake_timeout;
    let read = async {
        let mut buf = Vec::with_capacity(512);
        loop {
            let mut chunk = [0u8; 512];
            let room = client_addr::MAX_PROXY_HEADER - buf.len();
            let n = socket
                .read(&mut chunk[..room.min(512)])
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed before its PROXY header".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
            match client_addr::proxy_header(&buf) {
                ProxyHeader::Incomplete => continue,
                ProxyHeader::Done { len, client } => {
                    return Ok((client.unwrap_or(proxy), buf.split_off(len)));
                }
                ProxyHeader::Invalid(reason) => return Err(reason),
            }
        }
    };
    match tokio::time::timeout(limit, read).await {
        Ok(Ok((client, early))) => Some((socket, client, early)),
        Ok(Err(reason)) => {
            tracing::warn!(%proxy, %reason, "RTMP connection from a trusted proxy refused");
            closed(ctx, "bad_proxy_header");
            None
        }
        Err(_) => {
            tracing::warn!(%proxy, "RTMP connection from a trusted proxy sent no PROXY header in time");
            closed(ctx, "handshake_timeout");
            None
        }
    }
}

/// Serves one admitted connection; its slot is freed when it ends, also by a panic.
async fn serve<S>(
    socket: S,
    client: SocketAddr,
    early: Vec<u8>,
    slot: Slot,
    ctx: Arc<NodeContext>,
    node: ActorRef<NodeMsg>,
    ticks: ReadTicks,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let task = tokio::spawn(connection::serve(
        socket,
        client,
        early,
        ctx.clone(),
        node,
        ticks,
    ));
    if let Err(e) = task.await
        && e.is_panic()
    {
        tracing::error!(peer = %client, "RTMP connection task panicked; connection closed");
        closed(&ctx, "panic");
    }
    drop(slot);
}
