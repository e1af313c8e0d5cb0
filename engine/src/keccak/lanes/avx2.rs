//! Four Keccak-f\[1600\] permutations side by side in AVX2: one `__m256i` per lane word, lane
//! `i` of the vector belonging to state `i`. Rotations by 8 and 56 are byte shuffles.
#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m256i, _mm256_andnot_si256, _mm256_loadu_si256, _mm256_or_si256, _mm256_set_epi64x,
    _mm256_set1_epi64x, _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_slli_epi64,
    _mm256_srli_epi64, _mm256_storeu_si256, _mm256_xor_si256,
};

use crate::keccak::LANES;

witness!(Avx2, crate::backend::cpu_has_avx2, "AVX2");

/// Permutes four states.
pub(super) fn permute_x4(_cpu: Avx2, states: &mut [&mut [u64; LANES]; 4]) {
    // SAFETY: an `Avx2` value exists only when runtime detection found AVX2, the only target
    // feature `keccak_x4` enables.
    unsafe { keccak_x4(states) }
}

/// Permutes the four states held word-major in `words[j][at..at + 4]` (see
/// [`super::permute_x4_words`]); `at + 4 <= N` (a smaller `N` leaves `words` unchanged).
pub(super) fn permute_x4_words<const N: usize>(
    _cpu: Avx2,
    words: &mut [[u64; N]; LANES],
    at: usize,
) {
    if at.checked_add(4).is_none_or(|end| end > N) {
        return;
    }
    // SAFETY: an `Avx2` value exists only when runtime detection found AVX2, the only target
    // feature `keccak_x4_words` enables; `at + 4 <= N` was checked just above.
    unsafe { keccak_x4_words(words, at) }
}

macro_rules! xor {
    ($a:expr, $b:expr) => {
        _mm256_xor_si256($a, $b)
    };
}

macro_rules! xor5 {
    ($a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => {
        _mm256_xor_si256(
            _mm256_xor_si256($a, $b),
            _mm256_xor_si256($c, _mm256_xor_si256($d, $e)),
        )
    };
}

macro_rules! rol {
    ($x:expr, 0) => {
        $x
    };
    // Byte rotations within each 64-bit lane: out byte k = in byte k-1 (mod 8).
    ($x:expr, 8) => {
        _mm256_shuffle_epi8(
            $x,
            _mm256_set_epi64x(
                0x0E0D_0C0B_0A09_080F,
                0x0605_0403_0201_0007,
                0x0E0D_0C0B_0A09_080F,
                0x0605_0403_0201_0007,
            ),
        )
    };
    // out byte k = in byte k+1 (mod 8).
    ($x:expr, 56) => {
        _mm256_shuffle_epi8(
            $x,
            _mm256_set_epi64x(
                0x080F_0E0D_0C0B_0A09,
                0x0007_0605_0403_0201,
                0x080F_0E0D_0C0B_0A09,
                0x0007_0605_0403_0201,
            ),
        )
    };
    ($x:expr, $n:literal) => {{
        let x = $x;
        _mm256_or_si256(
            _mm256_slli_epi64::<$n>(x),
            _mm256_srli_epi64::<{ 64 - $n }>(x),
        )
    }};
}

macro_rules! chi {
    ($a:expr, $b:expr, $c:expr) => {
        _mm256_xor_si256($a, _mm256_andnot_si256($b, $c))
    };
}

macro_rules! iota {
    ($a:expr, $rc:expr) => {
        _mm256_xor_si256($a, _mm256_set1_epi64x($rc as i64))
    };
}

/// The x4 kernel.
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn keccak_x4(s: &mut [&mut [u64; LANES]; 4]) {
    let mut a: [__m256i; LANES] = [_mm256_setzero_si256(); LANES];
    for (j, v) in a.iter_mut().enumerate() {
        // Vector element i (lowest first) holds state i's lane; the `as` casts reinterpret bits.
        *v = _mm256_set_epi64x(
            s[3][j] as i64,
            s[2][j] as i64,
            s[1][j] as i64,
            s[0][j] as i64,
        );
    }
    keccak_f1600_rounds!(a, xor = xor, xor5 = xor5, rol = rol, chi = chi, iota = iota);
    for (j, v) in a.iter().enumerate() {
        let mut out = [0u64; 4];
        // SAFETY: `out` is 32 writable bytes and `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), *v) };
        for (state, word) in s.iter_mut().zip(out) {
            state[j] = word;
        }
    }
}

/// The body of a word-major kernel, shared with the AVX-512 x8 one: vector `j` holds lane
/// word `j` of the states `at..` (`words[j][at..]`, one unaligned load and store per word, no
/// gathering), then the shared round text with the given operations.
///
/// The caller must run with the vector's target feature and ensure that `words[j][at..]`
/// holds a whole vector.
macro_rules! word_major_kernel {
    ($words:ident, $at:expr, $zero:expr, $load:ident, $store:ident, $($ops:tt)*) => {
        let mut a = [$zero; LANES];
        for (v, w) in a.iter_mut().zip($words.iter()) {
            // SAFETY: `w[at..]` is a whole vector's readable bytes (the caller's contract);
            // `loadu` has no alignment requirement.
            *v = unsafe { $load(w.as_ptr().add($at).cast()) };
        }
        keccak_f1600_rounds!(a, $($ops)*);
        for (v, w) in a.iter().zip($words.iter_mut()) {
            // SAFETY: as for the load, `w[at..]` is a whole vector's writable bytes.
            unsafe { $store(w.as_mut_ptr().add($at).cast(), *v) };
        }
    };
}
pub(super) use word_major_kernel;

/// The x4 kernel on word-major storage.
///
/// # Safety
/// The CPU must support AVX2, and `at + 4 <= N`.
#[target_feature(enable = "avx2")]
unsafe fn keccak_x4_words<const N: usize>(s: &mut [[u64; N]; LANES], at: usize) {
    word_major_kernel!(
        s,
        at,
        _mm256_setzero_si256(),
        _mm256_loadu_si256,
        _mm256_storeu_si256,
        xor = xor,
        xor5 = xor5,
        rol = rol,
        chi = chi,
        iota = iota
    );
}
