//! Reaching a destination: resolve its host, refuse internal addresses, connect, and
//! for `rtmps://` verify its certificate (the public web roots, plus
//! `restream.ca_file`; there is no switch to skip verification).
//!
//! Internal addresses are refused because a streamer chooses the URL and the origin
//! connects to it: without this check a destination could reach the cluster's own
//! gRPC or a service on the operator's private network. Every resolved address is
//! checked and only checked addresses are connected to, so a name that resolves to a
//! public address first and a private one later gains nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context as _;
use castmesh_cluster::restream::RtmpUrl;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client_addr::Networks;
use crate::config::RestreamConfig;
use crate::stream::restream::PushError;

/// A connection to a destination, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Dialer {
    allow: Networks,
    tls: TlsConnector,
}

/// Why `ip` is internal, if it is.
pub fn internal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if a == 100 && (b & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("multicast or broadcast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

impl Dialer {
    /// Errors name the CA file, so a node with a bad one does not start.
    pub fn new(config: &RestreamConfig) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if !config.ca_file.as_os_str().is_empty() {
            let file = &config.ca_file;
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read restream.ca_file {}", file.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "restream.ca_file {} holds no certificate",
                file.display()
            );
            for cert in certs {
                roots.add(cert).with_context(|| {
                    format!("restream.ca_file {}: unusable certificate", file.display())
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            allow: config.allow_networks.clone(),
            tls: TlsConnector::from(Arc::new(client)),
        })
    }

    /// Why the destination may not be connected to at `ip`, if so.
    fn refusal(&self, ip: IpAddr, cluster: &[IpAddr]) -> Option<&'static str> {
        if self.allow.contains(ip) {
            return None;
        }
        if cluster.contains(&ip) {
            return Some("cluster node's");
        }
        internal(ip)
    }

    pub async fn dial(&self, url: &RtmpUrl, cluster: &[IpAddr]) -> Result<Box<dyn Io>, PushError> {
        let host = &url.host;
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), url.port))
            .await
            .map_err(|e| PushError::Failed(format!("cannot resolve {host}: {e}")))?
            .collect();
        let mut refused = None;
        let permitted: Vec<SocketAddr> = resolved
            .iter()
            .filter(|a| match self.refusal(a.ip(), cluster) {
                Some(why) => {
                    refused.get_or_insert((a.ip(), why));
                    false
                }
                None => true,
            })
            .copied()
            .collect();
        if permitted.is_empty() {
            return Err(match refused {
                Some((ip, why)) => {
                    let what = if ip.to_string() == *host {
                        format!("{ip} is")
                    } else {
                        format!("{host} is {ip},")
                    };
                    PushError::Forbidden(format!(
                        "{what} a {why} address: destinations must be public unless restream.allow_networks lists them"
                    ))
                }
                None => PushError::Failed(format!("{host} resolves to no address")),
            });
        }
        let tcp = connect_any(&permitted, host, url.port).await?;
        if !url.tls {
            return Ok(Box::new(tcp));
        }
        let name = ServerName::try_from(host.clone())
            .map_err(|_| PushError::Forbidden(format!("{host} is not a valid TLS server name")))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| PushError::Failed(format!("TLS with {host} failed: {e}")))?;
        Ok(Box::new(tls))
    }
}

/// Connects to the first of `addrs` that answers.
async fn connect_any(addrs: &[SocketAddr], host: &str, port: u16) -> Result<TcpStream, PushError> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // Media tags are written whole; Nagle would only delay the last chunk.
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(PushError::Failed(format!(
        "cannot connect to {host}:{port}: {}",
        last.map_or_else(|| "no address".into(), |e| e.to_string())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_named() {
        for (ip, why) in [
            ("127.0.0.1", Some("loopback")),
            ("10.1.2.3", Some("private")),
            ("172.16.0.1", Some("private")),
            ("192.168.1.1", Some("private")),
            ("169.254.169.254", Some("link-local")),
            ("100.64.0.1", Some("shared (carrier-grade NAT)")),
            ("0.0.0.0", Some("unspecified")),
            ("224.0.0.1", Some("multicast or broadcast")),
            ("::1", Some("loopback")),
            ("fd00::1", Some("private (unique local)")),
            ("fe80::1", Some("link-local")),
            ("::ffff:10.0.0.1", Some("private")),
            ("8.8.8.8", None),
            ("100.128.0.1", None),
            ("2001:4860:4860::8888", None),
        ] {
            assert_eq!(internal(ip.parse().unwrap()), why, "{ip}");
        }
    }

    #[test]
    fn the_allow_list_and_the_cluster_decide_before_the_kind() {
        let config = RestreamConfig {
            allow_networks: "127.0.0.0/8".parse().unwrap(),
            ..RestreamConfig::default()
        };
        let dialer = Dialer::new(&config).unwrap();
        let cluster = ["203.0.113.7".parse().unwrap()];
        assert_eq!(dialer.refusal("127.0.0.2".parse().unwrap(), &cluster), None);
        assert_eq!(
            dialer.refusal("203.0.113.7".parse().unwrap(), &cluster),
            Some("cluster node's")
        );
        assert_eq!(
            dialer.refusal("10.0.0.1".parse().unwrap(), &cluster),
            Some("private")
        );
    }
}
