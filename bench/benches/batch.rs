//! The batch engine (`dktp::batch`): aggregate seal and open throughput of one flush with one
//! packet per session, for 1, 8, 64 and 1024 sessions at 64, 1500, 16384 bytes and IMIX
//! (7:4:1 of 64/576/1500), on one thread (`1t`) and on every core (`all`), with the same
//! packets sealed or opened one at a time (`scalar`) in the same group.
//!
//! Bounded time: short warm-up and measurement, ten samples. `DKTP_BENCH_QUICK=1` (or
//! criterion's `--quick`) trims the grid to 1 and 8 sessions at 1500 bytes.
//! `cargo bench -p dktp-bench --bench batch`

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use dktp::batch::{self, Batch, DataSession, Outcome, Scratch};
use dktp::rcs::Rcs512Channel;

/// IMIX, 7:4:1 of 64/576/1500 over twelve packets; size 0 stands for it.
const IMIX: [usize; 12] = [64, 576, 64, 1500, 64, 576, 64, 64, 576, 64, 64, 576];
const NOW: u64 = 1_767_225_600;

use dktp_bench::quick;

fn grid() -> (Vec<usize>, Vec<usize>) {
    if quick() {
        (vec![1, 8], vec![1500])
    } else {
        (vec![1, 8, 64, 1024], vec![64, 1500, 16384, 0])
    }
}

fn size_of(size: usize, session: usize) -> usize {
    if size == 0 {
        IMIX[session % IMIX.len()]
    } else {
        size
    }
}

fn label(size: usize) -> String {
    if size == 0 {
        "imix".into()
    } else {
        size.to_string()
    }
}

/// `n` session pairs, keyed crosswise on the selected backend.
fn fleet(n: usize) -> (Vec<DataSession>, Vec<DataSession>) {
    (0..n)
        .map(|i| {
            let mut k1 = [0x11u8; 64];
            let mut k2 = [0x22u8; 64];
            k1[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k2[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let ch = |k: &[u8; 64], nonce: u8| {
                Rcs512Channel::new(k, &[nonce; 32], &[]).expect("backend")
            };
            (
                DataSession::new(ch(&k1, 1), ch(&k2, 2), 3, 3),
                DataSession::new(ch(&k2, 2), ch(&k1, 1), 3, 3),
            )
        })
        .unzip()
}

/// The packets `peers` send next, one each.
fn packets(peers: &mut [DataSession], payload: &[u8], size: usize) -> Vec<Vec<u8>> {
    peers
        .iter_mut()
        .enumerate()
        .map(|(i, p)| {
            let mut out = Vec::new();
            p.seal(&payload[..size_of(size, i)], NOW, &mut out)
                .expect("seal");
            out
        })
        .collect()
}

fn bytes(n: usize, size: usize) -> u64 {
    (0..n).map(|i| size_of(size, i) as u64).sum()
}

/// A batch on `threads` threads with the scratch the previous flush left.
fn reused<'a>(threads: usize, scratch: &mut Option<Scratch>) -> Batch<'a> {
    Batch::new()
        .with_threads(threads)
        .with_scratch(scratch.take().unwrap_or_default())
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn tune(g: &mut Group<'_>) {
    dktp_bench::tune(g, 10, Duration::from_secs(2), Duration::from_millis(300));
}

/// One group `batch_{kind}_{size}` per size of the grid; `cell` adds the benchmarks of `n`
/// sessions at one size to it (the payload's first bytes are each packet's).
fn grid_groups(
    c: &mut Criterion,
    kind: &str,
    mut cell: impl FnMut(&mut Group<'_>, usize, usize, &[u8]),
) {
    let (sessions, sizes) = grid();
    let payload = vec![0x5au8; 65536];
    for size in sizes {
        let mut g = c.benchmark_group(format!("batch_{kind}_{}", label(size)));
        tune(&mut g);
        for &n in &sessions {
            g.throughput(Throughput::Bytes(bytes(n, size)));
            cell(&mut g, n, size, &payload);
        }
        g.finish();
    }
}

fn seal(c: &mut Criterion) {
    let all = batch::available_threads();
    grid_groups(c, "seal", |g, n, size, payload| {
        let (mut ours, _) = fleet(n);
        let mut out = Vec::with_capacity(65536 + 85);
        g.bench_function(BenchmarkId::new("scalar", n), |b| {
            b.iter(|| {
                for (i, s) in ours.iter_mut().enumerate() {
                    out.clear();
                    s.seal(&payload[..size_of(size, i)], NOW, &mut out)
                        .expect("seal");
                    black_box(&out);
                }
            })
        });
        for (name, threads) in [("1t", 1), ("all", all)] {
            let mut scratch = Some(Scratch::default());
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    let mut batch = reused(threads, &mut scratch);
                    let mut first = None;
                    for (i, s) in ours.iter_mut().enumerate() {
                        let id = batch.add(s);
                        first = first.or(Some(id));
                        batch.seal(id, &payload[..size_of(size, i)]);
                    }
                    let done = batch.flush(NOW);
                    if let Some(id) = first {
                        assert!(!done.output(id).is_empty());
                    }
                    scratch = Some(done.into_scratch());
                })
            });
        }
    });
}

fn open(c: &mut Criterion) {
    let all = batch::available_threads();
    grid_groups(c, "open", |g, n, size, payload| {
        let per = if n * size_of(size, 0) > 1 << 20 {
            BatchSize::PerIteration
        } else {
            BatchSize::SmallInput
        };
        // Opening consumes each session's stream, so every iteration opens the next
        // packets its peers seal (the sealing is not timed).
        let (mut ours, mut peers) = fleet(n);
        g.bench_function(BenchmarkId::new("scalar", n), |b| {
            b.iter_batched(
                || packets(&mut peers, payload, size),
                |mut pk| {
                    for (s, p) in ours.iter_mut().zip(pk.iter_mut()) {
                        black_box(s.open(p, NOW).expect("open"));
                    }
                },
                per,
            )
        });
        for (name, threads) in [("1t", 1), ("all", all)] {
            let mut scratch = Some(Scratch::default());
            g.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter_batched(
                    || packets(&mut peers, payload, size),
                    |mut pk| {
                        let mut batch = reused(threads, &mut scratch);
                        let mut first = None;
                        for (s, p) in ours.iter_mut().zip(pk.iter_mut()) {
                            let id = batch.add(s);
                            first = first.or(Some(batch.open(id, p)));
                        }
                        let done = batch.flush(NOW);
                        if let Some(j) = first {
                            assert!(matches!(done.outcome(j), Outcome::Opened(_)));
                        }
                        scratch = Some(done.into_scratch());
                    },
                    per,
                )
            });
        }
    });
}

dktp_bench::main!(seal, open);
