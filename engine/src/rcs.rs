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
use crate::keccak::Kmac;
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
    /// Keccak rate of the cSHAKE key schedule and the KMAC (136 or 72).
    const RATE: usize;
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
        fn new(key: &[u8]) -> Self;
        fn update(&mut self, data: &[u8]);
        fn finalize_into(&mut self, out: &mut [u8]);
        fn cshake(x: &[u8], n: &[u8], s: &[u8], out: &mut [u8]);
    }
}

impl<const R: usize> sealed::MacOps for Kmac<R> {
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
        if R == 72 {
            crate::keccak::cshake512(x, n, s, out);
        } else {
            crate::keccak::cshake256(x, n, s, out);
        }
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
    const RATE: usize = 136;
    const NAME: [u8; 17] = *b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01RCSK256";
    const LABEL: &'static str = "RCS-256";
    type Mac = Kmac<136>;
}

impl Variant for Rcs512 {
    const KEY_LEN: usize = 64;
    const TAG_LEN: usize = 64;
    const ROUNDS: usize = 30;
    const RATE: usize = 72;
    const NAME: [u8; 17] = *b"\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02RCSK512";
    const LABEL: &'static str = "RCS-512";
    type Mac = Kmac<72>;
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
        match self {
            Self::BadKeyLength(n) => {
                write!(f, "RCS key of {n} bytes; RCS-256 takes 32, RCS-512 64")
            }
            Self::BadLength => {
                f.write_str("RCS packet shorter than its tag or tag buffer of the wrong size")
            }
            Self::Authentication => {
                f.write_str("RCS authentication failed; the channel is closed, reconnect")
            }
            Self::ChannelDead => {
                f.write_str("RCS channel is dead after an authentication failure; reconnect")
            }
            Self::Backend(e) => write!(f, "RCS backend: {e}"),
        }
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

/// A channel's state split into its parts, for the batch engine ([`crate::batch`]), which runs
/// the per-packet steps above itself so that the MAC permutations of many channels share SIMD
/// lanes. Whoever holds it must keep the steps and their order exactly as
/// [`RcsChannel::seal_in_place`] / [`RcsChannel::open_in_place`] do.
pub(crate) struct Parts<'a, V: Variant> {
    /// The keyed block cipher (CTR).
    pub(crate) cipher: &'a Rijndael256,
    /// The long-lived KMAC state.
    pub(crate) mac: &'a mut V::Mac,
    /// The CTR nonce as it stands before the next packet.
    pub(crate) nonce: &'a mut [u8; NONCE_LEN],
    /// The running byte counter.
    pub(crate) counter: &'a mut u64,
    /// Set after an authentication failure.
    pub(crate) dead: &'a mut bool,
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

    /// The channel's parts, for the batch engine's split seal and open.
    pub(crate) fn parts(&mut self) -> Parts<'_, V> {
        Parts {
            cipher: &self.cipher,
            mac: &mut self.mac,
            nonce: &mut self.nonce,
            counter: &mut self.counter,
            dead: &mut self.dead,
        }
    }

    fn absorb_ad(&mut self, ad: &[u8]) {
        use sealed::MacOps;
        if !ad.is_empty() {
            self.mac.update(ad);
            self.mac.update(&(ad.len() as u32).to_le_bytes());
        }
    }

    fn finish_tag(&mut self, tag: &mut [u8]) {
        use sealed::MacOps;
        let total = 32u64.wrapping_add(self.counter).wrapping_add(8);
        self.mac.update(&total.to_le_bytes());
        self.mac.finalize_into(tag);
    }

    /// Encrypts `buf` in place and writes the tag (`V::TAG_LEN` bytes) into `tag`.
    pub fn seal_in_place(
        &mut self,
        ad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), RcsError> {
        use sealed::MacOps;
        if self.dead {
            return Err(RcsError::ChannelDead);
        }
        if tag.len() != V::TAG_LEN {
            return Err(RcsError::BadLength);
        }
        self.absorb_ad(ad);
        self.counter = self.counter.wrapping_add(buf.len() as u64);
        self.mac.update(&self.nonce);
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
        self.finish_tag(tag);
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
        if self.dead {
            return Err(RcsError::ChannelDead);
        }
        if tag.len() != V::TAG_LEN {
            return Err(RcsError::BadLength);
        }
        self.absorb_ad(ad);
        self.counter = self.counter.wrapping_add(buf.len() as u64);
        self.mac.update(&self.nonce);
        self.mac.update(buf);
        let mut want = [0u8; 64];
        let want = &mut want[..V::TAG_LEN];
        self.finish_tag(want);
        let ok: bool = want.ct_eq(tag).into();
        want.zeroize();
        if !ok {
            self.dead = true;
            return Err(RcsError::Authentication);
        }
        self.cipher.ctr_xor(&mut self.nonce, buf);
        Ok(())
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
