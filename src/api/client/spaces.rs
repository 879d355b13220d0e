//! Spaces (client-server API §Spaces): `/hierarchy`, the tree of a space's children. A Roost
//! workspace is a space; its channels are the children.

use std::collections::{HashSet, VecDeque};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::{OwnedRoomId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::directory::room_summary;
use super::rooms::parse_room_id;
use crate::error::{Error, Result};
use crate::http::auth::Authed;
use crate::http::json::{PathParams, QueryParams};
use crate::services::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route(
        "/_matrix/client/v1/rooms/{room_id}/hierarchy",
        get(hierarchy),
    )
}

#[derive(Deserialize, Default)]
struct HierarchyQuery {
    from: Option<String>,
    limit: Option<usize>,
    max_depth: Option<usize>,
    #[serde(default)]
    suggested_only: bool,
}

/// Whether the user may see a room in a hierarchy: joined, or could join or peek it.
fn accessible(s: &AppState, room_id: &ruma::RoomId, user: &UserId) -> Result<bool> {
    let Some(room) = s.rooms.room(room_id)? else {
        return Ok(false);
    };
    if matches!(
        s.rooms.membership(room.short, user)?.as_deref(),
        Some("join" | "invite")
    ) {
        return Ok(true);
    }
    let rule = s
        .rooms
        .current_state_event(room.short, "m.room.join_rules", "")?
        .map(|p| p.content_json());
    let join_rule = rule
        .as_ref()
        .and_then(|r| r["join_rule"].as_str())
        .unwrap_or("invite");
    if matches!(join_rule, "public" | "knock" | "knock_restricted") {
        return Ok(true);
    }
    if join_rule == "restricted"
        && let Some(rule) = &rule
        && s.rooms.meets_join_allow(rule, user)
    {
        return Ok(true);
    }
    Ok(s.rooms
        .current_state_event(room.short, "m.room.history_visibility", "")?
        .is_some_and(|p| p.content_json()["history_visibility"] == "world_readable"))
}

/// A room's `m.space.child` events with a non-empty `via`, as stripped state.
fn children_state(s: &AppState, room_id: &ruma::RoomId) -> Result<Vec<Value>> {
    let Some(room) = s.rooms.room(room_id)? else {
        return Ok(Vec::new());
    };
    let mut children: Vec<Value> = s
        .rooms
        .current_state(room.short)?
        .into_iter()
        .filter(|p| p.kind.to_string() == "m.space.child")
        .filter(|p| {
            p.content_json()["via"]
                .as_array()
                .is_some_and(|v| !v.is_empty())
        })
        .map(|p| {
            json!({
                "type": "m.space.child",
                "state_key": p.state_key,
                "content": p.content_json(),
                "sender": p.sender,
                "origin_server_ts": u64::from(p.origin_server_ts.0),
            })
        })
        .collect();
    // The spec orders children by `order`, then by the time they were added.
    children.sort_by(|a, b| {
        let order = |v: &Value| v["content"]["order"].as_str().map(str::to_owned);
        match (order(a), order(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a["origin_server_ts"]
                .as_u64()
                .cmp(&b["origin_server_ts"].as_u64()),
        }
        .then_with(|| a["state_key"].as_str().cmp(&b["state_key"].as_str()))
    });
    Ok(children)
}

async fn hierarchy(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    QueryParams(q): QueryParams<HierarchyQuery>,
) -> Result<Json<Value>> {
    let root = parse_room_id(&room_id)?;
    if !accessible(&s, &root, &me.0.user_id)? {
        return Err(Error::forbidden("You may not view this space"));
    }
    let offset: usize = match q.from.as_deref() {
        None => 0,
        Some(t) => t
            .strip_prefix('h')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::invalid_param("Invalid from token"))?,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let max_depth = q.max_depth.unwrap_or(usize::MAX);

    // Breadth-first over children the user may see; each room once.
    let mut rooms = Vec::new();
    let mut seen: HashSet<OwnedRoomId> = HashSet::new();
    let mut queue = VecDeque::from([(root, 0usize)]);
    while let Some((room_id, depth)) = queue.pop_front() {
        if !seen.insert(room_id.clone()) {
            continue;
        }
        let Some(mut entry) = room_summary(&s, &room_id)? else {
            continue;
        };
        let children = children_state(&s, &room_id)?;
        if depth < max_depth {
            for child in &children {
                if q.suggested_only && child["content"]["suggested"] != true {
                    continue;
                }
                if let Some(child_id) = child["state_key"]
                    .as_str()
                    .and_then(|c| ruma::RoomId::parse(c).ok())
                    && accessible(&s, &child_id, &me.0.user_id)?
                {
                    queue.push_back((child_id, depth + 1));
                }
            }
        }
        entry["children_state"] = Value::Array(children);
        rooms.push(entry);
    }
    let total = rooms.len();
    let page: Vec<Value> = rooms.into_iter().skip(offset).take(limit).collect();
    let mut body = json!({ "rooms": page });
    if offset + limit < total {
        body["next_batch"] = format!("h{}", offset + limit).into();
    }
    Ok(Json(body))
}
