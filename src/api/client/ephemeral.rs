//! Ephemeral and per-user streams (client-server API §Typing, §Receipts, §"Fully read
//! markers", §Presence, §"Send-to-Device messaging").

use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ruma::{OwnedEventId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::PREFIXES;
use super::rooms::joined_room;
use crate::error::{Error, Result};
use crate::http::auth::Authed;
use crate::http::json::{JsonBody, JsonOrEmpty, PathParams};
use crate::services::AppState;
use crate::sync::receipts::{READ, READ_PRIVATE};

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for p in PREFIXES {
        router = router
            .route(
                &format!("{p}/rooms/{{room_id}}/typing/{{user_id}}"),
                put(typing),
            )
            .route(
                &format!("{p}/rooms/{{room_id}}/receipt/{{receipt_type}}/{{event_id}}"),
                post(receipt),
            )
            .route(
                &format!("{p}/rooms/{{room_id}}/read_markers"),
                post(read_markers),
            )
            .route(
                &format!("{p}/presence/{{user_id}}/status"),
                get(get_presence).put(put_presence),
            )
            .route(
                &format!("{p}/sendToDevice/{{event_type}}/{{txn_id}}"),
                put(send_to_device),
            );
    }
    router
}

#[derive(Deserialize)]
struct TypingBody {
    typing: bool,
    timeout: Option<u64>,
}

async fn typing(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, user_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<TypingBody>,
) -> Result<Json<Value>> {
    let user_id = me.own_user(&user_id)?;
    let (room_id, _) = joined_room(&s, &room_id, &me)?;
    let timeout = Duration::from_millis(body.timeout.unwrap_or(30_000));
    s.typing.set(&room_id, &user_id, body.typing, timeout)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
struct ReceiptBody {
    /// Checked by hand: a wrong type is `M_INVALID_PARAM`, as for a wrong value.
    thread_id: Option<Value>,
}

/// `m.fully_read` is the read marker: room account data, not a receipt.
fn set_fully_read(
    s: &AppState,
    me: &Authed,
    room_id: &ruma::RoomId,
    event_id: &OwnedEventId,
) -> Result<()> {
    let pdu = s
        .rooms
        .pdu(event_id)?
        .ok_or_else(|| Error::not_found("Event not found"))?;
    if pdu.room_id != room_id {
        return Err(Error::not_found("Event not found"));
    }
    s.account_data.set(
        &me.0.user_id,
        Some(room_id),
        "m.fully_read",
        json!({ "event_id": event_id }),
    )
}

fn parse_event_id(raw: &str) -> Result<OwnedEventId> {
    OwnedEventId::try_from(raw).map_err(|_| Error::invalid_param("Invalid event ID"))
}

async fn receipt(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, receipt_type, event_id)): PathParams<(String, String, String)>,
    JsonOrEmpty(body): JsonOrEmpty<ReceiptBody>,
) -> Result<Json<Value>> {
    let (room_id, _) = joined_room(&s, &room_id, &me)?;
    let event_id = parse_event_id(&event_id)?;
    let thread = match &body.thread_id {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(Error::invalid_param("thread_id must be a string")),
    };
    match receipt_type.as_str() {
        "m.fully_read" if thread.is_some() => {
            return Err(Error::invalid_param("m.fully_read can't be threaded"));
        }
        "m.fully_read" => set_fully_read(&s, &me, &room_id, &event_id)?,
        READ | READ_PRIVATE => {
            if let Some(thread) = &thread
                && thread != "main"
            {
                let root = OwnedEventId::try_from(thread.as_str())
                    .map_err(|_| Error::invalid_param("thread_id must be 'main' or an event ID"))?;
                if !in_thread(&s, &event_id, &root)? {
                    return Err(Error::invalid_param("The event is not in that thread"));
                }
            }
            s.receipts.set(
                &room_id,
                &me.0.user_id,
                &receipt_type,
                &event_id,
                thread.as_deref(),
            )?;
        }
        _ => return Err(Error::invalid_param("Unknown receipt type")),
    }
    Ok(Json(json!({})))
}

/// Whether `event` belongs to the thread rooted at `root`: the root itself, or an event
/// related to it by `m.thread`.
fn in_thread(s: &AppState, event: &OwnedEventId, root: &OwnedEventId) -> Result<bool> {
    if event == root {
        return Ok(true);
    }
    let pdu = s
        .rooms
        .pdu(event)?
        .ok_or_else(|| Error::not_found("Event not found"))?;
    Ok(crate::rooms::relations::relation_of(&pdu)
        .is_some_and(|(rel, target)| rel == "m.thread" && target == *root))
}

#[derive(Deserialize, Default)]
struct ReadMarkersBody {
    #[serde(rename = "m.fully_read")]
    fully_read: Option<String>,
    #[serde(rename = "m.read")]
    read: Option<String>,
    #[serde(rename = "m.read.private")]
    read_private: Option<String>,
}

async fn read_markers(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonOrEmpty(body): JsonOrEmpty<ReadMarkersBody>,
) -> Result<Json<Value>> {
    let (room_id, _) = joined_room(&s, &room_id, &me)?;
    if let Some(event) = &body.fully_read {
        set_fully_read(&s, &me, &room_id, &parse_event_id(event)?)?;
    }
    for (kind, event) in [(READ, &body.read), (READ_PRIVATE, &body.read_private)] {
        if let Some(event) = event {
            s.receipts
                .set(&room_id, &me.0.user_id, kind, &parse_event_id(event)?, None)?;
        }
    }
    Ok(Json(json!({})))
}

async fn get_presence(
    State(s): State<AppState>,
    me: Authed,
    PathParams(user_id): PathParams<String>,
) -> Result<Json<Value>> {
    let user_id = UserId::parse(&user_id).map_err(|_| Error::invalid_param("Invalid user ID"))?;
    if !s.presence.may_see(&me.0.user_id, &user_id)? {
        return Err(Error::forbidden("You may not see this user's presence"));
    }
    match s.presence.content(&user_id)? {
        Some(content) => Ok(Json(content)),
        None if s.accounts.get(&user_id)?.is_some() => Ok(Json(json!({ "presence": "offline" }))),
        None => Err(Error::not_found("Unknown user")),
    }
}

#[derive(Deserialize)]
struct PresenceBody {
    presence: String,
    #[serde(default, with = "double_option")]
    status_msg: Option<Option<String>>,
}

/// Tells an absent `status_msg` (keep it) from an explicit `null` (clear it).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

async fn put_presence(
    State(s): State<AppState>,
    me: Authed,
    PathParams(user_id): PathParams<String>,
    JsonBody(body): JsonBody<PresenceBody>,
) -> Result<Json<Value>> {
    let user_id = me.own_user(&user_id)?;
    s.presence
        .set(&user_id, &body.presence, body.status_msg, false)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
struct SendToDeviceBody {
    messages: Map<String, Value>,
}

async fn send_to_device(
    State(s): State<AppState>,
    me: Authed,
    PathParams((event_type, txn_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<SendToDeviceBody>,
) -> Result<Json<Value>> {
    s.to_device
        .send(&me.0, &event_type, &txn_id, &body.messages)?;
    Ok(Json(json!({})))
}
