//! Sync filters: validated on upload, stored as uploaded, referenced by id.

use std::sync::Arc;

use ruma::UserId;
use ruma::api::client::filter::FilterDefinition;
use serde_json::Value;

use super::tables::FILTERS;
use crate::error::{Error, Result};
use crate::storage::keys::KeyBuilder;
use crate::storage::{Batch, KvEngine};
use crate::sync::filter::{FilterKey, SyncFilter};
use crate::util::{GenerationalCache, random_alphanumeric};

pub struct Filters {
    db: Arc<dyn KvEngine>,
    /// Stored filters parsed for sync, by key: a filter never changes once uploaded, and a
    /// syncing client names the same one on every request.
    parsed: GenerationalCache<Vec<u8>, Arc<SyncFilter>>,
    /// Parsed filters by what they say (the digest of their JSON), so that readers with the
    /// same filter share one: a workspace's clients upload the same filter, each under an id
    /// of its own, and when a message reaches thousands of readers, each reader's own copy
    /// was a cache miss or two in the checks of the shared response (`shared_reply.rs`),
    /// besides its memory.
    interned: GenerationalCache<FilterKey, Arc<SyncFilter>>,
}

/// Parsed filters kept in memory (about twice as many at most). A cache smaller than the
/// number of clients syncing at once misses on every lap: with 10,000 long-polls and 8,192
/// here, a fifth of all syncs read and parsed their filter again (4 % of the server's CPU).
const PARSED_CAPACITY: usize = 65_536;

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
            interned: GenerationalCache::new(PARSED_CAPACITY),
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
        let parsed = self.parse(stored)?;
        self.parsed.insert(key, Arc::clone(&parsed));
        Ok(Some(parsed))
    }

    /// A filter (stored, or inline in a request) parsed for sync: the same one as every
    /// other filter that says the same, while it is in memory.
    pub fn parse(&self, filter: Value) -> Result<Arc<SyncFilter>> {
        // serde_json's maps keep keys sorted, so the same filter spells the same whatever
        // order its keys were uploaded in.
        let key = FilterKey::new(&filter.to_string());
        if let Some(parsed) = self.interned.get(&key) {
            return Ok(parsed);
        }
        let parsed = Arc::new(SyncFilter::from_value(filter)?);
        self.interned.insert(key, Arc::clone(&parsed));
        Ok(parsed)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ruma::user_id;
    use serde_json::json;

    use crate::services::Services;

    #[test]
    fn filters_that_say_the_same_are_parsed_once() {
        let (_dir, services) = Services::fresh_for_tests();
        let filters = &services.filters;
        let lazy =
            json!({"room": {"state": {"lazy_load_members": true}, "timeline": {"limit": 5}}});
        // The same filter uploaded by two users, keys in another order the second time.
        let alice = filters.create(user_id!("@alice:localhost"), &lazy).unwrap();
        let reordered =
            json!({"room": {"timeline": {"limit": 5}, "state": {"lazy_load_members": true}}});
        let bob = filters
            .create(user_id!("@bob:localhost"), &reordered)
            .unwrap();
        let alices = filters
            .sync_filter(user_id!("@alice:localhost"), &alice)
            .unwrap()
            .unwrap();
        let bobs = filters
            .sync_filter(user_id!("@bob:localhost"), &bob)
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&alices, &bobs));
        assert!(bobs.room.state.lazy_load_members);
        // Inline, the same again; another filter is another.
        assert!(Arc::ptr_eq(&filters.parse(lazy).unwrap(), &alices));
        let other = filters
            .parse(json!({"room": {"timeline": {"limit": 6}}}))
            .unwrap();
        assert!(!Arc::ptr_eq(&other, &alices));
        assert!(!other.room.state.lazy_load_members);
    }
}
