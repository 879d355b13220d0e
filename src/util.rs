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

/// A small bounded cache for immutable values (state snapshots, PDUs): two generations; when
/// the young one fills it becomes the old one and the previous old one is dropped, so recently
/// used entries survive and memory stays bounded at about `2 × capacity` entries.
pub struct GenerationalCache<K, V> {
    capacity: usize,
    generations: parking_lot::Mutex<(
        std::collections::HashMap<K, V>,
        std::collections::HashMap<K, V>,
    )>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> GenerationalCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            generations: parking_lot::Mutex::new((Default::default(), Default::default())),
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let mut g = self.generations.lock();
        if let Some(v) = g.0.get(key) {
            return Some(v.clone());
        }
        let v = g.1.remove(key)?;
        Self::insert_young(&mut g, self.capacity, key.clone(), v.clone());
        Some(v)
    }

    pub fn insert(&self, key: K, value: V) {
        let mut g = self.generations.lock();
        Self::insert_young(&mut g, self.capacity, key, value);
    }

    fn insert_young(
        g: &mut (
            std::collections::HashMap<K, V>,
            std::collections::HashMap<K, V>,
        ),
        capacity: usize,
        key: K,
        value: V,
    ) {
        if g.0.len() >= capacity {
            g.1 = std::mem::take(&mut g.0);
        }
        g.0.insert(key, value);
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
}
