//! cSHAKE (SP 800-185 §3) at rate 136 (cSHAKE-256) and QSC's rate 72 (cSHAKE-512).
//!
//! With an empty function name N and an empty customization S, cSHAKE is plain SHAKE of the
//! same rate (domain 0x1F): SP 800-185 says so for cSHAKE-256 and the reference's
//! `qsc_cshake512_compute` does the same at rate 72 (FACTS §1). The DKTP key schedule relies on
//! this: its pss updates pass an empty N.

use super::encode::absorb_bytepad;
use super::sponge::Sponge;
use super::{CSHAKE_DOMAIN, KMAC256_RATE, KMAC512_RATE, SHAKE_DOMAIN};

/// An incremental cSHAKE with a `RATE`-byte rate: [`new`](Self::new) with N and S, absorb X
/// with [`update`](Self::update), then [`squeeze`](Self::squeeze) (the first squeeze pads).
#[derive(Clone, Debug)]
pub struct Cshake<const RATE: usize> {
    sponge: Sponge<RATE>,
    domain: u8,
    padded: bool,
}

/// cSHAKE-256 (rate 136).
pub type Cshake256 = Cshake<KMAC256_RATE>;
/// QSC's cSHAKE-512 (rate 72).
pub type Cshake512 = Cshake<KMAC512_RATE>;

impl<const RATE: usize> Cshake<RATE> {
    /// Starts cSHAKE with function name `n` and customization `s` (both empty: plain SHAKE).
    pub fn new(n: &[u8], s: &[u8]) -> Self {
        let mut sponge = Sponge::new();
        let domain = if n.is_empty() && s.is_empty() {
            SHAKE_DOMAIN
        } else {
            absorb_bytepad(&mut sponge, &[n, s]);
            CSHAKE_DOMAIN
        };
        Self {
            sponge,
            domain,
            padded: false,
        }
    }

    /// Absorbs more of X. Input after a squeeze continues on the current state
    /// (duplex-style), it does not restart the function.
    pub fn update(&mut self, x: &[u8]) {
        self.padded = false;
        self.sponge.absorb(x);
    }

    /// Squeezes the next `out.len()` output bytes.
    pub fn squeeze(&mut self, out: &mut [u8]) {
        if !self.padded {
            self.sponge.finalize(self.domain);
            self.padded = true;
        }
        self.sponge.squeeze(out);
    }
}

/// One-shot cSHAKE at a `RATE`-byte rate.
fn cshake<const RATE: usize>(x: &[u8], n: &[u8], s: &[u8], out: &mut [u8]) {
    let mut c = Cshake::<RATE>::new(n, s);
    c.update(x);
    c.squeeze(out);
}

/// cSHAKE-256(X = `x`, N = `n`, S = `s`), filling `out`.
pub fn cshake256(x: &[u8], n: &[u8], s: &[u8], out: &mut [u8]) {
    cshake::<KMAC256_RATE>(x, n, s, out);
}

/// QSC's cSHAKE-512(X = `x`, N = `n`, S = `s`) at rate 72, filling `out`; with `n` and `s` both
/// empty this is [`shake512`](super::shake512).
pub fn cshake512(x: &[u8], n: &[u8], s: &[u8], out: &mut [u8]) {
    cshake::<KMAC512_RATE>(x, n, s, out);
}
