//! Secret byte containers: each zeroizes on drop and prints as `<redacted>`.
//!
//! [`SecretBytes`] holds any secret of run-time length, [`SharedSecret`] a KEM's 32-byte
//! output, and [`SecretKey`] a serialized secret key tagged with the parameter set it
//! belongs to ([`KemSecretKey`](super::KemSecretKey), [`SigningKey`](super::SigningKey)).

use super::PqError;
use core::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Shared-secret length of every DKTP KEM.
pub const SHARED_SECRET_LEN: usize = 32;

/// Secret bytes: zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }
    /// Copies secret bytes.
    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretBytes(Zeroizing::new(bytes.to_vec()))
    }
    /// The secret bytes (handle with care).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

/// A 32-byte KEM shared secret.
#[derive(Clone, PartialEq, Eq, Zeroize, zeroize::ZeroizeOnDrop)]
pub struct SharedSecret([u8; SHARED_SECRET_LEN]);

impl SharedSecret {
    /// Wraps secret bytes.
    pub fn new(bytes: [u8; SHARED_SECRET_LEN]) -> Self {
        SharedSecret(bytes)
    }
    /// The secret (handle with care).
    pub fn expose(&self) -> &[u8; SHARED_SECRET_LEN] {
        &self.0
    }
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSecret(<redacted>)")
    }
}

/// A secret key in the reference's serialized format, with the parameter set (`A`:
/// [`KemAlg`](super::KemAlg) or [`SigAlg`](super::SigAlg)) it belongs to. `Debug` prints
/// the set and `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey<A> {
    alg: A,
    bytes: SecretBytes,
}

/// A family of parameter sets whose secret keys a [`SecretKey`] holds: implemented by
/// [`KemAlg`](super::KemAlg) and [`SigAlg`](super::SigAlg) only.
pub trait KeyFamily: Copy + fmt::Display + sealed::Sealed {
    /// The key type's name in `Debug` output.
    const KEY_NAME: &'static str;
    /// Checks a serialized secret key of this set before it is loaded: its length, and
    /// whatever else the family can check.
    fn check_secret_key(self, bytes: &[u8]) -> Result<(), PqError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::super::KemAlg {}
    impl Sealed for super::super::SigAlg {}
}

impl<A: KeyFamily> SecretKey<A> {
    /// Loads a secret key after the family's checks ([`KeyFamily::check_secret_key`]).
    pub fn from_bytes(alg: A, bytes: &[u8]) -> Result<Self, PqError> {
        alg.check_secret_key(bytes)?;
        Ok(SecretKey::trusted(alg, SecretBytes::from_slice(bytes)))
    }

    /// A key the caller has already checked (fresh from key generation).
    pub(super) fn trusted(alg: A, bytes: SecretBytes) -> Self {
        SecretKey { alg, bytes }
    }

    /// The parameter set.
    pub fn alg(&self) -> A {
        self.alg
    }

    /// The serialized key (secret: handle with care).
    pub fn expose(&self) -> &[u8] {
        self.bytes.expose()
    }
}

impl<A: KeyFamily> fmt::Debug for SecretKey<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({}, <redacted>)", A::KEY_NAME, self.alg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pq::{KemAlg, SigAlg};

    #[test]
    fn debug_never_prints_secrets() {
        let kem = SecretKey::trusted(KemAlg::MlKem512, SecretBytes::new(vec![0xab; 4]));
        let sig = SecretKey::trusted(SigAlg::MlDsa44, SecretBytes::new(vec![0xab; 4]));
        let s = format!(
            "{kem:?} {sig:?} {:?} {:?}",
            SharedSecret::new([0xcd; 32]),
            SecretBytes::from_slice(&[0xab; 4])
        );
        assert!(
            !s.contains("ab") && !s.contains("171") && !s.contains("cd"),
            "{s}"
        );
        assert!(
            s.starts_with("KemSecretKey(kyber-s1, <redacted>) SigningKey("),
            "{s}"
        );
    }
}
