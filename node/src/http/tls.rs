//! HTTPS on the HTTP listener (`http.tls_cert`, `http.tls_key`): rustls with ring, as
//! the mesh uses. Passwords and session cookies cross this listener, so a node that
//! faces the internet without a TLS-terminating proxy in front should serve it.

use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::HttpConfig;

/// The acceptor for the configured certificate, or `None` for plain HTTP. Errors name
/// the file, so a node with a bad certificate does not start.
pub fn acceptor(config: &HttpConfig) -> anyhow::Result<Option<TlsAcceptor>> {
    if !config.tls() {
        return Ok(None);
    }
    let chain = CertificateDer::pem_file_iter(&config.tls_cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read http.tls_cert {}", config.tls_cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "http.tls_cert {} holds no certificate",
        config.tls_cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&config.tls_key)
        .with_context(|| format!("cannot read http.tls_key {}", config.tls_key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("http.tls_cert and http.tls_key do not form a usable certificate")?;
    // HTTP/1.1 only, as the plain listener.
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}
