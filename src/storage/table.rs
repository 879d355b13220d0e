//! A typed view of one table: raw byte keys (built with [`super::keys`]) and JSON values.
//!
//! JSON keeps stored records readable with `ldb` and lets fields be added with `#[serde(default)]`
//! without migrations.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::engine::{Batch, KvEngine, StorageError};

/// A table whose values are `V`, serialised as JSON.
pub struct Table<V> {
    pub name: &'static str,
    _value: PhantomData<fn() -> V>,
}

impl<V> Clone for Table<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for Table<V> {}

impl<V: Serialize + DeserializeOwned> Table<V> {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _value: PhantomData,
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<V, StorageError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StorageError::new(format!("{}: bad value: {e}", self.name)))
    }

    pub fn get(&self, db: &dyn KvEngine, key: &[u8]) -> Result<Option<V>, StorageError> {
        db.get(self.name, key)?.map(|b| self.decode(&b)).transpose()
    }

    pub fn put(&self, batch: &mut Batch, key: impl Into<Vec<u8>>, value: &V) {
        let bytes = serde_json::to_vec(value).expect("stored records always serialise");
        batch.put(self.name, key, bytes);
    }

    pub fn delete(&self, batch: &mut Batch, key: impl Into<Vec<u8>>) {
        batch.delete(self.name, key);
    }

    /// Entries under `prefix`, in key order, at most `limit`.
    pub fn scan_prefix(
        &self,
        db: &dyn KvEngine,
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, V)>, StorageError> {
        db.scan_prefix(self.name, prefix, limit)?
            .into_iter()
            .map(|(k, v)| Ok((k, self.decode(&v)?)))
            .collect()
    }
}
