//! Sync filters: validated on upload, stored per user, referenced by id.

use std::sync::Arc;

use ruma::UserId;
use ruma::api::client::filter::FilterDefinition;
use serde_json::Value;

use super::tables::FILTERS;
use crate::error::Result;
use crate::storage::keys::KeyBuilder;
use crate::storage::{Batch, KvEngine};
use crate::util::random_alphanumeric;

pub struct Filters {
    db: Arc<dyn KvEngine>,
}

fn filter_key(user_id: &UserId, filter_id: &str) -> Vec<u8> {
    KeyBuilder::new()
        .str(user_id.as_str())
        .str(filter_id)
        .build()
}

impl Filters {
    pub fn new(db: Arc<dyn KvEngine>) -> Self {
        Self { db }
    }

    /// Store an already-validated filter and return its new id.
    pub fn create(&self, user_id: &UserId, filter: &FilterDefinition) -> Result<String> {
        let filter_id = random_alphanumeric(12);
        let json = serde_json::to_value(filter).map_err(crate::error::Error::internal)?;
        let mut batch = Batch::new();
        FILTERS.put(&mut batch, filter_key(user_id, &filter_id), &json);
        self.db.write(batch)?;
        Ok(filter_id)
    }

    pub fn get(&self, user_id: &UserId, filter_id: &str) -> Result<Option<FilterDefinition>> {
        let Some(json) = FILTERS.get(&*self.db, &filter_key(user_id, filter_id))? else {
            return Ok(None);
        };
        Ok(serde_json::from_value::<FilterDefinition>(json).ok())
    }

    /// The raw stored JSON, for callers that need fields ruma doesn't model.
    pub fn get_raw(&self, user_id: &UserId, filter_id: &str) -> Result<Option<Value>> {
        Ok(FILTERS.get(&*self.db, &filter_key(user_id, filter_id))?)
    }
}
