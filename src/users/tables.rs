//! Tables owned by the users module, with their key and value layouts.
//!
//! `‖` below ends a string component (the terminator of [`crate::storage::keys`]); `u64` is big-endian.
//! Token tables are keyed by the SHA-256 of the token, so the database never holds a usable
//! secret.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::storage::Table;

/// `localpart‖ → UserRecord`.
pub const USERS: Table<UserRecord> = Table::new("users");
/// `user_id‖ device_id‖ → DeviceRecord`.
pub const DEVICES: Table<DeviceRecord> = Table::new("devices");
/// `sha256(access_token) → AccessTokenRecord`.
pub const ACCESS_TOKENS: Table<AccessTokenRecord> = Table::new("access_tokens");
/// `sha256(refresh_token) → RefreshTokenRecord`.
pub const REFRESH_TOKENS: Table<RefreshTokenRecord> = Table::new("refresh_tokens");
/// `sha256(login_token) → LoginTokenRecord` (`m.login.token`, single use).
pub const LOGIN_TOKENS: Table<LoginTokenRecord> = Table::new("login_tokens");
/// `user_id‖ field‖ → JSON value` (displayname, avatar_url, custom fields).
pub const PROFILE: Table<Value> = Table::new("profile");
/// `user_id‖ room_id or ""‖ type‖ → AccountDataRecord` (global data has an empty room).
pub const ACCOUNT_DATA: Table<AccountDataRecord> = Table::new("account_data");
/// `user_id‖ stream_pos u64 → AccountDataChange`: what changed at which position, for sync.
pub const ACCOUNT_DATA_CHANGES: Table<AccountDataChange> = Table::new("account_data_changes");
/// `user_id‖ filter_id‖ → filter JSON` (validated before it is stored).
pub const FILTERS: Table<Value> = Table::new("filters");
/// `session_id → UiaSession`.
pub const UIA_SESSIONS: Table<UiaSession> = Table::new("uia_sessions");
/// `token → RegistrationTokenRecord`.
pub const REGISTRATION_TOKENS: Table<RegistrationTokenRecord> = Table::new("registration_tokens");
/// `nonce → issued_at_ms` for shared-secret registration (single use).
pub const ADMIN_NONCES: Table<u64> = Table::new("admin_register_nonces");

pub const ALL: &[&str] = &[
    USERS.name,
    DEVICES.name,
    ACCESS_TOKENS.name,
    REFRESH_TOKENS.name,
    LOGIN_TOKENS.name,
    PROFILE.name,
    ACCOUNT_DATA.name,
    ACCOUNT_DATA_CHANGES.name,
    FILTERS.name,
    UIA_SESSIONS.name,
    REGISTRATION_TOKENS.name,
    ADMIN_NONCES.name,
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// argon2id PHC string; none for accounts that can't log in with a password.
    pub password_hash: Option<String>,
    pub created_ms: u64,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub deactivated: bool,
    #[serde(default)]
    pub is_guest: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub display_name: Option<String>,
    pub created_ms: u64,
    pub last_seen_ms: Option<u64>,
    pub last_seen_ip: Option<String>,
    /// Hash of the device's current access token (one token per device).
    pub access_token_hash: Option<String>,
    /// Hash of the device's current refresh token, if it uses refresh tokens.
    #[serde(default)]
    pub refresh_token_hash: Option<String>,
    /// A superseded refresh token still in its grace period: the spec keeps it valid until the
    /// tokens that replaced it are first used, so a client that lost the refresh response can
    /// retry.
    #[serde(default)]
    pub previous_refresh_token_hash: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenRecord {
    pub user_id: String,
    pub device_id: String,
    /// Expiry for refreshable tokens; none means it lives until logout.
    pub expires_ms: Option<u64>,
    /// Hash of the refresh token this token replaced, revoked when this token is first used.
    #[serde(default)]
    pub retires_refresh: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    pub user_id: String,
    pub device_id: String,
    /// Hash of the refresh token this one replaced, revoked when this one is first used.
    #[serde(default)]
    pub retires: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTokenRecord {
    pub user_id: String,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountDataRecord {
    pub content: Value,
    pub stream_pos: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountDataChange {
    /// Empty for global account data.
    pub room_id: String,
    pub data_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UiaSession {
    pub created_ms: u64,
    /// The user this session authenticates (none for registration).
    pub user_id: Option<String>,
    /// What the session was started for (`register`, `delete_device`, …): a session can't be
    /// reused for another operation.
    pub purpose: String,
    pub completed: Vec<String>,
    /// A registration token accepted by an `m.login.registration_token` stage, counted as used
    /// once registration completes.
    #[serde(default)]
    pub registration_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegistrationTokenRecord {
    pub uses_allowed: Option<u64>,
    #[serde(default)]
    pub pending: u64,
    #[serde(default)]
    pub completed: u64,
    pub expiry_time_ms: Option<u64>,
}

impl RegistrationTokenRecord {
    /// Whether the token can still start a registration at `now_ms`.
    pub fn is_valid(&self, now_ms: u64) -> bool {
        let unexpired = self.expiry_time_ms.is_none_or(|t| now_ms < t);
        let uses_left = self
            .uses_allowed
            .is_none_or(|n| self.pending + self.completed < n);
        unexpired && uses_left
    }
}
