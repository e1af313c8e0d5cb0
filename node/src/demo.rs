//! `dktp demo`: the whole node on loopback in one command. Makes keys for N pairs in a
//! temporary folder, starts a concentrator (echo) and N clients over real TCP sockets, runs
//! back-to-back handshakes, then an echo load, with a live progress line, and prints
//! handshakes/s, MB/s each way and the echo round trip's p50/p99.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dktp::config::Config;
use dktp::kex::PeerKeys;
use dktp::pq::OsEntropy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;

use crate::config::ServeConfig;
use crate::connect::{Backoff, Client, ServerAddr};
use crate::metrics::Metrics;
use crate::serve::Server;
use crate::store::Store;
use crate::tunnel::{End, Local, Work};
use crate::util::now;

/// `dktp demo`'s options.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Clients (one pair of keys each).
    #[arg(short = 'n', long, default_value_t = 4)]
    clients: usize,
    /// Seconds for the handshake phase and again for the echo phase.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Echo message size in bytes.
    #[arg(long, default_value_t = 16384)]
    size: usize,
    /// Configuration.
    #[arg(short, long, default_value = "dilithium-s5_kyber-s5_sha3_rcs")]
    config: Config,
    /// Print the figures as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Pairs each client cycles through in the handshake phase: a pair connects at most once
/// a second, so this bounds the demo's rate at this many handshakes a second per client.
const PAIRS_PER_CLIENT: usize = 256;

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo.
pub async fn run(a: DemoArgs) -> Result<()> {
    if a.clients == 0 || a.clients > 1000 {
        bail!("--clients must be between 1 and 1000");
    }
    if !(a.seconds > 0.0 && a.seconds <= 600.0) {
        bail!("--seconds must be between 0 and 600");
    }
    if a.size == 0 || a.size > 16 << 20 {
        bail!("--size must be between 1 and 16 MiB");
    }
    let dir =
        TempDir(std::env::temp_dir().join(format!("dktp-demo-{}-{}", std::process::id(), now())));
    std::fs::create_dir_all(&dir.0).with_context(|| format!("creating {}", dir.0.display()))?;
    eprintln!(
        "dktp demo: {} client(s), {}, keys and stores in {}",
        a.clients,
        a.config,
        dir.0.display()
    );

    // Keys: a pair of key pairs per client, linked as `dktp link` would. A pair signs at
    // most one connect request a second (the request is deterministic over its header's
    // time; the server refuses a repeat as a replay), so the handshake phase gives each
    // client a ring of pairs to cycle through.
    let ring = PAIRS_PER_CLIENT;
    let mut server_keys = Vec::new();
    let mut client_keys = Vec::new();
    for i in 0..a.clients * ring {
        let (s, c) = pair(a.config, i as u32)?;
        server_keys.push(s);
        client_keys.push(c);
    }
    let server_store = Store::open(&dir.0.join("server.redb"))?;
    let client_store = Store::open(&dir.0.join("clients.redb"))?;
    client_store.import_all(&client_keys)?;

    // The concentrator: echo, on an ephemeral loopback port.
    let mut cfg = ServeConfig::defaults(dir.0.join("server.redb"));
    cfg.listen = vec!["127.0.0.1:0".parse()?];
    // Every client comes from 127.0.0.1.
    cfg.limits.source_rate = None;
    let server = Server::with_keys(&cfg, server_store, server_keys)?;
    let bound = Server::bind(&cfg).await?;
    let addr = bound.addrs().0[0];
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop2 = stop.clone();
    let server_task = tokio::spawn(
        server
            .clone()
            .run(bound, async move { stop2.notified().await }),
    );

    // The clients' side counts what they move.
    let counters = Arc::new(Metrics::new());
    let work = Work {
        metrics: Some(counters.clone()),
        ..Work::inline()
    };
    let clients: Vec<Client> = client_keys
        .into_iter()
        .map(|k| {
            Client::imported(k, client_store.clone(), ServerAddr::Tcp(addr.to_string()))
                .with_backoff(Backoff {
                    attempts: Some(3),
                    ..Backoff::default()
                })
                .with_linger(Duration::ZERO)
                .with_work(work.clone())
        })
        .collect();

    let phase = Duration::from_secs_f64(a.seconds);
    let progress = Progress::new();

    // Phase 1: back-to-back handshakes on every client.
    let handshakes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for ring_of in clients.chunks(ring) {
        let ring_of = ring_of.to_vec();
        let n = handshakes.clone();
        tasks.push(tokio::spawn(async move {
            for c in ring_of.iter().cycle() {
                if start.elapsed() >= phase {
                    break;
                }
                let mut d = c.establish().await?;
                n.fetch_add(1, Ordering::Relaxed);
                let end = d
                    .pump(Local::Stream {
                        rd: Box::new(tokio::io::empty()),
                        wr: Box::new(tokio::io::sink()),
                    })
                    .await;
                d.shutdown().await;
                if !matches!(end, End::Closed { .. }) {
                    bail!("a demo tunnel ended badly: {end:?}");
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let ticker = progress.spawn({
        let n = handshakes.clone();
        move |t| {
            let n = n.load(Ordering::Relaxed);
            format!("handshakes: {n} ({:.1}/s)", n as f64 / t)
        }
    });
    for t in tasks {
        t.await??;
    }
    let hs_time = start.elapsed().as_secs_f64();
    progress.stop(ticker).await;
    let hs = handshakes.load(Ordering::Relaxed);

    // Phase 2: one session per client, echo round trips of `size` bytes.
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let (tx0, rx0) = (counters.tx_bytes.get(), counters.rx_bytes.get());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in clients.iter().step_by(ring) {
        let c = c.clone();
        let lat = latencies.clone();
        let size = a.size;
        tasks.push(tokio::spawn(async move {
            let (app, tunnel_side) = tokio::io::duplex(4 * size.max(65536));
            let (trd, twr) = tokio::io::split(tunnel_side);
            let tunnel = tokio::spawn(async move {
                c.tunnel(Local::Stream {
                    rd: Box::new(trd),
                    wr: Box::new(twr),
                })
                .await
            });
            let (mut ard, mut awr) = tokio::io::split(app);
            let msg: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
            let mut back = vec![0u8; size];
            let mut mine = Vec::new();
            while start.elapsed() < phase {
                let t = Instant::now();
                awr.write_all(&msg).await?;
                ard.read_exact(&mut back).await?;
                mine.push(t.elapsed());
                if back != msg {
                    bail!("the echo came back altered");
                }
            }
            awr.shutdown().await?;
            drop(awr);
            let end = tunnel.await??;
            if !matches!(end, End::Closed { .. }) {
                bail!("a demo tunnel ended badly: {end:?}");
            }
            lat.lock().await.extend(mine);
            Ok::<(), anyhow::Error>(())
        }));
    }
    let ticker = progress.spawn({
        let c = counters.clone();
        move |t| {
            let up = (c.tx_bytes.get() - tx0) as f64 / t / 1e6;
            let down = (c.rx_bytes.get() - rx0) as f64 / t / 1e6;
            format!("echo: {up:.1} MB/s up, {down:.1} MB/s down")
        }
    });
    for t in tasks {
        t.await??;
    }
    let echo_time = start.elapsed().as_secs_f64();
    progress.stop(ticker).await;
    stop.notify_one();
    let _ = server_task.await;

    let up = (counters.tx_bytes.get() - tx0) as f64 / echo_time / 1e6;
    let down = (counters.rx_bytes.get() - rx0) as f64 / echo_time / 1e6;
    let mut lat = latencies.lock().await.clone();
    lat.sort();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i.min(lat.len() - 1)].as_secs_f64() * 1e3
    };
    let stats = server.listener().stats();
    let figures = serde_json::json!({
        "clients": a.clients,
        "config": a.config.to_string(),
        "handshakes": hs,
        "handshakes_per_s": hs as f64 / hs_time,
        "echo_message_bytes": a.size,
        "echo_round_trips": lat.len(),
        "mb_per_s_client_to_server": up,
        "mb_per_s_server_to_client": down,
        "echo_p50_ms": pct(0.50),
        "echo_p99_ms": pct(0.99),
        "server_accepted": stats.accepted,
        "server_refused": stats.refused_early + stats.refused_late,
    });
    if a.json {
        println!("{figures}");
    } else {
        println!(
            "handshakes      {hs} in {hs_time:.1} s: {:.1} handshakes/s ({} clients, {})",
            hs as f64 / hs_time,
            a.clients,
            a.config
        );
        println!(
            "echo            {} round trips of {} bytes in {echo_time:.1} s",
            lat.len(),
            a.size
        );
        println!("throughput      {up:.1} MB/s client→server, {down:.1} MB/s server→client");
        println!(
            "echo latency    p50 {:.3} ms, p99 {:.3} ms",
            pct(0.50),
            pct(0.99)
        );
        println!(
            "server          {} accepted, {} refused",
            stats.accepted,
            stats.refused_early + stats.refused_late
        );
    }
    Ok(())
}

/// A server pair and a client pair, linked both ways.
pub(crate) fn pair(config: Config, i: u32) -> Result<(PeerKeys, PeerKeys)> {
    let mut sid = [0u8; 16];
    let mut cid = [0u8; 16];
    sid[..4].copy_from_slice(b"srv-");
    cid[..4].copy_from_slice(b"cli-");
    sid[12..].copy_from_slice(&i.to_be_bytes());
    cid[12..].copy_from_slice(&i.to_be_bytes());
    let t = now();
    let (mut sl, sr) = dktp::peer_key::generate(config, sid, t, &mut OsEntropy)
        .map_err(|e| anyhow::anyhow!("keygen: {e}"))?;
    let (mut cl, cr) = dktp::peer_key::generate(config, cid, t, &mut OsEntropy)
        .map_err(|e| anyhow::anyhow!("keygen: {e}"))?;
    dktp::peer_key::link(&mut sl, &cr);
    dktp::peer_key::link(&mut cl, &sr);
    Ok((
        PeerKeys {
            local: sl,
            remote: cr,
        },
        PeerKeys {
            local: cl,
            remote: sr,
        },
    ))
}

/// The live progress line: rewritten in place on a terminal, a line a second otherwise.
struct Progress {
    tty: bool,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn spawn(&self, line: impl Fn(f64) -> String + Send + 'static) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let tty = self.tty;
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let every = if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(1)
            };
            let mut next = start + every;
            loop {
                while Instant::now() < next && !s.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                next += every;
                let text = line(start.elapsed().as_secs_f64());
                let mut e = std::io::stderr();
                if tty {
                    let _ = write!(e, "\r\x1b[2K{text}");
                } else {
                    let _ = writeln!(e, "{text}");
                }
                let _ = e.flush();
                if s.load(Ordering::Relaxed) {
                    if tty {
                        let _ = writeln!(e);
                    }
                    return;
                }
            }
        });
        Ticker { stop, task }
    }

    async fn stop(&self, t: Ticker) {
        t.stop.store(true, Ordering::Relaxed);
        let _ = t.task.await;
    }
}
