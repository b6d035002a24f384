//! castmesh node: RTMP ingest, supervised per-stream actors, CMAF segmenter and
//! LL-HLS delivery over HTTP. The `castmesh` binary only parses configuration
//! and calls [`run`].
//!
//! Layout (one frame's path, top to bottom): [`rtmp`] reads the socket →
//! [`stream`] ingest actor parses FLV (`castmesh_media::flv`) → segmenter actor runs
//! the packager (`castmesh_media::hls::packager`) into the live window ([`live`]) →
//! [`http`] serves playlists and parts. [`node`] supervises it all. Imports run one
//! way (docs/architecture.md, "Invariants"; `tests/import_rules.rs`).
//! [`cluster`] is the node's Raft membership (who may publish, who is a stream's
//! origin) and serves gRPC, including the operator API in [`admin`].

pub mod admin;
pub mod admission;
pub mod chat;
pub mod client_addr;
pub mod cluster;
pub mod config;
pub mod deadline_io;
pub mod fuzz;
pub mod http;
pub mod live;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod platform;
pub mod private_file;
pub mod rtmp;
pub mod seams;
pub mod stream;
pub mod supervision;
pub mod web;

use std::sync::Arc;

use anyhow::Context as _;
use ractor::{Actor, ActorRef};
use tokio::task::JoinHandle;

use cluster::ClusterNode;
use cluster::storage::Storage;
use config::Config;
use metrics::Metrics;
use node::{NodeArgs, NodeSupervisor};
use seams::{Network, Seams};
use stream::context::NodeContext;
use stream::requests::NodeMsg;

/// Starts the media side of a node: binds its listeners and spawns its supervisor.
pub async fn start<N: Network>(
    ctx: Arc<NodeContext>,
    network: N,
    platform: platform::Platform,
) -> anyhow::Result<(ActorRef<NodeMsg>, JoinHandle<()>)> {
    if let Some(mesh) = ctx.mesh.clone() {
        let streams: Arc<dyn mesh::subscription::StreamSource> = ctx.clone();
        mesh.serve_streams(Arc::downgrade(&streams), ctx.seams.clock.clone());
    }
    let (node, handle) = Actor::spawn(
        None,
        NodeSupervisor::<N>::default(),
        NodeArgs {
            ctx,
            network,
            platform,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((node, handle))
}

/// Starts the node's mesh endpoint and its cluster member (Raft, gRPC).
pub async fn start_cluster<N: Network>(
    config: &Config,
    seams: &Seams,
    network: &N,
    metrics: &Arc<Metrics>,
    storage: Storage,
    ca_cert: &str,
    node_cert: &mesh::certs::Pem,
) -> anyhow::Result<(Arc<mesh::Mesh>, ClusterNode)> {
    let listen = config.mesh.listen;
    let socket = network
        .bind_udp(listen)
        .await
        .with_context(|| format!("cannot listen for the QUIC mesh on {listen}/udp"))?;
    check_certificate(node_cert, metrics)?;
    let mut rng_seed = [0; 32];
    seams.entropy.fill(&mut rng_seed);
    let mesh = Arc::new(mesh::Mesh::start(
        socket,
        config.cluster.node_id,
        ca_cert,
        node_cert,
        metrics.clone(),
        rng_seed,
    )?);
    let cluster = ClusterNode::start(
        config,
        seams,
        network,
        metrics.clone(),
        mesh.clone(),
        storage,
    )
    .await?;
    Ok((mesh, cluster))
}

/// Days before its certificate expires from which a node warns at every start.
const CERT_WARNING_DAYS: i64 = 30;

/// Refuses to start on an expired mesh certificate (peers would refuse every
/// handshake), warns when it expires soon, and exports its expiry.
fn check_certificate(node_cert: &mesh::certs::Pem, metrics: &Metrics) -> anyhow::Result<()> {
    let expires = mesh::certs::expires_at(&node_cert.cert).context("mesh certificate")?;
    metrics.mesh_certificate_expiry.set(expires);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let days_left = (expires - now) / 86_400;
    anyhow::ensure!(
        expires > now,
        "the mesh certificate expired {} days ago; renew it with `castmesh cert renew`",
        -days_left
    );
    if days_left < CERT_WARNING_DAYS {
        tracing::warn!(
            days_left,
            "the mesh certificate expires soon; renew it with `castmesh cert renew` and restart"
        );
    }
    Ok(())
}

/// Runs a node on the OS network until SIGINT/SIGTERM: joins (or, in `--dev`,
/// forms) the cluster, then serves media.
#[cfg(feature = "rocksdb")]
pub async fn run(config: Config) -> anyhow::Result<()> {
    let seams = Seams::production();
    let metrics = Arc::new(Metrics::new());
    let (ca_cert, node_cert) = mesh::load_certs(&config)?;
    let storage = Storage::on_disk(&config, &seams)?;
    let first_admin = config
        .dev
        .then(|| storage.data_dir.as_ref().map(|d| d.join("admin-password")))
        .flatten();
    let (mesh, cluster) = start_cluster(
        &config,
        &seams,
        &seams::TokioNetwork,
        &metrics,
        storage,
        &ca_cert,
        &node_cert,
    )
    .await?;
    let registry = Arc::new(cluster.registry(&config, &seams));
    if let Some(file) = first_admin {
        let accounts = cluster.platform.accounts.clone();
        tokio::spawn(async move { accounts.first_admin(&file).await });
    }
    let pusher = Arc::new(rtmp::push::RtmpPusher::new(&config)?);
    let ctx = NodeContext::new(
        config,
        seams,
        metrics,
        registry,
        Some(mesh.clone()),
        cluster.hooks.clone(),
        pusher,
    );
    let (node, handle) = start(ctx, seams::TokioNetwork, cluster.platform.clone()).await?;
    let outcome = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            node.stop(Some("shutdown requested".into()));
            let _ = handle.await;
            Ok(())
        }
        _ = &mut Box::pin(async { node.wait(None).await }) => {
            Err(anyhow::anyhow!("node supervisor stopped unexpectedly"))
        }
    };
    cluster.shutdown().await;
    if let Some(mesh) = Arc::into_inner(mesh) {
        mesh.shutdown().await;
    }
    outcome
}

#[cfg(feature = "rocksdb")]
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
