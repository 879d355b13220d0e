//! Roost's WebSocket sync transport (not in the spec; protocol in docs/websocket.md).
//!
//! One socket per device carries the same incremental stream as `/sync`. The server sends a
//! `sync` message whenever there is news, then waits for the client's `ack` of that message's
//! `next_batch` before it sends the next: at most one unacknowledged response per connection,
//! so a slow client costs no memory (what it hasn't taken stays in the database) and the
//! server never buffers without bound. A client that doesn't ack within [`ACK_TIMEOUT`] is
//! disconnected. Reconnecting with the last acked token resumes exactly where it stopped.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use super::sync::{parse_since, sync_filter};
use crate::error::{Error, Result};
use crate::http::auth::bearer_token;
use crate::http::json::QueryParams;
use crate::services::AppState;
use crate::sync::response::SyncResponse;
use crate::sync::v2::SyncParams;
use crate::users::Identity;

pub const PATH: &str = "/_matrix/client/unstable/org.roost.ws/sync";
/// How long a client may take to acknowledge a response.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the server pings; a connection silent for two intervals is closed.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long the first message may take when the token comes in it.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// What a client sends is an auth message or an ack: small. The limit keeps a client from
/// making the server buffer a large message (the library default is 64 MiB).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// The socket's read buffer. The library default (128 KiB) is zero-filled on every read: with
/// thousands of connections each reading small acks, that memset was the largest cost of the
/// transport, and 128 KiB per connection is most of the memory of 10,000 sockets.
const READ_BUFFER: usize = 4 * 1024;

/// Close codes (4000-4999 are for applications).
const CLOSE_UNAUTHORIZED: u16 = 4001;
const CLOSE_BAD_MESSAGE: u16 = 4002;
/// RFC 6455's "message too big".
const CLOSE_TOO_BIG: u16 = 1009;
const CLOSE_ACK_TIMEOUT: u16 = 4008;

/// Whether a read failed because the client's message exceeded [`MAX_CLIENT_MESSAGE`].
fn is_too_big(error: &axum::Error) -> bool {
    matches!(
        std::error::Error::source(error).and_then(|e| e.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route(PATH, get(upgrade))
}

#[derive(Deserialize, Default)]
struct WsQuery {
    since: Option<String>,
    filter: Option<String>,
    set_presence: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Auth { access_token: String },
    Ack { next_batch: String },
}

async fn upgrade(
    State(s): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<WsQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response> {
    // Validate what can be validated before upgrading, so errors are plain HTTP errors.
    let token = bearer_token(&headers)?.map(str::to_owned);
    let since = q.since.as_deref().map(parse_since).transpose()?;
    let filter_raw = q.filter.clone();
    if let Some(token) = &token {
        // Checked here for its errors; the connection parses the filter again once it runs.
        let identity = s.sessions.authenticate(token)?;
        sync_filter(&s, &identity, filter_raw.as_deref())?;
    }
    let set_presence = q.set_presence.clone();
    let ws = ws
        .read_buffer_size(READ_BUFFER)
        // Each response is written out at once (it is flushed anyway, and acked before the
        // next), so no write buffer is kept per connection.
        .write_buffer_size(0)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    Ok(ws.on_upgrade(move |socket| async move {
        let connection = Connection {
            s,
            token,
            since,
            filter_raw,
            set_presence,
        };
        connection.run(socket).await;
    }))
}

struct Connection {
    s: AppState,
    token: Option<String>,
    since: Option<u64>,
    filter_raw: Option<String>,
    set_presence: Option<String>,
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

impl Connection {
    async fn run(mut self, mut socket: WebSocket) {
        let token = match self.token.take() {
            Some(t) => t,
            None => match tokio::time::timeout(AUTH_TIMEOUT, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => match serde_json::from_str(&text) {
                    Ok(ClientMessage::Auth { access_token }) => access_token,
                    _ => {
                        return close(&mut socket, CLOSE_UNAUTHORIZED, "expected an auth message")
                            .await;
                    }
                },
                _ => {
                    return close(&mut socket, CLOSE_UNAUTHORIZED, "expected an auth message")
                        .await;
                }
            },
        };
        let identity = match self.s.sessions.authenticate(&token) {
            Ok(i) => i,
            Err(_) => return close(&mut socket, CLOSE_UNAUTHORIZED, "unknown access token").await,
        };
        if let Err(code_reason) = self.serve(&mut socket, &token, &identity).await {
            close(&mut socket, code_reason.0, &code_reason.1).await;
        }
    }

    /// Send responses and take acks until the client goes away, the token dies, or the client
    /// breaks the protocol (the close code and reason come back as the error).
    async fn serve(
        &mut self,
        socket: &mut WebSocket,
        token: &str,
        identity: &Identity,
    ) -> std::result::Result<(), (u16, String)> {
        let internal = |e: Error| (1011u16, e.to_string());
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let mut last_seen = tokio::time::Instant::now();
        // A removed device or token of this user may be ours: the token is checked on each.
        let mut sessions = self.s.notifier.watch_sessions(identity.user_id.as_str());
        let logged_out = || self.s.sessions.authenticate(token).is_err();
        // Checked again after subscribing: a logout since the first check is not missed.
        if logged_out() {
            return Err((CLOSE_UNAUTHORIZED, "logged out".into()));
        }
        // Filters never change once stored: parsed once per connection.
        let filter =
            sync_filter(&self.s, identity, self.filter_raw.as_deref()).map_err(internal)?;
        let mut params = SyncParams {
            since: self.since,
            full_state: false,
            filter,
            timeout: PING_INTERVAL,
            set_presence: self.set_presence.clone().or_else(|| Some("online".into())),
            use_state_after: false,
        };
        loop {
            params.since = self.since;
            // Wait for news, answering pings and noticing a close or a logout meanwhile. The
            // wait itself is kept across those (not restarted), so a wake-up costs one sync
            // computation, not one per select branch that fired.
            let wait = self.s.sync.wait(identity, &params);
            tokio::pin!(wait);
            let (body, news) = loop {
                tokio::select! {
                    result = &mut wait => break result.map_err(internal)?,
                    message = socket.next() => {
                        match message {
                            Some(Err(e)) if is_too_big(&e) => return Err((CLOSE_TOO_BIG, "message too big".into())),
                            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                            Some(Ok(Message::Text(_))) => return Err((CLOSE_BAD_MESSAGE, "nothing to acknowledge".into())),
                            Some(Ok(_)) => last_seen = tokio::time::Instant::now(),
                        }
                    }
                    _ = sessions.changed() => {
                        if logged_out() {
                            return Err((CLOSE_UNAUTHORIZED, "logged out".into()));
                        }
                    }
                    _ = ping.tick() => {
                        if last_seen.elapsed() > PING_INTERVAL * 2 {
                            return Err((1001, "no pong".into()));
                        }
                        if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            };
            if !news && self.since.is_some() {
                continue;
            }
            #[derive(serde::Serialize)]
            struct SyncMessage<'a> {
                #[serde(rename = "type")]
                kind: &'static str,
                body: &'a SyncResponse,
            }
            let message = serde_json::to_string(&SyncMessage {
                kind: "sync",
                body: &body,
            })
            .map_err(|e| internal(Error::internal(e)))?;
            let next_batch = body.next_batch;
            if socket.send(Message::Text(message.into())).await.is_err() {
                return Ok(());
            }
            self.await_ack(socket, &next_batch, &mut last_seen).await?;
            self.since = Some(parse_since(&next_batch).map_err(internal)?);
        }
    }

    /// Wait until the client acknowledges `next_batch` (pings and pongs keep flowing).
    async fn await_ack(
        &self,
        socket: &mut WebSocket,
        next_batch: &str,
        last_seen: &mut tokio::time::Instant,
    ) -> std::result::Result<(), (u16, String)> {
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        loop {
            let message = match tokio::time::timeout_at(deadline, socket.next()).await {
                Err(_) => return Err((CLOSE_ACK_TIMEOUT, "no ack in time".into())),
                Ok(Some(Err(e))) if is_too_big(&e) => {
                    return Err((CLOSE_TOO_BIG, "message too big".into()));
                }
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => {
                    return Err((1000, "closed".into()));
                }
                Ok(Some(Ok(message))) => message,
            };
            *last_seen = tokio::time::Instant::now();
            let Message::Text(text) = message else {
                continue;
            };
            match serde_json::from_str::<ClientMessage>(&text) {
                Ok(ClientMessage::Ack { next_batch: acked }) if acked == next_batch => {
                    return Ok(());
                }
                _ => {
                    return Err((
                        CLOSE_BAD_MESSAGE,
                        format!("expected an ack of {next_batch}"),
                    ));
                }
            }
        }
    }
}

/// For `/versions`: the feature flag clients look for.
pub fn unstable_feature() -> (&'static str, Value) {
    ("org.roost.ws_sync", Value::Bool(true))
}
