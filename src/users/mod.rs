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
