//! Registration (client-server API §Account registration): `/register` with UIA,
//! `/register/available`, registration-token validity.

use axum::Router;
use axum::extract::State;
use ruma::api::client::account::{
    check_registration_token_validity, get_username_availability, register,
};
use std::time::Duration;

use crate::config::RegistrationMode;
use crate::error::{Error, ErrorKind};
use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Result;
use crate::http::ruma::{Ruma, RumaResponse, RumaResult};
use crate::http::ruma_route;
use crate::services::AppState;
use crate::users::uiaa::{DUMMY, Purpose, REGISTRATION_TOKEN};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = ruma_route::<register::v3::Request, _, _>(router, register);
    let router = ruma_route::<get_username_availability::v3::Request, _, _>(router, available);
    ruma_route::<check_registration_token_validity::v1::Request, _, _>(router, token_validity)
}

async fn register(
    State(s): State<AppState>,
    ip: crate::http::ClientIp,
    req: Ruma<register::v3::Request>,
) -> Result<Response> {
    let req = req.body;
    if req.kind == register::RegistrationKind::Guest {
        return Err(Error::new(
            ErrorKind::GuestAccessForbidden,
            "Guest access is disabled",
        ));
    }
    let flows: &[&[&str]] = match s.config.registration.mode {
        RegistrationMode::Disabled => {
            return Err(Error::forbidden("Registration has been disabled"));
        }
        RegistrationMode::Token => &[&[REGISTRATION_TOKEN]],
        RegistrationMode::Open => &[&[DUMMY]],
    };
    // A taken or malformed name fails before the client goes through UIA.
    if let Some(name) = &req.username {
        s.accounts.validate_localpart(name)?;
        if !s.accounts.is_available(name)? {
            return Err(Error::new(ErrorKind::UserInUse, "User ID already taken"));
        }
    }
    if let Some(password) = &req.password {
        check_password_policy(&s, password)?;
    }

    let session = s
        .uiaa
        .authenticate(req.auth.as_ref(), flows, Purpose::Register, None)
        .await?;

    let localpart = match req.username {
        Some(name) => name,
        None => s.accounts.generate_localpart()?,
    };
    let user_id =
        crate::users::create_user(&s.accounts, &s.profiles, &localpart, req.password, false)
            .await?;
    if let Some(token) = &session.registration_token {
        s.registration_tokens.complete(token)?;
    }
    tracing::info!(%user_id, "registered");

    if req.inhibit_login {
        // No device and no token: the spec has the response carry only the user id (ruma's
        // response type would add `device_id: null`).
        return Ok(Json(json!({ "user_id": user_id })).into_response());
    }
    let tokens = s.sessions.login(
        &user_id,
        req.device_id.as_deref().map(|d| d.as_str()),
        req.initial_device_display_name,
        req.refresh_token,
        ip.0,
    )?;
    let mut res = register::v3::Response::new(user_id);
    res.access_token = Some(tokens.access_token);
    res.device_id = Some(tokens.device_id);
    res.refresh_token = tokens.refresh_token;
    res.expires_in = tokens.expires_in_ms.map(Duration::from_millis);
    Ok(RumaResponse(res).into_response())
}

/// Refuse passwords below the configured minimum length.
pub(crate) fn check_password_policy(s: &AppState, password: &str) -> crate::error::Result<()> {
    let min = s.config.registration.password_min_length;
    if password.chars().count() < min {
        return Err(Error::new(
            ErrorKind::WeakPassword,
            format!("Password must be at least {min} characters"),
        ));
    }
    Ok(())
}

async fn available(
    State(s): State<AppState>,
    req: Ruma<get_username_availability::v3::Request>,
) -> RumaResult<get_username_availability::v3::Response> {
    if s.config.registration.mode == RegistrationMode::Disabled {
        return Err(Error::forbidden("Registration has been disabled"));
    }
    s.accounts.validate_localpart(&req.username)?;
    if !s.accounts.is_available(&req.username)? {
        return Err(Error::new(ErrorKind::UserInUse, "User ID already taken"));
    }
    Ok(get_username_availability::v3::Response::new(true).into())
}

async fn token_validity(
    State(s): State<AppState>,
    req: Ruma<check_registration_token_validity::v1::Request>,
) -> RumaResult<check_registration_token_validity::v1::Response> {
    if s.config.registration.mode != RegistrationMode::Token {
        return Err(Error::forbidden(
            "Registration tokens are not in use on this server",
        ));
    }
    let valid = s.registration_tokens.is_valid(&req.token)?;
    Ok(check_registration_token_validity::v1::Response::new(valid).into())
}
