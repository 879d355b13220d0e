//! `/sync` (client-server API §Syncing): parse and validate the query, then wait in the sync
//! service.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::Value;

use super::PREFIXES;
use crate::error::{Error, Result};
use crate::http::auth::Authed;
use crate::http::json::QueryParams;
use crate::services::AppState;
use crate::sync::filter::SyncFilter;
use crate::sync::v2::SyncParams;

/// The longest a long-poll may wait, whatever the client asks.
const MAX_TIMEOUT_MS: i64 = 300_000;

pub fn routes(mut router: Router<AppState>) -> Router<AppState> {
    for p in PREFIXES {
        router = router.route(&format!("{p}/sync"), get(sync));
    }
    router
}

#[derive(Deserialize, Default)]
struct SyncQuery {
    since: Option<String>,
    filter: Option<String>,
    timeout: Option<String>,
    full_state: Option<String>,
    use_state_after: Option<String>,
    #[serde(rename = "org.matrix.msc4222.use_state_after")]
    use_state_after_unstable: Option<String>,
    set_presence: Option<String>,
}

/// `s<pos>`: anything else is not a token this server issued.
pub fn parse_since(raw: &str) -> Result<u64> {
    raw.strip_prefix('s')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::invalid_param("Invalid since token"))
}

async fn sync(
    State(s): State<AppState>,
    me: Authed,
    QueryParams(q): QueryParams<SyncQuery>,
) -> Result<Response> {
    let since = q.since.as_deref().map(parse_since).transpose()?;
    let timeout = match q.timeout.as_deref() {
        None => 0,
        Some(t) => t
            .parse::<i64>()
            .map_err(|_| Error::invalid_param("timeout must be an integer"))?,
    }
    .clamp(0, MAX_TIMEOUT_MS);
    let full_state = match q.full_state.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(Error::invalid_param("full_state must be true or false")),
    };
    let filter = sync_filter(&s, &me.0, q.filter.as_deref())?;
    // The spec's default: syncing marks the user online.
    let set_presence = match q.set_presence.as_deref() {
        None => Some("online".to_owned()),
        Some(p @ ("online" | "unavailable" | "offline")) => Some(p.to_owned()),
        Some(_) => {
            return Err(Error::invalid_param(
                "set_presence must be online, unavailable or offline",
            ));
        }
    };
    let use_state_after = match q
        .use_state_after
        .as_deref()
        .or(q.use_state_after_unstable.as_deref())
    {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(Error::invalid_param(
                "use_state_after must be true or false",
            ));
        }
    };
    let params = SyncParams {
        since,
        since_confirms: true,
        full_state,
        filter,
        timeout: Some(Duration::from_millis(timeout as u64)),
        set_presence,
        use_state_after,
    };
    let reply = s.sync.sync(&me.0, &params).await?;
    let body = reply.to_json().map_err(Error::internal)?;
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// A sync filter from the `filter` parameter: inline JSON or the id of an uploaded filter.
pub fn sync_filter(
    s: &AppState,
    who: &crate::users::Identity,
    raw: Option<&str>,
) -> Result<Arc<SyncFilter>> {
    match raw {
        None => Ok(Arc::default()),
        Some(inline) if inline.trim_start().starts_with('{') => {
            let value: Value = serde_json::from_str(inline)
                .map_err(|_| Error::new(crate::error::ErrorKind::NotJson, "Filter is not JSON"))?;
            crate::users::filters::validate(&value)?;
            s.filters.parse(value)
        }
        Some(id) => s
            .filters
            .sync_filter(&who.user_id, id)?
            .ok_or_else(|| Error::invalid_param("Unknown filter")),
    }
}
