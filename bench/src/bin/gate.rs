//! `gate`: the instruction-count regression gate.
//!
//! Each kernel runs under `valgrind --tool=callgrind` with collection switched on only inside
//! [`measured`], so setup (keying, sealing the packets an open kernel will open) is not
//! counted. The count per iteration is deterministic for a given binary, input and
//! environment, unlike wall-clock time on a shared machine.
//!
//! ```text
//! cargo run --release -p dktp-bench --bin gate            # compare with bench/icount-baseline.json
//! cargo run --release -p dktp-bench --bin gate -- --save  # write a new baseline
//! cargo run --release -p dktp-bench --bin gate -- --only rcs512_seal_1500  # some kernels
//! ```
//! Exit status 1 when any kernel costs more than the threshold (default 2%) over baseline.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use dktp::Backend;
use dktp::batch::{Batch, DataSession, Scratch};
use dktp::config::Config;
use dktp::keccak::{self, lanes};
use dktp::kex::{PeerKeys, ReplayGate, Settings, SinglePeer, client, server};
use dktp::pq::{Entropy, PqError};
use dktp::rcs::Rcs512Channel;
// The handshake kernels' clock (packets carry it, so it is hashed and signed) and keys.
use dktp::testing::{self, NOW};

const ITERATIONS: u64 = 20;
const THRESHOLD_PERCENT: f64 = 2.0;

/// The kernels: name and what one iteration does.
const KERNELS: &[(&str, &str)] = &[
    ("rcs512_seal_1500", "RCS-512 seal of a 1500-byte packet"),
    ("rcs512_open_1500", "RCS-512 open of a 1500-byte packet"),
    ("kmac512_1500", "KMAC-512 update + finalize over 1500 bytes"),
    ("keccak_x8", "eight Keccak-f[1600] permutations in lanes"),
    ("keccak_x1", "one scalar Keccak-f[1600] permutation"),
    (
        "batch_seal_8x1500",
        "one batch flush sealing 1500 bytes on each of 8 sessions (one thread)",
    ),
    (
        "session_seal_64",
        "the sequential path: DataSession::seal of a 64-byte message",
    ),
    (
        "batch_seal_1x64",
        "a batch of one: one flush sealing 64 bytes on one session (scratch reused)",
    ),
    (
        "handshake_client",
        "the client's four steps of a default-configuration handshake",
    ),
    (
        "handshake_server",
        "the server's three steps of a default-configuration handshake",
    ),
];

const HEADER: [u8; 21] = [4; 21];

/// Everything inside this function is counted; it runs `work` `n` times.
#[inline(never)]
fn measured(n: u64, work: &mut dyn FnMut()) {
    for _ in 0..n {
        work();
    }
}

/// A fixed pseudo-random stream (splitmix64), so that signing's rejection loops, and with
/// them the counts, are the same on every run. For measurement only: not a secure source.
struct Fixed(u64);

impl Entropy for Fixed {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        for chunk in dest.chunks_mut(8) {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// The default configuration's paired keys, generated from the fixed stream.
fn handshake_keys() -> Result<(PeerKeys, PeerKeys), String> {
    testing::link(Config::default(), [[1; 16], [2; 16]], NOW, &mut Fixed(1))
        .map_err(|e| e.to_string())
}

/// `n` whole handshakes; only the steps of `side` ("client" or "server") are counted.
fn handshakes(n: u64, side: &str) -> Result<(), String> {
    let (ck, sk) = handshake_keys()?;
    let client_side = side == "client";
    // Counts one step when it belongs to the measured side.
    fn step<T>(on: bool, f: impl FnOnce() -> T) -> T {
        if on {
            let mut f = Some(f);
            let mut out = None;
            measured(1, &mut || out = f.take().map(|f| f()));
            out.expect("the step ran once")
        } else {
            f()
        }
    }
    let e = |e: dktp::Error| e.to_string();
    for i in 0..n {
        let mut rng = Fixed(1000 + i);
        let settings = Settings::default();
        let c1 = step(client_side, || {
            client::start(ck.clone(), settings.clone(), NOW, &mut rng)
        })
        .map_err(e)?;
        let mut peers = SinglePeer(sk.clone());
        let mut gate = ReplayGate::default();
        let s1 = step(!client_side, || {
            server::AwaitConnectRequest::new(settings)
                .handle(&c1.packet, NOW, &mut rng, &mut peers, &mut gate)
        })
        .map_err(e)?;
        let c2 = step(client_side, || c1.next.handle(&s1.packet, NOW, &mut rng)).map_err(e)?;
        let s2 = step(!client_side, || s1.next.handle(&c2.packet, NOW, &mut rng)).map_err(e)?;
        let c3 = step(client_side, || c2.next.handle(&s2.packet, NOW, &mut rng)).map_err(e)?;
        let s3 = step(!client_side, || s2.next.handle(&c3.packet, NOW, &mut rng)).map_err(e)?;
        let done = step(client_side, || c3.next.handle(&s3.packet, NOW, &mut rng)).map_err(e)?;
        black_box((done, s3.next));
    }
    Ok(())
}

fn run_kernel(name: &str, n: u64) -> Result<(), String> {
    let backend = Backend::selected().map_err(|e| e.to_string())?;
    match name {
        "rcs512_seal_1500" => {
            let mut ch = Rcs512Channel::with_backend(backend, &[7; 64], &[9; 32], &[])
                .map_err(|e| e.to_string())?;
            let mut buf = vec![1u8; 1500];
            let mut tag = [0u8; 64];
            measured(n, &mut || {
                let _ = ch.seal_in_place(&HEADER, black_box(&mut buf), &mut tag);
            });
        }
        "rcs512_open_1500" => {
            let mut tx = Rcs512Channel::with_backend(backend, &[7; 64], &[9; 32], &[])
                .map_err(|e| e.to_string())?;
            let mut rx = Rcs512Channel::with_backend(backend, &[7; 64], &[9; 32], &[])
                .map_err(|e| e.to_string())?;
            let mut packets: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let mut p = Vec::new();
                    let _ = tx.seal(&HEADER, &[1u8; 1500], &mut p);
                    p
                })
                .collect();
            let mut it = packets.iter_mut();
            measured(n, &mut || {
                if let Some(p) = it.next() {
                    let (body, tag) = p.split_at_mut(1500);
                    let _ = rx.open_in_place(&HEADER, body, tag);
                }
            });
            if rx.is_dead() {
                return Err("open kernel failed to authenticate".into());
            }
        }
        "kmac512_1500" => {
            let mut mac = keccak::Kmac512::new(&[7; 64], &[]);
            let msg = [1u8; 1500];
            let mut tag = [0u8; 64];
            measured(n, &mut || {
                mac.update(black_box(&msg));
                mac.finalize_into(&mut tag);
            });
        }
        "keccak_x8" => {
            let lb = lanes::LaneBackend::for_backend(backend);
            let mut s = [[0u64; 25]; 8];
            measured(n, &mut || lanes::permute_x8(lb, black_box(&mut s)));
        }
        "keccak_x1" => {
            let mut s = [0u64; 25];
            measured(n, &mut || keccak::f1600(black_box(&mut s)));
        }
        "batch_seal_8x1500" => {
            let mut sessions = (0..8u8)
                .map(|i| {
                    let tx = Rcs512Channel::with_backend(backend, &[i; 64], &[1; 32], &[])?;
                    let rx = Rcs512Channel::with_backend(backend, &[!i; 64], &[2; 32], &[])?;
                    Ok(DataSession::new(tx, rx, 3, 3))
                })
                .collect::<Result<Vec<_>, dktp::rcs::RcsError>>()
                .map_err(|e| e.to_string())?;
            let payload = [0x5au8; 1500];
            let mut sealed = 0usize;
            measured(n, &mut || {
                let mut batch = Batch::new().with_threads(1);
                for s in sessions.iter_mut() {
                    let id = batch.add(s);
                    batch.seal(id, black_box(&payload));
                }
                let done = batch.flush(NOW);
                sealed += done.jobs();
                black_box(&done);
            });
            if sealed != 8 * n as usize {
                return Err("batch kernel sealed fewer packets than asked".into());
            }
        }
        "session_seal_64" | "batch_seal_1x64" => {
            let tx = Rcs512Channel::with_backend(backend, &[3; 64], &[1; 32], &[])
                .map_err(|e| e.to_string())?;
            let rx = Rcs512Channel::with_backend(backend, &[4; 64], &[2; 32], &[])
                .map_err(|e| e.to_string())?;
            let mut session = DataSession::new(tx, rx, 3, 3);
            let payload = [0x5au8; 64];
            let mut out = Vec::with_capacity(256);
            let mut scratch = Some(Scratch::default());
            let mut sealed = 0usize;
            if name == "session_seal_64" {
                measured(n, &mut || {
                    out.clear();
                    if session.seal(black_box(&payload), NOW, &mut out).is_ok() {
                        sealed += 1;
                    }
                });
            } else {
                measured(n, &mut || {
                    let mut batch = Batch::new()
                        .with_threads(1)
                        .with_scratch(scratch.take().unwrap_or_default());
                    let id = batch.add(&mut session);
                    batch.seal(id, black_box(&payload));
                    let done = batch.flush(NOW);
                    if !done.output(id).is_empty() {
                        sealed += 1;
                    }
                    scratch = Some(done.into_scratch());
                });
            }
            if sealed != n as usize {
                return Err(format!("{name} sealed fewer packets than asked"));
            }
        }
        "handshake_client" => handshakes(n, "client")?,
        "handshake_server" => handshakes(n, "server")?,
        other => return Err(format!("unknown kernel {other}")),
    }
    Ok(())
}

/// Runs one kernel under callgrind and returns instructions per iteration.
fn count(exe: &PathBuf, backend: &str, name: &str) -> Result<f64, String> {
    let out = Command::new("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            "--toggle-collect=*measured*",
        ])
        .arg(exe)
        .args(["__kernel", name, &ITERATIONS.to_string()])
        .env("DKTP_BACKEND", backend)
        .output()
        .map_err(|e| format!("cannot run valgrind ({e}); install it (apt-get install valgrind)"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("kernel {name} failed under valgrind:\n{stderr}"));
    }
    let collected = stderr
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| format!("no 'Collected' line from callgrind for {name}:\n{stderr}"))?;
    Ok(collected as f64 / ITERATIONS as f64)
}

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("icount-baseline.json")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__kernel") {
        let name = args.get(1).cloned().unwrap_or_default();
        let n = args
            .get(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or(ITERATIONS);
        return match run_kernel(&name, n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let save = args.iter().any(|a| a == "--save");
    let threshold = args
        .iter()
        .position(|a| a == "--threshold")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(THRESHOLD_PERCENT);
    // `--only a,b`: just these kernels (a baseline cannot be saved from part of the set).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect());
    if let Some(names) = &only {
        if save {
            eprintln!("gate: --save writes the whole baseline; drop --only");
            return ExitCode::FAILURE;
        }
        if let Some(bad) = names.iter().find(|n| !KERNELS.iter().any(|(k, _)| k == n)) {
            eprintln!("gate: unknown kernel {bad}");
            return ExitCode::FAILURE;
        }
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gate: cannot find own executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let baseline: serde_json::Value = std::fs::read(baseline_path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    // The backend is part of the baseline: counts differ between backends. Valgrind cannot
    // run VAES or AVX-512 code, so the default is AES-NI where the CPU has it.
    let backend = baseline
        .get("backend")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            if Backend::Aesni.is_available() {
                "aesni".into()
            } else {
                "portable".into()
            }
        });
    let mut now = BTreeMap::new();
    let mut failed = false;
    println!("instruction counts per iteration (callgrind, DKTP_BACKEND={backend})");
    println!(
        "{:<20}{:>14}{:>14}{:>10}  ",
        "kernel", "baseline", "now", "change"
    );
    for (name, what) in KERNELS {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        let c = match count(&exe, &backend, name) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("gate: {e}");
                return ExitCode::FAILURE;
            }
        };
        now.insert(name.to_string(), c.round() as u64);
        let base = baseline
            .get("kernels")
            .and_then(|k| k.get(*name))
            .and_then(|v| v.as_f64());
        let (base_s, change_s, verdict) = match base {
            Some(b) if b > 0.0 => {
                let pct = (c - b) / b * 100.0;
                let bad = pct > threshold;
                failed |= bad && !save;
                (
                    format!("{b:.0}"),
                    format!("{pct:+.2}%"),
                    if bad { "REGRESSION" } else { "ok" },
                )
            }
            _ => ("-".into(), "-".into(), "new"),
        };
        println!("{name:<20}{base_s:>14}{c:>14.0}{change_s:>10}  {verdict}   ({what})");
    }
    if save {
        let v = serde_json::json!({
            "backend": backend,
            "iterations": ITERATIONS,
            "note": "instructions per iteration under callgrind; regenerate with `cargo run --release -p dktp-bench --bin gate -- --save`",
            "kernels": now,
        });
        match serde_json::to_string_pretty(&v) {
            Ok(s) => {
                if let Err(e) = std::fs::write(baseline_path(), s + "\n") {
                    eprintln!("gate: cannot write baseline: {e}");
                    return ExitCode::FAILURE;
                }
                println!("baseline written to {}", baseline_path().display());
            }
            Err(e) => {
                eprintln!("gate: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    if failed {
        println!("FAIL: a kernel regressed by more than {threshold}%");
        ExitCode::FAILURE
    } else {
        println!("ok: no kernel regressed by more than {threshold}%");
        ExitCode::SUCCESS
    }
}
