//! A TCP stream that knows when the bytes it read reached the socket.
//!
//! Delivery latency is "sent" to "arrived at the client". With thousands of simulated clients
//! in one process on the same cores as the server, the moment a receiver task gets to parse
//! its response also includes the load generator's own run queue: 10,000 responses that
//! arrived together are read one after another, by a process that a real deployment would
//! spread over 10,000 machines. The kernel stamps each received segment as it arrives
//! (`SO_TIMESTAMPNS`, software receive timestamps); `recvmsg` hands back the stamp of the last
//! segment a read consumed, so the stamp of the read that completed a response is when its
//! last byte arrived. The load generator reports both figures: on arrival (the server's
//! delivery) and once processed (arrival plus the load generator's queueing).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd as _;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

pub struct ArrivalStream {
    inner: TcpStream,
    /// `CLOCK_REALTIME` nanoseconds at which the last segment of the last read arrived (0:
    /// no stamp yet).
    arrived_ns: u64,
}

impl ArrivalStream {
    /// Connect, with receive timestamps on.
    pub async fn connect(addr: &str) -> io::Result<Self> {
        let inner = TcpStream::connect(addr).await?;
        inner.set_nodelay(true)?;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                inner.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            inner,
            arrived_ns: 0,
        })
    }

    /// When the bytes of the last read arrived (`CLOCK_REALTIME` ns), if stamped.
    pub fn arrived_ns(&self) -> Option<u64> {
        (self.arrived_ns > 0).then_some(self.arrived_ns)
    }

    /// The socket, for a loop of its own (`ws_loop.rs`); receive stamps stay on.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.inner.into_std()
    }

    fn recv_stamped(&self, buf: &mut [MaybeUninit<u8>]) -> io::Result<(usize, Option<u64>)> {
        recv_stamped(self.inner.as_raw_fd(), buf)
    }
}

/// One `recvmsg` on the socket `fd` into `buf`: the byte count and the arrival stamp, if any.
pub fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [MaybeUninit<u8>],
) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one SCM_TIMESTAMPNS (a timespec) control message, aligned.
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below outlives the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the caller's socket, and msg points at live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

impl AsyncRead for ArrivalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            // SAFETY: recvmsg only writes the bytes it reports, which are then marked filled.
            let unfilled = unsafe { buf.unfilled_mut() };
            let room = unfilled.len();
            // A read that didn't fill the buffer drained the socket (epoll is edge-triggered):
            // its result is kept aside and the closure reports "would block", so tokio clears
            // the readiness it saw before the read and the next read waits for the next edge
            // instead of costing a `recvmsg` that returns EAGAIN, once per response. tokio's
            // own TcpStream does the same; an edge that came during the read moved the
            // readiness tick, and is not cleared.
            let mut drained = None;
            let read = this.inner.try_io(Interest::READABLE, || {
                let (n, stamp) = this.recv_stamped(unfilled)?;
                if 0 < n && n < room {
                    drained = Some((n, stamp));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok((n, stamp))
            });
            let (n, stamp) = match (read, drained) {
                (_, Some(got)) | (Ok(got), None) => got,
                (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), None) => return Poll::Ready(Err(e)),
            };
            // SAFETY: recvmsg initialised the first n bytes.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            if let Some(stamp) = stamp {
                this.arrived_ns = stamp;
            }
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncWrite for ArrivalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Now, as `CLOCK_REALTIME` ns (the clock of the kernel's stamps).
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
