//! The node's one gRPC server (default :50051): Raft transport and forwarded writes
//! (cluster secret), the operator API (admin token), plus standard health checking
//! and server reflection (open, so load balancers and `grpcurl` work without secrets:
//! they reveal only the schema and liveness).
//!
//! Secrets are checked by interceptors on the request headers, before a body is
//! read. The server is bounded by `[grpc]`: connections in all, calls per
//! connection, a deadline per call, and an idle deadline per connection (the
//! server pings every third of it, so a live peer always has something to answer).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use axum::serve::Listener;
use castmesh_cluster::auth::BearerToken;
use castmesh_cluster::member::ClusterMember;
use castmesh_proto::admin::v1::cluster_admin_server::ClusterAdminServer;
use castmesh_proto::admin::v1::stream_admin_server::StreamAdminServer;
use castmesh_proto::admin::v1::user_admin_server::UserAdminServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tonic::transport::server::Connected;

use super::probe::LastSeen;
use crate::admin::cluster::ClusterService;
use crate::admin::streams::StreamService;
use crate::admin::users::UserService;
use crate::admission::{Slot, Slots};
use crate::config::{Config, GrpcConfig};
use crate::deadline_io::DeadlineIo;
use crate::platform::Platform;
use crate::seams::Seams;

pub struct Services {
    pub member: ClusterMember,
    pub admin_token: BearerToken,
    pub config: Config,
    pub seams: Seams,
    pub last_seen: LastSeen,
    pub platform: Platform,
}

pub struct GrpcServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl GrpcServer {
    /// Serves on `listener` (from the node's network seam).
    pub async fn start<L>(listener: L, s: Services) -> anyhow::Result<GrpcServer>
    where
        L: Listener<Addr = SocketAddr>,
    {
        let addr = listener.local_addr()?;
        let (raft, internal) = s.member.services();
        let token = s.admin_token;
        let limits = s.config.grpc.clone();
        let cluster = ClusterAdminServer::with_interceptor(
            ClusterService {
                member: s.member.clone(),
                last_seen: s.last_seen,
            },
            token.clone(),
        );
        let users = UserAdminServer::with_interceptor(
            UserService {
                accounts: s.platform.accounts,
                member: s.member.clone(),
            },
            token.clone(),
        );
        let streams = StreamAdminServer::with_interceptor(
            StreamService {
                catalog: s.platform.catalog,
                config: Arc::new(s.config),
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
        health_reporter
            .set_serving::<UserAdminServer<UserService>>()
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
        let incoming = incoming(listener, &limits);
        let task = tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .timeout(limits.request_timeout)
                .concurrency_limit_per_connection(limits.max_concurrent_calls as usize)
                .max_concurrent_streams(limits.max_concurrent_calls)
                .http2_keepalive_interval(Some(limits.idle_timeout / 3))
                .http2_keepalive_timeout(Some(limits.idle_timeout / 3))
                .add_service(raft)
                .add_service(internal)
                .add_service(cluster)
                .add_service(streams)
                .add_service(users)
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

/// The listener's connections as the stream tonic serves, within the connection
/// limit and with read and write deadlines; accepting stops when the server does.
fn incoming<L: Listener<Addr = SocketAddr>>(
    mut listener: L,
    limits: &GrpcConfig,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<Connection<DeadlineIo<L::Io>>>> {
    let (tx, rx) = mpsc::channel(16);
    // Per address as in total: peers and operators may share one address.
    let slots = Slots::new(limits.max_connections, limits.max_connections);
    let idle = limits.idle_timeout;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                (io, peer) = listener.accept() => {
                    let Ok(slot) = slots.try_acquire(peer.ip()) else {
                        tracing::warn!(%peer, limit = slots.in_use(), "gRPC connection refused: connection limit reached");
                        continue;
                    };
                    let io = DeadlineIo::new(io, Some(idle), idle);
                    if tx.send(Ok(Connection { io, _slot: slot })).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A connection from any listener, holding its slot until tonic drops it. tonic
/// asks each connection for its peer's details (`Connected`), which it implements
/// only for its own socket types; castmesh's services never look at them.
struct Connection<T> {
    io: T,
    _slot: Slot,
}

impl<T> Connected for Connection<T> {
    type ConnectInfo = ();

    fn connect_info(&self) {}
}

impl<T: AsyncRead + Unpin> AsyncRead for Connection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Connection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
