//! Multi-lane Keccak equals the scalar permutation, and batched KMAC absorption equals
//! sequential updates, on every lane backend this CPU runs (AVX-512 included when present),
//! the portable lanes always among them. The scalar reference is the `keccak` crate's
//! permutation ([`f1600_portable`]), itself pinned to a known answer; lane backends the CPU
//! lacks are refused, never replaced.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use dktp::BackendError;
use dktp::keccak::lanes::{self, LaneBackend};
use dktp::keccak::{Kmac, Kmac256, Kmac512, f1600, f1600_portable};
use proptest::prelude::*;

fn state() -> impl Strategy<Value = [u64; 25]> {
    prop::array::uniform25(any::<u64>())
}

fn scalar<const N: usize>(states: &[[u64; 25]; N]) -> [[u64; 25]; N] {
    let mut out = *states;
    for s in out.iter_mut() {
        f1600_portable(s);
    }
    out
}

/// The lane backends under test: every one this CPU runs, and always the portable lanes.
fn lane_backends() -> Vec<LaneBackend> {
    let all = LaneBackend::available();
    assert_eq!(all.first(), Some(&LaneBackend::Portable));
    all
}

/// The reference is Keccak-f[1600]: the permutation of the all-zero state (the Keccak team's
/// known answer, first and last lanes).
#[test]
fn reference_permutation_known_answer() {
    let mut s = [0u64; 25];
    f1600_portable(&mut s);
    assert_eq!(s[0], 0xF125_8F79_40E1_DDE7);
    assert_eq!(s[24], 0xEAF1_FF7B_5CEC_A249);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn selected_f1600_equals_keccak_crate(s in state()) {
        let (mut a, mut b) = (s, s);
        f1600(&mut a);
        f1600_portable(&mut b);
        prop_assert_eq!(a, b, "{}", dktp::keccak::f1600_impl());
    }

    #[test]
    fn permute_x4_and_x8_equal_scalar(states in prop::array::uniform8(state())) {
        let want = scalar(&states);
        for b in lane_backends() {
            let mut got = states;
            lanes::permute_x8(b, &mut got);
            prop_assert_eq!(got, want, "x8 backend {}", b);
            let mut four = [states[0], states[1], states[2], states[3]];
            lanes::permute_x4(b, &mut four);
            prop_assert_eq!(&four[..], &want[..4], "x4 backend {}", b);
        }
    }
}

/// One sponge of a batch: key, customization, bytes absorbed before the batch (so buffers are
/// part-filled), the batch input, and bytes absorbed after it.
#[derive(Clone, Debug)]
struct Job {
    key: Vec<u8>,
    custom: Vec<u8>,
    before: Vec<u8>,
    input: Vec<u8>,
    after: Vec<u8>,
}

fn job() -> impl Strategy<Value = Job> {
    (
        prop::collection::vec(any::<u8>(), 0..=80),
        prop::collection::vec(any::<u8>(), 0..=8),
        prop::collection::vec(any::<u8>(), 0..=150),
        prop::collection::vec(any::<u8>(), 0..=2000),
        prop::collection::vec(any::<u8>(), 0..=80),
    )
        .prop_map(|(key, custom, before, input, after)| Job {
            key,
            custom,
            before,
            input,
            after,
        })
}

/// Runs the jobs sequentially and batched on `b` (two batched calls, with a tag in between, so
/// the streaming state after a batch is exercised); returns both sets of tags.
fn run<const RATE: usize>(
    b: LaneBackend,
    jobs: &[Job],
    tag_len: usize,
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let start = |j: &Job| {
        let mut m = Kmac::<RATE>::new(&j.key, &j.custom);
        m.update(&j.before);
        m
    };
    let mut seq: Vec<Kmac<RATE>> = jobs.iter().map(start).collect();
    let mut bat: Vec<Kmac<RATE>> = jobs.iter().map(start).collect();
    let (mut want, mut got) = (Vec::new(), Vec::new());

    for (m, j) in seq.iter_mut().zip(jobs) {
        m.update(&j.input);
        let mut t = vec![0u8; tag_len];
        m.finalize_into(&mut t);
        want.push(t);
        m.update(&j.after);
        m.update(&j.input);
        let mut t = vec![0u8; tag_len];
        m.finalize_into(&mut t);
        want.push(t);
    }

    let inputs: Vec<&[u8]> = jobs.iter().map(|j| &j.input[..]).collect();
    let mut refs: Vec<&mut Kmac<RATE>> = bat.iter_mut().collect();
    lanes::kmac_update_many(b, &mut refs, &inputs);
    let mut first = Vec::new();
    for (m, j) in refs.iter_mut().zip(jobs) {
        let mut t = vec![0u8; tag_len];
        m.finalize_into(&mut t);
        first.push(t);
        m.update(&j.after);
    }
    lanes::kmac_update_many(b, &mut refs, &inputs);
    for (m, t1) in refs.iter_mut().zip(first) {
        let mut t = vec![0u8; tag_len];
        m.finalize_into(&mut t);
        got.push(t1);
        got.push(t);
    }
    (want, got)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn kmac512_update_many_equals_sequential(jobs in prop::collection::vec(job(), 1..=20)) {
        for b in lane_backends() {
            let (want, got) = run::<72>(b, &jobs, 64);
            prop_assert_eq!(got, want, "backend {}", b);
        }
    }

    #[test]
    fn kmac256_update_many_equals_sequential(jobs in prop::collection::vec(job(), 1..=20)) {
        for b in lane_backends() {
            let (want, got) = run::<136>(b, &jobs, 32);
            prop_assert_eq!(got, want, "backend {}", b);
        }
    }
}

#[test]
fn update_many_tolerates_mismatched_lengths_and_empty_batches() {
    let key = [1u8; 64];
    let mut a = Kmac512::new(&key, b"");
    let mut b = Kmac512::new(&key, b"");
    let long = [5u8; 1000];
    for lb in lane_backends() {
        lanes::kmac_update_many::<72>(lb, &mut [], &[&long[..]]);
        lanes::kmac_update_many(lb, &mut [&mut a], &[]);
        lanes::kmac_update_many(lb, &mut [&mut a], &[&long[..], &long[..]]);
        b.update(&long);
    }
    let (mut ta, mut tb) = ([0u8; 64], [0u8; 64]);
    a.finalize_into(&mut ta);
    b.finalize_into(&mut tb);
    assert_eq!(ta, tb);
    let _ = Kmac256::new(&key, b"");
}

/// Every lane backend either runs and computes the permutation, or, where the CPU lacks it,
/// is an error to `require` and refused by the permutations (never replaced by another).
#[test]
fn every_backend_runs_correctly_or_is_refused() {
    let states: [[u64; 25]; 8] = core::array::from_fn(|i| [i as u64 * 0x9E37_79B9_7F4A_7C15; 25]);
    let want = scalar(&states);
    for b in LaneBackend::ALL {
        let mut got = states;
        let mut four = [states[0], states[1], states[2], states[3]];
        if b.require().is_err() {
            assert_eq!(b.require(), Err(BackendError::LanesUnavailable(b)));
            let refused = std::panic::catch_unwind(move || lanes::permute_x8(b, &mut got));
            assert!(refused.is_err(), "{b} ran on a CPU without it");
            continue;
        }
        lanes::permute_x8(b, &mut got);
        assert_eq!(got, want, "{b}");
        lanes::permute_x4(b, &mut four);
        assert_eq!(four, [want[0], want[1], want[2], want[3]], "{b}");
    }
}
