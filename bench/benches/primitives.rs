//! Keccak permutations (x1/x4/x8 per lane backend), KMAC-512 and cSHAKE-512.

use criterion::{BenchmarkId, Criterion, Throughput};
use dktp::keccak::{
    self,
    lanes::{self, LaneBackend},
};
use std::hint::black_box;

fn permutations(c: &mut Criterion) {
    let mut g = c.benchmark_group("keccak_f1600");
    g.throughput(Throughput::Elements(1));
    let mut s = [0u64; 25];
    g.bench_function("x1", |b| b.iter(|| keccak::f1600(black_box(&mut s))));
    for lb in [
        LaneBackend::Portable,
        LaneBackend::Avx2,
        LaneBackend::Avx512,
    ] {
        if !lb.is_available() {
            continue;
        }
        g.throughput(Throughput::Elements(4));
        let mut s4 = [[0u64; 25]; 4];
        g.bench_function(BenchmarkId::new("x4", lb.name()), |b| {
            b.iter(|| lanes::permute_x4(lb, black_box(&mut s4)))
        });
        g.throughput(Throughput::Elements(8));
        let mut s8 = [[0u64; 25]; 8];
        g.bench_function(BenchmarkId::new("x8", lb.name()), |b| {
            b.iter(|| lanes::permute_x8(lb, black_box(&mut s8)))
        });
    }
    g.finish();
}

fn kmac(c: &mut Criterion) {
    let mut g = c.benchmark_group("kmac512");
    for size in [64usize, 1500, 16384] {
        g.throughput(Throughput::Bytes(size as u64));
        let msg = vec![1u8; size];
        let mut mac = keccak::Kmac512::new(&[7; 64], &[]);
        let mut tag = [0u8; 64];
        g.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                mac.update(black_box(&msg));
                mac.finalize_into(&mut tag)
            })
        });
    }
    g.finish();
}

fn cshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("cshake512");
    g.throughput(Throughput::Bytes(32));
    let mut out = [0u8; 96];
    g.bench_function("kdf_96", |b| {
        b.iter(|| {
            keccak::cshake512(
                black_box(&[1u8; 32]),
                b"DKTP:TXKEY:V1",
                &[2u8; 32],
                &mut out,
            )
        })
    });
    g.finish();
}

dktp_bench::main!(permutations, kmac, cshake);
