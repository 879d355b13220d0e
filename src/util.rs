//! Small helpers shared across modules: time, randomness, hashing.

use rand::RngExt;
use sha2::{Digest, Sha256};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A random string of ASCII letters and digits from the OS CSPRNG. 32 characters carry 190 bits.
pub fn random_alphanumeric(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// A random device id: ten upper-case letters, as clients are used to.
pub fn random_device_id() -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut rng = rand::rng();
    (0..10)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// Hex SHA-256, used to key secrets (tokens) so the database holds no usable token.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A small bounded cache: two generations; when the young one fills it becomes the old one and
/// the previous old one is dropped, so recently used entries survive and memory stays bounded
/// at about `2 × capacity` entries.
///
/// Caches of values that can change or go away are invalidated with [`Self::remove`] or
/// [`Self::clear`] *after* the write that changed them. A reader that read the old value
/// before that write must not put it back afterwards: it takes [`Self::epoch`] before reading
/// and inserts with [`Self::insert_unless_invalidated`], which refuses once anything was
/// invalidated since.
pub struct GenerationalCache<K, V> {
    capacity: usize,
    inner: parking_lot::Mutex<Generations<K, V>>,
}

struct Generations<K, V> {
    young: std::collections::HashMap<K, V>,
    old: std::collections::HashMap<K, V>,
    /// Bumped by every invalidation.
    epoch: u64,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> GenerationalCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: parking_lot::Mutex::new(Generations {
                young: Default::default(),
                old: Default::default(),
                epoch: 0,
            }),
        }
    }

    /// The cached value; looked up by any borrowed form of the key (`&str` for `String`), so
    /// a hit allocates nothing.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let mut g = self.inner.lock();
        if let Some(v) = g.young.get(key) {
            return Some(v.clone());
        }
        let (key, v) = g.old.remove_entry(key)?;
        g.insert_young(self.capacity, key, v.clone());
        Some(v)
    }

    pub fn insert(&self, key: K, value: V) {
        self.inner.lock().insert_young(self.capacity, key, value);
    }

    /// The invalidation count, to pass to [`Self::insert_unless_invalidated`].
    pub fn epoch(&self) -> u64 {
        self.inner.lock().epoch
    }

    /// Insert a value read when the cache was at `epoch`, unless something was invalidated
    /// since (the value may be from before that change).
    pub fn insert_unless_invalidated(&self, epoch: u64, key: K, value: V) {
        let mut g = self.inner.lock();
        if g.epoch == epoch {
            g.insert_young(self.capacity, key, value);
        }
    }

    /// The cached value, or `load`'s, cached unless something was invalidated while it
    /// loaded (the read-through for caches of mutable rows). Looked up by a borrowed key: the
    /// owned one is made only to insert a loaded value.
    pub fn get_or_load<Q, E>(&self, key: &Q, load: impl FnOnce() -> Result<V, E>) -> Result<V, E>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if let Some(cached) = self.get(key) {
            return Ok(cached);
        }
        let epoch = self.epoch();
        let value = load()?;
        self.insert_unless_invalidated(epoch, key.to_owned(), value.clone());
        Ok(value)
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let mut g = self.inner.lock();
        g.young.remove(key);
        g.old.remove(key);
        g.epoch += 1;
    }

    pub fn clear(&self) {
        let mut g = self.inner.lock();
        g.young.clear();
        g.old.clear();
        g.epoch += 1;
    }
}

impl<K: std::hash::Hash + Eq, V> Generations<K, V> {
    fn insert_young(&mut self, capacity: usize, key: K, value: V) {
        if self.young.len() >= capacity {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_differ_and_have_the_right_alphabet() {
        let a = random_alphanumeric(32);
        let b = random_alphanumeric(32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(random_device_id().len(), 10);
    }

    #[test]
    fn generational_cache_keeps_recent_entries_and_stays_bounded() {
        let cache = GenerationalCache::new(2);
        cache.insert(1, "a");
        cache.insert(2, "b");
        cache.insert(3, "c"); // young generation full: 1 and 2 move to the old one
        assert_eq!(
            cache.get(&1),
            Some("a"),
            "old entries are still found (and promoted)"
        );
        cache.insert(4, "d");
        cache.insert(5, "e");
        assert_eq!(
            cache.get(&2),
            None,
            "entries unused for two generations are dropped"
        );
        assert_eq!(cache.get(&5), Some("e"));
    }

    #[test]
    fn a_value_read_before_an_invalidation_is_not_cached_after_it() {
        let cache = GenerationalCache::new(4);
        cache.insert("token", 1);
        let seen = cache.epoch(); // a reader starts, reads the old value...
        cache.remove(&"token"); // ...the value is changed and invalidated...
        cache.insert_unless_invalidated(seen, "token", 1); // ...the reader's insert is refused
        assert_eq!(cache.get(&"token"), None);
        let seen = cache.epoch();
        cache.insert_unless_invalidated(seen, "token", 2);
        assert_eq!(cache.get(&"token"), Some(2));
        cache.clear();
        assert_eq!(cache.get(&"token"), None);
    }
}
