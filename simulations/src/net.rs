//! The node's network seam over turmoil's simulated network: TCP listeners (RTMP,
//! HTTP, gRPC), a UDP socket quinn can drive (the QUIC mesh), and a tonic dialer.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use castmesh_cluster::transport::{Channels, Dial};
use castmesh_node::seams::Network;
use hyper_util::rt::TokioIo;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint, Uri};

/// Datagrams a socket buffers before dropping more, like a kernel receive buffer.
const UDP_QUEUE: usize = 1024;

#[derive(Clone, Copy, Default)]
pub struct SimNetwork;

impl Network for SimNetwork {
    type Listener = SimListener;

    async fn bind(&self, addr: SocketAddr) -> io::Result<SimListener> {
        Ok(SimListener(turmoil::net::TcpListener::bind(addr).await?))
    }

    async fn bind_udp(&self, addr: SocketAddr) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(SimUdp::bind(addr).await?))
    }

    fn channels(&self) -> Channels {
        Channels::new(SimDial)
    }
}

pub struct SimListener(turmoil::net::TcpListener);

impl axum::serve::Listener for SimListener {
    type Io = turmoil::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok(accepted) => return accepted,
                // As axum does for the OS listener: an accept error is not fatal.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// gRPC channels over simulated TCP.
struct SimDial;

impl Dial for SimDial {
    fn channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(80);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok::<_, io::Error>(TokioIo::new(stream))
        }))
    }
}

/// A UDP socket quinn can drive. turmoil's socket offers only async receives, so a
/// task moves datagrams into a queue that `poll_recv` can poll; it ends with the
/// host (a crash drops it with everything else).
pub struct SimUdp {
    socket: Arc<turmoil::net::UdpSocket>,
    local: SocketAddr,
    received: Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
}

impl fmt::Debug for SimUdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimUdp({})", self.local)
    }
}

impl SimUdp {
    async fn bind(addr: SocketAddr) -> io::Result<SimUdp> {
        let socket = Arc::new(turmoil::net::UdpSocket::bind(addr).await?);
        let local = socket.local_addr()?;
        let (tx, rx) = mpsc::channel(UDP_QUEUE);
        let reader = socket.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                tokio::select! {
                    biased;
                    _ = tx.closed() => return,
                    received = reader.recv_from(&mut buf) => {
                        let Ok((len, from)) = received else { return };
                        // A full queue drops the datagram, as a full kernel buffer would.
                        let _ = tx.try_send((buf[..len].to_vec(), from));
                    }
                }
            }
        });
        Ok(SimUdp {
            socket,
            local,
            received: Mutex::new(rx),
        })
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for SimUdp {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        // Sends never block: turmoil queues the datagram on the simulated link.
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        match self
            .socket
            .try_send_to(transmit.contents, transmit.destination)
        {
            Ok(_) => Ok(()),
            // A datagram to a host that is down or partitioned is simply lost.
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut received = self.received.lock().unwrap_or_else(|e| e.into_inner());
        match received.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
            Poll::Ready(Some((datagram, from))) => {
                let len = datagram.len().min(bufs[0].len());
                bufs[0][..len].copy_from_slice(&datagram[..len]);
                meta[0] = RecvMeta {
                    addr: from,
                    len,
                    stride: len,
                    ecn: None,
                    dst_ip: None,
                };
                Poll::Ready(Ok(1))
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn may_fragment(&self) -> bool {
        false
    }
}
