//! SHA3-256/512 (FIPS 202 §6.1) and the SHAKE XOFs (FIPS 202 §6.2, plus QSC's rate-72
//! SHAKE-512).

use super::sponge::Sponge;
use super::{SHA3_256_RATE, SHA3_512_RATE, SHA3_DOMAIN, SHAKE_DOMAIN};
use super::{SHAKE128_RATE, SHAKE256_RATE, SHAKE512_RATE};

macro_rules! sha3_hasher {
    ($name:ident, $oneshot:ident, $rate:expr, $len:expr, $doc:literal) => {
        #[doc = concat!("Incremental ", $doc, ".")]
        #[derive(Clone, Debug, Default)]
        pub struct $name(Sponge<{ $rate }>);

        impl $name {
            #[doc = concat!("A fresh ", $doc, " computation.")]
            pub const fn new() -> Self {
                Self(Sponge::new())
            }

            /// Absorbs more message bytes.
            pub fn update(&mut self, data: &[u8]) {
                self.0.absorb(data);
            }

            /// Pads and returns the digest.
            pub fn finalize(mut self) -> [u8; $len] {
                let mut out = [0u8; $len];
                self.0.finalize(SHA3_DOMAIN);
                self.0.squeeze(&mut out);
                out
            }
        }

        #[doc = concat!("One-shot ", $doc, ".")]
        pub fn $oneshot(data: &[u8]) -> [u8; $len] {
            let mut h = $name::new();
            h.update(data);
            h.finalize()
        }
    };
}

sha3_hasher!(Sha3_256, sha3_256, SHA3_256_RATE, 32, "SHA3-256");
sha3_hasher!(Sha3_512, sha3_512, SHA3_512_RATE, 64, "SHA3-512");

/// An incremental SHAKE XOF with a `RATE`-byte rate: absorb with [`update`](Self::update), then
/// [`squeeze`](Self::squeeze) as much output as wanted (the first squeeze pads).
#[derive(Clone, Debug, Default)]
pub struct Shake<const RATE: usize> {
    sponge: Sponge<RATE>,
    padded: bool,
}

/// SHAKE-128 (rate 168).
pub type Shake128 = Shake<SHAKE128_RATE>;
/// SHAKE-256 (rate 136).
pub type Shake256 = Shake<SHAKE256_RATE>;
/// QSC's SHAKE-512 (rate 72, domain 0x1F; not a FIPS 202 function).
pub type Shake512 = Shake<SHAKE512_RATE>;

impl<const RATE: usize> Shake<RATE> {
    /// A fresh XOF.
    pub const fn new() -> Self {
        Self {
            sponge: Sponge::new(),
            padded: false,
        }
    }

    /// Absorbs more input. Input after the first squeeze restarts absorption on the current
    /// state (a duplex-style continuation, not a SHAKE of the concatenation).
    pub fn update(&mut self, data: &[u8]) {
        self.padded = false;
        self.sponge.absorb(data);
    }

    /// Squeezes the next `out.len()` output bytes.
    pub fn squeeze(&mut self, out: &mut [u8]) {
        if !self.padded {
            self.sponge.finalize(SHAKE_DOMAIN);
            self.padded = true;
        }
        self.sponge.squeeze(out);
    }
}

/// One-shot SHAKE with a `RATE`-byte rate.
fn shake<const RATE: usize>(data: &[u8], out: &mut [u8]) {
    let mut x = Shake::<RATE>::new();
    x.update(data);
    x.squeeze(out);
}

/// SHAKE-128 of `data`, filling `out`.
pub fn shake128(data: &[u8], out: &mut [u8]) {
    shake::<SHAKE128_RATE>(data, out);
}

/// SHAKE-256 of `data`, filling `out`.
pub fn shake256(data: &[u8], out: &mut [u8]) {
    shake::<SHAKE256_RATE>(data, out);
}

/// QSC's SHAKE-512 of `data` (rate 72, domain 0x1F), filling `out`.
pub fn shake512(data: &[u8], out: &mut [u8]) {
    shake::<SHAKE512_RATE>(data, out);
}
