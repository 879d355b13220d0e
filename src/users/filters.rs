//! Sync filters: validated on upload, stored as uploaded, referenced by id.

use std::sync::Arc;

use ruma::UserId;
use ruma::api::client::filter::FilterDefinition;
use serde_json::Value;

use super::tables::FILTERS;
use crate::error::{Error, Result};
use crate::storage::keys::KeyBuilder;
use crate::storage::{Batch, KvEngine};
use crate::sync::filter::SyncFilter;
use crate::util::{GenerationalCache, random_alphanumeric};

pub struct Filters {
    db: Arc<dyn KvEngine>,
    /// Stored filters parsed for sync, by key: a filter never changes once uploaded, and a
    /// syncing client names the same one on every request.
    parsed: GenerationalCache<Vec<u8>, Arc<SyncFilter>>,
}

/// Parsed filters kept in memory (about twice as many at most).
const PARSED_CAPACITY: usize = 8_192;

fn filter_key(user_id: &UserId, filter_id: &str) -> Vec<u8> {
    KeyBuilder::new()
        .str(user_id.as_str())
        .str(filter_id)
        .build()
}

/// Check a filter against the spec's schema: ruma's `FilterDefinition` checks the shapes;
/// `event_format` is checked here because ruma accepts unknown formats.
pub fn validate(filter: &Value) -> Result<FilterDefinition> {
    if !filter.is_object() {
        return Err(Error::bad_json("A filter must be a JSON object"));
    }
    if let Some(format) = filter.get("event_format")
        && !matches!(format.as_str(), Some("client" | "federation"))
    {
        return Err(Error::bad_json(
            "event_format must be 'client' or 'federation'",
        ));
    }
    serde_json::from_value(filter.clone())
        .map_err(|e| Error::bad_json(format!("Invalid filter: {e}")))
}

impl Filters {
    pub fn new(db: Arc<dyn KvEngine>) -> Self {
        Self {
            db,
            parsed: GenerationalCache::new(PARSED_CAPACITY),
        }
    }

    /// Validate and store a filter exactly as uploaded; returns its new id.
    pub fn create(&self, user_id: &UserId, filter: &Value) -> Result<String> {
        validate(filter)?;
        let filter_id = random_alphanumeric(12);
        let mut batch = Batch::new();
        FILTERS.put(&mut batch, filter_key(user_id, &filter_id), filter);
        self.db.write(batch)?;
        Ok(filter_id)
    }

    /// The filter as uploaded.
    pub fn get(&self, user_id: &UserId, filter_id: &str) -> Result<Option<Value>> {
        Ok(FILTERS.get(&*self.db, &filter_key(user_id, filter_id))?)
    }

    /// A stored filter parsed for sync.
    pub fn sync_filter(
        &self,
        user_id: &UserId,
        filter_id: &str,
    ) -> Result<Option<Arc<SyncFilter>>> {
        let key = filter_key(user_id, filter_id);
        if let Some(parsed) = self.parsed.get(&key) {
            return Ok(Some(parsed));
        }
        let Some(stored) = FILTERS.get(&*self.db, &key)? else {
            return Ok(None);
        };
        let parsed = Arc::new(SyncFilter::from_value(stored)?);
        self.parsed.insert(key, Arc::clone(&parsed));
        Ok(Some(parsed))
    }

    /// The filter parsed for use (by sync).
    pub fn get_definition(
        &self,
        user_id: &UserId,
        filter_id: &str,
    ) -> Result<Option<FilterDefinition>> {
        Ok(self
            .get(user_id, filter_id)?
            .and_then(|f| serde_json::from_value(f).ok()))
    }
}
