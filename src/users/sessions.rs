//! Devices and the tokens that belong to them.
//!
//! A device holds one access token at a time (and, if the client asked for one, one refresh
//! token). Tokens are 32 random alphanumerics (≈190 bits) from the OS CSPRNG, stored only as
//! SHA-256 hashes. Logging out deletes the device; deleting a device invalidates its tokens in
//! the same batch.

use std::sync::Arc;

use ruma::{OwnedDeviceId, OwnedUserId, UserId};
use sha2::{Digest as _, Sha256};

use super::tables::{
    ACCESS_TOKENS, AccessTokenRecord, DEVICES, DeviceRecord, LOGIN_TOKENS, LoginTokenRecord,
    REFRESH_TOKENS, RefreshTokenRecord,
};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::keys::{KeyBuilder, KeyReader};
use crate::storage::{Batch, KvEngine};
use crate::util::{GenerationalCache, now_ms, random_alphanumeric, random_device_id, sha256_hex};

/// Who made a request: the authenticated user and device.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: OwnedUserId,
    pub device_id: OwnedDeviceId,
}

/// Tokens handed to a client at login, registration or refresh.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub device_id: OwnedDeviceId,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// A device as the devices API shows it.
#[derive(Debug, Clone)]
pub struct Device {
    pub device_id: OwnedDeviceId,
    pub record: DeviceRecord,
}

pub struct Sessions {
    db: Arc<dyn KvEngine>,
    refreshable_lifetime_ms: u64,
    login_token_lifetime_ms: u64,
    /// Makes read-then-delete of single-use login tokens atomic.
    login_token_lock: parking_lot::Mutex<()>,
    /// Woken when devices go, so their open WebSockets close at once.
    notifier: Arc<crate::sync::Notifier>,
    /// Authenticated tokens by hash, with their expiry: every request authenticates, and a
    /// syncing client comes back many times a second under load. Cleared after any write that
    /// revokes tokens (rare: logout, device deletion, refresh, re-login on a device id). With
    /// several nodes the clear will travel on the notifier's pub/sub, like the stream marks.
    /// Keyed by the digest itself (inline in the table's slot, so a lookup compares in
    /// place rather than following a pointer to a hex string in some other cache line).
    token_cache: GenerationalCache<[u8; 32], (Identity, Option<u64>)>,
}

/// Tokens kept authenticated in memory (about twice as many at most).
const TOKEN_CACHE_CAPACITY: usize = 16_384;

fn device_key(user_id: &UserId, device_id: &str) -> Vec<u8> {
    KeyBuilder::new()
        .str(user_id.as_str())
        .str(device_id)
        .build()
}

fn user_prefix(user_id: &UserId) -> Vec<u8> {
    KeyBuilder::new().str(user_id.as_str()).build()
}

fn expired_token() -> Error {
    Error::new(
        ErrorKind::UnknownToken { soft_logout: true },
        "Access token has expired",
    )
}

fn unknown_token() -> Error {
    Error::new(
        ErrorKind::UnknownToken { soft_logout: false },
        "Unknown access token",
    )
}

impl Sessions {
    pub fn new(
        db: Arc<dyn KvEngine>,
        refreshable_lifetime_secs: u64,
        login_token_lifetime_secs: u64,
        notifier: Arc<crate::sync::Notifier>,
    ) -> Self {
        Self {
            notifier,
            db,
            refreshable_lifetime_ms: refreshable_lifetime_secs * 1000,
            login_token_lifetime_ms: login_token_lifetime_secs * 1000,
            login_token_lock: parking_lot::Mutex::new(()),
            token_cache: GenerationalCache::new(TOKEN_CACHE_CAPACITY),
        }
    }

    /// Log a device in: create it (or take over an existing device id of this user, replacing
    /// its tokens) and issue tokens.
    pub fn login(
        &self,
        user_id: &UserId,
        device_id: Option<&str>,
        display_name: Option<String>,
        refreshable: bool,
        ip: Option<String>,
    ) -> Result<IssuedTokens> {
        let device_id = match device_id {
            Some("") => {
                return Err(Error::invalid_param("device_id must not be empty"));
            }
            Some(d) => d.to_owned(),
            None => random_device_id(),
        };
        let mut batch = Batch::new();
        let existing = DEVICES.get(&*self.db, &device_key(user_id, &device_id))?;
        let revokes = existing.is_some();
        let mut record = match existing {
            Some(mut old) => {
                Self::revoke_tokens(&old, &mut batch);
                old.previous_refresh_token_hash = None;
                old
            }
            // The display name is for new devices only: a known device keeps its name.
            None => DeviceRecord {
                display_name,
                created_ms: now_ms(),
                last_seen_ms: None,
                last_seen_ip: None,
                access_token_hash: None,
                refresh_token_hash: None,
                previous_refresh_token_hash: None,
            },
        };
        record.last_seen_ms = Some(now_ms());
        record.last_seen_ip = ip;
        let tokens = self.issue(
            user_id,
            &device_id,
            refreshable,
            None,
            &mut record,
            &mut batch,
        );
        DEVICES.put(&mut batch, device_key(user_id, &device_id), &record);
        self.db.write(batch)?;
        if revokes {
            self.token_cache.clear();
        }
        Ok(tokens)
    }

    /// Put fresh tokens on `record` and their rows into `batch`.
    fn issue(
        &self,
        user_id: &UserId,
        device_id: &str,
        refreshable: bool,
        retires: Option<String>,
        record: &mut DeviceRecord,
        batch: &mut Batch,
    ) -> IssuedTokens {
        let access_token = format!("syt_{}", random_alphanumeric(40));
        let access_hash = sha256_hex(access_token.as_bytes());
        let expires_ms = refreshable.then(|| now_ms() + self.refreshable_lifetime_ms);
        ACCESS_TOKENS.put(
            batch,
            access_hash.as_bytes(),
            &AccessTokenRecord {
                user_id: user_id.to_string(),
                device_id: device_id.to_owned(),
                expires_ms,
                retires_refresh: retires.clone(),
            },
        );
        record.access_token_hash = Some(access_hash);
        let refresh_token = refreshable.then(|| {
            let token = format!("syr_{}", random_alphanumeric(40));
            let hash = sha256_hex(token.as_bytes());
            REFRESH_TOKENS.put(
                batch,
                hash.as_bytes(),
                &RefreshTokenRecord {
                    user_id: user_id.to_string(),
                    device_id: device_id.to_owned(),
                    retires: retires.clone(),
                },
            );
            record.refresh_token_hash = Some(hash);
            token
        });
        if refresh_token.is_none() {
            record.refresh_token_hash = None;
        }
        IssuedTokens {
            device_id: device_id.into(),
            access_token,
            refresh_token,
            expires_in_ms: expires_ms.map(|_| self.refreshable_lifetime_ms),
        }
    }

    fn revoke_tokens(record: &DeviceRecord, batch: &mut Batch) {
        if let Some(h) = &record.access_token_hash {
            ACCESS_TOKENS.delete(batch, h.as_bytes());
        }
        for h in [
            &record.refresh_token_hash,
            &record.previous_refresh_token_hash,
        ]
        .into_iter()
        .flatten()
        {
            REFRESH_TOKENS.delete(batch, h.as_bytes());
        }
    }

    /// The identity behind an access token. Expired refreshable tokens are a soft logout: the
    /// client refreshes instead of logging in again.
    pub fn authenticate(&self, access_token: &str) -> Result<Identity> {
        let digest: [u8; 32] = Sha256::digest(access_token.as_bytes()).into();
        if let Some((identity, expires_ms)) = self.token_cache.get(&digest) {
            if expires_ms.is_some_and(|t| now_ms() >= t) {
                return Err(expired_token());
            }
            return Ok(identity);
        }
        let hash = hex::encode(digest);
        let epoch = self.token_cache.epoch();
        let mut record = ACCESS_TOKENS
            .get(&*self.db, hash.as_bytes())?
            .ok_or_else(unknown_token)?;
        if record.expires_ms.is_some_and(|t| now_ms() >= t) {
            return Err(expired_token());
        }
        let user_id = OwnedUserId::try_from(record.user_id.clone()).map_err(Error::internal)?;
        if let Some(old) = record.retires_refresh.take() {
            // First use of a refreshed token: the refresh token it replaced is now dead.
            let mut batch = Batch::new();
            REFRESH_TOKENS.delete(&mut batch, old.as_bytes());
            ACCESS_TOKENS.put(&mut batch, hash.as_bytes(), &record);
            let key = device_key(&user_id, &record.device_id);
            if let Some(mut device) = DEVICES.get(&*self.db, &key)?
                && device.previous_refresh_token_hash.as_deref() == Some(old.as_str())
            {
                device.previous_refresh_token_hash = None;
                DEVICES.put(&mut batch, key, &device);
            }
            self.db.write(batch)?;
        }
        let identity = Identity {
            user_id,
            device_id: record.device_id.into(),
        };
        self.token_cache.insert_unless_invalidated(
            epoch,
            digest,
            (identity.clone(), record.expires_ms),
        );
        Ok(identity)
    }

    /// Trade a refresh token for new tokens. The old access token stops working at once; the
    /// old refresh token stays valid until the new access or refresh token is first used (the
    /// spec's grace for a lost response), and refreshing with it again replaces the unused
    /// successors.
    pub fn refresh(&self, refresh_token: &str) -> Result<IssuedTokens> {
        let hash = sha256_hex(refresh_token.as_bytes());
        let record = REFRESH_TOKENS
            .get(&*self.db, hash.as_bytes())?
            .ok_or_else(unknown_token)?;
        let user_id = OwnedUserId::try_from(record.user_id).map_err(Error::internal)?;
        let key = device_key(&user_id, &record.device_id);
        let mut device = DEVICES.get(&*self.db, &key)?.ok_or_else(unknown_token)?;
        let mut batch = Batch::new();
        if device.refresh_token_hash.as_deref() == Some(hash.as_str()) {
            // The current token: whatever it replaced is dead now that it is used.
            if let Some(old) = &record.retires {
                REFRESH_TOKENS.delete(&mut batch, old.as_bytes());
            }
            if let Some(access) = &device.access_token_hash {
                ACCESS_TOKENS.delete(&mut batch, access.as_bytes());
            }
        } else if device.previous_refresh_token_hash.as_deref() == Some(hash.as_str()) {
            // A retry with the token in grace: its successors were never used; replace them.
            if let Some(access) = &device.access_token_hash {
                ACCESS_TOKENS.delete(&mut batch, access.as_bytes());
            }
            if let Some(current) = &device.refresh_token_hash {
                REFRESH_TOKENS.delete(&mut batch, current.as_bytes());
            }
        } else {
            return Err(unknown_token());
        }
        device.previous_refresh_token_hash = Some(hash.clone());
        let tokens = self.issue(
            &user_id,
            &record.device_id,
            true,
            Some(hash),
            &mut device,
            &mut batch,
        );
        DEVICES.put(&mut batch, key, &device);
        self.db.write(batch)?;
        self.token_cache.clear();
        Ok(tokens)
    }

    pub fn get_device(&self, user_id: &UserId, device_id: &str) -> Result<Option<Device>> {
        Ok(DEVICES
            .get(&*self.db, &device_key(user_id, device_id))?
            .map(|record| Device {
                device_id: device_id.into(),
                record,
            }))
    }

    pub fn list_devices(&self, user_id: &UserId) -> Result<Vec<Device>> {
        let rows = DEVICES.scan_prefix(&*self.db, &user_prefix(user_id), usize::MAX)?;
        Ok(rows
            .into_iter()
            .filter_map(|(key, record)| {
                let mut reader = KeyReader::new(&key);
                reader.str()?;
                Some(Device {
                    device_id: reader.str()?.into(),
                    record,
                })
            })
            .collect())
    }

    pub fn set_display_name(
        &self,
        user_id: &UserId,
        device_id: &str,
        name: Option<String>,
    ) -> Result<()> {
        let key = device_key(user_id, device_id);
        let mut record = DEVICES
            .get(&*self.db, &key)?
            .ok_or_else(|| Error::not_found("Unknown device"))?;
        record.display_name = name;
        let mut batch = Batch::new();
        DEVICES.put(&mut batch, key, &record);
        Ok(self.db.write(batch)?)
    }

    /// Delete devices (and with them their tokens) into `batch`. Unknown ids are skipped.
    pub fn delete_devices_into(
        &self,
        user_id: &UserId,
        device_ids: &[String],
        batch: &mut Batch,
    ) -> Result<()> {
        for device_id in device_ids {
            let key = device_key(user_id, device_id);
            if let Some(record) = DEVICES.get(&*self.db, &key)? {
                Self::revoke_tokens(&record, batch);
                DEVICES.delete(batch, key);
            }
        }
        Ok(())
    }

    pub fn delete_devices(&self, user_id: &UserId, device_ids: &[String]) -> Result<()> {
        let mut batch = Batch::new();
        self.delete_devices_into(user_id, device_ids, &mut batch)?;
        self.commit_removal(batch, user_id)
    }

    /// Write a batch that removes devices of `user_id` (and whatever else it holds), then wake
    /// the user's connections so those of removed devices close.
    pub fn commit_removal(&self, batch: Batch, user_id: &UserId) -> Result<()> {
        self.db.write(batch)?;
        self.token_cache.clear();
        self.notifier.sessions_ended([user_id.to_string()]);
        Ok(())
    }

    /// Delete every device of the user except `keep`, into `batch`.
    pub fn delete_all_devices_into(
        &self,
        user_id: &UserId,
        keep: Option<&str>,
        batch: &mut Batch,
    ) -> Result<()> {
        let ids: Vec<String> = self
            .list_devices(user_id)?
            .into_iter()
            .map(|d| d.device_id.to_string())
            .filter(|d| Some(d.as_str()) != keep)
            .collect();
        self.delete_devices_into(user_id, &ids, batch)
    }

    /// Issue a short-lived single-use `m.login.token`.
    pub fn create_login_token(&self, user_id: &UserId) -> Result<(String, u64)> {
        let token = random_alphanumeric(40);
        let record = LoginTokenRecord {
            user_id: user_id.to_string(),
            expires_ms: now_ms() + self.login_token_lifetime_ms,
        };
        let mut batch = Batch::new();
        LOGIN_TOKENS.put(&mut batch, sha256_hex(token.as_bytes()).as_bytes(), &record);
        self.db.write(batch)?;
        Ok((token, self.login_token_lifetime_ms))
    }

    /// Use up a login token, returning its user. Unknown, used or expired: 403 `M_FORBIDDEN`.
    pub fn consume_login_token(&self, token: &str) -> Result<OwnedUserId> {
        let key = sha256_hex(token.as_bytes());
        let invalid = || Error::forbidden("Invalid login token");
        let _guard = self.login_token_lock.lock();
        let record = LOGIN_TOKENS
            .get(&*self.db, key.as_bytes())?
            .ok_or_else(invalid)?;
        let mut batch = Batch::new();
        LOGIN_TOKENS.delete(&mut batch, key.as_bytes());
        self.db.write(batch)?;
        if now_ms() >= record.expires_ms {
            return Err(invalid());
        }
        OwnedUserId::try_from(record.user_id).map_err(Error::internal)
    }
}
