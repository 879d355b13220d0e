//! Users: accounts, devices and tokens, UIA, profiles, account data, filters, registration
//! tokens. This module owns the tables in [`tables`]; nothing else writes them.

pub mod account_data;
pub mod accounts;
pub mod filters;
pub mod password;
pub mod profile;
pub mod registration_tokens;
pub mod sessions;
pub mod tables;
pub mod uiaa;

pub use sessions::Identity;

use ruma::OwnedUserId;

use crate::error::Result;

/// Create an account with its initial profile: the display name starts as the localpart, as
/// clients expect a name to show. Every way of creating users goes through here.
pub async fn create_user(
    accounts: &accounts::Accounts,
    profiles: &profile::Profiles,
    localpart: &str,
    password: Option<String>,
    admin: bool,
) -> Result<OwnedUserId> {
    let user_id = accounts.create(localpart, password, admin).await?;
    profiles.set(
        &user_id,
        "displayname",
        serde_json::Value::String(localpart.to_owned()),
    )?;
    Ok(user_id)
}
