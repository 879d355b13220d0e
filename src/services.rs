//! The services, built once at start and shared by every handler through axum state.
//!
//! Each service is a plain struct holding `Arc`s of what it needs; there are no globals. A
//! second Roost node builds the same graph over the same store.

use std::sync::Arc;

use crate::config::Config;
use crate::events::ServerKey;
use crate::rooms::Rooms;
use crate::storage::KvEngine;
use crate::storage::rocks::{RocksEngine, RocksSettings};
use crate::storage::stream::StreamCounter;
use crate::sync::presence::Presence;
use crate::sync::receipts::Receipts;
use crate::sync::to_device::ToDevice;
use crate::sync::typing::Typing;
use crate::sync::v2::SyncSources;
use crate::sync::{Notifier, SyncService};
use crate::users::account_data::AccountData;
use crate::users::accounts::Accounts;
use crate::users::filters::Filters;
use crate::users::profile::Profiles;
use crate::users::registration_tokens::RegistrationTokens;
use crate::users::sessions::Sessions;
use crate::users::uiaa::Uiaa;

pub struct Services {
    pub config: Arc<Config>,
    pub db: Arc<dyn KvEngine>,
    pub stream: Arc<StreamCounter>,
    pub accounts: Arc<Accounts>,
    pub sessions: Arc<Sessions>,
    pub uiaa: Arc<Uiaa>,
    pub registration_tokens: Arc<RegistrationTokens>,
    pub profiles: Arc<Profiles>,
    pub account_data: Arc<AccountData>,
    pub filters: Arc<Filters>,
    pub server_key: Arc<ServerKey>,
    pub rooms: Arc<Rooms>,
    pub notifier: Arc<Notifier>,
    pub sync: Arc<SyncService>,
    pub typing: Arc<Typing>,
    pub receipts: Arc<Receipts>,
    pub to_device: Arc<ToDevice>,
    pub presence: Arc<Presence>,
}

/// What handlers get as axum state.
pub type AppState = Arc<Services>;

impl Services {
    /// Open the database named by the config and build every service on it.
    pub fn open(config: Config) -> Result<Arc<Self>, crate::storage::StorageError> {
        let settings = RocksSettings {
            cache_bytes: config.database.cache_mb * 1024 * 1024,
            write_buffer_bytes: config.database.write_buffer_mb * 1024 * 1024,
            sync_writes: config.database.sync_writes,
        };
        let engine = RocksEngine::open(
            &config.database.path,
            &crate::storage::families(),
            &settings,
        )?;
        Self::build(config, Arc::new(engine))
    }

    /// Services on a fresh database in a temporary directory (it lives as long as the
    /// directory), for in-process tests.
    #[cfg(test)]
    pub fn fresh_for_tests() -> (tempfile::TempDir, Arc<Self>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config::default();
        config.database.path = dir.path().to_path_buf();
        let services = Self::open(config).expect("a fresh database opens");
        (dir, services)
    }

    /// Build the services over any engine.
    pub fn build(
        config: Config,
        db: Arc<dyn KvEngine>,
    ) -> Result<Arc<Self>, crate::storage::StorageError> {
        let config = Arc::new(config);
        let stream = StreamCounter::load(Arc::clone(&db))?;
        let notifier = Arc::new(Notifier::new(Arc::clone(&stream)));
        let accounts = Arc::new(Accounts::new(Arc::clone(&db), config.server_name.clone()));
        let sessions = Arc::new(Sessions::new(
            Arc::clone(&db),
            config.auth.refreshable_access_token_lifetime_secs,
            config.auth.login_token_lifetime_secs,
            Arc::clone(&notifier),
        ));
        let registration_tokens = Arc::new(RegistrationTokens::new(Arc::clone(&db)));
        let uiaa = Arc::new(Uiaa::new(
            Arc::clone(&db),
            Arc::clone(&accounts),
            Arc::clone(&registration_tokens),
            config.auth.uia_session_lifetime_secs,
        ));
        let server_key = Arc::new(
            ServerKey::load_or_generate(&db, &config.server_name)
                .map_err(crate::storage::StorageError::new)?,
        );
        let ids = StreamCounter::load_named(Arc::clone(&db), "short_id_high_water")?;
        let default_version = ruma::RoomVersionId::try_from(config.rooms.default_version.as_str())
            .map_err(crate::storage::StorageError::new)?;
        let rooms = Arc::new(Rooms::new(
            Arc::clone(&db),
            Arc::clone(&server_key),
            Arc::clone(&stream),
            ids,
            Arc::clone(&notifier),
            default_version,
        ));
        let account_data = Arc::new(AccountData::new(
            Arc::clone(&db),
            Arc::clone(&stream),
            Arc::clone(&notifier),
        ));
        let typing = Arc::new(Typing::new(
            Arc::clone(&stream),
            Arc::clone(&notifier),
            Arc::clone(&rooms),
        ));
        let receipts = Arc::new(Receipts::new(
            Arc::clone(&db),
            Arc::clone(&stream),
            Arc::clone(&notifier),
            Arc::clone(&rooms),
        ));
        let to_device = Arc::new(ToDevice::new(
            Arc::clone(&db),
            Arc::clone(&stream),
            Arc::clone(&notifier),
            Arc::clone(&sessions),
            config.server_name.clone(),
        ));
        let presence = Arc::new(Presence::new(
            Arc::clone(&db),
            Arc::clone(&stream),
            Arc::clone(&notifier),
            Arc::clone(&rooms),
            &config.presence,
        ));
        let sources = SyncSources {
            rooms: Arc::clone(&rooms),
            account_data: Arc::clone(&account_data),
            typing: Arc::clone(&typing),
            receipts: Arc::clone(&receipts),
            to_device: Arc::clone(&to_device),
            presence: Arc::clone(&presence),
        };
        let sync = Arc::new(SyncService::new(
            sources,
            Arc::clone(&notifier),
            Arc::clone(&stream),
        ));
        Ok(Arc::new(Self {
            sync,
            typing,
            receipts,
            to_device,
            presence,
            server_key,
            rooms,
            profiles: Arc::new(Profiles::new(Arc::clone(&db))),
            account_data,
            notifier,
            filters: Arc::new(Filters::new(Arc::clone(&db))),
            config,
            db,
            stream,
            accounts,
            sessions,
            uiaa,
            registration_tokens,
        }))
    }
}
