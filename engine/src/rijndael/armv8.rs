//! ARMv8 Cryptography Extensions kernel (`aes`, AArch64, little-endian).
//!
//! A block is two `uint8x16_t` (columns 0–3 and 4–7). AESE is AddRoundKey + ShiftRows +
//! SubBytes, AESMC is MixColumns. Each round builds both pre-permuted halves with one
//! two-register `TBL` (`vqtbl2q_u8`) each (see `layout.rs`). Because AESE XORs the key
//! *before* its ShiftRows, i.e. after our permutation, round keys 0..R-1 are stored
//! permuted the same way (`P(x) ^ P(k) = P(x ^ k)`); the last key is XORed plainly after
//! the final AESE. A wide step interleaves eight blocks.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

use crate::Backend;
use crate::rijndael::kernel::{Aligned, Kernel, RoundKeys};
use crate::rijndael::{Counter, layout};
use zeroize::{Zeroize, Zeroizing};

/// One block or round key: columns 0–3, columns 4–7.
type Block = [uint8x16_t; 2];

/// Round keys 0..R-1 permuted for AESE, and key R plain. Constructed only when the CPU has
/// the AES extension.
#[derive(Clone)]
pub(crate) struct Armv8 {
    aese: RoundKeys<Aligned<32>>,
    fin: Zeroizing<Aligned<32>>,
}

impl Kernel for Armv8 {
    const BLOCKS_PER_REG: usize = 1;
    /// Eight blocks in 16 of the 32 vector registers.
    const REGS: usize = 8;

    fn new(rk: &[[u8; 32]]) -> Option<Self> {
        let (fin, rest) = rk.split_last()?;
        let aese = RoundKeys::new(rest, |_, k| {
            let mut p = permuted(k);
            let key = Aligned(p);
            p.zeroize();
            key
        })?;
        let fin = Zeroizing::new(Aligned(*fin));
        Backend::Armv8.is_available().then_some(Armv8 { aese, fin })
    }

    fn xor_keystream<const R: usize>(&self, ctr: &mut Counter, blocks: &mut [[u8; 32]]) {
        // SAFETY: an `Armv8` exists only once `new` found the AES extension; NEON is part of
        // the AArch64 baseline.
        unsafe { xor_keystream::<R>(self, ctr, blocks) }
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
fn permuted(k: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (b, &i) in out.iter_mut().zip(layout::TBL.as_flattened()) {
        *b = k.get(usize::from(i)).copied().unwrap_or(0);
    }
    out
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
fn encrypt<const N: usize>(k: &Armv8, st: &mut [Block; N]) {
    let idx = [load16(&layout::TBL[0]), load16(&layout::TBL[1])];
    let round = |b: &mut Block, rk: &Block| {
        let y = permute(b, &idx);
        *b = [
            vaesmcq_u8(vaeseq_u8(y[0], rk[0])),
            vaesmcq_u8(vaeseq_u8(y[1], rk[1])),
        ];
    };
    let fin = load_block(&k.fin.0);
    k.aese.encrypt(
        st,
        |rk| load_block(&rk.0),
        round,
        round,
        |b, rk| {
            let y = permute(b, &idx);
            *b = [
                veorq_u8(vaeseq_u8(y[0], rk[0]), fin[0]),
                veorq_u8(vaeseq_u8(y[1], rk[1]), fin[1]),
            ];
        },
    );
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

/// The kernel step: `R` blocks of keystream XORed into `blocks`.
#[target_feature(enable = "neon,aes")]
fn xor_keystream<const R: usize>(k: &Armv8, ctr: &mut Counter, blocks: &mut [[u8; 32]]) {
    let mut st = counters::<R>(ctr);
    encrypt(k, &mut st);
    for (blk, ks) in blocks.iter_mut().zip(st.iter()) {
        let d = load_block(blk);
        store_block(blk, [veorq_u8(d[0], ks[0]), veorq_u8(d[1], ks[1])]);
    }
    st.zeroize();
}
