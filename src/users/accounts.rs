//! Accounts: creation, passwords, admin flag, deactivation.

use std::sync::Arc;

use ruma::{OwnedUserId, UserId};
use tokio::sync::Mutex;

use super::password;
use super::tables::{USERS, UserRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::keys::KeyBuilder;
use crate::storage::{Batch, KvEngine};
use crate::util::now_ms;

/// The spec's limit on the length of a whole user id, in bytes.
const MAX_USER_ID_BYTES: usize = 255;

pub struct Accounts {
    db: Arc<dyn KvEngine>,
    server_name: String,
    /// Serialises account creation so two registrations can't take one name.
    create_lock: Mutex<()>,
    hash_limit: password::HashLimit,
}

fn user_key(localpart: &str) -> Vec<u8> {
    KeyBuilder::new().str(localpart).build()
}

impl Accounts {
    pub fn new(db: Arc<dyn KvEngine>, server_name: String) -> Self {
        Self {
            db,
            server_name,
            create_lock: Mutex::new(()),
            hash_limit: password::HashLimit::new(),
        }
    }

    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// Check a requested localpart against the spec's user-id grammar and length limit.
    pub fn validate_localpart(&self, localpart: &str) -> Result<OwnedUserId> {
        let allowed =
            |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+');
        if localpart.is_empty() || !localpart.chars().all(allowed) {
            return Err(Error::new(
                ErrorKind::InvalidUsername,
                "User ID may only contain a-z, 0-9, and . _ = - / +",
            ));
        }
        let user_id = format!("@{localpart}:{}", self.server_name);
        if user_id.len() > MAX_USER_ID_BYTES {
            return Err(Error::new(
                ErrorKind::InvalidUsername,
                "User ID is longer than 255 bytes",
            ));
        }
        UserId::parse(&user_id)
            .map_err(|_| Error::new(ErrorKind::InvalidUsername, "Invalid user ID"))
    }

    /// Resolve what a client typed as a user (`alice` or `@alice:server`) to a local user id.
    /// Case-insensitive, as user ids are created lower-case.
    pub fn resolve_local(&self, input: &str) -> Option<OwnedUserId> {
        let localpart = match input.strip_prefix('@') {
            Some(full) => {
                let (local, server) = full.split_once(':')?;
                if !server.eq_ignore_ascii_case(&self.server_name) {
                    return None;
                }
                local
            }
            None => input,
        };
        UserId::parse(format!(
            "@{}:{}",
            localpart.to_lowercase(),
            self.server_name
        ))
        .ok()
    }

    pub fn is_local(&self, user_id: &UserId) -> bool {
        user_id.server_name() == self.server_name.as_str()
    }

    pub fn get(&self, user_id: &UserId) -> Result<Option<UserRecord>> {
        if !self.is_local(user_id) {
            return Ok(None);
        }
        Ok(USERS.get(&*self.db, &user_key(user_id.localpart()))?)
    }

    /// Whether a localpart can still be registered (deactivated accounts keep their name).
    pub fn is_available(&self, localpart: &str) -> Result<bool> {
        Ok(USERS.get(&*self.db, &user_key(localpart))?.is_none())
    }

    /// Create an account. `password` of none makes an account that can't log in by password.
    /// Fails with `M_USER_IN_USE` if the name is taken.
    pub async fn create(
        &self,
        localpart: &str,
        password: Option<String>,
        admin: bool,
    ) -> Result<OwnedUserId> {
        let user_id = self.validate_localpart(localpart)?;
        let password_hash = match password {
            Some(p) => Some(password::hash(p, &self.hash_limit).await?),
            None => None,
        };
        let _guard = self.create_lock.lock().await;
        if !self.is_available(localpart)? {
            return Err(Error::new(ErrorKind::UserInUse, "User ID already taken"));
        }
        let record = UserRecord {
            password_hash,
            created_ms: now_ms(),
            admin,
            deactivated: false,
            is_guest: false,
        };
        let mut batch = Batch::new();
        USERS.put(&mut batch, user_key(localpart), &record);
        self.db.write(batch)?;
        Ok(user_id)
    }

    /// A fresh localpart that is free, for registrations that don't name one.
    pub fn generate_localpart(&self) -> Result<String> {
        loop {
            let candidate = format!("u{}", crate::util::random_alphanumeric(12).to_lowercase());
            if self.is_available(&candidate)? {
                return Ok(candidate);
            }
        }
    }

    /// Whether `password` is the user's password. False for unknown, deactivated or
    /// password-less accounts.
    pub async fn check_password(&self, user_id: &UserId, password: &str) -> Result<bool> {
        let Some(record) = self.get(user_id)? else {
            return Ok(false);
        };
        if record.deactivated {
            return Ok(false);
        }
        let Some(stored) = record.password_hash else {
            return Ok(false);
        };
        password::verify(password.to_owned(), stored, &self.hash_limit).await
    }

    pub async fn set_password(&self, user_id: &UserId, new_password: String) -> Result<()> {
        let hash = password::hash(new_password, &self.hash_limit).await?;
        self.update(user_id, |r| r.password_hash = Some(hash))
    }

    pub fn set_admin(&self, user_id: &UserId, admin: bool) -> Result<()> {
        self.update(user_id, |r| r.admin = admin)
    }

    /// Mark the account deactivated: it keeps its name (ids are never reused) but can't log in.
    pub fn mark_deactivated(&self, user_id: &UserId, batch: &mut Batch) -> Result<()> {
        let mut record = self
            .get(user_id)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        record.deactivated = true;
        record.password_hash = None;
        USERS.put(batch, user_key(user_id.localpart()), &record);
        Ok(())
    }

    fn update(&self, user_id: &UserId, change: impl FnOnce(&mut UserRecord)) -> Result<()> {
        let mut record = self
            .get(user_id)?
            .ok_or_else(|| Error::not_found("Unknown user"))?;
        change(&mut record);
        let mut batch = Batch::new();
        USERS.put(&mut batch, user_key(user_id.localpart()), &record);
        Ok(self.db.write(batch)?)
    }
}
