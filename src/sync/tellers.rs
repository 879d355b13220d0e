//! The threads that tell listeners their news (`notifier.rs`): one per core, taking a
//! message's listeners in chunks, first in, first out.
//!
//! A listener writes to a socket, and telling a room of thousands takes tens of
//! milliseconds, so it runs neither on the request workers (that held up the sender's next
//! request behind the last message's fan-out) nor on the committing request's thread.
//!
//! Why a fixed set of threads in order, rather than the runtime's blocking pool: the pool
//! starts another thread whenever its threads are busy, so under overload the threads (and
//! their stacks) grow with the backlog, up to the pool's 512, and a message that arrives
//! while the last one's fan-out still runs is told *alongside* it, the kernel sharing the
//! cores between both. Here the backlog is a queue of chunks, and a fan-out runs to its end
//! on every core before the next one starts; a reader the next message reaches late takes
//! both messages in one response meanwhile (its listener reads everything new). At 10,000
//! WebSockets the delivery p99 was within this machine's run-to-run spread either way
//! (docs/performance.md, "Session 11").
//!
//! These are plain threads, outside the runtime: a listener must not need a runtime
//! context (it writes without blocking, and wakes its connection's task for anything else).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::{Condvar, Mutex};

use super::notifier::Listener;
use crate::sync::v2::FanoutScratch;

/// Listeners per chunk at least: a message to a room of thousands is told on as many threads
/// as there are cores, and a handful on one.
const LISTENERS_PER_CHUNK: usize = 64;

#[derive(Default)]
pub struct Tellers {
    state: Mutex<State>,
    ready: Condvar,
    /// How many threads run: none until started (unit tests), when listeners are told in
    /// place. Kept rather than asked for per message: the standard library reads the
    /// process's CPU affinity and cgroup quota files each time.
    threads: AtomicUsize,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<Arc<dyn Listener>>>,
    closed: bool,
}

impl Tellers {
    /// Start the threads, one per core. Once; the server does it at start.
    pub fn start(self: &Arc<Self>) {
        let threads = cores();
        if self.threads.swap(threads, Ordering::SeqCst) != 0 {
            return;
        }
        for i in 0..threads {
            let tellers = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name(format!("roost-tell-{i}"))
                .spawn(move || tellers.work());
            if let Err(e) = spawned {
                tracing::error!("cannot start a thread to tell listeners: {e}");
            }
        }
    }

    /// Tell these listeners their news: queued behind the messages before, split across the
    /// threads. Before the threads start, here and now.
    pub fn tell(&self, mut listeners: Vec<Arc<dyn Listener>>) {
        if listeners.is_empty() {
            return;
        }
        let threads = self.threads.load(Ordering::SeqCst);
        if threads == 0 {
            return tell_in_turn(&listeners);
        }
        let per_chunk = listeners.len().div_ceil(threads).max(LISTENERS_PER_CHUNK);
        let mut state = self.state.lock();
        while !listeners.is_empty() {
            let chunk = listeners.split_off(listeners.len().saturating_sub(per_chunk));
            state.chunks.push_back(chunk);
        }
        drop(state);
        self.ready.notify_all();
    }

    /// Let the threads end (the notifier is going away).
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.ready.notify_all();
    }

    fn work(&self) {
        loop {
            let chunk = {
                let mut state = self.state.lock();
                loop {
                    if state.closed {
                        return;
                    }
                    if let Some(chunk) = state.chunks.pop_front() {
                        break chunk;
                    }
                    self.ready.wait(&mut state);
                }
            };
            tell_in_turn(&chunk);
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Tell listeners one after another on this thread, each leaving the next what it found.
fn tell_in_turn(listeners: &[Arc<dyn Listener>]) {
    let mut scratch = FanoutScratch::default();
    listeners.iter().for_each(|l| l.news(&mut scratch));
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// Records the order in which listeners are told.
    struct Recording {
        id: usize,
        told: mpsc::Sender<usize>,
    }

    impl Listener for Recording {
        fn news(&self, _: &mut FanoutScratch) {
            let _ = self.told.send(self.id);
        }
    }

    fn listeners(
        ids: std::ops::Range<usize>,
        told: &mpsc::Sender<usize>,
    ) -> Vec<Arc<dyn Listener>> {
        ids.map(|id| {
            Arc::new(Recording {
                id,
                told: told.clone(),
            }) as Arc<dyn Listener>
        })
        .collect()
    }

    #[test]
    fn every_listener_is_told_once_and_a_message_after_the_one_before() {
        let tellers = Arc::new(Tellers::default());
        tellers.start();
        let (told, heard) = mpsc::channel();
        let n = LISTENERS_PER_CHUNK * cores() * 4;
        // Two messages: the second's listeners are queued while the first's are told.
        tellers.tell(listeners(0..n, &told));
        tellers.tell(listeners(n..2 * n, &told));
        let mut order = Vec::new();
        while order.len() < 2 * n {
            let id = heard
                .recv_timeout(Duration::from_secs(10))
                .expect("every listener is told before the deadline");
            order.push(id);
        }
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..2 * n).collect::<Vec<_>>(),
            "each told exactly once"
        );
        // One thread per core: the second message's first listener is told only once a
        // thread has finished a chunk of the first, so at most the other threads' chunks of
        // the first message are still being told after it.
        let first_of_second = order.iter().position(|&id| id >= n).unwrap();
        let first_told_late = order[first_of_second..]
            .iter()
            .filter(|&&id| id < n)
            .count();
        let per_chunk = n.div_ceil(cores());
        assert!(
            first_told_late <= (cores() - 1) * per_chunk,
            "{first_told_late} of the first message's listeners were told after the second's began"
        );
        tellers.close();
    }

    #[test]
    fn before_the_threads_start_listeners_are_told_in_place() {
        let tellers = Tellers::default();
        let (told, heard) = mpsc::channel();
        tellers.tell(listeners(0..3, &told));
        assert_eq!(heard.try_iter().collect::<Vec<_>>(), vec![0, 1, 2]);
    }
}
