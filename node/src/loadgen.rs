//! `dktp loadgen`: many sessions from one process against a server, and what they achieved.
//!
//! ```sh
//! dktp loadgen setup fleet -n 1000                   # keys for 1000 pairs + fleet/serve.toml
//! dktp serve --config fleet/serve.toml --echo -l 127.0.0.1:31118 --source-rate off
//! dktp loadgen run 127.0.0.1:31118 --dir fleet --messages 100 --max-size 16384
//! ```
//!
//! `run` connects every client at once, then each sends its messages (random sizes, random
//! bytes) and checks every echo; it reports handshakes/s, throughput each way, the
//! handshake and echo latency percentiles, and errors. `--seconds` echoes for a time
//! instead of a count; `--hold` keeps the sessions open and idle afterwards (to measure a
//! server's memory per idle session); `--handshakes S` only connects and closes, over and
//! over, for S seconds (a pair signs at most one connect request a second, so the rate is
//! at most the number of clients a second).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dktp::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::batcher::{Batcher, Mode};
use crate::connect::{Backoff, Client, ServerAddr};
use crate::hspool::HandshakePool;
use crate::keys;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tunnel::{End, Local, Work};

/// `dktp loadgen`'s commands.
#[derive(clap::Args, Debug)]
pub struct LoadgenArgs {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Make key pairs for N clients in DIR, and DIR/serve.toml for the server's side.
    Setup {
        /// The folder (created).
        dir: PathBuf,
        /// Pairs.
        #[arg(short = 'n', long, default_value_t = 100)]
        pairs: usize,
        /// Configuration.
        #[arg(short, long, default_value = "dilithium-s5_kyber-s5_sha3_rcs")]
        config: Config,
    },
    /// Run clients against a server.
    Run(RunArgs),
}

/// `dktp loadgen run`'s options.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The server: HOST:PORT.
    server: String,
    /// The folder `setup` made.
    #[arg(long)]
    dir: PathBuf,
    /// Clients (default: every pair in the folder).
    #[arg(short = 'n', long)]
    clients: Option<usize>,
    /// Use the pairs from this index on (so that several load generators share a folder).
    #[arg(long, default_value_t = 0)]
    first: usize,
    /// Echo messages per client.
    #[arg(long, default_value_t = 100)]
    messages: usize,
    /// Echo for this many seconds instead of a message count.
    #[arg(long)]
    seconds: Option<f64>,
    /// Smallest message (bytes).
    #[arg(long, default_value_t = 1)]
    min_size: usize,
    /// Largest message (bytes).
    #[arg(long, default_value_t = 16384)]
    max_size: usize,
    /// Pause between a client's messages (e.g. 10ms; default none).
    #[arg(long)]
    pause: Option<String>,
    /// Keep the sessions open and idle this many seconds after the messages.
    #[arg(long)]
    hold: Option<f64>,
    /// Only connect and close, over and over, for this many seconds.
    #[arg(long)]
    handshakes: Option<f64>,
    /// The batched data path on the clients' side.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    batch: Mode,
    /// Connect from this local address.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Attempts per connection before counting an error.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs `dktp loadgen`.
pub async fn run(a: LoadgenArgs) -> Result<()> {
    match a.cmd {
        Cmd::Setup { dir, pairs, config } => setup(&dir, pairs, config),
        Cmd::Run(r) => {
            let report = run_clients(&r).await?;
            if r.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                report.print();
            }
            if report.errors > 0 {
                bail!("{} error(s): {:?}", report.errors, report.error_samples);
            }
            Ok(())
        }
    }
}

fn pair_paths(dir: &Path, i: usize) -> [PathBuf; 4] {
    let k = dir.join("keys");
    [
        k.join(format!("srv-{i}.dskey")),
        k.join(format!("cli-{i}.dpkey")),
        k.join(format!("cli-{i}.dskey")),
        k.join(format!("srv-{i}.dpkey")),
    ]
}

/// `setup`: the key files of `n` pairs and the server's configuration file.
pub fn setup(dir: &Path, n: usize, config: Config) -> Result<()> {
    if n == 0 || n > 100_000 {
        bail!("--pairs must be between 1 and 100000");
    }
    std::fs::create_dir_all(dir.join("keys"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let mut toml = String::from(
        "# Made by `dktp loadgen setup`: the server's side of the load generator's pairs.\n\
         store = \"server.redb\"\n",
    );
    for i in 0..n {
        let (server, client) = crate::demo::pair(config, u32::try_from(i)?)?;
        let [sl, cr, cl, sr] = pair_paths(dir, i);
        keys::write_secret(&sl, &server.local.to_bytes(), true)?;
        keys::write_secret(&cr, &server.remote.to_bytes(), true)?;
        keys::write_secret(&cl, &client.local.to_bytes(), true)?;
        keys::write_secret(&sr, &client.remote.to_bytes(), true)?;
        toml.push_str(&format!(
            "\n[[peer]]\nname = \"client-{i}\"\nkey = \"keys/srv-{i}.dskey\"\npeer = \"keys/cli-{i}.dpkey\"\n"
        ));
    }
    std::fs::write(dir.join("serve.toml"), toml).context("writing serve.toml")?;
    eprintln!(
        "{n} pairs ({config}) in {}; serve them with `dktp serve --config {}`",
        dir.display(),
        dir.join("serve.toml").display()
    );
    Ok(())
}

/// What a run achieved.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Clients.
    pub clients: usize,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes a second (over the connect phase, or the whole handshake run).
    pub handshakes_per_s: f64,
    /// Handshake latency percentiles (ms).
    pub handshake_p50_ms: f64,
    /// 99th percentile.
    pub handshake_p99_ms: f64,
    /// Echo round trips completed.
    pub messages: u64,
    /// Bytes sent (and echoed back).
    pub bytes_each_way: u64,
    /// Throughput each way over the echo phase (MB/s).
    pub mb_per_s_each_way: f64,
    /// Echo latency percentiles (ms).
    pub echo_p50_ms: f64,
    /// 99th percentile.
    pub echo_p99_ms: f64,
    /// 99.9th percentile.
    pub echo_p999_ms: f64,
    /// Seconds the echo phase took.
    pub echo_seconds: f64,
    /// Errors: failed connections, wrong echoes, tunnels that ended badly.
    pub errors: u64,
    /// The first few errors.
    pub error_samples: Vec<String>,
    /// Sessions cut after their handshake (`--handshakes`: a server that went away).
    pub dropped: u64,
}

impl Report {
    fn print(&self) {
        println!(
            "handshakes   {} ({:.1}/s), latency p50 {:.2} ms, p99 {:.2} ms",
            self.handshakes, self.handshakes_per_s, self.handshake_p50_ms, self.handshake_p99_ms
        );
        if self.messages > 0 {
            println!(
                "echo         {} messages, {:.1} MB each way in {:.1} s: {:.1} MB/s each way",
                self.messages,
                self.bytes_each_way as f64 / 1e6,
                self.echo_seconds,
                self.mb_per_s_each_way
            );
            println!(
                "latency      p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
                self.echo_p50_ms, self.echo_p99_ms, self.echo_p999_ms
            );
        }
        println!("errors       {}", self.errors);
        for e in &self.error_samples {
            println!("  {e}");
        }
    }
}

/// The `p`-th percentile of sorted latencies, in ms.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// A small generator for message sizes and contents (xorshift64*; not a secret).
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

#[derive(Default)]
struct ClientResult {
    handshakes: Vec<Duration>,
    echoes: Vec<Duration>,
    bytes: u64,
    errors: Vec<String>,
    /// Sessions that ended without an orderly close after their handshake.
    dropped: u64,
}

/// Runs the clients of `r` and gathers what they achieved.
pub async fn run_clients(r: &RunArgs) -> Result<Report> {
    if r.min_size == 0 || r.min_size > r.max_size || r.max_size > 16 << 20 {
        bail!("message sizes: 1 <= --min-size <= --max-size <= 16 MiB");
    }
    let available = std::fs::read_dir(r.dir.join("keys"))
        .with_context(|| format!("{}: run `dktp loadgen setup` first", r.dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_string_lossy().starts_with("cli-")
                && e.file_name().to_string_lossy().ends_with(".dskey")
        })
        .count();
    let n = r.clients.unwrap_or(available.saturating_sub(r.first));
    if n == 0 || r.first + n > available {
        bail!(
            "{} holds {available} pairs; asked for {n} from index {}",
            r.dir.display(),
            r.first
        );
    }
    let pause = r
        .pause
        .as_deref()
        .map(crate::util::parse_duration)
        .transpose()?;
    let mut pairs = Vec::with_capacity(n);
    for i in r.first..r.first + n {
        let [_, _, cl, sr] = pair_paths(&r.dir, i);
        pairs.push(keys::load_pair(&cl, &sr)?);
    }
    let store = Store::open(&r.dir.join(format!("clients-{}.redb", r.first)))?;
    store.import_all(&pairs)?;
    let metrics = Arc::new(Metrics::new());
    let work = Work {
        batcher: Batcher::new(r.batch).context("starting the batcher")?,
        pool: Some(HandshakePool::per_core(0).context("starting handshake threads")?),
        metrics: Some(metrics.clone()),
        ..Work::inline()
    };
    let server = ServerAddr::parse(&r.server)?;
    let clients: Vec<Client> = pairs
        .into_iter()
        .map(|k| {
            Client::imported(k, store.clone(), server.clone())
                .with_backoff(Backoff {
                    initial: Duration::from_millis(200),
                    max: Duration::from_secs(2),
                    attempts: Some(r.attempts),
                })
                .with_linger(Duration::ZERO)
                .with_bind(r.bind)
                .with_work(work.clone())
        })
        .collect();

    if let Some(secs) = r.handshakes {
        return handshakes_only(clients, Duration::from_secs_f64(secs)).await;
    }

    // Every client connects at once, then echoes; the echo phase starts when all are in,
    // and the hold when all are done.
    let all_in = Arc::new(tokio::sync::Barrier::new(n + 1));
    let all_done = Arc::new(tokio::sync::Barrier::new(n + 1));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for (i, c) in clients.into_iter().enumerate() {
        let (all_in, all_done) = (all_in.clone(), all_done.clone());
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let (mut result, open) = one_client(c, i as u64, &r, pause, all_in).await;
            all_done.wait().await;
            if let Some(h) = r.hold {
                tokio::time::sleep(Duration::from_secs_f64(h)).await;
            }
            if let Some((awr, tunnel)) = open {
                close(awr, tunnel, i, &mut result).await;
            }
            result
        }));
    }
    all_in.wait().await;
    let connected = start.elapsed();
    let echo_start = Instant::now();
    all_done.wait().await;
    let echo_done = echo_start.elapsed();
    if let Some(h) = r.hold {
        eprintln!("dktp loadgen: holding {n} idle sessions for {h} s");
    }
    let mut results = Vec::with_capacity(n);
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| ClientResult {
            errors: vec![format!("client task: {e}")],
            ..ClientResult::default()
        }));
    }
    Ok(report(
        n,
        results,
        connected,
        echo_done.as_secs_f64().max(1e-9),
    ))
}

fn report(n: usize, results: Vec<ClientResult>, connected: Duration, echo_seconds: f64) -> Report {
    let mut hs: Vec<Duration> = Vec::new();
    let mut echoes: Vec<Duration> = Vec::new();
    let mut bytes = 0;
    let mut errors = Vec::new();
    let mut dropped = 0;
    for r in results {
        dropped += r.dropped;
        hs.extend(r.handshakes);
        echoes.extend(r.echoes);
        bytes += r.bytes;
        errors.extend(r.errors);
    }
    hs.sort();
    echoes.sort();
    Report {
        clients: n,
        handshakes: hs.len() as u64,
        handshakes_per_s: hs.len() as f64 / connected.as_secs_f64().max(1e-9),
        handshake_p50_ms: percentile(&hs, 0.5),
        handshake_p99_ms: percentile(&hs, 0.99),
        messages: echoes.len() as u64,
        bytes_each_way: bytes,
        mb_per_s_each_way: bytes as f64 / echo_seconds / 1e6,
        echo_p50_ms: percentile(&echoes, 0.5),
        echo_p99_ms: percentile(&echoes, 0.99),
        echo_p999_ms: percentile(&echoes, 0.999),
        echo_seconds,
        errors: errors.len() as u64,
        error_samples: errors.into_iter().take(5).collect(),
        dropped,
    }
}

/// The application's half of a tunnel, and the task pumping it.
type OpenTunnel = (
    tokio::io::WriteHalf<tokio::io::DuplexStream>,
    tokio::task::JoinHandle<End>,
);

/// Connects and echoes; returns what it achieved and the tunnel, still open.
async fn one_client(
    c: Client,
    seed: u64,
    r: &RunArgs,
    pause: Option<Duration>,
    all_in: Arc<tokio::sync::Barrier>,
) -> (ClientResult, Option<OpenTunnel>) {
    let mut out = ClientResult::default();
    let t = Instant::now();
    let established = c.establish().await;
    // Everyone reaches the barrier, connected or not, so the echo phase can start.
    all_in.wait().await;
    let mut d = match established {
        Ok(d) => d,
        Err(e) => {
            out.errors.push(format!("client {seed}: {e:#}"));
            return (out, None);
        }
    };
    out.handshakes.push(t.elapsed());
    let (app, tunnel_side) = tokio::io::duplex(256 << 10);
    let (trd, twr) = tokio::io::split(tunnel_side);
    let tunnel = tokio::spawn(async move {
        let end = d
            .pump(Local::Stream {
                rd: Box::new(trd),
                wr: Box::new(twr),
            })
            .await;
        d.shutdown().await;
        end
    });
    let (mut ard, mut awr) = tokio::io::split(app);
    let mut noise = Noise(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut msg = vec![0u8; r.max_size];
    let mut back = vec![0u8; r.max_size];
    let deadline = r
        .seconds
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut sent = 0usize;
    loop {
        match deadline {
            Some(d) if Instant::now() >= d => break,
            None if sent >= r.messages => break,
            _ => {}
        }
        let span = (r.max_size - r.min_size + 1) as u64;
        let size = r.min_size + (noise.next() % span) as usize;
        noise.fill(&mut msg[..size]);
        let t = Instant::now();
        let io = async {
            awr.write_all(&msg[..size]).await?;
            ard.read_exact(&mut back[..size]).await?;
            Ok::<(), std::io::Error>(())
        };
        match tokio::time::timeout(Duration::from_secs(60), io).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                out.errors.push(format!("client {seed}: echo: {e}"));
                break;
            }
            Err(_) => {
                out.errors.push(format!("client {seed}: echo timed out"));
                break;
            }
        }
        out.echoes.push(t.elapsed());
        if back[..size] != msg[..size] {
            out.errors.push(format!(
                "client {seed}: the echo of message {sent} came back altered"
            ));
            break;
        }
        out.bytes += size as u64;
        sent += 1;
        if let Some(p) = pause {
            tokio::time::sleep(p).await;
        }
    }
    // The reading half stays with the tunnel's buffer; the writing half closes it.
    drop(ard);
    (out, Some((awr, tunnel)))
}

/// Ends the local stream; the tunnel closes in order.
async fn close(
    mut awr: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    tunnel: tokio::task::JoinHandle<End>,
    i: usize,
    out: &mut ClientResult,
) {
    let _ = awr.shutdown().await;
    drop(awr);
    match tunnel.await {
        Ok(End::Closed { .. }) => {}
        Ok(end) if out.errors.is_empty() => out
            .errors
            .push(format!("client {i}: the tunnel ended badly: {end:?}")),
        Ok(_) => {}
        Err(e) => out.errors.push(format!("client {i}: tunnel task: {e}")),
    }
}

/// `--handshakes`: every client connects and closes, over and over.
async fn handshakes_only(clients: Vec<Client>, run_for: Duration) -> Result<Report> {
    let n = clients.len();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut out = ClientResult::default();
            while start.elapsed() < run_for {
                let t = Instant::now();
                match c.establish().await {
                    Ok(mut d) => {
                        out.handshakes.push(t.elapsed());
                        let end = d
                            .pump(Local::Stream {
                                rd: Box::new(tokio::io::empty()),
                                wr: Box::new(tokio::io::sink()),
                            })
                            .await;
                        d.shutdown().await;
                        // A session cut after its handshake (its server died) is not a
                        // failed handshake: the next one shows whether the pair still
                        // connects.
                        if !matches!(end, End::Closed { .. }) {
                            out.dropped += 1;
                        }
                    }
                    Err(e) => out.errors.push(format!("client {i}: {e:#}")),
                }
            }
            out
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed();
    Ok(report(n, results, elapsed, elapsed.as_secs_f64()))
}
