//! Sessions (client-server API §Login, §Logout, §Refreshing access tokens): `/login`,
//! `/login/get_token`, `/refresh`, `/logout`, `/logout/all`, `/account/whoami`.

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use ruma::api::client::account::whoami;
use ruma::api::client::session::{get_login_token, login, logout, logout_all, refresh_token};
use ruma::api::client::uiaa::UserIdentifier;
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind};
use crate::http::ruma::{Ruma, RumaResult};
use crate::http::ruma_route;
use crate::services::AppState;
use crate::users::uiaa::{PASSWORD, Purpose};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = router
        .route("/_matrix/client/r0/login", get(login_types))
        .route("/_matrix/client/v3/login", get(login_types));
    let router = ruma_route::<login::v3::Request, _, _>(router, login);
    let router = ruma_route::<get_login_token::v1::Request, _, _>(router, get_token);
    let router = ruma_route::<refresh_token::v3::Request, _, _>(router, refresh);
    let router = ruma_route::<logout::v3::Request, _, _>(router, logout);
    let router = ruma_route::<logout_all::v3::Request, _, _>(router, logout_all);
    ruma_route::<whoami::v3::Request, _, _>(router, whoami)
}

async fn login_types() -> Json<Value> {
    Json(json!({
        "flows": [
            { "type": "m.login.password" },
            { "type": "m.login.token", "get_login_token": true },
        ]
    }))
}

fn invalid_login() -> Error {
    Error::forbidden("Invalid username or password")
}

async fn login(
    State(s): State<AppState>,
    ip: crate::http::ClientIp,
    req: Ruma<login::v3::Request>,
) -> RumaResult<login::v3::Response> {
    let req = req.body;
    let user_id = match &req.login_info {
        login::v3::LoginInfo::Password(p) => {
            // `user` is the pre-r0.4 form; clients such as older bots still send it.
            #[allow(deprecated)]
            let name = match (&p.identifier, &p.user) {
                (Some(UserIdentifier::Matrix(m)), _) => m.user.clone(),
                // Roost stores no third-party ids, so none can match.
                (
                    Some(
                        UserIdentifier::Email(_)
                        | UserIdentifier::Msisdn(_)
                        | UserIdentifier::PhoneNumber(_),
                    ),
                    _,
                ) => return Err(Error::forbidden("Unknown third-party identifier")),
                (Some(_), _) => {
                    return Err(
                        Error::new(ErrorKind::Unknown, "Unknown login identifier type")
                            .with_status(axum::http::StatusCode::BAD_REQUEST),
                    );
                }
                (None, Some(user)) => user.clone(),
                (None, None) => return Err(Error::missing_param("Missing identifier")),
            };
            let user_id = s.accounts.resolve_local(&name).ok_or_else(invalid_login)?;
            if let Some(record) = s.accounts.get(&user_id)?
                && record.deactivated
            {
                return Err(Error::new(
                    ErrorKind::UserDeactivated,
                    "This account has been deactivated",
                ));
            }
            if !s.accounts.check_password(&user_id, &p.password).await? {
                return Err(invalid_login());
            }
            user_id
        }
        login::v3::LoginInfo::Token(t) => s.sessions.consume_login_token(&t.token)?,
        _ => {
            return Err(Error::new(ErrorKind::Unknown, "Unknown login type")
                .with_status(axum::http::StatusCode::BAD_REQUEST));
        }
    };
    let tokens = s.sessions.login(
        &user_id,
        req.device_id.as_deref().map(|d| d.as_str()),
        req.initial_device_display_name,
        req.refresh_token,
        ip.0,
    )?;
    let mut res = login::v3::Response::new(user_id, tokens.access_token, tokens.device_id);
    res.refresh_token = tokens.refresh_token;
    res.expires_in = tokens.expires_in_ms.map(Duration::from_millis);
    Ok(res.into())
}

async fn get_token(
    State(s): State<AppState>,
    req: Ruma<get_login_token::v1::Request>,
) -> RumaResult<get_login_token::v1::Response> {
    let user = &req.sender()?.user_id;
    s.uiaa
        .authenticate(
            req.auth.as_ref(),
            &[&[PASSWORD]],
            Purpose::GetLoginToken,
            Some(user),
        )
        .await?;
    let (token, lifetime_ms) = s.sessions.create_login_token(user)?;
    Ok(get_login_token::v1::Response::new(Duration::from_millis(lifetime_ms), token).into())
}

async fn refresh(
    State(s): State<AppState>,
    req: Ruma<refresh_token::v3::Request>,
) -> RumaResult<refresh_token::v3::Response> {
    let tokens = s.sessions.refresh(&req.refresh_token)?;
    let mut res = refresh_token::v3::Response::new(tokens.access_token);
    res.refresh_token = tokens.refresh_token;
    res.expires_in_ms = tokens.expires_in_ms.map(Duration::from_millis);
    Ok(res.into())
}

async fn logout(
    State(s): State<AppState>,
    req: Ruma<logout::v3::Request>,
) -> RumaResult<logout::v3::Response> {
    let me = req.sender()?;
    s.sessions
        .delete_devices(&me.user_id, &[me.device_id.to_string()])?;
    Ok(logout::v3::Response::new().into())
}

async fn logout_all(
    State(s): State<AppState>,
    req: Ruma<logout_all::v3::Request>,
) -> RumaResult<logout_all::v3::Response> {
    let user_id = req.sender()?.user_id.clone();
    let mut batch = crate::storage::Batch::new();
    s.sessions
        .delete_all_devices_into(&user_id, None, &mut batch)?;
    s.sessions.commit_removal(batch, &user_id)?;
    Ok(logout_all::v3::Response::new().into())
}

async fn whoami(req: Ruma<whoami::v3::Request>) -> RumaResult<whoami::v3::Response> {
    let me = req.sender()?;
    let mut res = whoami::v3::Response::new(me.user_id.clone(), false);
    res.device_id = Some(me.device_id.clone());
    Ok(res.into())
}
