//! AES-NI backend (`aes` + `ssse3` + `sse4.1`, 128-bit registers).
//!
//! A block is two `__m128i`: columns 0–3 and 4–7. Each round builds every half with one
//! byte blend of the two halves and one `pshufb` (see `layout.rs`) so that AESENC's own
//! 128-bit ShiftRows completes Rijndael-256's ShiftRows; AESENCLAST does the final round.
//! The round keys are used as given (AESENC adds the key after MixColumns, and its output
//! is in the natural layout). Six blocks are interleaved in the CTR loop to hide the
//! AESENC latency.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use crate::Backend;
use crate::rijndael::{Counter, layout};
use zeroize::Zeroize;

/// Blocks in flight in the bulk CTR loop: 12 of the 16 XMM registers hold state; 8 blocks
/// spill and measured ~40% slower, 4 blocks ~8% slower.
const LANES: usize = 6;

/// One block (or round key): columns 0–3, columns 4–7.
type Block = [__m128i; 2];

/// Round keys as register pairs. Constructed only when the CPU has AES-NI/SSSE3/SSE4.1.
#[derive(Clone)]
pub(crate) struct Keys {
    first: Block,
    mid: Vec<Block>,
    last: Block,
    /// [`layout::BLEND_HI`] and [`layout::SHUF`], kept here (loaded at run time) so that
    /// LLVM does not merge blend + pshufb into the costlier pshufb + pshufb + por.
    masks: Block,
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.first.zeroize();
        self.mid.zeroize();
        self.last.zeroize();
        self.masks.zeroize();
    }
}

impl Keys {
    /// `None` if the CPU lacks the features. `rk.len() >= 2` (validated by the caller).
    pub(crate) fn new(rk: &[[u8; 32]]) -> Option<Self> {
        if !Backend::Aesni.is_available() {
            return None;
        }
        // SAFETY: the CPU has aes, ssse3 and sse4.1 (checked just above).
        Some(unsafe { expand(rk) })
    }

    pub(crate) fn encrypt_block(&self, block: &mut [u8; 32]) {
        // SAFETY: `Keys` values exist only if `new` found the CPU features.
        unsafe { encrypt_block(self, block) }
    }

    pub(crate) fn ctr_xor(&self, ctr: &mut Counter, data: &mut [u8]) {
        // SAFETY: `Keys` values exist only if `new` found the CPU features.
        unsafe { ctr_xor(self, ctr, data) }
    }
}

#[inline]
#[target_feature(enable = "sse2")]
fn load16(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "sse2")]
fn load_block(b: &[u8; 32]) -> Block {
    let p = b.as_ptr().cast::<__m128i>();
    // SAFETY: `b` is 32 readable bytes, so `p` and `p + 1` each cover 16 of them; `loadu`
    // has no alignment requirement.
    unsafe { [_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))] }
}

#[inline]
#[target_feature(enable = "sse2")]
fn store_block(b: &mut [u8; 32], v: Block) {
    let p = b.as_mut_ptr().cast::<__m128i>();
    // SAFETY: `b` is 32 writable bytes, so `p` and `p + 1` each cover 16 of them; `storeu`
    // has no alignment requirement.
    unsafe {
        _mm_storeu_si128(p, v[0]);
        _mm_storeu_si128(p.add(1), v[1]);
    }
}

#[target_feature(enable = "aes,ssse3,sse4.1")]
fn expand(rk: &[[u8; 32]]) -> Keys {
    let zero = [_mm_setzero_si128(); 2];
    let mut keys = Keys {
        first: zero,
        mid: Vec::with_capacity(rk.len().saturating_sub(2)),
        last: zero,
        masks: [load16(&layout::BLEND_HI), load16(&layout::SHUF)],
    };
    let n = rk.len();
    for (i, k) in rk.iter().enumerate() {
        let b = load_block(k);
        if i == 0 {
            keys.first = b;
        } else if i + 1 == n {
            keys.last = b;
        } else {
            keys.mid.push(b);
        }
    }
    keys
}

/// Pre-permutes both halves for the next AES round: byte blend, then pshufb.
///
/// The two blends are complementary, so the second is `a ^ b ^ first`: PBLENDVB competes
/// with AESENC for the same two execution pipes on current cores, while PXOR runs on any
/// vector pipe (measured: ~10% faster than two PBLENDVB on Zen 3).
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn permute(b: &mut Block, blend: __m128i, shuf: __m128i) {
    let t = _mm_xor_si128(b[0], b[1]);
    let lo = _mm_blendv_epi8(b[0], b[1], blend);
    let hi = _mm_xor_si128(t, lo);
    b[0] = _mm_shuffle_epi8(lo, shuf);
    b[1] = _mm_shuffle_epi8(hi, shuf);
}

#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn encrypt_blocks<const N: usize>(k: &Keys, st: &mut [Block; N]) {
    let [blend, shuf] = k.masks;
    for b in st.iter_mut() {
        b[0] = _mm_xor_si128(b[0], k.first[0]);
        b[1] = _mm_xor_si128(b[1], k.first[1]);
    }
    for rk in &k.mid {
        for b in st.iter_mut() {
            permute(b, blend, shuf);
            b[0] = _mm_aesenc_si128(b[0], rk[0]);
            b[1] = _mm_aesenc_si128(b[1], rk[1]);
        }
    }
    for b in st.iter_mut() {
        permute(b, blend, shuf);
        b[0] = _mm_aesenclast_si128(b[0], k.last[0]);
        b[1] = _mm_aesenclast_si128(b[1], k.last[1]);
    }
}

/// The next `N` counter blocks as register pairs; advances `ctr` by `N`.
#[inline]
#[target_feature(enable = "sse2")]
fn counters<const N: usize>(ctr: &mut Counter) -> [Block; N] {
    let mut st = [[_mm_setzero_si128(); 2]; N];
    for b in st.iter_mut() {
        let l = ctr.next_limbs();
        b[0] = _mm_set_epi64x(l[1] as i64, l[0] as i64);
        b[1] = _mm_set_epi64x(l[3] as i64, l[2] as i64);
    }
    st
}

#[target_feature(enable = "aes,ssse3,sse4.1")]
fn encrypt_block(k: &Keys, block: &mut [u8; 32]) {
    let mut st = [load_block(block)];
    encrypt_blocks(k, &mut st);
    store_block(block, st[0]);
}

#[target_feature(enable = "aes,ssse3,sse4.1")]
fn ctr_xor(k: &Keys, ctr: &mut Counter, data: &mut [u8]) {
    let (chunks, tail) = data.as_chunks_mut::<{ 32 * LANES }>();
    for chunk in chunks {
        let mut st = counters::<LANES>(ctr);
        encrypt_blocks(k, &mut st);
        let (blocks, _) = chunk.as_chunks_mut::<32>();
        for (blk, ks) in blocks.iter_mut().zip(st.iter()) {
            let d = load_block(blk);
            store_block(
                blk,
                [_mm_xor_si128(d[0], ks[0]), _mm_xor_si128(d[1], ks[1])],
            );
        }
    }
    match tail.len().div_ceil(32) {
        0 => {}
        1 => ctr_tail::<1>(k, ctr, tail),
        2 => ctr_tail::<2>(k, ctr, tail),
        3 | 4 => ctr_tail::<4>(k, ctr, tail),
        _ => ctr_tail::<LANES>(k, ctr, tail),
    }
}

/// The last `tail.len() <= 32 * N` bytes: keystream for `N` blocks through a stack buffer,
/// counter advanced by the blocks actually used.
#[inline]
#[target_feature(enable = "aes,ssse3,sse4.1")]
fn ctr_tail<const N: usize>(k: &Keys, ctr: &mut Counter, tail: &mut [u8]) {
    let mut c = *ctr;
    let mut st = counters::<N>(&mut c);
    c.zeroize();
    ctr.advance(tail.len().div_ceil(32));
    encrypt_blocks(k, &mut st);
    let mut buf = [[0u8; 32]; N];
    for (b, s) in buf.iter_mut().zip(st.iter()) {
        store_block(b, *s);
    }
    for (d, ks) in tail.iter_mut().zip(buf.as_flattened()) {
        *d ^= ks;
    }
    buf.zeroize();
    st.zeroize();
}
