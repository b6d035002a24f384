//! castmesh node: RTMP ingest, supervised per-stream actors, CMAF segmenter and
//! LL-HLS delivery over HTTP. The `castmesh` binary only parses configuration
//! and calls [`run`].
//!
//! Layout (one frame's path, top to bottom): [`rtmp`] reads the socket →
//! [`stream`] ingest actor parses FLV ([`media`]) → segmenter actor packages
//! CMAF ([`cmaf`], [`hls::segmenter`]) into the live window ([`hls`]) →
//! [`http`] serves playlists and parts. [`node`] supervises it all.

pub mod cmaf;
pub mod config;
pub mod context;
pub mod hls;
pub mod http;
pub mod media;
pub mod metrics;
pub mod node;
pub mod rtmp;
pub mod seams;
pub mod stream;
pub mod supervision;

use std::sync::Arc;

use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;

use config::Config;
use context::NodeContext;
use node::{NodeArgs, NodeMsg, NodeSupervisor};
use seams::{Network, Seams, TokioNetwork};
use stream::registry::{OpenRegistry, StreamRegistry};

/// Starts a node: binds its listeners and spawns its supervisor.
pub async fn start<N: Network>(
    config: Config,
    seams: Seams,
    network: N,
    registry: Arc<dyn StreamRegistry>,
) -> anyhow::Result<(ActorRef<NodeMsg>, JoinHandle<()>)> {
    let ctx = NodeContext::new(config, seams, registry);
    let (node, handle) = Actor::spawn(
        None,
        NodeSupervisor::<N>::default(),
        NodeArgs { ctx, network },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((node, handle))
}

/// Runs a node on the OS network until SIGINT/SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let (node, handle) = start(
        config,
        Seams::production(),
        TokioNetwork,
        Arc::new(OpenRegistry),
    )
    .await?;
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            node.stop(Some("shutdown requested".into()));
            let _ = handle.await;
        }
        _ = &mut Box::pin(async { node.wait(None).await }) => {
            anyhow::bail!("node supervisor stopped unexpectedly");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
