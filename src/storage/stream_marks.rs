//! "Has this key's stream moved since position `p`?", answered from memory.
//!
//! Sync reads several per-key change tables on every response (a user's account data, a
//! room's receipts, presence): each read is a RocksDB iterator even when, as almost always,
//! nothing changed. A [`StreamMarks`] remembers, per key, the highest position written since
//! this process started; anything written before started below the counter's frontier at
//! startup (positions persist in blocks above everything handed out). So a key has certainly
//! not changed after `since` when `since` is at least both of those, and the table read can be
//! skipped. Writers note their position before they retire it, so a reader whose `upto` covers
//! a write always sees its mark. With several nodes, the marks will be fed by the notifier's
//! pub/sub as well.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::stream::StreamCounter;

pub struct StreamMarks {
    /// The stream frontier when the process started.
    startup: u64,
    /// The highest position noted for any key: a `since` at or past it has nothing after it
    /// for any key, which answers the usual question (nobody's account data, say, changed
    /// since the reader's last sync) without a per-key lookup.
    latest: AtomicU64,
    marks: parking_lot::Mutex<HashMap<String, u64>>,
}

impl StreamMarks {
    pub fn new(stream: &StreamCounter) -> Self {
        Self {
            startup: stream.frontier(),
            latest: AtomicU64::new(0),
            marks: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// A write for `key` at `pos`: call before the position is retired.
    pub fn note(&self, key: &str, pos: u64) {
        let mut marks = self.marks.lock();
        self.latest.fetch_max(pos, Ordering::SeqCst);
        match marks.get_mut(key) {
            Some(mark) => *mark = (*mark).max(pos),
            None => {
                marks.insert(key.to_owned(), pos);
            }
        }
    }

    /// Whether `key` may have been written at a position after `since`.
    pub fn changed_after(&self, key: &str, since: u64) -> bool {
        since < self.startup
            || (self.latest.load(Ordering::SeqCst) > since
                && self.marks.lock().get(key).is_some_and(|mark| *mark > since))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::StreamMarks;
    use crate::storage::KvEngine;
    use crate::storage::rocks::{Family, RocksEngine, RocksSettings};
    use crate::storage::stream::StreamCounter;

    #[test]
    fn only_writes_after_since_count_and_the_past_before_startup_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let db: Arc<dyn KvEngine> = Arc::new(
            RocksEngine::open(
                dir.path(),
                &[Family::default_with(&[crate::storage::META])],
                &RocksSettings::for_tests(),
            )
            .unwrap(),
        );
        let stream = StreamCounter::load(Arc::clone(&db)).unwrap();
        let before = stream.reserve().unwrap().pos(); // written before "startup"
        drop(stream);
        let stream = StreamCounter::load(db).unwrap();
        let marks = StreamMarks::new(&stream);
        assert!(
            marks.changed_after("@a:x", before - 1),
            "before startup: unknown"
        );
        let startup = stream.frontier();
        assert!(!marks.changed_after("@a:x", startup));
        let pos = stream.reserve().unwrap().pos();
        marks.note("@a:x", pos);
        assert!(marks.changed_after("@a:x", pos - 1));
        assert!(!marks.changed_after("@a:x", pos));
        assert!(
            !marks.changed_after("@b:x", startup),
            "other keys are untouched"
        );
        let later = stream.reserve().unwrap().pos();
        marks.note("@b:x", later);
        assert!(
            marks.changed_after("@b:x", pos),
            "the latest mark is @b:x's"
        );
        assert!(
            !marks.changed_after("@a:x", pos),
            "behind the latest, per key"
        );
        assert!(!marks.changed_after("@a:x", later));
    }
}
