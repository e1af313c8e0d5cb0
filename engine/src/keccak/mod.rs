//! The Keccak family, QSC flavour (FACTS §1): Keccak-f\[1600\], SHA3, SHAKE, cSHAKE, KMAC and
//! multi-lane permutations for running many sponges at once.
//!
//! | module | what it is |
//! |---|---|
//! | [`f1600`] | the permutation (RustCrypto `keccak`, or the unrolled round text with BMI2; chosen once per process) |
//! | `sponge` | [`Sponge`]: incremental absorb / pad / squeeze over a byte rate |
//! | `sha3` | SHA3-256/512 (one-shot and incremental), SHAKE-128/256 and QSC's rate-72 SHAKE-512 |
//! | `cshake` | cSHAKE-256 and QSC's rate-72 cSHAKE-512 (SP 800-185 encodings) |
//! | `kmac` | [`Kmac`] with the reference's finalize quirk and its streaming (never re-keyed) use by RCS |
//! | [`lanes`] | 4 / 8 permutations side by side (portable, AVX2, AVX-512) and batched KMAC absorption |
//!
//! The "512" members of the XOF family are not SHA-3 standard functions: they are the same
//! constructions with a 72-byte rate (capacity 1024), as the C reference defines them.

#[macro_use]
mod rounds;

mod cshake;
mod encode;
mod kmac;
pub mod lanes;
#[cfg(target_arch = "x86_64")]
mod scalar;
mod sha3;
mod sponge;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

pub use cshake::{Cshake, Cshake256, Cshake512, cshake256, cshake512};
pub(crate) use encode::{Encoded, bit_len, right_encode};
pub use kmac::{Kmac, Kmac256, Kmac512, kmac256, kmac512};
pub use sha3::{Sha3_256, Sha3_512, Shake, Shake128, Shake256, Shake512};
pub use sha3::{sha3_256, sha3_512, shake128, shake256, shake512};
pub use sponge::Sponge;

/// Rate in bytes of SHA3-256 (and SHAKE-256, cSHAKE-256, KMAC-256).
pub const SHA3_256_RATE: usize = 136;
/// Rate in bytes of SHA3-512 (and QSC's SHAKE-512, cSHAKE-512, KMAC-512).
pub const SHA3_512_RATE: usize = 72;
/// Rate in bytes of SHAKE-128.
pub const SHAKE128_RATE: usize = 168;
/// Rate in bytes of SHAKE-256.
pub const SHAKE256_RATE: usize = 136;
/// Rate in bytes of QSC's SHAKE-512 (non-standard, capacity 1024).
pub const SHAKE512_RATE: usize = 72;
/// Rate in bytes of cSHAKE-256 / KMAC-256.
pub const KMAC256_RATE: usize = 136;
/// Rate in bytes of QSC's cSHAKE-512 / KMAC-512.
pub const KMAC512_RATE: usize = 72;

/// Domain-separation byte of SHA3-* (FIPS 202 `01` suffix, then the first pad bit).
pub const SHA3_DOMAIN: u8 = 0x06;
/// Domain-separation byte of SHAKE-* (FIPS 202 `1111` suffix, then the first pad bit).
pub const SHAKE_DOMAIN: u8 = 0x1F;
/// Domain-separation byte of cSHAKE-* and KMAC-* (SP 800-185 `00` suffix).
pub const CSHAKE_DOMAIN: u8 = 0x04;
/// Plain Keccak padding (no suffix bits): what an un-finalized [`Sponge`] uses when squeezed.
pub const KECCAK_DOMAIN: u8 = 0x01;

/// Number of 64-bit lanes in the Keccak-f\[1600\] state.
pub const LANES: usize = 25;

/// The Keccak-f\[1600\] permutation (24 rounds) on a state of 25 little-endian lanes
/// (lane `x + 5y`).
///
/// The implementation is chosen once per process, so the hot path is one indirect call:
/// on x86-64 CPUs with BMI1 and BMI2 (unless `DKTP_BACKEND=portable`), the shared unrolled
/// round text compiled for `andn`/`rorx`, about 1.15x faster than the alternative here; otherwise
/// the RustCrypto `keccak` crate's permutation ([`f1600_portable`]). [`f1600_impl`] names the
/// choice.
#[inline]
pub fn f1600(state: &mut [u64; LANES]) {
    (permutation().0)(state);
}

/// The RustCrypto `keccak` crate's permutation, whatever [`f1600`] selected: the reference the
/// faster implementations are tested against.
pub fn f1600_portable(state: &mut [u64; LANES]) {
    (crate_permutation())(state);
}

/// The name of the implementation behind [`f1600`]: `"keccak-crate"` or `"unrolled-bmi2"`.
pub fn f1600_impl() -> &'static str {
    permutation().1
}

/// The selected permutation and its name, looked up once.
fn permutation() -> (keccak::Fn1600, &'static str) {
    static F1600: OnceLock<(keccak::Fn1600, &'static str)> = OnceLock::new();
    *F1600.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if !matches!(
            crate::Backend::selected(),
            Ok(crate::Backend::Portable) | Err(_)
        ) && let Some(f) = scalar::select()
        {
            return (f, "unrolled-bmi2");
        }
        (crate_permutation(), "keccak-crate")
    })
}

/// The `keccak` crate's f1600 for this CPU, looked up once.
fn crate_permutation() -> keccak::Fn1600 {
    static F1600: OnceLock<keccak::Fn1600> = OnceLock::new();
    *F1600.get_or_init(|| {
        // Start from a correct (if slower) choice so no failure path is needed.
        let mut chosen: keccak::Fn1600 = f1600_via_dispatch;
        keccak::Keccak::new().with_f1600(|f| chosen = f);
        chosen
    })
}

/// Runs the permutation through the `keccak` crate's per-call dispatch.
fn f1600_via_dispatch(state: &mut [u64; LANES]) {
    keccak::Keccak::new().with_f1600(|f| f(state));
}

/// The Keccak-f\[1600\] round constants (FIPS 202 §3.2.5), for the unrolled round text.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const RC: [u64; 24] = [
    0x0000_0000_0000_0001,
    0x0000_0000_0000_8082,
    0x8000_0000_0000_808A,
    0x8000_0000_8000_8000,
    0x0000_0000_0000_808B,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8009,
    0x0000_0000_0000_008A,
    0x0000_0000_0000_0088,
    0x0000_0000_8000_8009,
    0x0000_0000_8000_000A,
    0x0000_0000_8000_808B,
    0x8000_0000_0000_008B,
    0x8000_0000_0000_8089,
    0x8000_0000_0000_8003,
    0x8000_0000_0000_8002,
    0x8000_0000_0000_0080,
    0x0000_0000_0000_800A,
    0x8000_0000_8000_000A,
    0x8000_0000_8000_8081,
    0x8000_0000_0000_8080,
    0x0000_0000_8000_0001,
    0x8000_0000_8000_8008,
];
