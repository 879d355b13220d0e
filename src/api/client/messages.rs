//! Reading the timeline (client-server API §"Getting events for a room"): `/messages` in both
//! directions with `from`/`to`/`limit` and a RoomEventFilter, and `/context/{eventId}`.
//! Every event passes the history-visibility check for the reader.
//!
//! Pagination tokens name the *gap after* a stream position, written `s<pos>`: paging
//! backwards from `s<n>` returns events at positions `≤ n`, forwards returns positions `> n`.
//! So the `end` of a backwards page, paged forwards, returns that same page, and tokens from
//! sync (which will use the same form) work here too.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::OwnedEventId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::PREFIXES;
use super::rooms::parse_room_id;
use crate::error::{Error, Result};
use crate::http::auth::Authed;
use crate::http::json::{PathParams, QueryParams};
use crate::rooms::filter::EventFilter;
use crate::rooms::reads::TimelineEntry;
use crate::rooms::tables::RoomRecord;
use crate::rooms::visibility::VisibilityCheck;
use crate::services::AppState;

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 1000;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for p in PREFIXES {
        router = router
            .route(&format!("{p}/rooms/{{room_id}}/messages"), get(messages))
            .route(
                &format!("{p}/rooms/{{room_id}}/context/{{event_id}}"),
                get(context),
            );
    }
    router.route(
        "/_matrix/client/v1/rooms/{room_id}/timestamp_to_event",
        get(timestamp_to_event),
    )
}

pub fn token(pos: u64) -> String {
    format!("s{pos}")
}

/// The gap just past the last event of a page: before it going backwards, after it going
/// forwards.
pub fn gap_beyond(pos: u64, backwards: bool) -> u64 {
    if backwards {
        pos.saturating_sub(1)
    } else {
        pos
    }
}

pub fn parse_token(raw: &str) -> Result<u64> {
    raw.strip_prefix('s')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::invalid_param("Invalid pagination token"))
}

#[derive(Deserialize)]
struct MessagesQuery {
    from: Option<String>,
    to: Option<String>,
    dir: Option<String>,
    limit: Option<usize>,
    filter: Option<String>,
}

/// The room, if the user may read its history at all: they have (had) a membership, or the
/// room is world-readable. Per-event visibility is decided later.
fn readable_room(s: &AppState, me: &Authed, raw: &str) -> Result<RoomRecord> {
    let room_id = parse_room_id(raw)?;
    let forbidden = || Error::forbidden("You are not allowed to read this room");
    let room = s.rooms.room(&room_id)?.ok_or_else(forbidden)?;
    if s.rooms.membership(room.short, &me.0.user_id)?.is_some()
        && !s.rooms.is_forgotten(&room_id, &me.0.user_id)?
    {
        return Ok(room);
    }
    let world_readable = s
        .rooms
        .current_state_event(room.short, "m.room.history_visibility", "")?
        .is_some_and(|p| p.content_json()["history_visibility"] == "world_readable");
    if world_readable {
        Ok(room)
    } else {
        Err(forbidden())
    }
}

/// Where a walk over the timeline starts, where it stops, and how much it collects.
#[derive(Clone, Copy)]
struct Walk {
    /// Stream position to start from (exclusive).
    from: u64,
    /// Stop before passing this position.
    to: Option<u64>,
    backwards: bool,
    limit: usize,
}

/// Walk the timeline collecting up to `walk.limit` events the filter and visibility allow.
/// Returns the events and whether more may follow.
fn collect(
    s: &AppState,
    room: &RoomRecord,
    check: &mut VisibilityCheck<'_>,
    filter: &EventFilter,
    walk: Walk,
) -> Result<(Vec<TimelineEntry>, bool)> {
    let Walk {
        from,
        to,
        backwards,
        limit,
    } = walk;
    let mut out = Vec::new();
    // The timeline reader's cursor is exclusive; backwards from gap `n` includes position `n`.
    let mut cursor = if backwards {
        from.saturating_add(1)
    } else {
        from
    };
    loop {
        let page = s.rooms.timeline_page(room.short, cursor, backwards, 100)?;
        let exhausted = page.len() < 100;
        for entry in page {
            cursor = entry.pos;
            let past_to = to.is_some_and(|t| {
                if backwards {
                    entry.pos <= t
                } else {
                    entry.pos > t
                }
            });
            if past_to {
                return Ok((out, false));
            }
            let visible = check.allows(&entry.pdu, &entry.record)?;
            if visible && filter.allows(&entry.pdu) {
                out.push(entry);
                if out.len() == limit {
                    return Ok((out, true));
                }
            }
        }
        if exhausted {
            return Ok((out, false));
        }
    }
}

/// Member events of the senders of `events` (lazy-loading members), current state.
fn lazy_members(s: &AppState, room: &RoomRecord, events: &[TimelineEntry]) -> Result<Vec<Value>> {
    let senders: BTreeSet<&str> = events.iter().map(|e| e.pdu.sender.as_str()).collect();
    let mut state = Vec::new();
    for sender in senders {
        if let Some(member) = s
            .rooms
            .current_state_event(room.short, "m.room.member", sender)?
        {
            state.push(s.rooms.client_event(&member)?);
        }
    }
    Ok(state)
}

async fn messages(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    QueryParams(q): QueryParams<MessagesQuery>,
) -> Result<Json<Value>> {
    let room = readable_room(&s, &me, &room_id)?;
    let backwards = match q.dir.as_deref() {
        Some("b") | None => true,
        Some("f") => false,
        Some(_) => return Err(Error::invalid_param("dir must be 'b' or 'f'")),
    };
    let filter = EventFilter::parse(q.filter.as_deref())?;
    let from = match &q.from {
        Some(t) => parse_token(t)?,
        None if backwards => u64::MAX,
        None => 0,
    };
    let to = q.to.as_deref().map(parse_token).transpose()?;
    let limit = q
        .limit
        .or(filter.limit)
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    let mut check = VisibilityCheck::new(&s.rooms, &me.0.user_id, room.short)?;
    let (events, more) = collect(
        &s,
        &room,
        &mut check,
        &filter,
        Walk {
            from,
            to,
            backwards,
            limit,
        },
    )?;

    let start = match &q.from {
        Some(t) => t.clone(),
        None => token(if backwards { s.stream.frontier() } else { 0 }),
    };
    let mut body = json!({
        "start": start,
        "chunk": events.iter().map(|e| s.rooms.client_event_for(&e.pdu, Some(&me.0))).collect::<Result<Vec<_>>>()?,
    });
    if more && let Some(last) = events.last() {
        body["end"] = token(gap_beyond(last.pos, backwards)).into();
    }
    if filter.lazy_load_members {
        body["state"] = lazy_members(&s, &room, &events)?.into();
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
struct ContextQuery {
    limit: Option<usize>,
    filter: Option<String>,
}

async fn context(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, event_id)): PathParams<(String, String)>,
    QueryParams(q): QueryParams<ContextQuery>,
) -> Result<Json<Value>> {
    let room = readable_room(&s, &me, &room_id)?;
    let not_found = || Error::not_found("Event not found");
    let event_id = OwnedEventId::try_from(event_id.as_str()).map_err(|_| not_found())?;
    let (pdu, record) = s.rooms.pdu_with_record(&event_id)?.ok_or_else(not_found)?;
    if pdu.room_id.as_str() != parse_room_id(&room_id)?.as_str() {
        return Err(not_found());
    }
    let mut check = VisibilityCheck::new(&s.rooms, &me.0.user_id, room.short)?;
    if !check.allows(&pdu, &record)? {
        return Err(not_found());
    }
    let filter = EventFilter::parse(q.filter.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let before_limit = limit / 2;
    let after_limit = limit - before_limit;
    let pos = record.stream_pos;
    // Before: positions ≤ pos-1; after: positions > pos. The event itself is in neither.
    let around = |backwards: bool, limit: usize| Walk {
        from: if backwards {
            pos.saturating_sub(1)
        } else {
            pos
        },
        to: None,
        backwards,
        limit,
    };
    let (before, _) = if before_limit > 0 {
        collect(&s, &room, &mut check, &filter, around(true, before_limit))?
    } else {
        (Vec::new(), false)
    };
    let (after, _) = if after_limit > 0 {
        collect(&s, &room, &mut check, &filter, around(false, after_limit))?
    } else {
        (Vec::new(), false)
    };
    let start = gap_beyond(before.last().map_or(pos, |e| e.pos), true);
    let end = gap_beyond(after.last().map_or(pos, |e| e.pos), false);
    let state: Vec<Value> = if filter.lazy_load_members {
        let mut all = before.clone();
        all.extend(after.iter().cloned());
        all.push(TimelineEntry {
            pos,
            pdu: pdu.clone(),
            record: record.clone(),
        });
        lazy_members(&s, &room, &all)?
    } else {
        s.rooms
            .state_at(record.state_after)?
            .iter()
            .map(|p| s.rooms.client_event_for(p, Some(&me.0)))
            .collect::<Result<_>>()?
    };
    let events = |list: &[TimelineEntry]| {
        list.iter()
            .map(|e| s.rooms.client_event_for(&e.pdu, Some(&me.0)))
            .collect::<Result<Vec<_>>>()
    };
    Ok(Json(json!({
        "event": s.rooms.client_event_for(&pdu, Some(&me.0))?,
        "events_before": events(&before)?,
        "events_after": events(&after)?,
        "start": token(start),
        "end": token(end),
        "state": state,
    })))
}

#[derive(Deserialize)]
struct TimestampQuery {
    ts: u64,
    dir: String,
}

/// `/timestamp_to_event`: the visible event closest to `ts`, at or after it (`f`) or at or
/// before it (`b`).
async fn timestamp_to_event(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    QueryParams(q): QueryParams<TimestampQuery>,
) -> Result<Json<Value>> {
    let room = readable_room(&s, &me, &room_id)?;
    let forwards = match q.dir.as_str() {
        "f" => true,
        "b" => false,
        _ => return Err(Error::invalid_param("dir must be 'f' or 'b'")),
    };
    let mut check = VisibilityCheck::new(&s.rooms, &me.0.user_id, room.short)?;
    // Stream order follows send time for local events: walk from the matching end.
    let mut cursor = if forwards { 0 } else { u64::MAX };
    loop {
        let page = s.rooms.timeline_page(room.short, cursor, !forwards, 200)?;
        let exhausted = page.len() < 200;
        for entry in page {
            cursor = entry.pos;
            let ts = u64::from(entry.pdu.origin_server_ts.0);
            let matches = if forwards { ts >= q.ts } else { ts <= q.ts };
            if !matches {
                continue;
            }
            if check.allows(&entry.pdu, &entry.record)? {
                return Ok(Json(
                    json!({ "event_id": entry.pdu.event_id, "origin_server_ts": ts }),
                ));
            }
        }
        if exhausted {
            return Err(Error::not_found("No event found for that timestamp"));
        }
    }
}
