//! The DKTP handshake in process, per configuration: the whole six-message exchange (both
//! sides' CPU), the server's three steps alone and the client's alone. Operating-system
//! randomness, the default settings (fastest ephemeral key generation), a fresh replay gate
//! per handshake.
//!
//! `cargo bench -p dktp-bench --bench kex`; one group: `-- kex/handshake/dilithium-s5`.
//! McEliece and SPHINCS+ configurations run with a small sample size; a configuration this
//! build cannot run (e.g. McEliece before its backend lands) is skipped with a note.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use dktp::config::Config;
use dktp::kex::{PeerKeys, Settings, client};
use dktp::pq::OsEntropy;
use dktp::session::Session;
use dktp::testing;

const CONFIGS: [&str; 5] = [
    "dilithium-s5_kyber-s5_sha3_rcs",
    "dilithium-s1_kyber-s1_sha3_rcs",
    "dilithium-s5_kyber-s6_sha3_rcs",
    "dilithium-s1_mceliece-s1_sha3_rcs",
    "sphincs-s1s_mceliece-s1_sha3_rcs",
];

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn keys(config: Config) -> Option<(PeerKeys, PeerKeys)> {
    testing::link(config, [[1; 16], [2; 16]], now(), &mut OsEntropy).ok()
}

/// Time spent by each side in one handshake.
#[derive(Default, Clone, Copy)]
struct Split {
    client: Duration,
    server: Duration,
}

/// Runs `f`, adding the time it took to `total`.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    *total += start.elapsed();
    out
}

/// One whole handshake; returns the time each side spent, or the error.
fn handshake(ck: &PeerKeys, sk: &PeerKeys) -> Result<(Split, Session, Session), dktp::Error> {
    let mut split = Split::default();
    let (cl, sv) = (&mut split.client, &mut split.server);
    let mut rng = OsEntropy;
    let t = now();
    let settings = Settings::default();
    let c1 = timed(cl, || {
        client::start(ck.clone(), settings.clone(), t, &mut rng)
    })?;
    let s1 = timed(sv, || {
        testing::serve(&c1.packet, sk, &settings, t, &mut rng)
    })?;
    let c2 = timed(cl, || c1.next.handle(&s1.packet, t, &mut rng))?;
    let s2 = timed(sv, || s1.next.handle(&c2.packet, t, &mut rng))?;
    let c3 = timed(cl, || c2.next.handle(&s2.packet, t, &mut rng))?;
    let s3 = timed(sv, || s2.next.handle(&c3.packet, t, &mut rng))?;
    let client = timed(cl, || c3.next.handle(&s3.packet, t, &mut rng))?;
    Ok((split, client, s3.next))
}

fn kex(c: &mut Criterion) {
    let mut g = c.benchmark_group("kex");
    for name in CONFIGS {
        let config: Config = name.parse().expect("a reference configuration");
        let slow = config.kem().is_mceliece() || config.sig().is_sphincs();
        if slow && dktp_bench::quick() {
            eprintln!("kex: {name}: skipped in quick mode");
            continue;
        }
        let Some((ck, sk)) = keys(config) else {
            eprintln!("kex: {name}: key generation unavailable in this build, skipped");
            continue;
        };
        if let Err(e) = handshake(&ck, &sk) {
            eprintln!("kex: {name}: {e}; skipped");
            continue;
        }
        if slow {
            dktp_bench::tune(&mut g, 10, Duration::from_secs(20), Duration::from_secs(3));
        } else {
            dktp_bench::tune(&mut g, 60, Duration::from_secs(5), Duration::from_secs(3));
        }
        let short = name.trim_end_matches("_sha3_rcs");
        g.bench_function(BenchmarkId::new("handshake", short), |b| {
            b.iter(|| black_box(handshake(&ck, &sk).expect("handshake")))
        });
        for (side, pick) in [
            ("server", (|s: Split| s.server) as fn(Split) -> Duration),
            ("client", |s: Split| s.client),
        ] {
            g.bench_function(BenchmarkId::new(side, short), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| pick(handshake(&ck, &sk).expect("handshake").0))
                        .sum()
                })
            });
        }
    }
    g.finish();
}

dktp_bench::main!(kex);
