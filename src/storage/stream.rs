//! The global stream-position counter.
//!
//! Every write that sync must see (account data today; events, receipts, to-device later) takes a
//! position from [`StreamCounter::reserve`] *before* it writes, stores the position in its batch,
//! and retires it once the batch committed (dropping the [`StreamPermit`]). Writes commit in any
//! order, so the counter tracks which positions are still in flight: the *retired frontier* is the
//! highest position `p` such that every position `≤ p` has been retired. Sync tokens only ever
//! name the frontier, so a client can never skip past a write that was still in flight.
//!
//! Persistence: the counter writes a high-water mark to the `meta` table in blocks of
//! [`BLOCK`] positions, before handing out any position of a block. After a restart it continues
//! above the stored mark, so positions are unique and increasing across restarts without a write
//! per position.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::META;
use super::engine::{Batch, KvEngine, StorageError};

/// How many positions one persisted high-water mark covers.
pub const BLOCK: u64 = 1024;
const HIGH_WATER_KEY: &str = "stream_high_water";

struct State {
    /// Next position to hand out.
    next: u64,
    /// Positions handed out but not yet retired.
    in_flight: BTreeSet<u64>,
    /// Positions below this are covered by the persisted high-water mark.
    reserved_until: u64,
}

/// Hands out stream positions and tracks the retired frontier.
pub struct StreamCounter {
    db: Arc<dyn KvEngine>,
    /// The `meta` key of this counter's high-water mark.
    key: &'static str,
    state: Mutex<State>,
    frontier: watch::Sender<u64>,
}

impl StreamCounter {
    /// Load the stream counter, continuing above whatever was handed out before a restart.
    pub fn load(db: Arc<dyn KvEngine>) -> Result<Arc<Self>, StorageError> {
        Self::load_named(db, HIGH_WATER_KEY)
    }

    /// Load a counter persisted under its own `meta` key: the same mechanism hands out unique,
    /// increasing ids (short ids) whose frontier nobody reads.
    pub fn load_named(db: Arc<dyn KvEngine>, key: &'static str) -> Result<Arc<Self>, StorageError> {
        let stored = match db.get(META, key.as_bytes())? {
            Some(b) => u64::from_be_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| StorageError::new("bad stream high-water mark"))?,
            ),
            None => 0,
        };
        let (frontier, _) = watch::channel(stored);
        Ok(Arc::new(Self {
            db,
            key,
            state: Mutex::new(State {
                next: stored + 1,
                in_flight: BTreeSet::new(),
                reserved_until: stored + 1,
            }),
            frontier,
        }))
    }

    /// Take the next position. Retire it by dropping the permit after the write committed (or
    /// failed: a position whose write failed simply carries nothing).
    pub fn reserve(self: &Arc<Self>) -> Result<StreamPermit, StorageError> {
        let mut state = self.state.lock();
        if state.next >= state.reserved_until {
            let until = state.next + BLOCK;
            let mut batch = Batch::new();
            batch.put(
                META,
                self.key.as_bytes().to_vec(),
                (until - 1).to_be_bytes().to_vec(),
            );
            self.db.write(batch)?;
            state.reserved_until = until;
        }
        let pos = state.next;
        state.next += 1;
        state.in_flight.insert(pos);
        Ok(StreamPermit {
            counter: Arc::clone(self),
            pos,
        })
    }

    /// The highest position at or below which every write has committed.
    pub fn frontier(&self) -> u64 {
        *self.frontier.borrow()
    }

    /// Watch the frontier move: the notifier and long-polls wait on this.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.frontier.subscribe()
    }

    fn retire(&self, pos: u64) {
        let mut state = self.state.lock();
        state.in_flight.remove(&pos);
        let frontier = match state.in_flight.first() {
            Some(lowest) => lowest - 1,
            None => state.next - 1,
        };
        drop(state);
        self.frontier.send_if_modified(|f| {
            if frontier > *f {
                *f = frontier;
                true
            } else {
                false
            }
        });
    }
}

/// A position in flight. Dropping it retires the position.
pub struct StreamPermit {
    counter: Arc<StreamCounter>,
    pos: u64,
}

impl StreamPermit {
    pub fn pos(&self) -> u64 {
        self.pos
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.counter.retire(self.pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::rocks::{Family, RocksEngine, RocksSettings};

    fn engine(dir: &std::path::Path) -> Arc<dyn KvEngine> {
        Arc::new(
            RocksEngine::open(
                dir,
                &[Family::default_with(&[META])],
                &RocksSettings::for_tests(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn frontier_waits_for_the_oldest_write_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let c = StreamCounter::load(engine(dir.path())).unwrap();
        let a = c.reserve().unwrap();
        let b = c.reserve().unwrap();
        let (a_pos, b_pos) = (a.pos(), b.pos());
        assert!(b_pos > a_pos);
        drop(b);
        assert_eq!(
            c.frontier(),
            a_pos - 1,
            "b committed but a is still in flight"
        );
        drop(a);
        assert_eq!(c.frontier(), b_pos, "both committed");
    }

    #[test]
    fn positions_keep_increasing_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let last = {
            let c = StreamCounter::load(engine(dir.path())).unwrap();
            let mut last = 0;
            for _ in 0..5 {
                last = c.reserve().unwrap().pos();
            }
            last
        };
        let c = StreamCounter::load(engine(dir.path())).unwrap();
        let first_after = c.reserve().unwrap().pos();
        assert!(first_after > last, "{first_after} must exceed {last}");
        assert!(
            c.frontier() >= last,
            "a restart starts with nothing in flight"
        );
    }

    #[test]
    fn concurrent_reservations_are_unique_and_the_frontier_ends_at_the_top() {
        let dir = tempfile::tempdir().unwrap();
        let c = StreamCounter::load(engine(dir.path())).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    for i in 0..(BLOCK / 2) {
                        let p = c.reserve().unwrap();
                        seen.push(p.pos());
                        // The frontier never passes a position still held.
                        assert!(c.frontier() < p.pos());
                        if i % 7 == 0 {
                            std::thread::yield_now();
                        }
                    }
                    seen
                })
            })
            .collect();
        let mut all: Vec<u64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "every position handed out once");
        assert_eq!(c.frontier(), *all.last().unwrap());
    }
}
