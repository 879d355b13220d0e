//! Who is at the other end of a client connection: its address, and its socket.

use std::net::SocketAddr;

use tokio::net::TcpStream;

/// Who connected to the client listener (axum's `ConnectInfo`, in every request's
/// extensions; `server.rs`'s `ClientListener` accepts with it): the peer's address, and the
/// accepted socket's descriptor, so that an upgraded WebSocket can write to its socket
/// without going through the upgraded stream's layers (`api/client/websocket/outbound.rs`:
/// a message's fan-out writes to thousands of them).
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The accepted socket. The connection owns it and closes it when it ends, so the number
    /// means that socket only while something keeps the connection's stream alive.
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
}

impl Peer {
    /// The peer of a socket the client listener accepted from `addr`.
    pub fn accepted(addr: SocketAddr, socket: &TcpStream) -> Self {
        Self {
            addr,
            #[cfg(unix)]
            fd: std::os::fd::AsRawFd::as_raw_fd(socket),
        }
    }

    /// The connection's socket, to write to from outside the stream that owns it; `None`
    /// where that isn't supported, or if the descriptor doesn't lead to this peer.
    ///
    /// Only for the handler of an HTTP/1 request that came over this connection: HTTP/1
    /// handlers run inside the connection's own future, which owns the socket, so it is the
    /// connection's while they run. (HTTP/2 runs each stream's handler in a task of its own,
    /// which may outlive the connection.) The peer address is checked anyway.
    #[cfg(unix)]
    pub fn socket(&self) -> Option<SocketFd> {
        use std::os::fd::BorrowedFd;
        // SAFETY: borrowed for this call only. The caller's contract keeps the descriptor
        // open; were it closed, `getpeername` fails, and were its number taken by another
        // socket since, the address check refuses it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let socket = socket2::SockRef::from(&borrowed);
        if socket.peer_addr().ok()?.as_socket()? != self.addr {
            return None;
        }
        // Already so (tokio made it non-blocking): said again because a write through it
        // must never wait.
        socket.set_nonblocking(true).ok()?;
        Some(SocketFd(self.fd))
    }

    #[cfg(not(unix))]
    pub fn socket(&self) -> Option<SocketFd> {
        None
    }
}

/// A connection's socket by its number, written to beside the stream that owns it.
///
/// Not a descriptor of its own (a `dup`): that would take two of the process's open files
/// per WebSocket, and 10,000 clients would need a limit of 20,000. So the socket is only
/// valid while the stream that owns it is, which is what [`SocketFd::send`] asks.
#[derive(Clone, Copy, Debug)]
pub struct SocketFd(#[cfg(unix)] std::os::fd::RawFd);

impl SocketFd {
    /// Write what the socket takes now, without waiting (`MSG_DONTWAIT`) and without
    /// `SIGPIPE` on a closed connection: the byte count, or `WouldBlock` if it takes nothing.
    ///
    /// # Safety
    ///
    /// The caller keeps the connection's stream (or a half of it) alive across the call, so
    /// that the number still names this socket.
    #[cfg(unix)]
    pub unsafe fn send(&self, bytes: &[u8]) -> std::io::Result<usize> {
        // SAFETY: the descriptor is open (the caller's contract) and the buffer is valid for
        // `bytes.len()` bytes.
        let sent = unsafe {
            libc::send(
                self.0,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if sent < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        }
    }

    /// # Safety
    ///
    /// As on unix.
    #[cfg(not(unix))]
    pub unsafe fn send(&self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[tokio::test]
    async fn the_socket_is_the_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, addr) = listener.accept().await.unwrap();
        let socket = Peer::accepted(addr, &accepted)
            .socket()
            .expect("the connection's socket");
        // SAFETY: `accepted` owns the socket and lives to the end of the test.
        let sent = unsafe { socket.send(b"hello") }.unwrap();
        assert_eq!(sent, 5);
        let mut got = [0u8; 5];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        let elsewhere = Peer {
            addr: "127.0.0.1:1".parse().unwrap(),
            ..Peer::accepted(addr, &accepted)
        };
        assert!(
            elsewhere.socket().is_none(),
            "a descriptor that leads to another peer is refused"
        );
    }

    #[tokio::test]
    async fn a_full_socket_takes_nothing_and_says_so() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, addr) = listener.accept().await.unwrap();
        let socket = Peer::accepted(addr, &accepted).socket().unwrap();
        let chunk = vec![0u8; 1 << 16];
        // The client never reads: the buffers fill, and then a send takes nothing.
        let full = (0..10_000).find_map(|_| {
            // SAFETY: `accepted` owns the socket and lives to the end of the test.
            unsafe { socket.send(&chunk) }.err()
        });
        assert_eq!(full.map(|e| e.kind()), Some(std::io::ErrorKind::WouldBlock));
    }
}
