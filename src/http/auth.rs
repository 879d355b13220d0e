//! Access-token authentication: one place that turns a request's token into an [`Identity`].
//!
//! The token comes from `Authorization: Bearer …` only; the `access_token` query parameter was
//! removed in spec v1.16 and is ignored.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use ruma::api::auth_scheme::{
    AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional, NoAccessToken,
    NoAuthentication,
};

use crate::error::{Error, ErrorKind, Result};
use crate::services::Services;
use crate::users::Identity;

/// Whether an endpoint's ruma auth scheme needs an access token.
pub trait AuthPolicy {
    const REQUIRED: bool;
    const ACCEPTS_TOKEN: bool;
}

impl AuthPolicy for AccessToken {
    const REQUIRED: bool = true;
    const ACCEPTS_TOKEN: bool = true;
}
impl AuthPolicy for AccessTokenOptional {
    const REQUIRED: bool = false;
    const ACCEPTS_TOKEN: bool = true;
}
impl AuthPolicy for AppserviceToken {
    const REQUIRED: bool = true;
    const ACCEPTS_TOKEN: bool = true;
}
impl AuthPolicy for AppserviceTokenOptional {
    const REQUIRED: bool = false;
    const ACCEPTS_TOKEN: bool = true;
}
impl AuthPolicy for NoAuthentication {
    const REQUIRED: bool = false;
    const ACCEPTS_TOKEN: bool = false;
}
impl AuthPolicy for NoAccessToken {
    const REQUIRED: bool = false;
    const ACCEPTS_TOKEN: bool = false;
}

/// The bearer token of a request, if it sent one. A malformed header counts as an unknown
/// token rather than a missing one: the client did try to authenticate.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| unknown())?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(unknown()),
    }
}

fn unknown() -> Error {
    Error::new(
        ErrorKind::UnknownToken { soft_logout: false },
        "Invalid Authorization header",
    )
}

/// Authenticate per policy: `Ok(None)` when no token was needed and none was sent.
pub fn authenticate(
    services: &Services,
    headers: &HeaderMap,
    required: bool,
) -> Result<Option<Identity>> {
    match bearer_token(headers)? {
        Some(token) => services.sessions.authenticate(token).map(Some),
        None if required => Err(Error::new(ErrorKind::MissingToken, "Missing access token")),
        None => Ok(None),
    }
}

/// Require an authenticated admin (for the admin API).
pub fn require_admin(services: &Services, headers: &HeaderMap) -> Result<Identity> {
    let identity = authenticate(services, headers, true)?.expect("required token");
    let admin = services
        .accounts
        .get(&identity.user_id)?
        .is_some_and(|u| u.admin);
    if !admin {
        return Err(Error::forbidden("You are not a server admin"));
    }
    Ok(identity)
}

/// Extractor for handlers without a ruma type: the authenticated sender, required.
pub struct Authed(pub Identity);

impl<S> axum::extract::FromRequestParts<S> for Authed
where
    S: Send + Sync,
    crate::services::AppState: axum::extract::FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        let services = <crate::services::AppState as axum::extract::FromRef<S>>::from_ref(state);
        let identity = authenticate(&services, &parts.headers, true)?.expect("required token");
        Ok(Self(identity))
    }
}

impl Authed {
    /// The user id named in a path, which must be the sender's own: 400 `M_INVALID_PARAM` if it
    /// is not a user id, 403 `M_FORBIDDEN` if it is someone else's.
    pub fn own_user(&self, raw: &str) -> Result<ruma::OwnedUserId> {
        let user_id =
            ruma::UserId::parse(raw).map_err(|_| Error::invalid_param("Invalid user ID"))?;
        if self.0.user_id != user_id {
            return Err(Error::forbidden("Cannot act on behalf of another user"));
        }
        Ok(user_id)
    }
}

/// Extractor: the sender if a token was sent (and it is valid), else none.
pub struct MaybeAuthed(pub Option<Identity>);

impl<S> axum::extract::FromRequestParts<S> for MaybeAuthed
where
    S: Send + Sync,
    crate::services::AppState: axum::extract::FromRef<S>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        let services = <crate::services::AppState as axum::extract::FromRef<S>>::from_ref(state);
        Ok(Self(authenticate(&services, &parts.headers, false)?))
    }
}
