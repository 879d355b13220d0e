//! A connection's sending side, shared by its task and the notifier's wake-ups.
//!
//! Under fan-out one message is news for thousands of connections, and for nearly all of them
//! the response is the one shared by every reader of the message (`sync/v2/shared_reply.rs`),
//! already framed. Waking each connection's task to find that out and write it cost more than
//! the write itself. So a connection whose task has nothing to do (its last response is
//! written, its window is open, and it found nothing new: *idle*) is a [`Listener`]: the
//! wake-up asks for the shared response and writes its frame to the socket without waiting
//! (the kernel's socket buffer takes it whole, or the rest is queued for the task). Anything
//! else — news that isn't the shared response, a socket that can't take it all, a connection
//! that isn't idle — wakes the task, which works out the full response as before.
//!
//! Everything either side writes goes through the state's lock, in order: the wake-up writes
//! only while the task is idle with nothing queued, and the task marks itself busy (under the
//! lock) before it computes or writes. A response is *sent* once its bytes are written or
//! queued: the next one starts where it ended, whoever makes it.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, WriteHalf};
use tokio::sync::Notify;

use super::WINDOW;
use crate::http::peer::SocketFd;
use crate::sync::notifier::Listener;
use crate::sync::v2::{FanoutScratch, JoinedMemo, SharedNews, SyncParams, SyncService};
use crate::users::Identity;

/// The upgraded connection: a TCP socket (`hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>`),
/// or in tests an in-memory pipe.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}
pub type Socket = Box<dyn Io>;

pub struct Outbound {
    state: Mutex<State>,
    /// Wakes the task: there may be news it must work out, or bytes it must write.
    pub task: Notify,
    sync: Arc<SyncService>,
    identity: Identity,
    /// The connection's filter (its `since` is `State::sent`).
    params: SyncParams,
}

pub struct State {
    write: WriteHalf<Socket>,
    /// The same socket by number (`http/peer.rs`), when the listener gave it: the wake-ups
    /// write the shared frame to it with one `send`. Through `write` it took the split
    /// stream's lock, hyper's upgraded stream and tokio's readiness check, each a cache miss
    /// per connection under fan-out (about 5 % of the server's CPU with 10,000 WebSockets).
    /// Valid because `write` keeps the socket open for as long as this state is. tokio is
    /// not told: a socket that can't take more makes the next write through `write` find
    /// that out itself.
    direct: Option<SocketFd>,
    /// Frames to write, in order; the first may be partly written already.
    queue: VecDeque<Bytes>,
    /// The task waits for news with nothing to write and room in its window: news may be
    /// answered by the wake-up itself.
    idle: bool,
    /// Writing failed or the connection is over: nobody writes any more.
    closed: bool,
    /// The position of the last response sent (the next one starts after it); at first the
    /// `since` the client connected with.
    pub sent: Option<u64>,
    /// Each unacknowledged response's position, oldest first, with when it was sent.
    pub unacked: VecDeque<(u64, tokio::time::Instant)>,
    /// What the last shared response found of the user's membership.
    joined: JoinedMemo,
}

impl State {
    pub fn window_open(&self) -> bool {
        self.unacked.len() < WINDOW
    }

    /// A response ending at `pos` is written or queued.
    fn sent(&mut self, pos: u64) {
        self.unacked.push_back((pos, tokio::time::Instant::now()));
        self.sent = Some(pos);
    }

    /// Queue a frame for the task to write (after anything queued before).
    pub fn queue(&mut self, frame: Bytes) {
        self.idle = false;
        self.queue.push_back(frame);
    }

    /// Queue a response's frame; it ends at `pos`.
    pub fn queue_response(&mut self, frame: Bytes, pos: u64) {
        self.queue(frame);
        self.sent(pos);
    }

    pub fn oldest_sent_at(&self) -> Option<tokio::time::Instant> {
        self.unacked.front().map(|(_, at)| *at)
    }

    /// The client acknowledged the response ending at `pos`, and with it every earlier one;
    /// `false` if no unacknowledged response ends there.
    pub fn acknowledge(&mut self, pos: u64) -> bool {
        let Some(acked) = self.unacked.iter().position(|(p, _)| *p == pos) else {
            return false;
        };
        self.unacked.drain(..=acked);
        true
    }

    pub fn is_idle(&self) -> bool {
        self.idle
    }

    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// The task waits for news now: idle if there is nothing to write and room to send.
    pub fn wait_for_news(&mut self) {
        self.idle = self.queue.is_empty() && self.window_open() && !self.closed;
    }

    /// The task works out a response or writes: the wake-up leaves the socket alone.
    pub fn busy(&mut self) {
        self.idle = false;
    }

    pub fn close(&mut self) {
        self.closed = true;
        self.idle = false;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Write what is queued, as far as the socket takes it now; `Pending` (with `cx` woken
    /// once it takes more) while some is left.
    pub fn poll_write_queue(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some(front) = self.queue.front_mut() {
            match Pin::new(&mut self.write).poll_write(cx, front) {
                Poll::Ready(Ok(0)) => {
                    self.closed = true;
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) if n == front.len() => {
                    self.queue.pop_front();
                }
                Poll::Ready(Ok(n)) => {
                    let _ = front.split_to(n);
                }
                Poll::Ready(Err(e)) => {
                    self.closed = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl Outbound {
    pub fn new(
        write: WriteHalf<Socket>,
        direct: Option<SocketFd>,
        sent: Option<u64>,
        sync: Arc<SyncService>,
        identity: Identity,
        params: SyncParams,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                write,
                direct,
                queue: VecDeque::new(),
                idle: false,
                closed: false,
                sent,
                unacked: VecDeque::with_capacity(WINDOW),
                joined: JoinedMemo::default(),
            }),
            task: Notify::new(),
            sync,
            identity,
            params,
        }
    }

    pub fn state(&self) -> parking_lot::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Write what is queued; done when all of it is written.
    pub async fn write_queue(&self) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.state.lock().poll_write_queue(cx)).await
    }

    fn wake_task(&self, state: &mut State) {
        state.idle = false;
        self.task.notify_one();
    }
}

impl Listener for Outbound {
    fn news(&self, scratch: &mut FanoutScratch) {
        let mut state = self.state.lock();
        if !state.idle {
            // The task is at work (or waits for an ack); it looks again once done.
            drop(state);
            self.task.notify_one();
            return;
        }
        let State { sent, joined, .. } = &mut *state;
        let reply =
            match self
                .sync
                .shared_news(&self.identity, *sent, &self.params, joined, scratch)
            {
                Ok(SharedNews::Nothing) => return,
                Ok(SharedNews::Shared(reply)) => reply,
                Ok(SharedNews::Other) | Err(_) => return self.wake_task(&mut state),
            };
        // Written now, without waiting, as far as the socket takes it: by a direct `send`, or
        // through the stream with a waker that does nothing, because the task, not this
        // thread, finishes a write that can't complete now. Written from the
        // shared frame itself rather than queued and then written by `poll_write_queue`: the
        // queue holds its own handle to the frame, and a handle taken and dropped per
        // connection (as the WebSocket library's framing did) was 2 % of the server's CPU
        // under fan-out, the threads contending for the frame's reference count.
        let frame = &reply.ws_frame;
        let written = match &state.direct {
            // SAFETY: `state.write`, a half of the connection's stream, keeps the socket open
            // across the call.
            Some(socket) => match unsafe { socket.send(frame) } {
                Ok(n) => Poll::Ready(Ok(n)),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    Poll::Pending
                }
                Err(e) => Poll::Ready(Err(e)),
            },
            None => {
                let mut cx = Context::from_waker(Waker::noop());
                Pin::new(&mut state.write).poll_write(&mut cx, frame)
            }
        };
        match written {
            Poll::Ready(Ok(n)) if n == frame.len() => {
                state.sent(reply.pos);
                // A full window: the task waits for an ack before anything more goes.
                state.idle = state.window_open();
            }
            Poll::Ready(Ok(n)) => {
                state.queue_response(frame.slice(n..), reply.pos);
                self.wake_task(&mut state);
            }
            Poll::Pending => {
                state.queue_response(frame.clone(), reply.pos);
                self.wake_task(&mut state);
            }
            Poll::Ready(Err(_)) => {
                state.close();
                self.task.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use ruma::{OwnedRoomId, OwnedUserId};
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt as _, DuplexStream};

    use super::{FanoutScratch, Outbound, Socket};
    use crate::events::PduTemplate;
    use crate::rooms::create::{CreateRoom, Preset};
    use crate::services::Services;
    use crate::sync::filter::SyncFilter;
    use crate::sync::notifier::Listener as _;
    use crate::sync::v2::SyncParams;
    use crate::users::Identity;

    fn user(id: &str) -> OwnedUserId {
        OwnedUserId::try_from(id).unwrap()
    }

    /// A public room of alice's that bob joined.
    async fn room(services: &Services) -> OwnedRoomId {
        let create = CreateRoom {
            preset: Some(Preset::PublicChat),
            ..CreateRoom::default()
        };
        let room_id = services
            .rooms
            .create_room(&user("@alice:localhost"), create)
            .await
            .unwrap();
        let join = PduTemplate::state(
            "m.room.member",
            "@bob:localhost",
            json!({"membership": "join"}),
        );
        services
            .rooms
            .append(&room_id, &user("@bob:localhost"), join)
            .await
            .unwrap();
        room_id
    }

    async fn say(services: &Services, room_id: &OwnedRoomId, body: &str) {
        let message = PduTemplate::message("m.room.message", json!({"body": body}));
        let alice = user("@alice:localhost");
        services
            .rooms
            .append(room_id, &alice, message)
            .await
            .unwrap();
    }

    /// Bob's connection, idle at the frontier, writing into a pipe that holds `capacity`
    /// bytes; the pipe's other end, and the write half to fill it with.
    fn idle_connection(services: &Services, capacity: usize) -> (Arc<Outbound>, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(capacity);
        let socket: Socket = Box::new(ours);
        let (_, write) = tokio::io::split(socket);
        let params = SyncParams {
            since: None,
            since_confirms: false,
            full_state: false,
            filter: Arc::new(SyncFilter::default()),
            timeout: None,
            set_presence: None,
            use_state_after: false,
        };
        let bob = Identity {
            user_id: user("@bob:localhost"),
            device_id: "D".into(),
        };
        let since = Some(services.stream.frontier());
        let out = Arc::new(Outbound::new(
            write,
            None,
            since,
            Arc::clone(&services.sync),
            bob,
            params,
        ));
        out.state().wait_for_news();
        (out, theirs)
    }

    /// The bodies of the messages in the next frame the pipe carries.
    async fn next_frame(theirs: &mut DuplexStream) -> Vec<String> {
        let mut header = [0u8; 2];
        theirs.read_exact(&mut header).await.unwrap();
        assert_eq!(header[0], 0x81, "a whole text frame");
        let len = match header[1] {
            126 => usize::from(theirs.read_u16().await.unwrap()),
            127 => theirs.read_u64().await.unwrap() as usize,
            n => usize::from(n),
        };
        let mut payload = vec![0; len];
        theirs.read_exact(&mut payload).await.unwrap();
        let message: Value = serde_json::from_slice(&payload).unwrap();
        let rooms = message["body"]["rooms"]["join"].as_object().unwrap();
        rooms
            .values()
            .flat_map(|r| r["timeline"]["events"].as_array().unwrap().clone())
            .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The task writing what is queued while the other end reads a frame (within 5 s): the
    /// frame's messages.
    async fn written_and_read(out: &Outbound, theirs: &mut DuplexStream) -> Vec<String> {
        let both = async { tokio::join!(out.write_queue(), next_frame(theirs)) };
        let (written, frame) = tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("the whole frame, in time");
        written.unwrap();
        frame
    }

    #[tokio::test]
    async fn news_is_written_by_the_wake_up_while_the_task_is_idle() {
        let (_dir, services) = Services::fresh_for_tests();
        let room_id = room(&services).await;
        let (out, mut theirs) = idle_connection(&services, 64 * 1024);
        say(&services, &room_id, "one").await;
        out.news(&mut FanoutScratch::default());
        {
            let state = out.state();
            assert!(
                state.is_idle() && !state.has_queued(),
                "written whole, still idle"
            );
            assert_eq!(state.sent, Some(services.stream.frontier()));
            assert_eq!(state.unacked.len(), 1);
        }
        assert_eq!(next_frame(&mut theirs).await, ["one"]);
        // Told again with nothing new: nothing is written.
        out.news(&mut FanoutScratch::default());
        assert_eq!(out.state().unacked.len(), 1);
    }

    #[tokio::test]
    async fn what_the_socket_cannot_take_now_is_written_by_the_task_in_order() {
        let (_dir, services) = Services::fresh_for_tests();
        let room_id = room(&services).await;
        // Smaller than the response: part of it is written, the rest queued.
        let (out, mut theirs) = idle_connection(&services, 100);
        say(&services, &room_id, "one").await;
        out.news(&mut FanoutScratch::default());
        {
            let state = out.state();
            assert!(!state.is_idle() && state.has_queued());
            assert_eq!(
                state.sent,
                Some(services.stream.frontier()),
                "sent once queued"
            );
        }
        tokio::time::timeout(Duration::from_secs(1), out.task.notified())
            .await
            .expect("the task is told to write");
        // The task is at work: later news waits for it.
        say(&services, &room_id, "two").await;
        out.news(&mut FanoutScratch::default());
        assert_eq!(out.state().unacked.len(), 1);
        assert_eq!(written_and_read(&out, &mut theirs).await, ["one"]);
    }

    #[tokio::test]
    async fn a_response_to_a_full_socket_is_queued_whole() {
        let (_dir, services) = Services::fresh_for_tests();
        let room_id = room(&services).await;
        let (out, mut theirs) = idle_connection(&services, 100);
        // Something already fills the pipe.
        {
            let mut state = out.state();
            state.queue(vec![0u8; 100].into());
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            assert!(state.poll_write_queue(&mut cx).is_ready());
            state.wait_for_news();
        }
        say(&services, &room_id, "one").await;
        out.news(&mut FanoutScratch::default());
        assert!(out.state().has_queued());
        let mut filler = [0u8; 100];
        theirs.read_exact(&mut filler).await.unwrap();
        assert_eq!(written_and_read(&out, &mut theirs).await, ["one"]);
    }

    #[tokio::test]
    async fn with_the_window_full_the_wake_up_leaves_news_to_the_task() {
        let (_dir, services) = Services::fresh_for_tests();
        let room_id = room(&services).await;
        let (out, mut theirs) = idle_connection(&services, 1024 * 1024);
        for i in 0..super::WINDOW {
            say(&services, &room_id, &format!("m{i}")).await;
            out.news(&mut FanoutScratch::default());
        }
        assert!(!out.state().is_idle(), "a full window is not idle");
        say(&services, &room_id, "beyond").await;
        out.news(&mut FanoutScratch::default());
        assert_eq!(out.state().unacked.len(), super::WINDOW);
        for i in 0..super::WINDOW {
            assert_eq!(next_frame(&mut theirs).await, [format!("m{i}")]);
        }
    }
}
