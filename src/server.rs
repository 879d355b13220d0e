//! Running the server: bind the listeners, serve until told to stop.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
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

    let client = TcpListener::bind(config.listeners.client)
        .await
        .map_err(|e| format!("listeners.client {}: {e}", config.listeners.client))?;
    println!("listening client http://{}", client.local_addr()?);
    // Wake-ups wait for the stream frontier; this task releases them as it moves.
    tokio::spawn(Arc::clone(&services.notifier).run());
    tokio::spawn(Arc::clone(&services.typing).run_expiry());
    let mut tasks = tokio::task::JoinSet::new();
    let app = crate::http::app(Arc::clone(&services));
    tasks.spawn(async move {
        axum::serve(
            client,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
    });

    if let Some(addr) = config.listeners.federation {
        let app = crate::http::federation_app(Arc::clone(&services));
        match tls {
            // TLS terminated here (the port 8448 that other servers connect to directly).
            Some(tls) => {
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|e| format!("listeners.federation {addr}: {e}"))?;
                listener.set_nonblocking(true)?;
                println!("listening federation https://{}", listener.local_addr()?);
                let handle = axum_server::Handle::new();
                let shutdown = handle.clone();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
                });
                let server =
                    axum_server::tls_rustls::from_tcp_rustls(listener, tls)?.handle(handle);
                tasks.spawn(async move { server.serve(app.into_make_service()).await });
            }
            // Plain HTTP, behind a TLS-terminating proxy.
            None => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("listeners.federation {addr}: {e}"))?;
                println!("listening federation http://{}", listener.local_addr()?);
                tasks.spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown_signal())
                        .await
                });
            }
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    while let Some(result) = tasks.join_next().await {
        result??;
    }
    tracing::info!("stopped");
    Ok(())
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
