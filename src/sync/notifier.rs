//! The notifier: wakes the long-polls and WebSocket connections of the users a commit touches.
//!
//! A long-poll registers for its user's next news *before* it reads what is new, then waits
//! for it: a commit that lands between the read and the wait still wakes the registration the
//! long-poll already holds, so no wake-up is missed and nobody polls. Many woken long-polls
//! are paced (`wake_pacer.rs`), so they don't queue ahead of every other request. Only the
//! users a commit concerns are woken (the members of the room, the target of a membership
//! change, the owner of account data), so one message doesn't wake every client on the
//! server.
//!
//! A wake-up is released only once the stream's retired frontier covers the commit's position:
//! positions commit out of order across rooms, and a reader can only see up to the frontier, so
//! waking a user for position `p` while `p-1` is still in flight would make them read nothing
//! and sleep again. Pending wake-ups wait in a map until [`Notifier::release`] sees the
//! frontier pass them. Several Roost nodes will relay wake-ups over pub/sub; callers don't
//! change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};

use crate::storage::stream::StreamCounter;
use crate::sync::tellers::Tellers;
use crate::sync::v2::FanoutScratch;
use crate::sync::wake_pacer::{PollWaker, WakePacer, WakeTicket};

/// Something that takes a user's news itself when woken, instead of a task waking to look:
/// a WebSocket connection writes the response shared by every reader of a message straight
/// from the wake-up (`api/client/websocket/`). Called on the notifier's telling threads
/// (`tellers.rs`, outside the runtime), possibly on several at once; `scratch` is what the
/// thread's previous listener of the same wake-up left for the next (the window they all
/// read).
pub trait Listener: Send + Sync {
    fn news(&self, scratch: &mut FanoutScratch);
}

/// What wakes for one user. Under fan-out a message visits the entries of a room's thousands
/// of members, so what a visit touches beyond the entry itself is a cache miss each: the
/// first listener is kept in the entry (a user's only connection, as a rule) rather than
/// behind a vector's pointer.
#[derive(Default)]
struct Waiters {
    /// Long-polls registered for the next news: each is woken once, then registers again.
    polls: Vec<PollWaker>,
    first: Option<Arc<dyn Listener>>,
    more: Vec<Arc<dyn Listener>>,
}

impl Waiters {
    fn is_unused(&self) -> bool {
        self.first.is_none() && self.polls.is_empty()
    }
}

/// Whom a piece of news wakes.
#[derive(Default)]
struct Woken {
    listeners: Vec<Arc<dyn Listener>>,
    polls: Vec<PollWaker>,
}

/// Each user's waiters; entries go once nobody waits.
#[derive(Default)]
struct UserWaiters(Mutex<HashMap<String, Waiters>>);

impl UserWaiters {
    fn register_poll(&self, user_id: &str) -> oneshot::Receiver<WakeTicket> {
        let (waker, woken) = oneshot::channel();
        let mut users = self.0.lock();
        match users.get_mut(user_id) {
            Some(waiters) => {
                // Registrations whose long-poll answered without waiting (or timed out) are
                // gone.
                waiters.polls.retain(|p| !p.is_closed());
                waiters.polls.push(waker);
            }
            None => {
                let waiters = Waiters {
                    polls: vec![waker],
                    ..Waiters::default()
                };
                users.insert(user_id.to_owned(), waiters);
            }
        }
        woken
    }

    fn listen(&self, user_id: &str, listener: Arc<dyn Listener>) {
        let mut users = self.0.lock();
        let waiters = users.entry(user_id.to_owned()).or_default();
        if waiters.first.is_none() {
            waiters.first = Some(listener);
        } else {
            waiters.more.push(listener);
        }
    }

    fn unlisten(&self, user_id: &str, listener: &Arc<dyn Listener>) {
        let mut users = self.0.lock();
        let Some(waiters) = users.get_mut(user_id) else {
            return;
        };
        if waiters
            .first
            .as_ref()
            .is_some_and(|l| Arc::ptr_eq(l, listener))
        {
            waiters.first = waiters.more.pop();
        } else {
            waiters.more.retain(|l| !Arc::ptr_eq(l, listener));
        }
        if waiters.is_unused() {
            users.remove(user_id);
        }
    }

    /// The listeners and registered long-polls of these users, to be woken.
    fn take_woken<S: AsRef<str>>(&self, user_ids: impl IntoIterator<Item = S>) -> Woken {
        let mut woken = Woken::default();
        let mut users = self.0.lock();
        for user in user_ids {
            let user = user.as_ref();
            let Some(waiters) = users.get_mut(user) else {
                continue;
            };
            if let Some(first) = &waiters.first {
                woken.listeners.push(Arc::clone(first));
                woken.listeners.extend(waiters.more.iter().cloned());
            }
            let had_polls = !waiters.polls.is_empty();
            woken.polls.append(&mut waiters.polls);
            // Nobody waited: forget the user so the map stays small. A user whose long-poll
            // was just woken is kept until news finds nobody waiting, as they are usually
            // back in a moment (re-adding them per response was a key copy and an insert).
            if !had_polls && waiters.is_unused() {
                users.remove(user);
            }
        }
        woken
    }
}

/// Per user, a counter that their long-lived connections watch, counted up when a device or
/// token of the user goes away; entries go once nobody watches.
#[derive(Default)]
struct SessionWatch(Mutex<HashMap<String, watch::Sender<u64>>>);

impl SessionWatch {
    fn subscribe(&self, user_id: &str) -> watch::Receiver<u64> {
        let mut users = self.0.lock();
        users
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn count_up(&self, user_ids: impl IntoIterator<Item = String>) {
        let mut users = self.0.lock();
        for user in user_ids {
            let Some(counter) = users.get(&user) else {
                continue;
            };
            if counter.receiver_count() == 0 {
                users.remove(&user);
            } else {
                counter.send_modify(|n| *n += 1);
            }
        }
    }
}

/// A listener's registration: it is told of its user's news until this is dropped.
pub struct Listening {
    notifier: Arc<Notifier>,
    user_id: String,
    listener: Arc<dyn Listener>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.notifier.users.unlisten(&self.user_id, &self.listener);
    }
}

pub struct Notifier {
    stream: Arc<StreamCounter>,
    /// Who waits for a user's news (something readable for them was committed).
    users: UserWaiters,
    /// Who watches for a user's devices or tokens going away (connections must check theirs).
    sessions: SessionWatch,
    /// Wake-ups waiting for the frontier: position → users.
    pending: Mutex<BTreeMap<u64, Vec<String>>>,
    /// Wakes long-polls about a thousand at a time.
    pacer: Arc<WakePacer>,
    /// Tell listeners their news, message after message.
    tellers: Arc<Tellers>,
}

impl Notifier {
    pub fn new(stream: Arc<StreamCounter>) -> Self {
        Self {
            stream,
            users: UserWaiters::default(),
            sessions: SessionWatch::default(),
            pending: Mutex::new(BTreeMap::new()),
            pacer: Arc::default(),
            tellers: Arc::default(),
        }
    }

    /// Register for the user's next news: [`NextNews::arrived`] returns once something for
    /// them is readable after this call. Register before reading, so nothing is missed.
    pub fn next_news(&self, user_id: &str) -> NextNews {
        NextNews(self.users.register_poll(user_id))
    }

    /// Start watching a user's sessions: the receiver changes when a device or token of theirs
    /// is removed (a long-lived connection then checks that its own token still works). Kept
    /// apart from the user's news so a connection doesn't re-check its token on every
    /// message.
    pub fn watch_sessions(&self, user_id: &str) -> watch::Receiver<u64> {
        self.sessions.subscribe(user_id)
    }

    /// Tell `listener` of the user's news (whenever [`Self::next_news`] would wake) for as
    /// long as the registration is kept.
    pub fn listen(self: &Arc<Self>, user_id: &str, listener: Arc<dyn Listener>) -> Listening {
        self.users.listen(user_id, Arc::clone(&listener));
        Listening {
            notifier: Arc::clone(self),
            user_id: user_id.to_owned(),
            listener,
        }
    }

    /// Devices or tokens of these users were removed.
    pub fn sessions_ended(&self, user_ids: impl IntoIterator<Item = String>) {
        self.sessions.count_up(user_ids);
    }

    /// A commit at stream position `pos` concerns these users: wake them once it is readable.
    /// The ids are borrowed where the wake-up is immediate (the usual case: the commit
    /// retired), so a room's member list is not copied per message.
    pub fn notify_at<S: AsRef<str>>(&self, pos: u64, user_ids: impl IntoIterator<Item = S>) {
        let mut pending = self.pending.lock();
        // Read the frontier under the lock `release` also takes, so no release can slip
        // between the check and the insert.
        if self.stream.frontier() >= pos {
            drop(pending);
            self.wake(user_ids);
        } else {
            pending
                .entry(pos)
                .or_default()
                .extend(user_ids.into_iter().map(|u| u.as_ref().to_owned()));
        }
    }

    /// The frontier moved to `frontier`: wake everyone whose commit is now readable.
    pub fn release(&self, frontier: u64) {
        let ready: Vec<String> = {
            let mut pending = self.pending.lock();
            let later = pending.split_off(&(frontier + 1));
            std::mem::replace(&mut *pending, later)
                .into_values()
                .flatten()
                .collect()
        };
        if !ready.is_empty() {
            self.wake(ready);
        }
    }

    /// Follow the frontier forever, releasing pending wake-ups; start the threads that tell
    /// listeners and the pacing of long-polls' wake-ups. Spawned once at start.
    pub async fn run(self: Arc<Self>) {
        self.tellers.start();
        tokio::spawn(Arc::clone(&self.pacer).run());
        let mut frontier = self.stream.subscribe();
        loop {
            let current = *frontier.borrow_and_update();
            self.release(current);
            if frontier.changed().await.is_err() {
                return;
            }
        }
    }

    fn wake<S: AsRef<str>>(&self, user_ids: impl IntoIterator<Item = S>) {
        let Woken { listeners, polls } = self.users.take_woken(user_ids);
        self.tellers.tell(listeners);
        self.pacer.wake(polls);
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.tellers.close();
    }
}

/// A long-poll's registration for its user's next news ([`Notifier::next_news`]).
pub struct NextNews(oneshot::Receiver<WakeTicket>);

impl NextNews {
    /// Wait for the news. `false` if it can no longer come (the server is shutting down).
    pub async fn arrived(self) -> bool {
        // The ticket is dropped here: this poll runs now, which makes room for the next.
        self.0.await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Notifier;
    use crate::storage::KvEngine;
    use crate::storage::rocks::{Family, RocksEngine, RocksSettings};
    use crate::storage::stream::StreamCounter;

    fn counter(dir: &std::path::Path) -> Arc<StreamCounter> {
        let db: Arc<dyn KvEngine> = Arc::new(
            RocksEngine::open(
                dir,
                &[Family::default_with(&[crate::storage::META])],
                &RocksSettings::for_tests(),
            )
            .unwrap(),
        );
        StreamCounter::load(db).unwrap()
    }

    struct Counting(std::sync::atomic::AtomicUsize);

    impl super::Listener for Counting {
        fn news(&self, _: &mut crate::sync::v2::FanoutScratch) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn told(listener: &Counting) -> usize {
        listener.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Until the notifier runs, listeners are told on the notifying thread: checked at once.
    #[test]
    fn every_listener_of_a_user_is_told_until_it_stops_listening() {
        let dir = tempfile::tempdir().unwrap();
        let stream = counter(dir.path());
        let notifier = Arc::new(Notifier::new(Arc::clone(&stream)));
        let (a, b) = (Arc::new(Counting(0.into())), Arc::new(Counting(0.into())));
        let listening_a = notifier.listen("@u:x", a.clone());
        let listening_b = notifier.listen("@u:x", b.clone());
        let mut long_poll = notifier.next_news("@u:x").0;
        let pos = stream.reserve().unwrap().pos();
        notifier.notify_at(pos, ["@u:x", "@nobody:x"]);
        assert_eq!((told(&a), told(&b)), (1, 1));
        assert!(long_poll.try_recv().is_ok(), "the long-poll is woken");

        drop(listening_a);
        let mut long_poll = notifier.next_news("@u:x").0;
        let pos = stream.reserve().unwrap().pos();
        notifier.notify_at(pos, ["@u:x"]);
        assert_eq!((told(&a), told(&b)), (1, 2), "only b listens");
        assert!(long_poll.try_recv().is_ok(), "the long-poll still wakes");

        drop(listening_b);
        // A long-poll that registered and answered without waiting leaves nothing behind
        // once news has found nobody waiting.
        drop(notifier.next_news("@u:x"));
        for _ in 0..2 {
            let pos = stream.reserve().unwrap().pos();
            notifier.notify_at(pos, ["@u:x"]);
        }
        assert_eq!((told(&a), told(&b)), (1, 2));
        assert!(
            notifier.users.0.lock().is_empty(),
            "a user nobody waits for is forgotten"
        );
    }

    #[tokio::test]
    async fn a_notification_between_subscribe_and_wait_is_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let stream = counter(dir.path());
        let notifier = Notifier::new(Arc::clone(&stream));
        let next = notifier.next_news("@a:x");
        let pos = stream.reserve().unwrap().pos(); // reserved and retired at once
        notifier.notify_at(pos, ["@a:x".to_owned()]);
        let arrived = tokio::time::timeout(std::time::Duration::from_secs(1), next.arrived());
        assert!(arrived.await.expect("woken"));
    }

    #[tokio::test]
    async fn wake_ups_wait_for_the_frontier_and_only_the_users_concerned_wake() {
        let dir = tempfile::tempdir().unwrap();
        let stream = counter(dir.path());
        let notifier = Notifier::new(Arc::clone(&stream));
        let mut a = notifier.next_news("@a:x").0;
        let mut b = notifier.next_news("@b:x").0;
        let earlier = stream.reserve().unwrap();
        let later = stream.reserve().unwrap();
        let later_pos = later.pos();
        drop(later);
        notifier.notify_at(later_pos, ["@a:x".to_owned()]);
        assert!(
            a.try_recv().is_err(),
            "position {later_pos} isn't readable while {} is in flight",
            earlier.pos()
        );
        drop(earlier);
        notifier.release(stream.frontier());
        assert!(a.try_recv().is_ok());
        assert!(b.try_recv().is_err(), "b was not concerned");
    }

    #[test]
    fn ended_sessions_reach_only_their_users_watchers_and_unwatched_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Notifier::new(counter(dir.path()));
        let mut a = notifier.watch_sessions("@a:x");
        let b = notifier.watch_sessions("@b:x");
        notifier.sessions_ended(["@a:x".to_owned()]);
        assert!(
            a.has_changed().unwrap(),
            "a's watcher sees a's ended session"
        );
        assert!(!b.has_changed().unwrap(), "b's doesn't");
        a.borrow_and_update();
        drop(b);
        notifier.sessions_ended(["@b:x".to_owned(), "@c:x".to_owned()]);
        assert!(!a.has_changed().unwrap());
        assert_eq!(
            notifier.sessions.0.lock().len(),
            1,
            "b's entry went with its last watcher; c never had one"
        );
    }
}
