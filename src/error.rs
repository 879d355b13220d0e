//! The one error type of Roost.
//!
//! Every failure a request can meet ends up as an [`Error`], and every [`Error`] maps to exactly
//! one Matrix `errcode` and HTTP status (client-server API, "Standard error response"). Handlers
//! and services return `Result<T, Error>`; bad input therefore becomes a spec error value, never
//! a panic and never a 500. Internal faults (storage, bugs) are logged with their cause and sent
//! to the client as an opaque `M_UNKNOWN`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Matrix error codes Roost emits. The string forms are the spec's `errcode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Forbidden,
    UnknownToken { soft_logout: bool },
    MissingToken,
    UserLocked,
    UserDeactivated,
    BadJson,
    NotJson,
    NotFound,
    LimitExceeded { retry_after_ms: Option<u64> },
    Unrecognized,
    Unknown,
    Unauthorized,
    UserInUse,
    InvalidUsername,
    Exclusive,
    MissingParam,
    InvalidParam,
    TooLarge,
    GuestAccessForbidden,
    InvalidRoomState,
    UnsupportedRoomVersion,
    Threepid,
    WeakPassword,
    ProfileTooLarge,
    KeyTooLarge,
    RoomInUse,
    BadAlias,
}

impl ErrorKind {
    /// The spec's `errcode` string.
    pub fn errcode(self) -> &'static str {
        match self {
            Self::Forbidden => "M_FORBIDDEN",
            Self::UnknownToken { .. } => "M_UNKNOWN_TOKEN",
            Self::MissingToken => "M_MISSING_TOKEN",
            Self::UserLocked => "M_USER_LOCKED",
            Self::UserDeactivated => "M_USER_DEACTIVATED",
            Self::BadJson => "M_BAD_JSON",
            Self::NotJson => "M_NOT_JSON",
            Self::NotFound => "M_NOT_FOUND",
            Self::LimitExceeded { .. } => "M_LIMIT_EXCEEDED",
            Self::Unrecognized => "M_UNRECOGNIZED",
            Self::Unknown => "M_UNKNOWN",
            Self::Unauthorized => "M_UNAUTHORIZED",
            Self::UserInUse => "M_USER_IN_USE",
            Self::InvalidUsername => "M_INVALID_USERNAME",
            Self::Exclusive => "M_EXCLUSIVE",
            Self::MissingParam => "M_MISSING_PARAM",
            Self::InvalidParam => "M_INVALID_PARAM",
            Self::TooLarge => "M_TOO_LARGE",
            Self::GuestAccessForbidden => "M_GUEST_ACCESS_FORBIDDEN",
            Self::InvalidRoomState => "M_INVALID_ROOM_STATE",
            Self::UnsupportedRoomVersion => "M_UNSUPPORTED_ROOM_VERSION",
            Self::Threepid => "M_THREEPID_NOT_FOUND",
            Self::WeakPassword => "M_WEAK_PASSWORD",
            Self::ProfileTooLarge => "M_PROFILE_TOO_LARGE",
            Self::KeyTooLarge => "M_KEY_TOO_LARGE",
            Self::RoomInUse => "M_ROOM_IN_USE",
            Self::BadAlias => "M_BAD_ALIAS",
        }
    }

    /// The HTTP status the spec pairs with this code.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Forbidden | Self::GuestAccessForbidden | Self::UserDeactivated => {
                StatusCode::FORBIDDEN
            }
            Self::UnknownToken { .. } | Self::MissingToken | Self::Unauthorized => {
                StatusCode::UNAUTHORIZED
            }
            Self::UserLocked => StatusCode::UNAUTHORIZED,
            Self::NotFound | Self::Unrecognized | Self::Threepid => StatusCode::NOT_FOUND,
            Self::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadJson
            | Self::NotJson
            | Self::UserInUse
            | Self::InvalidUsername
            | Self::Exclusive
            | Self::MissingParam
            | Self::InvalidParam
            | Self::InvalidRoomState
            | Self::UnsupportedRoomVersion
            | Self::WeakPassword
            | Self::ProfileTooLarge
            | Self::KeyTooLarge
            | Self::RoomInUse
            | Self::BadAlias => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error that becomes a Matrix error response.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Matrix error with its code, a human-readable message and an optional status override
    /// (some endpoints pair a code with a different status, e.g. 405 `M_UNRECOGNIZED`).
    #[error("{kind:?}: {message}")]
    Matrix {
        kind: ErrorKind,
        message: String,
        status: Option<StatusCode>,
    },
    /// User-interactive authentication is needed (or a stage failed): 401 with the UIA body.
    #[error("user-interactive authentication required")]
    Uiaa(Box<Value>),
    /// A fault inside Roost. The cause is logged; the client sees `M_UNKNOWN`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Matrix {
            kind,
            message: message.into(),
            status: None,
        }
    }

    /// Same code, different HTTP status than the usual pairing.
    pub fn with_status(self, status: StatusCode) -> Self {
        match self {
            Self::Matrix { kind, message, .. } => Self::Matrix {
                kind,
                message,
                status: Some(status),
            },
            other => other,
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadJson, message)
    }
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParam, message)
    }
    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingParam, message)
    }
    pub fn unrecognized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unrecognized, message)
    }

    /// The Matrix error code, for tests and logs.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Matrix { kind, .. } => *kind,
            Self::Uiaa(_) => ErrorKind::Unauthorized,
            Self::Internal(_) => ErrorKind::Unknown,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Self::Matrix {
                kind,
                message,
                status,
            } => {
                let mut body = Map::new();
                body.insert("errcode".into(), kind.errcode().into());
                body.insert("error".into(), message.into());
                match kind {
                    ErrorKind::UnknownToken { soft_logout: true } => {
                        body.insert("soft_logout".into(), true.into());
                    }
                    ErrorKind::LimitExceeded {
                        retry_after_ms: Some(ms),
                    } => {
                        body.insert("retry_after_ms".into(), ms.into());
                    }
                    _ => {}
                }
                let status = status.unwrap_or_else(|| kind.status());
                (status, axum::Json(Value::Object(body))).into_response()
            }
            Self::Uiaa(body) => (StatusCode::UNAUTHORIZED, axum::Json(*body)).into_response(),
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                let body = json!({"errcode": "M_UNKNOWN", "error": "Internal server error"});
                (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
            }
        }
    }
}

impl From<crate::storage::StorageError> for Error {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::internal(e)
    }
}
