//! A real `castmesh` process on free loopback ports.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{artifacts_dir, wait_for};

/// The `castmesh` binary built alongside this test (same profile).
pub fn binary() -> PathBuf {
    let bin = crate::profile_dir().join("castmesh");
    assert!(
        bin.exists(),
        "{} not found: build it first (`make test` does: cargo build --release --bins)",
        bin.display()
    );
    bin
}

/// `N` free TCP addresses on `ip`, none of them in `avoid`. All are held bound until
/// every one is chosen: ports bound and released one at a time can come back twice,
/// and a node given the same port for two listeners never starts.
pub fn free_tcp_addrs<const N: usize>(ip: &str, avoid: &[SocketAddr]) -> [SocketAddr; N] {
    let mut held = Vec::new();
    let mut chosen = Vec::new();
    while chosen.len() < N {
        let listener = TcpListener::bind(format!("{ip}:0")).expect("free port");
        let addr = listener.local_addr().expect("bound address");
        if !avoid.contains(&addr) {
            chosen.push(addr);
        }
        held.push(listener);
    }
    chosen.try_into().expect("N addresses")
}

/// A free UDP port on `ip` (bound then released).
pub fn free_udp_addr(ip: &str) -> SocketAddr {
    std::net::UdpSocket::bind(format!("{ip}:0"))
        .and_then(|s| s.local_addr())
        .expect("free UDP port")
}

pub struct Node {
    pub child: Child,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    pub log: PathBuf,
    /// A `--dev` node's data directory, owned here so that it is removed however the
    /// process ends (a killed node cannot remove its own temporary directory).
    data: Option<tempfile::TempDir>,
    client: reqwest::blocking::Client,
}

impl Node {
    /// Starts a node on free ports with extra flags, and waits for `/healthz`.
    pub fn start(name: &str, extra: &[&str]) -> Node {
        let [rtmp, http] = free_tcp_addrs("127.0.0.1", &[]);
        Self::start_on(name, rtmp, http, extra)
    }

    /// A `--dev` node (one-node cluster, open publishing) on these media ports and a
    /// free gRPC port.
    pub fn start_on(name: &str, rtmp: SocketAddr, http: SocketAddr, extra: &[&str]) -> Node {
        let grpc = {
            let [grpc] = free_tcp_addrs("127.0.0.1", &[rtmp, http]);
            grpc
        };
        let _ = std::fs::remove_file(artifacts_dir().join(format!("{name}.node.log")));
        let data = tempfile::Builder::new()
            .prefix("castmesh-test-node-")
            .tempdir()
            .expect("node data dir");
        let mut args = vec!["--dev".to_string()];
        args.extend(["--cluster-grpc-listen".into(), grpc.to_string()]);
        args.extend([
            "--cluster-data-dir".into(),
            data.path().display().to_string(),
        ]);
        args.extend([
            "--mesh-listen".into(),
            free_udp_addr("127.0.0.1").to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut node = Self::spawn(name, rtmp, http, grpc, &args);
        node.data = Some(data);
        node
    }

    /// Runs `castmesh` with `args` plus the media listen addresses, and waits for `/healthz`.
    pub fn spawn(
        name: &str,
        rtmp: SocketAddr,
        http: SocketAddr,
        grpc: SocketAddr,
        args: &[String],
    ) -> Node {
        Self::spawn_command(Command::new(binary()), name, rtmp, http, grpc, args)
    }

    /// Like [`Node::spawn`], with `command` as the node (another binary, extra
    /// environment).
    pub fn spawn_command(
        mut command: Command,
        name: &str,
        rtmp: SocketAddr,
        http: SocketAddr,
        grpc: SocketAddr,
        args: &[String],
    ) -> Node {
        let log = artifacts_dir().join(format!("{name}.node.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("node log");
        let child = command
            .args(["--rtmp-listen", &rtmp.to_string()])
            .args(["--http-listen", &http.to_string()])
            .args(args)
            .env("NO_COLOR", "1")
            .env("CASTMESH_LOG", "info,castmesh_node=debug")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .expect("start castmesh");
        let mut node = Node {
            child,
            rtmp,
            http,
            grpc,
            log,
            data: None,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        node.wait_healthy(Duration::from_secs(20));
        node
    }

    /// A `--dev` node serving HTTPS with `cert`/`key` (PEM files): its health is not
    /// waited for here (this harness's client speaks plain HTTP); the caller checks it.
    pub fn launch_tls(name: &str, cert: &std::path::Path, key: &std::path::Path) -> Node {
        let [rtmp, http, grpc] = free_tcp_addrs("127.0.0.1", &[]);
        let data = tempfile::tempdir().expect("node data dir");
        let log = artifacts_dir().join(format!("{name}.node.log"));
        let log_file = std::fs::File::create(&log).expect("node log");
        let child = Command::new(binary())
            .arg("--dev")
            .args(["--rtmp-listen", &rtmp.to_string()])
            .args(["--http-listen", &http.to_string()])
            .args(["--cluster-grpc-listen", &grpc.to_string()])
            .arg("--cluster-data-dir")
            .arg(data.path())
            .args(["--mesh-listen", &free_udp_addr("127.0.0.1").to_string()])
            .arg("--http-tls-cert")
            .arg(cert)
            .arg("--http-tls-key")
            .arg(key)
            .env("NO_COLOR", "1")
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .stdin(Stdio::null())
            .spawn()
            .expect("start castmesh");
        Node {
            child,
            rtmp,
            http,
            grpc,
            log,
            data: Some(data),
            client: reqwest::blocking::Client::new(),
        }
    }

    /// Waits for `/healthz` to answer 200. A node that exits or stays unhealthy fails the
    /// test with its exit status and the end of its log: a bare timeout in CI, where the
    /// log is gone with the machine, cannot be diagnosed.
    fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.get("/healthz").is_ok_and(|r| r.0 == 200) {
                return;
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || std::time::Instant::now() >= deadline {
                let log = self.log_text();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                panic!(
                    "node {} (rtmp {}, http {}, grpc {}) not healthy: {}\nlast log lines:\n{}",
                    self.log.display(),
                    self.rtmp,
                    self.http,
                    self.grpc,
                    match exited {
                        Some(status) => format!("exited with {status}"),
                        None => format!("no 200 from /healthz within {timeout:?}"),
                    },
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A `--dev` node's data directory.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data.as_ref().map(|d| d.path())
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn playlist_url(&self, id: &str) -> String {
        self.url(&format!("/hls/{id}/index.m3u8"))
    }

    /// GET returning (status, body bytes).
    pub fn get(&self, path: &str) -> reqwest::Result<(u16, Vec<u8>)> {
        self.get_url(&self.url(path))
    }

    pub fn get_url(&self, url: &str) -> reqwest::Result<(u16, Vec<u8>)> {
        let r = self.client.get(url).send()?;
        let status = r.status().as_u16();
        Ok((status, r.bytes()?.to_vec()))
    }

    pub fn get_text(&self, path: &str) -> (u16, String) {
        let (s, b) = self.get(path).expect("HTTP request");
        (s, String::from_utf8_lossy(&b).into_owned())
    }

    pub fn post(&self, path: &str) -> u16 {
        self.client
            .post(self.url(path))
            .send()
            .expect("HTTP POST")
            .status()
            .as_u16()
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path).expect("HTTP request");
        assert_eq!(status, 200, "GET {path}");
        serde_json::from_slice(&body).expect("JSON")
    }

    /// The value of a metric line starting with `prefix` (e.g. `castmesh_viewers{stream="x"}`).
    pub fn metric(&self, prefix: &str) -> Option<f64> {
        let (_, text) = self.get_text("/metrics");
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until the stream's playlist lists at least `parts` parts and segments.
    pub fn wait_for_stream(&self, id: &str, segments: usize) {
        wait_for(
            &format!("stream {id} with {segments} segments"),
            Duration::from_secs(30),
            || {
                let (status, text) = self.get_text(&format!("/hls/{id}/media.m3u8"));
                (status == 200 && text.matches("#EXTINF").count() >= segments).then_some(())
            },
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident memory of the node process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS:")
    }

    /// The most resident memory the process ever had (VmHWM): catches a buffer that
    /// was allocated and freed again between two looks at [`Node::rss_kib`].
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc status"))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
