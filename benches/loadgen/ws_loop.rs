//! The WebSocket receivers' steady state: a few threads, each with an epoll of its own, read
//! and ack thousands of connections.
//!
//! Ten thousand receivers share the two cores with the server they measure. As tokio tasks,
//! each response cost a task wake-up, a readiness future and a timer re-armed for the quiet
//! ack on top of the read itself: about half of the load generator's CPU, all of it taken
//! from the server. Here a thread reads every ready socket in turn (edge-triggered, each
//! drained until a short read), scans what it read in place (`scan.rs`), acks as the policy
//! says, and looks for quiet streams to ack once per sweep rather than with a timer per
//! connection.
//!
//! A loop may also *pause* instead of waiting in epoll (`--ws-poll-pause-us`): it looks for
//! ready sockets without blocking and sleeps for the pause when there are none. On loopback,
//! the server's `send` delivers into the receiver's socket itself, and when a receiver thread
//! is asleep in epoll, waking it (an inter-processor interrupt in a VM) is part of the
//! server's send, once per response: an artifact of sharing the machine with 10,000 clients
//! that real clients, on machines of their own, don't impose. A loop that sleeps rather than
//! waits is woken by its timer only. Arrival times come from the kernel's receive stamps
//! either way (`arrival.rs`): the pause delays only the `processed` figures.

//!
//! A receiver connects and upgrades in its tokio task (`ws_client.rs`), hands the socket to a
//! loop, and waits for the [`Outcome`]: done, failed (the task reconnects from the last
//! `next_batch` it processed, with what it has received so far), or stopped.

use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::os::fd::AsRawFd as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ws_client::{frame_header, masked_frame};
use super::{
    AckPolicy, Deliveries, FanCtx, Received, WsMsg, ack_message, arrival, log_err_once, scan,
};

/// An upgraded connection handed to a loop.
pub struct Handoff {
    pub stream: TcpStream,
    /// Bytes read past the handshake.
    pub leftover: Vec<u8>,
    pub mask: u32,
    pub got: Received,
    /// The `next_batch` of the last response processed.
    pub since: String,
    pub report: tokio::sync::oneshot::Sender<Outcome>,
}

pub enum Outcome {
    /// Every message of the run arrived.
    Done,
    /// The connection failed (counted and logged): reconnect from `since`.
    Failed { got: Received, since: String },
    /// The run is over.
    Stopped,
}

pub struct Loops {
    hand: Vec<mpsc::Sender<Handoff>>,
    next: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// How long a loop waits for events before it looks for quiet streams, new connections and
/// the end of the run.
const SWEEP: Duration = Duration::from_millis(20);
/// A connection's response that is checked against the full parse is one of its first this
/// many (`Loop::next_turns`).
const CHECK_SPREAD: usize = 8;
/// Read buffer per thread (a connection keeps only the part of a frame not yet in).
const SCRATCH: usize = 256 * 1024;

impl Loops {
    pub fn start(threads: usize, ctx: &Arc<FanCtx>, acks: AckPolicy, pause: Duration) -> Self {
        let (hand, threads): (Vec<_>, Vec<_>) = (0..threads.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::channel();
                let ctx = Arc::clone(ctx);
                let thread = std::thread::Builder::new()
                    .name(format!("ws-loop-{i}"))
                    .spawn(move || Loop::new(ctx, acks, pause).run(rx))
                    .expect("a loop thread");
                (tx, thread)
            })
            .unzip();
        Self {
            hand,
            next: AtomicUsize::new(0),
            threads: Mutex::new(threads),
        }
    }

    /// Give a connection to the next loop, round robin.
    pub fn hand(&self, handoff: Handoff) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.hand.len();
        if let Err(mpsc::SendError(h)) = self.hand[i].send(handoff) {
            let _ = h.report.send(Outcome::Stopped);
        }
    }

    /// Wait for the loops to end (once the run's `stop` is set), their figures handed over.
    pub fn join(&self) {
        for thread in self.threads.lock().unwrap().drain(..) {
            let _ = thread.join();
        }
    }
}

struct Conn {
    stream: TcpStream,
    /// The start of a frame not wholly read yet.
    partial: Vec<u8>,
    /// Bytes the socket didn't take yet (an ack or a pong).
    unwritten: Vec<u8>,
    mask: u32,
    got: Received,
    since: String,
    report: tokio::sync::oneshot::Sender<Outcome>,
    /// Responses processed and not yet acknowledged.
    unacked: usize,
    /// Responses to process before the next ack: `every` after each ack, and a share of it
    /// at first, so that receivers ack at staggered moments (see [`Loop::next_turns`]).
    until_ack: usize,
    /// Responses on this connection so far.
    responses: usize,
    /// Which of them is also read by the full parse, to check the scan (see
    /// [`Loop::next_turns`]).
    check_at: usize,
    last_response: Instant,
}

struct Loop {
    ctx: Arc<FanCtx>,
    acks: AckPolicy,
    /// How long to sleep when no socket is ready (zero: block in epoll instead).
    pause: Duration,
    epoll: i32,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    scanner: scan::Scanner,
    seqs: Vec<u64>,
    sink: Deliveries,
    scratch: Vec<MaybeUninit<u8>>,
    /// Connections that received everything, with their masking state: closed at the end.
    finished: Vec<(TcpStream, u32)>,
}

/// Why a connection ends.
enum End {
    Done,
    Failed(String),
}

impl Loop {
    fn new(ctx: Arc<FanCtx>, acks: AckPolicy, pause: Duration) -> Self {
        // SAFETY: no arguments but flags.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(epoll >= 0, "epoll_create1: {}", io::Error::last_os_error());
        let scanner = scan::Scanner::new(&ctx.tag);
        Self {
            ctx,
            acks,
            pause,
            epoll,
            conns: Vec::new(),
            free: Vec::new(),
            scanner,
            seqs: Vec::new(),
            sink: Deliveries::default(),
            scratch: vec![MaybeUninit::uninit(); SCRATCH],
            finished: Vec::new(),
        }
    }

    fn run(mut self, incoming: mpsc::Receiver<Handoff>) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut last_sweep = Instant::now();
        loop {
            while let Ok(handoff) = incoming.try_recv() {
                self.adopt(handoff);
            }
            // Without a pause, wait in epoll for the next event (or the next sweep). With one,
            // only look, and sleep for the pause when nothing is ready.
            let wait = if self.pause.is_zero() {
                SWEEP.as_millis() as i32
            } else {
                0
            };
            // SAFETY: `events` is a live buffer of the stated length.
            let n = unsafe {
                libc::epoll_wait(self.epoll, events.as_mut_ptr(), events.len() as i32, wait)
            };
            for event in &events[..n.max(0) as usize] {
                let (flags, slot) = (event.events, event.u64 as usize);
                self.ready(slot, flags);
            }
            if n == 0 && !self.pause.is_zero() {
                std::thread::sleep(self.pause);
            }
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                self.ctx.flush(&mut self.sink);
                if self.ctx.stop.load(Ordering::Relaxed) {
                    break;
                }
                self.ack_quiet_streams();
            }
        }
        for slot in 0..self.conns.len() {
            if let Some(conn) = self.conns[slot].take() {
                let _ = conn.report.send(Outcome::Stopped);
            }
        }
        for (stream, mut mask) in self.finished.drain(..) {
            // Best effort, as a client leaving would.
            let _ = (&stream).write(&masked_frame(&mut mask, 0x8, &1000u16.to_be_bytes()));
        }
        // SAFETY: the loop's own epoll, closed once.
        unsafe { libc::close(self.epoll) };
    }

    /// A new connection's turn, counted across the run's connections: its first ack and its
    /// checked response are staggered by it.
    ///
    /// Responses before the first ack: 1, 2, … `every`, in turn. Receivers that all joined
    /// at once and all acked every `every`th response would all ack the same message, the
    /// server reading ten thousand acks in the fan-out of every `every`th one; clients that
    /// connected at different moments, as real ones do, ack at different ones.
    ///
    /// The response checked against the full parse: the first, second, … `CHECK_SPREAD`th,
    /// in turn. Checking every connection's first response put ten thousand full parses on
    /// the run's first message, 40 % more of the load generator's CPU in its fan-out, taken
    /// from the server: its deliveries were the run's latest.
    fn next_turns(&self) -> (usize, usize) {
        static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);
        let n = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        (n % self.acks.every + 1, n % CHECK_SPREAD)
    }

    fn adopt(&mut self, h: Handoff) {
        let (until_ack, check_at) = self.next_turns();
        let conn = Conn {
            stream: h.stream,
            partial: Vec::new(),
            unwritten: Vec::new(),
            mask: h.mask,
            got: h.got,
            since: h.since,
            report: h.report,
            unacked: 0,
            until_ack,
            responses: 0,
            check_at,
            last_response: Instant::now(),
        };
        let fd = conn.stream.as_raw_fd();
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        self.conns[slot] = Some(conn);
        let mut event = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: slot as u64,
        };
        // SAFETY: a live socket and epoll, and an event to copy.
        let rc = unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc != 0 {
            let why = format!("epoll_ctl: {}", io::Error::last_os_error());
            return self.end(slot, End::Failed(why));
        }
        // What came with the handshake's response (the socket's readiness is reported by
        // epoll once registered).
        if !h.leftover.is_empty() {
            let result = self.frames(slot, &h.leftover, None);
            self.settle(slot, result);
        }
    }

    /// The socket in `slot` is ready for `flags`.
    fn ready(&mut self, slot: usize, flags: u32) {
        if self.conns.get(slot).is_none_or(Option::is_none) {
            return;
        }
        let result = self.write_pending(slot).and_then(|()| {
            if flags & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLERR | libc::EPOLLHUP) as u32
                != 0
            {
                self.read(slot)
            } else {
                Ok(None)
            }
        });
        self.settle(slot, result);
    }

    fn settle(&mut self, slot: usize, result: Result<Option<End>, String>) {
        match result {
            Ok(None) => {}
            Ok(Some(end)) => self.end(slot, end),
            Err(why) => self.end(slot, End::Failed(why)),
        }
    }

    /// Read until the socket is drained, taking each frame as it completes.
    fn read(&mut self, slot: usize) -> Result<Option<End>, String> {
        // Out of `self` while its bytes are looked at (`frames` needs `self`).
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.read_with(slot, &mut scratch);
        self.scratch = scratch;
        result
    }

    fn read_with(
        &mut self,
        slot: usize,
        scratch: &mut [MaybeUninit<u8>],
    ) -> Result<Option<End>, String> {
        let fd = self.conn(slot).stream.as_raw_fd();
        loop {
            let (n, stamp) = match arrival::recv_stamped(fd, scratch) {
                Ok((0, _)) => return Err("ws read: closed by the server".into()),
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("ws read: {e}")),
            };
            // SAFETY: recvmsg initialised the first n bytes.
            let read: &[u8] = unsafe { std::slice::from_raw_parts(scratch.as_ptr().cast(), n) };
            // A frame begun in an earlier read continues here.
            let mut partial = std::mem::take(&mut self.conn(slot).partial);
            let end = if partial.is_empty() {
                self.frames(slot, read, stamp)?
            } else {
                partial.extend_from_slice(read);
                self.frames(slot, &partial, stamp)?
            };
            if end.is_some() {
                return Ok(end);
            }
            // A short read drained the socket: epoll reports the next arrival.
            if n < scratch.len() {
                return Ok(None);
            }
        }
    }

    /// Take the whole frames in `data` (the bytes after any taken before); keep the rest for
    /// the next read. `stamp`: when the last of `data` arrived.
    fn frames(
        &mut self,
        slot: usize,
        data: &[u8],
        stamp: Option<u64>,
    ) -> Result<Option<End>, String> {
        let mut at = 0;
        while let Some((first, start, len)) =
            frame_header(&data[at..]).map_err(|e| format!("ws frame: {e}"))?
        {
            if data.len() - at < start + len {
                break;
            }
            let payload = &data[at + start..at + start + len];
            at += start + len;
            match first & 0x0F {
                0x1 => {
                    if let Some(end) = self.text(slot, payload, stamp)? {
                        return Ok(Some(end));
                    }
                }
                0x8 => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    return Err(format!("ws close frame: {code:?}"));
                }
                0x9 => {
                    let conn = self.conn(slot);
                    let pong = masked_frame(&mut conn.mask, 0xA, payload);
                    self.write(slot, &pong)?;
                }
                _ => {}
            }
        }
        if at < data.len() {
            self.conn(slot).partial = data[at..].to_vec();
        }
        Ok(None)
    }

    /// A text message: a `sync` response to record and perhaps ack.
    fn text(
        &mut self,
        slot: usize,
        text: &[u8],
        stamp: Option<u64>,
    ) -> Result<Option<End>, String> {
        let rx = self.ctx.arrival(stamp, Instant::now());
        let Self {
            ctx,
            conns,
            scanner,
            seqs,
            sink,
            ..
        } = self;
        let conn = conns[slot].as_mut().expect("a live connection");
        let scanned = scanner.scan(text, seqs);
        if conn.responses == conn.check_at
            && !scan::agrees(scanned, seqs, text, &ctx.room, &ctx.tag)
        {
            ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
            log_err_once(ctx, "the scan of a message disagrees with its parse");
        }
        conn.responses += 1;
        if let Some(next_batch) = scanned {
            ctx.record(seqs.drain(..), false, rx, &mut conn.got, sink);
            conn.since.clear();
            conn.since.push_str(next_batch);
        } else {
            let parsed: WsMsg = match serde_json::from_slice(text) {
                Ok(p) => p,
                Err(e) => {
                    ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                    log_err_once(ctx, &format!("bad ws message: {e}"));
                    return Ok(None);
                }
            };
            let Some(body) = parsed.body.filter(|_| parsed.kind == "sync") else {
                return Ok(None);
            };
            conn.since = ctx.process(body, rx, &mut conn.got, sink);
        }
        conn.last_response = Instant::now();
        conn.unacked += 1;
        conn.until_ack -= 1;
        if conn.until_ack == 0 {
            self.ack(slot)?;
        }
        if self.conn(slot).got.n >= self.ctx.m {
            return Ok(Some(End::Done));
        }
        Ok(None)
    }

    /// Acknowledge what was processed.
    fn ack(&mut self, slot: usize) -> Result<(), String> {
        let every = self.acks.every;
        let conn = self.conn(slot);
        let frame = masked_frame(&mut conn.mask, 0x1, &ack_message(&conn.since));
        conn.unacked = 0;
        conn.until_ack = every;
        self.write(slot, &frame)
    }

    /// Write `bytes` after anything still unwritten; what the socket doesn't take now waits
    /// for its next readiness.
    fn write(&mut self, slot: usize, bytes: &[u8]) -> Result<(), String> {
        let conn = self.conn(slot);
        if !conn.unwritten.is_empty() {
            conn.unwritten.extend_from_slice(bytes);
            return Ok(());
        }
        match (&conn.stream).write(bytes) {
            Ok(n) => conn.unwritten.extend_from_slice(&bytes[n..]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.unwritten.extend_from_slice(bytes)
            }
            Err(e) => return Err(format!("ws write: {e}")),
        }
        Ok(())
    }

    fn write_pending(&mut self, slot: usize) -> Result<(), String> {
        let conn = self.conn(slot);
        while !conn.unwritten.is_empty() {
            match (&conn.stream).write(&conn.unwritten) {
                Ok(0) => return Err("ws write: closed".into()),
                Ok(n) => {
                    conn.unwritten.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("ws write: {e}")),
            }
        }
        Ok(())
    }

    /// Ack what is outstanding on streams quiet for the policy's idle time.
    fn ack_quiet_streams(&mut self) {
        let now = Instant::now();
        for slot in 0..self.conns.len() {
            let quiet = self.conns[slot]
                .as_ref()
                .is_some_and(|c| c.unacked > 0 && now - c.last_response >= self.acks.idle);
            if quiet && let Err(why) = self.ack(slot) {
                self.end(slot, End::Failed(why));
            }
        }
    }

    fn conn(&mut self, slot: usize) -> &mut Conn {
        self.conns[slot].as_mut().expect("a live connection")
    }

    /// The connection in `slot` ends: closed, deregistered and reported.
    fn end(&mut self, slot: usize, end: End) {
        let Some(conn) = self.conns[slot].take() else {
            return;
        };
        self.free.push(slot);
        let fd = conn.stream.as_raw_fd();
        // SAFETY: a registered socket (or one epoll refused: then this fails harmlessly).
        unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        let outcome = match end {
            End::Done => {
                // Closed once the run is over: ten thousand receivers closing as they get the
                // last message would make the server close connections during its fan-out.
                self.finished.push((conn.stream, conn.mask));
                // Everything this receiver recorded is in the run's figures before it counts
                // as done.
                self.ctx.flush(&mut self.sink);
                Outcome::Done
            }
            End::Failed(why) => {
                self.ctx.sync_errors.fetch_add(1, Ordering::Relaxed);
                log_err_once(&self.ctx, &why);
                Outcome::Failed {
                    got: conn.got,
                    since: conn.since,
                }
            }
        };
        let _ = conn.report.send(outcome);
    }
}
