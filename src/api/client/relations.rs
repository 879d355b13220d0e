//! Relations and threads (client-server API §"Relationships"): `/relations/{eventId}` with
//! rel-type and event-type filters, pagination and `recurse`; `/threads`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::OwnedEventId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::messages::{gap_beyond, parse_token, token};
use super::rooms::parse_room_id;
use crate::error::{Error, Result};
use crate::http::auth::Authed;
use crate::http::json::{PathParams, QueryParams};
use crate::rooms::tables::RoomRecord;
use crate::rooms::visibility::VisibilityCheck;
use crate::services::AppState;

const MAX_LIMIT: usize = 100;
/// How deep `recurse=true` follows relations of relations.
const MAX_RECURSION: usize = 3;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let base = "/_matrix/client/v1/rooms/{room_id}";
    router
        .route(
            &format!("{base}/relations/{{event_id}}"),
            get(relations_any),
        )
        .route(
            &format!("{base}/relations/{{event_id}}/{{rel_type}}"),
            get(relations_rel),
        )
        .route(
            &format!("{base}/relations/{{event_id}}/{{rel_type}}/{{event_type}}"),
            get(relations_rel_type),
        )
        .route(&format!("{base}/threads"), get(threads))
}

#[derive(Deserialize, Default)]
struct RelationsQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    dir: Option<String>,
    #[serde(default)]
    recurse: bool,
}

/// The room and the parent event, if the reader may see the parent.
fn visible_parent(
    s: &AppState,
    me: &Authed,
    room_id: &str,
    event_id: &str,
) -> Result<(RoomRecord, OwnedEventId)> {
    let room_id = parse_room_id(room_id)?;
    let not_found = || Error::not_found("Event not found");
    let room = s
        .rooms
        .room(&room_id)?
        .ok_or_else(|| Error::forbidden("You are not in this room"))?;
    if s.rooms.membership(room.short, &me.0.user_id)?.is_none() {
        return Err(Error::forbidden("You are not in this room"));
    }
    let event_id = OwnedEventId::try_from(event_id).map_err(|_| not_found())?;
    let (pdu, record) = s.rooms.pdu_with_record(&event_id)?.ok_or_else(not_found)?;
    if pdu.room_id != room_id
        || !VisibilityCheck::new(&s.rooms, &me.0.user_id, room.short)?.allows(&pdu, &record)?
    {
        return Err(not_found());
    }
    Ok((room, event_id))
}

async fn relations_any(
    s: State<AppState>,
    me: Authed,
    PathParams((room_id, event_id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<RelationsQuery>,
) -> Result<Json<Value>> {
    relations(s, me, room_id, event_id, None, None, q).await
}

async fn relations_rel(
    s: State<AppState>,
    me: Authed,
    PathParams((room_id, event_id, rel_type)): PathParams<(String, String, String)>,
    QueryParams(q): QueryParams<RelationsQuery>,
) -> Result<Json<Value>> {
    relations(s, me, room_id, event_id, Some(rel_type), None, q).await
}

async fn relations_rel_type(
    s: State<AppState>,
    me: Authed,
    PathParams((room_id, event_id, rel_type, event_type)): PathParams<(
        String,
        String,
        String,
        String,
    )>,
    QueryParams(q): QueryParams<RelationsQuery>,
) -> Result<Json<Value>> {
    relations(
        s,
        me,
        room_id,
        event_id,
        Some(rel_type),
        Some(event_type),
        q,
    )
    .await
}

async fn relations(
    State(s): State<AppState>,
    me: Authed,
    room_id: String,
    event_id: String,
    rel_type: Option<String>,
    event_type: Option<String>,
    q: RelationsQuery,
) -> Result<Json<Value>> {
    let (room, parent) = visible_parent(&s, &me, &room_id, &event_id)?;
    let backwards = match q.dir.as_deref() {
        None | Some("b") => true,
        Some("f") => false,
        Some(_) => return Err(Error::invalid_param("dir must be 'b' or 'f'")),
    };
    let from = q.from.as_deref().map(parse_token).transpose()?;
    let to = q.to.as_deref().map(parse_token).transpose()?;
    let limit = q.limit.unwrap_or(10).clamp(1, MAX_LIMIT);
    let depth = if q.recurse { MAX_RECURSION } else { 1 };

    // Gather matching relations breadth-first down to `depth`, then order and page them.
    let mut found = Vec::new();
    let mut frontier = vec![parent];
    for _ in 0..depth {
        let mut next = Vec::new();
        for target in &frontier {
            for related in s.rooms.relations(target, None, false, usize::MAX)? {
                let id = OwnedEventId::try_from(related.record.event_id.as_str())
                    .map_err(Error::internal)?;
                next.push(id.clone());
                let rel_ok = rel_type
                    .as_ref()
                    .is_none_or(|r| *r == related.record.rel_type);
                let type_ok = event_type
                    .as_ref()
                    .is_none_or(|t| *t == related.record.event_type);
                if rel_ok && type_ok {
                    found.push((related.pos, id));
                }
            }
        }
        frontier = next;
    }
    found.sort_by_key(|(pos, _)| *pos);
    if backwards {
        found.reverse();
    }
    let in_range = |pos: u64| {
        let after_from = from.is_none_or(|f| if backwards { pos <= f } else { pos > f });
        let before_to = to.is_none_or(|t| if backwards { pos > t } else { pos <= t });
        after_from && before_to
    };
    let mut check = VisibilityCheck::new(&s.rooms, &me.0.user_id, room.short)?;
    let mut chunk = Vec::new();
    let mut last_pos = None;
    let mut more = false;
    for (pos, id) in found.into_iter().filter(|(pos, _)| in_range(*pos)) {
        if chunk.len() == limit {
            more = true;
            break;
        }
        let Some((pdu, record)) = s.rooms.pdu_with_record(&id)? else {
            continue;
        };
        if check.allows(&pdu, &record)? {
            chunk.push(s.rooms.client_event_for(&pdu, Some(&me.0))?);
            last_pos = Some(pos);
        }
    }
    let mut body = json!({ "chunk": chunk });
    if more && let Some(pos) = last_pos {
        body["next_batch"] = token(gap_beyond(pos, backwards)).into();
    }
    if let Some(from) = &q.from {
        body["prev_batch"] = from.clone().into();
    }
    if q.recurse {
        body["recursion_depth"] = depth.into();
    }
    Ok(Json(body))
}

#[derive(Deserialize, Default)]
struct ThreadsQuery {
    include: Option<String>,
    from: Option<String>,
    limit: Option<usize>,
}

async fn threads(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    QueryParams(q): QueryParams<ThreadsQuery>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let room = s
        .rooms
        .room(&room_id)?
        .ok_or_else(|| Error::forbidden("You are not in this room"))?;
    if s.rooms.membership(room.short, &me.0.user_id)?.is_none() {
        return Err(Error::forbidden("You are not in this room"));
    }
    let participated_only = match q.include.as_deref() {
        None | Some("all") => false,
        Some("participated") => true,
        Some(_) => {
            return Err(Error::invalid_param(
                "include must be 'all' or 'participated'",
            ));
        }
    };
    let offset: usize = match q.from.as_deref() {
        None => 0,
        Some(t) => t
            .strip_prefix('t')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::invalid_param("Invalid from token"))?,
    };
    let limit = q.limit.unwrap_or(10).clamp(1, MAX_LIMIT);
    let mut check = VisibilityCheck::new(&s.rooms, &me.0.user_id, room.short)?;
    let mut roots = Vec::new();
    for (root, thread) in s.rooms.threads(room.short)? {
        if participated_only
            && !thread
                .participants
                .iter()
                .any(|p| p == me.0.user_id.as_str())
        {
            continue;
        }
        let Ok(root) = OwnedEventId::try_from(root) else {
            continue;
        };
        if let Some((pdu, record)) = s.rooms.pdu_with_record(&root)?
            && check.allows(&pdu, &record)?
        {
            roots.push(pdu);
        }
    }
    let total = roots.len();
    let chunk = roots
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| s.rooms.client_event_for(p, Some(&me.0)))
        .collect::<Result<Vec<_>>>()?;
    let mut body = json!({ "chunk": chunk });
    if offset + limit < total {
        body["next_batch"] = format!("t{}", offset + limit).into();
    }
    Ok(Json(body))
}
