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
//! ```
//! Exit status 1 when any kernel costs more than the threshold (default 2%) over baseline.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use dktp::Backend;
use dktp::keccak::{self, lanes};
use dktp::rcs::Rcs512Channel;

const ITERATIONS: u64 = 20;
const THRESHOLD_PERCENT: f64 = 2.0;

/// The kernels: name and what one iteration does.
const KERNELS: &[(&str, &str)] = &[
    ("rcs512_seal_1500", "RCS-512 seal of a 1500-byte packet"),
    ("rcs512_open_1500", "RCS-512 open of a 1500-byte packet"),
    ("kmac512_1500", "KMAC-512 update + finalize over 1500 bytes"),
    ("keccak_x8", "eight Keccak-f[1600] permutations in lanes"),
    ("keccak_x1", "one scalar Keccak-f[1600] permutation"),
];

const HEADER: [u8; 21] = [4; 21];

/// Everything inside this function is counted; it runs `work` `n` times.
#[inline(never)]
fn measured(n: u64, work: &mut dyn FnMut()) {
    for _ in 0..n {
        work();
    }
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
