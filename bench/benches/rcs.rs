//! RCS-512 seal/open per backend and size, with AES-256-GCM and ChaCha20-Poly1305
//! (RustCrypto) in the same groups as the context users compare against.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput};
use dktp::Backend;
use dktp::rcs::Rcs512Channel;
use dktp::rijndael::Rijndael256;
use std::hint::black_box;

const SIZES: [usize; 3] = [64, 1500, 16384];
const HEADER: [u8; 21] = [4; 21];

fn seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("rcs512_seal");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        for b in Backend::available() {
            let mut ch =
                Rcs512Channel::with_backend(b, &[7; 64], &[9; 32], &[]).expect("available");
            let mut buf = vec![0u8; size];
            let mut tag = [0u8; 64];
            g.bench_with_input(BenchmarkId::new(b.name(), size), &size, |bn, _| {
                bn.iter(|| ch.seal_in_place(&HEADER, black_box(&mut buf), &mut tag))
            });
        }
        let gcm = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
        let mut buf = vec![0u8; size];
        g.bench_with_input(BenchmarkId::new("aes256gcm", size), &size, |bn, _| {
            bn.iter(|| {
                gcm.encrypt_in_place_detached(&[1u8; 12].into(), &HEADER, black_box(&mut buf))
            })
        });
        let cc = chacha20poly1305::ChaCha20Poly1305::new(&[7u8; 32].into());
        g.bench_with_input(
            BenchmarkId::new("chacha20poly1305", size),
            &size,
            |bn, _| {
                bn.iter(|| {
                    cc.encrypt_in_place_detached(&[1u8; 12].into(), &HEADER, black_box(&mut buf))
                })
            },
        );
    }
    g.finish();
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("rcs512_open");
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        for b in Backend::available() {
            // Opening consumes the stream, so each iteration opens a freshly sealed packet
            // on a fresh pair; the sealing is excluded with iter_batched.
            g.bench_with_input(BenchmarkId::new(b.name(), size), &size, |bn, &size| {
                bn.iter_batched(
                    || {
                        let mut tx = Rcs512Channel::with_backend(b, &[7; 64], &[9; 32], &[])
                            .expect("available");
                        let rx = Rcs512Channel::with_backend(b, &[7; 64], &[9; 32], &[])
                            .expect("available");
                        let mut p = Vec::new();
                        tx.seal(&HEADER, &vec![1u8; size], &mut p).expect("seal");
                        (rx, p)
                    },
                    |(mut rx, mut p)| {
                        let (body, tag) = p.split_at_mut(size);
                        rx.open_in_place(&HEADER, body, tag).expect("open");
                    },
                    criterion::BatchSize::SmallInput,
                )
            });
        }
        let gcm = aes_gcm::Aes256Gcm::new(&[7u8; 32].into());
        let mut buf = vec![0u8; size];
        let tag = gcm
            .encrypt_in_place_detached(&[1u8; 12].into(), &HEADER, &mut buf)
            .expect("seal");
        g.bench_with_input(BenchmarkId::new("aes256gcm", size), &size, |bn, _| {
            bn.iter_batched(
                || buf.clone(),
                |mut b| gcm.decrypt_in_place_detached(&[1u8; 12].into(), &HEADER, &mut b, &tag),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn ctr(c: &mut Criterion) {
    let mut g = c.benchmark_group("rijndael256_ctr_30r");
    g.throughput(Throughput::Bytes(16384));
    for b in Backend::available() {
        let r = Rijndael256::new(b, &[3u8; 31 * 32]).expect("available");
        let mut nonce = [0u8; 32];
        let mut buf = vec![0u8; 16384];
        g.bench_function(b.name(), |bn| {
            bn.iter(|| r.ctr_xor(&mut nonce, black_box(&mut buf)))
        });
    }
    g.finish();
}

dktp_bench::main!(seal, open, ctr);
