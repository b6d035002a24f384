//! rustls configurations for the mesh: both sides present a certificate signed by the
//! cluster CA and verify the other's (mutual TLS, TLS 1.3 only, ring provider).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::certs::{Pem, node_id_of};

/// ALPN of the mesh protocol; a peer speaking anything else is refused in the handshake.
pub const ALPN: &[u8] = b"castmesh-mesh/1";

pub struct MeshTls {
    pub server: quinn::ServerConfig,
    pub client: quinn::ClientConfig,
}

impl MeshTls {
    /// From the cluster CA certificate and this node's certificate and key (PEM).
    pub fn new(ca_cert: &str, node: &Pem) -> anyhow::Result<MeshTls> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_cert.as_bytes()) {
            roots.add(ca.context("CA certificate PEM")?)?;
        }
        let roots = Arc::new(roots);
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(node.cert.as_bytes())
                .collect::<Result<_, _>>()
                .context("node certificate PEM")?;
        let key = PrivateKeyDer::from_pem_slice(node.key.as_bytes()).context("node key PEM")?;

        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())?;
        server.alpn_protocols = vec![ALPN.to_vec()];

        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)?;
        client.alpn_protocols = vec![ALPN.to_vec()];

        let transport = Arc::new(transport());
        let mut server =
            quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server)?));
        server.transport_config(transport.clone());
        let mut client = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client)?));
        client.transport_config(transport);
        Ok(MeshTls { server, client })
    }
}

/// A peer that stops answering is given up after a few seconds (quinn's default is
/// 30 s), so an edge notices a dead origin well within a lease TTL; keep-alives keep
/// quiet subscriptions open.
fn transport() -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_secs(1)));
    t.max_idle_timeout(Some(
        quinn::IdleTimeout::try_from(Duration::from_secs(5)).expect("5 s is a valid idle timeout"),
    ));
    t
}

/// The node id named by the certificate a verified peer presented.
pub fn peer_node(connection: &quinn::Connection) -> Option<u64> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast_ref::<Vec<CertificateDer<'static>>>()?;
    let (_, cert) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    let sans = cert.subject_alternative_name().ok()??;
    sans.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::DNSName(dns) => node_id_of(dns),
        _ => None,
    })
}
