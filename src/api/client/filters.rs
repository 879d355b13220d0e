//! Filtering (client-server API §Filtering): upload and fetch sync filters.
//!
//! Served without ruma types so that a filter is returned exactly as it was uploaded (ruma's
//! `FilterDefinition` drops fields at their default values).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::PREFIXES;
use crate::error::{Error, Result};
use crate::http::auth::Authed;
use crate::http::json::{JsonBody, PathParams};
use crate::services::AppState;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for prefix in PREFIXES {
        router = router
            .route(&format!("{prefix}/user/{{user_id}}/filter"), post(create))
            .route(
                &format!("{prefix}/user/{{user_id}}/filter/{{filter_id}}"),
                get(get_one),
            );
    }
    router
}

async fn create(
    State(s): State<AppState>,
    me: Authed,
    PathParams(user_id): PathParams<String>,
    JsonBody(filter): JsonBody<Value>,
) -> Result<Json<Value>> {
    let user_id = me.own_user(&user_id)?;
    let filter_id = s.filters.create(&user_id, &filter)?;
    Ok(Json(json!({ "filter_id": filter_id })))
}

async fn get_one(
    State(s): State<AppState>,
    me: Authed,
    PathParams((user_id, filter_id)): PathParams<(String, String)>,
) -> Result<Json<Value>> {
    let user_id = me.own_user(&user_id)?;
    let filter = s
        .filters
        .get(&user_id, &filter_id)?
        .ok_or_else(|| Error::not_found("Unknown filter"))?;
    Ok(Json(filter))
}
