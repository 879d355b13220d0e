//! Room membership (client-server API §"Room membership"): join (by id or alias, incl.
//! restricted joins), invite, leave, kick, ban, unban, knock, forget. Every change is an
//! `m.room.member` event through the pipeline; the auth rules decide who may do what.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ruma::{OwnedRoomId, OwnedUserId, RoomAliasId, UserId};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::PREFIXES;
use super::rooms::parse_room_id;
use crate::error::{Error, Result};
use crate::events::PduTemplate;
use crate::http::auth::Authed;
use crate::http::json::{JsonBody, JsonOrEmpty, PathParams};
use crate::services::AppState;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for p in PREFIXES {
        router = router
            .route(&format!("{p}/rooms/{{room_id}}/join"), post(join_by_id))
            .route(&format!("{p}/join/{{room_id_or_alias}}"), post(join))
            .route(&format!("{p}/knock/{{room_id_or_alias}}"), post(knock))
            .route(&format!("{p}/rooms/{{room_id}}/invite"), post(invite))
            .route(&format!("{p}/rooms/{{room_id}}/leave"), post(leave))
            .route(&format!("{p}/rooms/{{room_id}}/forget"), post(forget))
            .route(&format!("{p}/rooms/{{room_id}}/kick"), post(kick))
            .route(&format!("{p}/rooms/{{room_id}}/ban"), post(ban))
            .route(&format!("{p}/rooms/{{room_id}}/unban"), post(unban));
    }
    router
}

#[derive(Deserialize, Default)]
struct ReasonBody {
    reason: Option<String>,
}

#[derive(Deserialize)]
struct TargetBody {
    user_id: String,
    reason: Option<String>,
}

/// A room id, or an alias resolved to one. Unknown: 404 `M_NOT_FOUND`.
fn resolve_room(s: &AppState, raw: &str) -> Result<OwnedRoomId> {
    let room_id = if raw.starts_with('#') {
        let alias =
            RoomAliasId::parse(raw).map_err(|_| Error::invalid_param("Invalid room alias"))?;
        s.rooms
            .resolve_alias(&alias)?
            .ok_or_else(|| Error::not_found("Room alias not found"))?
    } else {
        parse_room_id(raw)?
    };
    if s.rooms.room(&room_id)?.is_none() {
        return Err(Error::not_found("No known servers for this room"));
    }
    Ok(room_id)
}

/// The member event content for a user acting on themselves: their profile, the reason.
fn own_member_content(
    s: &AppState,
    user: &UserId,
    membership: &str,
    reason: Option<String>,
) -> Result<Value> {
    let mut content = Map::new();
    content.insert("membership".into(), membership.into());
    let profile = s.profiles.get_all(user)?;
    for field in ["displayname", "avatar_url"] {
        if let Some(v) = profile.get(field).filter(|v| v.is_string()) {
            content.insert(field.into(), v.clone());
        }
    }
    if let Some(reason) = reason {
        content.insert("reason".into(), reason.into());
    }
    Ok(Value::Object(content))
}

fn member_content(membership: &str, reason: Option<String>) -> Value {
    let mut content = json!({ "membership": membership });
    if let Some(reason) = reason {
        content["reason"] = reason.into();
    }
    content
}

async fn join_by_id(
    state: State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonOrEmpty(body): JsonOrEmpty<ReasonBody>,
) -> Result<Json<Value>> {
    join(state, me, PathParams(room_id), JsonOrEmpty(body)).await
}

async fn join(
    State(s): State<AppState>,
    me: Authed,
    PathParams(target): PathParams<String>,
    JsonOrEmpty(body): JsonOrEmpty<ReasonBody>,
) -> Result<Json<Value>> {
    let room_id = resolve_room(&s, &target)?;
    let reason = body.reason;
    let mut content = own_member_content(&s, &me.0.user_id, "join", reason)?;
    if let Some(authoriser) = restricted_join_authoriser(&s, &room_id, &me.0.user_id)? {
        content["join_authorised_via_users_server"] = authoriser.as_str().into();
    }
    s.rooms
        .append(
            &room_id,
            &me.0.user_id,
            PduTemplate::state("m.room.member", me.0.user_id.as_str(), content),
        )
        .await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// For a restricted room the user is not invited to: a joined local user with power to invite,
/// if the user is joined to one of the rooms the join rule allows. The auth rules then check
/// that choice; without one they refuse the join.
fn restricted_join_authoriser(
    s: &AppState,
    room_id: &ruma::RoomId,
    user: &UserId,
) -> Result<Option<OwnedUserId>> {
    let room = s
        .rooms
        .room(room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    let Some(rules) = s
        .rooms
        .current_state_event(room.short, "m.room.join_rules", "")?
    else {
        return Ok(None);
    };
    let rules = rules.content_json();
    if !matches!(
        rules["join_rule"].as_str(),
        Some("restricted" | "knock_restricted")
    ) {
        return Ok(None);
    }
    if matches!(
        s.rooms.membership(room.short, user)?.as_deref(),
        Some("invite" | "join")
    ) {
        return Ok(None);
    }
    let allowed = s.rooms.meets_join_allow(&rules, user);
    if !allowed {
        return Ok(None);
    }
    let power = s.rooms.power_levels(room_id)?;
    let invite_level = power.action_level("invite");
    for member in s.rooms.roster(&room)?.joined() {
        let Ok(member) = OwnedUserId::try_from(member) else {
            continue;
        };
        if member.server_name() == s.rooms.server_name()
            && power.user_level(&member) >= invite_level
        {
            return Ok(Some(member));
        }
    }
    Ok(None)
}

async fn knock(
    State(s): State<AppState>,
    me: Authed,
    PathParams(target): PathParams<String>,
    JsonOrEmpty(body): JsonOrEmpty<ReasonBody>,
) -> Result<Json<Value>> {
    let room_id = resolve_room(&s, &target)?;
    let content = own_member_content(&s, &me.0.user_id, "knock", body.reason)?;
    s.rooms
        .append(
            &room_id,
            &me.0.user_id,
            PduTemplate::state("m.room.member", me.0.user_id.as_str(), content),
        )
        .await?;
    Ok(Json(json!({ "room_id": room_id })))
}

/// The current membership of the user a kick or unban names.
fn target_membership(s: &AppState, raw_room_id: &str, raw_user_id: &str) -> Result<Option<String>> {
    let room = s
        .rooms
        .room(&parse_room_id(raw_room_id)?)?
        .ok_or_else(|| Error::forbidden("You are not in this room"))?;
    let target = UserId::parse(raw_user_id).map_err(|_| Error::invalid_param("Invalid user ID"))?;
    s.rooms.membership(room.short, &target)
}

/// A membership change on another user (invite, kick, ban, unban).
async fn act_on(
    s: &AppState,
    me: &Authed,
    raw_room_id: &str,
    body: TargetBody,
    membership: &str,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(raw_room_id)?;
    if s.rooms.room(&room_id)?.is_none() {
        return Err(Error::forbidden("You are not in this room"));
    }
    let target =
        UserId::parse(&body.user_id).map_err(|_| Error::invalid_param("Invalid user ID"))?;
    let template = PduTemplate::state(
        "m.room.member",
        target.as_str(),
        member_content(membership, body.reason),
    );
    s.rooms.append(&room_id, &me.0.user_id, template).await?;
    Ok(Json(json!({})))
}

async fn invite(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonBody(body): JsonBody<TargetBody>,
) -> Result<Json<Value>> {
    act_on(&s, &me, &room_id, body, "invite").await
}

async fn kick(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonBody(body): JsonBody<TargetBody>,
) -> Result<Json<Value>> {
    // The endpoint refuses kicking someone who isn't in the room (the auth rules alone would
    // record a leave for them).
    if !matches!(
        target_membership(&s, &room_id, &body.user_id)?.as_deref(),
        Some("join" | "invite" | "knock")
    ) {
        return Err(Error::forbidden("That user is not in the room"));
    }
    act_on(&s, &me, &room_id, body, "leave").await
}

async fn ban(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonBody(body): JsonBody<TargetBody>,
) -> Result<Json<Value>> {
    act_on(&s, &me, &room_id, body, "ban").await
}

async fn unban(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonBody(body): JsonBody<TargetBody>,
) -> Result<Json<Value>> {
    if target_membership(&s, &room_id, &body.user_id)?.as_deref() != Some("ban") {
        return Err(Error::forbidden("That user is not banned"));
    }
    act_on(&s, &me, &room_id, body, "leave").await
}

async fn leave(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonOrEmpty(body): JsonOrEmpty<ReasonBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let room = s
        .rooms
        .room(&room_id)?
        .ok_or_else(|| Error::forbidden("You are not in this room"))?;
    match s.rooms.membership(room.short, &me.0.user_id)?.as_deref() {
        Some("join" | "invite" | "knock") => {}
        // Leaving again is a no-op, as on Synapse.
        Some("leave") => return Ok(Json(json!({}))),
        _ => return Err(Error::forbidden("You are not in this room")),
    }
    let content = member_content("leave", body.reason);
    s.rooms
        .append(
            &room_id,
            &me.0.user_id,
            PduTemplate::state("m.room.member", me.0.user_id.as_str(), content),
        )
        .await?;
    Ok(Json(json!({})))
}

async fn forget(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let room = s
        .rooms
        .room(&room_id)?
        .ok_or_else(|| Error::not_found("Unknown room"))?;
    match s.rooms.membership(room.short, &me.0.user_id)?.as_deref() {
        Some("join" | "invite" | "knock") => Err(Error::new(
            crate::error::ErrorKind::Unknown,
            "User must leave the room before forgetting it",
        )
        .with_status(axum::http::StatusCode::BAD_REQUEST)),
        _ => {
            s.rooms.forget(&room_id, &me.0.user_id)?;
            Ok(Json(json!({})))
        }
    }
}
