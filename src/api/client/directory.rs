//! Room aliases and the public room directory (client-server API §"Room aliases", §"Listing
//! rooms").

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::{RoomAliasId, RoomId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::PREFIXES;
use super::rooms::parse_room_id;
use crate::error::{Error, Result};
use crate::http::auth::{Authed, MaybeAuthed};
use crate::http::json::{JsonBody, JsonOrEmpty, PathParams, QueryParams};
use crate::services::AppState;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for p in PREFIXES {
        router = router
            .route(
                &format!("{p}/directory/room/{{alias}}"),
                get(get_alias).put(put_alias).delete(delete_alias),
            )
            .route(&format!("{p}/rooms/{{room_id}}/aliases"), get(room_aliases))
            .route(
                &format!("{p}/directory/list/room/{{room_id}}"),
                get(get_visibility).put(put_visibility),
            )
            .route(
                &format!("{p}/publicRooms"),
                get(public_rooms_get).post(public_rooms_post),
            );
    }
    router
}

fn parse_alias(raw: &str) -> Result<ruma::OwnedRoomAliasId> {
    RoomAliasId::parse(raw).map_err(|_| Error::invalid_param("Invalid room alias"))
}

async fn get_alias(
    State(s): State<AppState>,
    PathParams(alias): PathParams<String>,
) -> Result<Json<Value>> {
    let alias = parse_alias(&alias)?;
    let room_id = s
        .rooms
        .resolve_alias(&alias)?
        .ok_or_else(|| Error::not_found("Room alias not found"))?;
    Ok(Json(
        json!({ "room_id": room_id, "servers": [s.rooms.server_name()] }),
    ))
}

#[derive(Deserialize)]
struct PutAlias {
    room_id: String,
}

async fn put_alias(
    State(s): State<AppState>,
    me: Authed,
    PathParams(alias): PathParams<String>,
    JsonBody(body): JsonBody<PutAlias>,
) -> Result<Json<Value>> {
    let alias = parse_alias(&alias)?;
    let room_id = parse_room_id(&body.room_id)?;
    let room = s
        .rooms
        .room(&room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    if s.rooms.membership(room.short, &me.0.user_id)?.as_deref() != Some("join") {
        return Err(Error::forbidden("You are not in this room"));
    }
    s.rooms
        .create_alias(&alias, &room_id, &me.0.user_id)
        .map_err(|e| match e.kind() {
            // This endpoint's spec answers a taken alias with 409.
            crate::error::ErrorKind::RoomInUse => Error::new(
                crate::error::ErrorKind::Unknown,
                "Room alias already exists",
            )
            .with_status(axum::http::StatusCode::CONFLICT),
            _ => e,
        })?;
    Ok(Json(json!({})))
}

async fn delete_alias(
    State(s): State<AppState>,
    me: Authed,
    PathParams(alias): PathParams<String>,
) -> Result<Json<Value>> {
    let alias = parse_alias(&alias)?;
    let record = s
        .rooms
        .alias_record(&alias)?
        .ok_or_else(|| Error::not_found("Room alias not found"))?;
    let room_id = parse_room_id(&record.room_id)?;
    let is_admin = s.accounts.get(&me.0.user_id)?.is_some_and(|u| u.admin);
    // The alias's creator, a server admin, or someone who may change the canonical alias.
    let allowed = record.creator == me.0.user_id.as_str()
        || is_admin
        || s.rooms
            .can_send_state(&room_id, &me.0.user_id, "m.room.canonical_alias")?;
    if !allowed {
        return Err(Error::forbidden("You may not delete this alias"));
    }
    s.rooms.delete_alias(&alias)?;
    Ok(Json(json!({})))
}

async fn room_aliases(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let room = s
        .rooms
        .room(&room_id)?
        .ok_or_else(|| Error::forbidden("You are not in this room"))?;
    let world_readable = s
        .rooms
        .current_state_event(room.short, "m.room.history_visibility", "")?
        .is_some_and(|p| p.content_json()["history_visibility"] == "world_readable");
    if !world_readable && s.rooms.membership(room.short, &me.0.user_id)?.as_deref() != Some("join")
    {
        return Err(Error::forbidden("You are not in this room"));
    }
    Ok(Json(json!({ "aliases": s.rooms.local_aliases(&room_id)? })))
}

async fn get_visibility(
    State(s): State<AppState>,
    PathParams(room_id): PathParams<String>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    if s.rooms.room(&room_id)?.is_none() {
        return Err(Error::not_found("Unknown room"));
    }
    let visibility = if s.rooms.is_published(&room_id)? {
        "public"
    } else {
        "private"
    };
    Ok(Json(json!({ "visibility": visibility })))
}

#[derive(Deserialize)]
struct PutVisibility {
    /// The spec's default is `public`.
    #[serde(default = "public")]
    visibility: String,
}

fn public() -> String {
    "public".into()
}

async fn put_visibility(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonBody(body): JsonBody<PutVisibility>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    if s.rooms.room(&room_id)?.is_none() {
        return Err(Error::not_found("Unknown room"));
    }
    let published = match body.visibility.as_str() {
        "public" => true,
        "private" => false,
        _ => return Err(Error::bad_json("visibility must be 'public' or 'private'")),
    };
    let is_admin = s.accounts.get(&me.0.user_id)?.is_some_and(|u| u.admin);
    if !is_admin
        && !s
            .rooms
            .can_send_state(&room_id, &me.0.user_id, "m.room.canonical_alias")?
    {
        return Err(Error::forbidden(
            "You may not change this room's directory visibility",
        ));
    }
    s.rooms.set_published(&room_id, published)?;
    Ok(Json(json!({})))
}

#[derive(Deserialize, Default)]
struct PublicRoomsQuery {
    limit: Option<usize>,
    since: Option<String>,
    server: Option<String>,
}

#[derive(Deserialize, Default)]
struct PublicRoomsBody {
    limit: Option<usize>,
    since: Option<String>,
    #[serde(default)]
    filter: PublicRoomsFilter,
}

#[derive(Deserialize, Default)]
struct PublicRoomsFilter {
    generic_search_term: Option<String>,
    #[serde(default)]
    room_types: Option<Vec<Option<String>>>,
}

async fn public_rooms_get(
    State(s): State<AppState>,
    _me: MaybeAuthed,
    QueryParams(q): QueryParams<PublicRoomsQuery>,
) -> Result<Json<Value>> {
    let _ = q.server;
    public_rooms(&s, q.limit, q.since, PublicRoomsFilter::default())
}

async fn public_rooms_post(
    State(s): State<AppState>,
    _me: Authed,
    JsonOrEmpty(body): JsonOrEmpty<PublicRoomsBody>,
) -> Result<Json<Value>> {
    public_rooms(&s, body.limit, body.since, body.filter)
}

/// One directory entry: the spec's `PublishedRoomsChunk` (also the room part of a space
/// hierarchy entry).
pub(super) fn room_summary(s: &AppState, room_id: &RoomId) -> Result<Option<Value>> {
    let Some(room) = s.rooms.room(room_id)? else {
        return Ok(None);
    };
    let content = |kind: &str| -> Result<Value> {
        Ok(s.rooms
            .current_state_event(room.short, kind, "")?
            .map(|p| p.content_json())
            .unwrap_or(Value::Null))
    };
    let joined = s.rooms.roster(&room)?.joined_count();
    let mut entry = json!({
        "room_id": room_id,
        "num_joined_members": joined,
        "world_readable": content("m.room.history_visibility")?["history_visibility"] == "world_readable",
        "guest_can_join": content("m.room.guest_access")?["guest_access"] == "can_join",
        "join_rule": content("m.room.join_rules")?["join_rule"].as_str().unwrap_or("invite"),
    });
    for (field, kind, key) in [
        ("name", "m.room.name", "name"),
        ("topic", "m.room.topic", "topic"),
        ("avatar_url", "m.room.avatar", "url"),
        ("canonical_alias", "m.room.canonical_alias", "alias"),
    ] {
        if let Some(v) = content(kind)?[key].as_str() {
            entry[field] = v.into();
        }
    }
    if let Some(room_type) = content("m.room.create")?["type"].as_str() {
        entry["room_type"] = room_type.into();
    }
    Ok(Some(entry))
}

fn public_rooms(
    s: &AppState,
    limit: Option<usize>,
    since: Option<String>,
    filter: PublicRoomsFilter,
) -> Result<Json<Value>> {
    let offset = match since.as_deref() {
        None => 0,
        Some(t) => t
            .strip_prefix('p')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::invalid_param("Invalid since token"))?,
    };
    let term = filter.generic_search_term.map(|t| t.to_lowercase());
    let mut entries = Vec::new();
    for room_id in s.rooms.published_rooms()? {
        let Some(entry) = room_summary(s, &room_id)? else {
            continue;
        };
        if let Some(term) = &term {
            let haystack = ["name", "topic", "canonical_alias"]
                .iter()
                .filter_map(|f| entry[*f].as_str())
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if !haystack.contains(term.as_str()) {
                continue;
            }
        }
        if let Some(types) = &filter.room_types {
            let room_type = entry["room_type"].as_str().map(str::to_owned);
            if !types.contains(&room_type) {
                continue;
            }
        }
        entries.push(entry);
    }
    // Largest rooms first, then by id, as directories usually list them.
    entries.sort_by(|a, b| {
        b["num_joined_members"]
            .as_u64()
            .cmp(&a["num_joined_members"].as_u64())
            .then_with(|| a["room_id"].as_str().cmp(&b["room_id"].as_str()))
    });
    let total = entries.len();
    let limit = limit.unwrap_or(total.max(1)).max(1);
    let page: Vec<Value> = entries.into_iter().skip(offset).take(limit).collect();
    let mut body = json!({ "chunk": page, "total_room_count_estimate": total });
    if offset + limit < total {
        body["next_batch"] = format!("p{}", offset + limit).into();
    }
    if offset > 0 {
        body["prev_batch"] = format!("p{}", offset.saturating_sub(limit)).into();
    }
    Ok(Json(body))
}
