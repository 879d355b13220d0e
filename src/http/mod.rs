//! HTTP: the router, its tower layers and the extractors handlers use.
//!
//! Layers, outermost first: panic catcher (500 `M_UNKNOWN`, logged), CORS (browser clients,
//! incl. preflight), request tracing. Unknown paths get 404 `M_UNRECOGNIZED`, known paths with
//! the wrong method 405 `M_UNRECOGNIZED`.

pub mod auth;
pub mod json;
pub mod peer;
pub mod ruma;
pub mod websocket;

use std::any::Any;

use ::ruma::api::IncomingRequest;
use ::ruma::api::path_builder::PathBuilder;
use axum::Router;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any as CorsAny, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::error::Error;
use crate::services::AppState;

/// Register `handler` for every stable path of the ruma endpoint `T`, with `T`'s method.
pub fn ruma_route<T, H, M>(mut router: Router<AppState>, handler: H) -> Router<AppState>
where
    T: IncomingRequest,
    H: Handler<M, AppState>,
    M: 'static,
{
    let filter = MethodFilter::try_from(T::METHOD).expect("ruma endpoints use standard methods");
    for path in T::PATH_BUILDER
        .all_paths()
        .filter(|p| !p.contains("/unstable/"))
    {
        router = router.route(path, on(filter, handler.clone()));
    }
    router
}

/// The client listener's application: client, admin and the public federation endpoints
/// (server keys, version), with the layers.
pub fn app(services: AppState) -> Router {
    let routes = crate::api::client::routes(Router::new())
        .merge(crate::api::admin::routes(Router::new()))
        .merge(crate::api::federation::routes(Router::new()));
    routes
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(services)
        .layer(TraceLayer::new_for_http())
        .layer(cors())
        .layer(CatchPanicLayer::custom(panic_response))
}

/// CORS as the spec recommends for the client-server API.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(CorsAny)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::HeaderName::from_static("x-requested-with"),
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
        ])
}

async fn unrecognized(method: Method) -> Response {
    if method == Method::OPTIONS {
        // Preflight on a path we don't know: CORS headers come from the layer.
        return StatusCode::OK.into_response();
    }
    Error::unrecognized("Unrecognized request").into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    if method == Method::OPTIONS {
        return StatusCode::OK.into_response();
    }
    Error::unrecognized("Unrecognized request")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
        .into_response()
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(detail, "handler panicked");
    let mut res = Error::internal("handler panicked").into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The federation listener's application: the server-server API only.
pub fn federation_app(services: AppState) -> Router {
    crate::api::federation::routes(Router::new())
        .fallback(unrecognized)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(services)
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(panic_response))
}

/// The client's address, when the server was started with connect info (always, in
/// `server::run`); for devices' `last_seen_ip`. A reverse proxy's address until
/// `X-Forwarded-For` handling lands.
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<peer::Peer>>();
        Ok(Self(peer.map(|p| p.0.addr.ip().to_string())))
    }
}
