//! Registration tokens (`m.login.registration_token`): who may register when registration is
//! token-gated. Managed by admins (`roost admin create-registration-token`, or the
//! Synapse-compatible admin API).

use std::sync::Arc;

use super::tables::{REGISTRATION_TOKENS, RegistrationTokenRecord};
use crate::error::{Error, Result};
use crate::storage::{Batch, KvEngine};
use crate::util::{now_ms, random_alphanumeric};

/// Characters allowed in a token (the spec's `[A-Za-z0-9._~-]`), at most 64 of them.
pub fn is_valid_token_syntax(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 64
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
}

pub struct RegistrationTokens {
    db: Arc<dyn KvEngine>,
    /// Makes check-and-count of token uses atomic.
    lock: parking_lot::Mutex<()>,
}

impl RegistrationTokens {
    pub fn new(db: Arc<dyn KvEngine>) -> Self {
        Self {
            db,
            lock: parking_lot::Mutex::new(()),
        }
    }

    /// Create a token (random when `token` is none). `M_INVALID_PARAM` if it exists or is
    /// malformed.
    pub fn create(
        &self,
        token: Option<String>,
        length: usize,
        uses_allowed: Option<u64>,
        expiry_time_ms: Option<u64>,
    ) -> Result<(String, RegistrationTokenRecord)> {
        let token = match token {
            Some(t) => t,
            None => random_alphanumeric(length.clamp(1, 64)),
        };
        if !is_valid_token_syntax(&token) {
            return Err(Error::invalid_param(
                "Token must be 1-64 characters of [A-Za-z0-9._~-]",
            ));
        }
        let _guard = self.lock.lock();
        if REGISTRATION_TOKENS
            .get(&*self.db, token.as_bytes())?
            .is_some()
        {
            return Err(Error::invalid_param("Token already exists"));
        }
        let record = RegistrationTokenRecord {
            uses_allowed,
            pending: 0,
            completed: 0,
            expiry_time_ms,
        };
        let mut batch = Batch::new();
        REGISTRATION_TOKENS.put(&mut batch, token.as_bytes(), &record);
        self.db.write(batch)?;
        Ok((token, record))
    }

    pub fn get(&self, token: &str) -> Result<Option<RegistrationTokenRecord>> {
        Ok(REGISTRATION_TOKENS.get(&*self.db, token.as_bytes())?)
    }

    pub fn list(&self) -> Result<Vec<(String, RegistrationTokenRecord)>> {
        Ok(REGISTRATION_TOKENS
            .scan_prefix(&*self.db, b"", usize::MAX)?
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect())
    }

    pub fn delete(&self, token: &str) -> Result<bool> {
        let _guard = self.lock.lock();
        if self.get(token)?.is_none() {
            return Ok(false);
        }
        let mut batch = Batch::new();
        REGISTRATION_TOKENS.delete(&mut batch, token.as_bytes());
        self.db.write(batch)?;
        Ok(true)
    }

    /// Whether the token is currently usable (the validity endpoint).
    pub fn is_valid(&self, token: &str) -> Result<bool> {
        Ok(self.get(token)?.is_some_and(|r| r.is_valid(now_ms())))
    }

    /// Count a pending use if the token is valid. The use completes with [`Self::complete`]
    /// once the account exists.
    pub fn reserve(&self, token: &str) -> Result<bool> {
        self.adjust(token, |r| {
            if !r.is_valid(now_ms()) {
                return false;
            }
            r.pending += 1;
            true
        })
    }

    /// Turn a pending use into a completed one.
    pub fn complete(&self, token: &str) -> Result<()> {
        self.adjust(token, |r| {
            r.pending = r.pending.saturating_sub(1);
            r.completed += 1;
            true
        })
        .map(drop)
    }

    fn adjust(
        &self,
        token: &str,
        change: impl FnOnce(&mut RegistrationTokenRecord) -> bool,
    ) -> Result<bool> {
        let _guard = self.lock.lock();
        let Some(mut record) = self.get(token)? else {
            return Ok(false);
        };
        if !change(&mut record) {
            return Ok(false);
        }
        let mut batch = Batch::new();
        REGISTRATION_TOKENS.put(&mut batch, token.as_bytes(), &record);
        self.db.write(batch)?;
        Ok(true)
    }
}
