//! The `roost` command: run the server, check a config, administer users.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use roost::config::Config;
use roost::services::Services;

#[derive(Parser)]
#[command(
    name = "roost",
    version,
    about = "Roost, a federated Matrix homeserver"
)]
struct Cli {
    /// Config file (TOML). Without one, defaults and ROOST_* environment variables apply.
    #[arg(short, long, env = "ROOST_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Load and validate the configuration, print it, and exit.
    CheckConfig,
    /// Administration that works on the database directly (stop the server first).
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user. Prints the password if none is given.
    CreateUser {
        /// The localpart, e.g. `alice` for @alice:server_name.
        name: String,
        #[arg(long)]
        password: Option<String>,
        /// Make the user a server admin.
        #[arg(long)]
        admin: bool,
    },
    /// Create a registration token for token-gated registration. Prints the token.
    CreateRegistrationToken {
        /// How many registrations the token allows (unlimited if omitted).
        #[arg(long)]
        uses: Option<u64>,
        /// Use this token instead of a random one.
        #[arg(long)]
        token: Option<String>,
    },
}

/// mimalloc instead of glibc malloc: with thousands of syncing clients glibc's arenas were a
/// lock-contention point (a third of the server's CPU time went to futex waits on the arena
/// locks in the 1,000-receiver fan-out benchmark), and mimalloc's per-thread heaps avoid it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc tuned for footprint: freed memory goes back to the system after 1 ms (the default
/// delay let bursts such as argon2's 7 MiB per password hash pile up), and arena memory is
/// committed as it is used rather than up front. Measured with mxbench: idle RSS 30 → 24 MiB,
/// per-scenario peaks 41–68 → 25–32 MiB (48 MiB for a burst of large initial syncs). Not at
/// once: with no delay every page freed was decommitted on the spot and recommitted by the
/// next request, a sixth of the server's CPU with 3,000 long-polling clients (142 → 102 %).
/// Runs as an ELF constructor, before Rust's runtime allocates: the arena commit option is
/// read when the first arena is reserved, which `main` is too late for.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_ALLOCATOR: extern "C" fn() = tune_allocator;

#[cfg(target_os = "linux")]
extern "C" fn tune_allocator() {
    // Option numbers of mimalloc 3's `mi_option_e` (the Rust bindings list mimalloc 2's):
    // applied only when the linked library is version 3.
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: plain calls into the allocator's option table, before other threads start.
    unsafe {
        if libmimalloc_sys::mi_version() / 10_000 == 3 {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 1);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("roost: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => roost::server::run(config).await,
            Command::CheckConfig => {
                println!(
                    "{}",
                    toml::to_string_pretty(&config).map_err(|e| e.to_string())?
                );
                println!("# configuration is valid");
                Ok(())
            }
            Command::Admin(cmd) => admin(config, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roost: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn admin(config: Config, cmd: AdminCommand) -> Result<(), roost::server::BoxError> {
    let path = config.database.path.clone();
    let services = Services::open(config).map_err(|e| {
        format!("opening database {}: {e}\n(is the server running? stop it first: admin commands open the database directly)", path.display())
    })?;
    match cmd {
        AdminCommand::CreateUser {
            name,
            password,
            admin,
        } => {
            let (password, generated) = match password {
                Some(p) => (p, false),
                None => (roost::util::random_alphanumeric(20), true),
            };
            let user_id = roost::users::create_user(
                &services.accounts,
                &services.profiles,
                &name,
                Some(password.clone()),
                admin,
            )
            .await
            .map_err(|e| e.to_string())?;
            println!("created {user_id}{}", if admin { " (admin)" } else { "" });
            if generated {
                println!("password: {password}");
            }
        }
        AdminCommand::CreateRegistrationToken { uses, token } => {
            let (token, _) = services
                .registration_tokens
                .create(token, 16, uses, None)
                .map_err(|e| e.to_string())?;
            println!("{token}");
        }
    }
    Ok(())
}
