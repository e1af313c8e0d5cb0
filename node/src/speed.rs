//! `dktp speed`: throughput of the symmetric layer on every available backend.
//!
//! JSON keys (stable, extended by later issues, never renamed):
//! `backend_selected`, `backends_available`, `rcs512_seal_mbps[backend][size]`,
//! `rcs512_open_mbps[backend][size]`, `rijndael256_ctr_mbps[backend]` (30 rounds, 16 KiB),
//! `kmac512_mbps[size]`, `keccak_perms_per_s[x1|x4|x8]`, `keccak_lanes_backend`,
//! `rcs512_seal_vs_kmac512[size]` (RCS-512 seal throughput on the selected backend over
//! KMAC-512's, the two run alternately and each keeps its fastest run, so a busy host cannot
//! favour either), and the batch engine's keys (`batch_*`, see [`crate::speed_batch`]).

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dktp::Backend;
use dktp::keccak::{self, lanes};
use dktp::rcs::{Rcs512, Rcs512Channel, Variant};
use dktp::rijndael::Rijndael256;
use serde_json::{Map, Value, json};

/// Message sizes measured, in bytes.
pub const SIZES: [usize; 3] = [64, 1500, 16384];

/// Parsed command-line options.
pub struct Options {
    json: bool,
    seconds: f64,
    only: Option<Backend>,
    pq: bool,
}

impl Options {
    /// Parses `speed`'s arguments.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            json: false,
            seconds: 0.3,
            only: None,
            pq: true,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--json" => o.json = true,
                "--no-pq" => o.pq = false,
                "--seconds" => {
                    let v = it.next().context("--seconds needs a value")?;
                    o.seconds = v.parse().with_context(|| format!("--seconds {v}"))?;
                    if !(o.seconds > 0.0 && o.seconds < 3600.0) {
                        bail!("--seconds must be between 0 and 3600");
                    }
                }
                "--backend" => {
                    let v = it.next().context("--backend needs a value")?;
                    o.only = Some(Backend::from_name(v)?.require()?);
                }
                other => bail!("unknown option {other:?}; see `dktp --help`"),
            }
        }
        Ok(o)
    }
}

/// A clock for single-threaded figures: this thread's on-CPU time where the OS tells it
/// (Linux `/proc/thread-self/schedstat`), so other processes competing for the cores do not
/// distort the figures; wall time elsewhere.
pub struct CpuClock {
    wall: Instant,
    cpu_ns: Option<u64>,
}

impl CpuClock {
    fn thread_cpu_ns() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        s.split_whitespace().next()?.parse().ok()
    }

    /// Starts measuring.
    pub fn start() -> CpuClock {
        CpuClock {
            cpu_ns: Self::thread_cpu_ns(),
            wall: Instant::now(),
        }
    }

    /// Seconds since `start`, on-CPU when available.
    pub fn elapsed(&self) -> f64 {
        match (self.cpu_ns, Self::thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
            _ => self.wall.elapsed().as_secs_f64(),
        }
    }
}

/// Timed runs per figure (the best counts).
const RUNS: usize = 9;

/// Runs `op` repeatedly for about `secs` seconds of this thread's CPU time; returns
/// operations per second: the best of [`RUNS`] timed runs, so a burst of interference from a
/// neighbour on a shared host spoils one run, not the figure.
fn rate(secs: f64, mut op: impl FnMut()) -> f64 {
    // Warm up and estimate.
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs_f64(secs / 10.0) || n < 3 {
        op();
        n += 1;
    }
    let per = t0.elapsed().as_secs_f64() / n as f64;
    let iters = ((secs / RUNS as f64 / per.max(1e-9)) as u64).max(3);
    let mut best = 0.0f64;
    for _ in 0..RUNS {
        let t = CpuClock::start();
        for _ in 0..iters {
            op();
        }
        best = best.max(iters as f64 / t.elapsed().max(1e-9));
    }
    best
}

fn mbps(ops_per_s: f64, bytes: usize) -> f64 {
    (ops_per_s * bytes as f64 / 1e6 * 10.0).round() / 10.0
}

const KEY: [u8; 64] = [0x42; 64];
const NONCE: [u8; 32] = [0x24; 32];
const HEADER: [u8; 21] = [4; 21];

fn seal_mbps(backend: Backend, size: usize, secs: f64) -> Result<f64> {
    let mut ch = Rcs512Channel::with_backend(backend, &KEY, &NONCE, &[])?;
    let mut buf = vec![0x5au8; size];
    let mut tag = [0u8; 64];
    let r = rate(secs, || {
        let _ = ch.seal_in_place(&HEADER, black_box(&mut buf), &mut tag);
    });
    Ok(mbps(r, size))
}

fn open_mbps(backend: Backend, size: usize, secs: f64) -> Result<f64> {
    // Seal a stream of packets, then time opening them in order on a peer channel.
    let mut tx = Rcs512Channel::with_backend(backend, &KEY, &NONCE, &[])?;
    let count = ((secs * 300e6 / size as f64) as usize).clamp(16, 200_000);
    let mut packets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut p = Vec::with_capacity(size + Rcs512::TAG_LEN);
        tx.seal(&HEADER, &vec![0x5au8; size], &mut p)?;
        packets.push(p);
    }
    let mut rx = Rcs512Channel::with_backend(backend, &KEY, &NONCE, &[])?;
    let t = CpuClock::start();
    for p in &mut packets {
        let (body, tag) = p.split_at_mut(size);
        rx.open_in_place(&HEADER, body, tag)
            .context("open failed during speed test")?;
    }
    Ok(mbps(count as f64 / t.elapsed().max(1e-9), size))
}

fn ctr_mbps(backend: Backend, secs: f64) -> Result<f64> {
    let rk = [0x3cu8; 31 * 32];
    let c = Rijndael256::new(backend, &rk)?;
    let mut nonce = NONCE;
    let mut buf = vec![0u8; 16384];
    let r = rate(secs, || c.ctr_xor(&mut nonce, black_box(&mut buf)));
    Ok(mbps(r, buf.len()))
}

fn kmac_mbps(size: usize, secs: f64) -> f64 {
    let msg = vec![0xa5u8; size];
    let mut mac = keccak::Kmac512::new(&KEY, &[]);
    let mut tag = [0u8; 64];
    let r = rate(secs, || {
        mac.update(black_box(&msg));
        mac.finalize_into(&mut tag);
    });
    mbps(r, size)
}

/// RCS-512 seal over KMAC-512 alone, the same bytes, measured alternately (see
/// [`crate::speed_batch::interleaved`]): how close the seal comes to its KMAC bound.
fn seal_vs_kmac(backend: Backend, size: usize, secs: f64) -> Result<f64> {
    let mut ch = Rcs512Channel::with_backend(backend, &KEY, &NONCE, &[])?;
    let mut buf = vec![0x5au8; size];
    let mut tag = [0u8; 64];
    let msg = vec![0xa5u8; size];
    let mut mac = keccak::Kmac512::new(&KEY, &[]);
    let mut mac_tag = [0u8; 64];
    // About 64 KiB per timed unit, so a unit outlasts the clock's resolution.
    let reps = (65536 / size.max(1)).max(1);
    let kmac: crate::speed_batch::Side<'_> = Box::new(|| {
        let t = Instant::now();
        for _ in 0..reps {
            mac.update(black_box(&msg));
            mac.finalize_into(&mut mac_tag);
        }
        Ok(t.elapsed())
    });
    let seal: crate::speed_batch::Side<'_> = Box::new(|| {
        let t = Instant::now();
        for _ in 0..reps {
            ch.seal_in_place(&HEADER, black_box(&mut buf), &mut tag)?;
        }
        Ok(t.elapsed())
    });
    let r = crate::speed_batch::interleaved(secs, kmac, seal)?;
    Ok((r * 1000.0).round() / 1000.0)
}

fn perms(secs: f64) -> Map<String, Value> {
    let lb = lanes::LaneBackend::for_backend(Backend::selected().unwrap_or(Backend::Portable));
    let mut s1 = [0u64; 25];
    let mut s4 = [[0u64; 25]; 4];
    let mut s8 = [[0u64; 25]; 8];
    let x1 = rate(secs, || keccak::f1600(black_box(&mut s1)));
    let x4 = 4.0 * rate(secs, || lanes::permute_x4(lb, black_box(&mut s4)));
    let x8 = 8.0 * rate(secs, || lanes::permute_x8(lb, black_box(&mut s8)));
    let mut m = Map::new();
    m.insert("x1".into(), json!(x1.round()));
    m.insert("x4".into(), json!(x4.round()));
    m.insert("x8".into(), json!(x8.round()));
    m
}

/// Operations per second for every post-quantum set and operation: each operation runs at
/// least twice, then for about `secs` (slow ones — McEliece keygen, SPHINCS+ signing — are
/// not repeated beyond that).
fn pq_ops(secs: f64) -> Result<Map<String, Value>> {
    use dktp::pq::OsEntropy;
    use dktp::pq::speed::{PqBench, all_sets};
    let mut out = Map::new();
    for (set, ops) in all_sets() {
        let mut b = match PqBench::new(set, &mut OsEntropy) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("dktp speed: {set}: {e}");
                continue;
            }
        };
        let mut row = Map::new();
        for &op in ops {
            let mut n = 0u32;
            let t = CpuClock::start();
            while n < 2 || (t.elapsed() < secs && n < 100_000) {
                b.run(op, &mut OsEntropy)
                    .with_context(|| format!("{set} {op}"))?;
                n += 1;
            }
            let per_s = f64::from(n) / t.elapsed().max(1e-9);
            row.insert(op.name().into(), json!((per_s * 10.0).round() / 10.0));
        }
        out.insert(set.into(), Value::Object(row));
    }
    Ok(out)
}

/// Runs the measurements and prints them.
pub fn run(o: Options) -> Result<()> {
    let selected = Backend::selected()?;
    let backends = match o.only {
        Some(b) => vec![b],
        None => Backend::available(),
    };
    let secs = o.seconds;
    let mut seal = Map::new();
    let mut open = Map::new();
    let mut ctr = Map::new();
    for &b in &backends {
        let (mut s, mut op) = (Map::new(), Map::new());
        for size in SIZES {
            s.insert(size.to_string(), json!(seal_mbps(b, size, secs)?));
            op.insert(size.to_string(), json!(open_mbps(b, size, secs)?));
        }
        seal.insert(b.name().into(), Value::Object(s));
        open.insert(b.name().into(), Value::Object(op));
        ctr.insert(b.name().into(), json!(ctr_mbps(b, secs)?));
    }
    let mut kmac = Map::new();
    for size in SIZES {
        kmac.insert(size.to_string(), json!(kmac_mbps(size, secs)));
    }
    let mut vs_kmac = Map::new();
    for size in [1500, 16384] {
        let b = o.only.unwrap_or(selected);
        vs_kmac.insert(size.to_string(), json!(seal_vs_kmac(b, size, secs)?));
    }
    let lane_backend = lanes::LaneBackend::for_backend(selected);
    let pq = if o.pq {
        Value::Object(pq_ops(secs)?)
    } else {
        Value::Null
    };
    let batch = crate::speed_batch::measure(o.only.unwrap_or(selected), secs * 0.4)?;
    let mut report = json!({
        "backend_selected": selected.name(),
        "backends_available": Backend::available().iter().map(|b| b.name()).collect::<Vec<_>>(),
        "rcs512_seal_mbps": seal,
        "rcs512_open_mbps": open,
        "rijndael256_ctr_mbps": ctr,
        "kmac512_mbps": kmac,
        "rcs512_seal_vs_kmac512": vs_kmac,
        "keccak_perms_per_s": perms(secs),
        "keccak_lanes_backend": lane_backend.name(),
        "pq_ops_per_s": pq,
    });
    if let Value::Object(r) = &mut report {
        r.extend(batch);
    }
    if o.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_tables(&report);
        println!();
        crate::speed_batch::print(&report);
    }
    Ok(())
}

fn print_pq(r: &Value) {
    let Some(Value::Object(sets)) = r.get("pq_ops_per_s") else {
        return;
    };
    println!();
    println!(
        "{:<16}{:>12}{:>12}{:>12}   (post-quantum operations/s; µs each in brackets)",
        "set", "keygen", "encaps|sign", "decaps|verify"
    );
    for (set, ops) in sets {
        print!("{set:<16}");
        for names in [
            ["keygen", "keygen"],
            ["encaps", "sign"],
            ["decaps", "verify"],
        ] {
            let v = names
                .iter()
                .find_map(|n| ops.get(*n))
                .and_then(Value::as_f64);
            match v {
                Some(v) if v > 0.0 => print!("{:>12}", format!("{v:.0} ({:.0})", 1e6 / v)),
                _ => print!("{:>12}", "-"),
            }
        }
        println!();
    }
}

fn print_tables(r: &Value) {
    let get = |k: &str| r.get(k).cloned().unwrap_or(Value::Null);
    println!("backend selected: {}", get("backend_selected"));
    println!();
    println!(
        "{:<14}{:>10}{:>10}{:>10}   (RCS-512 seal / open, MB/s)",
        "backend", "64 B", "1500 B", "16 KiB"
    );
    if let (Value::Object(seal), Value::Object(open)) =
        (get("rcs512_seal_mbps"), get("rcs512_open_mbps"))
    {
        for (b, row) in &seal {
            for (label, row) in [("seal", row), ("open", open.get(b).unwrap_or(&Value::Null))] {
                print!("{:<14}", format!("{b} {label}"));
                for size in SIZES {
                    print!(
                        "{:>10}",
                        row.get(size.to_string())
                            .map(|v| v.to_string())
                            .unwrap_or_default()
                    );
                }
                println!();
            }
        }
    }
    println!();
    print!("{:<14}", "KMAC-512");
    if let Value::Object(k) = get("kmac512_mbps") {
        for size in SIZES {
            print!(
                "{:>10}",
                k.get(&size.to_string())
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            );
        }
    }
    println!("   (MB/s, the bound for one RCS stream)");
    if let Value::Object(v) = get("rcs512_seal_vs_kmac512") {
        let parts: Vec<String> = v.iter().map(|(size, r)| format!("{size} B: {r}")).collect();
        println!(
            "RCS-512 seal / KMAC-512, measured alternately: {}",
            parts.join(", ")
        );
    }
    println!();
    if let Value::Object(c) = get("rijndael256_ctr_mbps") {
        for (b, v) in c {
            println!("Rijndael-256 CTR (30 rounds, 16 KiB) {b:<12} {v:>10} MB/s");
        }
    }
    println!();
    if let Value::Object(p) = get("keccak_perms_per_s") {
        let x1 = p.get("x1").and_then(Value::as_f64).unwrap_or(1.0);
        for (k, v) in p {
            let n = v.as_f64().unwrap_or(0.0);
            println!(
                "Keccak-f[1600] {k}: {n:>12.0} permutations/s ({:.2}x scalar)",
                n / x1
            );
        }
    }
    print_pq(r);
}
