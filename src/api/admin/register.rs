//! Shared-secret registration: `GET /_synapse/admin/v1/register` hands out a single-use nonce;
//! `POST` creates the user if `mac` is the hex HMAC-SHA1, keyed with the shared secret, of
//! `nonce \0 username \0 password \0 (admin|notadmin)` (plus `\0 user_type` when given).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;

use crate::error::{Error, ErrorKind, Result};
use crate::http::json::JsonBody;
use crate::services::AppState;
use crate::storage::Batch;
use crate::users::tables::ADMIN_NONCES;
use crate::util::{now_ms, random_alphanumeric};

/// How long a nonce stays usable.
const NONCE_LIFETIME_MS: u64 = 60_000;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/_synapse/admin/v1/register", get(nonce).post(register))
}

fn shared_secret(s: &AppState) -> Result<&str> {
    s.config
        .registration
        .shared_secret
        .as_deref()
        .ok_or_else(|| Error::bad_json("Shared secret registration is not enabled"))
}

async fn nonce(State(s): State<AppState>) -> Result<Json<Value>> {
    shared_secret(&s)?;
    let nonce = random_alphanumeric(32);
    let mut batch = Batch::new();
    ADMIN_NONCES.put(&mut batch, nonce.as_bytes(), &now_ms());
    s.db.write(batch)?;
    Ok(Json(json!({ "nonce": nonce })))
}

#[derive(Deserialize)]
struct RegisterBody {
    nonce: String,
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
    displayname: Option<String>,
    user_type: Option<String>,
    mac: String,
}

fn expected_mac(secret: &str, body: &RegisterBody) -> Hmac<Sha1> {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body.nonce.as_bytes());
    mac.update(b"\0");
    mac.update(body.username.as_bytes());
    mac.update(b"\0");
    mac.update(body.password.as_bytes());
    mac.update(b"\0");
    mac.update(if body.admin { b"admin" } else { b"notadmin" });
    if let Some(user_type) = &body.user_type {
        mac.update(b"\0");
        mac.update(user_type.as_bytes());
    }
    mac
}

async fn register(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<Json<Value>> {
    let secret = shared_secret(&s)?;
    // The nonce is used up whatever happens next, so a MAC can't be guessed against it twice.
    let issued = ADMIN_NONCES.get(&*s.db, body.nonce.as_bytes())?;
    let mut batch = Batch::new();
    ADMIN_NONCES.delete(&mut batch, body.nonce.as_bytes());
    s.db.write(batch)?;
    if issued.is_none_or(|t| now_ms() >= t + NONCE_LIFETIME_MS) {
        return Err(Error::new(ErrorKind::Unknown, "Unrecognised nonce")
            .with_status(axum::http::StatusCode::BAD_REQUEST));
    }
    let given = hex::decode(&body.mac).map_err(|_| Error::forbidden("HMAC incorrect"))?;
    if expected_mac(secret, &body).verify_slice(&given).is_err() {
        return Err(Error::forbidden("HMAC incorrect"));
    }
    let localpart = body.username.to_lowercase();
    let user_id = crate::users::create_user(
        &s.accounts,
        &s.profiles,
        &localpart,
        Some(body.password),
        body.admin,
    )
    .await?;
    if let Some(name) = body.displayname {
        s.profiles
            .set(&user_id, "displayname", Value::String(name))?;
    }
    let tokens = s.sessions.login(&user_id, None, None, false, None)?;
    tracing::info!(%user_id, admin = body.admin, "registered through shared secret");
    Ok(Json(json!({
        "user_id": user_id,
        "access_token": tokens.access_token,
        "device_id": tokens.device_id,
        "home_server": s.config.server_name,
    })))
}
