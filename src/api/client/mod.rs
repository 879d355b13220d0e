//! The client-server API, one file per spec module.

mod account;
mod account_data;
mod devices;
mod directory;
mod discovery;
mod ephemeral;
mod filters;
mod membership;
mod messages;
mod profile;
mod register;
mod relations;
mod room_upgrades;
mod rooms;
mod session;
mod spaces;
mod sync;
mod websocket;

use axum::Router;

use crate::services::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = discovery::routes(router);
    let router = register::routes(router);
    let router = session::routes(router);
    let router = account::routes(router);
    let router = devices::routes(router);
    let router = profile::routes(router);
    let router = account_data::routes(router);
    let router = rooms::routes(router);
    let router = membership::routes(router);
    let router = messages::routes(router);
    let router = directory::routes(router);
    let router = relations::routes(router);
    let router = spaces::routes(router);
    let router = room_upgrades::routes(router);
    let router = sync::routes(router);
    let router = ephemeral::routes(router);
    let router = websocket::routes(router);
    filters::routes(router)
}

/// The client API's path prefixes: the same handler serves the legacy r0 and the v3 form.
pub(crate) const PREFIXES: [&str; 2] = ["/_matrix/client/r0", "/_matrix/client/v3"];
