//! The shared round text instantiated on scalar `u64` lanes emulating `vpternlogq` bit by bit
//! with the AVX-512 immediates, and its plain-`u64` BMI build (`keccak/scalar.rs`) where the
//! CPU runs it, checked against the `keccak` crate's permutation; plus the x4/x8 entry points
//! on every available backend and the refusal of the others.

use super::*;

/// `n` test states spread by the reference permutation itself (state `i + 1` is the
/// permutation of state `i` with `i` added to every word), starting from `seed`.
fn states(seed: u64, n: usize) -> Vec<[u64; LANES]> {
    let mut s = [seed; LANES];
    (0..n)
        .map(|i| {
            for w in s.iter_mut() {
                *w = w.wrapping_add(i as u64);
            }
            crate::keccak::f1600_portable(&mut s);
            s
        })
        .collect()
}

/// `vpternlogq` on one 64-bit word: result bit = `imm[4a + 2b + c]`.
fn ternlog(imm: i32, a: u64, b: u64, c: u64) -> u64 {
    let mut r = 0u64;
    for bit in 0..64 {
        let idx = (((a >> bit) & 1) << 2) | (((b >> bit) & 1) << 1) | ((c >> bit) & 1);
        r |= (((imm as u64) >> idx) & 1) << bit;
    }
    r
}

macro_rules! s_xor {
    ($a:expr, $b:expr) => {
        $a ^ $b
    };
}
macro_rules! s_rol {
    ($x:expr, $n:literal) => {
        ($x as u64).rotate_left($n)
    };
}
macro_rules! s_iota {
    ($a:expr, $rc:expr) => {
        $a ^ $rc
    };
}
macro_rules! t_xor5 {
    ($a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => {
        ternlog(TERNLOG_XOR3, ternlog(TERNLOG_XOR3, $a, $b, $c), $d, $e)
    };
}
macro_rules! t_chi {
    ($a:expr, $b:expr, $c:expr) => {
        ternlog(TERNLOG_CHI, $a, $b, $c)
    };
}

// The shared text writes `a = iota!(a, rc)` so vector backends can use it too.
#[allow(clippy::assign_op_pattern)]
fn ternlog_rounds(mut a: [u64; LANES]) -> [u64; LANES] {
    keccak_f1600_rounds!(
        a,
        xor = s_xor,
        xor5 = t_xor5,
        rol = s_rol,
        chi = t_chi,
        iota = s_iota
    );
    a
}

/// The `keccak` crate's permutation: the independent reference.
fn reference(mut s: [u64; LANES]) -> [u64; LANES] {
    crate::keccak::f1600_portable(&mut s);
    s
}

#[test]
fn shared_round_text_and_selected_f1600_are_keccak_f1600() {
    let mut all = vec![[0u64; LANES], [u64::MAX; LANES]];
    all.extend(states(0x0123_4567_89AB_CDEF, 30));
    #[cfg(target_arch = "x86_64")]
    let bmi = crate::keccak::scalar::select();
    for s in all {
        assert_eq!(ternlog_rounds(s), reference(s));
        #[cfg(target_arch = "x86_64")]
        if let Some(f) = bmi {
            let mut t = s;
            f(&mut t);
            assert_eq!(t, reference(s), "unrolled-bmi2");
        }
        let mut selected = s;
        f1600(&mut selected);
        assert_eq!(selected, reference(s), "{}", crate::keccak::f1600_impl());
    }
}

#[test]
fn ternlog_immediates() {
    for s in states(7, 8) {
        for w in s.windows(3) {
            let (a, b, c) = (w[0], w[1], w[2]);
            assert_eq!(ternlog(TERNLOG_XOR3, a, b, c), a ^ b ^ c);
            assert_eq!(ternlog(TERNLOG_CHI, a, b, c), a ^ (!b & c));
        }
    }
}

#[test]
fn x4_and_x8_match_scalar_on_every_available_backend() {
    for (i, b) in LaneBackend::available().into_iter().enumerate() {
        let eight: [[u64; LANES]; 8] = states(42 + i as u64, 8).try_into().expect("eight states");
        let four = [eight[0], eight[1], eight[2], eight[3]];
        let mut got = four;
        permute_x4(b, &mut got);
        assert_eq!(got, four.map(reference), "x4 {b}");

        let mut got = eight;
        permute_x8(b, &mut got);
        assert_eq!(got, eight.map(reference), "x8 {b}");
    }
}

#[test]
fn backend_mapping() {
    use LaneBackend::{Avx2, Avx512, Portable};
    // AES-NI CPUs without AVX2 exist: their lanes are portable.
    let aesni = if Avx2.is_available() { Avx2 } else { Portable };
    let want = [
        (Backend::Portable, Portable),
        (Backend::Armv8, Portable),
        (Backend::Aesni, aesni),
        (Backend::Vaes256, Avx2),
        (Backend::Vaes512, Avx512),
        (Backend::Vaes512Vbmi, Avx512),
    ];
    assert_eq!(want.map(|(b, _)| b), Backend::ALL);
    for (b, lanes) in want {
        assert_eq!(LaneBackend::for_backend(b), lanes, "{b}");
    }
    // an available backend's lanes are available
    for b in Backend::available() {
        let l = LaneBackend::for_backend(b);
        assert!(l.is_available(), "{b} -> {l}");
    }
    assert!(LaneBackend::best().is_available());
    assert!(LaneBackend::available().contains(&LaneBackend::fastest()));
    assert_eq!(
        LaneBackend::ALL.map(LaneBackend::name),
        ["portable", "avx2", "avx512"]
    );
}

/// A lane backend the CPU lacks is an error to `require` and refused by every entry point,
/// never replaced by another one.
#[test]
fn unavailable_lane_backends_are_refused() {
    for b in LaneBackend::ALL {
        if b.is_available() {
            assert_eq!(b.require(), Ok(b));
            continue;
        }
        assert_eq!(b.require(), Err(BackendError::LanesUnavailable(b)));
        let refused =
            |f: &dyn Fn()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
        assert!(refused(&|| permute_x4(b, &mut [[0; LANES]; 4])), "x4 {b}");
        assert!(refused(&|| permute_x8(b, &mut [[0; LANES]; 8])), "x8 {b}");
        assert!(
            refused(&|| permute_x4_words(b, &mut [[0; 4]; LANES])),
            "x4 words {b}"
        );
        assert!(
            refused(&|| permute_x8_words(b, &mut [[0; 8]; LANES])),
            "x8 words {b}"
        );
    }
    assert_eq!(LaneBackend::Portable.require(), Ok(LaneBackend::Portable));
}
