//! Server discovery and feature negotiation: `/versions`, `/.well-known/matrix/*`,
//! `/capabilities`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::http::ruma::Ruma;
use crate::services::AppState;

/// Spec versions whose client-server features Roost serves (cumulative versions; features
/// still missing are listed in docs/architecture.md under "Not yet").
const VERSIONS: &[&str] = &[
    "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
    "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15", "v1.16",
];

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/_matrix/client/versions", get(versions))
        .route("/.well-known/matrix/client", get(well_known_client))
        .route("/.well-known/matrix/server", get(well_known_server))
        .route("/_matrix/client/r0/capabilities", get(capabilities))
        .route("/_matrix/client/v3/capabilities", get(capabilities))
}

async fn versions() -> Json<Value> {
    let (flag, value) = super::websocket::unstable_feature();
    Json(json!({ "versions": VERSIONS, "unstable_features": { flag: value } }))
}

async fn well_known_client(State(s): State<AppState>) -> Result<Json<Value>> {
    match &s.config.well_known.client_base_url {
        Some(url) => Ok(Json(json!({ "m.homeserver": { "base_url": url } }))),
        None => Err(Error::not_found("No .well-known/matrix/client configured")),
    }
}

async fn well_known_server(State(s): State<AppState>) -> Result<Json<Value>> {
    match &s.config.well_known.server {
        Some(server) => Ok(Json(json!({ "m.server": server }))),
        None => Err(Error::not_found("No .well-known/matrix/server configured")),
    }
}

async fn capabilities(
    _auth: Ruma<ruma::api::client::discovery::get_capabilities::v3::Request>,
) -> Json<Value> {
    let available: serde_json::Map<String, Value> = (1..=12)
        .map(|v| (v.to_string(), Value::from("stable")))
        .collect();
    Json(json!({
        "capabilities": {
            "m.change_password": { "enabled": true },
            "m.room_versions": { "default": "12", "available": available },
            "m.set_displayname": { "enabled": true },
            "m.set_avatar_url": { "enabled": true },
            "m.3pid_changes": { "enabled": false },
            "m.get_login_token": { "enabled": true },
            "m.profile_fields": { "enabled": true },
        }
    }))
}
