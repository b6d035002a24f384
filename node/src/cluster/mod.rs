//! This node's membership in the castmesh cluster: it opens the Raft member on its
//! data directory, serves gRPC (Raft, forwarded writes, the operator API, health,
//! reflection), bootstraps a new cluster, registers the node's addresses, and gives
//! the media path its [`registry::ClusterRegistry`].

pub mod grpc;
pub mod leases;
pub mod probe;
pub mod registry;
pub mod storage;
pub mod sweeper;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use castmesh_cluster::auth::BearerToken;
use castmesh_cluster::command::{Command, Response};
use castmesh_cluster::member::{ClusterMember, MemberConfig};
use castmesh_cluster::model::{NodeRecord, NodeState};
use castmesh_cluster::openraft::{self, BasicNode, SnapshotPolicy};
use castmesh_cluster::transport::Channels;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::mesh::Mesh;
use crate::metrics::Metrics;
use crate::platform::{Accounts, Catalog, Platform};
use crate::seams::{Network, Seams};
use crate::stream::hooks::PublishHooks;
use leases::Leases;
use probe::LastSeen;
use registry::ClusterRegistry;
use storage::Storage;

/// A running cluster member and the tasks serving it.
pub struct ClusterNode {
    pub member: ClusterMember,
    pub leases: Leases,
    /// Accounts and the stream catalog, for the REST API and the admin API.
    pub platform: Platform,
    /// The publish hooks: the publish path's, and the sweeper's for streams it ends.
    pub hooks: Arc<PublishHooks>,
    /// How this node reaches its peers' gRPC servers.
    channels: Channels,
    tasks: Vec<JoinHandle<()>>,
    grpc: grpc::GrpcServer,
    /// Kept until shutdown (a `--dev` node's data directory is removed with it).
    _storage: Storage,
}

impl ClusterNode {
    /// Opens the member, starts serving gRPC and bootstraps when asked to.
    pub async fn start<N: Network>(
        config: &Config,
        seams: &Seams,
        network: &N,
        metrics: Arc<Metrics>,
        mesh: Arc<Mesh>,
        storage: Storage,
    ) -> anyhow::Result<ClusterNode> {
        let c = &config.cluster;
        let secret = if c.secret.0.is_empty() {
            // Validation allows this only for a node alone: nobody else needs it.
            tracing::warn!(
                "cluster.secret is not set: other nodes cannot join this one; set it before adding nodes"
            );
            storage::random_token(seams)
        } else {
            c.secret.0.clone()
        };
        if c.open_publishing && c.initial_members.len() > 1 {
            tracing::warn!(
                "cluster.open_publishing is on in a multi-node cluster: any stream key publishes and stream ids are keys; set it to false in production"
            );
        }
        let member = ClusterMember::open(MemberConfig {
            id: c.node_id,
            store: storage.raft.clone(),
            channels: network.channels(),
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
        mesh.admit(members(member.clone()));
        let platform = Platform {
            accounts: Arc::new(
                Accounts::new(member.clone(), &config.accounts, seams, metrics.clone())
                    .context("accounts settings")?,
            ),
            catalog: Arc::new(Catalog::new(member.clone(), seams.clone(), mesh.clone())),
            chat: crate::chat::Hub::new(
                c.node_id,
                member.clone(),
                mesh.clone(),
                config.chat.clone(),
                seams.clock.clone(),
                metrics.clone(),
            ),
        };
        let rooms: Arc<dyn crate::mesh::ChatRooms> = platform.chat.clone();
        mesh.serve_chat(Arc::downgrade(&rooms));
        let hooks = PublishHooks::new(&config.hooks, metrics.clone());
        let last_seen = LastSeen::default();
        let leases = Leases::new(
            member.clone(),
            c.node_id,
            c.lease_ttl,
            seams.clock.clone(),
            metrics.clone(),
        );
        let listener = network
            .bind(c.grpc_listen)
            .await
            .with_context(|| format!("cannot listen for gRPC on {}", c.grpc_listen))?;
        let grpc = grpc::GrpcServer::start(
            listener,
            grpc::Services {
                member: member.clone(),
                admin_token: BearerToken::new(storage.admin_token.clone()),
                config: config.clone(),
                seams: seams.clone(),
                last_seen: last_seen.clone(),
                platform: platform.clone(),
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
            tokio::spawn(platform.chat.clone().sweep()),
            tokio::spawn(probe::run(
                member.clone(),
                last_seen,
                metrics,
                mesh,
                network.channels(),
            )),
            tokio::spawn(register(member.clone(), node_record(config))),
            tokio::spawn(sweeper::run(
                member.clone(),
                seams.clock.clone(),
                sweeper::Sweeper {
                    grace: config.streams.grace_period,
                    retention: config.streams.retention,
                    app: config.rtmp.app.clone(),
                    hooks: hooks.clone(),
                },
            )),
        ];
        tracing::info!(node = c.node_id, grpc = %grpc.local_addr(), storage = %storage, "cluster member started");
        Ok(ClusterNode {
            member,
            leases,
            platform,
            hooks,
            channels: network.channels(),
            tasks,
            grpc,
            _storage: storage,
        })
    }

    pub fn registry(&self, config: &Config, seams: &Seams) -> ClusterRegistry {
        ClusterRegistry::new(
            self.member.clone(),
            config.cluster.node_id,
            seams.clock.clone(),
            self.leases.clone(),
            self.channels.clone(),
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

/// The mesh admits the nodes of the Raft membership (voters and learners) as this
/// node's log knows it: a node removed from the cluster loses its mesh access too.
fn members(member: ClusterMember) -> crate::mesh::Members {
    Arc::new(move |id| {
        member
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .nodes()
            .any(|(n, _)| *n == id)
    })
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
