//! The Keccak sponge over a byte rate: absorb incrementally, pad with a domain byte, squeeze
//! incrementally (FIPS 202 §4 with the byte-oriented padding of §B.2).

use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{KECCAK_DOMAIN, LANES, f1600};

/// A Keccak-f\[1600\] sponge absorbing and squeezing `RATE` bytes per permutation.
///
/// `RATE` must be a multiple of 8 below 200 (checked at compile time). The state and buffer are
/// wiped on drop.
///
/// Absorbing after squeezing is allowed and continues on the current state with an empty
/// buffer (a duplex-style continuation, as the C reference's streaming KMAC does); absorbing
/// or squeezing never panics.
#[derive(Clone)]
pub struct Sponge<const RATE: usize> {
    /// The permutation state, lane `x + 5y`, little-endian.
    pub(crate) state: [u64; LANES],
    /// Absorbing: the not yet permuted tail `buf[..pos]`. Squeezing: the current output block.
    pub(crate) buf: [u8; RATE],
    /// Absorbing: buffered bytes (always `< RATE`). Squeezing: bytes of `buf` already output.
    pub(crate) pos: usize,
    /// Whether the sponge has been padded and is producing output.
    squeezing: bool,
}

/// XORs `block` (at most 200 bytes, a multiple of 8 long) into the state, little-endian.
#[inline(always)]
pub(crate) fn xor_block(state: &mut [u64; LANES], block: &[u8]) {
    for (lane, word) in state.iter_mut().zip(block.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        *lane ^= u64::from_le_bytes(w);
    }
}

impl<const RATE: usize> Sponge<RATE> {
    /// Compile-time check of the rate.
    const RATE_OK: () = assert!(
        RATE > 0 && RATE < 8 * LANES && RATE.is_multiple_of(8),
        "Keccak rate must be a multiple of 8 below 200"
    );

    /// An empty sponge (all-zero state).
    pub const fn new() -> Self {
        let () = Self::RATE_OK;
        Self {
            state: [0; LANES],
            buf: [0; RATE],
            pos: 0,
            squeezing: false,
        }
    }

    /// The rate in bytes.
    pub const fn rate(&self) -> usize {
        RATE
    }

    /// Absorbs `data`. After squeezing, continues on the current state with an empty buffer.
    pub fn absorb(&mut self, mut data: &[u8]) {
        if self.squeezing {
            self.resume_absorbing();
        }
        if self.pos > 0 {
            let need = RATE - self.pos;
            let take = need.min(data.len());
            let (head, rest) = data.split_at(take);
            if let Some(dst) = self.buf.get_mut(self.pos..self.pos + take) {
                dst.copy_from_slice(head);
            }
            self.pos += take;
            data = rest;
            if self.pos < RATE {
                return;
            }
            xor_block(&mut self.state, &self.buf);
            f1600(&mut self.state);
            self.pos = 0;
        }
        let mut blocks = data.chunks_exact(RATE);
        for block in &mut blocks {
            xor_block(&mut self.state, block);
            f1600(&mut self.state);
        }
        let tail = blocks.remainder();
        if let Some(dst) = self.buf.get_mut(..tail.len()) {
            dst.copy_from_slice(tail);
        }
        self.pos = tail.len();
    }

    /// Pads the buffered tail with `domain` and the final `0x80` bit (pad10*1) and XORs it in;
    /// the next [`squeeze`](Self::squeeze) permutes and outputs. After squeezing, first resumes
    /// absorbing (so the padded block is empty).
    pub fn finalize(&mut self, domain: u8) {
        if self.squeezing {
            self.resume_absorbing();
        }
        let mut block = [0u8; RATE];
        if let (Some(dst), Some(src)) = (block.get_mut(..self.pos), self.buf.get(..self.pos)) {
            dst.copy_from_slice(src);
        }
        if let Some(b) = block.get_mut(self.pos) {
            *b ^= domain;
        }
        if let Some(b) = block.last_mut() {
            *b ^= 0x80;
        }
        xor_block(&mut self.state, &block);
        block.zeroize();
        self.enter_squeezing();
    }

    /// Squeezes `out.len()` bytes, continuing where the previous call stopped. A sponge that
    /// was not finalized is first padded with plain Keccak padding ([`KECCAK_DOMAIN`]).
    pub fn squeeze(&mut self, mut out: &mut [u8]) {
        if !self.squeezing {
            self.finalize(KECCAK_DOMAIN);
        }
        while !out.is_empty() {
            if self.pos >= RATE {
                f1600(&mut self.state);
                for (dst, lane) in self.buf.chunks_exact_mut(8).zip(self.state.iter()) {
                    dst.copy_from_slice(&lane.to_le_bytes());
                }
                self.pos = 0;
            }
            let n = (RATE - self.pos).min(out.len());
            let (head, rest) = out.split_at_mut(n);
            if let Some(src) = self.buf.get(self.pos..self.pos + n) {
                head.copy_from_slice(src);
            }
            self.pos += n;
            out = rest;
        }
    }

    /// Marks the state as padded: the next squeeze permutes first.
    pub(crate) fn enter_squeezing(&mut self) {
        self.buf.zeroize();
        self.pos = RATE;
        self.squeezing = true;
    }

    /// Continues absorbing on the current state with an empty buffer.
    pub(crate) fn resume_absorbing(&mut self) {
        self.buf.zeroize();
        self.pos = 0;
        self.squeezing = false;
    }

    /// Whether the sponge is squeezing.
    pub fn is_squeezing(&self) -> bool {
        self.squeezing
    }

    /// The permutation state (lane `x + 5y`).
    pub fn state(&self) -> &[u64; LANES] {
        &self.state
    }

    /// For the batched absorber: if `input` completes at least one block, XORs that block into
    /// the state (via the buffer when bytes are pending), advances `input` past it and returns
    /// true; the caller must then permute the state before anything else touches it. Otherwise
    /// changes nothing. Only valid while absorbing.
    pub(crate) fn stage_block(&mut self, input: &mut &[u8]) -> bool {
        if self.squeezing {
            self.resume_absorbing();
        }
        let data = *input;
        if self.pos > 0 {
            let need = RATE - self.pos;
            let (Some(head), Some(rest)) = (data.get(..need), data.get(need..)) else {
                return false;
            };
            if let Some(dst) = self.buf.get_mut(self.pos..) {
                dst.copy_from_slice(head);
            }
            xor_block(&mut self.state, &self.buf);
            self.pos = 0;
            *input = rest;
            true
        } else {
            let (Some(block), Some(rest)) = (data.get(..RATE), data.get(RATE..)) else {
                return false;
            };
            xor_block(&mut self.state, block);
            *input = rest;
            true
        }
    }
}

impl<const RATE: usize> Default for Sponge<RATE> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const RATE: usize> Zeroize for Sponge<RATE> {
    fn zeroize(&mut self) {
        self.state.zeroize();
        self.buf.zeroize();
        self.pos = 0;
        self.squeezing = false;
    }
}

impl<const RATE: usize> Drop for Sponge<RATE> {
    fn drop(&mut self) {
        self.zeroize();
    }
}

impl<const RATE: usize> ZeroizeOnDrop for Sponge<RATE> {}

impl<const RATE: usize> core::fmt::Debug for Sponge<RATE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sponge")
            .field("rate", &RATE)
            .field("state", &"<redacted>")
            .finish()
    }
}
