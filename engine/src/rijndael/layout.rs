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

/// Rijndael-256 ShiftRows offsets: row `r` is rotated left by `SHIFTS[r]` columns.
pub(crate) const SHIFTS: [usize; 4] = [0, 1, 3, 4];

/// The full-state column (0..8) feeding byte (row `r`, column `c`) of the pre-permuted half
/// `h`, i.e. the byte that the AES instruction's own ShiftRows moves into column
/// `(c - r) mod 4` of half `h`.
pub(crate) const fn src_col(h: usize, c: usize, r: usize) -> usize {
    (4 * h + (c + 4 - r) % 4 + SHIFTS[r]) % 8
}

/// Two-register table index for half `h`: `TBL[h][4c + r]` is the byte index (0..32) of the
/// state that goes to position `4c + r` of the pre-permuted half `h`. Used by ARMv8 `TBL`
/// (and as the specification of the blend/shuffle pair).
pub(crate) const TBL: [[u8; 16]; 2] = {
    let mut t = [[0u8; 16]; 2];
    let mut h = 0;
    while h < 2 {
        let mut c = 0;
        while c < 4 {
            let mut r = 0;
            while r < 4 {
                t[h][4 * c + r] = (4 * src_col(h, c, r) + r) as u8;
                r += 1;
            }
            c += 1;
        }
        h += 1;
    }
    t
};

/// In-half byte shuffle (`pshufb` index) applied after the blend; the same for both halves.
/// `SHUF[j]` is the in-half position (0..16) that position `j` reads.
#[cfg_attr(
    not(any(target_arch = "x86", target_arch = "x86_64")),
    allow(dead_code)
)]
pub(crate) const SHUF: [u8; 16] = {
    let mut s = [0u8; 16];
    let mut j = 0;
    while j < 16 {
        s[j] = TBL[0][j] % 16;
        j += 1;
    }
    s
};

/// Blend mask for half 0: `0xff` where the blended register takes the byte from the high
/// input half (columns 4–7), `0x00` where it takes the low half. Half 1 uses the complement.
#[cfg_attr(
    not(any(target_arch = "x86", target_arch = "x86_64")),
    allow(dead_code)
)]
pub(crate) const BLEND_HI: [u8; 16] = {
    let mut m = [0u8; 16];
    let mut j = 0;
    while j < 16 {
        let src = TBL[0][j];
        if src >= 16 {
            m[(src % 16) as usize] = 0xff;
        }
        j += 1;
    }
    m
};

/// `vpermb` index over a 512-bit register holding two whole blocks (bytes 0..32 and 32..64):
/// one permutation builds both pre-permuted halves of both blocks.
#[cfg_attr(
    not(any(target_arch = "x86", target_arch = "x86_64")),
    allow(dead_code)
)]
pub(crate) const VPERMB: [u8; 64] = {
    let mut p = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        let block = i / 32;
        let h = (i % 32) / 16;
        p[i] = (32 * block) as u8 + TBL[h][i % 16];
        i += 1;
    }
    p
};

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
