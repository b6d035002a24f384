//! The node's one gRPC server (default :50051): Raft transport and forwarded writes
//! (cluster secret), the operator API (admin token), plus standard health checking
//! and server reflection (open, so load balancers and `grpcurl` work without secrets:
//! they reveal only the schema and liveness).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use castmesh_cluster::auth::BearerToken;
use castmesh_cluster::member::ClusterMember;
use castmesh_proto::admin::v1::cluster_admin_server::ClusterAdminServer;
use castmesh_proto::admin::v1::stream_admin_server::StreamAdminServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use super::probe::LastSeen;
use crate::admin::RequireToken;
use crate::admin::cluster::ClusterService;
use crate::admin::streams::StreamService;
use crate::config::Config;
use crate::seams::Seams;

pub struct Services {
    pub member: ClusterMember,
    pub admin_token: BearerToken,
    pub config: Config,
    pub seams: Seams,
    pub last_seen: LastSeen,
    pub mesh: Arc<crate::mesh::Mesh>,
}

pub struct GrpcServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl GrpcServer {
    pub async fn start(listen: SocketAddr, s: Services) -> anyhow::Result<GrpcServer> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen for gRPC on {listen}"))?;
        let addr = listener.local_addr()?;
        let (raft, internal) = s.member.services();
        let token = RequireToken(s.admin_token);
        let cluster = ClusterAdminServer::with_interceptor(
            ClusterService {
                member: s.member.clone(),
                last_seen: s.last_seen,
            },
            token.clone(),
        );
        let streams = StreamAdminServer::with_interceptor(
            StreamService {
                member: s.member,
                config: Arc::new(s.config),
                seams: s.seams,
                mesh: s.mesh,
            },
            token,
        );
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<ClusterAdminServer<ClusterService>>()
            .await;
        health_reporter
            .set_serving::<StreamAdminServer<StreamService>>()
            .await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(castmesh_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        // v1 for current grpcurl, v1alpha for older clients and grpcio-reflection.
        let reflection_v1 = reflection().build_v1().context("gRPC reflection")?;
        let reflection_v1alpha = reflection().build_v1alpha().context("gRPC reflection")?;
        let (stop, stopped) = oneshot::channel::<()>();
        // Raft RPCs are small request/response pairs: without TCP_NODELAY, Nagle's
        // algorithm and delayed ACKs add tens of milliseconds to every commit.
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener)
            .map(|s| s.and_then(|s| s.set_nodelay(true).map(|()| s)));
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(raft)
                .add_service(internal)
                .add_service(cluster)
                .add_service(streams)
                .add_service(health)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "gRPC server failed");
            }
        });
        Ok(GrpcServer { addr, stop, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}
