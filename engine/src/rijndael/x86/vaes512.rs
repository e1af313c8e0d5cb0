//! VAES-512 backends (512-bit registers). **Untested on hardware by the author** (the
//! development machine has no AVX-512); the permutation tables are checked by emulation in
//! `layout.rs`, and the property tests compare these backends with the portable one
//! whenever the CPU has them.
//!
//! * [`Keys`] (`vaes512`: `avx512f` + `avx512bw` + `vaes`): the split layout of the VAES-256
//!   backend widened to four lanes — a register pair holds the low halves (columns 0–3) of
//!   four blocks and their high halves. Per register and round: one `vpblendmb` (mask
//!   register), one `vpshufb`, one `vaesenc`, all in-lane. Sixteen blocks in flight.
//! * [`VbmiKeys`] (`vaes512vbmi`: + `avx512vbmi`): a register holds two whole blocks in
//!   natural order; one `vpermb` builds all four pre-permuted halves, then `vaesenc`.
//!   Sixteen blocks in flight.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86")]
use core::arch::x86::*;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

use crate::Backend;
use crate::rijndael::{Counter, layout};
use zeroize::Zeroize;

/// Register pairs (4 blocks each) in flight in the bulk CTR loop of `vaes512`.
const QUADS: usize = 4;

/// Registers (2 blocks each) in flight in the bulk CTR loop of `vaes512vbmi`.
const DUOS: usize = 8;

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

#[inline]
#[target_feature(enable = "avx512f")]
fn load64(b: &[u8; 64]) -> __m512i {
    // SAFETY: `b` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn store64(b: &mut [u8; 64], v: __m512i) {
    // SAFETY: `b` is 64 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), v) }
}

#[inline]
#[target_feature(enable = "avx512f")]
fn broadcast16(b: &[u8; 16]) -> __m512i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(b.as_ptr().cast()) };
    _mm512_broadcast_i32x4(v)
}

#[inline]
#[target_feature(enable = "avx512f")]
fn broadcast32(b: &[u8; 32]) -> __m512i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    let v = unsafe { _mm256_loadu_si256(b.as_ptr().cast()) };
    _mm512_broadcast_i64x4(v)
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

// ---------------------------------------------------------------------------------------
// vaes512 (AVX-512BW, split layout)

/// Round keys for `vaes512`, each half broadcast to four lanes. Constructed only when the
/// CPU has VAES, AVX-512F and AVX-512BW.
#[derive(Clone)]
pub(crate) struct Keys {
    first: Quad,
    mid: Vec<Quad>,
    last: Quad,
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
        if !Backend::Vaes512.is_available() {
            return None;
        }
        // SAFETY: the CPU has aes, vaes, avx2, avx512f and avx512bw (checked just above).
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

#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw")]
fn expand(rk: &[[u8; 32]]) -> Keys {
    let zero = [_mm512_setzero_si512(); 2];
    let mut keys = Keys {
        first: zero,
        mid: Vec::with_capacity(rk.len().saturating_sub(2)),
        last: zero,
    };
    let n = rk.len();
    for (i, k) in rk.iter().enumerate() {
        let (halves, _) = k.as_chunks::<16>();
        let mut q = zero;
        for (r, h) in q.iter_mut().zip(halves) {
            *r = broadcast16(h);
        }
        if i == 0 {
            keys.first = q;
        } else if i + 1 == n {
            keys.last = q;
        } else {
            keys.mid.push(q);
        }
    }
    keys
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
fn encrypt_quads<const N: usize>(k: &Keys, st: &mut [Quad; N]) {
    let shuf = broadcast16(&layout::SHUF);
    for q in st.iter_mut() {
        q[0] = _mm512_xor_si512(q[0], k.first[0]);
        q[1] = _mm512_xor_si512(q[1], k.first[1]);
    }
    for rk in &k.mid {
        for q in st.iter_mut() {
            permute(q, shuf);
            q[0] = _mm512_aesenc_epi128(q[0], rk[0]);
            q[1] = _mm512_aesenc_epi128(q[1], rk[1]);
        }
    }
    for q in st.iter_mut() {
        permute(q, shuf);
        q[0] = _mm512_aesenclast_epi128(q[0], k.last[0]);
        q[1] = _mm512_aesenclast_epi128(q[1], k.last[1]);
    }
}

/// The next `4N` counter blocks in split layout; advances `ctr` by `4N`.
#[inline]
#[target_feature(enable = "avx512f")]
fn quad_counters<const N: usize>(ctr: &mut Counter) -> [Quad; N] {
    let mut st = [[_mm512_setzero_si512(); 2]; N];
    for q in st.iter_mut() {
        let b0 = ctr.next_limbs();
        let b1 = ctr.next_limbs();
        let b2 = ctr.next_limbs();
        let b3 = ctr.next_limbs();
        *q = split(two_blocks(b0, b1), two_blocks(b2, b3));
    }
    st
}

#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw")]
fn encrypt_block(k: &Keys, block: &mut [u8; 32]) {
    let limbs = Counter::from_bytes(block);
    let zero = _mm512_setzero_si512();
    let mut st = [split(two_blocks(limbs.0, [0; 4]), zero)];
    encrypt_quads(k, &mut st);
    let (z0, _) = join(st[0]);
    let mut out = [0u8; 64];
    store64(&mut out, z0);
    let (blocks, _) = out.as_chunks::<32>();
    if let Some(b) = blocks.first() {
        *block = *b;
    }
    out.zeroize();
}

#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw")]
fn ctr_xor(k: &Keys, ctr: &mut Counter, data: &mut [u8]) {
    let (chunks, tail) = data.as_chunks_mut::<{ 128 * QUADS }>();
    for chunk in chunks {
        let mut st = quad_counters::<QUADS>(ctr);
        encrypt_quads(k, &mut st);
        let (regs, _) = chunk.as_chunks_mut::<64>();
        for (two, q) in regs.chunks_exact_mut(2).zip(st.iter()) {
            let (k0, k1) = join(*q);
            if let [z0, z1] = two {
                store64(z0, _mm512_xor_si512(load64(z0), k0));
                store64(z1, _mm512_xor_si512(load64(z1), k1));
            }
        }
    }
    match tail.len().div_ceil(128) {
        0 => {}
        1 => quad_tail::<1>(k, ctr, tail),
        2 => quad_tail::<2>(k, ctr, tail),
        _ => quad_tail::<QUADS>(k, ctr, tail),
    }
}

/// The last `tail.len() <= 128 * N` bytes through a stack buffer; the counter advances by
/// the blocks actually used.
#[inline]
#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw")]
fn quad_tail<const N: usize>(k: &Keys, ctr: &mut Counter, tail: &mut [u8]) {
    let mut c = *ctr;
    let mut st = quad_counters::<N>(&mut c);
    c.zeroize();
    ctr.advance(tail.len().div_ceil(32));
    encrypt_quads(k, &mut st);
    let mut buf = [[[0u8; 64]; 2]; N];
    for (b, q) in buf.iter_mut().zip(st.iter()) {
        let (z0, z1) = join(*q);
        let [b0, b1] = b;
        store64(b0, z0);
        store64(b1, z1);
    }
    for (d, ks) in tail.iter_mut().zip(buf.as_flattened().as_flattened()) {
        *d ^= ks;
    }
    buf.zeroize();
    st.zeroize();
}

// ---------------------------------------------------------------------------------------
// vaes512vbmi (one vpermb per register and round)

/// Round keys for `vaes512vbmi`, each key twice (`[k | k]`, two whole blocks per register).
/// Constructed only when the CPU has VAES, AVX-512F/BW and AVX-512 VBMI.
#[derive(Clone)]
pub(crate) struct VbmiKeys {
    first: __m512i,
    mid: Vec<__m512i>,
    last: __m512i,
}

impl Drop for VbmiKeys {
    fn drop(&mut self) {
        self.first.zeroize();
        self.mid.zeroize();
        self.last.zeroize();
    }
}

impl VbmiKeys {
    /// `None` if the CPU lacks the features. `rk.len() >= 2` (validated by the caller).
    pub(crate) fn new(rk: &[[u8; 32]]) -> Option<Self> {
        if !Backend::Vaes512Vbmi.is_available() {
            return None;
        }
        // SAFETY: the CPU has aes, vaes, avx2, avx512f, avx512bw and avx512vbmi (checked
        // just above).
        Some(unsafe { vbmi_expand(rk) })
    }

    pub(crate) fn encrypt_block(&self, block: &mut [u8; 32]) {
        // SAFETY: `VbmiKeys` values exist only if `new` found the CPU features.
        unsafe { vbmi_encrypt_block(self, block) }
    }

    pub(crate) fn ctr_xor(&self, ctr: &mut Counter, data: &mut [u8]) {
        // SAFETY: `VbmiKeys` values exist only if `new` found the CPU features.
        unsafe { vbmi_ctr_xor(self, ctr, data) }
    }
}

#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw,avx512vbmi")]
fn vbmi_expand(rk: &[[u8; 32]]) -> VbmiKeys {
    let zero = _mm512_setzero_si512();
    let mut keys = VbmiKeys {
        first: zero,
        mid: Vec::with_capacity(rk.len().saturating_sub(2)),
        last: zero,
    };
    let n = rk.len();
    for (i, k) in rk.iter().enumerate() {
        let v = broadcast32(k);
        if i == 0 {
            keys.first = v;
        } else if i + 1 == n {
            keys.last = v;
        } else {
            keys.mid.push(v);
        }
    }
    keys
}

#[inline]
#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw,avx512vbmi")]
fn vbmi_encrypt<const N: usize>(k: &VbmiKeys, st: &mut [__m512i; N]) {
    let idx = load64(&layout::VPERMB);
    for z in st.iter_mut() {
        *z = _mm512_xor_si512(*z, k.first);
    }
    for rk in &k.mid {
        for z in st.iter_mut() {
            *z = _mm512_aesenc_epi128(_mm512_permutexvar_epi8(idx, *z), *rk);
        }
    }
    for z in st.iter_mut() {
        *z = _mm512_aesenclast_epi128(_mm512_permutexvar_epi8(idx, *z), k.last);
    }
}

/// The next `2N` counter blocks, two per register; advances `ctr` by `2N`.
#[inline]
#[target_feature(enable = "avx512f")]
fn duo_counters<const N: usize>(ctr: &mut Counter) -> [__m512i; N] {
    let mut st = [_mm512_setzero_si512(); N];
    for z in st.iter_mut() {
        let x = ctr.next_limbs();
        let y = ctr.next_limbs();
        *z = two_blocks(x, y);
    }
    st
}

#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw,avx512vbmi")]
fn vbmi_encrypt_block(k: &VbmiKeys, block: &mut [u8; 32]) {
    let limbs = Counter::from_bytes(block);
    let mut st = [two_blocks(limbs.0, [0; 4])];
    vbmi_encrypt(k, &mut st);
    let mut out = [0u8; 64];
    store64(&mut out, st[0]);
    let (blocks, _) = out.as_chunks::<32>();
    if let Some(b) = blocks.first() {
        *block = *b;
    }
    out.zeroize();
}

#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw,avx512vbmi")]
fn vbmi_ctr_xor(k: &VbmiKeys, ctr: &mut Counter, data: &mut [u8]) {
    let (chunks, tail) = data.as_chunks_mut::<{ 64 * DUOS }>();
    for chunk in chunks {
        let mut st = duo_counters::<DUOS>(ctr);
        vbmi_encrypt(k, &mut st);
        let (regs, _) = chunk.as_chunks_mut::<64>();
        for (z, ks) in regs.iter_mut().zip(st.iter()) {
            store64(z, _mm512_xor_si512(load64(z), *ks));
        }
    }
    match tail.len().div_ceil(64) {
        0 => {}
        1 => duo_tail::<1>(k, ctr, tail),
        2 => duo_tail::<2>(k, ctr, tail),
        3 | 4 => duo_tail::<4>(k, ctr, tail),
        _ => duo_tail::<DUOS>(k, ctr, tail),
    }
}

/// The last `tail.len() <= 64 * N` bytes through a stack buffer; the counter advances by
/// the blocks actually used.
#[inline]
#[target_feature(enable = "aes,vaes,avx2,avx512f,avx512bw,avx512vbmi")]
fn duo_tail<const N: usize>(k: &VbmiKeys, ctr: &mut Counter, tail: &mut [u8]) {
    let mut c = *ctr;
    let mut st = duo_counters::<N>(&mut c);
    c.zeroize();
    ctr.advance(tail.len().div_ceil(32));
    vbmi_encrypt(k, &mut st);
    let mut buf = [[0u8; 64]; N];
    for (b, z) in buf.iter_mut().zip(st.iter()) {
        store64(b, *z);
    }
    for (d, ks) in tail.iter_mut().zip(buf.as_flattened()) {
        *d ^= ks;
    }
    buf.zeroize();
    st.zeroize();
}
