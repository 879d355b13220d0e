//! The admin API, Synapse-compatible where tools and test suites expect it:
//! shared-secret registration and registration tokens under `/_synapse/admin/v1/`; Roost's
//! own operator endpoints under `/_roost/admin/v1/`.

mod events;
mod register;
mod registration_tokens;

use axum::Router;

use crate::services::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = register::routes(router);
    let router = registration_tokens::routes(router);
    events::routes(router)
}
