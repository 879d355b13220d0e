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

use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;

use super::sync::{parse_since, sync_filter};
use crate::error::{Error, Result};
use crate::http::auth::bearer_token;
use crate::http::json::QueryParams;
use crate::http::peer::Peer;
use crate::http::websocket;
use crate::services::AppState;

mod connection;
mod outbound;

pub const PATH: &str = "/_matrix/client/unstable/org.roost.ws/sync";
/// How many responses may be unacknowledged at once; the server waits for an ack beyond.
/// Unacknowledged responses cost only their positions (nothing is kept but what the socket
/// hasn't taken yet), so the window is wide: a client acking every few responses doesn't
/// close it when its acks lag behind a burst, which would turn each of its next responses
/// from the notifier's direct write into a wake-up of its task (docs/performance.md,
/// session 8).
pub const WINDOW: usize = 32;
/// How long a client may take to acknowledge its oldest unacknowledged response (checked at
/// each ping, so a connection is closed between this and one ping interval later).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the server pings; a connection silent for two intervals is closed.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long the first message may take when the token comes in it.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection waits for its last frames (the close frame among them) to
/// be written.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// What a client sends is an auth message or an ack: small. The limit keeps a client from
/// making the server buffer a large message.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// How much the socket reads at a time: clients send acks of a few dozen bytes (an auth
/// message is a little more); a larger message is read in several reads.
const READ_BUFFER: usize = 512;

/// Close codes (4000-4999 are for applications).
const CLOSE_UNAUTHORIZED: u16 = 4001;
const CLOSE_BAD_MESSAGE: u16 = 4002;
const CLOSE_ACK_TIMEOUT: u16 = 4008;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route(PATH, get(upgrade))
}

#[derive(Deserialize, Default)]
struct WsQuery {
    since: Option<String>,
    filter: Option<String>,
    set_presence: Option<String>,
}

async fn upgrade(
    State(s): State<AppState>,
    QueryParams(q): QueryParams<WsQuery>,
    mut request: Request,
) -> Result<Response> {
    let accept = match websocket::check_upgrade(request.method(), request.headers()) {
        Ok(accept) => accept,
        Err(refused) => return Ok(refused.into_response()),
    };
    // Validate what can be validated before upgrading, so errors are plain HTTP errors.
    let token = bearer_token(request.headers())?.map(str::to_owned);
    let since = q.since.as_deref().map(parse_since).transpose()?;
    let auth = match token {
        Some(token) => {
            let identity = s.sessions.authenticate(&token)?;
            let filter = sync_filter(&s, &identity, q.filter.as_deref())?;
            connection::Auth::Checked {
                token,
                identity,
                filter,
            }
        }
        None => connection::Auth::FirstMessage {
            filter: q.filter.clone(),
        },
    };
    let set_presence = q.set_presence.clone();
    if set_presence
        .as_deref()
        .is_some_and(|p| !matches!(p, "online" | "unavailable" | "offline"))
    {
        return Err(Error::invalid_param(
            "set_presence must be online, unavailable or offline",
        ));
    }
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return Err(Error::unrecognized("this connection can't be upgraded"));
    };
    // The connection's socket, for the wake-ups' direct writes (outbound.rs); found here,
    // while the HTTP/1 connection that owns it is certainly open.
    let socket = (request.version() == axum::http::Version::HTTP_11)
        .then(|| request.extensions().get::<ConnectInfo<Peer>>())
        .flatten()
        .and_then(|peer| peer.0.socket());
    let connection = connection::Connection {
        s,
        since,
        set_presence,
        socket,
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            connection.run(auth, Box::new(TokioIo::new(upgraded))).await;
        }
    });
    Ok(websocket::switching_protocols(accept))
}

/// For `/versions`: the feature flag clients look for.
pub fn unstable_feature() -> (&'static str, Value) {
    ("org.roost.ws_sync", Value::Bool(true))
}
