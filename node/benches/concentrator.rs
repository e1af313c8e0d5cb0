//! One `dktp serve` under `dktp loadgen`, real processes on loopback:
//!
//! 1. the batched data path against the unbatched one: 64 clients echoing 1500-byte
//!    messages, aggregate throughput with `--batch off` and `--batch auto` (server and
//!    clients alike), alternated to share the machine's noise;
//! 2. handshake throughput against the bound from the server's own primitives: handshakes a
//!    second, and handshakes per second of the server's CPU time, against
//!    1 / (2 signs + 2 verifications + a KEM key pair + an encapsulation + a
//!    decapsulation), each timed here in the same run.
//!
//! ```text
//! cargo bench -p dktp-node --bench concentrator            # about 2 minutes
//! cargo bench -p dktp-node --bench concentrator -- --quick # about 30 s
//! ```

use std::io::Read;
use std::time::{Duration, Instant};

#[path = "../tests/e2e/support.rs"]
mod support;

use dktp::config::Config;
use dktp::pq::OsEntropy;
use support::{Dir, Proc, dktp};

const CONFIG: &str = "dilithium-s5_kyber-s5_sha3_rcs";

/// The CPU time a process has used (user + system), from /proc (in USER_HZ = 100 ticks).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

fn serve(dir: &Dir, name: &str, extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "serve",
        "--config",
        "fleet/serve.toml",
        "--echo",
        "-l",
        "127.0.0.1:0",
        "--source-rate",
        "off",
    ];
    args.extend_from_slice(extra);
    let mut p = Proc::start(dir, name, &args, &[("DKTP_LOG", "warn,dktp=info")]);
    let addr = p.wait_addr("listening (TCP)").to_string();
    (p, addr)
}

fn loadgen(dir: &Dir, name: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["loadgen", "run"];
    all.extend_from_slice(args);
    all.push("--json");
    let mut p = Proc::start(dir, name, &all, &[("DKTP_LOG", "error")]);
    let status = p.wait_exit(Duration::from_secs(900)).expect("loadgen ends");
    let mut out = String::new();
    if let Some(o) = p.child.stdout.as_mut() {
        let _ = o.read_to_string(&mut out);
    }
    assert!(status.success(), "loadgen failed:\n{out}\n{}", p.log_text());
    let line = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("report");
    serde_json::from_str(line).expect("report JSON")
}

/// Median seconds per call of `f`.
fn time_per_call(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Seconds a server spends in primitives per handshake (FACTS §6: it signs the connect and
/// exchange responses, verifies the client's two signatures, makes a KEM key pair,
/// encapsulates to the client's key and decapsulates the client's ciphertext).
fn primitive_cost(config: Config, reps: usize) -> (f64, serde_json::Value) {
    let (sig, kem) = (config.sig(), config.kem());
    let keys = sig.generate(&mut OsEntropy).expect("sig keys");
    let msg = [7u8; 64];
    let signed = sig.sign(&keys.signing, &msg, &mut OsEntropy).expect("sign");
    let kp = kem.generate(&mut OsEntropy).expect("kem keys");
    let (ct, _) = kem.encapsulate(&kp.public, &mut OsEntropy).expect("encaps");
    let s = time_per_call(reps, || {
        let _ = sig.sign(&keys.signing, &msg, &mut OsEntropy);
    });
    let v = time_per_call(reps, || {
        let _ = sig.verify(&keys.verifying, &signed);
    });
    let g = time_per_call(reps, || {
        let _ = kem.generate_ephemeral(&mut OsEntropy);
    });
    let e = time_per_call(reps, || {
        let _ = kem.encapsulate(&kp.public, &mut OsEntropy);
    });
    let d = time_per_call(reps, || {
        let _ = kem.decapsulate(&kp.secret, &ct);
    });
    let total = 2.0 * s + 2.0 * v + g + e + d;
    let us = |x: f64| (x * 1e7).round() / 10.0;
    (
        total,
        serde_json::json!({
            "sign_us": us(s), "verify_us": us(v), "kem_keygen_us": us(g),
            "encaps_us": us(e), "decaps_us": us(d), "per_handshake_us": us(total),
        }),
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if let Some(filter) = std::env::args().skip(1).find(|a| !a.starts_with("--"))
        && !"concentrator".contains(filter.as_str())
    {
        return;
    }
    let secs = if quick { "2" } else { "6" };
    let rounds = if quick { 1 } else { 2 };

    // 1. Batched against unbatched: 64 clients × 1500-byte echoes.
    let dir = Dir::new("bench-concentrator");
    dktp(
        &dir,
        &["loadgen", "setup", "fleet", "-n", "64", "--config", CONFIG],
    );
    let mut best = [0.0f64; 2];
    for round in 0..rounds {
        for (i, mode) in ["off", "auto"].into_iter().enumerate() {
            // Logs of their own: a process's address is read from its log.
            let (server, addr) = serve(&dir, &format!("server-{mode}-{round}"), &["--batch", mode]);
            let r = loadgen(
                &dir,
                &format!("load-{mode}-{round}"),
                &[
                    &addr,
                    "--dir",
                    "fleet",
                    "-n",
                    "64",
                    "--seconds",
                    secs,
                    "--min-size",
                    "1500",
                    "--max-size",
                    "1500",
                    "--batch",
                    mode,
                ],
            );
            assert_eq!(r["errors"], 0, "{r}");
            best[i] = best[i].max(r["mb_per_s_each_way"].as_f64().unwrap_or(0.0));
            drop(server);
        }
    }
    let ratio = best[1] / best[0];
    println!(
        "concentrator/batch: 64 clients × 1500 B echo: {:.1} MB/s each way batched, {:.1} \
         unbatched: ratio {ratio:.2}",
        best[1], best[0]
    );

    // 2. Handshakes: every pair reconnects as fast as the server lets it (a pair signs at
    // most one connect request a second, so there are more pairs than handshakes a second).
    let pairs = if quick { 400 } else { 1500 };
    let hs_dir = Dir::new("bench-handshakes");
    dktp(
        &hs_dir,
        &[
            "loadgen",
            "setup",
            "fleet",
            "-n",
            &pairs.to_string(),
            "--config",
            CONFIG,
        ],
    );
    let (server, addr) = serve(&hs_dir, "server", &[]);
    let pid = server.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let r = loadgen(
        &hs_dir,
        "load",
        &[
            &addr,
            "--dir",
            "fleet",
            "--handshakes",
            secs,
            "--attempts",
            "50",
        ],
    );
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    drop(server);
    assert_eq!(r["errors"], 0, "{r}");
    let handshakes = r["handshakes"].as_f64().unwrap_or(0.0);
    let config: Config = CONFIG.parse().expect("config");
    let (cost, parts) = primitive_cost(config, if quick { 30 } else { 200 });
    let bound_per_cpu_s = 1.0 / cost;
    let per_cpu_s = handshakes / cpu.max(1e-9);
    let efficiency = per_cpu_s / bound_per_cpu_s;
    println!(
        "concentrator/handshakes: {handshakes:.0} in {wall:.1} s: {:.0}/s with the load \
         generator on the same cores; the server used {cpu:.2} CPU-s: {per_cpu_s:.0} handshakes \
         per CPU-second",
        handshakes / wall
    );
    println!(
        "concentrator/handshake_bound: {:.0} µs of primitives per handshake ({parts}): {bound_per_cpu_s:.0} \
         per CPU-second; the server reaches {:.0}% of it",
        cost * 1e6,
        efficiency * 100.0
    );
    println!(
        "{}",
        serde_json::json!({
            "batched_mb_per_s_each_way": best[1],
            "unbatched_mb_per_s_each_way": best[0],
            "batch_ratio": ratio,
            "handshakes": handshakes,
            "handshakes_per_s": handshakes / wall,
            "server_cpu_seconds": cpu,
            "handshakes_per_server_cpu_second": per_cpu_s,
            "bound_per_cpu_second": bound_per_cpu_s,
            "efficiency": efficiency,
            "primitives": parts,
            "config": CONFIG,
        })
    );
}
