//! The RTMP(S) client that pushes a stream to a restream destination (the
//! [`Pusher`] the stream's restream actors use): `dial` reaches the server, `session`
//! publishes to it.
//!
//! The destination key is secret: it travels only inside the RTMP commands, and any
//! words a push ends with are scrubbed of it (a server may quote it back).

mod dial;
pub(crate) mod session;

use std::time::Duration;

use async_trait::async_trait;
use castmesh_cluster::restream::RtmpUrl;

use super::guard::GuardLimits;
use crate::config::Config;
use crate::stream::restream::{PushError, PushJob, Pusher};
use dial::Dialer;
use session::Publish;

pub struct RtmpPusher {
    dialer: Dialer,
    limits: GuardLimits,
    connect_timeout: Duration,
    write_timeout: Duration,
}

impl RtmpPusher {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let rtmp = &config.rtmp;
        Ok(Self {
            dialer: Dialer::new(&config.restream)?,
            limits: GuardLimits {
                max_media_message: rtmp.max_command_bytes,
                max_command_message: rtmp.max_command_bytes,
                max_commands: rtmp.max_commands,
                max_amf_depth: rtmp.max_amf_depth,
            },
            connect_timeout: config.restream.connect_timeout,
            write_timeout: config.restream.write_timeout,
        })
    }

    async fn open(&self, job: &PushJob<'_>, url: &RtmpUrl) -> Result<Publish, PushError> {
        let key = &job.destination.key;
        let io = self.dialer.dial(url, job.cluster).await?;
        Publish::open(io, url, key, self.limits, self.write_timeout).await
    }
}

/// `error` without the key.
fn scrubbed(error: PushError, key: &str) -> PushError {
    if key.is_empty() {
        return error;
    }
    let scrub = |s: String| s.replace(key, "<key>");
    match error {
        PushError::Rejected(s) => PushError::Rejected(scrub(s)),
        PushError::Forbidden(s) => PushError::Forbidden(scrub(s)),
        PushError::Failed(s) => PushError::Failed(scrub(s)),
        PushError::Stopped => PushError::Stopped,
    }
}

#[async_trait]
impl Pusher for RtmpPusher {
    async fn push(&self, job: PushJob<'_>) -> PushError {
        let key = &job.destination.key;
        let url = match RtmpUrl::parse(&job.destination.url) {
            Ok(url) => url,
            Err(e) => return PushError::Forbidden(format!("bad server URL: {e}")),
        };
        job.status.connecting();
        let opened = tokio::select! {
            opened = tokio::time::timeout(self.connect_timeout, self.open(&job, &url)) => opened,
            () = job.queue.closed() => return PushError::Stopped,
        };
        let mut publish = match opened {
            Ok(Ok(publish)) => publish,
            Ok(Err(e)) => return scrubbed(e, key),
            Err(_) => {
                return PushError::Failed(format!(
                    "{}:{} did not accept the publish within {}",
                    url.host,
                    url.port,
                    humantime::format_duration(self.connect_timeout)
                ));
            }
        };
        tracing::info!(host = %url.host, "restreaming");
        job.status.live(job.clock.now_ms());
        let ended = publish.run(job.queue, job.tap, job.status, job.clock).await;
        scrubbed(ended, key)
    }
}
