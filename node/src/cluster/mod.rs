//! This node's membership in the castmesh cluster: it opens the Raft member on its
//! data directory, serves gRPC (Raft, forwarded writes, the operator API, health,
//! reflection), bootstraps a new cluster, registers the node's addresses, and gives
//! the media path its [`registry::ClusterRegistry`].

pub mod grpc;
pub mod leases;
pub mod probe;
pub mod registry;
pub mod sweeper;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use castmesh_cluster::auth::BearerToken;
use castmesh_cluster::command::{Command, Response};
use castmesh_cluster::member::{ClusterMember, MemberConfig};
use castmesh_cluster::model::{NodeRecord, NodeState};
use castmesh_cluster::openraft::{self, BasicNode, SnapshotPolicy};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::mesh::Mesh;
use crate::metrics::Metrics;
use crate::seams::Seams;
use leases::Leases;
use probe::LastSeen;
use registry::ClusterRegistry;

/// A running cluster member and the tasks serving it.
pub struct ClusterNode {
    pub member: ClusterMember,
    pub leases: Leases,
    tasks: Vec<JoinHandle<()>>,
    grpc: grpc::GrpcServer,
    /// Keeps a `--dev` node's temporary data directory until shutdown.
    _scratch: Option<tempfile::TempDir>,
}

impl ClusterNode {
    /// Opens the member, starts serving gRPC and bootstraps when asked to.
    pub async fn start(
        config: &Config,
        seams: &Seams,
        metrics: Arc<Metrics>,
        mesh: Arc<Mesh>,
    ) -> anyhow::Result<ClusterNode> {
        let c = &config.cluster;
        let (data_dir, scratch) = data_dir(&c.data_dir)?;
        let secret = if c.secret.0.is_empty() {
            // Validation allows this only for a node alone: nobody else needs it.
            tracing::warn!(
                "cluster.secret is not set: other nodes cannot join this one; set it before adding nodes"
            );
            random_token(seams)
        } else {
            c.secret.0.clone()
        };
        let admin_token = admin_token(config, &data_dir, seams)?;
        if c.open_publishing && c.initial_members.len() > 1 {
            tracing::warn!(
                "cluster.open_publishing is on in a multi-node cluster: any stream key publishes and stream ids are keys; set it to false in production"
            );
        }
        let member = ClusterMember::open(MemberConfig {
            id: c.node_id,
            data_dir: data_dir.join("raft"),
            secret: BearerToken::new(secret),
            raft: openraft::Config {
                cluster_name: "castmesh".into(),
                heartbeat_interval: c.heartbeat_interval.as_millis() as u64,
                election_timeout_min: c.election_timeout.as_millis() as u64,
                election_timeout_max: 2 * c.election_timeout.as_millis() as u64,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(c.snapshot_threshold),
                max_in_snapshot_log_to_keep: 0,
                ..Default::default()
            },
        })
        .await?;
        let last_seen = LastSeen::default();
        let leases = Leases::new(
            member.clone(),
            c.node_id,
            c.lease_ttl,
            seams.clock.clone(),
            metrics.clone(),
        );
        let grpc = grpc::GrpcServer::start(
            c.grpc_listen,
            grpc::Services {
                member: member.clone(),
                admin_token: BearerToken::new(admin_token),
                config: config.clone(),
                seams: seams.clone(),
                last_seen: last_seen.clone(),
                mesh: mesh.clone(),
            },
        )
        .await?;
        if c.bootstrap && !member.raft().is_initialized().await? {
            let voters: BTreeMap<u64, BasicNode> = c
                .members()?
                .into_iter()
                .map(|m| (m.id, BasicNode::new(m.addr)))
                .collect();
            let ids: BTreeSet<u64> = voters.keys().copied().collect();
            tracing::info!(?ids, "bootstrapping a new cluster");
            member.raft().initialize(voters).await?;
        }
        let tasks = vec![
            tokio::spawn(probe::run(member.clone(), last_seen, metrics, mesh)),
            tokio::spawn(register(member.clone(), node_record(config))),
            tokio::spawn(sweeper::run(
                member.clone(),
                seams.clock.clone(),
                config.streams.grace_period,
            )),
        ];
        tracing::info!(node = c.node_id, grpc = %grpc.local_addr(), data_dir = %data_dir.display(), "cluster member started");
        Ok(ClusterNode {
            member,
            leases,
            tasks,
            grpc,
            _scratch: scratch,
        })
    }

    pub fn registry(&self, config: &Config, seams: &Seams) -> ClusterRegistry {
        ClusterRegistry::new(
            self.member.clone(),
            config.cluster.node_id,
            config.cluster.open_publishing,
            seams.clock.clone(),
            self.leases.clone(),
        )
    }

    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Err(e) = self.member.raft().shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        self.grpc.stop().await;
    }
}

/// The configured data directory, or a scratch one for a throwaway dev node.
fn data_dir(configured: &Path) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    if configured.as_os_str().is_empty() {
        let scratch = tempfile::Builder::new()
            .prefix("castmesh-dev-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        return Ok((scratch.path().to_path_buf(), Some(scratch)));
    }
    std::fs::create_dir_all(configured)
        .with_context(|| format!("cannot create data directory {}", configured.display()))?;
    Ok((configured.to_path_buf(), None))
}

fn random_token(seams: &Seams) -> String {
    (0..4)
        .map(|_| format!("{:016x}", seams.entropy.next_u64()))
        .collect()
}

/// The configured admin token, or the one generated into DATA_DIR/admin-token (kept
/// across restarts so scripts keep working).
fn admin_token(config: &Config, data_dir: &Path, seams: &Seams) -> anyhow::Result<String> {
    if !config.cluster.admin_token.0.is_empty() {
        return Ok(config.cluster.admin_token.0.clone());
    }
    let path = data_dir.join("admin-token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        // An empty file (a crash between create and write) is not a token.
        if !existing.trim().is_empty() {
            return Ok(existing.trim().to_string());
        }
    }
    let token = random_token(seams);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, token.as_bytes())?;
    tracing::info!(path = %path.display(), "generated the admin token (castctl --token-file)");
    Ok(token)
}

fn node_record(config: &Config) -> NodeRecord {
    let host = config.cluster.advertised_host();
    NodeRecord {
        id: config.cluster.node_id,
        rtmp: format!("{host}:{}", config.rtmp.listen.port()),
        http: format!("{host}:{}", config.http.listen.port()),
        grpc: config.cluster.advertised_grpc(),
        quic: format!("{host}:{}", config.mesh.listen.port()),
        labels: config.cluster.label_map().unwrap_or_default(),
        state: NodeState::Active,
    }
}

/// Records this node's addresses in the cluster once it can write (a new node is only
/// able to once an operator added it).
async fn register(member: ClusterMember, record: NodeRecord) {
    loop {
        let current = member
            .read(|s| s.nodes.get(&record.id).cloned())
            .await
            .ok()
            .flatten();
        if current.as_ref() == Some(&record) {
            return;
        }
        match member.write(Command::UpsertNode(record.clone())).await {
            Ok(Response::Done) => {
                tracing::info!(node = record.id, "node addresses registered");
                return;
            }
            Ok(other) => tracing::warn!(?other, "node registration refused"),
            Err(e) => tracing::debug!(error = %e, "node registration waits for the cluster"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
