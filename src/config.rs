//! Configuration: one typed struct with defaults.
//!
//! Sources, later ones winning: built-in defaults → the TOML file (if any) → environment
//! variables `ROOST_<KEY>` with `__` for nesting (`ROOST_DATABASE__PATH`). Unknown keys and bad
//! values are errors that name the key. The shipped `config.toml` documents every key;
//! `docs/configuration.md` lists the environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The server name: the part after the colon in user ids (`@alice:example.org`). It can't
    /// change once users exist.
    pub server_name: String,
    pub listeners: Listeners,
    pub database: Database,
    pub registration: Registration,
    pub auth: Auth,
    pub limits: Limits,
    pub well_known: WellKnown,
    pub rooms: RoomsConfig,
    pub presence: PresenceConfig,
    pub log: Log,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceConfig {
    /// Track and deliver presence at all.
    pub enabled: bool,
    /// `online` becomes `unavailable` after this long without activity, in seconds.
    pub idle_timeout_secs: u64,
    /// ... and `offline` after this long, in seconds.
    pub offline_timeout_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_timeout_secs: 300,
            offline_timeout_secs: 1800,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Room version for new rooms when the client names none ("1" to "12").
    pub default_version: String,
}

impl Default for RoomsConfig {
    fn default() -> Self {
        Self {
            default_version: "12".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listeners {
    /// Client-server API (and admin API) address. Port 0 picks a free port; the bound address is
    /// logged as `listening`.
    pub client: SocketAddr,
    /// Server-server API address; none disables the federation listener.
    pub federation: Option<SocketAddr>,
    /// PEM certificate chain for the federation listener. With `tls_key`, the federation
    /// listener speaks TLS; without, plain HTTP (behind a TLS-terminating proxy). A file that
    /// doesn't load stops the start with its path in the message.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the federation listener.
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// Directory of the embedded RocksDB database (created if missing).
    pub path: PathBuf,
    /// RocksDB block cache, in MiB.
    pub cache_mb: usize,
    /// Memory for RocksDB's write buffers (memtables) of all tables together, in MiB.
    pub write_buffer_mb: usize,
    /// fsync the write-ahead log on every write (power-loss safe, slower). A process crash loses
    /// nothing either way.
    pub sync_writes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Nobody registers through the client API (admins create users).
    Disabled,
    /// Registration needs a registration token (`m.login.registration_token`).
    Token,
    /// Anyone who can reach the server registers (`m.login.dummy`). Only for closed networks
    /// and tests.
    Open,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registration {
    pub mode: RegistrationMode,
    /// Shared secret for `/_synapse/admin/v1/register` (HMAC nonce flow). Unset disables it.
    pub shared_secret: Option<String>,
    /// Minimum password length for new passwords.
    pub password_min_length: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Lifetime of access tokens issued together with a refresh token, in seconds. Access
    /// tokens without a refresh token never expire.
    pub refreshable_access_token_lifetime_secs: u64,
    /// Lifetime of `m.login.token` tokens from `/login/get_token`, in seconds.
    pub login_token_lifetime_secs: u64,
    /// How long an unfinished user-interactive authentication session lives, in seconds.
    pub uia_session_lifetime_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest accepted request body, in bytes (413 `M_TOO_LARGE` above).
    pub max_request_bytes: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WellKnown {
    /// `m.homeserver.base_url` served at `/.well-known/matrix/client`; unset: 404.
    pub client_base_url: Option<String>,
    /// `m.server` served at `/.well-known/matrix/server`; unset: 404.
    pub server: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A tracing filter: `info`, `warn`, `roost=debug,info`, …
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: "localhost".into(),
            listeners: Listeners::default(),
            database: Database::default(),
            registration: Registration::default(),
            auth: Auth::default(),
            limits: Limits::default(),
            well_known: WellKnown::default(),
            rooms: RoomsConfig::default(),
            presence: PresenceConfig::default(),
            log: Log::default(),
        }
    }
}

impl Default for Listeners {
    fn default() -> Self {
        Self {
            client: ([127, 0, 0, 1], 8008).into(),
            federation: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data"),
            cache_mb: 64,
            write_buffer_mb: 32,
            sync_writes: false,
        }
    }
}

impl Default for Registration {
    fn default() -> Self {
        Self {
            mode: RegistrationMode::Token,
            shared_secret: None,
            password_min_length: 0,
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            refreshable_access_token_lifetime_secs: 300,
            login_token_lifetime_secs: 120,
            uia_session_lifetime_secs: 600,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 2 * 1024 * 1024,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// A configuration that could not be loaded; the message names the key and the source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl Config {
    /// Load defaults, then `file` (if given), then `ROOST_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError(format!(
                    "config file {} not found",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // ROOST_CONFIG names the file itself and is not a key.
        figment = figment.merge(Env::prefixed("ROOST_").split("__").ignore(&["config"]));
        let config: Config = figment.extract().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError(msgs.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks serde can't express.
    fn validate(&self) -> Result<(), ConfigError> {
        let probe = format!("@a:{}", self.server_name);
        if self.server_name.is_empty() || ruma::UserId::parse(&probe).is_err() {
            return Err(ConfigError(format!(
                "server_name: {:?} is not a valid server name",
                self.server_name
            )));
        }
        if self.listeners.tls_cert.is_some() != self.listeners.tls_key.is_some() {
            return Err(ConfigError(
                "listeners.tls_cert and listeners.tls_key go together".into(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(ConfigError(format!("log.level: {e}")));
        }
        if let Some(secret) = &self.registration.shared_secret
            && secret.is_empty()
        {
            return Err(ConfigError(
                "registration.shared_secret: must not be empty when set".into(),
            ));
        }
        let supported = crate::rooms::supported_versions();
        if !supported
            .iter()
            .any(|v| v.as_str() == self.rooms.default_version)
        {
            return Err(ConfigError(format!(
                "rooms.default_version: {:?} is not a supported room version (1-12)",
                self.rooms.default_version
            )));
        }
        if self.limits.max_request_bytes < 1024 {
            return Err(ConfigError(
                "limits.max_request_bytes: must be at least 1024".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load(Some(&path))
    }

    #[test]
    fn shipped_config_is_valid_and_not_open() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let config = Config::load(Some(&path)).unwrap();
        assert_ne!(config.registration.mode, RegistrationMode::Open);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_str("[database]\npaht = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("paht"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = load_str("[registration]\nmode = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mode"), "{err}");
        let err = load_str("server_name = \"bad name!\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("server_name"), "{err}");
    }
}
