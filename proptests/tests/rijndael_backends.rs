//! Every Rijndael-256 backend this CPU can run computes exactly what the portable backend
//! computes: the block function, the CTR keystream XOR and the advanced nonce, for random
//! round keys (22 and 30 rounds), nonces near carry boundaries and lengths 0..=65536.
//!
//! Every property also checks the portable backend against the engine's naive byte-oriented
//! Rijndael-256 (`engine/src/rijndael/reference.rs`, compiled in here), so none passes
//! vacuously on a CPU where portable is the only backend.
//!
//! Run with `cargo test -p dktp-proptests --release --test rijndael_backends`; set
//! `PROPTEST_CASES` for more cases.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use dktp::rijndael::{BLOCK_LEN, Rijndael256, RijndaelError};
use dktp::{Backend, BackendError};
use proptest::prelude::*;

/// The engine's test-only reference model (the same source file).
#[allow(dead_code, clippy::needless_range_loop)]
#[path = "../../engine/src/rijndael/reference.rs"]
mod reference;

/// The round count of an expanded key.
fn rounds_of(rk: &[u8]) -> usize {
    rk.len() / BLOCK_LEN - 1
}

/// Deterministic filler so that large buffers do not go through proptest's shrinking.
fn fill(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn rounds() -> impl Strategy<Value = usize> {
    prop_oneof![Just(22usize), Just(30usize)]
}

/// Nonces: uniform, near a carry out of the first `k` bytes (so that a message of a few
/// blocks crosses a byte / limb / multi-limb boundary), all-ones, and all-ones except the
/// top byte.
fn nonce() -> impl Strategy<Value = [u8; BLOCK_LEN]> {
    prop_oneof![
        3 => any::<[u8; BLOCK_LEN]>(),
        4 => (any::<[u8; BLOCK_LEN]>(), 1usize..=31, 0u8..=40).prop_map(|(mut n, k, d)| {
            for b in &mut n[..k] {
                *b = 0xff;
            }
            n[0] = 0xff - d;
            n
        }),
        1 => (0u8..=40).prop_map(|d| {
            let mut n = [0xff; BLOCK_LEN];
            n[0] = 0xff - d;
            n
        }),
        1 => Just([0xff; BLOCK_LEN]),
        1 => (0u8..=0xfe).prop_map(|top| {
            let mut n = [0xff; BLOCK_LEN];
            n[31] = top;
            n
        }),
    ]
}

/// Data lengths: mostly small (tails, single blocks), some medium, some up to 64 KiB.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..100,
        2 => 100usize..2048,
        2 => 0usize..=65536,
    ]
}

/// Random round keys for 22 or 30 rounds.
fn round_keys() -> impl Strategy<Value = Vec<u8>> {
    (rounds(), any::<u64>()).prop_map(|(r, seed)| fill(seed, 32 * (r + 1)))
}

fn others() -> Vec<Backend> {
    Backend::available()
        .into_iter()
        .filter(|b| *b != Backend::Portable)
        .collect()
}

/// `Backend::available()` is what it says: portable first, `best()` among them, in
/// `Backend::ALL` order; each keys a cipher that agrees with the reference model; every other
/// backend is refused with `Unavailable`, never replaced.
#[test]
fn available_backends_run_and_the_others_are_refused() {
    let available = Backend::available();
    println!("rijndael backends under test: {available:?}");
    assert_eq!(available.first(), Some(&Backend::Portable));
    assert!(available.contains(&Backend::best()));
    let in_order: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| available.contains(b))
        .collect();
    assert_eq!(in_order, available);
    let rk = fill(9, 32 * 31);
    let block = [0x3c; BLOCK_LEN];
    let data = fill(10, 1000);
    let (mut want_nonce, mut want) = ([0xfe; BLOCK_LEN], data.clone());
    reference::ctr_xor(&mut want_nonce, &mut want, &rk, 30);
    for b in Backend::ALL {
        let keyed = Rijndael256::new(b, &rk);
        if !available.contains(&b) {
            let refused = RijndaelError::Backend(BackendError::Unavailable(b));
            assert_eq!(keyed.err(), Some(refused), "{b}");
            assert_eq!(b.require(), Err(BackendError::Unavailable(b)));
            continue;
        }
        let c = keyed.expect("an available backend keys");
        assert_eq!((c.backend(), c.rounds()), (b, 30));
        let mut x = block;
        c.encrypt_block(&mut x);
        assert_eq!(x, reference::encrypt(&block, &rk, 30), "{b} block");
        let (mut n, mut d) = ([0xfe; BLOCK_LEN], data.clone());
        c.ctr_xor(&mut n, &mut d);
        assert!(d == want && n == want_nonce, "{b} ctr");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // cases: proptest's default (256, or PROPTEST_CASES)
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ctr_xor_equals_portable(
        rk in round_keys(),
        nonce in nonce(),
        len in length(),
        seed in any::<u64>(),
    ) {
        let data = fill(seed, len);
        let portable = Rijndael256::new(Backend::Portable, &rk).expect("portable");
        let (mut want_nonce, mut want) = (nonce, data.clone());
        portable.ctr_xor(&mut want_nonce, &mut want);
        // the model: keystream and a nonce advanced by ceil(len / 32) as a 256-bit
        // little-endian integer
        let (mut model_nonce, mut model) = (nonce, data.clone());
        reference::ctr_xor(&mut model_nonce, &mut model, &rk, rounds_of(&rk));
        prop_assert!(want == model, "portable keystream differs from the model (len {})", len);
        prop_assert_eq!(want_nonce, model_nonce);
        for backend in others() {
            let c = Rijndael256::new(backend, &rk).expect("available backend");
            let (mut got_nonce, mut got) = (nonce, data.clone());
            c.ctr_xor(&mut got_nonce, &mut got);
            prop_assert!(got == want, "{} keystream differs (len {})", backend, len);
            prop_assert_eq!(got_nonce, want_nonce, "{} nonce differs (len {})", backend, len);
        }
    }

    #[test]
    fn ctr_xor_in_pieces_equals_one_shot(
        rk in round_keys(),
        nonce in nonce(),
        blocks in prop::collection::vec(0usize..40, 1..5),
        tail in 0usize..32,
        seed in any::<u64>(),
    ) {
        // split points on block boundaries, the last piece may be partial
        let mut lens: Vec<usize> = blocks.iter().map(|b| b * BLOCK_LEN).collect();
        lens.push(tail);
        let data = fill(seed, lens.iter().sum());
        for backend in Backend::available() {
            let c = Rijndael256::new(backend, &rk).expect("available backend");
            let (mut n1, mut d1) = (nonce, data.clone());
            c.ctr_xor(&mut n1, &mut d1);
            let (mut n2, mut d2) = (nonce, data.clone());
            let mut rest = &mut d2[..];
            for l in &lens {
                let (head, r) = rest.split_at_mut(*l);
                c.ctr_xor(&mut n2, head);
                rest = r;
            }
            prop_assert!(d1 == d2, "{} pieces differ", backend);
            prop_assert_eq!(n1, n2, "{} nonce differs", backend);
        }
    }

    #[test]
    fn encrypt_block_equals_portable(
        rk in round_keys(),
        blocks in prop::collection::vec(any::<[u8; BLOCK_LEN]>(), 1..8),
    ) {
        let portable = Rijndael256::new(Backend::Portable, &rk).expect("portable");
        for b in &blocks {
            let mut x = *b;
            portable.encrypt_block(&mut x);
            prop_assert_eq!(x, reference::encrypt(b, &rk, rounds_of(&rk)), "portable block differs from the model");
        }
        for backend in others() {
            let c = Rijndael256::new(backend, &rk).expect("available backend");
            for b in &blocks {
                let (mut x, mut y) = (*b, *b);
                portable.encrypt_block(&mut x);
                c.encrypt_block(&mut y);
                prop_assert_eq!(x, y, "{} block differs", backend);
            }
        }
    }

    /// The keystream block i equals encrypt_block(nonce + i), for every backend.
    #[test]
    fn ctr_keystream_is_encrypted_counter(
        rk in round_keys(),
        nonce in nonce(),
        nblocks in 1usize..20,
    ) {
        for backend in Backend::available() {
            let c = Rijndael256::new(backend, &rk).expect("available backend");
            let mut ks = vec![0u8; nblocks * BLOCK_LEN];
            let mut n = nonce;
            c.ctr_xor(&mut n, &mut ks);
            let mut ctr = nonce;
            for chunk in ks.chunks(BLOCK_LEN) {
                let mut b = ctr;
                c.encrypt_block(&mut b);
                prop_assert_eq!(chunk, &b[..], "{}", backend);
                for x in ctr.iter_mut() {
                    *x = x.wrapping_add(1);
                    if *x != 0 {
                        break;
                    }
                }
            }
            prop_assert_eq!(n, ctr);
        }
    }
}
