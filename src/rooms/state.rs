//! Room state storage: state-key short ids and state snapshots.
//!
//! A snapshot is a state set stored as a delta on its parent, with a full layer every
//! [`FULL_LAYER_EVERY`] deltas, so storage grows with the number of state *changes*, not with
//! members × events, and loading a state walks at most that many layers.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::tables::{SNAPSHOTS, STATE_KEY_SHORTS, STATE_KEYS, Snapshot};
use crate::error::{Error, Result};
use crate::storage::keys::KeyBuilder;
use crate::storage::stream::StreamCounter;
use crate::storage::{Batch, KvEngine};

/// How many delta layers may stack before a snapshot is stored in full.
pub const FULL_LAYER_EVERY: u32 = 32;

/// A state set: `state_key_short → event_short`.
pub type StateSet = BTreeMap<u64, u64>;

/// The snapshot id of the empty state: the state before a room's create event.
pub const EMPTY: u64 = 0;

pub struct StateStore {
    db: Arc<dyn KvEngine>,
    ids: Arc<StreamCounter>,
    /// Snapshots never change once written: loaded sets are kept for reuse.
    cache: crate::util::GenerationalCache<u64, Arc<StateSet>>,
    /// State-key short ids never change once assigned (keyed by the encoded `(kind, key)`).
    key_shorts: crate::util::GenerationalCache<Vec<u8>, u64>,
    /// The reverse: `(type, state_key)` by short id.
    key_names: crate::util::GenerationalCache<u64, Arc<(String, String)>>,
    /// Serialises get-or-create of state-key short ids across rooms.
    alloc_lock: parking_lot::Mutex<()>,
}

fn state_key_key(kind: &str, state_key: &str) -> Vec<u8> {
    KeyBuilder::new().str(kind).str(state_key).build()
}

impl StateStore {
    pub fn new(db: Arc<dyn KvEngine>, ids: Arc<StreamCounter>) -> Self {
        Self {
            db,
            ids,
            alloc_lock: parking_lot::Mutex::new(()),
            cache: crate::util::GenerationalCache::new(1024),
            key_shorts: crate::util::GenerationalCache::new(16 * 1024),
            key_names: crate::util::GenerationalCache::new(16 * 1024),
        }
    }

    /// The short id of `(kind, state_key)`, if it was ever used.
    pub fn state_key_short(&self, kind: &str, state_key: &str) -> Result<Option<u64>> {
        let key = state_key_key(kind, state_key);
        if let Some(short) = self.key_shorts.get(&key) {
            return Ok(Some(short));
        }
        let short = STATE_KEY_SHORTS.get(&*self.db, &key)?;
        if let Some(short) = short {
            self.key_shorts.insert(key, short);
        }
        Ok(short)
    }

    /// The short id of `(kind, state_key)`, allocating (and writing at once) a new one.
    pub fn state_key_short_or_create(&self, kind: &str, state_key: &str) -> Result<u64> {
        let key = state_key_key(kind, state_key);
        let _guard = self.alloc_lock.lock();
        if let Some(short) = STATE_KEY_SHORTS.get(&*self.db, &key)? {
            return Ok(short);
        }
        let short = self.ids.reserve()?.pos();
        let mut batch = Batch::new();
        STATE_KEY_SHORTS.put(&mut batch, key, &short);
        STATE_KEYS.put(
            &mut batch,
            short.to_be_bytes().to_vec(),
            &(kind.to_owned(), state_key.to_owned()),
        );
        self.db.write(batch)?;
        Ok(short)
    }

    /// `(type, state_key)` of a short id.
    pub fn state_key_of(&self, short: u64) -> Result<Arc<(String, String)>> {
        if let Some(names) = self.key_names.get(&short) {
            return Ok(names);
        }
        let names = Arc::new(
            STATE_KEYS
                .get(&*self.db, &short.to_be_bytes())?
                .ok_or_else(|| Error::internal(format!("unknown state key short {short}")))?,
        );
        self.key_names.insert(short, Arc::clone(&names));
        Ok(names)
    }

    /// The complete state set of a snapshot (cached: snapshots are immutable); [`EMPTY`] is
    /// the empty set.
    pub fn load(&self, snapshot_id: u64) -> Result<Arc<StateSet>> {
        if snapshot_id == EMPTY {
            return Ok(Arc::default());
        }
        if let Some(set) = self.cache.get(&snapshot_id) {
            return Ok(set);
        }
        let set = Arc::new(self.load_uncached(snapshot_id)?);
        self.cache.insert(snapshot_id, Arc::clone(&set));
        Ok(set)
    }

    fn load_uncached(&self, snapshot_id: u64) -> Result<StateSet> {
        let mut layers = Vec::new();
        let mut next = Some(snapshot_id);
        while let Some(id) = next {
            let snapshot = SNAPSHOTS
                .get(&*self.db, &id.to_be_bytes())?
                .ok_or_else(|| Error::internal(format!("missing state snapshot {id}")))?;
            next = if snapshot.full { None } else { snapshot.parent };
            layers.push(snapshot);
        }
        let mut state = StateSet::new();
        for layer in layers.into_iter().rev() {
            state.extend(layer.entries);
        }
        Ok(state)
    }

    /// Store the state `parent` + `changes` as a new snapshot into `batch`: a delta, or a full
    /// layer when `layers_since_full` reached the limit (or there is no parent). Returns the new
    /// snapshot id and its layer count.
    pub fn derive(
        &self,
        parent: Option<u64>,
        layers_since_full: u32,
        changes: &[(u64, u64)],
        batch: &mut Batch,
    ) -> Result<(u64, u32)> {
        let id = self.ids.reserve()?.pos();
        let (snapshot, layers) = match parent {
            Some(p) if layers_since_full < FULL_LAYER_EVERY => (
                Snapshot {
                    parent: Some(p),
                    full: false,
                    entries: changes.to_vec(),
                },
                layers_since_full + 1,
            ),
            _ => {
                let mut state = match parent {
                    Some(p) => (*self.load(p)?).clone(),
                    None => StateSet::new(),
                };
                state.extend(changes.iter().copied());
                (
                    Snapshot {
                        parent,
                        full: true,
                        entries: state.into_iter().collect(),
                    },
                    0,
                )
            }
        };
        SNAPSHOTS.put(batch, id.to_be_bytes().to_vec(), &snapshot);
        Ok((id, layers))
    }
}
