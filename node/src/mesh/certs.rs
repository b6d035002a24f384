//! The cluster CA and node certificates for the QUIC mesh (mutual TLS).
//!
//! `castmesh cert init --dir D` creates `D/ca.pem` and `D/ca-key.pem`; `castmesh cert
//! issue --dir D --node-id N` signs `D/node-N.pem` + `D/node-N-key.pem`. A node's
//! certificate names it `node-N.castmesh` (its identity in the mesh) plus any extra
//! host names; it is valid for both TLS server and client authentication.
//!
//! Node certificates expire (a year by default, `--days`): a stolen node key stops
//! working without a revocation list. `castmesh cert renew --dir D --node-id N` signs
//! the same key and names again, for a new period; the node reads its certificate at
//! start, so a rolling restart puts renewed certificates in use. The CA lasts ten years.

use std::path::{Path, PathBuf};

use crate::private_file::{self, Existing};
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

/// How long a node certificate is valid unless `--days` says otherwise.
pub const NODE_DAYS: u32 = 365;

/// How long the cluster CA is valid: replacing it means issuing every node anew.
const CA_DAYS: u32 = 10 * 365;

/// Certificates are valid from slightly before they are made, so a peer whose clock
/// is a little behind accepts a fresh one.
const BACKDATE: time::Duration = time::Duration::hours(1);

fn valid_for(params: &mut CertificateParams, days: u32) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + time::Duration::days(days.into());
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
    valid_for(&mut params, CA_DAYS);
    let cert = params.self_signed(&key)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A certificate for node `id` with a new key, signed by `ca`, valid for [`NODE_DAYS`].
pub fn new_node(ca: &Pem, id: u64, hosts: &[String]) -> anyhow::Result<Pem> {
    sign_node(ca, id, hosts, new_key()?, NODE_DAYS)
}

/// A certificate for node `id` with `key`, signed by `ca`, valid for `days`.
fn sign_node(ca: &Pem, id: u64, hosts: &[String], key: KeyPair, days: u32) -> anyhow::Result<Pem> {
    anyhow::ensure!(days > 0, "a certificate must be valid for at least one day");
    let ca_key = KeyPair::from_pem(&ca.key).context("CA key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).context("CA certificate")?;
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
    valid_for(&mut params, days);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pem {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    private_file::write(path, text, Existing::Refuse)
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

fn read_in(dir: &Path, name: &str, hint: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {} ({hint})", path.display()))
}

fn read_ca(dir: &Path) -> anyhow::Result<Pem> {
    let hint = "run `castmesh cert init` first";
    Ok(Pem {
        cert: read_in(dir, "ca.pem", hint)?,
        key: read_in(dir, "ca-key.pem", hint)?,
    })
}

fn node_files(dir: &Path, id: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("node-{id}.pem")),
        dir.join(format!("node-{id}-key.pem")),
    )
}

/// `castmesh cert issue`: signs a certificate for node `id` with the CA in `dir`,
/// valid for `days`.
pub fn issue(dir: &Path, id: u64, hosts: &[String], days: u32) -> anyhow::Result<Vec<PathBuf>> {
    let ca = read_ca(dir)?;
    let node = sign_node(&ca, id, hosts, new_key()?, days)?;
    let (cert, key) = node_files(dir, id);
    write_secret(&key, &node.key)?;
    write_new(&cert, &node.cert)?;
    Ok(vec![cert, key])
}

/// `castmesh cert renew`: signs node `id`'s key and names again with the CA in `dir`,
/// valid for `days` from now, and replaces its certificate file (atomically: a node
/// starting meanwhile reads the old or the new one whole).
pub fn renew(dir: &Path, id: u64, days: u32) -> anyhow::Result<Vec<PathBuf>> {
    let ca = read_ca(dir)?;
    let (cert, _) = node_files(dir, id);
    let hint = "run `castmesh cert issue` for a new node";
    let old = read_in(dir, &format!("node-{id}.pem"), hint)?;
    let key_pem = read_in(dir, &format!("node-{id}-key.pem"), hint)?;
    let hosts = extra_names(&old, id)?;
    let key_pair = KeyPair::from_pem(&key_pem).context("node key")?;
    let node = sign_node(&ca, id, &hosts, key_pair, days)?;
    let fresh = dir.join(format!("node-{id}.pem.new"));
    std::fs::write(&fresh, &node.cert)
        .with_context(|| format!("cannot write {}", fresh.display()))?;
    std::fs::rename(&fresh, &cert).with_context(|| format!("cannot replace {}", cert.display()))?;
    Ok(vec![cert])
}

fn parse_pem(cert_pem: &str) -> anyhow::Result<x509_parser::pem::Pem> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))?;
    Ok(pem)
}

/// The names a node certificate carries besides the node's own.
fn extra_names(cert_pem: &str, id: u64) -> anyhow::Result<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let pem = parse_pem(cert_pem)?;
    let cert = pem.parse_x509().context("node certificate")?;
    let Some(sans) = cert
        .subject_alternative_name()
        .context("node certificate")?
    else {
        return Ok(Vec::new());
    };
    let own = node_name(id);
    Ok(sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) if *dns != own => Some(dns.to_string()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect())
}

/// When a certificate stops being valid, in seconds since the Unix epoch.
pub fn expires_at(cert_pem: &str) -> anyhow::Result<i64> {
    let pem = parse_pem(cert_pem)?;
    let cert = pem.parse_x509().context("certificate")?;
    Ok(cert.validity().not_after.timestamp())
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
    fn node_certificates_expire_and_renew_with_the_same_key_and_names() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        issue(
            dir.path(),
            4,
            &["edge4.example".into(), "10.0.0.4".into()],
            30,
        )
        .unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let day = 86_400;
        let issued = expires_at(&read("node-4.pem")).unwrap();
        assert!((issued - now - 30 * day).abs() < 60, "valid for 30 days");
        assert!(expires_at(&read("ca.pem")).unwrap() - now > 9 * 365 * day);
        let key = read("node-4-key.pem");

        renew(dir.path(), 4, NODE_DAYS).unwrap();
        let renewed = read("node-4.pem");
        assert!((expires_at(&renewed).unwrap() - now - 365 * day).abs() < 60);
        assert_eq!(read("node-4-key.pem"), key, "the key stays");
        assert_eq!(
            extra_names(&renewed, 4).unwrap(),
            ["edge4.example", "10.0.0.4"],
            "the names stay"
        );
        assert!(!dir.path().join("node-4.pem.new").exists());
        assert!(renew(dir.path(), 5, NODE_DAYS).is_err(), "no such node");
        assert!(issue(dir.path(), 6, &[], 0).is_err(), "zero days");
    }

    #[test]
    fn init_and_issue_write_files_once() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path()).unwrap();
        assert!(init(dir.path()).is_err(), "a CA is never overwritten");
        let files = issue(dir.path(), 3, &["edge3.example".into()], NODE_DAYS).unwrap();
        assert!(files[0].ends_with("node-3.pem"));
        assert!(
            issue(dir.path(), 3, &[], NODE_DAYS).is_err(),
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
