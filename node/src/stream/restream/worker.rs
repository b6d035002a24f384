//! One destination's pushing, connection after connection: push until the connection
//! ends, wait (1 s doubling to 30 s, with jitter), push again. A destination that
//! refuses the publish again and again (a wrong key) or may not be reached at all is
//! given up on with its reason shown (`error`), so a bad key is no retry storm; a
//! connection that got live resets the count and the backoff.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use castmesh_cluster::restream::Destination;
use tracing::Instrument;

use super::queue::FrameQueue;
use super::status::{DestinationStatus, State};
use super::tap::MediaTap;
use super::{PushError, PushJob};
use crate::stream::context::NodeContext;

/// Publish refusals in a row after which a destination is given up on.
pub const MAX_REJECTIONS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct Worker {
    pub stream: String,
    pub destination: Destination,
    pub queue: Arc<FrameQueue>,
    pub tap: Arc<MediaTap>,
    pub status: Arc<DestinationStatus>,
    pub ctx: Arc<NodeContext>,
}

/// The delay before retry number `attempt` (0-based): doubling from 1 s up to 30 s,
/// then between 75 % and 100 % of it at random, so destinations that failed together
/// do not all come back in the same instant.
pub fn backoff(attempt: u32, random: u64) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1u32 << attempt.min(5))
        .min(MAX_BACKOFF);
    let quarter = full / 4;
    let jitter_ms = random % (quarter.as_millis() as u64 + 1);
    full - quarter + Duration::from_millis(jitter_ms)
}

/// Addresses of the cluster's nodes (their mesh and configured listen addresses):
/// a destination must not point back into the cluster.
fn cluster_addresses(ctx: &NodeContext) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = ctx
        .registry
        .peers()
        .into_iter()
        .map(|(_, addr)| addr.ip())
        .collect();
    ips.extend(
        [ctx.config.rtmp.listen, ctx.config.http.listen]
            .iter()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_unspecified()),
    );
    ips
}

impl Worker {
    pub async fn run(self) {
        let span = tracing::info_span!("restream", stream = %self.stream, destination = self.destination.id);
        self.push_until_done().instrument(span).await;
    }

    async fn push_until_done(self) {
        let clock = self.ctx.seams.clock.clone();
        let mut rejections = 0;
        let mut attempt = 0;
        loop {
            let cluster = cluster_addresses(&self.ctx);
            // Each connection starts over at a keyframe, after the sequence headers.
            self.queue.restart();
            let ended = self
                .ctx
                .pusher
                .push(PushJob {
                    destination: &self.destination,
                    queue: &self.queue,
                    tap: &self.tap,
                    status: &self.status,
                    cluster: &cluster,
                    clock: &*clock,
                })
                .await;
            let now = clock.now_ms();
            let went_live = self.status.state() == State::Live;
            let why = ended.to_string();
            match ended {
                PushError::Stopped => {
                    self.status.idle();
                    tracing::info!("restream stopped");
                    return;
                }
                PushError::Forbidden(_) => {
                    tracing::warn!(reason = %why, "restream destination refused: not retrying");
                    self.status.failed(&why, now, None);
                    return;
                }
                PushError::Rejected(_) => {
                    rejections += 1;
                    if rejections >= MAX_REJECTIONS {
                        tracing::warn!(reason = %why, rejections, "the destination keeps refusing the publish: not retrying");
                        self.status.failed(
                            &format!("{why} (refused {rejections} times in a row; not retrying)"),
                            now,
                            None,
                        );
                        return;
                    }
                }
                PushError::Failed(_) if went_live => {
                    rejections = 0;
                    attempt = 0;
                }
                PushError::Failed(_) => {}
            }
            let delay = backoff(attempt, self.ctx.seams.entropy.next_u64());
            attempt += 1;
            tracing::info!(reason = %why, retry_in = ?delay, "restream connection ended; retrying");
            self.status
                .failed(&why, now, Some(now + delay.as_millis() as u64));
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_a_quarter_of_jitter() {
        let lowest: Vec<u64> = (0..8).map(|a| backoff(a, 0).as_millis() as u64).collect();
        assert_eq!(lowest, [750, 1500, 3000, 6000, 12000, 22500, 22500, 22500]);
        assert_eq!(backoff(0, 250), Duration::from_millis(1000));
        assert!((0..1000).all(|r| backoff(20, r) <= MAX_BACKOFF));
    }
}
