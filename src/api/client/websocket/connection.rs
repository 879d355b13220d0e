//! A connection's task: authentication, then responses, acks, pings and the close.
//!
//! The task owns the socket's reading half; the writing half is in the connection's
//! [`Outbound`], which the notifier's wake-ups may also write the shared response through
//! while the task is idle (`outbound.rs`).

use std::sync::Arc;

use serde::Deserialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, ReadHalf, WriteHalf};

use super::outbound::{Outbound, Socket};
use super::{
    ACK_TIMEOUT, AUTH_TIMEOUT, CLOSE_ACK_TIMEOUT, CLOSE_BAD_MESSAGE, CLOSE_TIMEOUT,
    CLOSE_UNAUTHORIZED, MAX_CLIENT_MESSAGE, PING_INTERVAL, READ_BUFFER,
};
use crate::api::client::sync::{parse_since, sync_filter};
use crate::error::Error;
use crate::http::peer::SocketFd;
use crate::http::websocket::{self, FrameReader, Incoming};
use crate::services::AppState;
use crate::sync::filter::SyncFilter;
use crate::sync::notifier::Listener;
use crate::sync::v2::SyncParams;
use crate::users::Identity;

pub struct Connection {
    pub s: AppState,
    pub since: Option<u64>,
    pub set_presence: Option<String>,
    /// The socket, when the listener gave it (`http/peer.rs`): the notifier's wake-ups
    /// write to it directly (`outbound.rs`).
    pub socket: Option<SocketFd>,
}

/// Who connects.
pub enum Auth {
    /// The upgrade request carried the token: its device and the connection's filter, found
    /// before upgrading (their errors are plain HTTP errors).
    Checked {
        token: String,
        identity: Identity,
        filter: Arc<SyncFilter>,
    },
    /// The token comes in the connection's first message; the filter as the request gave it.
    FirstMessage { filter: Option<String> },
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

/// Why the connection ends: the close code and reason sent, if any.
type Closing = Option<(u16, String)>;

/// The socket's reading half and the messages read from it.
struct Reader {
    read: ReadHalf<Socket>,
    frames: FrameReader,
}

impl Reader {
    /// The next message; `None` once the client has gone (the socket closed or failed).
    async fn next(&mut self) -> Result<Option<Incoming>, (u16, String)> {
        loop {
            if let Some(message) = self.parsed()? {
                return Ok(Some(message));
            }
            if !self.fill().await {
                return Ok(None);
            }
        }
    }

    /// A message among the bytes read so far.
    fn parsed(&mut self) -> Result<Option<Incoming>, (u16, String)> {
        self.frames
            .next_message()
            .map_err(|v| (v.code, v.reason.to_owned()))
    }

    /// Read more; `false` once the socket is closed or failed. Cancel-safe.
    async fn fill(&mut self) -> bool {
        let buf = &mut self.frames.buf;
        if buf.capacity() - buf.len() < READ_BUFFER {
            buf.reserve(READ_BUFFER);
        }
        matches!(self.read.read_buf(buf).await, Ok(n) if n > 0)
    }
}

/// Write a close frame on a socket nothing else writes to yet.
async fn close_before_serving(write: &mut WriteHalf<Socket>, code: u16, reason: &str) {
    let frame = websocket::close_frame(code, reason);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, write.write_all(&frame)).await;
}

/// What every response of the connection is asked with.
fn params(filter: &Arc<SyncFilter>, since: Option<u64>) -> SyncParams {
    SyncParams {
        since,
        since_confirms: false,
        full_state: false,
        filter: Arc::clone(filter),
        // No timeout: the wait ends with news; pings keep the connection checked.
        timeout: None,
        // Presence is set once and refreshed at each ping, not on every response.
        set_presence: None,
        use_state_after: false,
    }
}

impl Connection {
    pub async fn run(mut self, auth: Auth, socket: Socket) {
        let (read, mut write) = tokio::io::split(socket);
        let mut reader = Reader {
            read,
            frames: FrameReader::new(MAX_CLIENT_MESSAGE),
        };
        let (token, identity, filter) = match self.authenticate(auth, &mut reader).await {
            Ok(who) => who,
            Err((code, why)) => return close_before_serving(&mut write, code, &why).await,
        };
        let outbound = Arc::new(Outbound::new(
            write,
            self.socket.take(),
            self.since,
            Arc::clone(&self.s.sync),
            identity.clone(),
            params(&filter, None),
        ));
        let closing = self
            .serve(&mut reader, &outbound, &filter, &token, &identity)
            .await;
        // The close frame goes after whatever is queued (a response may be half written).
        if let Some((code, reason)) = closing {
            outbound
                .state()
                .queue(websocket::close_frame(code, &reason));
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, outbound.write_queue()).await;
        outbound.state().close();
    }

    /// The connection's token, its device and its filter: as checked with the upgrade
    /// request, or from the first message (within [`AUTH_TIMEOUT`]). The close code and
    /// reason if there is none.
    async fn authenticate(
        &self,
        auth: Auth,
        reader: &mut Reader,
    ) -> Result<(String, Identity, Arc<SyncFilter>), (u16, String)> {
        let filter_raw = match auth {
            Auth::Checked {
                token,
                identity,
                filter,
            } => return Ok((token, identity, filter)),
            Auth::FirstMessage { filter } => filter,
        };
        let expected = || (CLOSE_UNAUTHORIZED, "expected an auth message".to_owned());
        let token = match tokio::time::timeout(AUTH_TIMEOUT, reader.next()).await {
            Ok(Ok(Some(Incoming::Text(text)))) => match serde_json::from_str(&text) {
                Ok(ClientMessage::Auth { access_token }) => access_token,
                Err(_) => return Err(expected()),
            },
            _ => return Err(expected()),
        };
        let identity = self
            .s
            .sessions
            .authenticate(&token)
            .map_err(|_| (CLOSE_UNAUTHORIZED, "unknown access token".to_owned()))?;
        // Filters never change once stored: parsed once per connection.
        let filter = sync_filter(&self.s, &identity, filter_raw.as_deref())
            .map_err(|e| (1011, e.to_string()))?;
        Ok((token, identity, filter))
    }

    /// Send responses and take acks until the client goes away, the token dies, or the client
    /// breaks the protocol (then the close code and reason come back).
    async fn serve(
        &mut self,
        reader: &mut Reader,
        out: &Arc<Outbound>,
        filter: &Arc<SyncFilter>,
        token: &str,
        identity: &Identity,
    ) -> Closing {
        let internal = |e: Error| Some((1011u16, e.to_string()));
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let mut last_seen = tokio::time::Instant::now();
        // A removed device or token of this user may be ours: the token is checked on each.
        // The wait is one future for the connection's life (renewed only when it fires), not
        // a new one per loop turn.
        let mut sessions_ended = Box::pin(next_change(
            self.s.notifier.watch_sessions(identity.user_id.as_str()),
        ));
        let logged_out = || self.s.sessions.authenticate(token).is_err();
        // Checked again after subscribing: a logout since the first check is not missed.
        if logged_out() {
            return Some((CLOSE_UNAUTHORIZED, "logged out".into()));
        }
        // The client holds everything up to the token it connected with; later, what it acks.
        // Delete-once-delivered data goes then, never when a response is merely sent.
        let acknowledge = |pos: u64| self.s.to_device.acknowledge(identity, pos);
        if let Some(since) = self.since
            && let Err(e) = acknowledge(since)
        {
            return internal(e);
        }
        // An open socket keeps its user's presence as asked (default online): set now,
        // refreshed at each ping.
        let presence = self.set_presence.clone().unwrap_or_else(|| "online".into());
        let refresh_presence = || {
            self.s
                .presence
                .set(&identity.user_id, &presence, None, true)
        };
        if let Err(e) = refresh_presence() {
            return internal(e);
        }
        // Told of the user's news from now on: anything committed for them while a response
        // is being made or written is seen by the next look.
        let listener: Arc<dyn Listener> = Arc::clone(out) as Arc<dyn Listener>;
        let _listening = self.s.notifier.listen(identity.user_id.as_str(), listener);
        // Whether the task must look for news itself (at first, and when told to).
        let mut look = true;
        loop {
            let queued = {
                let mut state = out.state();
                if state.is_closed() {
                    return None;
                }
                let queued = state.has_queued();
                if !queued && look && state.window_open() {
                    // Busy before reading `sent`: no wake-up writes while this is worked out.
                    state.busy();
                    let since = state.sent;
                    drop(state);
                    look = false;
                    let answer = match self.s.sync.answer(identity, &params(filter, since), false) {
                        Ok(answer) => answer,
                        Err(e) => return internal(e),
                    };
                    // A reconnect with nothing new gets nothing; a first connect, its initial
                    // sync.
                    if let Some(reply) = answer {
                        let frame = match reply.to_ws_frame() {
                            Ok(frame) => frame,
                            Err(e) => return internal(Error::internal(e)),
                        };
                        let pos = match parse_since(reply.next_batch()) {
                            Ok(pos) => pos,
                            Err(e) => return internal(e),
                        };
                        out.state().queue_response(frame, pos);
                    }
                    continue;
                }
                if !queued {
                    state.wait_for_news();
                }
                queued
            };
            tokio::select! {
                biased;
                written = out.write_queue(), if queued => {
                    if written.is_err() {
                        return None;
                    }
                }
                _ = out.task.notified() => {
                    out.state().busy();
                    look = true;
                }
                read = reader.fill() => {
                    if !read {
                        return None;
                    }
                    last_seen = tokio::time::Instant::now();
                    loop {
                        let message = match reader.parsed() {
                            Ok(Some(message)) => message,
                            Ok(None) => break,
                            Err(violation) => return Some(violation),
                        };
                        match message {
                            Incoming::Text(text) => {
                                let pos = match take_ack(&text) {
                                    Some(pos) if out.state().acknowledge(pos) => pos,
                                    _ => {
                                        let why = "expected an ack of a response sent";
                                        return Some((CLOSE_BAD_MESSAGE, why.into()));
                                    }
                                };
                                if let Err(e) = acknowledge(pos) {
                                    return internal(e);
                                }
                                // Room in the window again: look for what waited for it.
                                look |= !out.state().is_idle();
                            }
                            Incoming::Ping(payload) => {
                                out.state().queue(websocket::pong_frame(&payload));
                            }
                            Incoming::Close(_) => {
                                return Some((1000, String::new()));
                            }
                            Incoming::Pong | Incoming::Binary => {}
                        }
                    }
                }
                sessions = &mut sessions_ended => {
                    if logged_out() {
                        return Some((CLOSE_UNAUTHORIZED, "logged out".into()));
                    }
                    sessions_ended = Box::pin(next_change(sessions));
                }
                _ = ping.tick() => {
                    if last_seen.elapsed() > PING_INTERVAL * 2 {
                        return Some((1001, "no pong".into()));
                    }
                    // Checked here rather than with a timer per response: the deadline is
                    // long, and a timer set and cleared on every send costs the fan-out.
                    if out.state().oldest_sent_at().is_some_and(|at| at.elapsed() > ACK_TIMEOUT) {
                        return Some((CLOSE_ACK_TIMEOUT, "no ack in time".into()));
                    }
                    if let Err(e) = refresh_presence() {
                        return internal(e);
                    }
                    out.state().queue(websocket::ping_frame());
                }
            }
        }
    }
}

/// The position an ack message acknowledges, if it is one.
fn take_ack(text: &str) -> Option<u64> {
    let Ack { kind, next_batch } = serde_json::from_str(text).ok()?;
    if kind != "ack" {
        return None;
    }
    parse_since(&next_batch).ok()
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
