//! The real ffmpeg and ffprobe, as publisher and as viewer.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::artifacts_dir;

/// A 30 s 1280x720 30 fps H.264 High (2 B-frames, 2 s GOP) + AAC-LC stereo FLV,
/// encoded once per test run by ffmpeg and then published with `-c copy`, so
/// parallel tests do not each run a live x264 encoder on a 2-core machine.
pub fn sample_flv() -> PathBuf {
    static SAMPLE: OnceLock<PathBuf> = OnceLock::new();
    SAMPLE
        .get_or_init(|| encode_sample("sample-720p30-high-bframes.flv", "1280x720", "2500k"))
        .clone()
}

/// The same at 320x180 and 300 kbit/s: for tests that play it in several browsers at
/// once, so that two cores decode it all.
pub fn small_sample_flv() -> PathBuf {
    static SAMPLE: OnceLock<PathBuf> = OnceLock::new();
    SAMPLE
        .get_or_init(|| encode_sample("sample-180p30.flv", "320x180", "300k"))
        .clone()
}

fn encode_sample(name: &str, size: &str, bitrate: &str) -> PathBuf {
    let path = artifacts_dir().join(name);
    if path.exists() {
        return path;
    }
    let tmp = path.with_extension(format!("{}.tmp.flv", std::process::id()));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=30"),
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "30", "-ac", "2"])
        .args(["-c:v", "libx264", "-profile:v", "high", "-bf", "2"])
        .args([
            "-preset", "veryfast", "-pix_fmt", "yuv420p", "-b:v", bitrate,
        ])
        .args(["-x264-params", "keyint=60:min-keyint=60:scenecut=0"])
        .args(["-c:a", "aac", "-b:a", "128k"])
        .arg(&tmp)
        .status()
        .expect("run ffmpeg (is it installed? `make test` installs it)");
    assert!(status.success(), "encoding the sample FLV failed");
    std::fs::rename(&tmp, &path).expect("move sample into place");
    path
}

/// `ffmpeg -re -stream_loop -1 -i sample.flv -c copy -f flv rtmp://…`
pub struct Publisher {
    child: Child,
}

impl Publisher {
    pub fn start(rtmp_url: &str) -> Publisher {
        Self::start_file(rtmp_url, &sample_flv())
    }

    /// Publishes `sample` (an FLV file) in a loop.
    pub fn start_file(rtmp_url: &str, sample: &std::path::Path) -> Publisher {
        let child = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
            ])
            .arg("-i")
            .arg(sample)
            .args(["-c", "copy", "-f", "flv", rtmp_url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg publisher");
        Publisher { child }
    }

    /// SIGKILL, like a crashed encoder or a pulled cable.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for ffmpeg to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ffmpeg -xerror -i playlist -t SECONDS -f null -`: a viewer that fails on any
/// decode error.
pub struct Reader {
    child: Child,
}

pub struct ReadResult {
    pub status: ExitStatus,
    pub stderr: String,
    /// Media time reached, from ffmpeg's last progress line.
    pub seconds: f64,
    pub video_kb: f64,
    pub audio_kb: f64,
}

impl Reader {
    pub fn start(playlist_url: &str, seconds: u32, user_agent: &str) -> Reader {
        let child = Command::new("ffmpeg")
            .arg("-hide_banner")
            .args(["-xerror", "-user_agent", user_agent])
            .args(["-i", playlist_url])
            .args(["-t", &seconds.to_string(), "-f", "null", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg reader");
        Reader { child }
    }

    pub fn finish(mut self) -> ReadResult {
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut stderr)
            .unwrap();
        let status = self.child.wait().unwrap();
        ReadResult {
            status,
            seconds: last_time(&stderr),
            video_kb: size_kb(&stderr, "video:"),
            audio_kb: size_kb(&stderr, "audio:"),
            stderr,
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn last_time(stderr: &str) -> f64 {
    stderr
        .rsplit("time=")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| {
            let mut parts = t.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            Some(h * 3600.0 + m * 60.0 + s)
        })
        .unwrap_or(0.0)
}

fn size_kb(stderr: &str, key: &str) -> f64 {
    stderr
        .rsplit(key)
        .next()
        .and_then(|t| t.split("kB").next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `ffprobe -show_streams` as JSON.
pub fn probe_streams(url: &str) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json", url])
        .output()
        .expect("run ffprobe");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// `ffmpeg -re -stream_loop -1 -c copy` publisher that learns when it started sending
/// from its progress output (a frame of media time T goes out at start + T), for
/// benchmarks that time frames.
pub struct PacedPublisher {
    child: Child,
    started: Arc<Mutex<Option<Instant>>>,
}

impl PacedPublisher {
    pub fn start(sample: &std::path::Path, url: &str) -> PacedPublisher {
        let mut child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostats"])
            .args(["-progress", "pipe:1", "-stats_period", "0.1"])
            .args(["-re", "-stream_loop", "-1", "-i"])
            .arg(sample)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ffmpeg");
        let started = Arc::new(Mutex::new(None::<Instant>));
        let out = child.stdout.take().unwrap();
        let s = started.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(us) = line
                    .strip_prefix("out_time_us=")
                    .and_then(|v| v.parse::<u64>().ok())
                    && us > 0
                {
                    // Progress is reported after sending, so the earliest estimate is best.
                    let Some(estimate) = Instant::now().checked_sub(Duration::from_micros(us))
                    else {
                        continue;
                    };
                    let mut best = s.lock().unwrap();
                    *best = Some(best.map_or(estimate, |b: Instant| b.min(estimate)));
                }
            }
        });
        PacedPublisher { child, started }
    }

    pub fn started(&self) -> Option<Instant> {
        *self.started.lock().unwrap()
    }
}

impl Drop for PacedPublisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
