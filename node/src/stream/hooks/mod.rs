//! Publish hooks compatible with nginx-rtmp (`[hooks]`, docs/api.md "Publish hooks"):
//! a backend decides who publishes (`on_publish`, called on the node the publisher
//! reached, before "publish started") and hears once a stream has really ended
//! (`on_publish_done`, from the node where it ended).
//!
//! What a publisher sent (its key among it) stays in the memory of the node it
//! published to, never in the replicated state: an end reported by another node (the
//! origin died) carries the public id instead (`notify::DoneEvent`).

pub mod client;
pub mod notify;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

pub use notify::{Answer, DoneEvent};

use crate::config::HooksConfig;
use crate::metrics::{HookLabel, Metrics};
use crate::stream::publish::PublishRequest;

/// First wait before delivering an `on_publish_done` again; doubled up to the next.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// `on_publish_done` calls in flight at once: a backlog (the backend was down) reaches
/// a recovering backend a few at a time, and holds a few sockets, not thousands.
const DELIVERING_AT_ONCE: usize = 8;

pub struct PublishHooks {
    config: HooksConfig,
    /// Its `hook_pending` gauge is also the count `hooks.max_pending` bounds.
    metrics: Arc<Metrics>,
    delivering: Semaphore,
}

impl PublishHooks {
    pub fn new(config: &HooksConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            metrics,
            delivering: Semaphore::new(DELIVERING_AT_ONCE),
        })
    }

    fn count(&self, hook: &'static str, outcome: &'static str) {
        self.metrics
            .hook_calls
            .get_or_create(&HookLabel { hook, outcome })
            .inc();
    }

    /// When `on_publish` cannot be reached, whether streams the cluster knows publish
    /// on their key alone.
    pub fn fail_open(&self) -> bool {
        self.config.fail_open
    }

    /// Asks `on_publish` about `request`; `None` when no hook is configured.
    pub async fn on_publish(&self, request: &PublishRequest) -> Option<Answer> {
        let url = self.config.on_publish.uri()?;
        let form = notify::publish_form(request);
        let answer = match client::post_form(url, form, self.config.timeout).await {
            Ok(reply) => notify::interpret(reply.status, &reply.location),
            Err(e) => Answer::Unreachable(format!("the publish hook could not be called: {e}")),
        };
        let outcome = match &answer {
            Answer::Allow => "allow",
            Answer::Rename(_) => "rename",
            Answer::Refuse(why) => {
                tracing::info!(reason = %why, "publish refused by the hook");
                "refuse"
            }
            Answer::Unreachable(why) => {
                tracing::warn!(reason = %why, "publish hook unreachable");
                "unreachable"
            }
        };
        self.count("on_publish", outcome);
        Some(answer)
    }

    /// Reports a real end to `on_publish_done` in the background, again after
    /// connection failures, timeouts, 408, 429 and 5xx answers (with a growing pause)
    /// for as long as the node runs: at least once, the event's `id` lets the backend
    /// ignore a repeat. Another status is the backend's final word: logged, not
    /// repeated.
    pub fn publish_done(self: &Arc<Self>, event: DoneEvent) {
        let Some(url) = self.config.on_publish_done.uri().cloned() else {
            return;
        };
        let waiting = self.metrics.hook_pending.inc();
        if usize::try_from(waiting).unwrap_or(0) >= self.config.max_pending {
            self.metrics.hook_pending.dec();
            self.count("on_publish_done", "dropped");
            tracing::error!(
                stream = %event.stream,
                id = %event.id(),
                waiting,
                "on_publish_done not reported: hooks.max_pending events already wait for the backend"
            );
            return;
        }
        let hooks = self.clone();
        tokio::spawn(async move {
            hooks.deliver(&url, &event).await;
            hooks.metrics.hook_pending.dec();
        });
    }

    async fn deliver(&self, url: &axum::http::Uri, event: &DoneEvent) {
        let form = event.form();
        let mut pause = RETRY_FIRST;
        loop {
            let Ok(turn) = self.delivering.acquire().await else {
                return; // never closed
            };
            let answer = client::post_form(url, form.clone(), self.config.timeout).await;
            drop(turn);
            let failure = match answer {
                Ok(reply) if reply.status / 100 == 2 => {
                    self.count("on_publish_done", "delivered");
                    tracing::info!(stream = %event.stream, id = %event.id(), "on_publish_done delivered");
                    return;
                }
                Ok(reply) if reply.status / 100 != 5 && ![408, 429].contains(&reply.status) => {
                    self.count("on_publish_done", "rejected");
                    tracing::warn!(stream = %event.stream, id = %event.id(), status = reply.status, "on_publish_done answered with an error; not repeated");
                    return;
                }
                Ok(reply) => format!("answered {}", reply.status),
                Err(e) => e.to_string(),
            };
            self.count("on_publish_done", "retry");
            tracing::warn!(
                stream = %event.stream,
                id = %event.id(),
                error = %failure,
                retry_in = %humantime::format_duration(pause),
                "on_publish_done not delivered; trying again"
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }
}
