//! The admin API, Synapse-compatible where tools and test suites expect it:
//! shared-secret registration and registration tokens under `/_synapse/admin/v1/`.

mod register;
mod registration_tokens;

use axum::Router;

use crate::services::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = register::routes(router);
    registration_tokens::routes(router)
}
