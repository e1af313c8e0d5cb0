//! Prints µs per operation for every post-quantum set (or the sets named as arguments):
//! `cargo run -p dktp --release --example pq_speed -- kyber-s5 dilithium-s5`.
use dktp::pq::OsEntropy;
use dktp::pq::speed::{PqBench, all_sets};
use std::time::{Duration, Instant};

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    for (token, _) in all_sets() {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == token) {
            continue;
        }
        let mut b = match PqBench::new(token, &mut OsEntropy) {
            Ok(b) => b,
            Err(e) => {
                println!("{token:14} unavailable: {e}");
                continue;
            }
        };
        let mut line = format!("{token:14}");
        for &op in b.ops() {
            // Warm up; size a batch to ~2 ms; report the fastest batch within ~0.5 s, which
            // discounts time lost to other processes on a shared machine.
            let t0 = Instant::now();
            if b.run(op, &mut OsEntropy).is_err() {
                line.push_str(&format!("  {op}: error"));
                continue;
            }
            let one = t0.elapsed().as_secs_f64();
            let batch = ((0.002 / one) as u32).clamp(1, 10_000);
            let start = Instant::now();
            let mut best = f64::INFINITY;
            let mut batches = 0;
            while batches < 3 || start.elapsed() < Duration::from_millis(500) {
                let t = Instant::now();
                for _ in 0..batch {
                    let _ = b.run(op, &mut OsEntropy);
                }
                best = best.min(t.elapsed().as_secs_f64() / f64::from(batch));
                batches += 1;
                if one > 1.0 {
                    break;
                }
            }
            let us = best * 1e6;
            line.push_str(&format!("  {op}: {us:>10.1} µs ({:.0}/s)", 1e6 / us));
        }
        println!("{line}");
    }
}
