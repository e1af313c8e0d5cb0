//! VAES-512 kernels (512-bit registers). Both run on the development machine (AVX-512
//! VBMI and VAES), where the property tests and the engine's unit tests compare them with
//! the portable backend; the permutation tables are also checked by emulation in
//! `layout.rs`.
//!
//! * [`Vaes512`] (`vaes512`: `avx512f` + `avx512bw` + `vaes`): the split layout of the
//!   VAES-256 kernel widened to four lanes — a register pair holds the low halves (columns
//!   0–3) of four blocks and their high halves. Per register and round: one `vpblendmb`
//!   (mask register), one `vpshufb`, one `vaesenc`, all in-lane. A wide step is sixteen
//!   blocks.
//! * [`Vaes512Vbmi`] (`vaes512vbmi`: + `avx512vbmi`): a register holds two whole blocks in
//!   natural order; one `vpermb` builds all four pre-permuted halves, then `vaesenc`. A wide
//!   step is sixteen blocks.

use super::arch::*;
use super::key_halves;
use crate::rijndael::kernel::Aligned;
use crate::rijndael::{Counter, layout};
use zeroize::Zeroize;

/// Four blocks in split layout (`[B0.lo | B1.lo | B2.lo | B3.lo]`, same with `.hi`), or a
/// round key broadcast that way.
type Quad = [__m512i; 2];

/// `vpblendmb` mask: bit `j` set where lane byte `j % 16` of the low-half result comes from
/// the high halves ([`layout::BLEND_HI`] in all four lanes).
const BLEND_MASK: u64 = {
    let mut m = 0u64;
    let mut j = 0;
    while j < 64 {
        if layout::BLEND_HI[j % 16] != 0 {
            m |= 1 << j;
        }
        j += 1;
    }
    m
};

// ---------------------------------------------------------------------------------------
// shared helpers

/// Two consecutive blocks as one register.
#[inline]
#[target_feature(enable = "avx512f")]
fn load(b: &[[u8; 32]; 2]) -> __m512i {
    // SAFETY: `b` is 64 contiguous readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store(b: &mut [[u8; 32]; 2], v: __m512i) {
    // SAFETY: `b` is 64 contiguous writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), v) }
}

/// Two counter values (or blocks as limbs) as one register `[X | Y]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn two_blocks(x: [u64; 4], y: [u64; 4]) -> __m512i {
    _mm512_set_epi64(
        y[3] as i64,
        y[2] as i64,
        y[1] as i64,
        y[0] as i64,
        x[3] as i64,
        x[2] as i64,
        x[1] as i64,
        x[0] as i64,
    )
}

/// The next `2N` counter values, two per register `[X | Y]`; advances `ctr` by `2N`.
#[inline]
#[target_feature(enable = "avx512f")]
fn counters<const N: usize>(ctr: &mut Counter) -> [__m512i; N] {
    let mut st = [_mm512_setzero_si512(); N];
    for z in st.iter_mut() {
        let x = ctr.next_limbs();
        let y = ctr.next_limbs();
        *z = two_blocks(x, y);
    }
    st
}

// ---------------------------------------------------------------------------------------
// vaes512 (AVX-512BW, split layout)

kernel!(
    /// Round keys as given (each half broadcast to four lanes at load). Constructed only
    /// when the CPU has VAES, AVX-512F and AVX-512BW. A wide step is four quads (sixteen
    /// blocks) in 8 of the 32 ZMM registers.
    Vaes512, 4 blocks per register, 4 registers, quad_xor_keystream
);

/// `[B0 | B1]`, `[B2 | B3]` (whole blocks) to split layout.
#[inline]
#[target_feature(enable = "avx512f")]
fn split(z0: __m512i, z1: __m512i) -> Quad {
    [
        _mm512_shuffle_i64x2::<0b10_00_10_00>(z0, z1),
        _mm512_shuffle_i64x2::<0b11_01_11_01>(z0, z1),
    ]
}

/// Split layout back to whole blocks `([B0 | B1], [B2 | B3])`.
#[inline]
#[target_feature(enable = "avx512f")]
fn join(q: Quad) -> (__m512i, __m512i) {
    let i0 = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    let i1 = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    (
        _mm512_permutex2var_epi64(q[0], i0, q[1]),
        _mm512_permutex2var_epi64(q[0], i1, q[1]),
    )
}

/// Pre-permutes both halves of four blocks for the next AES round (blend, then pshufb).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn permute(q: &mut Quad, shuf: __m512i) {
    let lo = _mm512_mask_blend_epi8(BLEND_MASK, q[0], q[1]);
    let hi = _mm512_mask_blend_epi8(BLEND_MASK, q[1], q[0]);
    q[0] = _mm512_shuffle_epi8(lo, shuf);
    q[1] = _mm512_shuffle_epi8(hi, shuf);
}

#[inline]
#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw")]
fn encrypt_quads<const N: usize>(k: &Vaes512, st: &mut [Quad; N]) {
    // SAFETY: `SHUF` is 16 readable bytes; `loadu` has no alignment requirement.
    let shuf = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(layout::SHUF.as_ptr().cast()) });
    k.0.encrypt(
        st,
        |rk| key_halves(rk).map(|h| _mm512_broadcast_i32x4(h)),
        |q, rk| *q = [_mm512_xor_si512(q[0], rk[0]), _mm512_xor_si512(q[1], rk[1])],
        |q, rk| {
            permute(q, shuf);
            *q = [
                _mm512_aesenc_epi128(q[0], rk[0]),
                _mm512_aesenc_epi128(q[1], rk[1]),
            ];
        },
        |q, rk| {
            permute(q, shuf);
            *q = [
                _mm512_aesenclast_epi128(q[0], rk[0]),
                _mm512_aesenclast_epi128(q[1], rk[1]),
            ];
        },
    );
}

/// The kernel step of `vaes512`: `4R` blocks of keystream XORed into `blocks`.
#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw")]
fn quad_xor_keystream<const R: usize>(k: &Vaes512, ctr: &mut Counter, blocks: &mut [[u8; 32]]) {
    let mut st = [[_mm512_setzero_si512(); 2]; R];
    for q in st.iter_mut() {
        let [z0, z1] = counters::<2>(ctr);
        *q = split(z0, z1);
    }
    encrypt_quads(k, &mut st);
    let (fours, _) = blocks.as_chunks_mut::<4>();
    for (four, q) in fours.iter_mut().zip(st.iter()) {
        let (k0, k1) = join(*q);
        let (twos, _) = four.as_chunks_mut::<2>();
        if let [b0, b1] = twos {
            store(b0, _mm512_xor_si512(load(b0), k0));
            store(b1, _mm512_xor_si512(load(b1), k1));
        }
    }
    st.zeroize();
}

// ---------------------------------------------------------------------------------------
// vaes512vbmi (one vpermb per register and round)

kernel!(
    /// Round keys as given (each key in both 256-bit halves at load: two whole blocks per
    /// register). Constructed only when the CPU has VAES, AVX-512F/BW and AVX-512 VBMI. A
    /// wide step is eight registers (sixteen blocks).
    Vaes512Vbmi, 2 blocks per register, 8 registers, vbmi_xor_keystream
);

/// A round key in both halves: `[k | k]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn duo_key(k: &Aligned<32>) -> __m512i {
    // SAFETY: `k` is 32 readable bytes aligned to 64, as `load` requires.
    _mm512_broadcast_i64x4(unsafe { _mm256_load_si256(k.0.as_ptr().cast()) })
}

#[inline]
#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw,avx512vbmi")]
fn vbmi_encrypt<const N: usize>(k: &Vaes512Vbmi, st: &mut [__m512i; N]) {
    // SAFETY: `VPERMB` is 64 readable bytes; `loadu` has no alignment requirement.
    let idx = unsafe { _mm512_loadu_si512(layout::VPERMB.as_ptr().cast()) };
    k.0.encrypt(
        st,
        |rk| duo_key(rk),
        |z, rk| *z = _mm512_xor_si512(*z, *rk),
        |z, rk| *z = _mm512_aesenc_epi128(_mm512_permutexvar_epi8(idx, *z), *rk),
        |z, rk| *z = _mm512_aesenclast_epi128(_mm512_permutexvar_epi8(idx, *z), *rk),
    );
}

/// The kernel step of `vaes512vbmi`: `2R` blocks of keystream XORed into `blocks`.
#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw,avx512vbmi")]
fn vbmi_xor_keystream<const R: usize>(k: &Vaes512Vbmi, ctr: &mut Counter, blocks: &mut [[u8; 32]]) {
    let mut st = counters::<R>(ctr);
    vbmi_encrypt(k, &mut st);
    let (twos, _) = blocks.as_chunks_mut::<2>();
    for (two, ks) in twos.iter_mut().zip(st.iter()) {
        store(two, _mm512_xor_si512(load(two), *ks));
    }
    st.zeroize();
}
