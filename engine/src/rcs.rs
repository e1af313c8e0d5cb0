//! RCS-256 / RCS-512: Rijndael-256 in CTR mode authenticated by KMAC (FACTS §2).
//!
//! An [`RcsChannel`] is one long-lived AEAD state. Nothing is re-initialised between
//! packets: the KMAC sponge, the byte counter (starting at 1) and the CTR nonce carry from
//! one packet to the next, exactly as the reference does. For each packet:
//!
//! 1. associated data: absorb `ad || le32(len(ad))` (nothing when `ad` is empty);
//! 2. `counter += n`; absorb the 32-byte nonce as it was before this packet;
//! 3. encrypt (CTR, nonce advancing per 32-byte block); absorb the ciphertext;
//! 4. absorb `le64(32 + counter + 8)`; finalize KMAC with L = tag length (the reference's
//!    finalize quirk included, see [`crate::keccak`]); append the tag.
//!
//! Opening computes the tag first, compares it in constant time and decrypts only on a
//! match. A failed check has already advanced the MAC state and the counter, so the channel
//! is dead afterwards: every later call fails with [`RcsError::ChannelDead`].

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::backend::{Backend, BackendError};
use crate::keccak::{KMAC256_RATE, KMAC512_RATE, Kmac, LANES};
use crate::rijndael::{Rijndael256, RijndaelError};

/// Nonce (CTR counter block) length.
pub const NONCE_LEN: usize = 32;

/// Bytes encrypted before they are absorbed, so long packets stay cache-resident:
/// lcm(32, 72, 136), a whole number of CTR blocks and of KMAC blocks of either rate.
const CHUNK: usize = 4896;

/// The two RCS variants.
pub trait Variant: sealed::Sealed {
    /// Key length in bytes (32 or 64).
    const KEY_LEN: usize;
    /// Tag length in bytes (32 or 64).
    const TAG_LEN: usize;
    /// Rijndael-256 rounds (22 or 30).
    const ROUNDS: usize;
    /// Keccak rate of the cSHAKE key schedule and the KMAC (136 or 72): the MAC's own.
    const RATE: usize = <Self::Mac as sealed::MacOps>::RATE;
    /// The cSHAKE function name used by the key schedule.
    const NAME: [u8; 17];
    /// A short human name.
    const LABEL: &'static str;
    /// The KMAC state type.
    #[doc(hidden)]
    type Mac: sealed::MacOps;
}

mod sealed {
    pub trait Sealed {}
    pub trait MacOps: Sized {
        const RATE: usize;
        fn new(key: &[u8]) -> Self;
        fn update(&mut self, data: &[u8]);
        fn finalize_into(&mut self, out: &mut [u8]);
        fn cshake(x: &[u8], n: &[u8], s: &[u8], out: &mut [u8]);
        fn state_at_boundary(&mut self) -> Option<&mut [u64; super::LANES]>;
    }
}

impl<const R: usize> sealed::MacOps for Kmac<R> {
    const RATE: usize = R;
    fn new(key: &[u8]) -> Self {
        Kmac::<R>::new(key, &[])
    }
    fn update(&mut self, data: &[u8]) {
        Kmac::<R>::update(self, data);
    }
    fn finalize_into(&mut self, out: &mut [u8]) {
        Kmac::<R>::finalize_into(self, out);
    }
    fn cshake(x: &[u8], n: &[u8], s: &[u8], out: &mut [u8]) {
        if R == KMAC512_RATE {
            crate::keccak::cshake512(x, n, s, out);
        } else {
            crate::keccak::cshake256(x, n, s, out);
        }
    }
    fn state_at_boundary(&mut self) -> Option<&mut [u64; LANES]> {
        let sponge = &mut self.sponge;
        (sponge.pos == 0 && !sponge.is_squeezing()).then_some(&mut sponge.state)
    }
}

/// RCS-256: 32-byte key, 22 rounds, KMAC-256 (rate 136), 32-byte tag.
#[derive(Debug, Clone, Copy)]
pub enum Rcs256 {}
/// RCS-512: 64-byte key, 30 rounds, KMAC-512 (rate 72), 64-byte tag. DKTP uses this one.
#[derive(Debug, Clone, Copy)]
pub enum Rcs512 {}

impl sealed::Sealed for Rcs256 {}
impl sealed::Sealed for Rcs512 {}

impl Variant for Rcs256 {
    const KEY_LEN: usize = 32;
    const TAG_LEN: usize = 32;
    const ROUNDS: usize = 22;
    const NAME: [u8; 17] = *b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01RCSK256";
    const LABEL: &'static str = "RCS-256";
    type Mac = Kmac<KMAC256_RATE>;
}

impl Variant for Rcs512 {
    const KEY_LEN: usize = 64;
    const TAG_LEN: usize = 64;
    const ROUNDS: usize = 30;
    const NAME: [u8; 17] = *b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02RCSK512";
    const LABEL: &'static str = "RCS-512";
    type Mac = Kmac<KMAC512_RATE>;
}

/// What can go wrong with an RCS channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RcsError {
    /// The key is not [`Variant::KEY_LEN`] bytes.
    BadKeyLength(usize),
    /// A packet shorter than the tag, or a tag buffer of the wrong size.
    BadLength,
    /// The tag did not verify. Nothing was released; the channel is now dead.
    Authentication,
    /// An earlier authentication failure killed this channel.
    ChannelDead,
    /// The requested backend cannot run here.
    Backend(BackendError),
}

impl fmt::Display for RcsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Self::BadKeyLength(n) => {
                return write!(f, "RCS key of {n} bytes; RCS-256 takes 32, RCS-512 64");
            }
            Self::Backend(e) => return write!(f, "RCS backend: {e}"),
            Self::BadLength => "RCS packet shorter than its tag or tag buffer of the wrong size",
            Self::Authentication => "RCS authentication failed; the channel is closed, reconnect",
            Self::ChannelDead => "RCS channel is dead after an authentication failure; reconnect",
        };
        f.write_str(what)
    }
}

impl std::error::Error for RcsError {}

impl From<RijndaelError> for RcsError {
    fn from(e: RijndaelError) -> Self {
        match e {
            RijndaelError::Backend(b) => RcsError::Backend(b),
            RijndaelError::BadKeyLength(n) => RcsError::BadKeyLength(n),
        }
    }
}

/// Bytes the MAC absorbs after a packet's ciphertext: `le64(32 + counter + 8)` (step 4).
pub(crate) const MAC_TAIL_LEN: usize = 8;

/// Bytes the MAC absorbs before a packet's ciphertext with `ad_len` bytes of associated data:
/// `ad || le32(ad_len)` (nothing for no AD), then the nonce (steps 1 and 2).
pub(crate) const fn mac_head_len(ad_len: usize) -> usize {
    if ad_len == 0 {
        NONCE_LEN
    } else {
        ad_len + 4 + NONCE_LEN
    }
}

/// The message one packet's MAC absorbs besides its ciphertext, for a MAC run outside the
/// channel (the batch engine, [`crate::batch`], runs the permutations of many channels side by
/// side in SIMD lanes): `M = head || ciphertext || tail`, then KMAC's finalize with
/// L = [`Variant::TAG_LEN`] (its quirk included, see [`crate::keccak`]). `H` is
/// [`mac_head_len`] of the AD length. The head holds the nonce: wiped on drop.
#[derive(Clone)]
pub(crate) struct MacFrame<const H: usize> {
    /// `ad || le32(len(ad)) || nonce-before-the-packet`.
    pub(crate) head: [u8; H],
    /// `le64(32 + counter + 8)`, the counter already advanced by the packet.
    pub(crate) tail: [u8; MAC_TAIL_LEN],
}

impl<const H: usize> Drop for MacFrame<H> {
    fn drop(&mut self) {
        self.head.zeroize();
    }
}

/// What the MAC absorbs before the ciphertext, in order (no length for no AD).
fn head_parts<'p>(ad: &'p [u8], ad_len: &'p [u8; 4], nonce: &'p [u8]) -> [&'p [u8]; 3] {
    if ad.is_empty() {
        [&[], &[], nonce]
    } else {
        [ad, ad_len, nonce]
    }
}

/// The first `out.len()` bytes of a squeezed state (lane words, little-endian): the tag.
fn tag_bytes(state: &[u64], out: &mut [u8]) {
    for (d, w) in out.as_chunks_mut::<8>().0.iter_mut().zip(state) {
        *d = w.to_le_bytes();
    }
}

/// One long-lived RCS AEAD state (a DKTP transmit or receive channel).
pub struct RcsChannel<V: Variant> {
    cipher: Rijndael256,
    mac: V::Mac,
    nonce: [u8; NONCE_LEN],
    counter: u64,
    dead: bool,
}

impl<V: Variant> fmt::Debug for RcsChannel<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(V::LABEL)
            .field("backend", &self.cipher.backend())
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

impl<V: Variant> Drop for RcsChannel<V> {
    fn drop(&mut self) {
        self.nonce.zeroize();
        self.counter.zeroize();
    }
}

/// The RCS-512 channel DKTP uses.
pub type Rcs512Channel = RcsChannel<Rcs512>;
/// The RCS-256 channel.
pub type Rcs256Channel = RcsChannel<Rcs256>;

impl<V: Variant> RcsChannel<V> {
    /// Keys a channel on the backend in force ([`Backend::selected`]).
    pub fn new(key: &[u8], nonce: &[u8; NONCE_LEN], info: &[u8]) -> Result<Self, RcsError> {
        let backend = Backend::selected().map_err(RcsError::Backend)?;
        Self::with_backend(backend, key, nonce, info)
    }

    /// Keys a channel on a given backend (an unavailable one is an error).
    pub fn with_backend(
        backend: Backend,
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        info: &[u8],
    ) -> Result<Self, RcsError> {
        if key.len() != V::KEY_LEN {
            return Err(RcsError::BadKeyLength(key.len()));
        }
        backend.require().map_err(RcsError::Backend)?;
        // Key schedule: whole rate blocks of cSHAKE(key, NAME, info); the round keys are
        // the first (rounds+1)*32 bytes, the MAC key the start of the *next* block.
        let rk_len = (V::ROUNDS + 1) * 32;
        let blocks = rk_len.div_ceil(V::RATE);
        let mut stream = zeroize::Zeroizing::new(vec![0u8; (blocks + 1) * V::RATE]);
        <V::Mac as sealed::MacOps>::cshake(key, &V::NAME, info, &mut stream);
        let (round_keys, rest) = stream.split_at(blocks * V::RATE);
        let cipher = Rijndael256::new(backend, round_keys.get(..rk_len).unwrap_or(round_keys))?;
        let mac = <V::Mac as sealed::MacOps>::new(rest.get(..V::KEY_LEN).unwrap_or(rest));
        Ok(Self {
            cipher,
            mac,
            nonce: *nonce,
            counter: 1,
            dead: false,
        })
    }

    /// The backend this channel runs on.
    pub fn backend(&self) -> Backend {
        self.cipher.backend()
    }

    /// The current CTR nonce (advanced by every packet).
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        self.nonce
    }

    /// The running byte counter that enters every tag.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// Whether an authentication failure killed the channel.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// What every packet starts with: a dead channel or a tag of the wrong size is refused
    /// before anything moves; then `counter += n` (the packet's ciphertext length).
    fn start(&mut self, n: usize, tag_len: usize) -> Result<(), RcsError> {
        if self.dead {
            return Err(RcsError::ChannelDead);
        }
        if tag_len != V::TAG_LEN {
            return Err(RcsError::BadLength);
        }
        self.counter = self.counter.wrapping_add(n as u64);
        Ok(())
    }

    /// `le64(32 + counter + 8)`: what the MAC absorbs after the ciphertext.
    fn length_block(&self) -> [u8; MAC_TAIL_LEN] {
        32u64
            .wrapping_add(self.counter)
            .wrapping_add(8)
            .to_le_bytes()
    }

    /// Absorbs what comes before the ciphertext.
    fn absorb_head(&mut self, ad: &[u8]) {
        use sealed::MacOps;
        let ad_len = (ad.len() as u32).to_le_bytes();
        for part in head_parts(ad, &ad_len, &self.nonce) {
            self.mac.update(part);
        }
    }

    /// Absorbs what comes after the ciphertext and squeezes the tag.
    fn squeeze_tag(&mut self, tag: &mut [u8]) {
        use sealed::MacOps;
        let tail = self.length_block();
        self.mac.update(&tail);
        self.mac.finalize_into(tag);
    }

    /// The end of every open: compares the tag the MAC computed (`want`, wiped here) with the
    /// received one in constant time and decrypts `buf` only on a match. A mismatch kills
    /// the channel: its MAC state and counter have already moved.
    fn release(&mut self, want: &mut [u8], buf: &mut [u8], tag: &[u8]) -> Result<(), RcsError> {
        let ok: bool = want.ct_eq(tag).into();
        want.zeroize();
        if !ok {
            self.dead = true;
            return Err(RcsError::Authentication);
        }
        self.cipher.ctr_xor(&mut self.nonce, buf);
        Ok(())
    }

    /// Encrypts `buf` in place and writes the tag (`V::TAG_LEN` bytes) into `tag`.
    pub fn seal_in_place(
        &mut self,
        ad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), RcsError> {
        use sealed::MacOps;
        self.start(buf.len(), tag.len())?;
        self.absorb_head(ad);
        for chunk in buf.chunks_mut(CHUNK) {
            self.cipher.ctr_xor(&mut self.nonce, chunk);
            self.mac.update(chunk);
        }
        #[cfg(feature = "inject-slowdown")]
        {
            // The regression-gate experiment (bench/README.md): one wasted permutation.
            let mut waste = [self.counter; crate::keccak::LANES];
            crate::keccak::f1600(&mut waste);
            core::hint::black_box(&waste);
        }
        self.squeeze_tag(tag);
        Ok(())
    }

    /// Encrypts `pt` and appends `ciphertext || tag` to `out`.
    pub fn seal(&mut self, ad: &[u8], pt: &[u8], out: &mut Vec<u8>) -> Result<(), RcsError> {
        let start = out.len();
        out.extend_from_slice(pt);
        out.resize(start + pt.len() + V::TAG_LEN, 0);
        let (body, tag) = out[start..].split_at_mut(pt.len());
        let r = self.seal_in_place(ad, body, tag);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// Verifies `tag` over `buf` (ciphertext) and, only if it matches, decrypts in place.
    /// On failure `buf` is unchanged and the channel is dead.
    pub fn open_in_place(&mut self, ad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), RcsError> {
        use sealed::MacOps;
        self.start(buf.len(), tag.len())?;
        self.absorb_head(ad);
        self.mac.update(buf);
        let mut want = [0u8; 64];
        let want = &mut want[..V::TAG_LEN];
        self.squeeze_tag(want);
        self.release(want, buf, tag)
    }

    /// Opens `ciphertext || tag`, appending the plaintext to `out` only on success.
    pub fn open(&mut self, ad: &[u8], packet: &[u8], out: &mut Vec<u8>) -> Result<(), RcsError> {
        let Some(body_len) = packet.len().checked_sub(V::TAG_LEN) else {
            return Err(RcsError::BadLength);
        };
        let (body, tag) = packet.split_at(body_len);
        let start = out.len();
        out.extend_from_slice(body);
        let r = self.open_in_place(ad, &mut out[start..], tag);
        if r.is_err() {
            out[start..].zeroize();
            out.truncate(start);
        }
        r
    }
}

/// The split seal and open, for a MAC run outside the channel ([`crate::batch`]). The channel
/// does everything but the MAC's permutations over the packet, in the scalar order:
///
/// - seal: [`prepare_seal`](Self::prepare_seal) (checks, counter, CTR in place) → the MAC
///   absorbs `frame.head || ciphertext || frame.tail` and finalizes →
///   [`finish_seal`](Self::finish_seal) writes the tag;
/// - open: [`prepare_open`](Self::prepare_open) (checks, counter) → the MAC as above over the
///   received ciphertext → [`finish_open`](Self::finish_open) (constant-time compare, CTR
///   only on a match, a dead channel on a mismatch).
///
/// Whoever runs the MAC does it on [`mac_state`](Self::mac_state), or on a copy it writes back
/// there before the channel's next packet.
impl<V: Variant> RcsChannel<V> {
    /// The KMAC permutation state, for a MAC run elsewhere; `None` unless the sponge sits on a
    /// block boundary with nothing buffered, as it always does after keying and after every
    /// packet (the split path needs it, the scalar one does not).
    pub(crate) fn mac_state(&mut self) -> Option<&mut [u64; LANES]> {
        <V::Mac as sealed::MacOps>::state_at_boundary(&mut self.mac)
    }

    /// The frame of the packet starting now: refuses as the scalar calls do, then advances
    /// the counter; the head holds the nonce as it was before the packet. `BadLength` if `H`
    /// is not [`mac_head_len`] of `ad`.
    fn frame<const H: usize>(
        &mut self,
        ad: &[u8],
        n: usize,
        tag_len: usize,
    ) -> Result<MacFrame<H>, RcsError> {
        if mac_head_len(ad.len()) != H {
            return Err(RcsError::BadLength);
        }
        self.start(n, tag_len)?;
        let ad_len = (ad.len() as u32).to_le_bytes();
        let mut head = [0u8; H];
        let mut rest = &mut head[..];
        for part in head_parts(ad, &ad_len, &self.nonce) {
            let k = part.len().min(rest.len());
            let (dst, tail) = core::mem::take(&mut rest).split_at_mut(k);
            dst.copy_from_slice(part.get(..k).unwrap_or_default());
            rest = tail;
        }
        Ok(MacFrame {
            head,
            tail: self.length_block(),
        })
    }

    /// Seal, first half: encrypts `buf` in place and returns what the MAC absorbs around it
    /// (`tag_len` is the size of the tag [`finish_seal`](Self::finish_seal) will write).
    pub(crate) fn prepare_seal<const H: usize>(
        &mut self,
        ad: &[u8],
        buf: &mut [u8],
        tag_len: usize,
    ) -> Result<MacFrame<H>, RcsError> {
        let frame = self.frame(ad, buf.len(), tag_len)?;
        self.cipher.ctr_xor(&mut self.nonce, buf);
        Ok(frame)
    }

    /// Seal, second half: `mac` is the KMAC state after the packet's finalize (lane words);
    /// writes its first `V::TAG_LEN` bytes into `tag`.
    pub(crate) fn finish_seal(&self, mac: &[u64], tag: &mut [u8]) -> Result<(), RcsError> {
        if tag.len() != V::TAG_LEN {
            return Err(RcsError::BadLength);
        }
        tag_bytes(mac, tag);
        Ok(())
    }

    /// Open, first half: returns what the MAC absorbs around the ciphertext `buf`.
    pub(crate) fn prepare_open<const H: usize>(
        &mut self,
        ad: &[u8],
        buf: &[u8],
        tag: &[u8],
    ) -> Result<MacFrame<H>, RcsError> {
        self.frame(ad, buf.len(), tag.len())
    }

    /// Open, second half: `mac` as for [`finish_seal`](Self::finish_seal); decrypts `buf` in
    /// place only if its tag equals `tag`, else the channel is dead, as
    /// [`open_in_place`](Self::open_in_place).
    pub(crate) fn finish_open(
        &mut self,
        mac: &[u64],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), RcsError> {
        let mut want = [0u8; 64];
        let want = &mut want[..V::TAG_LEN];
        tag_bytes(mac, want);
        self.release(want, buf, tag)
    }
}
