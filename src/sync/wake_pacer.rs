//! Paced long-poll wake-ups: a message to a room of thousands wakes its long-polls about a
//! thousand at a time, so the request workers' run queue stays short and a new request (the
//! sender's next message) is read within milliseconds instead of behind every woken poll.
//!
//! Why: a woken long-poll is a task on the request runtime, and tokio runs woken tasks first
//! in, first out. Waking 10,000 at once queued 10,000 responses ahead of any socket that
//! became readable after them: measured at 10,000 long-polls, the sender's `PUT` took up to
//! 370 ms (p50 20 ms), and its message's fan-out started that much later. Paced, at most
//! [`MAX_QUEUED`] woken polls wait to run at any time; the rest wait here, in order, and each
//! woken poll that resumes makes room for the next. The work per reader is the same; what
//! changes is that other requests are not starved (and as the sender's message commits
//! sooner, its delivery is sooner too: docs/performance.md, "Session 11").
//!
//! Every wake-up is delivered: a poll that went away (its client hung up, its timeout struck)
//! hands its place back at once.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};

/// Woken polls that may wait to run at once. Each costs the server about 40 µs to answer,
/// so a request arriving behind a full queue waits about 20 ms on two cores. Smaller paces
/// fan-outs that need no pacing: with 256, 3,000 long-polls (whose fan-out keeps up
/// unpaced) were delivered later (p99 123–145 against 83–95 ms) at more CPU per message.
pub const MAX_QUEUED: usize = 1024;

/// The queue is refilled once it has drained to this: in batches, so the pacer runs once per
/// half a queue of wake-ups rather than once per wake-up.
const REFILL_AT: usize = MAX_QUEUED / 2;

/// A long-poll's registration for its next wake-up; what [`WakePacer::wake`] delivers to.
pub type PollWaker = oneshot::Sender<WakeTicket>;

/// Held by a woken poll until it runs; dropping it makes room for the next wake-up.
pub struct WakeTicket(Arc<WakePacer>);

impl Drop for WakeTicket {
    fn drop(&mut self) {
        let refill = {
            let mut state = self.0.state.lock();
            state.queued -= 1;
            state.queued == REFILL_AT && !state.waiting.is_empty()
        };
        if refill {
            self.0.refill.notify_one();
        }
    }
}

#[derive(Default)]
struct State {
    /// Polls woken whose tickets are not yet dropped.
    queued: usize,
    /// Polls to wake once there is room, oldest first.
    waiting: VecDeque<PollWaker>,
}

impl State {
    /// The oldest waiting polls that fit in the queue, counted as queued.
    fn take_fitting(&mut self) -> Vec<PollWaker> {
        let room = MAX_QUEUED.saturating_sub(self.queued);
        let take = room.min(self.waiting.len());
        self.queued += take;
        self.waiting.drain(..take).collect()
    }
}

#[derive(Default)]
pub struct WakePacer {
    state: Mutex<State>,
    /// Told when there is room again and polls wait.
    refill: Notify,
}

impl WakePacer {
    /// Wake these polls: those that fit at once, now; the rest in order as room frees up
    /// (by [`Self::run`]).
    pub fn wake(self: &Arc<Self>, polls: Vec<PollWaker>) {
        if polls.is_empty() {
            return;
        }
        let (now, some_wait) = {
            let mut state = self.state.lock();
            state.waiting.extend(polls);
            let now = state.take_fitting();
            (now, !state.waiting.is_empty())
        };
        self.deliver(now);
        if some_wait {
            self.refill.notify_one();
        }
    }

    /// Wake waiting polls as room frees up, for as long as the server runs. Spawned once
    /// at start, beside the notifier.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.refill.notified().await;
            let now = self.state.lock().take_fitting();
            self.deliver(now);
        }
    }

    /// Hand each poll its ticket. A poll that is gone returns it, which drops it: its place
    /// is free again. Outside the lock, as a ticket's drop takes it.
    fn deliver(self: &Arc<Self>, polls: Vec<PollWaker>) {
        for poll in polls {
            let _ = poll.send(WakeTicket(Arc::clone(self)));
        }
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.queued, state.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn polls(n: usize) -> (Vec<PollWaker>, Vec<oneshot::Receiver<WakeTicket>>) {
        (0..n).map(|_| oneshot::channel()).unzip()
    }

    async fn woken(rx: &mut oneshot::Receiver<WakeTicket>) -> WakeTicket {
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .expect("woken before the deadline")
            .expect("the pacer never drops a poll")
    }

    #[tokio::test]
    async fn wake_ups_beyond_the_queue_wait_their_turn_and_none_is_lost() {
        let pacer = Arc::new(WakePacer::default());
        tokio::spawn(Arc::clone(&pacer).run());
        let (tx, mut rx) = polls(MAX_QUEUED * 3);
        pacer.wake(tx);
        assert_eq!(pacer.counts(), (MAX_QUEUED, MAX_QUEUED * 2));
        let mut tickets = Vec::new();
        for rx in &mut rx[..MAX_QUEUED] {
            tickets.push(woken(rx).await);
        }
        assert!(
            rx[MAX_QUEUED].try_recv().is_err(),
            "the queue is full: the next poll waits"
        );

        // Half the woken polls run: the next batch is woken, in order.
        tickets.drain(..MAX_QUEUED - REFILL_AT);
        for rx in &mut rx[MAX_QUEUED..MAX_QUEUED + (MAX_QUEUED - REFILL_AT)] {
            tickets.push(woken(rx).await);
        }
        assert_eq!(pacer.counts().0, MAX_QUEUED);

        // Every poll is woken in the end.
        let mut next = MAX_QUEUED + (MAX_QUEUED - REFILL_AT);
        while next < rx.len() {
            tickets.clear();
            tickets.push(woken(&mut rx[next]).await);
            next += 1;
        }
        drop(tickets);
        assert_eq!(pacer.counts(), (0, 0));
    }

    #[tokio::test]
    async fn a_poll_that_went_away_hands_its_place_on() {
        let pacer = Arc::new(WakePacer::default());
        tokio::spawn(Arc::clone(&pacer).run());
        let (tx, mut rx) = polls(MAX_QUEUED + 1);
        // The first queue-full of polls hung up before their wake-up came.
        rx.drain(..MAX_QUEUED);
        pacer.wake(tx);
        let _last = woken(&mut rx[0]).await;
        assert_eq!(pacer.counts(), (1, 0));
    }
}
