//! A cluster of real `castmesh` processes, node N on 127.K.0.N (K: a subnet of the
//! cluster's own, see `private_subnet`; free ports), each
//! with its own data directory, administered with the real `castctl`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::node::{Node, free_tcp_addrs, free_udp_addr};
use crate::{artifacts_dir, profile_dir, wait_for};

pub const SECRET: &str = "process-cluster-secret-0123456789";
pub const TOKEN: &str = "process-cluster-admin-token";

/// The `castctl` binary built alongside this test.
pub fn castctl_binary() -> PathBuf {
    let bin = profile_dir().join("castctl");
    assert!(bin.exists(), "{} not found: build it first", bin.display());
    bin
}

/// The subnet of `start_standard`: 127.0.0.N, default ports.
const STANDARD_SUBNET: u8 = 0;

struct Spec {
    /// Not an initial member: joins when an operator adds it.
    joiner: bool,
    mesh: SocketAddr,
    rtmp: SocketAddr,
    http: SocketAddr,
    grpc: SocketAddr,
    data: PathBuf,
}

impl Spec {
    /// Node `id` on 127.`subnet`.0.`id` (free ports; subnet 0: the default ports),
    /// data under `dir`.
    fn new(dir: &TempDir, subnet: u8, id: u64, joiner: bool) -> Spec {
        let ip = format!("127.{subnet}.0.{id}");
        let certs = dir.path().join("certs");
        let issued = Command::new(crate::node::binary())
            .args(["cert", "issue", "--dir"])
            .arg(&certs)
            .args(["--node-id", &id.to_string()])
            .output()
            .expect("castmesh cert issue");
        assert!(
            issued.status.success(),
            "{}",
            String::from_utf8_lossy(&issued.stderr)
        );
        let (mesh, [rtmp, http, grpc]) = if subnet == STANDARD_SUBNET {
            let at = |port: u16| format!("{ip}:{port}").parse().unwrap();
            (at(4433), [at(1935), at(8080), at(50051)])
        } else {
            (free_udp_addr(&ip), free_tcp_addrs(&ip, &[]))
        };
        Spec {
            joiner,
            mesh,
            rtmp,
            http,
            grpc,
            data: dir.path().join(format!("node{id}")),
        }
    }
}

pub struct CastctlOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CastctlOutput {
    /// Asserts success (table output).
    pub fn ok(&self) {
        assert_eq!(self.code, 0, "castctl failed: {}", self.stderr);
    }

    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "castctl failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).expect("castctl JSON")
    }
}

pub struct ProcessCluster {
    name: String,
    subnet: u8,
    _dir: TempDir,
    specs: BTreeMap<u64, Spec>,
    extra: Vec<String>,
    pub nodes: BTreeMap<u64, Node>,
    /// Held by a cluster on the standard addresses: one at a time per test process.
    /// Declared last so it is released after the nodes are stopped.
    _standard: Option<std::sync::MutexGuard<'static, ()>>,
}

impl ProcessCluster {
    /// Starts `n` voters (node 1 bootstraps) with `extra` flags on every node.
    pub fn start(name: &str, n: u64, extra: &[&str]) -> ProcessCluster {
        Self::start_in(name, crate::private_subnet(), n, extra)
    }

    /// Like `start`, on the addresses of `configs/cluster-3`: 127.0.0.1/.2/.3 with the
    /// default ports. Clusters started this way in one test process take turns.
    pub fn start_standard(name: &str, n: u64, extra: &[&str]) -> ProcessCluster {
        static STANDARD: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let turn = STANDARD.lock().unwrap_or_else(|e| e.into_inner());
        let mut cluster = Self::start_in(name, STANDARD_SUBNET, n, extra);
        cluster._standard = Some(turn);
        cluster
    }

    fn start_in(name: &str, subnet: u8, n: u64, extra: &[&str]) -> ProcessCluster {
        let dir = tempfile::tempdir().unwrap();
        // The cluster CA and node certificates for the QUIC mesh, made by the CLI.
        let init = Command::new(crate::node::binary())
            .args(["cert", "init", "--dir"])
            .arg(dir.path().join("certs"))
            .output()
            .expect("castmesh cert init");
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let specs: BTreeMap<u64, Spec> = (1..=n)
            .map(|id| (id, Spec::new(&dir, subnet, id, false)))
            .collect();
        for id in specs.keys() {
            let _ = std::fs::remove_file(Self::log_path(name, *id));
        }
        let mut cluster = ProcessCluster {
            name: name.into(),
            subnet,
            _dir: dir,
            _standard: None,
            specs,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            cluster.start_node(id);
        }
        cluster
    }

    fn log_path(name: &str, id: u64) -> PathBuf {
        artifacts_dir().join(format!("{name}-{id}.node.log"))
    }

    fn args(&self, id: u64) -> Vec<String> {
        let members: Vec<String> = self
            .specs
            .iter()
            .filter(|(_, s)| !s.joiner)
            .map(|(i, s)| format!("{i}={}", s.grpc))
            .collect();
        let s = &self.specs[&id];
        let certs = self._dir.path().join("certs");
        let members = if s.joiner {
            String::new()
        } else {
            members.join(",")
        };
        let mut args: Vec<String> = [
            "--cluster-node-id",
            &id.to_string(),
            "--cluster-data-dir",
            &s.data.display().to_string(),
            "--cluster-grpc-listen",
            &s.grpc.to_string(),
            "--cluster-initial-members",
            &members,
            "--cluster-bootstrap",
            if id == 1 { "true" } else { "false" },
            "--cluster-secret",
            SECRET,
            "--cluster-admin-token",
            TOKEN,
            "--cluster-open-publishing",
            "false",
            "--cluster-labels",
            &format!("region=zone-{id}"),
            "--mesh-listen",
            &s.mesh.to_string(),
            "--mesh-ca-cert",
            &certs.join("ca.pem").display().to_string(),
            "--mesh-cert",
            &certs.join(format!("node-{id}.pem")).display().to_string(),
            "--mesh-key",
            &certs
                .join(format!("node-{id}-key.pem"))
                .display()
                .to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Starts (or restarts, on its existing data) node `id`.
    pub fn start_node(&mut self, id: u64) {
        let s = &self.specs[&id];
        let name = format!("{}-{id}", self.name);
        let node = Node::spawn(&name, s.rtmp, s.http, s.grpc, &self.args(id));
        self.nodes.insert(id, node);
    }

    /// Starts a new node `id` in the cluster's subnet that is not a member yet: it waits for
    /// `castctl cluster add-node`.
    pub fn start_joiner(&mut self, id: u64) {
        let spec = Spec::new(&self._dir, self.subnet, id, true);
        let _ = std::fs::remove_file(Self::log_path(&self.name, id));
        self.specs.insert(id, spec);
        self.start_node(id);
    }

    /// Like `start_joiner`, but node `id`'s mesh certificate comes from another CA (it
    /// still trusts the cluster's): a node that may join Raft but not the media mesh.
    pub fn start_joiner_with_foreign_certificate(&mut self, id: u64) {
        let spec = Spec::new(&self._dir, self.subnet, id, true);
        let foreign = self._dir.path().join("foreign-ca");
        for args in [
            vec!["cert", "init", "--dir"],
            vec!["cert", "issue", "--node-id", &id.to_string(), "--dir"],
        ] {
            let out = Command::new(crate::node::binary())
                .args(&args)
                .arg(&foreign)
                .output()
                .expect("castmesh cert");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let certs = self._dir.path().join("certs");
        for name in [format!("node-{id}.pem"), format!("node-{id}-key.pem")] {
            std::fs::copy(foreign.join(&name), certs.join(&name)).expect("replace certificate");
        }
        let _ = std::fs::remove_file(Self::log_path(&self.name, id));
        self.specs.insert(id, spec);
        self.start_node(id);
    }

    /// `kill -9`: no shutdown, no flush beyond what was fsynced.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut node) = self.nodes.remove(&id) {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }

    /// Sends a signal (STOP, CONT) to node `id`.
    pub fn signal(&self, id: u64, signal: &str) {
        let pid = self.nodes[&id].child.id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{signal} {pid}");
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    /// Where node `id` listens for the QUIC mesh.
    pub fn mesh_addr(&self, id: u64) -> SocketAddr {
        self.specs[&id].mesh
    }

    /// The cluster CA and node certificates (`ca.pem`, `node-N.pem`, `node-N-key.pem`).
    pub fn certs_dir(&self) -> PathBuf {
        self._dir.path().join("certs")
    }

    pub fn grpc(&self, id: u64) -> SocketAddr {
        self.specs[&id].grpc
    }

    /// Runs castctl against node `id` with the admin token.
    pub fn castctl(&self, id: u64, args: &[&str]) -> CastctlOutput {
        self.castctl_with(id, Some(TOKEN), args)
    }

    pub fn castctl_with(&self, id: u64, token: Option<&str>, args: &[&str]) -> CastctlOutput {
        let mut cmd = Command::new(castctl_binary());
        cmd.args(["--endpoint", &format!("http://{}", self.grpc(id))])
            .env_remove("CASTCTL_TOKEN")
            .env_remove("CASTCTL_TOKEN_FILE");
        if let Some(t) = token {
            cmd.args(["--token", t]);
        }
        let out = cmd.args(args).output().expect("run castctl");
        CastctlOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The leader as node `via` sees it, if it answers and knows one.
    pub fn leader_seen_by(&self, via: u64) -> Option<u64> {
        let out = self.castctl(via, &["cluster", "status", "-o", "json", "--timeout", "2s"]);
        if out.code != 0 {
            return None;
        }
        let status: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        status["leader_id"].as_u64()
    }

    /// Waits until every running node agrees on one running leader.
    pub fn wait_leader(&self, timeout: Duration) -> u64 {
        wait_for("one agreed leader", timeout, || {
            let seen: Vec<Option<u64>> = self
                .nodes
                .keys()
                .map(|id| self.leader_seen_by(*id))
                .collect();
            let first = seen.first().copied().flatten()?;
            (seen.iter().all(|l| *l == Some(first)) && self.nodes.contains_key(&first))
                .then_some(first)
        })
    }

    /// Node `id`'s log so far, across its restarts.
    pub fn node_log(&self, id: u64) -> String {
        std::fs::read_to_string(Self::log_path(&self.name, id)).unwrap_or_default()
    }

    /// Waits until every running node has applied the same log index (a restarted node
    /// has caught up).
    pub fn wait_caught_up(&self, timeout: Duration) {
        wait_for("every node caught up", timeout, || {
            let applied: Vec<Option<u64>> = self
                .nodes
                .keys()
                .map(|id| {
                    let out = self.castctl(*id, &["cluster", "status", "-o", "json"]);
                    let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
                    v["applied_index"].as_u64()
                })
                .collect();
            let first = applied.first().copied().flatten()?;
            applied.iter().all(|a| *a == Some(first)).then_some(())
        })
    }

    /// Every node's log so far (running or not).
    pub fn logs(&self) -> String {
        self.specs.keys().map(|id| self.node_log(*id)).collect()
    }
}
