//! The bridge between axum and ruma's typed endpoints.
//!
//! [`Ruma<T>`] extracts any ruma request type: it authenticates per the endpoint's auth scheme,
//! reads the body under the size limit, tells non-JSON (`M_NOT_JSON`) from JSON of the wrong
//! shape (`M_BAD_JSON`), and parses path, query and body with ruma. [`RumaResponse`] turns a
//! ruma response back into HTTP. Handlers therefore see only typed, validated input.

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ruma::api::error::{DeserializationError, FromHttpRequestError};
use ruma::api::{IncomingRequest, IncomingRequestExt, OutgoingResponse, OutgoingResponseExt};

use super::auth::{self, AuthPolicy};
use crate::error::{Error, ErrorKind, Result};
use crate::services::AppState;
use crate::users::Identity;

/// A parsed ruma request plus who sent it.
pub struct Ruma<T> {
    pub body: T,
    /// Present whenever the endpoint requires a token; optional-auth endpoints may have it.
    pub identity: Option<Identity>,
}

impl<T> Ruma<T> {
    /// The authenticated sender, or 401 `M_MISSING_TOKEN`. On endpoints whose auth scheme
    /// requires a token the extractor already refused requests without one; on optional-auth
    /// endpoints (password change, deactivation) this is where a token becomes required.
    pub fn sender(&self) -> Result<&Identity> {
        self.identity
            .as_ref()
            .ok_or_else(|| Error::new(ErrorKind::MissingToken, "Missing access token"))
    }
}

impl<T> std::ops::Deref for Ruma<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.body
    }
}

/// Read a whole body, refusing it with 413 `M_TOO_LARGE` past `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if err.is::<http_body_util::LengthLimitError>() {
                return Error::new(ErrorKind::TooLarge, "Request body too large");
            }
            source = err.source();
        }
        Error::bad_json(format!("Could not read request body: {e}"))
    })
}

/// A non-empty body that is not JSON at all is `M_NOT_JSON`, before any typed parsing.
pub fn ensure_json(bytes: &[u8]) -> Result<()> {
    if !bytes.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Err(Error::new(ErrorKind::NotJson, "Content not JSON."));
    }
    Ok(())
}

fn map_parse_error(e: FromHttpRequestError) -> Error {
    match e {
        FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => {
            Error::bad_json(e.to_string())
        }
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => {
            let message = e.to_string();
            if message.starts_with("missing field") {
                Error::missing_param(message)
            } else {
                Error::invalid_param(message)
            }
        }
        FromHttpRequestError::Deserialization(e) => Error::invalid_param(e.to_string()),
        FromHttpRequestError::MethodMismatch { .. } => Error::unrecognized("Unrecognized request")
            .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED),
        other => Error::bad_json(other.to_string()),
    }
}

/// Parse with ruma. Parsing is pure, so a panic inside it (ruma's `LoginInfo` indexes a map
/// without checking for `type`) leaves nothing half-done: it is answered as the bad input it is.
fn parse<T: IncomingRequest>(
    parts: &axum::http::request::Parts,
    body: &[u8],
    params: &[&str],
) -> Result<T> {
    let mut request = axum::http::Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.headers_mut() = parts.headers.clone();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        T::try_from_http_request(request, params)
    })) {
        Ok(result) => result.map_err(map_parse_error),
        Err(_) => Err(Error::bad_json("Malformed request body")),
    }
}

/// An empty body is not JSON, for endpoints that take one. Ruma reads an empty body as `{}`,
/// so ask it whether the endpoint has a body at all: a body-less request type ignores the body
/// and parses even with `null`.
fn refuse_empty_body<T: IncomingRequest>(
    parts: &axum::http::request::Parts,
    params: &[&str],
) -> Result<()> {
    let takes_body = matches!(
        parts.method,
        axum::http::Method::POST | axum::http::Method::PUT
    );
    if takes_body && parse::<T>(parts, b"null", params).is_err() {
        return Err(Error::new(ErrorKind::NotJson, "Content not JSON."));
    }
    Ok(())
}

impl<T, S> FromRequest<S> for Ruma<T>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: AuthPolicy,
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let services = AppState::from_ref(state);
        let (mut parts, body) = req.into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map_err(|e| Error::invalid_param(e.body_text()))?;
        let params: Vec<String> = params.iter().map(|(_, v)| v.to_owned()).collect();
        let params: Vec<&str> = params.iter().map(String::as_str).collect();

        let identity = if <T::Authentication as AuthPolicy>::ACCEPTS_TOKEN {
            auth::authenticate(
                &services,
                &parts.headers,
                <T::Authentication as AuthPolicy>::REQUIRED,
            )?
        } else {
            None
        };

        let bytes = read_body(body, services.config.limits.max_request_bytes).await?;
        ensure_json(&bytes)?;
        if bytes.is_empty() {
            refuse_empty_body::<T>(&parts, &params)?;
        }
        let body = parse::<T>(&parts, &bytes, &params)?;
        Ok(Self { body, identity })
    }
}

/// Wraps a ruma response so handlers can return it.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<bytes::BytesMut>() {
            Ok(res) => res.map(|b| Body::from(b.freeze())).into_response(),
            Err(e) => Error::internal(format!("serialising response: {e}")).into_response(),
        }
    }
}

impl<T> From<T> for RumaResponse<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

/// What ruma-typed handlers return.
pub type RumaResult<T> = Result<RumaResponse<T>>;
