//! `dktp speed` batch figures: aggregate RCS-512 seal and open throughput of the batch engine
//! ([`dktp::batch`]) for 1, 8, 64 and 1024 sessions at 64, 1500, 16384 bytes and IMIX, on one
//! thread and on every core, with the sequential path measured the same way beside them.
//!
//! One flush is one server turn: every session gets one packet (IMIX: session `i` of flush `f`
//! takes size `IMIX[(i + f) mod 12]`, seven 64s, four 576s and one 1500 per twelve).
//! Throughput counts message bytes and includes building and flushing the batch; opening is
//! timed on packets sealed beforehand. Each figure is the best of three windows.
//!
//! The acceptance ratios are measured apart (`batch_ratios`): the two things compared
//! run alternately, one flush (or the same packets one at a time) each, and each keeps its
//! fastest run, so a machine shared with other work cannot favour either side.
//!
//! JSON keys (MB/s; `[sessions][size]`, size keys `"64"`, `"1500"`, `"16384"`, `"imix"`):
//! - `batch_seal_mbps`, `batch_open_mbps`: on `batch_threads` threads (every core);
//! - `batch_seal_mbps_1t`, `batch_open_mbps_1t`: on one thread;
//! - `batch_scalar_seal_mbps[size]`, `batch_scalar_open_mbps[size]`: one session, one packet
//!   at a time through `DataSession::seal` / `open` (the sequential path);
//! - `batch_threads`, `batch_lanes` (lane backend and width);
//! - `batch_ratios[name]`: throughput ratios, e.g. `seal_1t_8x1500_vs_scalar` (8 sessions of
//!   1500-byte packets in one-thread flushes against the same packets sealed one by one),
//!   `seal_1x1500_vs_scalar` (a batch of one), `seal_1024x1500_all_vs_1t` (every core
//!   against one).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dktp::Backend;
use dktp::batch::{self, Batch, DataSession, JobId, Outcome, Received, Scratch, SessionId};
use dktp::keccak::lanes::LaneBackend;
use dktp::rcs::Rcs512Channel;
use serde_json::{Map, Value, json};

/// Session counts measured.
pub const SESSIONS: [usize; 4] = [1, 8, 64, 1024];
/// Sizes measured: fixed lengths, then IMIX (0).
pub const SIZES: [usize; 4] = [64, 1500, 16384, 0];
/// IMIX, 7:4:1 of 64/576/1500, spread over twelve.
const IMIX: [usize; 12] = [64, 576, 64, 1500, 64, 576, 64, 64, 576, 64, 64, 576];
/// The clock every packet carries.
const NOW: u64 = 1_767_225_600;
/// Most bytes of sealed packets kept for one open figure.
const OPEN_BUDGET: usize = 96 << 20;
/// Windows per grid figure (the best counts).
const WINDOWS: usize = 3;

fn size_key(size: usize) -> String {
    if size == 0 {
        "imix".to_string()
    } else {
        size.to_string()
    }
}

fn packet_size(size: usize, session: usize, flush: usize) -> usize {
    if size == 0 {
        IMIX[(session + flush) % IMIX.len()]
    } else {
        size
    }
}

/// Bytes of messages in one flush.
fn flush_bytes(size: usize, sessions: usize, flush: usize) -> usize {
    (0..sessions).map(|s| packet_size(size, s, flush)).sum()
}

/// `n` session pairs (ours, the peer's), keyed crosswise.
fn fleet(backend: Backend, n: usize) -> Result<(Vec<DataSession>, Vec<DataSession>)> {
    let mut ours = Vec::with_capacity(n);
    let mut peers = Vec::with_capacity(n);
    for i in 0..n {
        let b = (i as u64).to_le_bytes();
        let mut k1 = [0x11u8; 64];
        let mut k2 = [0x22u8; 64];
        k1[..8].copy_from_slice(&b);
        k2[..8].copy_from_slice(&b);
        let (n1, n2) = ([0x33u8; 32], [0x44u8; 32]);
        let ch = |k: &[u8; 64], n: &[u8; 32]| Rcs512Channel::with_backend(backend, k, n, &[]);
        ours.push(DataSession::new(ch(&k1, &n1)?, ch(&k2, &n2)?, 3, 3));
        peers.push(DataSession::new(ch(&k2, &n2)?, ch(&k1, &n1)?, 3, 3));
    }
    Ok((ours, peers))
}

/// How a figure runs.
#[derive(Clone, Copy)]
struct Setup {
    lanes: LaneBackend,
    threads: usize,
}

impl Setup {
    fn batch<'a>(&self, scratch: Scratch) -> Batch<'a> {
        Batch::new()
            .with_lanes(self.lanes)
            .with_threads(self.threads)
            .with_scratch(scratch)
    }
}

/// What a server keeps from one turn to the next: the batch's buffers and the id lists, so
/// that a steady loop (and this measurement) allocates nothing per flush.
#[derive(Default)]
struct Turn {
    scratch: Scratch,
    sessions: Vec<SessionId>,
    jobs: Vec<JobId>,
}

/// Seals one flush (one packet per session); keeps the packets if asked.
fn seal_flush(
    setup: &Setup,
    sessions: &mut [DataSession],
    payload: &[u8],
    size: usize,
    flush: usize,
    turn: Turn,
    keep: Option<&mut Vec<Vec<u8>>>,
) -> Result<Turn> {
    let Turn {
        scratch,
        sessions: mut ids,
        jobs,
    } = turn;
    let mut b = setup.batch(scratch);
    ids.clear();
    for (i, s) in sessions.iter_mut().enumerate() {
        let id = b.add(s);
        b.seal(id, &payload[..packet_size(size, i, flush)]);
        ids.push(id);
    }
    let done = b.flush(NOW);
    if let Some(&id) = ids.first()
        && done.output(id).is_empty()
    {
        bail!("seal failed during speed test");
    }
    if let Some(keep) = keep {
        keep.extend(ids.iter().map(|&id| done.output(id).to_vec()));
    }
    Ok(Turn {
        scratch: done.into_scratch(),
        sessions: ids,
        jobs,
    })
}

/// Opens one flush of packets (one per session).
fn open_flush(
    setup: &Setup,
    sessions: &mut [DataSession],
    packets: &mut [Vec<u8>],
    turn: Turn,
) -> Result<Turn> {
    let Turn {
        scratch,
        sessions: ids,
        mut jobs,
    } = turn;
    let mut b = setup.batch(scratch);
    jobs.clear();
    for (s, p) in sessions.iter_mut().zip(packets.iter_mut()) {
        let id = b.add(s);
        jobs.push(b.open(id, p));
    }
    let done = b.flush(NOW);
    for &j in &jobs {
        match done.outcome(j) {
            Outcome::Opened(pt) => {
                black_box(pt);
            }
            other => bail!("open failed during speed test: {other:?}"),
        }
    }
    Ok(Turn {
        scratch: done.into_scratch(),
        sessions: ids,
        jobs,
    })
}

/// Aggregate seal MB/s on `ours`: the best of [`WINDOWS`] windows of `secs` each.
fn seal_mbps(setup: &Setup, ours: &mut [DataSession], size: usize, secs: f64) -> Result<f64> {
    let n = ours.len();
    let payload = vec![0x5au8; 65536];
    let mut turn = seal_flush(setup, ours, &payload, size, 0, Turn::default(), None)?;
    let mut best = 0f64;
    let mut flush = 1;
    for _ in 0..WINDOWS {
        let (mut bytes, mut count) = (0usize, 0usize);
        let t = Instant::now();
        while count < 1 || t.elapsed() < Duration::from_secs_f64(secs) {
            turn = seal_flush(setup, ours, &payload, size, flush, turn, None)?;
            bytes += flush_bytes(size, n, flush);
            flush += 1;
            count += 1;
        }
        best = best.max(bytes as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    Ok(best)
}

/// Aggregate open MB/s on `ours` of packets sealed first by `peers` (as many flushes as the
/// seal rate says fill the windows, within [`OPEN_BUDGET`]): the best window.
fn open_mbps(
    setup: &Setup,
    (ours, peers): (&mut [DataSession], &mut [DataSession]),
    size: usize,
    secs: f64,
    seal_rate: f64,
) -> Result<f64> {
    let n = ours.len();
    let payload = vec![0x5au8; 65536];
    let per_flush = flush_bytes(size, n, 0).max(1);
    let per_window = ((secs * seal_rate * 1e6) as usize / per_flush)
        .clamp(1, (OPEN_BUDGET / WINDOWS / per_flush).max(1));
    let mut turn = Turn::default();
    let mut flushes: Vec<Vec<Vec<u8>>> = Vec::with_capacity(WINDOWS * per_window + 1);
    for f in 0..=WINDOWS * per_window {
        let mut keep = Vec::with_capacity(n);
        turn = seal_flush(setup, peers, &payload, size, f, turn, Some(&mut keep))?;
        flushes.push(keep);
    }
    let mut it = flushes.iter_mut().enumerate();
    if let Some((_, first)) = it.next() {
        turn = open_flush(setup, ours, first, turn)?; // warm-up
    }
    let mut best = 0f64;
    for _ in 0..WINDOWS {
        let mut bytes = 0usize;
        let t = Instant::now();
        for (f, packets) in it.by_ref().take(per_window) {
            turn = open_flush(setup, ours, packets, turn)?;
            bytes += flush_bytes(size, n, f);
        }
        best = best.max(bytes as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    Ok(best)
}

/// One session, one packet at a time through the sequential path: (seal, open) MB/s, the
/// best of [`WINDOWS`] windows each.
fn scalar_mbps(backend: Backend, size: usize, secs: f64) -> Result<(f64, f64)> {
    let (mut ours, mut peers) = fleet(backend, 1)?;
    let (Some(us), Some(peer)) = (ours.first_mut(), peers.first_mut()) else {
        bail!("no session");
    };
    let payload = vec![0x5au8; 65536];
    let mut out = Vec::with_capacity(65536 + 85);
    let mut seal = 0f64;
    let mut k = 0usize;
    for _ in 0..WINDOWS {
        let mut bytes = 0usize;
        let t = Instant::now();
        let start = k;
        while k - start < 16 || t.elapsed() < Duration::from_secs_f64(secs) {
            let len = packet_size(size, 0, k);
            out.clear();
            us.seal(&payload[..len], NOW, &mut out)?;
            black_box(&out);
            bytes += len;
            k += 1;
        }
        seal = seal.max(bytes as f64 / t.elapsed().as_secs_f64() / 1e6);
    }

    let per_window = ((secs * seal * 1e6) as usize / packet_size(size, 0, 0))
        .clamp(16, OPEN_BUDGET / WINDOWS / 1600);
    let mut packets = Vec::with_capacity(WINDOWS * per_window);
    for k in 0..WINDOWS * per_window {
        let mut p = Vec::new();
        peer.seal(&payload[..packet_size(size, 0, k)], NOW, &mut p)?;
        packets.push(p);
    }
    let mut open = 0f64;
    let mut it = packets.iter_mut();
    for _ in 0..WINDOWS {
        let mut bytes = 0usize;
        let t = Instant::now();
        for p in it.by_ref().take(per_window) {
            match us.open(p, NOW).context("open failed during speed test")? {
                Received::Data(pt) => bytes += black_box(pt).len(),
                Received::Control(_) => bail!("unexpected control packet"),
            }
        }
        open = open.max(bytes as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    Ok((seal, open))
}

/// One side of an interleaved comparison: does one unit of work, returns its duration (work
/// outside the timed part, like sealing the packets an open needs, is excluded).
pub(crate) type Side<'a> = Box<dyn FnMut() -> Result<Duration> + 'a>;

/// Runs `a` and `b` alternately for about `secs`; each keeps its fastest unit. Returns
/// `min(a) / min(b)`: how much faster `b` does the same work.
pub(crate) fn interleaved(secs: f64, mut a: Side<'_>, mut b: Side<'_>) -> Result<f64> {
    let (mut ma, mut mb) = (Duration::MAX, Duration::MAX);
    let t = Instant::now();
    let mut rounds = 0;
    while rounds < 8 || t.elapsed() < Duration::from_secs_f64(secs) {
        ma = ma.min(a()?);
        mb = mb.min(b()?);
        rounds += 1;
    }
    Ok(ma.as_secs_f64() / mb.as_secs_f64().max(1e-12))
}

/// The same packets, `n` sessions of one `size`, sealed (or opened) one at a time against one
/// flush of `threads` threads.
fn batch_vs_scalar(
    setup: Setup,
    backend: Backend,
    n: usize,
    size: usize,
    open: bool,
    secs: f64,
) -> Result<f64> {
    let payload = vec![0x5au8; size];
    let (mut s_ours, mut s_peers) = fleet(backend, n)?;
    let (mut b_ours, mut b_peers) = fleet(backend, n)?;
    let mut out = Vec::with_capacity(size + 85);
    let mut turn = Some(Turn::default());
    let peer_packets = |peers: &mut [DataSession]| -> Result<Vec<Vec<u8>>> {
        peers
            .iter_mut()
            .map(|p| {
                let mut o = Vec::with_capacity(size + 85);
                p.seal(&payload, NOW, &mut o).map(|()| o)
            })
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    };
    let scalar: Side<'_> = Box::new(|| {
        if open {
            let mut packets = peer_packets(&mut s_peers)?;
            let t = Instant::now();
            for (s, p) in s_ours.iter_mut().zip(packets.iter_mut()) {
                black_box(s.open(p, NOW)?);
            }
            Ok(t.elapsed())
        } else {
            let t = Instant::now();
            for s in s_ours.iter_mut() {
                out.clear();
                s.seal(&payload, NOW, &mut out)?;
                black_box(&out);
            }
            Ok(t.elapsed())
        }
    });
    let batched: Side<'_> = Box::new(|| {
        let sc = turn.take().unwrap_or_default();
        if open {
            let mut packets = peer_packets(&mut b_peers)?;
            let t = Instant::now();
            turn = Some(open_flush(&setup, &mut b_ours, &mut packets, sc)?);
            Ok(t.elapsed())
        } else {
            let t = Instant::now();
            turn = Some(seal_flush(
                &setup,
                &mut b_ours,
                &payload,
                size,
                0,
                sc,
                None,
            )?);
            Ok(t.elapsed())
        }
    });
    interleaved(secs, scalar, batched)
}

/// One flush of `n` sessions of `size` on one thread against the same on `threads`.
fn threads_vs_one(
    lanes: LaneBackend,
    threads: usize,
    backend: Backend,
    n: usize,
    size: usize,
    open: bool,
    secs: f64,
) -> Result<f64> {
    let one = Setup { lanes, threads: 1 };
    let all = Setup { lanes, threads };
    let side = |setup: Setup| -> Result<Side<'static>> {
        let (mut ours, mut peers) = fleet(backend, n)?;
        let payload = vec![0x5au8; size];
        let mut turn = Some(Turn::default());
        let mut peer_turn = Some(Turn::default());
        Ok(Box::new(move || {
            let sc = turn.take().unwrap_or_default();
            if open {
                let mut keep = Vec::with_capacity(n);
                let ps = peer_turn.take().unwrap_or_default();
                peer_turn = Some(seal_flush(
                    &setup,
                    &mut peers,
                    &payload,
                    size,
                    0,
                    ps,
                    Some(&mut keep),
                )?);
                let t = Instant::now();
                turn = Some(open_flush(&setup, &mut ours, &mut keep, sc)?);
                Ok(t.elapsed())
            } else {
                let t = Instant::now();
                turn = Some(seal_flush(&setup, &mut ours, &payload, size, 0, sc, None)?);
                Ok(t.elapsed())
            }
        }))
    };
    interleaved(secs, side(one)?, side(all)?)
}

fn round1(x: f64) -> Value {
    json!((x * 10.0).round() / 10.0)
}

fn round2(x: f64) -> Value {
    json!((x * 100.0).round() / 100.0)
}

/// Measures the grid and the ratios; `secs` is the time per figure. Returns the JSON keys
/// above.
pub fn measure(backend: Backend, secs: f64) -> Result<Map<String, Value>> {
    let lanes = LaneBackend::for_backend(backend);
    let all = batch::available_threads();
    let window = secs / WINDOWS as f64;
    let mut out = Map::new();
    let (mut sc_seal, mut sc_open) = (Map::new(), Map::new());
    for size in SIZES {
        let (s, o) = scalar_mbps(backend, size, window)?;
        sc_seal.insert(size_key(size), round1(s));
        sc_open.insert(size_key(size), round1(o));
    }
    let configs = [("_1t", 1usize), ("", all)];
    let mut grid: Vec<(Map<String, Value>, Map<String, Value>)> =
        configs.iter().map(|_| (Map::new(), Map::new())).collect();
    for n in SESSIONS {
        // One fleet per session count: its streams simply continue from figure to figure.
        let (mut ours, mut peers) = fleet(backend, n)?;
        for ((_, threads), (seal, open)) in configs.iter().zip(grid.iter_mut()) {
            let setup = Setup {
                lanes,
                threads: *threads,
            };
            let (mut s_row, mut o_row) = (Map::new(), Map::new());
            for size in SIZES {
                let s = seal_mbps(&setup, &mut ours, size, window)?;
                let o = open_mbps(&setup, (&mut ours, &mut peers), size, window, s)?;
                s_row.insert(size_key(size), round1(s));
                o_row.insert(size_key(size), round1(o));
            }
            seal.insert(n.to_string(), Value::Object(s_row));
            open.insert(n.to_string(), Value::Object(o_row));
        }
    }
    for ((suffix, _), (seal, open)) in configs.iter().zip(grid) {
        out.insert(format!("batch_seal_mbps{suffix}"), Value::Object(seal));
        out.insert(format!("batch_open_mbps{suffix}"), Value::Object(open));
    }
    out.insert("batch_scalar_seal_mbps".into(), Value::Object(sc_seal));
    out.insert("batch_scalar_open_mbps".into(), Value::Object(sc_open));
    out.insert("batch_threads".into(), json!(all));
    out.insert(
        "batch_lanes".into(),
        json!(format!(
            "{} x{}",
            lanes,
            if lanes == LaneBackend::Avx512 { 8 } else { 4 }
        )),
    );

    let one = Setup { lanes, threads: 1 };
    let mut ratios = Map::new();
    let r = secs * 1.5;
    for (op, open) in [("seal", false), ("open", true)] {
        for n in [8usize, 64] {
            let v = batch_vs_scalar(one, backend, n, 1500, open, r)?;
            ratios.insert(format!("{op}_1t_{n}x1500_vs_scalar"), round2(v));
        }
        for size in [64usize, 1500, 16384] {
            let v = batch_vs_scalar(one, backend, 1, size, open, r)?;
            ratios.insert(format!("{op}_1x{size}_vs_scalar"), round2(v));
        }
        for n in [64usize, 1024] {
            let v = threads_vs_one(lanes, all, backend, n, 1500, open, r)?;
            ratios.insert(format!("{op}_{n}x1500_all_vs_1t"), round2(v));
        }
    }
    out.insert("batch_ratios".into(), Value::Object(ratios));
    Ok(out)
}

/// Prints the grid and the ratios.
pub fn print(r: &Value) {
    let lanes = r.get("batch_lanes").cloned().unwrap_or(Value::Null);
    let threads = r.get("batch_threads").cloned().unwrap_or(Value::Null);
    println!(
        "batch engine (lanes {lanes}, {threads} threads), aggregate MB/s, one packet per session per flush:"
    );
    println!(
        "{:<24}{:>10}{:>10}{:>10}{:>10}",
        "", "64 B", "1500 B", "16 KiB", "IMIX"
    );
    for op in ["seal", "open"] {
        let row = |label: String, v: Option<&Value>| {
            print!("{label:<24}");
            for size in SIZES {
                let x = v
                    .and_then(|v| v.get(size_key(size)))
                    .map(|x| x.to_string())
                    .unwrap_or_default();
                print!("{x:>10}");
            }
            println!();
        };
        row(
            format!("{op} one by one"),
            r.get(format!("batch_scalar_{op}_mbps")),
        );
        for (suffix, label) in [("_1t", "1 thread"), ("", "all")] {
            for n in SESSIONS {
                row(
                    format!("{op} {label} {n:>4} sess"),
                    r.get(format!("batch_{op}_mbps{suffix}"))
                        .and_then(|m| m.get(n.to_string())),
                );
            }
        }
    }
    if let Some(Value::Object(m)) = r.get("batch_ratios") {
        println!();
        println!("ratios (interleaved, best of each):");
        for (k, v) in m {
            println!("  {k:<30}{v:>7}x");
        }
    }
}
