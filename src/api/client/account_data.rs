//! Client config (client-server API §Client config): account data, global and per room.
//!
//! Served without ruma types: the content is arbitrary JSON and the error rules (405 for
//! server-managed types) live in [`crate::users::account_data`].

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::{OwnedRoomId, RoomId};
use serde_json::{Map, Value};

use super::PREFIXES;
use crate::error::{Error, Result};
use crate::http::auth::Authed;
use crate::http::json::{JsonBody, PathParams};
use crate::services::AppState;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for prefix in PREFIXES {
        router = router
            .route(
                &format!("{prefix}/user/{{user_id}}/account_data/{{type}}"),
                get(get_global).put(set_global),
            )
            .route(
                &format!("{prefix}/user/{{user_id}}/rooms/{{room_id}}/account_data/{{type}}"),
                get(get_room).put(set_room),
            );
    }
    router
}

fn room(raw: &str) -> Result<OwnedRoomId> {
    RoomId::parse(raw).map_err(|_| Error::invalid_param("Invalid room ID"))
}

fn found(value: Option<Value>) -> Result<Json<Value>> {
    value
        .map(Json)
        .ok_or_else(|| Error::not_found("Account data not found"))
}

async fn get_global(
    State(s): State<AppState>,
    me: Authed,
    PathParams((user_id, data_type)): PathParams<(String, String)>,
) -> Result<Json<Value>> {
    me.own_user(&user_id)?;
    found(s.account_data.get(&me.0.user_id, None, &data_type)?)
}

async fn set_global(
    State(s): State<AppState>,
    me: Authed,
    PathParams((user_id, data_type)): PathParams<(String, String)>,
    JsonBody(content): JsonBody<Value>,
) -> Result<Json<Map<String, Value>>> {
    me.own_user(&user_id)?;
    s.account_data
        .set_by_client(&me.0.user_id, None, &data_type, content)?;
    Ok(Json(Map::new()))
}

async fn get_room(
    State(s): State<AppState>,
    me: Authed,
    PathParams((user_id, room_id, data_type)): PathParams<(String, String, String)>,
) -> Result<Json<Value>> {
    me.own_user(&user_id)?;
    let room_id = room(&room_id)?;
    found(
        s.account_data
            .get(&me.0.user_id, Some(&room_id), &data_type)?,
    )
}

async fn set_room(
    State(s): State<AppState>,
    me: Authed,
    PathParams((user_id, room_id, data_type)): PathParams<(String, String, String)>,
    JsonBody(content): JsonBody<Value>,
) -> Result<Json<Map<String, Value>>> {
    me.own_user(&user_id)?;
    let room_id = room(&room_id)?;
    s.account_data
        .set_by_client(&me.0.user_id, Some(&room_id), &data_type, content)?;
    Ok(Json(Map::new()))
}
