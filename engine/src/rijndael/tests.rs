//! Unit tests: portable against the naive reference and model-generated cases; every
//! available backend against portable; API edge cases.

use super::*;

/// splitmix64: a small deterministic generator for test inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
    fn block(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        self.fill(&mut b);
        b
    }
}

fn hex32(s: &str) -> [u8; 32] {
    let v = hex::decode(s).expect("hex");
    v.try_into().expect("32 bytes")
}

#[test]
fn portable_block_matches_reference() {
    let mut rng = Rng(1);
    for rounds in [22usize, 30, 10, 12] {
        for _ in 0..40 {
            let rk = rng.bytes(32 * (rounds + 1));
            let c = Rijndael256::new(Backend::Portable, &rk).expect("key");
            assert_eq!(c.rounds(), rounds);
            let pt = rng.block();
            let mut b = pt;
            c.encrypt_block(&mut b);
            assert_eq!(b, reference::encrypt(&pt, &rk, rounds), "rounds {rounds}");
        }
    }
}

#[test]
fn portable_ctr_matches_reference() {
    let mut rng = Rng(2);
    let nonces: [[u8; 32]; 4] = [
        rng.block(),
        {
            let mut n = rng.block();
            n[..8].fill(0xff);
            n[0] = 0xfc;
            n
        },
        [0xff; 32],
        {
            let mut n = [0xff; 32];
            n[31] = 0x00;
            n[0] = 0xfe;
            n
        },
    ];
    for rounds in [22usize, 30] {
        let rk = rng.bytes(32 * (rounds + 1));
        let c = Rijndael256::new(Backend::Portable, &rk).expect("key");
        for nonce in nonces {
            for len in [0usize, 1, 31, 32, 33, 63, 64, 65, 100, 200, 257, 1000] {
                let data = rng.bytes(len);
                let (mut n1, mut d1) = (nonce, data.clone());
                let (mut n2, mut d2) = (nonce, data);
                c.ctr_xor(&mut n1, &mut d1);
                reference::ctr_xor(&mut n2, &mut d2, &rk, rounds);
                assert_eq!(d1, d2, "rounds {rounds} len {len}");
                assert_eq!(n1, n2, "nonce, rounds {rounds} len {len}");
            }
        }
    }
}

/// Cases produced by the Python model (see `provenance` in the file).
#[test]
fn model_generated_cases() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("testdata.json")).expect("testdata.json");
    let blocks = doc["block"].as_array().expect("block cases");
    let ctrs = doc["ctr"].as_array().expect("ctr cases");
    assert!(blocks.len() >= 6 && ctrs.len() >= 3);
    for backend in Backend::available() {
        for case in blocks {
            let rk = hex::decode(case["round_keys"].as_str().expect("rk")).expect("hex");
            let c = Rijndael256::new(backend, &rk).expect("key");
            assert_eq!(c.rounds() as u64, case["rounds"].as_u64().expect("rounds"));
            let mut b = hex32(case["block"].as_str().expect("block"));
            c.encrypt_block(&mut b);
            assert_eq!(
                b,
                hex32(case["encrypted"].as_str().expect("encrypted")),
                "{backend}"
            );
        }
        for case in ctrs {
            let rk = hex::decode(case["round_keys"].as_str().expect("rk")).expect("hex");
            let c = Rijndael256::new(backend, &rk).expect("key");
            let mut nonce = hex32(case["nonce"].as_str().expect("nonce"));
            let mut data = hex::decode(case["data"].as_str().expect("data")).expect("hex");
            c.ctr_xor(&mut nonce, &mut data);
            assert_eq!(
                hex::encode(&data),
                case["xored"].as_str().expect("xored"),
                "{backend}"
            );
            assert_eq!(
                hex::encode(nonce),
                case["nonce_after"].as_str().expect("nonce_after")
            );
        }
    }
}

/// The nonce advance agrees with the reference vectors' `nonce_carry` cases (the nonce
/// after an RCS transform of `pt` is `nonce + ceil(len / 32)`).
#[test]
fn nonce_advance_matches_rcs_vectors() {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../../vectors/data/rcs.json")).expect("rcs.json");
    let cases = doc["nonce_carry"].as_array().expect("nonce_carry");
    assert!(!cases.is_empty());
    let rk = [0u8; 32 * 23];
    let c = Rijndael256::new(Backend::Portable, &rk).expect("key");
    for case in cases {
        let mut nonce = hex32(case["nonce"].as_str().expect("nonce"));
        let pt = hex::decode(case["pt"].as_str().expect("pt")).expect("hex");
        let mut data = pt.clone();
        c.ctr_xor(&mut nonce, &mut data);
        assert_eq!(
            hex::encode(nonce),
            case["nonce_after"].as_str().expect("nonce_after")
        );
    }
}

#[test]
fn every_backend_matches_portable() {
    let mut rng = Rng(3);
    for rounds in [22usize, 30] {
        let rk = rng.bytes(32 * (rounds + 1));
        let p = Rijndael256::new(Backend::Portable, &rk).expect("portable");
        for backend in Backend::available() {
            let c = Rijndael256::new(backend, &rk).expect("key");
            assert_eq!(c.backend(), backend);
            for _ in 0..8 {
                let mut a = rng.block();
                let mut b = a;
                p.encrypt_block(&mut a);
                c.encrypt_block(&mut b);
                assert_eq!(a, b, "{backend} block");
            }
            let mut nonce = rng.block();
            nonce[..8].copy_from_slice(&(u64::MAX - 20).to_le_bytes());
            for len in (0..=300).chain([511, 512, 513, 1023, 1024, 4096, 4097, 16384 + 95]) {
                let data = rng.bytes(len);
                let (mut n1, mut d1) = (nonce, data.clone());
                let (mut n2, mut d2) = (nonce, data);
                p.ctr_xor(&mut n1, &mut d1);
                c.ctr_xor(&mut n2, &mut d2);
                assert_eq!(d1, d2, "{backend} len {len}");
                assert_eq!(n1, n2, "{backend} nonce len {len}");
            }
        }
    }
}

#[test]
fn ctr_is_streamable_in_block_multiples() {
    let mut rng = Rng(4);
    let rk = rng.bytes(32 * 31);
    for backend in Backend::available() {
        let c = Rijndael256::new(backend, &rk).expect("key");
        let nonce = [0xff; 32];
        let data = rng.bytes(1000);
        let (mut n1, mut d1) = (nonce, data.clone());
        c.ctr_xor(&mut n1, &mut d1);
        let (mut n2, mut d2) = (nonce, data);
        let (a, b) = d2.split_at_mut(320);
        c.ctr_xor(&mut n2, a);
        c.ctr_xor(&mut n2, b);
        assert_eq!(d1, d2);
        assert_eq!(n1, n2);
        // 1000 bytes = 32 blocks: all-ones + 32 wraps to 31
        let mut want = [0u8; 32];
        want[0] = 31;
        assert_eq!(n1, want);
    }
}

#[test]
fn ctr_xor_many_is_sequential() {
    let mut rng = Rng(5);
    let k1 = Rijndael256::new(Backend::best(), &rng.bytes(32 * 31)).expect("k1");
    let k2 = Rijndael256::new(Backend::Portable, &rng.bytes(32 * 23)).expect("k2");
    let (mut n1, mut n2, mut n3) = (rng.block(), rng.block(), [0xff; 32]);
    let (mut d1, mut d2, mut d3) = (rng.bytes(100), rng.bytes(1), rng.bytes(4000));
    let (mut e1, mut e2, mut e3) = (d1.clone(), d2.clone(), d3.clone());
    let (mut m1, mut m2, mut m3) = (n1, n2, n3);
    k1.ctr_xor(&mut m1, &mut e1);
    k2.ctr_xor(&mut m2, &mut e2);
    k1.ctr_xor(&mut m3, &mut e3);
    ctr_xor_many(&mut [
        (&k1, &mut n1, &mut d1[..]),
        (&k2, &mut n2, &mut d2[..]),
        (&k1, &mut n3, &mut d3[..]),
    ]);
    assert_eq!((d1, d2, d3), (e1, e2, e3));
    assert_eq!((n1, n2, n3), (m1, m2, m3));
}

#[test]
fn key_length_errors() {
    for len in [
        0usize,
        31,
        32,
        64,
        32 * 10,
        32 * 11 + 1,
        32 * 12,
        32 * 66,
        32 * 67,
    ] {
        let rk = vec![0u8; len];
        assert_eq!(
            Rijndael256::new(Backend::Portable, &rk).err(),
            Some(RijndaelError::BadKeyLength(len)),
            "len {len}"
        );
    }
    for rounds in [10usize, 14, 22, 30, 64] {
        let c = Rijndael256::new(Backend::Portable, &vec![0u8; 32 * (rounds + 1)]).expect("ok");
        assert_eq!(c.rounds(), rounds);
    }
    let e = RijndaelError::BadKeyLength(5);
    assert!(e.to_string().contains('5'));
}

#[test]
fn unavailable_backend_is_an_error() {
    for b in Backend::ALL {
        let r = Rijndael256::new(b, &[0u8; 32 * 23]);
        if b.is_available() {
            assert!(r.is_ok());
        } else {
            assert_eq!(
                r.err(),
                Some(RijndaelError::Backend(BackendError::Unavailable(b)))
            );
        }
    }
    // the backend check comes first
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    assert!(matches!(
        Rijndael256::new(Backend::Armv8, &[0u8; 3]),
        Err(RijndaelError::Backend(_))
    ));
}

#[test]
fn debug_is_redacted() {
    let rk = [0x5au8; 32 * 23];
    for b in Backend::available() {
        let c = Rijndael256::new(b, &rk).expect("key");
        let s = format!("{c:?}");
        assert!(s.contains("<redacted>"), "{s}");
        assert!(!s.to_lowercase().contains("5a"), "{s}");
    }
}

#[test]
fn counter_increments_with_full_carry() {
    let mut c = Counter::from_bytes(&[0xff; 32]);
    c.increment();
    assert_eq!(c.to_bytes(), [0; 32]);
    let mut b = [0u8; 32];
    b[..16].fill(0xff);
    let mut c = Counter::from_bytes(&b);
    c.increment();
    let mut want = [0u8; 32];
    want[16] = 1;
    assert_eq!(c.to_bytes(), want);
    let mut c = Counter::from_bytes(&[7; 32]);
    c.advance(3);
    let mut want = [7u8; 32];
    want[0] = 10;
    assert_eq!(c.to_bytes(), want);
}

/// On-CPU time of this thread in nanoseconds (Linux `schedstat`), so that timings on a
/// shared machine exclude time spent descheduled; falls back to `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Throwaway keystream timing (not a benchmark harness):
/// `cargo test -p dktp --release rijndael::tests::keystream_speed -- --ignored --nocapture`
/// Optional `DKTP_SPEED_MS` = time budget per measurement (default 1500 ms),
/// `DKTP_SPEED_BACKENDS` = comma-separated backend names. Reports MB/s
/// over on-CPU time and over wall time, each the best of 25 windows.
#[test]
#[ignore = "timing, run on demand"]
fn keystream_speed() {
    use std::time::{Duration, Instant};
    let budget = Duration::from_millis(
        std::env::var("DKTP_SPEED_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500),
    );
    let mut rng = Rng(6);
    println!("available: {:?}", Backend::available());
    for rounds in [30usize, 22] {
        let rk = rng.bytes(32 * (rounds + 1));
        let only = std::env::var("DKTP_SPEED_BACKENDS").unwrap_or_default();
        for backend in Backend::available() {
            if !only.is_empty() && !only.split(',').any(|n| n == backend.name()) {
                continue;
            }
            let c = Rijndael256::new(backend, &rk).expect("key");
            for len in [16 * 1024usize, 1024, 64] {
                let mut buf = vec![0u8; len];
                let mut nonce = rng.block();
                let (mut best_cpu, mut best_wall) = (0f64, 0f64);
                for _ in 0..25 {
                    let start = Instant::now();
                    let cpu0 = thread_cpu_ns();
                    let mut bytes = 0usize;
                    while start.elapsed() < budget / 25 {
                        for _ in 0..16 {
                            c.ctr_xor(&mut nonce, &mut buf);
                        }
                        bytes += 16 * len;
                    }
                    let wall = start.elapsed().as_secs_f64();
                    best_wall = best_wall.max(bytes as f64 / wall / 1e6);
                    if let (Some(a), Some(b)) = (cpu0, thread_cpu_ns()) {
                        let cpu = (b - a) as f64 / 1e9;
                        best_cpu = best_cpu.max(bytes as f64 / cpu / 1e6);
                    }
                }
                std::hint::black_box(&buf);
                println!(
                    "rounds {rounds:2} {:<12} {len:6} B: {best_cpu:9.1} MB/s (cpu time) {best_wall:9.1} MB/s (wall)",
                    backend.name()
                );
            }
        }
    }
}
