//! A real nginx-rtmp (Debian's `libnginx-mod-rtmp`) as a restream destination (or an
//! ingest): it may record what it receives (`record all`), ask an `on_publish` URL
//! first, and sit behind nginx's own TLS terminator (`libnginx-mod-stream`) as an
//! rtmps:// server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::artifacts_dir;
use crate::node::free_tcp_addrs;

pub struct NginxOptions {
    /// `on_publish` URL: nginx refuses the publish unless it answers 2xx.
    pub on_publish: Option<String>,
    /// Certificate and key (PEM) for a TLS listener in front of RTMP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `record all` into `rec/` (one file per publish).
    pub record: bool,
}

pub struct Nginx {
    child: Child,
    pub rtmp: SocketAddr,
    /// The TLS listener, when asked for.
    pub rtmps: Option<SocketAddr>,
    pub dir: PathBuf,
}

impl Nginx {
    pub fn start(name: &str, options: NginxOptions) -> Nginx {
        let [rtmp, rtmps] = free_tcp_addrs("127.0.0.1", &[]);
        let dir = artifacts_dir().join(format!("nginx-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rec")).unwrap();
        let rtmps = options.tls.as_ref().map(|_| rtmps);
        std::fs::write(dir.join("nginx.conf"), conf(&dir, rtmp, rtmps, &options)).unwrap();
        let child = spawn(&dir);
        let nginx = Nginx {
            child,
            rtmp,
            rtmps,
            dir,
        };
        nginx.wait_listening();
        nginx
    }

    /// The URL of its `live` application (plain RTMP).
    pub fn url(&self) -> String {
        format!("rtmp://{}/live", self.rtmp)
    }

    /// SIGKILL, then the same server on the same ports again.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.dir);
        self.wait_listening();
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The recordings of stream `name` (`record_unique`: one per publish).
    pub fn recordings(&self, name: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("rec"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("{name}-")) && f.ends_with(".flv"))
        });
        files.sort();
        files
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn wait_listening(&self) {
        crate::wait_for("nginx to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(self.rtmp).ok()
        });
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// nginx as a plain static file server (the serving benchmarks' reference): as
/// many workers as cores, sendfile, no access log, keep-alive without a request
/// limit — the settings a production nginx in front of HLS files uses. No
/// `open_file_cache`: a live playlist is replaced (renamed over) every part, and a
/// cached descriptor would keep serving the old one.
pub struct StaticNginx {
    child: Child,
    pub http: SocketAddr,
    /// Files under here are served at `/`.
    pub root: PathBuf,
}

impl StaticNginx {
    /// `gzip`: compress playlists on the fly for clients that accept it (what
    /// `gzip on` does for a live playlist: it cannot be precompressed).
    pub fn start(name: &str, gzip: bool) -> StaticNginx {
        let [http] = free_tcp_addrs("127.0.0.1", &[]);
        let dir = artifacts_dir().join(format!("nginx-static-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("www");
        std::fs::create_dir_all(&root).unwrap();
        let d = dir.display();
        let gzip = if gzip {
            "gzip on; gzip_types application/vnd.apple.mpegurl;"
        } else {
            ""
        };
        let conf = format!(
            r#"daemon off;
worker_processes auto;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000000;
    types {{ application/vnd.apple.mpegurl m3u8; video/mp4 mp4; video/iso.segment m4s; }}
    {gzip}
    server {{
        listen {http} reuseport;
        root {root};
    }}
}}
"#,
            root = root.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = spawn(&dir);
        crate::wait_for("nginx to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(http).ok()
        });
        StaticNginx { child, http, root }
    }

    /// The master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        crate::proc::family(self.child.id())
    }
}

impl Drop for StaticNginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: killing the master alone would leave its workers
        // serving.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path) -> Child {
    Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (`make test` installs nginx-light + libnginx-mod-rtmp)")
}

fn conf(dir: &Path, rtmp: SocketAddr, rtmps: Option<SocketAddr>, options: &NginxOptions) -> String {
    let d = dir.display();
    let record = if options.record {
        format!("record all; record_path {d}/rec; record_unique on;")
    } else {
        String::new()
    };
    let on_publish = options
        .on_publish
        .as_ref()
        .map(|url| format!("on_publish {url};"))
        .unwrap_or_default();
    let (stream_module, tls) = match (&options.tls, rtmps) {
        (Some((cert, key)), Some(listen)) => (
            "load_module /usr/lib/nginx/modules/ngx_stream_module.so;",
            format!(
                "stream {{ server {{ listen {listen} ssl; ssl_certificate {}; ssl_certificate_key {}; proxy_pass {rtmp}; }} }}",
                cert.display(),
                key.display()
            ),
        ),
        _ => ("", String::new()),
    };
    format!(
        r#"load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
{stream_module}
daemon off;
master_process off;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen {rtmp};
        chunk_size 4096;
        application live {{
            live on;
            {record}
            {on_publish}
        }}
    }}
}}
{tls}
"#
    )
}

/// A time field (`pts_time`, `dts_time`) of each video packet of a recording, in
/// file order, in seconds (ffprobe).
pub fn video_packet_times(file: &Path, field: &str) -> Vec<f64> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            &format!("packet={field}"),
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// The last video timestamp in an FLV recording, in seconds (its duration as played),
/// and the codecs ffprobe finds in it.
pub fn recording_facts(file: &Path) -> (f64, Vec<String>) {
    let last = video_packet_times(file, "pts_time")
        .into_iter()
        .fold(0.0, f64::max);
    let codecs = crate::ffmpeg::probe_streams(&file.display().to_string());
    let names = codecs["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["codec_name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (last, names)
}
