//! Account management (client-server API §Account management): password change and
//! deactivation, both behind user-interactive authentication.

use axum::Router;
use axum::extract::State;
use ruma::api::client::account::{ThirdPartyIdRemovalStatus, change_password, deactivate};

use crate::http::ruma::{Ruma, RumaResult};
use crate::http::ruma_route;
use crate::services::AppState;
use crate::storage::Batch;
use crate::users::uiaa::{PASSWORD, Purpose};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = ruma_route::<change_password::v3::Request, _, _>(router, change_password);
    ruma_route::<deactivate::v3::Request, _, _>(router, deactivate)
}

async fn change_password(
    State(s): State<AppState>,
    req: Ruma<change_password::v3::Request>,
) -> RumaResult<change_password::v3::Response> {
    let me = req.sender()?.clone();
    let req = req.body;
    super::register::check_password_policy(&s, &req.new_password)?;
    s.uiaa
        .authenticate(
            req.auth.as_ref(),
            &[&[PASSWORD]],
            Purpose::ChangePassword,
            Some(&me.user_id),
        )
        .await?;
    s.accounts
        .set_password(&me.user_id, req.new_password)
        .await?;
    if req.logout_devices {
        let mut batch = Batch::new();
        s.sessions
            .delete_all_devices_into(&me.user_id, Some(me.device_id.as_str()), &mut batch)?;
        s.db.write(batch)?;
    }
    Ok(change_password::v3::Response::new().into())
}

async fn deactivate(
    State(s): State<AppState>,
    req: Ruma<deactivate::v3::Request>,
) -> RumaResult<deactivate::v3::Response> {
    let me = req.sender()?.clone();
    s.uiaa
        .authenticate(
            req.auth.as_ref(),
            &[&[PASSWORD]],
            Purpose::Deactivate,
            Some(&me.user_id),
        )
        .await?;
    // One batch: the account is marked, every device and token is gone, the profile is cleared.
    let mut batch = Batch::new();
    s.accounts.mark_deactivated(&me.user_id, &mut batch)?;
    s.sessions
        .delete_all_devices_into(&me.user_id, None, &mut batch)?;
    s.profiles.clear_into(&me.user_id, &mut batch)?;
    s.db.write(batch)?;
    tracing::info!(user_id = %me.user_id, "deactivated");
    Ok(deactivate::v3::Response::new(ThirdPartyIdRemovalStatus::NoSupport).into())
}
