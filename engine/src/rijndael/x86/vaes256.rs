//! VAES-256 backend (`vaes` + `avx2`, 256-bit registers).
//!
//! Two blocks `X`, `Y` are held as a register pair `[X.lo | Y.lo]`, `[X.hi | Y.hi]` (`.lo` =
//! columns 0–3, `.hi` = columns 4–7, one per 128-bit lane). In this "split" layout the
//! Rijndael-256 ShiftRows pre-permutation is exactly the AES-NI one done on both lanes at
//! once: one `vpblendvb` and one `vpshufb` per register and round, all in-lane, no
//! cross-lane shuffle in the round loop (one whole block per register would need an extra
//! `vperm2i128` per block and round). The lanes are interleaved/de-interleaved once per
//! block with `vperm2i128`. Round keys are broadcast to both lanes. Eight blocks (four
//! register pairs) are in flight in the CTR loop.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use crate::Backend;
use crate::rijndael::{Counter, layout};
use zeroize::Zeroize;

/// Register pairs (2 blocks each) in flight in the bulk CTR loop (8 of the 16 YMM registers
/// hold state; 5 or 6 pairs measured slower).
const PAIRS: usize = 4;

/// Two blocks in split layout: `[X.lo | Y.lo]`, `[X.hi | Y.hi]`; or a round key
/// `[k.lo | k.lo]`, `[k.hi | k.hi]`.
type Pair = [__m256i; 2];

/// Round keys broadcast to both lanes. Constructed only when the CPU has VAES and AVX2.
#[derive(Clone)]
pub(crate) struct Keys {
    first: Pair,
    mid: Vec<Pair>,
    last: Pair,
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.first.zeroize();
        self.mid.zeroize();
        self.last.zeroize();
    }
}

impl Keys {
    /// `None` if the CPU lacks the features. `rk.len() >= 2` (validated by the caller).
    pub(crate) fn new(rk: &[[u8; 32]]) -> Option<Self> {
        if !Backend::Vaes256.is_available() {
            return None;
        }
        // SAFETY: the CPU has aes, vaes and avx2 (checked just above).
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
#[target_feature(enable = "avx2")]
fn load32(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn store32(b: &mut [u8; 32], v: __m256i) {
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

/// `[X | Y]` (whole blocks) to split layout.
#[inline]
#[target_feature(enable = "avx2")]
fn split(x: __m256i, y: __m256i) -> Pair {
    [
        _mm256_permute2x128_si256::<0x20>(x, y),
        _mm256_permute2x128_si256::<0x31>(x, y),
    ]
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

#[target_feature(enable = "aes,vaes,avx2")]
fn expand(rk: &[[u8; 32]]) -> Keys {
    let zero = [_mm256_setzero_si256(); 2];
    let mut keys = Keys {
        first: zero,
        mid: Vec::with_capacity(rk.len().saturating_sub(2)),
        last: zero,
    };
    let n = rk.len();
    for (i, k) in rk.iter().enumerate() {
        let v = load32(k);
        let p = split(v, v);
        if i == 0 {
            keys.first = p;
        } else if i + 1 == n {
            keys.last = p;
        } else {
            keys.mid.push(p);
        }
    }
    keys
}

/// Pre-permutes both halves of two blocks for the next AES round: byte blend, then pshufb.
/// The second blend is `a ^ b ^ first` (VPBLENDVB competes with VAESENC for two pipes on
/// Zen 3, VPXOR runs on any; measured ~15% faster than two blends).
#[inline]
#[target_feature(enable = "avx2")]
fn permute(p: &mut Pair, blend: __m256i, shuf: __m256i) {
    let t = _mm256_xor_si256(p[0], p[1]);
    let lo = _mm256_blendv_epi8(p[0], p[1], blend);
    let hi = _mm256_xor_si256(t, lo);
    p[0] = _mm256_shuffle_epi8(lo, shuf);
    p[1] = _mm256_shuffle_epi8(hi, shuf);
}

#[inline]
#[target_feature(enable = "aes,vaes,avx2")]
fn encrypt_pairs<const N: usize>(k: &Keys, st: &mut [Pair; N]) {
    let blend = broadcast16(&layout::BLEND_HI);
    let shuf = broadcast16(&layout::SHUF);
    for p in st.iter_mut() {
        p[0] = _mm256_xor_si256(p[0], k.first[0]);
        p[1] = _mm256_xor_si256(p[1], k.first[1]);
    }
    for rk in &k.mid {
        for p in st.iter_mut() {
            permute(p, blend, shuf);
            p[0] = _mm256_aesenc_epi128(p[0], rk[0]);
            p[1] = _mm256_aesenc_epi128(p[1], rk[1]);
        }
    }
    for p in st.iter_mut() {
        permute(p, blend, shuf);
        p[0] = _mm256_aesenclast_epi128(p[0], k.last[0]);
        p[1] = _mm256_aesenclast_epi128(p[1], k.last[1]);
    }
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

#[target_feature(enable = "aes,vaes,avx2")]
fn encrypt_block(k: &Keys, block: &mut [u8; 32]) {
    let mut st = [split(load32(block), _mm256_setzero_si256())];
    encrypt_pairs(k, &mut st);
    let (x, _) = join(st[0]);
    store32(block, x);
}

#[target_feature(enable = "aes,vaes,avx2")]
fn ctr_xor(k: &Keys, ctr: &mut Counter, data: &mut [u8]) {
    let (chunks, tail) = data.as_chunks_mut::<{ 64 * PAIRS }>();
    for chunk in chunks {
        let mut st = counters::<PAIRS>(ctr);
        encrypt_pairs(k, &mut st);
        let (blocks, _) = chunk.as_chunks_mut::<32>();
        for (two, p) in blocks.chunks_exact_mut(2).zip(st.iter()) {
            let (kx, ky) = join(*p);
            if let [bx, by] = two {
                store32(bx, _mm256_xor_si256(load32(bx), kx));
                store32(by, _mm256_xor_si256(load32(by), ky));
            }
        }
    }
    match tail.len().div_ceil(64) {
        0 => {}
        1 => ctr_tail::<1>(k, ctr, tail),
        2 => ctr_tail::<2>(k, ctr, tail),
        _ => ctr_tail::<PAIRS>(k, ctr, tail),
    }
}

/// The last `tail.len() <= 64 * N` bytes: keystream for `2N` blocks through a stack
/// buffer, counter advanced by the blocks actually used.
#[inline]
#[target_feature(enable = "aes,vaes,avx2")]
fn ctr_tail<const N: usize>(k: &Keys, ctr: &mut Counter, tail: &mut [u8]) {
    let mut c = *ctr;
    let mut st = counters::<N>(&mut c);
    c.zeroize();
    ctr.advance(tail.len().div_ceil(32));
    encrypt_pairs(k, &mut st);
    let mut buf = [[[0u8; 32]; 2]; N];
    for (b, p) in buf.iter_mut().zip(st.iter()) {
        let (x, y) = join(*p);
        let [bx, by] = b;
        store32(bx, x);
        store32(by, y);
    }
    for (d, ks) in tail.iter_mut().zip(buf.as_flattened().as_flattened()) {
        *d ^= ks;
    }
    buf.zeroize();
    st.zeroize();
}
