//! Account management (client-server API §Account management): password change and
//! deactivation, both behind user-interactive authentication.

use axum::Router;
use axum::extract::State;
use ruma::api::client::account::{ThirdPartyIdRemovalStatus, change_password, deactivate};

use crate::error::{Error, Result};
use crate::http::ruma::{Ruma, RumaResult};
use crate::http::ruma_route;
use crate::services::AppState;
use crate::storage::Batch;
use crate::users::Identity;
use crate::users::tables::UiaSession;
use crate::users::uiaa::{PASSWORD, Purpose};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = ruma_route::<change_password::v3::Request, _, _>(router, change_password);
    ruma_route::<deactivate::v3::Request, _, _>(router, deactivate)
}

async fn change_password(
    State(s): State<AppState>,
    req: Ruma<change_password::v3::Request>,
) -> RumaResult<change_password::v3::Response> {
    let me = req.identity.clone();
    let req = req.body;
    super::register::check_password_policy(&s, &req.new_password)?;
    let bound = me.as_ref().map(|i| &*i.user_id);
    let session = s
        .uiaa
        .authenticate(
            req.auth.as_ref(),
            &[&[PASSWORD]],
            Purpose::ChangePassword,
            bound,
        )
        .await?;
    let user_id = authenticated_user(me.as_ref(), &session)?;
    s.accounts.set_password(&user_id, req.new_password).await?;
    if req.logout_devices {
        // The device that asked keeps its session; without a token every device goes.
        let keep = me.as_ref().map(|i| i.device_id.as_str());
        let mut batch = Batch::new();
        s.sessions
            .delete_all_devices_into(&user_id, keep, &mut batch)?;
        s.sessions.commit_removal(batch, &user_id)?;
    }
    Ok(change_password::v3::Response::new().into())
}

async fn deactivate(
    State(s): State<AppState>,
    req: Ruma<deactivate::v3::Request>,
) -> RumaResult<deactivate::v3::Response> {
    let me = req.identity.clone();
    let bound = me.as_ref().map(|i| &*i.user_id);
    let session = s
        .uiaa
        .authenticate(
            req.auth.as_ref(),
            &[&[PASSWORD]],
            Purpose::Deactivate,
            bound,
        )
        .await?;
    let user_id = authenticated_user(me.as_ref(), &session)?;
    // One batch: the account is marked, every device and token is gone, the profile is cleared.
    let mut batch = Batch::new();
    s.accounts.mark_deactivated(&user_id, &mut batch)?;
    s.sessions
        .delete_all_devices_into(&user_id, None, &mut batch)?;
    s.profiles.clear_into(&user_id, &mut batch)?;
    s.sessions.commit_removal(batch, &user_id)?;
    tracing::info!(%user_id, "deactivated");
    Ok(deactivate::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport).into())
}

/// The account an operation acts on: the token's owner, else whom the UIA password stage
/// identified.
fn authenticated_user(me: Option<&Identity>, session: &UiaSession) -> Result<ruma::OwnedUserId> {
    if let Some(me) = me {
        return Ok(me.user_id.clone());
    }
    let user = session
        .user_id
        .as_deref()
        .ok_or_else(|| Error::forbidden("No user was authenticated"))?;
    ruma::OwnedUserId::try_from(user).map_err(Error::internal)
}
