//! SP 800-185 §2.3 integer and string encodings, and `bytepad` absorbed straight into a sponge.

use super::sponge::Sponge;

/// An encoded integer: at most 16 value bytes plus the length byte.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Encoded {
    bytes: [u8; 17],
    len: usize,
}

impl Encoded {
    /// The encoding's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

/// Big-endian value bytes of `x` without leading zeros (at least one byte) and their count.
fn be_bytes(x: u128) -> ([u8; 16], usize) {
    let all = x.to_be_bytes();
    // The number of significant bytes, at least 1 (SP 800-185: 0 < n < 256).
    let lz = (x.leading_zeros() / 8) as usize;
    let n = (16 - lz).max(1);
    (all, n)
}

/// `left_encode(x)`: the byte count, then `x` big-endian.
pub(crate) fn left_encode(x: u128) -> Encoded {
    let (all, n) = be_bytes(x);
    let mut bytes = [0u8; 17];
    // n <= 16, so the cast and the ranges below are in bounds.
    bytes[0] = n as u8;
    bytes[1..=n].copy_from_slice(&all[16 - n..]);
    Encoded { bytes, len: n + 1 }
}

/// `right_encode(x)`: `x` big-endian, then the byte count.
pub(crate) fn right_encode(x: u128) -> Encoded {
    let (all, n) = be_bytes(x);
    let mut bytes = [0u8; 17];
    bytes[..n].copy_from_slice(&all[16 - n..]);
    bytes[n] = n as u8;
    Encoded { bytes, len: n + 1 }
}

/// The bit length of a byte string as SP 800-185 encodes it (`u128`, so it cannot overflow).
pub(crate) fn bit_len(bytes: usize) -> u128 {
    (bytes as u128) * 8
}

/// Absorbs `bytepad(encode_string(s_0) || encode_string(s_1) || .., RATE)` into a sponge that
/// sits on a block boundary (a fresh one), leaving it on a block boundary.
pub(crate) fn absorb_bytepad<const RATE: usize>(sponge: &mut Sponge<RATE>, strings: &[&[u8]]) {
    let w = left_encode(RATE as u128);
    sponge.absorb(w.as_slice());
    let mut total = w.as_slice().len();
    for s in strings {
        let e = left_encode(bit_len(s.len()));
        sponge.absorb(e.as_slice());
        sponge.absorb(s);
        total = total.wrapping_add(e.as_slice().len()).wrapping_add(s.len());
    }
    let rem = total % RATE;
    if rem != 0 {
        const ZEROS: [u8; 200] = [0u8; 200];
        sponge.absorb(ZEROS.get(..RATE - rem).unwrap_or(&[]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_sp800_185_examples() {
        assert_eq!(left_encode(0).as_slice(), [1, 0]);
        assert_eq!(right_encode(0).as_slice(), [0, 1]);
        assert_eq!(left_encode(168).as_slice(), [1, 168]);
        assert_eq!(left_encode(256).as_slice(), [2, 1, 0]);
        assert_eq!(right_encode(512).as_slice(), [2, 0, 2]);
        assert_eq!(right_encode(256).as_slice(), [1, 0, 2]);
        assert_eq!(right_encode(u128::MAX).as_slice().len(), 17);
        assert_eq!(left_encode(u128::MAX).as_slice()[0], 16);
    }
}
