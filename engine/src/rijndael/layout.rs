//! Byte-permutation tables shared by the SIMD backends (safe, computed at compile time).
//!
//! A Rijndael-256 block is 32 bytes, column-major: byte `i` is row `i % 4`, column `i / 4`.
//! The AES instructions work on 128-bit halves: half 0 = columns 0–3 (bytes 0..16), half 1 =
//! columns 4–7 (bytes 16..32). One AES round instruction applies the 128-bit ShiftRows
//! (row `r` rotated left by `r` of 4 columns), SubBytes, MixColumns and a key XOR (AESENC),
//! or, on ARMv8, key XOR, ShiftRows and SubBytes (AESE) followed by MixColumns (AESMC).
//!
//! SubBytes commutes with any byte permutation, so before each AES instruction we build each
//! half `y_h` from the two halves of the state such that `ShiftRows128(y_h)` equals half `h`
//! of `ShiftRows256(state)`. Solving: output half `h`, column `c` (0..4), row `r` reads the
//! full state column [`src_col`]`(h, c, r) = (4h + ((c - r) mod 4) + C_r) mod 8` with
//! `C = (0, 1, 3, 4)`.
//!
//! For a fixed half and row, the four source columns are four *consecutive* columns, so they
//! sit in four distinct slots (column mod 4) of the two input halves. Hence each output half
//! is one byte-blend of the two input halves (same in-half position) followed by one in-half
//! byte shuffle; the shuffle turns out to be the same for both halves and the two blend masks
//! are complements ([`BLEND_HI`], [`SHUF`]).
//!
//! An exhaustive search over per-round column layouts (every assignment of the 8 state
//! columns to the 8 32-bit slots of the AES output, every following layout, and an arbitrary
//! extra cross-half dword permutation of the input) found no layout in which even one of the
//! two halves can skip the in-half byte shuffle, because the row offsets minus the AES ones,
//! `C_r - r = (0, 0, 1, 1)`, are not constant. So "one blend + one byte shuffle per half and
//! round" is the minimum with these instructions; the shuffle cannot be pre-compensated in the
//! round keys. (The backends compute the second, complementary blend as
//! `a ^ b ^ first_blend`, which runs on more execution pipes than a second blend.)

// SHUF, BLEND_HI and VPERMB serve the x86 kernels only, TBL the ARMv8 one.
#![cfg_attr(
    not(any(target_arch = "x86", target_arch = "x86_64")),
    allow(dead_code)
)]

/// Rijndael-256 ShiftRows offsets: row `r` is rotated left by `SHIFTS[r]` columns.
pub(crate) const SHIFTS: [usize; 4] = [0, 1, 3, 4];

/// The full-state column (0..8) feeding byte (row `r`, column `c`) of the pre-permuted half
/// `h`, i.e. the byte that the AES instruction's own ShiftRows moves into column
/// `(c - r) mod 4` of half `h`.
pub(crate) const fn src_col(h: usize, c: usize, r: usize) -> usize {
    (4 * h + (c + 4 - r) % 4 + SHIFTS[r]) % 8
}

/// The tables below, computed in one pass: position `i` of the `vpermb` index is byte `j =
/// i % 16` of half `h = (i % 32) / 16` of block `i / 32`, and reads the state byte in row
/// `j % 4` of column [`src_col`]`(h, j / 4, j % 4)`.
struct Tables {
    tbl: [[u8; 16]; 2],
    shuf: [u8; 16],
    blend_hi: [u8; 16],
    vpermb: [u8; 64],
}

const TABLES: Tables = {
    let mut t = Tables {
        tbl: [[0; 16]; 2],
        shuf: [0; 16],
        blend_hi: [0; 16],
        vpermb: [0; 64],
    };
    let mut i = 0;
    while i < 64 {
        let (block, h, j) = (i / 32, (i % 32) / 16, i % 16);
        let src = 4 * src_col(h, j / 4, j % 4) + j % 4;
        t.vpermb[i] = (32 * block + src) as u8;
        if block == 0 {
            t.tbl[h][j] = src as u8;
        }
        if i < 16 {
            t.shuf[j] = (src % 16) as u8;
            if src >= 16 {
                t.blend_hi[src % 16] = 0xff;
            }
        }
        i += 1;
    }
    t
};

/// Two-register table index for half `h`: `TBL[h][4c + r]` is the byte index (0..32) of the
/// state that goes to position `4c + r` of the pre-permuted half `h`. Used by ARMv8 `TBL`
/// (and as the specification of the blend/shuffle pair).
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
pub(crate) const TBL: [[u8; 16]; 2] = TABLES.tbl;

/// In-half byte shuffle (`pshufb` index) applied after the blend; the same for both halves.
/// `SHUF[j]` is the in-half position (0..16) that position `j` reads.
pub(crate) const SHUF: [u8; 16] = TABLES.shuf;

/// Blend mask for half 0: `0xff` where the blended register takes the byte from the high
/// input half (columns 4–7), `0x00` where it takes the low half. Half 1 uses the complement.
pub(crate) const BLEND_HI: [u8; 16] = TABLES.blend_hi;

/// `vpermb` index over a 512-bit register holding two whole blocks (bytes 0..32 and 32..64):
/// one permutation builds both pre-permuted halves of both blocks.
pub(crate) const VPERMB: [u8; 64] = TABLES.vpermb;

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;
    use crate::rijndael::reference;

    /// The tables describe, for each half, a selection of 16 distinct state bytes.
    #[test]
    fn tables_are_consistent() {
        // every state byte is used exactly once over both halves
        let mut seen = [0u8; 32];
        for h in 0..2 {
            for &i in &TBL[h] {
                seen[i as usize] += 1;
            }
        }
        assert_eq!(seen, [1u8; 32]);
        // rows are preserved by the pre-permutation
        for h in 0..2 {
            for j in 0..16 {
                assert_eq!(TBL[h][j] % 4, (j % 4) as u8);
            }
        }
        // blend + shuffle reproduces the two-register table for both halves
        for j in 0..16 {
            let pos = SHUF[j] as usize;
            let hi0 = BLEND_HI[pos] == 0xff;
            let want0 = if hi0 { 16 + pos } else { pos };
            let want1 = if hi0 { pos } else { 16 + pos };
            assert_eq!(TBL[0][j] as usize, want0, "half 0 pos {j}");
            assert_eq!(TBL[1][j] as usize, want1, "half 1 pos {j}");
        }
        for i in 0..64 {
            assert_eq!(VPERMB[i] as usize / 32, i / 32);
        }
    }

    /// Emulates the AES round instruction (ShiftRows128, SubBytes, MixColumns on one half)
    /// after the table permutation and compares with a whole Rijndael-256 round without key.
    #[test]
    fn permutation_then_aes_round_is_a_rijndael256_round() {
        let mut x = [0u8; 32];
        for (i, b) in x.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        for round in 0..8 {
            // expected: Rijndael-256 SubBytes, ShiftRows, MixColumns
            let mut want = x;
            reference::sub_bytes(&mut want);
            reference::shift_rows(&mut want);
            reference::mix_columns(&mut want);
            let mut got = [0u8; 32];
            for h in 0..2 {
                let mut y = [0u8; 16];
                for j in 0..16 {
                    y[j] = x[TBL[h][j] as usize];
                }
                let out = reference::aes128_round_no_key(&y);
                got[16 * h..16 * h + 16].copy_from_slice(&out);
            }
            assert_eq!(got, want, "round {round}");
            // the VPERMB table applied to two copies gives the same halves
            let mut two = [0u8; 64];
            two[..32].copy_from_slice(&x);
            two[32..].copy_from_slice(&want);
            for i in 0..64 {
                let src = two[VPERMB[i] as usize];
                let blk = if i < 32 { &x } else { &want };
                assert_eq!(src, blk[TBL[(i % 32) / 16][i % 16] as usize]);
            }
            x = want;
        }
    }
}
