//! ARMv8 Cryptography Extensions backend (`aes`, AArch64, little-endian).
//!
//! A block is two `uint8x16_t` (columns 0–3 and 4–7). AESE is AddRoundKey + ShiftRows +
//! SubBytes, AESMC is MixColumns. Each round builds both pre-permuted halves with one
//! two-register `TBL` (`vqtbl2q_u8`) each (see `layout.rs`). Because AESE XORs the key
//! *before* its ShiftRows, i.e. after our permutation, round keys 0..R-1 are stored
//! permuted the same way (`P(x) ^ P(k) = P(x ^ k)`); the last key is XORed plainly after
//! the final AESE. Eight blocks are interleaved in the CTR loop.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

use crate::Backend;
use crate::rijndael::{Counter, layout};
use zeroize::Zeroize;

/// Blocks in flight in the bulk CTR loop.
const LANES: usize = 8;

/// One block or round key: columns 0–3, columns 4–7.
type Block = [uint8x16_t; 2];

/// Round keys: 0..R-2 and R-1 permuted for AESE, R plain. Constructed only when the CPU has
/// the AES extension.
#[derive(Clone)]
pub(crate) struct Keys {
    mid: Vec<Block>,
    pen: Block,
    last: Block,
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.mid.zeroize();
        self.pen.zeroize();
        self.last.zeroize();
    }
}

impl Keys {
    /// `None` if the CPU lacks the features. `rk.len() >= 2` (validated by the caller).
    pub(crate) fn new(rk: &[[u8; 32]]) -> Option<Self> {
        if !Backend::Armv8.is_available() {
            return None;
        }
        // SAFETY: the CPU has the AES extension (checked just above); NEON is part of the
        // AArch64 baseline.
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
#[target_feature(enable = "neon")]
fn load16(b: &[u8; 16]) -> uint8x16_t {
    // SAFETY: `b` is 16 readable bytes; `vld1q_u8` has no alignment requirement.
    unsafe { vld1q_u8(b.as_ptr()) }
}

#[inline]
#[target_feature(enable = "neon")]
fn load_block(b: &[u8; 32]) -> Block {
    let p = b.as_ptr();
    // SAFETY: `b` is 32 readable bytes, so `p` and `p + 16` each start 16 of them;
    // `vld1q_u8` has no alignment requirement.
    unsafe { [vld1q_u8(p), vld1q_u8(p.add(16))] }
}

#[inline]
#[target_feature(enable = "neon")]
fn store_block(b: &mut [u8; 32], v: Block) {
    let p = b.as_mut_ptr();
    // SAFETY: `b` is 32 writable bytes, so `p` and `p + 16` each start 16 of them;
    // `vst1q_u8` has no alignment requirement.
    unsafe {
        vst1q_u8(p, v[0]);
        vst1q_u8(p.add(16), v[1]);
    }
}

/// `k` with both halves pre-permuted by [`layout::TBL`] (scalar; keying time only).
fn permuted(k: &[u8; 32]) -> [[u8; 16]; 2] {
    let mut out = [[0u8; 16]; 2];
    for (o, idx) in out.iter_mut().zip(layout::TBL.iter()) {
        for (b, &i) in o.iter_mut().zip(idx.iter()) {
            *b = k.get(usize::from(i)).copied().unwrap_or(0);
        }
    }
    out
}

#[target_feature(enable = "neon,aes")]
fn expand(rk: &[[u8; 32]]) -> Keys {
    let zero = [vdupq_n_u8(0); 2];
    let mut keys = Keys {
        mid: Vec::with_capacity(rk.len().saturating_sub(2)),
        pen: zero,
        last: zero,
    };
    let n = rk.len();
    for (i, k) in rk.iter().enumerate() {
        if i + 1 == n {
            keys.last = load_block(k);
        } else {
            let mut p = permuted(k);
            let b = [load16(&p[0]), load16(&p[1])];
            p.zeroize();
            if i + 2 == n {
                keys.pen = b;
            } else {
                keys.mid.push(b);
            }
        }
    }
    keys
}

/// Both pre-permuted halves of a block (one `TBL` each).
#[inline]
#[target_feature(enable = "neon")]
fn permute(b: &Block, idx: &Block) -> Block {
    let t = uint8x16x2_t(b[0], b[1]);
    [vqtbl2q_u8(t, idx[0]), vqtbl2q_u8(t, idx[1])]
}

#[inline]
#[target_feature(enable = "neon,aes")]
fn encrypt_blocks<const N: usize>(k: &Keys, st: &mut [Block; N]) {
    let idx = [load16(&layout::TBL[0]), load16(&layout::TBL[1])];
    for rk in &k.mid {
        for b in st.iter_mut() {
            let y = permute(b, &idx);
            b[0] = vaesmcq_u8(vaeseq_u8(y[0], rk[0]));
            b[1] = vaesmcq_u8(vaeseq_u8(y[1], rk[1]));
        }
    }
    for b in st.iter_mut() {
        let y = permute(b, &idx);
        b[0] = veorq_u8(vaeseq_u8(y[0], k.pen[0]), k.last[0]);
        b[1] = veorq_u8(vaeseq_u8(y[1], k.pen[1]), k.last[1]);
    }
}

/// The next `N` counter blocks; advances `ctr` by `N`.
#[inline]
#[target_feature(enable = "neon")]
fn counters<const N: usize>(ctr: &mut Counter) -> [Block; N] {
    let mut st = [[vdupq_n_u8(0); 2]; N];
    for b in st.iter_mut() {
        let l = ctr.next_limbs();
        b[0] = vreinterpretq_u8_u64(vcombine_u64(vcreate_u64(l[0]), vcreate_u64(l[1])));
        b[1] = vreinterpretq_u8_u64(vcombine_u64(vcreate_u64(l[2]), vcreate_u64(l[3])));
    }
    st
}

#[target_feature(enable = "neon,aes")]
fn encrypt_block(k: &Keys, block: &mut [u8; 32]) {
    let mut st = [load_block(block)];
    encrypt_blocks(k, &mut st);
    store_block(block, st[0]);
}

#[target_feature(enable = "neon,aes")]
fn ctr_xor(k: &Keys, ctr: &mut Counter, data: &mut [u8]) {
    let (chunks, tail) = data.as_chunks_mut::<{ 32 * LANES }>();
    for chunk in chunks {
        let mut st = counters::<LANES>(ctr);
        encrypt_blocks(k, &mut st);
        let (blocks, _) = chunk.as_chunks_mut::<32>();
        for (blk, ks) in blocks.iter_mut().zip(st.iter()) {
            let d = load_block(blk);
            store_block(blk, [veorq_u8(d[0], ks[0]), veorq_u8(d[1], ks[1])]);
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

/// The last `tail.len() <= 32 * N` bytes through a stack buffer; the counter advances by
/// the blocks actually used.
#[inline]
#[target_feature(enable = "neon,aes")]
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
