//! Registration-token management (Synapse-compatible): create, list, get, delete. Admins only.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::http::auth::require_admin;
use crate::http::json::{JsonBody, PathParams};
use crate::services::AppState;
use crate::users::tables::RegistrationTokenRecord;

const BASE: &str = "/_synapse/admin/v1/registration_tokens";

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route(BASE, get(list))
        .route(&format!("{BASE}/new"), post(create))
        .route(&format!("{BASE}/{{token}}"), get(get_one).delete(delete))
}

fn to_json(token: &str, r: &RegistrationTokenRecord) -> Value {
    json!({
        "token": token,
        "uses_allowed": r.uses_allowed,
        "pending": r.pending,
        "completed": r.completed,
        "expiry_time": r.expiry_time_ms,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    token: Option<String>,
    uses_allowed: Option<u64>,
    expiry_time: Option<u64>,
    length: Option<usize>,
}

async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewToken>,
) -> Result<Json<Value>> {
    require_admin(&s, &headers)?;
    let (token, record) = s.registration_tokens.create(
        body.token,
        body.length.unwrap_or(16),
        body.uses_allowed,
        body.expiry_time,
    )?;
    Ok(Json(to_json(&token, &record)))
}

async fn list(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>> {
    require_admin(&s, &headers)?;
    let tokens: Vec<Value> = s
        .registration_tokens
        .list()?
        .iter()
        .map(|(t, r)| to_json(t, r))
        .collect();
    Ok(Json(json!({ "registration_tokens": tokens })))
}

async fn get_one(
    State(s): State<AppState>,
    headers: HeaderMap,
    PathParams(token): PathParams<String>,
) -> Result<Json<Value>> {
    require_admin(&s, &headers)?;
    let record = s
        .registration_tokens
        .get(&token)?
        .ok_or_else(|| Error::not_found("No such registration token"))?;
    Ok(Json(to_json(&token, &record)))
}

async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    PathParams(token): PathParams<String>,
) -> Result<Json<Value>> {
    require_admin(&s, &headers)?;
    if !s.registration_tokens.delete(&token)? {
        return Err(Error::not_found("No such registration token"));
    }
    Ok(Json(json!({})))
}
