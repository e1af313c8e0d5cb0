//! Post-quantum operations for every algorithm and parameter set: keygen, encaps, decaps,
//! sign, verify. The slow sets (Classic McEliece keygen, SPHINCS+ signing) use criterion's
//! minimum sample count so `cargo bench` stays bounded.

use criterion::{BenchmarkId, Criterion};
use dktp::pq::OsEntropy;
use dktp::pq::speed::{PqBench, PqOp, all_sets};
use std::time::Duration;

fn slow(set: &str, op: PqOp) -> bool {
    (set.starts_with("mceliece") && op == PqOp::Keygen)
        || (set.starts_with("sphincs") && op != PqOp::Verify)
}

fn pq(c: &mut Criterion) {
    for (set, ops) in all_sets() {
        let Ok(mut b) = PqBench::new(set, &mut OsEntropy) else {
            eprintln!("pq bench: {set} unavailable in this build");
            continue;
        };
        let mut g = c.benchmark_group(format!("pq_{set}"));
        for &op in ops {
            if slow(set, op) {
                // Quick mode keeps only the smallest McEliece key generation.
                if dktp_bench::quick() && set != "mceliece-s1" {
                    eprintln!("pq bench: {set} {} skipped in quick mode", op.name());
                    continue;
                }
                dktp_bench::tune(
                    &mut g,
                    10,
                    Duration::from_secs(3),
                    Duration::from_millis(100),
                );
            } else {
                dktp_bench::tune(&mut g, 30, Duration::from_secs(2), Duration::from_secs(1));
            }
            g.bench_function(BenchmarkId::from_parameter(op.name()), |bn| {
                bn.iter(|| b.run(op, &mut OsEntropy).expect("pq operation"))
            });
        }
        g.finish();
    }
}

dktp_bench::main!(pq);
