//! Roost's WebSocket sync transport (not in the spec; protocol in docs/websocket.md).
//!
//! One socket per device carries the same incremental stream as `/sync`. The server sends a
//! `sync` message whenever there is news, each picking up where the last one sent ended, while
//! fewer than [`WINDOW`] of them are unacknowledged; the client's `ack` of a `next_batch`
//! acknowledges that response and every earlier one. The window bounds what a slow client
//! can cost (what it hasn't taken stays in the database; nothing is buffered beyond the
//! response being written), lets a client on a slow link receive the next response before its
//! ack arrives, and lets a busy client ack several responses at once. Delete-once-delivered
//! data (to-device messages) goes only once acked. A client that doesn't ack its oldest
//! response within [`ACK_TIMEOUT`] is disconnected. Reconnecting with the last token the
//! client processed resumes exactly where it stopped.

use std::collections::VecDeque;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
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
use crate::sync::v2::SyncParams;
use crate::users::Identity;

pub const PATH: &str = "/_matrix/client/unstable/org.roost.ws/sync";
/// How many responses may be unacknowledged at once; the server waits for an ack beyond.
pub const WINDOW: usize = 8;
/// How long a client may take to acknowledge its oldest unacknowledged response (checked at
/// each ping, so a connection is closed between this and one ping interval later).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the server pings; a connection silent for two intervals is closed.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long the first message may take when the token comes in it.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// What a client sends is an auth message or an ack: small. The limit keeps a client from
/// making the server buffer a large message (the library default is 64 MiB).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// How much the socket reads at a time. The library zero-fills this much on every read
/// attempt, and a connection attempts one each time it goes back to waiting, so once per
/// response sent: with thousands of connections the memset of the default (128 KiB) was the
/// largest cost of the transport, and at 4 KiB still 3 % of the server's CPU under fan-out.
/// Clients send acks of a few dozen bytes (an auth message is a little more); a larger
/// message is read in several reads.
const READ_BUFFER: usize = 512;

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
}

/// An ack, parsed in place (one per response under fan-out; [`ClientMessage`] would buffer
/// and copy it to find its tag first).
#[derive(Deserialize)]
struct Ack<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    next_batch: std::borrow::Cow<'a, str>,
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
    if set_presence
        .as_deref()
        .is_some_and(|p| !matches!(p, "online" | "unavailable" | "offline"))
    {
        return Err(Error::invalid_param(
            "set_presence must be online, unavailable or offline",
        ));
    }
    let ws = ws
        .read_buffer_size(READ_BUFFER)
        // Each response is written out at once (what the kernel's socket buffer can't take
        // waits in the send, not in a buffer of ours), so no write buffer is kept per
        // connection.
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
        // The wait is one future for the connection's life (renewed only when it fires), not
        // a new one per loop turn: a turn per response and per ack made registering and
        // dropping it a visible part of the fan-out's cost.
        let mut sessions_ended = Box::pin(next_change(
            self.s.notifier.watch_sessions(identity.user_id.as_str()),
        ));
        let logged_out = || self.s.sessions.authenticate(token).is_err();
        // Checked again after subscribing: a logout since the first check is not missed.
        if logged_out() {
            return Err((CLOSE_UNAUTHORIZED, "logged out".into()));
        }
        // Filters never change once stored: parsed once per connection.
        let filter =
            sync_filter(&self.s, identity, self.filter_raw.as_deref()).map_err(internal)?;
        // The client holds everything up to the token it connected with; later, what it acks.
        // Delete-once-delivered data goes then, never when a response is merely sent.
        let acknowledge = |pos: u64| {
            self.s
                .to_device
                .acknowledge(identity, pos)
                .map_err(internal)
        };
        if let Some(since) = self.since {
            acknowledge(since)?;
        }
        // An open socket keeps its user's presence as asked (default online): set now,
        // refreshed at each ping.
        let presence = self.set_presence.clone().unwrap_or_else(|| "online".into());
        let refresh_presence = || {
            self.s
                .presence
                .set(&identity.user_id, &presence, None, true)
                .map_err(internal)
        };
        refresh_presence()?;
        let mut params = SyncParams {
            since: self.since,
            since_confirms: false,
            full_state: false,
            filter,
            // No timeout: the wait ends with news; pings keep the connection checked.
            timeout: None,
            // Presence is set here once and refreshed at each ping, not on every wait.
            set_presence: None,
            use_state_after: false,
        };
        let mut window = Window::new(self.since);
        // One subscription for the connection's life: anything committed for the user while a
        // response is being made or sent is seen by the next wait.
        let mut wake = self.s.sync.subscribe(identity);
        loop {
            // Each response picks up where the last one *sent* ended.
            params.since = window.sent;
            let open = window.is_open();
            // Wait for news while the window is open, answering pings, taking acks and
            // noticing a close or a logout meanwhile. The wait itself is kept across those (not
            // restarted), so a wake-up costs one sync computation, not one per branch that fired.
            let wait = async {
                if open {
                    self.s.sync.wait_on(identity, &params, &mut wake).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::pin!(wait);
            let (body, news) = loop {
                tokio::select! {
                    biased;
                    result = &mut wait => {
                        let (body, news) = result.map_err(internal)?;
                        break (Some(body), news);
                    }
                    message = socket.next() => {
                        let text = match message {
                            Some(Err(e)) if is_too_big(&e) => return Err((CLOSE_TOO_BIG, "message too big".into())),
                            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                            Some(Ok(Message::Text(text))) => text,
                            Some(Ok(_)) => {
                                last_seen = tokio::time::Instant::now();
                                continue;
                            }
                        };
                        last_seen = tokio::time::Instant::now();
                        acknowledge(window.take_ack(&text)?)?;
                        if !open {
                            // Room again: wait for news.
                            break (None, false);
                        }
                    }
                    sessions = &mut sessions_ended => {
                        if logged_out() {
                            return Err((CLOSE_UNAUTHORIZED, "logged out".into()));
                        }
                        sessions_ended = Box::pin(next_change(sessions));
                    }
                    _ = ping.tick() => {
                        if last_seen.elapsed() > PING_INTERVAL * 2 {
                            return Err((1001, "no pong".into()));
                        }
                        // Checked here rather than with a timer per response: the deadline is
                        // long, and a timer set and cleared on every send costs the fan-out.
                        if window.oldest_sent_at().is_some_and(|at| at.elapsed() > ACK_TIMEOUT) {
                            return Err((CLOSE_ACK_TIMEOUT, "no ack in time".into()));
                        }
                        refresh_presence()?;
                        if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            };
            let Some(body) = body else { continue };
            if !news && window.sent.is_some() {
                continue;
            }
            let message = body
                .to_ws_message()
                .map_err(|e| internal(Error::internal(e)))?;
            // serde_json writes UTF-8: the check is a formality of the type.
            let message = Utf8Bytes::try_from(message).map_err(|e| internal(Error::internal(e)))?;
            let pos = parse_since(body.next_batch()).map_err(internal)?;
            if socket.send(Message::Text(message)).await.is_err() {
                return Ok(());
            }
            window.sent(pos, tokio::time::Instant::now());
        }
    }
}

/// The receiver back once its value changes (or its sender is gone: then never again).
async fn next_change(
    mut sessions: tokio::sync::watch::Receiver<u64>,
) -> tokio::sync::watch::Receiver<u64> {
    if sessions.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    sessions
}

/// The responses sent and not yet acknowledged.
struct Window {
    /// Position of each unacknowledged response, oldest first, with when it was sent.
    unacked: VecDeque<(u64, tokio::time::Instant)>,
    /// The position of the last response sent (the next one starts after it); at first the
    /// `since` the client connected with.
    sent: Option<u64>,
}

impl Window {
    fn new(since: Option<u64>) -> Self {
        Self {
            unacked: VecDeque::with_capacity(WINDOW),
            sent: since,
        }
    }

    fn is_open(&self) -> bool {
        self.unacked.len() < WINDOW
    }

    fn oldest_sent_at(&self) -> Option<tokio::time::Instant> {
        self.unacked.front().map(|(_, at)| *at)
    }

    fn sent(&mut self, pos: u64, at: tokio::time::Instant) {
        self.unacked.push_back((pos, at));
        self.sent = Some(pos);
    }

    /// A client message while responses may be in flight: it must acknowledge one of them
    /// (and with it every earlier one). Returns the position acknowledged.
    fn take_ack(&mut self, text: &str) -> std::result::Result<u64, (u16, String)> {
        let bad = || {
            (
                CLOSE_BAD_MESSAGE,
                "expected an ack of a response sent".to_owned(),
            )
        };
        let Ok(Ack { kind, next_batch }) = serde_json::from_str(text) else {
            return Err(bad());
        };
        if kind != "ack" {
            return Err(bad());
        }
        let pos = parse_since(&next_batch).map_err(|_| bad())?;
        let acked = self
            .unacked
            .iter()
            .position(|(p, _)| *p == pos)
            .ok_or_else(bad)?;
        self.unacked.drain(..=acked);
        Ok(pos)
    }
}

/// For `/versions`: the feature flag clients look for.
pub fn unstable_feature() -> (&'static str, Value) {
    ("org.roost.ws_sync", Value::Bool(true))
}
