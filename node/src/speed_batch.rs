//! `dktp speed` batch figures: aggregate RCS-512 seal and open throughput of the batch engine
//! ([`dktp::batch`]) for 1, 8, 64 and 1024 sessions at 64, 1500, 16384 bytes and IMIX, on one
//! thread and on every core, with the sequential path measured the same way beside them.
//!
//! One flush is one server turn: every session gets one packet (IMIX: session `i` of flush `f`
//! takes size `IMIX[(i + f) mod 12]`, seven 64s, four 576s and one 1500 per twelve). Throughput
//! counts message bytes and includes building and flushing the batch; opening is timed on
//! packets sealed beforehand.
//!
//! JSON keys (MB/s; `[sessions][size]`, size keys `"64"`, `"1500"`, `"16384"`, `"imix"`):
//! - `batch_seal_mbps`, `batch_open_mbps`: on `batch_threads` threads (every core);
//! - `batch_seal_mbps_1t`, `batch_open_mbps_1t`: on one thread;
//! - `batch_scalar_seal_mbps[size]`, `batch_scalar_open_mbps[size]`: one session, one packet
//!   at a time through `DataSession::seal` / `open` (the sequential path);
//! - `batch_threads`, `batch_lanes` (lane backend and width), `batch_ratios` (the issue's
//!   acceptance ratios computed from the figures above).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dktp::Backend;
use dktp::batch::{self, Batch, DataSession, Received, Scratch};
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
const OPEN_BUDGET: usize = 128 << 20;

fn size_key(size: usize) -> String {
    if size == 0 { "imix".to_string() } else { size.to_string() }
}

fn packet_size(size: usize, session: usize, flush: usize) -> usize {
    if size == 0 { IMIX[(session + flush) % IMIX.len()] } else { size }
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
    backend: Backend,
    lanes: LaneBackend,
    threads: usize,
    secs: f64,
}

impl Setup {
    fn batch<'a>(&self, scratch: Scratch) -> Batch<'a> {
        Batch::new().with_lanes(self.lanes).with_threads(self.threads).with_scratch(scratch)
    }
}

/// Seals one flush of packets on `sessions`; returns the packets per session.
fn seal_flush(
    setup: &Setup,
    sessions: &mut [DataSession],
    payload: &[u8],
    size: usize,
    flush: usize,
    scratch: Scratch,
    keep: Option<&mut Vec<Vec<u8>>>,
) -> Scratch {
    let mut b = setup.batch(scratch);
    let mut ids = Vec::with_capacity(sessions.len());
    for (i, s) in sessions.iter_mut().enumerate() {
        let id = b.add(s);
        b.seal(id, &payload[..packet_size(size, i, flush)]);
        ids.push(id);
    }
    let done = b.flush(NOW);
    match keep {
        Some(keep) => keep.extend(ids.iter().map(|&id| done.output(id).to_vec())),
        None => {
            black_box(ids.first().map(|&id| done.output(id)));
        }
    }
    done.into_scratch()
}

/// Aggregate seal MB/s for `n` sessions.
fn seal_mbps(setup: &Setup, n: usize, size: usize) -> Result<f64> {
    let (mut ours, _) = fleet(setup.backend, n)?;
    let payload = vec![0x5au8; 65536];
    let mut scratch = seal_flush(setup, &mut ours, &payload, size, 0, Scratch::default(), None);
    let (mut bytes, mut flushes) = (0usize, 0usize);
    let t = Instant::now();
    while flushes < 3 || t.elapsed() < Duration::from_secs_f64(setup.secs) {
        scratch = seal_flush(setup, &mut ours, &payload, size, flushes, scratch, None);
        bytes += flush_bytes(size, n, flushes);
        flushes += 1;
    }
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
}

/// Aggregate open MB/s for `n` sessions, on packets sealed first (as many flushes as the
/// seal rate says fill the time, within [`OPEN_BUDGET`]).
fn open_mbps(setup: &Setup, n: usize, size: usize, seal_rate: f64) -> Result<f64> {
    let (mut ours, mut peers) = fleet(setup.backend, n)?;
    let payload = vec![0x5au8; 65536];
    let per_flush = flush_bytes(size, n, 0).max(1);
    let wanted = (setup.secs * seal_rate * 1e6) as usize;
    let count = (wanted / per_flush).clamp(3, (OPEN_BUDGET / per_flush).max(3));
    let mut flushes: Vec<Vec<Vec<u8>>> = Vec::with_capacity(count + 1);
    let mut scratch = Scratch::default();
    for f in 0..=count {
        let mut keep = Vec::with_capacity(n);
        scratch = seal_flush(setup, &mut peers, &payload, size, f, scratch, Some(&mut keep));
        flushes.push(keep);
    }
    let mut run = |packets: &mut Vec<Vec<u8>>, scratch: Scratch| -> Result<Scratch> {
        let mut b = setup.batch(scratch);
        let mut jobs = Vec::with_capacity(n);
        for (s, p) in ours.iter_mut().zip(packets.iter_mut()) {
            let id = b.add(s);
            jobs.push(b.open(id, p));
        }
        let done = b.flush(NOW);
        if let Some(&j) = jobs.first() {
            match done.outcome(j) {
                batch::Outcome::Opened(pt) => {
                    black_box(pt);
                }
                other => anyhow::bail!("open failed during speed test: {other:?}"),
            }
        }
        Ok(done.into_scratch())
    };
    let mut it = flushes.iter_mut();
    if let Some(first) = it.next() {
        scratch = run(first, scratch)?; // warm-up
    }
    let mut bytes = 0usize;
    let t = Instant::now();
    for (f, packets) in it.enumerate() {
        scratch = run(packets, scratch)?;
        bytes += flush_bytes(size, n, f + 1);
    }
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
}

/// One session, one packet at a time through the sequential path.
fn scalar_mbps(backend: Backend, size: usize, secs: f64) -> Result<(f64, f64)> {
    let (mut ours, mut peers) = fleet(backend, 1)?;
    let (us, peer) = (&mut ours[0], &mut peers[0]);
    let payload = vec![0x5au8; 65536];
    let mut out = Vec::with_capacity(65536 + 85);
    let (mut bytes, mut k) = (0usize, 0usize);
    let t = Instant::now();
    while k < 16 || t.elapsed() < Duration::from_secs_f64(secs) {
        let len = packet_size(size, 0, k);
        out.clear();
        us.seal(&payload[..len], NOW, &mut out)?;
        black_box(&out);
        bytes += len;
        k += 1;
    }
    let seal = bytes as f64 / t.elapsed().as_secs_f64() / 1e6;

    let count = ((secs * seal * 1e6) as usize / packet_size(size, 0, 0)).clamp(16, OPEN_BUDGET / 1600);
    let mut packets = Vec::with_capacity(count);
    for k in 0..count {
        let mut p = Vec::new();
        peer.seal(&payload[..packet_size(size, 0, k)], NOW, &mut p)?;
        packets.push(p);
    }
    let mut bytes = 0usize;
    let t = Instant::now();
    for p in &mut packets {
        match us.open(p, NOW).context("open failed during speed test")? {
            Received::Data(pt) => bytes += black_box(pt).len(),
            Received::Control(_) => anyhow::bail!("unexpected control packet"),
        }
    }
    let open = bytes as f64 / t.elapsed().as_secs_f64() / 1e6;
    Ok((seal, open))
}

fn round1(x: f64) -> Value {
    json!((x * 10.0).round() / 10.0)
}

/// Measures the grid; `secs` is the time per figure. Returns the JSON keys above.
pub fn measure(backend: Backend, secs: f64) -> Result<Map<String, Value>> {
    let lanes = LaneBackend::for_backend(backend);
    let all = batch::available_threads();
    let mut out = Map::new();
    let (mut sc_seal, mut sc_open) = (Map::new(), Map::new());
    for size in SIZES {
        let (s, o) = scalar_mbps(backend, size, secs)?;
        sc_seal.insert(size_key(size), round1(s));
        sc_open.insert(size_key(size), round1(o));
    }
    for (suffix, threads) in [("_1t", 1usize), ("", all)] {
        let setup = Setup { backend, lanes, threads, secs };
        let (mut seal, mut open) = (Map::new(), Map::new());
        for n in SESSIONS {
            let (mut s_row, mut o_row) = (Map::new(), Map::new());
            for size in SIZES {
                let s = seal_mbps(&setup, n, size)?;
                let o = open_mbps(&setup, n, size, s)?;
                s_row.insert(size_key(size), round1(s));
                o_row.insert(size_key(size), round1(o));
            }
            seal.insert(n.to_string(), Value::Object(s_row));
            open.insert(n.to_string(), Value::Object(o_row));
        }
        out.insert(format!("batch_seal_mbps{suffix}"), Value::Object(seal));
        out.insert(format!("batch_open_mbps{suffix}"), Value::Object(open));
    }
    out.insert("batch_scalar_seal_mbps".into(), Value::Object(sc_seal));
    out.insert("batch_scalar_open_mbps".into(), Value::Object(sc_open));
    out.insert("batch_threads".into(), json!(all));
    out.insert(
        "batch_lanes".into(),
        json!(format!("{} x{}", lanes, if lanes == LaneBackend::Avx512 { 8 } else { 4 })),
    );
    out.insert("batch_ratios".into(), Value::Object(ratios(&out)));
    Ok(out)
}

/// The acceptance ratios of the batch issue, from the measured figures.
fn ratios(r: &Map<String, Value>) -> Map<String, Value> {
    let get = |key: &str, n: &str, size: &str| -> f64 {
        let v = match n {
            "" => r.get(key).and_then(|m| m.get(size)),
            _ => r.get(key).and_then(|m| m.get(n)).and_then(|m| m.get(size)),
        };
        v.and_then(Value::as_f64).unwrap_or(f64::NAN)
    };
    let ratio = |a: f64, b: f64| json!((a / b * 100.0).round() / 100.0);
    let mut m = Map::new();
    for n in ["8", "64", "1024"] {
        m.insert(
            format!("seal_1t_{n}x1500_vs_scalar"),
            ratio(get("batch_seal_mbps_1t", n, "1500"), get("batch_scalar_seal_mbps", "", "1500")),
        );
        m.insert(
            format!("open_1t_{n}x1500_vs_scalar"),
            ratio(get("batch_open_mbps_1t", n, "1500"), get("batch_scalar_open_mbps", "", "1500")),
        );
    }
    for n in ["64", "1024"] {
        for op in ["seal", "open"] {
            m.insert(
                format!("{op}_{n}x1500_all_vs_1t"),
                ratio(get(&format!("batch_{op}_mbps"), n, "1500"), get(&format!("batch_{op}_mbps_1t"), n, "1500")),
            );
        }
    }
    for size in ["64", "1500", "16384", "imix"] {
        m.insert(
            format!("seal_1t_1x{size}_vs_scalar"),
            ratio(get("batch_seal_mbps_1t", "1", size), get("batch_scalar_seal_mbps", "", size)),
        );
        m.insert(
            format!("open_1t_1x{size}_vs_scalar"),
            ratio(get("batch_open_mbps_1t", "1", size), get("batch_scalar_open_mbps", "", size)),
        );
    }
    m
}

/// Prints the grid as tables.
pub fn print(r: &Value) {
    let lanes = r.get("batch_lanes").cloned().unwrap_or(Value::Null);
    let threads = r.get("batch_threads").cloned().unwrap_or(Value::Null);
    println!("batch engine (lanes {lanes}, {threads} threads), aggregate MB/s, one packet per session per flush:");
    println!("{:<22}{:>10}{:>10}{:>10}{:>10}", "", "64 B", "1500 B", "16 KiB", "IMIX");
    for op in ["seal", "open"] {
        let row = |label: String, v: Option<&Value>| {
            print!("{label:<22}");
            for size in SIZES {
                let x = v.and_then(|v| v.get(size_key(size))).map(|x| x.to_string()).unwrap_or_default();
                print!("{x:>10}");
            }
            println!();
        };
        row(format!("{op} scalar 1 session"), r.get(format!("batch_scalar_{op}_mbps")));
        for (suffix, label) in [("_1t", "1t"), ("", "all")] {
            for n in SESSIONS {
                row(
                    format!("{op} {label} {n} sessions"),
                    r.get(format!("batch_{op}_mbps{suffix}")).and_then(|m| m.get(n.to_string())),
                );
            }
        }
    }
    if let Some(Value::Object(m)) = r.get("batch_ratios") {
        println!();
        for (k, v) in m {
            println!("{k:<32}{v:>8}x");
        }
    }
}
