use std::future::Future;
use std::io;
use std::net::SocketAddr;

/// Binds listening sockets. axum's `Listener` trait is the accept interface for both
/// the RTMP and HTTP servers, so a simulated network only implements it once.
pub trait Network: Send + Sync + 'static {
    type Listener: axum::serve::Listener<Addr = SocketAddr>;

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
}

/// The operating system's TCP stack.
#[derive(Clone, Copy, Default)]
pub struct TokioNetwork;

impl Network for TokioNetwork {
    type Listener = tokio::net::TcpListener;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        tokio::net::TcpListener::bind(addr).await
    }
}
