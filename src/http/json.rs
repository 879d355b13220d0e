//! A JSON body extractor for the few endpoints without a ruma type (admin API, profile fields):
//! the same size limit and the same `M_NOT_JSON` / `M_BAD_JSON` split as [`super::ruma::Ruma`].

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;

use super::ruma::{ensure_json, read_body};
use crate::error::{Error, Result};
use crate::services::AppState;

pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let services = AppState::from_ref(state);
        let bytes = read_body(req.into_body(), services.config.limits.max_request_bytes).await?;
        if bytes.is_empty() {
            return Err(Error::new(
                crate::error::ErrorKind::NotJson,
                "Content not JSON.",
            ));
        }
        parse(&bytes).map(JsonBody)
    }
}

/// A body that must be JSON (`M_NOT_JSON`) of the expected shape (`M_BAD_JSON`).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    ensure_json(bytes)?;
    serde_json::from_slice(bytes).map_err(|e| Error::bad_json(e.to_string()))
}

/// Path parameters for handlers without a ruma type; a bad parameter is 400 `M_INVALID_PARAM`.
pub struct PathParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        <axum::extract::Path<T> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| Error::invalid_param(e.body_text()))
    }
}

/// A JSON body that may be absent: an empty body gives `T::default()` (for endpoints whose
/// fields are all optional, such as `/join` or `/leave`). A non-empty body follows the
/// [`JsonBody`] rules.
pub struct JsonOrEmpty<T>(pub T);

impl<T, S> FromRequest<S> for JsonOrEmpty<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let services = AppState::from_ref(state);
        let bytes = read_body(req.into_body(), services.config.limits.max_request_bytes).await?;
        if bytes.is_empty() {
            return Ok(Self(T::default()));
        }
        parse(&bytes).map(JsonOrEmpty)
    }
}

/// Query parameters for handlers without a ruma type; a bad parameter is 400 `M_INVALID_PARAM`.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        <axum::extract::Query<T> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| Error::invalid_param(e.body_text()))
    }
}
