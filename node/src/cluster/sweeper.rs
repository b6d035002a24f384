//! Ends streams whose origin died. An origin ends its stream itself when the grace
//! period runs out; if the origin node is gone (crash, partition) nobody would, and the
//! stream would read `live` forever. The leader checks every few seconds for live
//! streams whose origin lease expired more than a grace period ago and ends them
//! (`EndOrphaned`, refused if a new origin took the stream meanwhile), and reports
//! the end to `on_publish_done`: the dead origin cannot.
//!
//! It also forgets streams open publishing created, once nobody has published them for
//! the stream retention (`ForgetOpenStream`): in open mode every new key is a stream,
//! and without this each would stay in the replicated state for good.
//!
//! And it drops expired sessions and invitations (`PurgeSessions`), which would
//! otherwise stay in the replicated state, and in every snapshot, after their expiry.

use std::sync::Arc;
use std::time::Duration;

use castmesh_cluster::StreamStatus;
use castmesh_cluster::accounts::AccountCommand;
use castmesh_cluster::command::Command;
use castmesh_cluster::member::ClusterMember;
use tokio::time::MissedTickBehavior;

use crate::seams::Clock;
use crate::stream::hooks::{DoneEvent, PublishHooks};

const INTERVAL: Duration = Duration::from_secs(2);

/// What the sweeper needs of the node's settings.
pub struct Sweeper {
    pub grace: Duration,
    pub retention: Duration,
    /// The RTMP application, for the hooks' `app` field.
    pub app: String,
    pub hooks: Arc<PublishHooks>,
}

pub async fn run(member: ClusterMember, clock: Arc<dyn Clock>, sweeper: Sweeper) {
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let grace_ms = sweeper.grace.as_millis() as u64;
    let retention_ms = sweeper.retention.as_millis() as u64;
    let Sweeper { app, hooks, .. } = sweeper;
    loop {
        ticker.tick().await;
        if member.raft().metrics().borrow().current_leader != Some(member.id()) {
            continue;
        }
        let now = clock.now_ms();
        // Local state is enough to choose candidates: the command re-checks on apply.
        let orphans: Vec<_> = member.read_local(|s| {
            s.streams
                .values()
                .filter(|r| r.status == StreamStatus::Live)
                .filter_map(|r| {
                    let lease = s.leases.get(&r.id);
                    let expired =
                        lease.is_none_or(|l| l.expires_at.saturating_add(grace_ms) <= now);
                    expired.then(|| (r.id.clone(), lease.map_or(0, |l| l.epoch)))
                })
                .collect()
        });
        for (id, epoch) in orphans {
            let command = Command::EndOrphaned {
                id: id.clone(),
                epoch,
                now,
                grace_ms,
            };
            match member.write(command).await {
                Ok(castmesh_cluster::Response::Stream(_)) => {
                    tracing::info!(stream = %id, "origin gone for longer than the grace period: stream ended");
                    hooks.publish_done(DoneEvent {
                        stream: id.to_string(),
                        epoch,
                        publish: None,
                        app: app.clone(),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(stream = %id, error = %e, "could not end an orphaned stream")
                }
            }
        }
        forget_open_streams(&member, now, retention_ms).await;
        purge_sessions(&member, now).await;
    }
}

async fn purge_sessions(member: &ClusterMember, now: u64) {
    let expired = member.read_local(|s| {
        let a = &s.accounts;
        a.sessions.values().any(|x| x.expires_at <= now)
            || a.invites.values().any(|i| i.expires_at <= now)
    });
    if !expired {
        return;
    }
    let command = Command::Account(AccountCommand::PurgeSessions { now });
    if let Err(e) = member.write(command).await {
        tracing::debug!(error = %e, "could not purge expired sessions");
    }
}

/// Open-publishing streams removed per sweep: a backlog goes in bounded steps.
const FORGET_PER_SWEEP: usize = 100;

async fn forget_open_streams(member: &ClusterMember, now: u64, retention_ms: u64) {
    let expired: Vec<_> = member.read_local(|s| {
        s.streams
            .values()
            .filter(|r| s.forgettable(r, now, retention_ms))
            .map(|r| r.id.clone())
            .take(FORGET_PER_SWEEP)
            .collect()
    });
    for id in expired {
        let command = Command::ForgetOpenStream {
            id: id.clone(),
            now,
            retention_ms,
        };
        match member.write(command).await {
            Ok(castmesh_cluster::Response::Done) => {
                tracing::info!(stream = %id, "open-publishing stream forgotten after its retention");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(stream = %id, error = %e, "could not forget a stream"),
        }
    }
}
