//! Room upgrades and reports (client-server API §"Room upgrades", §"Reporting content").

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use ruma::{OwnedEventId, RoomVersionId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::PREFIXES;
use super::rooms::parse_room_id;
use crate::error::{Error, ErrorKind, Result};
use crate::http::auth::Authed;
use crate::http::json::{JsonBody, JsonOrEmpty, PathParams};
use crate::rooms::tables::ReportRecord;
use crate::rooms::visibility::VisibilityCheck;
use crate::services::AppState;
use crate::util::now_ms;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for p in PREFIXES {
        router = router
            .route(&format!("{p}/rooms/{{room_id}}/upgrade"), post(upgrade))
            .route(
                &format!("{p}/rooms/{{room_id}}/report/{{event_id}}"),
                post(report_event),
            )
            .route(&format!("{p}/rooms/{{room_id}}/report"), post(report_room));
    }
    router
}

#[derive(Deserialize)]
struct UpgradeBody {
    new_version: String,
}

async fn upgrade(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonBody(body): JsonBody<UpgradeBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let unsupported = || {
        Error::new(
            ErrorKind::UnsupportedRoomVersion,
            "Unsupported room version",
        )
    };
    let version = RoomVersionId::try_from(body.new_version.as_str()).map_err(|_| unsupported())?;
    if !crate::rooms::supported_versions().contains(&version) {
        return Err(unsupported());
    }
    let new_room = s.rooms.upgrade(&room_id, &me.0.user_id, &version).await?;
    Ok(Json(json!({ "replacement_room": new_room })))
}

#[derive(Deserialize, Default)]
struct ReportBody {
    reason: Option<String>,
    score: Option<i64>,
}

async fn report_event(
    State(s): State<AppState>,
    me: Authed,
    PathParams((room_id, event_id)): PathParams<(String, String)>,
    JsonOrEmpty(body): JsonOrEmpty<ReportBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    let not_found = || Error::not_found("Event not found");
    let room = s.rooms.room(&room_id)?.ok_or_else(not_found)?;
    let event_id = OwnedEventId::try_from(event_id.as_str()).map_err(|_| not_found())?;
    let (pdu, record) = s.rooms.pdu_with_record(&event_id)?.ok_or_else(not_found)?;
    // Reporters can only report what they can see; anything else looks like a missing event.
    if pdu.room_id != room_id
        || !VisibilityCheck::new(&s.rooms, &me.0.user_id, room.short)?.allows(&pdu, &record)?
    {
        return Err(not_found());
    }
    if let Some(score) = body.score
        && !(-100..=0).contains(&score)
    {
        return Err(Error::invalid_param("score must be between -100 and 0"));
    }
    s.rooms.store_report(&ReportRecord {
        room_id: room_id.to_string(),
        event_id: Some(event_id.to_string()),
        reporter: me.0.user_id.to_string(),
        reason: body.reason,
        score: body.score,
        received_ms: now_ms(),
    })?;
    Ok(Json(json!({})))
}

async fn report_room(
    State(s): State<AppState>,
    me: Authed,
    PathParams(room_id): PathParams<String>,
    JsonOrEmpty(body): JsonOrEmpty<ReportBody>,
) -> Result<Json<Value>> {
    let room_id = parse_room_id(&room_id)?;
    if body.reason.is_none() {
        return Err(Error::missing_param("A room report needs a reason"));
    }
    if s.rooms.room(&room_id)?.is_none() {
        return Err(Error::not_found("Room not found"));
    }
    s.rooms.store_report(&ReportRecord {
        room_id: room_id.to_string(),
        event_id: None,
        reporter: me.0.user_id.to_string(),
        reason: body.reason,
        score: None,
        received_ms: now_ms(),
    })?;
    Ok(Json(json!({})))
}
