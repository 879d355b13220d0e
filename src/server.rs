//! Running the server: bind the listeners, serve until told to stop.

use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, ListenerExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::http::peer::Peer;
use crate::services::Services;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Open storage, bind every configured listener and serve until SIGINT/SIGTERM.
///
/// Each bound address is printed on stdout as `listening <kind> <scheme>://ADDR`, which is
/// how scripts and the test harness learn the port when the config asks for port 0.
pub async fn run(config: Config) -> Result<(), BoxError> {
    // Load the certificate before anything else, so a bad one fails the start at once.
    let tls = match (&config.listeners.tls_cert, &config.listeners.tls_key) {
        (Some(cert), Some(key)) => Some(
            axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .map_err(|e| {
                    format!(
                        "listeners.tls_cert / tls_key ({}, {}): {e}",
                        cert.display(),
                        key.display()
                    )
                })?,
        ),
        _ => None,
    };
    let services = Services::open(config.clone())
        .map_err(|e| format!("opening database {}: {e}", config.database.path.display()))?;
    if config.registration.mode == crate::config::RegistrationMode::Open {
        tracing::warn!(
            "registration is OPEN: anyone who can reach this server can create accounts"
        );
    }

    let client = bind(config.listeners.client)
        .and_then(TcpListener::from_std)
        .map_err(|e| format!("listeners.client {}: {e}", config.listeners.client))?;
    println!("listening client http://{}", client.local_addr()?);
    // Wake-ups wait for the stream frontier; this task releases them as it moves.
    tokio::spawn(Arc::clone(&services.notifier).run());
    tokio::spawn(Arc::clone(&services.typing).run_expiry());
    let mut tasks = tokio::task::JoinSet::new();
    let app = crate::http::app(Arc::clone(&services));
    tasks.spawn(async move {
        axum::serve(
            ClientListener(client),
            app.into_make_service_with_connect_info::<Peer>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
    });

    if let Some(addr) = config.listeners.federation {
        let app = crate::http::federation_app(Arc::clone(&services));
        match tls {
            // TLS terminated here (the port 8448 that other servers connect to directly).
            Some(tls) => {
                let listener =
                    bind(addr).map_err(|e| format!("listeners.federation {addr}: {e}"))?;
                println!("listening federation https://{}", listener.local_addr()?);
                let handle = axum_server::Handle::new();
                let shutdown = handle.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
                });
                let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls)
                    .acceptor(axum_server::accept::NoDelayAcceptor::new());
                let server = axum_server::from_tcp(listener)?
                    .acceptor(acceptor)
                    .handle(handle);
                tasks.spawn(async move { server.serve(app.into_make_service()).await });
            }
            // Plain HTTP, behind a TLS-terminating proxy.
            None => {
                let listener = bind(addr)
                    .and_then(TcpListener::from_std)
                    .map_err(|e| format!("listeners.federation {addr}: {e}"))?;
                println!("listening federation http://{}", listener.local_addr()?);
                tasks.spawn(async move {
                    axum::serve(listener.tap_io(no_delay), app)
                        .with_graceful_shutdown(shutdown_signal())
                        .await
                });
            }
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Everything start-up runs has run: give back the memory only it used (startup_memory.rs).
    crate::startup_memory::give_back();

    while let Some(result) = tasks.join_next().await {
        result??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connections that may wait to be accepted. The kernel caps it at `net.core.somaxconn`
/// (4096 by default since Linux 5.4), so asking for more takes whatever the operator allows.
/// When every client of a workspace reconnects at once (after a restart, or a network blip),
/// thousands of connections arrive within a second; with tokio's default of 1024, the queue
/// overflowed under 10,000 WebSockets connecting together, and a handshake that the kernel
/// dropped then and answered too late was reset (docs/performance.md, session 10).
const LISTEN_BACKLOG: i32 = 65_535;

/// A non-blocking listening socket on `addr` with [`LISTEN_BACKLOG`]; `SO_REUSEADDR` as
/// tokio's own `bind` sets it, so a restart doesn't wait for the old connections' TIME_WAIT.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// The client listener: accepted sockets send at once ([`no_delay`]), and requests learn who
/// connected as a [`Peer`] (its address, and its socket for the WebSocket transport).
struct ClientListener(TcpListener);

impl axum::serve::Listener for ClientListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (TcpStream, std::net::SocketAddr) {
        // tokio's listener as axum drives it: accept errors are retried there.
        let (mut socket, addr) = axum::serve::Listener::accept(&mut self.0).await;
        no_delay(&mut socket);
        (socket, addr)
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, ClientListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ClientListener>) -> Self {
        Peer::accepted(*stream.remote_addr(), stream.io())
    }
}

/// Every accepted connection sends at once (`TCP_NODELAY`). Sync pushes small responses,
/// one per message: with Nagle's algorithm, one written while the client's kernel had not yet
/// acknowledged the last (it delays acks by up to 40 ms, longer while the client is busy)
/// waited for that ack, and a push to a receiver busy with the previous one came late.
fn no_delay(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use axum::serve::{Listener as _, ListenerExt as _};
    use tokio::net::TcpListener;

    /// Connections the listeners accept send without Nagle's delay.
    #[tokio::test]
    async fn accepted_connections_have_no_delay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client_listener = super::ClientListener(listener);
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, from) = client_listener.accept().await;
        assert!(accepted.nodelay().unwrap());
        assert_eq!(from, client.local_addr().unwrap());

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut federation_listener = listener.tap_io(super::no_delay);
        let _server = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = federation_listener.accept().await;
        assert!(accepted.nodelay().unwrap());
    }

    /// The listening socket asks for a long accept queue, and gets what the kernel allows.
    #[cfg(target_os = "linux")]
    #[test]
    fn listeners_queue_as_many_connections_as_the_kernel_allows() {
        use std::os::fd::AsRawFd as _;
        let listener = super::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        // For a listening socket, TCP_INFO's `tcpi_sacked` is the accept queue's limit.
        // SAFETY: `tcp_info` is plain integers, for which all zeroes is a valid value.
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: `info` and `len` are valid for writes of the size passed.
        let rc = unsafe {
            libc::getsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            info.tcpi_sacked,
            somaxconn.min(super::LISTEN_BACKLOG as u32)
        );
        // Longer than tokio's default of 1024 wherever the kernel allows it.
        assert!(info.tcpi_sacked > 1024 || somaxconn <= 1024);
    }
}
