//! KMAC (SP 800-185 §4) as the C reference computes it: rate 136 (KMAC-256) and QSC's rate 72
//! (KMAC-512), with the reference's finalize quirk, usable as a streaming MAC (FACTS §1, §2).
//!
//! Streaming: RCS never re-keys its MAC. After [`Kmac::finalize_into`] the sponge keeps the state
//! the output squeeze left (the squeeze permutation is kept), the buffer is empty, and the next
//! `update`/`finalize_into` pair continues from there.

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::encode::{absorb_bytepad, bit_len, right_encode};
use super::sponge::{Sponge, xor_block};
use super::{CSHAKE_DOMAIN, KMAC256_RATE, KMAC512_RATE};

/// A keyed KMAC state with a `RATE`-byte rate. Wiped on drop; `Debug` prints `<redacted>`.
pub struct Kmac<const RATE: usize> {
    pub(crate) sponge: Sponge<RATE>,
}

/// KMAC-256 (rate 136).
pub type Kmac256 = Kmac<KMAC256_RATE>;
/// QSC's KMAC-512 (rate 72).
pub type Kmac512 = Kmac<KMAC512_RATE>;

impl<const RATE: usize> Kmac<RATE> {
    /// Compile-time check: the final block must hold the longest `right_encode` (17 bytes) and
    /// the domain byte.
    const RATE_OK: () = assert!(RATE >= 24, "KMAC rate too small");

    /// Keys KMAC: absorbs `bytepad(encode_string("KMAC") || encode_string(custom))` and
    /// `bytepad(encode_string(key))`.
    pub fn new(key: &[u8], custom: &[u8]) -> Self {
        let () = Self::RATE_OK;
        let mut sponge = Sponge::new();
        absorb_bytepad(&mut sponge, &[b"KMAC", custom]);
        absorb_bytepad(&mut sponge, &[key]);
        Self { sponge }
    }

    /// Absorbs more message bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.sponge.absorb(data);
    }

    /// Finishes the current message with `L = out.len()` and fills `out`, reproducing the
    /// reference's finalize (FACTS §1): let `t` be the buffered tail and
    /// `e = right_encode(8·L)`. If `|t| + |e| >= RATE`, `t` is absorbed and permuted on its own,
    /// and the final block is `e || t[|e|..] || 0…` with `0x04` written at offset `|e|` and
    /// `0x80` ORed into its last byte (the reference builds it in the buffer that still holds
    /// `t`). Otherwise the block is the standard `t || e || 0x04 || 0… || 0x80`.
    ///
    /// The state is then squeezed for `out`, and stays usable: further updates continue on
    /// it with an empty buffer.
    pub fn finalize_into(&mut self, out: &mut [u8]) {
        let sp = &mut self.sponge;
        let e = right_encode(bit_len(out.len()));
        let e = e.as_slice();
        let t_len = sp.pos.min(RATE);

        // The reference's scratch buffer: the tail, zero padded.
        let mut block = [0u8; RATE];
        if let (Some(dst), Some(src)) = (block.get_mut(..t_len), sp.buf.get(..t_len)) {
            dst.copy_from_slice(src);
        }
        let mut at = t_len;
        if t_len + e.len() >= RATE {
            xor_block(&mut sp.state, &block);
            super::f1600(&mut sp.state);
            // The stale tail stays in the scratch buffer past `e` (the quirk).
            at = 0;
        }
        if let Some(dst) = block.get_mut(at..at + e.len()) {
            dst.copy_from_slice(e);
        }
        if let Some(b) = block.get_mut(at + e.len()) {
            *b = CSHAKE_DOMAIN;
        }
        if let Some(b) = block.last_mut() {
            *b |= 0x80;
        }
        xor_block(&mut sp.state, &block);
        block.zeroize();

        sp.enter_squeezing();
        sp.squeeze(out);
        sp.resume_absorbing();
    }
}

impl<const RATE: usize> Zeroize for Kmac<RATE> {
    fn zeroize(&mut self) {
        self.sponge.zeroize();
    }
}

impl<const RATE: usize> ZeroizeOnDrop for Kmac<RATE> {}

impl<const RATE: usize> core::fmt::Debug for Kmac<RATE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One-shot KMAC at a `RATE`-byte rate, with the reference's finalize.
fn kmac<const RATE: usize>(key: &[u8], msg: &[u8], custom: &[u8], out: &mut [u8]) {
    let mut m = Kmac::<RATE>::new(key, custom);
    m.update(msg);
    m.finalize_into(out);
}

/// KMAC-256(K = `key`, X = `msg`, L = `8·out.len()`, S = `custom`) as the reference computes it
/// (finalize quirk included; equal to SP 800-185 KMAC256 unless `|prefix‖msg| mod 136` is
/// 133–135).
pub fn kmac256(key: &[u8], msg: &[u8], custom: &[u8], out: &mut [u8]) {
    kmac::<KMAC256_RATE>(key, msg, custom, out);
}

/// QSC's KMAC-512 (rate 72) with the reference's finalize quirk.
pub fn kmac512(key: &[u8], msg: &[u8], custom: &[u8], out: &mut [u8]) {
    kmac::<KMAC512_RATE>(key, msg, custom, out);
}
