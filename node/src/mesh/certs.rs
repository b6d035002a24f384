//! The cluster CA and node certificates for the QUIC mesh (mutual TLS).
//!
//! `castmesh cert init --dir D` creates `D/ca.pem` and `D/ca-key.pem`; `castmesh cert
//! issue --dir D --node-id N` signs `D/node-N.pem` + `D/node-N-key.pem`. A node's
//! certificate names it `node-N.castmesh` (its identity in the mesh) plus any extra
//! host names; it is valid for both TLS server and client authentication.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The DNS name a node's certificate carries and peers verify.
pub fn node_name(id: u64) -> String {
    format!("node-{id}.castmesh")
}

/// The node id a certificate name stands for.
pub fn node_id_of(name: &str) -> Option<u64> {
    name.strip_prefix("node-")?
        .strip_suffix(".castmesh")?
        .parse()
        .ok()
}

/// PEM text of a certificate and its private key.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// Ed25519: small, fast, and with fixed-size signatures, so handshakes are the same
/// size every time (a simulated run replays byte for byte).
fn new_key() -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(&rcgen::PKCS_ED25519)
}

/// A new self-signed cluster CA.
pub fn new_ca() -> anyhow::Result<Pem> {
    let key = new_key()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "castmesh cluster CA");
    params.distinguished_name = dn;
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A certificate for node `id`, signed by `ca`.
pub fn new_node(ca: &Pem, id: u64, hosts: &[String]) -> anyhow::Result<Pem> {
    let ca_key = KeyPair::from_pem(&ca.key).context("CA key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).context("CA certificate")?;
    let key = new_key()?;
    let mut names = vec![node_name(id)];
    names.extend(hosts.iter().cloned());
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node_name(id));
    params.distinguished_name = dn;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {} (does it exist already?)", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(())
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    if path.exists() {
        bail!("{} exists already; not overwriting it", path.display());
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `castmesh cert init`: writes a new CA into `dir`; returns the files written.
pub fn init(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    if cert.exists() || key.exists() {
        bail!("{} already holds a CA; not overwriting it", dir.display());
    }
    let ca = new_ca()?;
    write_secret(&key, &ca.key)?;
    write_new(&cert, &ca.cert)?;
    Ok(vec![cert, key])
}

/// `castmesh cert issue`: signs a certificate for node `id` with the CA in `dir`.
pub fn issue(dir: &Path, id: u64, hosts: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (run `castmesh cert init` first)",
                path.display()
            )
        })
    };
    let ca = Pem {
        cert: read("ca.pem")?,
        key: read("ca-key.pem")?,
    };
    let node = new_node(&ca, id, hosts)?;
    let (cert, key) = (
        dir.join(format!("node-{id}.pem")),
        dir.join(format!("node-{id}-key.pem")),
    );
    write_secret(&key, &node.key)?;
    write_new(&cert, &node.cert)?;
    Ok(vec![cert, key])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_node_ids() {
        assert_eq!(node_id_of(&node_name(42)), Some(42));
        assert_eq!(node_id_of("node-x.castmesh"), None);
        assert_eq!(node_id_of("node-1.example"), None);
    }

    #[test]
    fn init_and_issue_write_files_once() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        assert!(init(dir.path()).is_err(), "a CA is never overwritten");
        let files = issue(dir.path(), 3, &["edge3.example".into()]).unwrap();
        assert!(files[0].ends_with("node-3.pem"));
        assert!(
            issue(dir.path(), 3, &[]).is_err(),
            "a node cert is never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
