//! Constant-time portable Rijndael-256: bitsliced, two blocks at a time.
//!
//! # Representation
//! Eight slices; slice `b` holds bit `b` of every byte. Per 64-bit lane of a slice: two
//! blocks, the byte in row `r`, column `c` of block `k` at bit position `8c + 4k + r` (a
//! column of the state is a byte of every slice, the four rows of one block's column are a
//! nibble). A slice is a [`W`] of [`LANES`] such lanes (plain `u64` arithmetic on an
//! array), so one pass encrypts `2 * LANES` blocks.
//!
//! * SubBytes: the Boyar–Peralta depth-16 AES S-box circuit (XOR/AND only), on all 64 bytes
//!   at once. Its four output NOTs (the 0x63 constant) are folded into round keys 1..=R:
//!   ShiftRows permutes bytes, and MixColumns maps the all-0x63 state to itself
//!   (2 ^ 3 ^ 1 ^ 1 = 1), so the constant reaches the next AddRoundKey unchanged.
//! * ShiftRows: row `r` of every slice is rotated right by `8 * C_r` bits (whole-word
//!   rotations, masked per row).
//! * MixColumns: rotations of the row inside each nibble plus the bitsliced `xtime`.
//!
//! No table lookups and no data-dependent branches: the running time depends only on the
//! data length and the round count.
#![forbid(unsafe_code)]

use super::Counter;
use super::kernel::{Kernel, RoundKeys};
use core::ops::{BitAnd, BitOr, BitXor};
use zeroize::Zeroize;

/// 64-bit lanes per slice word (2 blocks per lane). One lane measured fastest on x86-64:
/// with 2, LLVM keeps the lanes in general registers (no SSE2 vectorization) and the doubled
/// register pressure costs ~10%. The round functions are written per lane so that a target
/// where wider words vectorize (e.g. `wasm32` with `simd128`) can raise this.
const LANES: usize = 1;

/// Blocks per pass.
const BLOCKS: usize = 2 * LANES;

/// One slice word: [`LANES`] independent 64-bit lanes.
#[derive(Clone, Copy, Zeroize)]
#[cfg_attr(test, derive(PartialEq, Eq, Debug))]
struct W([u64; LANES]);

impl W {
    #[inline(always)]
    const fn splat(x: u64) -> W {
        W([x; LANES])
    }

    #[inline(always)]
    fn map(self, f: impl Fn(u64) -> u64) -> W {
        let mut r = self.0;
        for x in r.iter_mut() {
            *x = f(*x);
        }
        W(r)
    }

    #[inline(always)]
    fn zip(self, o: W, f: impl Fn(u64, u64) -> u64) -> W {
        let mut r = self.0;
        for (x, y) in r.iter_mut().zip(o.0) {
            *x = f(*x, y);
        }
        W(r)
    }

    #[inline(always)]
    fn ror(self, n: u32) -> W {
        self.map(|x| x.rotate_right(n))
    }

    #[inline(always)]
    fn shr(self, n: u32) -> W {
        self.map(|x| x >> n)
    }

    #[inline(always)]
    fn shl(self, n: u32) -> W {
        self.map(|x| x << n)
    }
}

impl BitXor for W {
    type Output = W;
    #[inline(always)]
    fn bitxor(self, o: W) -> W {
        self.zip(o, |a, b| a ^ b)
    }
}

impl BitAnd for W {
    type Output = W;
    #[inline(always)]
    fn bitand(self, o: W) -> W {
        self.zip(o, |a, b| a & b)
    }
}

impl BitOr for W {
    type Output = W;
    #[inline(always)]
    fn bitor(self, o: W) -> W {
        self.zip(o, |a, b| a | b)
    }
}

/// `2 * LANES` blocks, bitsliced.
type State = [W; 8];

/// Two blocks, bitsliced (one lane of a [`State`]).
type Lane = [u64; 8];

const ZERO: State = [W::splat(0); 8];

/// Expanded keys in bitsliced form (each round key duplicated in both block positions),
/// with the S-box constant folded into keys 1..=R.
#[derive(Clone)]
pub(crate) struct Portable {
    keys: RoundKeys<State>,
}

impl Kernel for Portable {
    const BLOCKS_PER_REG: usize = BLOCKS;
    const REGS: usize = 1;

    fn new(rk: &[[u8; 32]]) -> Option<Self> {
        let keys = RoundKeys::new(rk, |i, k| {
            let mut k = *k;
            if i > 0 {
                for b in k.iter_mut() {
                    *b ^= 0x63;
                }
            }
            let lane = pack(&k, &k);
            k.zeroize();
            let mut s = ZERO;
            for (w, l) in s.iter_mut().zip(lane) {
                *w = W::splat(l);
            }
            s
        })?;
        Some(Portable { keys })
    }

    /// `R` passes of [`BLOCKS`] blocks each.
    fn xor_keystream<const R: usize>(&self, ctr: &mut Counter, blocks: &mut [[u8; 32]]) {
        let mut s = ZERO;
        let (passes, _) = blocks.as_chunks_mut::<BLOCKS>();
        for pass in passes.iter_mut().take(R) {
            load_counters(&mut s, ctr);
            encrypt(&self.keys, &mut s);
            let (pairs, _) = pass.as_chunks_mut::<2>();
            for (i, pair) in pairs.iter_mut().enumerate() {
                xor_lane(&get_lane(&s, i), pair);
            }
        }
        s.zeroize();
    }
}

/// Bitslices the next [`BLOCKS`] counter values into `s` and advances `ctr` by as many.
#[inline(always)]
fn load_counters(s: &mut State, ctr: &mut Counter) {
    for lane in 0..LANES {
        let c0 = ctr.next_bytes();
        let c1 = ctr.next_bytes();
        set_lane(s, lane, &pack(&c0, &c1));
    }
}

#[inline(always)]
fn set_lane(s: &mut State, lane: usize, v: &Lane) {
    for (w, x) in s.iter_mut().zip(v) {
        if let Some(l) = w.0.get_mut(lane) {
            *l = *x;
        }
    }
}

#[inline(always)]
fn get_lane(s: &State, lane: usize) -> Lane {
    let mut v = [0u64; 8];
    for (x, w) in v.iter_mut().zip(s) {
        *x = w.0.get(lane).copied().unwrap_or(0);
    }
    v
}

/// `out ^= unpack(s)` for two blocks.
#[inline(always)]
fn xor_lane(s: &Lane, out: &mut [[u8; 32]; 2]) {
    let w = unpack_words(s);
    let [blk0, blk1] = out;
    let (cols0, _) = blk0.as_chunks_mut::<4>();
    let (cols1, _) = blk1.as_chunks_mut::<4>();
    // word c = column c of block 0 (low 4 bytes) and of block 1 (high 4 bytes)
    for (wc, (a, b)) in w.iter().zip(cols0.iter_mut().zip(cols1.iter_mut())) {
        *a = (u32::from_le_bytes(*a) ^ *wc as u32).to_le_bytes();
        *b = (u32::from_le_bytes(*b) ^ (*wc >> 32) as u32).to_le_bytes();
    }
}

#[inline(always)]
fn encrypt(k: &RoundKeys<State>, s: &mut State) {
    k.encrypt(
        core::array::from_mut(s),
        |rk| *rk,
        add_round_key,
        |s, rk| {
            sub_bytes(s);
            shift_rows(s);
            mix_columns(s);
            add_round_key(s, rk);
        },
        |s, rk| {
            sub_bytes(s);
            shift_rows(s);
            add_round_key(s, rk);
        },
    );
}

#[inline(always)]
fn add_round_key(s: &mut State, k: &State) {
    for (x, y) in s.iter_mut().zip(k) {
        *x = *x ^ *y;
    }
}

/// Exchanges the bits of `a` selected by `mask << n` with the bits of `b` selected by `mask`.
#[inline(always)]
fn swapmove(w: &mut Lane, i: usize, j: usize, mask: u64, n: u32) {
    let t = ((w[i] >> n) ^ w[j]) & mask;
    w[j] ^= t;
    w[i] ^= t << n;
}

/// Stage 1 of (un)packing: exchanges the word index with the bit-within-byte index.
/// An involution.
#[inline(always)]
fn exchange_word_and_bit(w: &mut Lane) {
    for (i, j) in [(0, 1), (2, 3), (4, 5), (6, 7)] {
        swapmove(w, i, j, 0x5555_5555_5555_5555, 1);
    }
    for (i, j) in [(0, 2), (1, 3), (4, 6), (5, 7)] {
        swapmove(w, i, j, 0x3333_3333_3333_3333, 2);
    }
    for (i, j) in [(0, 4), (1, 5), (2, 6), (3, 7)] {
        swapmove(w, i, j, 0x0f0f_0f0f_0f0f_0f0f, 4);
    }
}

/// Transposes the 8x8 bit matrix held in a word (bit `8i + j` <-> bit `8j + i`).
#[inline(always)]
fn transpose8x8(mut x: u64) -> u64 {
    let t = (x ^ (x >> 7)) & 0x00aa_00aa_00aa_00aa;
    x ^= t ^ (t << 7);
    let t = (x ^ (x >> 14)) & 0x0000_cccc_0000_cccc;
    x ^= t ^ (t << 14);
    let t = (x ^ (x >> 28)) & 0x0000_0000_f0f0_f0f0;
    x ^= t ^ (t << 28);
    x
}

/// Bitslices two blocks: bit `b` of byte (row `r`, column `c`) of block `k` goes to bit
/// `8c + 4k + r` of slice `b`.
#[inline(always)]
fn pack(x: &[u8; 32], y: &[u8; 32]) -> Lane {
    let (xc, _) = x.as_chunks::<4>();
    let (yc, _) = y.as_chunks::<4>();
    let mut w = [0u64; 8];
    // word c: byte 4k + r = (block k, row r, column c)
    for (wc, (a, b)) in w.iter_mut().zip(xc.iter().zip(yc)) {
        *wc = u64::from(u32::from_le_bytes(*a)) | (u64::from(u32::from_le_bytes(*b)) << 32);
    }
    // now word W, byte J, bit B; exchange W and B, then transpose bytes/bits in each word
    exchange_word_and_bit(&mut w);
    for x in w.iter_mut() {
        *x = transpose8x8(*x);
    }
    w
}

/// Inverse of [`pack`], as 8 words (word `c` = column `c` of block 0 in the low half and of
/// block 1 in the high half, little-endian).
#[inline(always)]
fn unpack_words(s: &Lane) -> [u64; 8] {
    let mut w = *s;
    for x in w.iter_mut() {
        *x = transpose8x8(*x);
    }
    exchange_word_and_bit(&mut w);
    w
}

/// Inverse of [`pack`].
#[cfg(test)]
fn unpack(s: &Lane) -> ([u8; 32], [u8; 32]) {
    let w = unpack_words(s);
    let mut a = [0u8; 32];
    let mut b = [0u8; 32];
    let (ac, _) = a.as_chunks_mut::<4>();
    let (bc, _) = b.as_chunks_mut::<4>();
    for (wc, (x, y)) in w.iter().zip(ac.iter_mut().zip(bc.iter_mut())) {
        *x = (*wc as u32).to_le_bytes();
        *y = ((*wc >> 32) as u32).to_le_bytes();
    }
    (a, b)
}

/// ShiftRows: row `r` (bit `r` of every nibble) is rotated so that column `c` receives
/// column `c + C_r`, i.e. the word is rotated right by `8 * C_r` bits.
#[inline(always)]
fn shift_rows(s: &mut State) {
    const R0: u64 = 0x1111_1111_1111_1111;
    for x in s.iter_mut() {
        let v = *x;
        *x = (v & W::splat(R0))
            | (v.ror(8) & W::splat(R0 << 1))
            | (v.ror(24) & W::splat(R0 << 2))
            | (v.ror(32) & W::splat(R0 << 3));
    }
}

/// Row `r` of each nibble receives row `r + 1 (mod 4)`.
#[inline(always)]
fn rot_row1(x: W) -> W {
    (x.shr(1) & W::splat(0x7777_7777_7777_7777)) | (x.shl(3) & W::splat(0x8888_8888_8888_8888))
}

/// Row `r` of each nibble receives row `r + 2 (mod 4)`.
#[inline(always)]
fn rot_row2(x: W) -> W {
    (x.shr(2) & W::splat(0x3333_3333_3333_3333)) | (x.shl(2) & W::splat(0xcccc_cccc_cccc_cccc))
}

/// MixColumns: `out[r] = 2(a[r] ^ a[r+1]) ^ a[r+1] ^ a[r+2] ^ a[r+3]`.
#[inline(always)]
fn mix_columns(s: &mut State) {
    let mut a1 = ZERO;
    let mut t = ZERO;
    for i in 0..8 {
        a1[i] = rot_row1(s[i]);
        t[i] = s[i] ^ a1[i];
    }
    // xtime(t): multiply by x modulo x^8 + x^4 + x^3 + x + 1, bitsliced
    let xt = [
        t[7],
        t[0] ^ t[7],
        t[1],
        t[2] ^ t[7],
        t[3] ^ t[7],
        t[4],
        t[5],
        t[6],
    ];
    for i in 0..8 {
        s[i] = xt[i] ^ a1[i] ^ rot_row2(t[i]);
    }
}

/// SubBytes without the final 0x63 (folded into the round keys): the Boyar–Peralta
/// depth-16 circuit (top linear layer, shared non-linear middle, bottom linear layer).
/// `U0`/`S0` are the most significant bits.
#[inline(always)]
#[allow(clippy::many_single_char_names)]
fn sub_bytes(s: &mut State) {
    let u0 = s[7];
    let u1 = s[6];
    let u2 = s[5];
    let u3 = s[4];
    let u4 = s[3];
    let u5 = s[2];
    let u6 = s[1];
    let u7 = s[0];

    // top linear transform
    let t1 = u0 ^ u3;
    let t2 = u0 ^ u5;
    let t3 = u0 ^ u6;
    let t4 = u3 ^ u5;
    let t5 = u4 ^ u6;
    let t6 = t1 ^ t5;
    let t7 = u1 ^ u2;
    let t8 = u7 ^ t6;
    let t9 = u7 ^ t7;
    let t10 = t6 ^ t7;
    let t11 = u1 ^ u5;
    let t12 = u2 ^ u5;
    let t13 = t3 ^ t4;
    let t14 = t6 ^ t11;
    let t15 = t5 ^ t11;
    let t16 = t5 ^ t12;
    let t17 = t9 ^ t16;
    let t18 = u3 ^ u7;
    let t19 = t7 ^ t18;
    let t20 = t1 ^ t19;
    let t21 = u6 ^ u7;
    let t22 = t7 ^ t21;
    let t23 = t2 ^ t22;
    let t24 = t2 ^ t10;
    let t25 = t20 ^ t17;
    let t26 = t3 ^ t16;
    let t27 = t1 ^ t12;

    // shared non-linear middle (inversion in GF(2^8) via GF(2^4))
    let m1 = t13 & t6;
    let m2 = t23 & t8;
    let m3 = t14 ^ m1;
    let m4 = t19 & u7;
    let m5 = m4 ^ m1;
    let m6 = t3 & t16;
    let m7 = t22 & t9;
    let m8 = t26 ^ m6;
    let m9 = t20 & t17;
    let m10 = m9 ^ m6;
    let m11 = t1 & t15;
    let m12 = t4 & t27;
    let m13 = m12 ^ m11;
    let m14 = t2 & t10;
    let m15 = m14 ^ m11;
    let m16 = m3 ^ m2;
    let m17 = m5 ^ t24;
    let m18 = m8 ^ m7;
    let m19 = m10 ^ m15;
    let m20 = m16 ^ m13;
    let m21 = m17 ^ m15;
    let m22 = m18 ^ m13;
    let m23 = m19 ^ t25;
    let m24 = m22 ^ m23;
    let m25 = m22 & m20;
    let m26 = m21 ^ m25;
    let m27 = m20 ^ m21;
    let m28 = m23 ^ m25;
    let m29 = m28 & m27;
    let m30 = m26 & m24;
    let m31 = m20 & m23;
    let m32 = m27 & m31;
    let m33 = m27 ^ m25;
    let m34 = m21 & m22;
    let m35 = m24 & m34;
    let m36 = m24 ^ m25;
    let m37 = m21 ^ m29;
    let m38 = m32 ^ m33;
    let m39 = m23 ^ m30;
    let m40 = m35 ^ m36;
    let m41 = m38 ^ m40;
    let m42 = m37 ^ m39;
    let m43 = m37 ^ m38;
    let m44 = m39 ^ m40;
    let m45 = m42 ^ m41;
    let m46 = m44 & t6;
    let m47 = m40 & t8;
    let m48 = m39 & u7;
    let m49 = m43 & t16;
    let m50 = m38 & t9;
    let m51 = m37 & t17;
    let m52 = m42 & t15;
    let m53 = m45 & t27;
    let m54 = m41 & t10;
    let m55 = m44 & t13;
    let m56 = m40 & t23;
    let m57 = m39 & t19;
    let m58 = m43 & t3;
    let m59 = m38 & t22;
    let m60 = m37 & t20;
    let m61 = m42 & t1;
    let m62 = m45 & t4;
    let m63 = m41 & t2;

    // bottom linear transform
    let l0 = m61 ^ m62;
    let l1 = m50 ^ m56;
    let l2 = m46 ^ m48;
    let l3 = m47 ^ m55;
    let l4 = m54 ^ m58;
    let l5 = m49 ^ m61;
    let l6 = m62 ^ l5;
    let l7 = m46 ^ l3;
    let l8 = m51 ^ m59;
    let l9 = m52 ^ m53;
    let l10 = m53 ^ l4;
    let l11 = m60 ^ l2;
    let l12 = m48 ^ m51;
    let l13 = m50 ^ l0;
    let l14 = m52 ^ m61;
    let l15 = m55 ^ l1;
    let l16 = m56 ^ l0;
    let l17 = m57 ^ l1;
    let l18 = m58 ^ l8;
    let l19 = m63 ^ l4;
    let l20 = l0 ^ l1;
    let l21 = l1 ^ l7;
    let l22 = l3 ^ l12;
    let l23 = l18 ^ l2;
    let l24 = l15 ^ l9;
    let l25 = l6 ^ l10;
    let l26 = l7 ^ l9;
    let l27 = l8 ^ l10;
    let l28 = l11 ^ l14;
    let l29 = l11 ^ l17;

    // S1, S2, S6, S7 are complemented in the circuit; those NOTs (0x63) live in the keys
    s[7] = l6 ^ l24;
    s[6] = l16 ^ l26;
    s[5] = l19 ^ l28;
    s[4] = l6 ^ l21;
    s[3] = l20 ^ l22;
    s[2] = l25 ^ l29;
    s[1] = l13 ^ l27;
    s[0] = l6 ^ l23;
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::rijndael::reference;

    fn splat(byte: u8) -> State {
        let mut s = ZERO;
        for (b, x) in s.iter_mut().enumerate() {
            *x = W::splat(if byte >> b & 1 == 1 { u64::MAX } else { 0 });
        }
        s
    }

    #[test]
    fn circuit_is_the_aes_sbox_exhaustively() {
        let table = reference::sbox();
        for x in 0..=255u8 {
            let mut s = splat(x);
            sub_bytes(&mut s);
            let want = table[x as usize] ^ 0x63;
            assert_eq!(s, splat(want), "S({x:#04x})");
        }
    }

    #[test]
    fn pack_layout_and_round_trip() {
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        for i in 0..32 {
            x[i] = (i as u8).wrapping_mul(73).wrapping_add(5);
            y[i] = (i as u8).wrapping_mul(151) ^ 0xa5;
        }
        let s = pack(&x, &y);
        for (k, blk) in [x, y].iter().enumerate() {
            for i in 0..32 {
                let (r, c) = (i % 4, i / 4);
                for b in 0..8 {
                    let bit = (s[b] >> (8 * c + 4 * k + r)) & 1;
                    assert_eq!(bit as u8, blk[i] >> b & 1);
                }
            }
        }
        assert_eq!(unpack(&s), (x, y));
        let mut out = [[0u8; 32]; 2];
        xor_lane(&s, &mut out);
        assert_eq!(out, [x, y]);
    }

    #[test]
    fn linear_layers_match_reference() {
        let mut x = [0u8; 32];
        for i in 0..32 {
            x[i] = (i as u8).wrapping_mul(29).wrapping_add(3);
        }
        let y = reference::encrypt(&x, &[0u8; 32 * 3], 2); // any other block
        let mut s = ZERO;
        for lane in 0..LANES {
            // lane i holds (x, y) rotated by i bytes so that lanes differ
            let (mut xi, mut yi) = (x, y);
            xi.rotate_left(lane);
            yi.rotate_left(lane);
            set_lane(&mut s, lane, &pack(&xi, &yi));
        }
        shift_rows(&mut s);
        mix_columns(&mut s);
        for lane in 0..LANES {
            let (a, b) = unpack(&get_lane(&s, lane));
            let (mut ra, mut rb) = (x, y);
            ra.rotate_left(lane);
            rb.rotate_left(lane);
            for r in [&mut ra, &mut rb] {
                reference::shift_rows(r);
                reference::mix_columns(r);
            }
            assert_eq!(a, ra, "lane {lane}");
            assert_eq!(b, rb, "lane {lane}");
        }
    }
}
