//! The media mesh between nodes: QUIC (quinn) with mutual TLS from the cluster CA.
//!
//! Today it carries the mesh handshake and a ping (identity + reachability, probed for
//! every member); stream subscriptions, so any edge serves any stream, build on the
//! same endpoint and framing (see docs/mesh-protocol.md).

pub mod certs;
pub mod framing;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use castmesh_proto::mesh::v1::{Ping, Pong, Request, request};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::metrics::Metrics;
use certs::Pem;
use tls::{MeshTls, peer_node};

/// How long a mesh request may take before the peer counts as unreachable.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// This node's QUIC endpoint: accepts peers' requests and makes its own.
pub struct Mesh {
    endpoint: quinn::Endpoint,
    node_id: u64,
    /// One connection per peer, reused by every request to it.
    connections: Mutex<HashMap<u64, quinn::Connection>>,
    accept: JoinHandle<()>,
}

/// The CA and node certificate from config, or, when none are configured (`--dev`), a
/// throwaway CA that only this node trusts.
pub fn load_certs(config: &Config) -> anyhow::Result<(String, Pem)> {
    let m = &config.mesh;
    if m.ca_cert.as_os_str().is_empty() {
        let ca = certs::new_ca()?;
        let node = certs::new_node(&ca, config.cluster.node_id, &[])?;
        return Ok((ca.cert, node));
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    Ok((
        read(&m.ca_cert)?,
        Pem {
            cert: read(&m.cert)?,
            key: read(&m.key)?,
        },
    ))
}

impl Mesh {
    /// Binds the endpoint on `listen` and starts accepting peers.
    pub fn start(
        listen: SocketAddr,
        node_id: u64,
        ca_cert: &str,
        node: &Pem,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Mesh> {
        let tls = MeshTls::new(ca_cert, node)?;
        let mut endpoint = quinn::Endpoint::server(tls.server, listen)
            .with_context(|| format!("cannot listen for the QUIC mesh on {listen}/udp"))?;
        endpoint.set_default_client_config(tls.client);
        let accept = tokio::spawn(accept(endpoint.clone(), node_id, metrics));
        Ok(Mesh {
            endpoint,
            node_id,
            connections: Mutex::new(HashMap::new()),
            accept,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The open connection to node `peer` at `addr`, or a new one; the handshake
    /// verifies that the peer's certificate names it.
    pub async fn connect(&self, addr: SocketAddr, peer: u64) -> anyhow::Result<quinn::Connection> {
        let cached = self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .filter(|c| c.close_reason().is_none() && c.remote_address() == addr)
            .cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let connecting = self.endpoint.connect(addr, &certs::node_name(peer))?;
        let connection = tokio::time::timeout(REQUEST_TIMEOUT, connecting)
            .await
            .context("QUIC handshake timed out")??;
        self.connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, connection.clone());
        Ok(connection)
    }

    /// Asks node `peer` at `addr` who it is; returns the id it answers with.
    pub async fn ping(&self, addr: SocketAddr, peer: u64) -> anyhow::Result<u64> {
        let call = async {
            let connection = self.connect(addr, peer).await?;
            let (mut send, mut recv) = connection.open_bi().await?;
            framing::write(
                &mut send,
                &Request {
                    kind: Some(request::Kind::Ping(Ping {})),
                },
            )
            .await?;
            send.finish()?;
            let pong: Pong = framing::read(&mut recv)
                .await?
                .context("the peer closed the stream without answering")?;
            Ok(pong.node_id)
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, call)
            .await
            .context("mesh ping timed out")
            .and_then(|r| r);
        if answer.is_err() {
            // The peer may have restarted: the next request makes a new connection
            // rather than waiting out the old one's idle timeout.
            self.connections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&peer);
        }
        answer
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub async fn shutdown(self) {
        self.accept.abort();
        self.endpoint.close(0u32.into(), b"shutting down");
        self.endpoint.wait_idle().await;
    }
}

async fn accept(endpoint: quinn::Endpoint, node_id: u64, metrics: Arc<Metrics>) {
    while let Some(incoming) = endpoint.accept().await {
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    // Includes peers without a certificate from the cluster CA.
                    metrics.mesh_handshakes_refused.inc();
                    tracing::warn!(error = %e, "mesh handshake refused");
                    return;
                }
            };
            let Some(peer) = peer_node(&connection) else {
                metrics.mesh_handshakes_refused.inc();
                tracing::warn!(remote = %connection.remote_address(), "mesh peer certificate names no node");
                connection.close(1u32.into(), b"certificate names no node");
                return;
            };
            let span = tracing::info_span!("mesh", peer);
            let _ = tracing::Instrument::instrument(serve(connection, node_id), span).await;
        });
    }
}

/// Answers one peer's requests, one bidirectional stream each.
async fn serve(connection: quinn::Connection, node_id: u64) -> anyhow::Result<()> {
    loop {
        let (mut send, mut recv) = connection.accept_bi().await?;
        tokio::spawn(async move {
            let request: Option<Request> = framing::read(&mut recv).await.ok().flatten();
            match request.and_then(|r| r.kind) {
                Some(request::Kind::Ping(Ping {})) => {
                    let _ = framing::write(&mut send, &Pong { node_id }).await;
                    let _ = send.finish();
                }
                None => {
                    let _ = send.reset(2u32.into());
                }
            }
        });
    }
}
