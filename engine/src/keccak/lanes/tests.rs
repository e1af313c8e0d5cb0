//! The shared round text instantiated on scalar `u64` lanes, once with AVX2-style operations and
//! once emulating `vpternlogq` bit by bit with the AVX-512 immediates, checked against the
//! `keccak` crate's permutation; plus the x4/x8 entry points on every available backend.

use super::*;

/// A small deterministic generator (xorshift64*), enough to spread test states.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn state(&mut self) -> [u64; LANES] {
        core::array::from_fn(|_| self.next())
    }
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
macro_rules! s_xor5 {
    ($a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => {
        $a ^ $b ^ $c ^ $d ^ $e
    };
}
macro_rules! s_rol {
    ($x:expr, $n:literal) => {
        ($x as u64).rotate_left($n)
    };
}
macro_rules! s_chi {
    ($a:expr, $b:expr, $c:expr) => {
        $a ^ (!$b & $c)
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
fn scalar_rounds(mut a: [u64; LANES]) -> [u64; LANES] {
    keccak_f1600_rounds!(
        a,
        xor = s_xor,
        xor5 = s_xor5,
        rol = s_rol,
        chi = s_chi,
        iota = s_iota
    );
    a
}

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
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let mut states = vec![[0u64; LANES], [u64::MAX; LANES]];
    states.extend((0..30).map(|_| rng.state()));
    for s in states {
        assert_eq!(scalar_rounds(s), reference(s));
        assert_eq!(ternlog_rounds(s), reference(s));
        let mut selected = s;
        f1600(&mut selected);
        assert_eq!(selected, reference(s), "{}", crate::keccak::f1600_impl());
    }
}

#[test]
fn ternlog_immediates() {
    let mut rng = Rng(7);
    for _ in 0..100 {
        let (a, b, c) = (rng.next(), rng.next(), rng.next());
        assert_eq!(ternlog(TERNLOG_XOR3, a, b, c), a ^ b ^ c);
        assert_eq!(ternlog(TERNLOG_CHI, a, b, c), a ^ (!b & c));
    }
}

#[test]
fn x4_and_x8_match_scalar_on_every_available_backend() {
    let mut rng = Rng(42);
    for b in LaneBackend::available() {
        let four: [[u64; LANES]; 4] = core::array::from_fn(|_| rng.state());
        let mut got = four;
        permute_x4(b, &mut got);
        assert_eq!(got, four.map(reference), "x4 {b}");

        let eight: [[u64; LANES]; 8] = core::array::from_fn(|_| rng.state());
        let mut got = eight;
        permute_x8(b, &mut got);
        assert_eq!(got, eight.map(reference), "x8 {b}");
    }
}

#[test]
fn backend_mapping() {
    assert_eq!(
        LaneBackend::for_backend(Backend::Portable),
        LaneBackend::Portable
    );
    assert_eq!(
        LaneBackend::for_backend(Backend::Armv8),
        LaneBackend::Portable
    );
    for b in Backend::ALL {
        let l = LaneBackend::for_backend(b);
        assert!(l.is_available(), "{b} -> {l}");
    }
    if LaneBackend::Avx2.is_available() {
        assert_eq!(LaneBackend::for_backend(Backend::Aesni), LaneBackend::Avx2);
        assert_eq!(
            LaneBackend::for_backend(Backend::Vaes256),
            LaneBackend::Avx2
        );
    }
    assert!(LaneBackend::best().is_available());
    assert!(LaneBackend::available().contains(&LaneBackend::fastest()));
    assert_eq!(
        LaneBackend::ALL.map(LaneBackend::name),
        ["portable", "avx2", "avx512"]
    );
}
