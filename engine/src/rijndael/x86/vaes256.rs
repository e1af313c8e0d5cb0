//! VAES-256 kernel (`vaes` + `avx2`, 256-bit registers).
//!
//! Two blocks `X`, `Y` are held as a register pair `[X.lo | Y.lo]`, `[X.hi | Y.hi]` (`.lo` =
//! columns 0–3, `.hi` = columns 4–7, one per 128-bit lane). In this "split" layout the
//! Rijndael-256 ShiftRows pre-permutation is exactly the AES-NI one done on both lanes at
//! once: one `vpblendvb` and one `vpshufb` per register and round, all in-lane, no
//! cross-lane shuffle in the round loop (one whole block per register would need an extra
//! `vperm2i128` per block and round). The lanes are interleaved/de-interleaved once per
//! block with `vperm2i128`. Round keys are broadcast to both lanes. A wide step is eight
//! blocks (four register pairs).

use super::arch::*;
use super::key_halves;
use crate::rijndael::{Counter, layout};
use zeroize::Zeroize;

/// Two blocks in split layout: `[X.lo | Y.lo]`, `[X.hi | Y.hi]`; or a round key
/// `[k.lo | k.lo]`, `[k.hi | k.hi]`.
type Pair = [__m256i; 2];

kernel!(
    /// Round keys as given (each half broadcast to both lanes at load). Constructed only
    /// when the CPU has VAES and AVX2. A wide step is four pairs (eight blocks): 8 of the 16
    /// YMM registers hold state; 5 or 6 pairs measured slower.
    Vaes256, 2 blocks per register, 4 registers, xor_keystream
);

#[inline]
#[target_feature(enable = "avx2")]
fn load(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn store(b: &mut [u8; 32], v: __m256i) {
    // SAFETY: `b` is 32 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) }
}

/// A 16-byte table in both lanes.
#[inline]
#[target_feature(enable = "avx2")]
fn broadcast16(b: &[u8; 16]) -> __m256i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(b.as_ptr().cast()) };
    _mm256_broadcastsi128_si256(v)
}

/// Split layout back to whole blocks `(X, Y)`.
#[inline]
#[target_feature(enable = "avx2")]
fn join(p: Pair) -> (__m256i, __m256i) {
    (
        _mm256_permute2x128_si256::<0x20>(p[0], p[1]),
        _mm256_permute2x128_si256::<0x31>(p[0], p[1]),
    )
}

/// The next `2N` counter blocks in split layout; advances `ctr` by `2N`.
#[inline]
#[target_feature(enable = "avx2")]
fn counters<const N: usize>(ctr: &mut Counter) -> [Pair; N] {
    let mut st = [[_mm256_setzero_si256(); 2]; N];
    for p in st.iter_mut() {
        let x = ctr.next_limbs();
        let y = ctr.next_limbs();
        p[0] = _mm256_set_epi64x(y[1] as i64, y[0] as i64, x[1] as i64, x[0] as i64);
        p[1] = _mm256_set_epi64x(y[3] as i64, y[2] as i64, x[3] as i64, x[2] as i64);
    }
    st
}

/// The kernel step: `2R` blocks of keystream XORed into `blocks`.
#[target_feature(enable = "aes,vaes,avx2")]
fn xor_keystream<const R: usize>(k: &Vaes256, ctr: &mut Counter, blocks: &mut [[u8; 32]]) {
    let blend = broadcast16(&layout::BLEND_HI);
    let shuf = broadcast16(&layout::SHUF);
    let mut st = counters::<R>(ctr);
    split_rounds!(k.0, &mut st, |rk| key_halves(rk).map(|h| _mm256_broadcastsi128_si256(h)), blend, shuf;
        _mm256_xor_si256, _mm256_blendv_epi8, _mm256_shuffle_epi8, _mm256_aesenc_epi128, _mm256_aesenclast_epi128);
    let (pairs, _) = blocks.as_chunks_mut::<2>();
    for ([bx, by], p) in pairs.iter_mut().zip(st.iter()) {
        let (kx, ky) = join(*p);
        store(bx, _mm256_xor_si256(load(bx), kx));
        store(by, _mm256_xor_si256(load(by), ky));
    }
    st.zeroize();
}
