//! Helpers shared by the criterion benches: the quick mode and the group settings.
//!
//! Quick mode (`cargo bench -- --quick`, or `DKTP_BENCH_QUICK=1`) is what CI runs: every
//! benchmark gets a 0.2 s warm-up, at most 0.5 s of measurement, ten samples, 5000 bootstrap
//! resamples and no plots, the batch
//! grid shrinks to its headline cells, and the slow parameter sets (Classic McEliece key
//! generation beyond the smallest set, SPHINCS+ key generation and signing, McEliece and SPHINCS+ handshakes)
//! are skipped with a note. Without it, each bench keeps its own, longer settings.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};

/// Whether the benches run in quick mode.
pub fn quick() -> bool {
    std::env::var_os("DKTP_BENCH_QUICK").is_some_and(|v| v != "0")
        || std::env::args().any(|a| a == "--quick")
}

/// The configuration every bench starts from (`criterion_group!`'s `config`).
pub fn config() -> Criterion {
    let c = Criterion::default();
    if quick() {
        c.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500))
            .sample_size(10)
            .nresamples(5_000)
            .without_plots()
    } else {
        c
    }
}

/// Sets a group's sample count, measurement and warm-up time, except in quick mode, where
/// the group keeps [`config`]'s short settings.
pub fn tune(
    g: &mut BenchmarkGroup<'_, WallTime>,
    samples: usize,
    measurement: Duration,
    warm_up: Duration,
) {
    if quick() {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500));
    } else {
        g.sample_size(samples)
            .measurement_time(measurement)
            .warm_up_time(warm_up);
    }
}

/// The end of every bench file: `criterion_group!` named `benches` with [`config`] and the
/// given targets, and `criterion_main!`.
#[macro_export]
macro_rules! main {
    ($($target:path),+ $(,)?) => {
        criterion::criterion_group! {
            name = benches;
            config = $crate::config();
            targets = $($target),+
        }
        criterion::criterion_main!(benches);
    };
}
