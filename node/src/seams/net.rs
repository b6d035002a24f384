use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::{ListenerExt, TapIo};
use castmesh_cluster::transport::Channels;
use quinn::{AsyncUdpSocket, Runtime};

/// The node's sockets: TCP listeners (RTMP, HTTP, gRPC), the mesh's UDP socket and
/// outbound gRPC channels. axum's `Listener` trait is the accept interface for every
/// TCP server, so a simulated network only implements it once.
pub trait Network: Send + Sync + 'static {
    type Listener: axum::serve::Listener<Addr = SocketAddr>;

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// A UDP socket for the QUIC mesh.
    fn bind_udp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Arc<dyn AsyncUdpSocket>>> + Send;

    /// How gRPC clients reach peers.
    fn channels(&self) -> Channels;
}

/// The operating system's network.
#[derive(Clone, Copy, Default)]
pub struct TokioNetwork;

type NoDelay = TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)>;

fn no_delay(stream: &mut tokio::net::TcpStream) {
    // Raft RPCs and LL-HLS answers are small: without TCP_NODELAY, Nagle's algorithm
    // and delayed ACKs add tens of milliseconds to each.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
}

impl Network for TokioNetwork {
    type Listener = NoDelay;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(listener.tap_io(no_delay as fn(&mut tokio::net::TcpStream)))
    }

    async fn bind_udp(&self, addr: SocketAddr) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        quinn::TokioRuntime.wrap_udp_socket(std::net::UdpSocket::bind(addr)?)
    }

    fn channels(&self) -> Channels {
        Channels::tcp()
    }
}
