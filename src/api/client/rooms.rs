//! Rooms (client-server API §Rooms, §Room events): createRoom, state, sending, reading single
//! events, joined rooms and member lists. Pagination is in `messages.rs`, membership changes in
//! `membership.rs`.

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ruma::{OwnedRoomId, OwnedUserId, RoomId, RoomVersionId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::PREFIXES;
use crate::error::{Error, ErrorKind, Result};
use crate::events::PduTemplate;
use crate::http::auth::Authed;
use crate::http::json::{JsonBody, PathParams, QueryParams};
use crate::rooms::create::{CreateRoom, Preset};
use crate::rooms::pipeline::TxnKey;
use crate::rooms::tables::RoomRecord;
use crate::rooms::visibility::VisibilityCheck;
use crate::services::AppState;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for p in PREFIXES {
        router = router
            .route(&format!("{p}/createRoom"), post(create_room))
            .route(&format!("{p}/joined_rooms"), get(joined_rooms))
            .route(&format!("{p}/rooms/{{room_id}}/state"), get(all_state))
            .route(
                &format!("{p}/rooms/{{room_id}}/state/{{kind}}"),
                get(state_empty_key).put(put_state_empty_key),
            )
            // The empty state key may also be written with a trailing slash.
            .route(
                &format!("{p}/rooms/{{room_id}}/state/{{kind}}/"),
                get(state_empty_key).put(put_state_empty_key),
            )
            .route(
                &format!("{p}/rooms/{{room_id}}/state/{{kind}}/{{state_key}}"),
                get(state_one).put(put_state),
            )
            .route(
                &format!("{p}/rooms/{{room_id}}/send/{{kind}}/{{txn_id}}"),
                put(send),
            )
            .route(
                &format!("{p}/rooms/{{room_id}}/event/{{event_id}}"),
                get(event),
            )
            .route(
                &format!("{p}/rooms/{{room_id}}/redact/{{event_id}}/{{txn_id}}"),
                put(redact),
            )
            .route(&format!("{p}/rooms/{{room_id}}/members"), get(members))
            .route(
                &format!("{p}/rooms/{{room_id}}/joined_members"),
                get(joined_members),
            );
    }
    router
}

/// Parse a room id from a path: 400 `M_INVALID_PARAM` if malformed.
pub fn parse_room_id(raw: &str) -> Result<OwnedRoomId> {
    RoomId::parse(raw).map_err(|_| Error::invalid_param("Invalid room ID"))
}

/// The room, if the sender may act in it as a member. Unknown rooms answer like rooms the
/// sender is not in (403), so room existence doesn't leak.
pub fn joined_room(
    s: &AppState,
    raw_room_id: &str,
    me: &Authed,
) -> Result<(OwnedRoomId, RoomRecord)> {
    let room_id = parse_room_id(raw_room_id)?;
    let not_in_room = || Error::forbidden("You are not in this room");
    let room = s.rooms.room(&room_id)?.ok_or_else(not_in_room)?;
    if s.rooms.membership(room.short, &me.0.user_id)?.as_deref() != Some("join") {
        return Err(not_in_room());
    }
    Ok((room_id, room))
}

#[derive(Deserialize)]
struct CreateRoomBody {
    #[serde(default)]
    visibility: Option<String>,
    room_alias_name: Option<String>,
    name: Option<String>,
    topic: Option<String>,
    #[serde(default)]
    invite: Vec<String>,
    room_version: Option<String>,
    #[serde(default)]
    creation_content: Option<Map<String, Value>>,
    #[serde(default)]
    initial_state: Vec<InitialState>,
    preset: Option<String>,
    #[serde(default)]
    is_direct: bool,
    #[serde(default)]
    power_level_content_override: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct InitialState {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    state_key: String,
    content: Map<String, Value>,
}

async fn create_room(
    State(s): State<AppState>,
    me: Authed,
    JsonBody(body): JsonBody<CreateRoomBody>,
) -> Result<Json<Value>> {
    let version = match &body.room_version {
        Some(v) => {
            let version = RoomVersionId::try_from(v.as_str()).map_err(|_| {
                Error::new(
                    ErrorKind::UnsupportedRoomVersion,
                    "Unsupported room version",
                )
            })?;
            if !crate::rooms::supported_versions().contains(&version) {
                return Err(Error::new(
                    ErrorKind::UnsupportedRoomVersion,
                    "Unsupported room version",
                ));
            }
            Some(version)
        }
        None => None,
    };
    let public = match body.visibility.as_deref() {
        None | Some("private") => false,
        Some("public") => true,
        Some(_) => return Err(Error::bad_json("visibility must be 'public' or 'private'")),
    };
    let preset = match body.preset.as_deref() {
        None => None,
        Some(p) => Some(Preset::parse(p).ok_or_else(|| Error::bad_json("Unknown preset"))?),
    };
    let invite = body
        .invite
        .iter()
        .map(|u| {
            OwnedUserId::try_from(u.as_str())
                .map_err(|_| Error::invalid_param(format!("Invalid user ID {u}")))
        })
        .collect::<Result<Vec<_>>>()?;
    for state in &body.initial_state {
        if state.kind == "m.room.create" || state.kind == "m.room.member" {
            return Err(Error::bad_json(format!(
                "{} can't be set in initial_state",
                state.kind
            )));
        }
    }
    let mut creator_member = Map::new();
    let profile = s.profiles.get_all(&me.0.user_id)?;
    for field in ["displayname", "avatar_url"] {
        if let Some(value) = profile.get(field).filter(|v| v.is_string()) {
            creator_member.insert(field.into(), value.clone());
        }
    }
    let request = CreateRoom {
        version,
        preset,
        public,
        name: body.name,
        topic: body.topic,
        alias_localpart: body.room_alias_name,
        invite,
        is_direct: body.is_direct,
        initial_state: body
            .initial_state
            .into_iter()
            .map(|e| (e.kind, e.state_key, Value::Object(e.content)))
            .collect(),
        creation_content: body.creation_content.unwrap_or_default(),
        power_level_override: body.power_level_content_override.unwrap_or_default(),
        creator_member,
    };
    let room_id = s.rooms.create_room(&me.0.user_id, request).await?;
    Ok(Json(json!({ "room_id": room_id })))
}

async fn joined_rooms(State(s): State<AppState>, me: Authed) -> Result<Json<Value>> {
    let rooms: Vec<String> = s
        .rooms
        .rooms_of(&me.0.user_id)?
        .iter()
        .filter(|(_, m)| m == "join")
        .map(|(r, _)| r.to_string())
        .collect();
    Ok(Json(json!({ "joined_rooms": rooms })))
}

/// Members may read the current state; users who left read the state as it was when they
/// left. Others: 403.
fn readable_state(s: &AppState, me: &Authed, raw_room_id: &str) -> Result<StateView> {
    let room_id = parse_room_id(raw_room_id)?;
    let forbidden = || Error::forbidden("You are not allowed to see this room's state");
    let room = s.rooms.room(&room_id)?.ok_or_else(forbidden)?;
    match s.rooms.membership(room.short, &me.0.user_id)?.as_deref() {
        Some("join") => Ok(StateView::Current(room.short)),
        Some("leave" | "ban") => {
            let member =
                s.rooms
                    .current_state_event(room.short, "m.room.member", me.0.user_id.as_str())?;
            let record = match member {
                Some(pdu) => s.rooms.pdu_with_record(&pdu.event_id)?.map(|(_, r)| r),
                None => None,
            };
            let record = record.ok_or_else(forbidden)?;
            Ok(StateView::At(record.state_before))
        }
        _ => Err(forbidden()),
    }
}

enum StateView {
    Current(u64),
    At(u64),
}

async fn all_state(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
) -> Result<Json<Value>> {
    let events = match readable_state(&s, &me, &room_id)? {
        StateView::Current(short) => s.rooms.current_state(short)?,
        StateView::At(snapshot) => s.rooms.state_at(snapshot)?,
    };
    let events = events
        .iter()
        .map(|e| s.rooms.client_event_for(e, Some(&me.0)))
        .collect::<Result<_>>()?;
    Ok(Json(Value::Array(events)))
}

async fn state_empty_key(
    state: State<AppState>,
    me: Authed,
    PathParams((room_id, kind)): PathParams<(String, String)>,
) -> Result<Json<Value>> {
    state_one(state, me, PathParams((room_id, kind, String::new()))).await
}

async fn state_one(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, kind, state_key)): PathParams<(String, String, String)>,
) -> Result<Json<Value>> {
    let event = match readable_state(&s, &me, &room_id)? {
        StateView::Current(short) => s.rooms.current_state_event(short, &kind, &state_key)?,
        StateView::At(snapshot) => s.rooms.state_event_at(snapshot, &kind, &state_key)?,
    };
    let event = event.ok_or_else(|| Error::not_found("Event not found"))?;
    // Served like any event, so a redacted state event shows its redacted content.
    let event = s.rooms.client_event(&event)?;
    Ok(Json(event["content"].clone()))
}

async fn put_state_empty_key(
    state: State<AppState>,
    me: Authed,
    PathParams((room_id, kind)): PathParams<(String, String)>,
    body: JsonBody<Map<String, Value>>,
) -> Result<Json<Value>> {
    put_state(state, me, PathParams((room_id, kind, String::new())), body).await
}

async fn put_state(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, kind, state_key)): PathParams<(String, String, String)>,
    JsonBody(content): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    if s.rooms.room(&room_id)?.is_none() {
        return Err(Error::forbidden("You are not in this room"));
    }
    crate::rooms::content::validate_state(&s.rooms, &room_id, &kind, &state_key, &content)?;
    let pdu = s
        .rooms
        .append(
            &room_id,
            &me.0.user_id,
            PduTemplate::state(&kind, &state_key, Value::Object(content)),
        )
        .await?;
    Ok(Json(json!({ "event_id": pdu.event_id })))
}

async fn send(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, kind, txn_id)): PathParams<(String, String, String)>,
    JsonBody(content): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    if s.rooms.room(&room_id)?.is_none() {
        return Err(Error::forbidden("You are not in this room"));
    }
    let txn = TxnKey {
        user: &me.0.user_id,
        device: &me.0.device_id,
        endpoint: "send",
        txn_id: &txn_id,
    };
    // A redaction sent as an event gets the same checks and shape as one sent with /redact.
    let template = if kind == "m.room.redaction" {
        let target = content
            .get("redacts")
            .and_then(Value::as_str)
            .and_then(|r| ruma::OwnedEventId::try_from(r).ok())
            .ok_or_else(|| Error::bad_json("m.room.redaction needs content.redacts"))?;
        s.rooms
            .redaction_template(&room_id, &me.0.user_id, &target, content)?
    } else {
        PduTemplate::message(&kind, Value::Object(content))
    };
    let event_id = s
        .rooms
        .append_with_txn(&room_id, &me.0.user_id, template, &txn)
        .await?;
    Ok(Json(json!({ "event_id": event_id })))
}

async fn event(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, event_id)): PathParams<(String, String)>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let not_found = || Error::not_found("Event not found");
    let event_id = ruma::OwnedEventId::try_from(event_id.as_str()).map_err(|_| not_found())?;
    let room = s.rooms.room(&room_id)?.ok_or_else(not_found)?;
    let (pdu, record) = s.rooms.pdu_with_record(&event_id)?.ok_or_else(not_found)?;
    if pdu.room_id != room_id {
        return Err(not_found());
    }
    let mut check = VisibilityCheck::new(&s.rooms, &me.0.user_id, room.short)?;
    if !check.allows(&pdu, &record)? {
        return Err(not_found());
    }
    Ok(Json(s.rooms.client_event_for(&pdu, Some(&me.0))?))
}

#[derive(Deserialize)]
struct MembersQuery {
    /// A pagination token: the members as they were at that point of the timeline.
    at: Option<String>,
    membership: Option<String>,
    not_membership: Option<String>,
}

async fn members(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    QueryParams(q): QueryParams<MembersQuery>,
) -> Result<Json<Value>> {
    let view = readable_state(&s, &me, &room_id)?;
    let events = match (&q.at, view) {
        (Some(at), StateView::Current(short)) => {
            let pos = super::messages::parse_token(at)?;
            s.rooms.state_at(s.rooms.snapshot_at(short, pos)?)?
        }
        (_, StateView::Current(short)) => s.rooms.current_state(short)?,
        (_, StateView::At(snapshot)) => s.rooms.state_at(snapshot)?,
    };
    let chunk: Vec<Value> = events
        .iter()
        .filter(|p| p.kind.to_string() == "m.room.member")
        .filter(|p| {
            let membership = p.content_json()["membership"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            q.membership.as_ref().is_none_or(|m| *m == membership)
                && q.not_membership.as_ref().is_none_or(|m| *m != membership)
        })
        .map(|p| s.rooms.client_event_for(p, Some(&me.0)))
        .collect::<Result<_>>()?;
    Ok(Json(json!({ "chunk": chunk })))
}

async fn joined_members(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
) -> Result<Json<Value>> {
    let (_, room) = joined_room(&s, &room_id, &me)?;
    let mut joined = Map::new();
    for user in s.rooms.roster(&room)?.joined() {
        let content = s
            .rooms
            .current_state_event(room.short, "m.room.member", user)?
            .map(|p| p.content_json())
            .unwrap_or_default();
        joined.insert(
            user.to_owned(),
            json!({ "display_name": content.get("displayname"), "avatar_url": content.get("avatar_url") }),
        );
    }
    Ok(Json(json!({ "joined": joined })))
}

#[derive(Deserialize, Default)]
struct RedactBody {
    reason: Option<String>,
}

async fn redact(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, event_id, txn_id)): PathParams<(String, String, String)>,
    crate::http::json::JsonOrEmpty(body): crate::http::json::JsonOrEmpty<RedactBody>,
) -> Result<Json<Value>> {
    let (room_id, _) = joined_room(&s, &room_id, &me)?;
    let target_id = ruma::OwnedEventId::try_from(event_id.as_str())
        .map_err(|_| Error::invalid_param("Invalid event ID"))?;
    let mut content = Map::new();
    if let Some(reason) = body.reason {
        content.insert("reason".into(), reason.into());
    }
    let template = s
        .rooms
        .redaction_template(&room_id, &me.0.user_id, &target_id, content)?;
    let txn = TxnKey {
        user: &me.0.user_id,
        device: &me.0.device_id,
        endpoint: "redact",
        txn_id: &txn_id,
    };
    let event_id = s
        .rooms
        .append_with_txn(&room_id, &me.0.user_id, template, &txn)
        .await?;
    Ok(Json(json!({ "event_id": event_id })))
}
