//! Filtering (client-server API §Filtering): upload and fetch sync filters.

use axum::Router;
use axum::extract::State;
use ruma::api::client::filter::{create_filter, get_filter};

use crate::error::Error;
use crate::http::ruma::{Ruma, RumaResult};
use crate::http::ruma_route;
use crate::services::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = ruma_route::<create_filter::v3::Request, _, _>(router, create);
    ruma_route::<get_filter::v3::Request, _, _>(router, get)
}

async fn create(
    State(s): State<AppState>,
    req: Ruma<create_filter::v3::Request>,
) -> RumaResult<create_filter::v3::Response> {
    if req.sender()?.user_id != req.user_id {
        return Err(Error::forbidden("Cannot create filters for other users"));
    }
    let filter_id = s.filters.create(&req.user_id, &req.filter)?;
    Ok(create_filter::v3::Response::new(filter_id).into())
}

async fn get(
    State(s): State<AppState>,
    req: Ruma<get_filter::v3::Request>,
) -> RumaResult<get_filter::v3::Response> {
    if req.sender()?.user_id != req.user_id {
        return Err(Error::forbidden("Cannot get filters of other users"));
    }
    let filter = s
        .filters
        .get(&req.user_id, &req.filter_id)?
        .ok_or_else(|| Error::not_found("Unknown filter"))?;
    Ok(get_filter::v3::Response::new(filter).into())
}
