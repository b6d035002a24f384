//! `GET /api/v1/streams/{id}/live`: the watch page's WebSocket. One socket carries
//! what the page shows live: the stream's status and viewer count (pushed when they
//! change, checked every [`STATUS_EVERY`]) and its chat (`crate::chat`): the lines,
//! posts, and moderation. docs/api.md lists its messages.
//!
//! Bounded like every listener: sockets in total and per address
//! (`chat.max_sockets`, `chat.max_sockets_per_ip`), messages of at most
//! [`MAX_MESSAGE_BYTES`] and [`MAX_MESSAGES_PER_SECOND`] from a page, every write
//! within `http.write_timeout` (the connection's deadline), a socket that falls
//! `chat.socket_queue` events behind is closed, and a page from another site is
//! refused.

use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use castmesh_cluster::StreamId;
use castmesh_cluster::accounts::UserRecord;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::pages::PageUser;
use crate::admission::{Refusal as SlotRefusal, Slot};
use crate::chat::{ChatState, Event as ChatEvent, Joined, Moderation, Refusal, may_moderate};
use crate::http::api_error::ApiError;
use crate::http::streams::{StatusView, current_status};
use crate::http::{AppState, ClientAddr, origin};
use crate::metrics::ReasonLabel;

/// How often a socket's stream status is looked at (answers are cached by the node
/// for 2 s, so sockets of one stream mostly share a cluster read).
const STATUS_EVERY: Duration = Duration::from_secs(2);
/// A ping keeps proxies from closing a quiet socket and finds dead peers.
const PING_EVERY: Duration = Duration::from_secs(20);
/// The largest message a page sends: a post of `chat.max_message_chars` (at most
/// 1,000) characters of up to 4 bytes each, with its JSON around it, fits.
pub const MAX_MESSAGE_BYTES: usize = 8192;
/// Messages a page may send per second; more closes the socket.
pub const MAX_MESSAGES_PER_SECOND: u32 = 10;

/// What the server sends besides the chat's own events, as JSON text messages tagged
/// by `type`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    /// First: who the socket speaks for, and what they may do.
    Hello {
        user: Option<Me<'a>>,
        moderator: bool,
        max_chars: usize,
    },
    Status(&'a StatusView),
    /// Whether the chat takes posts (then its lines follow as a `history` event).
    Chat {
        state: ChatState,
    },
    /// A post or action of this socket's user that was not done, and why.
    Refused {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_s: Option<u64>,
    },
    /// A moderator's action that was done and shows nowhere else.
    Notice {
        message: &'a str,
    },
    /// The stream was deleted; the socket closes after this.
    Gone,
}

#[derive(Serialize)]
struct Me<'a> {
    id: u64,
    name: &'a str,
}

/// What a page sends.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Incoming {
    Post { text: String },
    Delete { room: u64, seq: u64 },
    Ban { user_id: u64 },
}

pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(client)): ConnectInfo<ClientAddr>,
    PageUser(user): PageUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // Browsers send cookies with a socket opened from any site: only this site's
    // pages (and http.allowed_origins) may open one.
    if let Err(refused) = origin::check(&state, &headers) {
        return refused.into_response();
    }
    let Ok(id) = StreamId::parse(&id) else {
        return ApiError::not_found("stream").into_response();
    };
    if let Err(e) = state.catalog.get(&id).await {
        return ApiError::from(e).into_response();
    }
    let slot = match state.watch_sockets.try_acquire(client) {
        Ok(slot) => slot,
        Err(refusal) => {
            closed(&state, refusal.label());
            let status = match refusal {
                SlotRefusal::Total => StatusCode::SERVICE_UNAVAILABLE,
                SlotRefusal::PerAddress => StatusCode::TOO_MANY_REQUESTS,
            };
            return ApiError::new(
                status,
                "rate_limited",
                format!("watch socket refused: {refusal}"),
            )
            .into_response();
        }
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| {
            let span = tracing::info_span!("watch_socket", stream = %id, %client, user = user.as_ref().map(|u| u.id));
            let session = Session {
                socket,
                state,
                id,
                user,
                joined: None,
                shown: None,
            };
            tracing::Instrument::instrument(session.run(slot), span)
        })
}

/// Whether a socket's view of the chat is final until the status changes: following
/// the live room, not started, or ended with its archive (an ended chat whose archive
/// the origin has not written yet, room 0, is looked at again).
fn settled(joined: &Joined) -> bool {
    match joined.state {
        ChatState::Open => joined.updates.is_some(),
        ChatState::NotStarted => true,
        ChatState::Ended => !matches!(&*joined.history.event, ChatEvent::History { room: 0, .. }),
    }
}

fn json(event: &Event<'_>) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(event).expect("events serialize"))
}

fn closed(state: &AppState, reason: &'static str) {
    state
        .ctx
        .metrics
        .watch_sockets_closed
        .get_or_create(&ReasonLabel { reason })
        .inc();
}

/// Why the server ends a socket (counted by reason).
type Close = &'static str;

struct Session {
    socket: WebSocket,
    state: AppState,
    id: StreamId,
    user: Option<UserRecord>,
    joined: Option<Joined>,
    shown: Option<StatusView>,
}

impl Session {
    async fn run(mut self, _slot: Slot) {
        let metrics = self.state.ctx.metrics.clone();
        metrics.watch_sockets.inc();
        if let Err(reason) = self.serve().await {
            closed(&self.state, reason);
        }
        metrics.watch_sockets.dec();
    }

    async fn serve(&mut self) -> Result<(), Close> {
        let moderator = self
            .user
            .as_ref()
            .is_some_and(|u| (self.state.catalog).read_local(|s| may_moderate(s, &self.id, u.id)));
        let hello = Event::Hello {
            user: self.user.as_ref().map(|u| Me {
                id: u.id,
                name: &u.display_name,
            }),
            moderator,
            max_chars: self.state.chat.config().max_message_chars,
        };
        self.send_text(json(&hello)).await?;
        let mut status_tick = tokio::time::interval(STATUS_EVERY);
        let mut ping_tick = tokio::time::interval(PING_EVERY);
        ping_tick.reset();
        let mut second = (Instant::now(), 0u32);
        loop {
            let updates = async {
                match self.joined.as_mut().and_then(|j| j.updates.as_mut()) {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                update = updates => match update {
                    Ok(published) => self.send_text(published.json).await?,
                    Err(RecvError::Lagged(_)) => return Err("slow"),
                    // The room closed (its stream moved or ended): join again at the
                    // next status check.
                    Err(RecvError::Closed) => {
                        if let Some(j) = self.joined.as_mut() {
                            j.updates = None;
                        }
                    }
                },
                incoming = self.socket.recv() => {
                    // Every frame counts, pings and binary ones too.
                    if second.0.elapsed() >= Duration::from_secs(1) {
                        second = (Instant::now(), 0);
                    }
                    second.1 += 1;
                    if second.1 > MAX_MESSAGES_PER_SECOND {
                        return Err("flood");
                    }
                    match incoming {
                        None | Some(Ok(Message::Close(_))) | Some(Err(_)) => return Ok(()),
                        Some(Ok(Message::Text(text))) => self.handle(&text).await?,
                        // Pings are answered by the socket itself; nothing else is taken.
                        Some(Ok(_)) => {}
                    }
                }
                _ = status_tick.tick() => self.check_status().await?,
                _ = ping_tick.tick() => {
                    self.socket.send(Message::Ping(Default::default())).await.map_err(|_| "write_timeout")?;
                }
            }
        }
    }

    /// Pushes a changed status, and joins the chat again when it may have moved: the
    /// stream started or ended, or the room this socket followed closed.
    async fn check_status(&mut self) -> Result<(), Close> {
        let now = match current_status(&self.state, &self.id).await {
            Ok(now) => now,
            Err(e) if e.status == StatusCode::NOT_FOUND => {
                self.send(&Event::Gone).await?;
                return Err("gone");
            }
            // A cluster that cannot answer leaves the last status shown.
            Err(_) => return Ok(()),
        };
        let moved = self.shown.as_ref().is_none_or(|s| s.status != now.status);
        if self.shown.as_ref() != Some(&now) {
            self.send(&Event::Status(&now)).await?;
            self.shown = Some(now);
        }
        if moved || !self.joined.as_ref().is_some_and(settled) {
            let joined = self.state.chat.join(&self.id);
            let before = self.joined.replace(joined);
            let joined = self.joined.as_ref().expect("just set");
            let (state, history) = (joined.state, joined.history.clone());
            if before.as_ref().is_none_or(|j| j.state != state) {
                self.send(&Event::Chat { state }).await?;
            }
            if before.is_none_or(|j| j.history.event != history.event) {
                self.send_text(history.json).await?;
            }
        }
        Ok(())
    }

    async fn handle(&mut self, text: &str) -> Result<(), Close> {
        let Ok(incoming) = serde_json::from_str::<Incoming>(text) else {
            let refused = Event::Refused {
                code: "invalid_request",
                message: "not a message this socket takes (post, delete, ban)".into(),
                retry_after_s: None,
            };
            return self.send(&refused).await;
        };
        let Some(user) = &self.user else {
            return self.refused(Refusal::SignedOut).await;
        };
        let chat = &self.state.chat;
        let (done, notice) = match incoming {
            Incoming::Post { text } => (
                chat.post(&self.id, user.id, &user.display_name, &text)
                    .await,
                None,
            ),
            Incoming::Delete { room, seq } => (
                chat.moderate(&self.id, user.id, Moderation::Delete { room, seq })
                    .await,
                None,
            ),
            Incoming::Ban { user_id } => (
                chat.moderate(&self.id, user.id, Moderation::Ban(user_id))
                    .await,
                Some("Banned: their next message is refused on every node."),
            ),
        };
        match (done, notice) {
            (Err(refusal), _) => self.refused(refusal).await,
            (Ok(()), Some(message)) => self.send(&Event::Notice { message }).await,
            (Ok(()), None) => Ok(()),
        }
    }

    async fn refused(&mut self, refusal: Refusal) -> Result<(), Close> {
        let retry_after_s = match refusal {
            Refusal::Muted { wait } => Some(wait.as_secs_f64().ceil() as u64),
            _ => None,
        };
        let event = Event::Refused {
            code: refusal.code(),
            message: refusal.to_string(),
            retry_after_s,
        };
        self.send(&event).await
    }

    async fn send(&mut self, event: &Event<'_>) -> Result<(), Close> {
        self.send_text(json(event)).await
    }

    async fn send_text(&mut self, text: Utf8Bytes) -> Result<(), Close> {
        self.socket
            .send(Message::Text(text))
            .await
            .map_err(|_| "write_timeout")
    }
}
