//! The server-server API. Today: the server's signing keys and the version endpoint; the rest
//! of federation (X-Matrix, transactions, joins) lands here.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::Result;
use crate::services::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/_matrix/key/v2/server", get(server_keys))
        .route("/_matrix/key/v2/server/{key_id}", get(server_keys))
        .route("/_matrix/federation/v1/version", get(version))
}

/// `GET /_matrix/key/v2/server`: our verify key, self-signed, with `valid_until_ts`.
async fn server_keys(State(s): State<AppState>) -> Result<Json<Value>> {
    Ok(Json(s.server_key.server_keys_response()?))
}

async fn version() -> Json<Value> {
    Json(json!({ "server": { "name": "Roost", "version": env!("CARGO_PKG_VERSION") } }))
}
