//! The `dktp` binary: keys, a concentrator (`serve`), a client (`connect`), `demo` and
//! `speed`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

mod batcher;
mod config;
mod connect;
mod demo;
mod hspool;
mod keys;
mod limits;
mod loadgen;
mod logging;
mod metrics;
mod peers;
mod serve;
mod speed;
mod speed_batch;
mod status;
mod store;
mod transport;
mod tunnel;
mod util;
mod vpn;

/// dktp: a post-quantum tunnel (DKTP 1.0a, byte-compatible with the C reference).
#[derive(Parser)]
#[command(name = "dktp", version, propagate_version = true)]
struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    quiet: u8,
    /// Log format (DKTP_LOG sets the filter, e.g. `debug`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: logging::Format,
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make a key pair: NAME.dskey (keep it) and NAME.dpkey (give it to the peer).
    Keygen(KeygenArgs),
    /// Link a local key to its peer's remote key (sets the local key's peer id).
    Link {
        /// Your local key (.dskey).
        local: PathBuf,
        /// The peer's remote key (.dpkey).
        remote: PathBuf,
    },
    /// Show what a key file or a store holds (never a secret).
    Show {
        /// Key files (.dskey, .dpkey) or stores.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a concentrator: accept tunnels from many peers, forward each peer's stream.
    Serve(ServeArgs),
    /// Connect to a server: the tunnel on a local port (-L) or on stdin/stdout.
    Connect(ConnectArgs),
    /// Provision peers in a store: add, remove (revoke), list. With an etcd store every
    /// server of the cluster sees the change at once.
    #[command(subcommand)]
    Peer(peers::PeerCmd),
    /// Show a running server's sessions, per peer (reads its --metrics endpoint), like
    /// `wg show`.
    Status(status::StatusArgs),
    /// Load a server with many sessions from one process and report what it achieved.
    Loadgen(loadgen::LoadgenArgs),
    /// Run a concentrator and clients on loopback and print what they achieve.
    Demo(demo::DemoArgs),
    /// Bring up a VPN interface from its file, like `wg-quick up`: a TUN interface, its
    /// addresses and routes, tunnels to and from its peers.
    Up(vpn::UpArgs),
    /// Take a VPN interface down, like `wg-quick down`.
    Down(vpn::DownArgs),
    /// Measure the symmetric layer on every backend this CPU has (`dktp speed --help`).
    #[command(disable_help_flag = true)]
    Speed {
        /// speed's own options: [--json] [--seconds S] [--backend NAME] [--no-pq]
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args)]
struct KeygenArgs {
    /// Output name: writes NAME.dskey and NAME.dpkey.
    name: PathBuf,
    /// Configuration (e.g. dilithium-s1_kyber-s1_sha3_rcs); default dilithium-s5_kyber-s5_sha3_rcs.
    #[arg(short, long, default_value = "dilithium-s5_kyber-s5_sha3_rcs")]
    config: dktp::config::Config,
    /// Key id, 32 hex digits (default: random).
    #[arg(long)]
    keyid: Option<String>,
    /// Days until the keys expire.
    #[arg(long, default_value_t = 365)]
    days: u64,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// A TOML file (see the README); flags override it.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// TCP address to listen on (repeatable); default 0.0.0.0:31118 and [::]:31118.
    #[arg(short, long)]
    listen: Vec<String>,
    /// WebSocket address to listen on (repeatable): one DKTP packet per binary frame.
    #[arg(long)]
    ws: Vec<String>,
    /// The ratchet store: a file (default dktp-store.redb), or etcd://HOST:PORT,.../PREFIX
    /// for a cluster of servers.
    #[arg(short, long)]
    store: Option<String>,
    /// This server's name in a cluster (default: host name and process id).
    #[arg(long)]
    node: Option<String>,
    /// Where peers' streams go: HOST:PORT, unix:PATH or echo.
    #[arg(short, long)]
    forward: Option<String>,
    /// Echo every peer's stream back (same as --forward echo).
    #[arg(long, conflicts_with = "forward")]
    echo: bool,
    /// A peer: THIS-SERVER.dskey:PEER.dpkey (repeatable).
    #[arg(short, long)]
    peer: Vec<String>,
    /// Start an asymmetric ratchet in each session this often (e.g. 1h).
    #[arg(long)]
    ratchet_every: Option<String>,
    /// Handshake deadline (default 30 s, 120 s with SPHINCS+ or McEliece).
    #[arg(long)]
    handshake_timeout: Option<String>,
    /// Close sessions idle this long (default 12h; `off`).
    #[arg(long)]
    idle_timeout: Option<String>,
    /// Established sessions at most (default 50000).
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Handshakes in progress at most (default 1024).
    #[arg(long)]
    max_handshakes: Option<usize>,
    /// Handshakes a second per source address, with a burst as large (default 20; `off`).
    #[arg(long)]
    source_rate: Option<String>,
    /// Handshakes a second for the whole server, spent on known peers only (default off).
    #[arg(long)]
    handshake_rate: Option<String>,
    /// Bytes each direction of a tunnel may queue before its source is no longer read
    /// (default 1 MiB).
    #[arg(long)]
    buffer: Option<usize>,
    /// Plaintext bytes per DKTP message at most, both ways (default 65472).
    #[arg(long)]
    max_message: Option<usize>,
    /// The batched data path: auto (batch when sessions are busy together), always, off.
    #[arg(long, value_enum)]
    batch: Option<batcher::Mode>,
    /// Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, or a port on 127.0.0.1).
    #[arg(long)]
    metrics: Option<String>,
    /// Ephemeral KEM key pairs to keep ready (default: 16 with McEliece, none with ML-KEM).
    #[arg(long)]
    key_pool: Option<usize>,
    /// Threads for handshake work, below the sessions' priority (default: one per core; 0:
    /// on the runtime's threads).
    #[arg(long)]
    handshake_threads: Option<usize>,
}

#[derive(Args)]
struct ConnectArgs {
    /// The server: HOST[:PORT] (port 31118 by default) or ws://HOST:PORT/.
    server: String,
    /// Your local key (.dskey).
    #[arg(short, long)]
    key: PathBuf,
    /// The server's remote key (.dpkey).
    #[arg(short, long)]
    peer: PathBuf,
    /// The ratchet store (default dktp-store.redb).
    #[arg(short, long)]
    store: Option<PathBuf>,
    /// Offer the tunnel on this local address ([BIND:]PORT, like ssh -L); without it,
    /// stdin/stdout carry the tunnel.
    #[arg(short = 'L', long = "local")]
    local: Option<String>,
    /// Start an asymmetric ratchet in each session this often (e.g. 10m).
    #[arg(long)]
    ratchet_every: Option<String>,
    /// Longest wait between attempts (backoff doubles from 0.5 s up to this).
    #[arg(long, default_value = "30s")]
    retry_max: String,
    /// Attempts per tunnel before giving up (default: forever).
    #[arg(long)]
    attempts: Option<u32>,
    /// Handshake deadline (default 30 s, 120 s with SPHINCS+ or McEliece).
    #[arg(long)]
    handshake_timeout: Option<String>,
    /// Close sessions idle this long (default 12h; `off`).
    #[arg(long)]
    idle_timeout: Option<String>,
    /// After the local stream ends, wait this long for the rest of the server's answer
    /// (each arrival restarts the wait), like `nc -q`.
    #[arg(long, default_value = "2s")]
    linger: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Speed { args } = &cli.cmd {
        return match speed::Options::parse(args).and_then(speed::run) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dktp speed: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    // The demo prints its own figures: its tunnels log only warnings unless asked.
    let base = if matches!(cli.cmd, Command::Demo(_) | Command::Loadgen(_)) {
        -1
    } else {
        0
    };
    logging::init(base + cli.verbose as i8 - cli.quiet as i8, cli.log_format);
    match run(cli.cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dktp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Keygen(a) => {
            let (l, r) = keys::keygen(&keys::Keygen {
                config: a.config,
                keyid: a.keyid.as_deref().map(keys::parse_keyid).transpose()?,
                days: a.days,
                out: a.name,
                force: a.force,
            })?;
            keys::show(&l, &mut std::io::stdout())?;
            println!(
                "wrote {} (keep it) and {} (give it to the peer)",
                l.display(),
                r.display()
            );
            Ok(())
        }
        Command::Link { local, remote } => {
            keys::link(&local, &remote)?;
            keys::show(&local, &mut std::io::stdout())
        }
        Command::Show { files } => {
            let mut out = std::io::stdout();
            for f in files {
                keys::show(&f, &mut out)?;
            }
            Ok(())
        }
        Command::Serve(a) => {
            let cfg = config::ServeConfig::load(config::ServeFlags {
                config: a.config,
                listen: a.listen,
                ws: a.ws,
                store: a.store,
                node: a.node,
                forward: if a.echo {
                    Some("echo".into())
                } else {
                    a.forward
                },
                peers: a.peer,
                ratchet_every: a.ratchet_every,
                handshake_timeout: a.handshake_timeout,
                idle_timeout: a.idle_timeout,
                max_sessions: a.max_sessions,
                max_handshakes: a.max_handshakes,
                source_rate: a.source_rate,
                handshake_rate: a.handshake_rate,
                buffer: a.buffer,
                max_message: a.max_message,
                batch: a.batch,
                metrics: a.metrics,
                key_pool: a.key_pool,
                handshake_threads: a.handshake_threads,
            })?;
            runtime()?.block_on(async {
                let store = store::Store::at(&cfg.store)?;
                let server = serve::Server::new(&cfg, store)?;
                let bound = serve::Server::bind(&cfg).await?;
                server.run(bound, shutdown_signal()).await
            })
        }
        Command::Connect(a) => {
            let server = connect::ServerAddr::parse(&a.server)?;
            let backoff = connect::Backoff {
                max: util::parse_duration(&a.retry_max)?,
                attempts: a.attempts,
                ..connect::Backoff::default()
            };
            let ratchet_every = a
                .ratchet_every
                .as_deref()
                .map(util::parse_duration)
                .transpose()?;
            let settings =
                engine_settings(a.handshake_timeout.as_deref(), a.idle_timeout.as_deref())?;
            let linger = util::parse_duration(&a.linger)?;
            let store_path = a
                .store
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_STORE));
            let local = a
                .local
                .as_deref()
                .map(|l| {
                    if l.parse::<u16>().is_ok() {
                        config::parse_addr(&format!("127.0.0.1:{l}"))
                    } else {
                        config::parse_addr(l)
                    }
                })
                .transpose()?;
            runtime()?.block_on(async {
                let store = store::Store::open(&store_path)?;
                let client = connect::Client::from_files(&a.key, &a.peer, store, server)?
                    .with_settings(settings)
                    .with_ratchet_every(ratchet_every)
                    .with_backoff(backoff)
                    .with_linger(linger);
                match local {
                    Some(bind) => connect::listen(client, bind, shutdown_signal()).await,
                    None => connect::stdio(client).await,
                }
            })
        }
        Command::Demo(a) => runtime()?.block_on(demo::run(a)),
        Command::Status(a) => runtime()?.block_on(status::run(a)),
        Command::Peer(c) => peers::run(c),
        Command::Loadgen(a) => runtime()?.block_on(loadgen::run(a)),
        Command::Up(a) => vpn::up(a, runtime),
        Command::Down(a) => vpn::down(a),
        Command::Speed { .. } => Ok(()),
    }
}

/// Engine settings from the timeout flags.
fn engine_settings(handshake: Option<&str>, idle: Option<&str>) -> Result<dktp::kex::Settings> {
    let mut s = dktp::kex::Settings::default();
    if let Some(h) = handshake {
        s = s.with_handshake_timeout(util::parse_duration(h)?.as_secs().max(1));
    }
    match idle {
        None => {}
        Some("off" | "0") => s = s.with_idle_timeout(None),
        Some(d) => s = s.with_idle_timeout(Some(util::parse_duration(d)?.as_secs().max(1))),
    }
    Ok(s)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
