//! Profiles (client-server API §Profiles, v1.16 fields): the whole profile, and any field by
//! name (`displayname`, `avatar_url`, `m.tz`, namespaced custom keys).
//!
//! Served without ruma types because the field name is open-ended; the rules live in
//! [`crate::users::profile`].

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::{OwnedUserId, UserId};
use serde_json::{Map, Value};

use super::PREFIXES;
use crate::error::{Error, Result};
use crate::http::auth::{Authed, MaybeAuthed};
use crate::http::json::{JsonBody, PathParams};
use crate::services::AppState;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for prefix in PREFIXES {
        router = router
            .route(&format!("{prefix}/profile/{{user_id}}"), get(get_profile))
            .route(
                &format!("{prefix}/profile/{{user_id}}/{{field}}"),
                get(get_field).put(set_field).delete(delete_field),
            );
    }
    router
}

fn parse_user(raw: &str) -> Result<OwnedUserId> {
    UserId::parse(raw).map_err(|_| Error::invalid_param("Invalid user ID"))
}

/// A local user that exists (deactivated ones included: their profile is just empty).
fn existing_local_user(s: &AppState, raw: &str) -> Result<OwnedUserId> {
    let user_id = parse_user(raw)?;
    if s.accounts.get(&user_id)?.is_none() {
        return Err(Error::not_found("Profile not found"));
    }
    Ok(user_id)
}

async fn get_profile(
    State(s): State<AppState>,
    _auth: MaybeAuthed,
    PathParams(user_id): PathParams<String>,
) -> Result<Json<Map<String, Value>>> {
    let user_id = existing_local_user(&s, &user_id)?;
    Ok(Json(s.profiles.get_all(&user_id)?))
}

async fn get_field(
    State(s): State<AppState>,
    _auth: MaybeAuthed,
    PathParams((user_id, field)): PathParams<(String, String)>,
) -> Result<Json<Map<String, Value>>> {
    let user_id = existing_local_user(&s, &user_id)?;
    let value = s
        .profiles
        .get(&user_id, &field)?
        .ok_or_else(|| Error::not_found("Profile field not found"))?;
    Ok(Json(Map::from_iter([(field, value)])))
}

async fn set_field(
    State(s): State<AppState>,
    me: Authed,
    PathParams((user_id, field)): PathParams<(String, String)>,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> Result<Json<Map<String, Value>>> {
    let user_id = me.own_user(&user_id)?;
    let value = body
        .remove(&field)
        .ok_or_else(|| Error::missing_param(format!("Missing '{field}' in body")))?;
    s.profiles.set(&user_id, &field, value)?;
    Ok(Json(Map::new()))
}

async fn delete_field(
    State(s): State<AppState>,
    me: Authed,
    PathParams((user_id, field)): PathParams<(String, String)>,
) -> Result<Json<Map<String, Value>>> {
    let user_id = me.own_user(&user_id)?;
    s.profiles.delete(&user_id, &field)?;
    Ok(Json(Map::new()))
}
