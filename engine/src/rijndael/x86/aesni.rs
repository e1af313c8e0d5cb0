//! AES-NI kernel (`aes` + `ssse3` + `sse4.1`, 128-bit registers).
//!
//! A block is two `__m128i`: columns 0–3 and 4–7. Each round builds every half with one
//! byte blend of the two halves and one `pshufb` (see `layout.rs`) so that AESENC's own
//! 128-bit ShiftRows completes Rijndael-256's ShiftRows; AESENCLAST does the final round.
//! The round keys are used as given (AESENC adds the key after MixColumns, and its output
//! is in the natural layout). A wide step interleaves six blocks to hide the AESENC latency.

use super::arch::*;
use super::key_halves;
use crate::rijndael::{Counter, layout};
use zeroize::Zeroize;

/// One block (or round key): columns 0–3, columns 4–7.
type Block = [__m128i; 2];

kernel!(
    /// Round keys as given. Constructed only when the CPU has AES-NI/SSSE3/SSE4.1. A wide
    /// step is six blocks: 12 of the 16 XMM registers hold state; 8 blocks spill and
    /// measured ~40% slower, 4 blocks ~8% slower.
    Aesni, 1 blocks per register, 6 registers, xor_keystream
);

/// [`layout::BLEND_HI`] and [`layout::SHUF`], read at run time (through `black_box`) so that
/// LLVM does not merge blend + pshufb into the costlier pshufb + pshufb + por.
static MASKS: [[u8; 16]; 2] = [layout::BLEND_HI, layout::SHUF];

#[inline]
#[target_feature(enable = "sse2")]
fn load(b: &[u8; 32]) -> Block {
    let p = b.as_ptr().cast::<__m128i>();
    // SAFETY: `b` is 32 readable bytes, so `p` and `p + 1` each cover 16 of them; `loadu`
    // has no alignment requirement.
    unsafe { [_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))] }
}

#[inline]
#[target_feature(enable = "sse2")]
fn store(b: &mut [u8; 32], v: Block) {
    let p = b.as_mut_ptr().cast::<__m128i>();
    // SAFETY: `b` is 32 writable bytes, so `p` and `p + 1` each cover 16 of them; `storeu`
    // has no alignment requirement.
    unsafe {
        _mm_storeu_si128(p, v[0]);
        _mm_storeu_si128(p.add(1), v[1]);
    }
}

/// The kernel step: `R` blocks of keystream XORed into `blocks`.
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn xor_keystream<const R: usize>(k: &Aesni, ctr: &mut Counter, blocks: &mut [[u8; 32]]) {
    let [blend, shuf] = core::hint::black_box(&MASKS).map(|m| {
        // SAFETY: `m` is 16 readable bytes; `loadu` has no alignment requirement.
        unsafe { _mm_loadu_si128(m.as_ptr().cast()) }
    });
    let mut st = [[_mm_setzero_si128(); 2]; R];
    for b in st.iter_mut() {
        let l = ctr.next_limbs();
        *b = [
            _mm_set_epi64x(l[1] as i64, l[0] as i64),
            _mm_set_epi64x(l[3] as i64, l[2] as i64),
        ];
    }
    split_rounds!(k.0, &mut st, |rk| key_halves(rk), blend, shuf;
        _mm_xor_si128, _mm_blendv_epi8, _mm_shuffle_epi8, _mm_aesenc_si128, _mm_aesenclast_si128);
    for (blk, ks) in blocks.iter_mut().zip(st.iter()) {
        let d = load(blk);
        store(
            blk,
            [_mm_xor_si128(d[0], ks[0]), _mm_xor_si128(d[1], ks[1])],
        );
    }
    st.zeroize();
}
