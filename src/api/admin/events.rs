//! Roost's own admin API for operators: the raw signed PDU of an event, as federation would
//! send it (for debugging and for verifying signatures with independent tools).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::http::auth::require_admin;
use crate::http::json::PathParams;
use crate::services::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/_roost/admin/v1/events/{event_id}/pdu", get(pdu))
}

async fn pdu(
    State(s): State<AppState>,
    headers: HeaderMap,
    PathParams(event_id): PathParams<String>,
) -> Result<Json<Value>> {
    require_admin(&s, &headers)?;
    let not_found = || Error::not_found("Event not found");
    let event_id = ruma::OwnedEventId::try_from(event_id.as_str()).map_err(|_| not_found())?;
    let pdu = s.rooms.pdu(&event_id)?.ok_or_else(not_found)?;
    let room = s.rooms.room(&pdu.room_id)?.ok_or_else(not_found)?;
    Ok(Json(json!({
        "event_id": pdu.event_id,
        "room_id": pdu.room_id,
        "room_version": room.version,
        "pdu": &*pdu.json,
    })))
}
