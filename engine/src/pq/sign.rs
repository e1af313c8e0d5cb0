//! Signatures: [`SigAlg`] names every signature parameter set DKTP can be configured with
//! and dispatches each operation to its backend ([`mldsa`] for ML-DSA,
//! [`sphincs`] for SPHINCS+). Signatures travel in the attached form `signature ‖ message`.

use super::error::check_len;
use super::secret::{KeyFamily, SecretKey};
use super::{Entropy, PqError, SecretBytes, mldsa, sphincs};
use core::fmt;
use zeroize::Zeroizing;

/// A signature parameter set (the `dilithium-*` and `sphincs-*` configuration tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SigAlg {
    /// `dilithium-s1`: ML-DSA-44.
    MlDsa44,
    /// `dilithium-s3`: ML-DSA-65.
    MlDsa65,
    /// `dilithium-s5`: ML-DSA-87 (the default).
    MlDsa87,
    /// `sphincs-s1s`: SPHINCS+-SHAKE256-128s-robust (round 3).
    Sphincs128s,
    /// `sphincs-3s` (the reference's spelling; `sphincs-s3s` is accepted too):
    /// SPHINCS+-SHAKE256-192s-robust.
    Sphincs192s,
    /// `sphincs-s5s`: SPHINCS+-SHAKE256-256s-robust.
    Sphincs256s,
}

/// Sizes of one signature parameter set, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigSizes {
    /// Verification (public) key.
    pub public_key: usize,
    /// Signing (secret) key.
    pub secret_key: usize,
    /// Signature (the attached form adds the message).
    pub signature: usize,
    /// Random bytes key generation consumes.
    pub keygen_coins: usize,
    /// Random bytes signing consumes (0: deterministic).
    pub sign_coins: usize,
}

impl SigAlg {
    /// Every signature parameter set.
    pub const ALL: [SigAlg; 6] = [
        SigAlg::MlDsa44,
        SigAlg::MlDsa65,
        SigAlg::MlDsa87,
        SigAlg::Sphincs128s,
        SigAlg::Sphincs192s,
        SigAlg::Sphincs256s,
    ];

    /// The configuration-string token as the reference spells it.
    pub const fn token(self) -> &'static str {
        match self {
            SigAlg::MlDsa44 => "dilithium-s1",
            SigAlg::MlDsa65 => "dilithium-s3",
            SigAlg::MlDsa87 => "dilithium-s5",
            SigAlg::Sphincs128s => "sphincs-s1s",
            SigAlg::Sphincs192s => "sphincs-3s",
            SigAlg::Sphincs256s => "sphincs-s5s",
        }
    }

    /// The standard name.
    pub const fn name(self) -> &'static str {
        match self {
            SigAlg::MlDsa44 => "ML-DSA-44",
            SigAlg::MlDsa65 => "ML-DSA-65",
            SigAlg::MlDsa87 => "ML-DSA-87",
            SigAlg::Sphincs128s => "SPHINCS+-SHAKE256-128s-robust",
            SigAlg::Sphincs192s => "SPHINCS+-SHAKE256-192s-robust",
            SigAlg::Sphincs256s => "SPHINCS+-SHAKE256-256s-robust",
        }
    }

    /// Parses a token; accepts `sphincs-s3s` as well as the reference's `sphincs-3s`.
    pub fn from_token(token: &str) -> Option<SigAlg> {
        if token == "sphincs-s3s" {
            return Some(SigAlg::Sphincs192s);
        }
        SigAlg::ALL.into_iter().find(|a| a.token() == token)
    }

    /// Whether a SPHINCS+ set.
    pub const fn is_sphincs(self) -> bool {
        matches!(
            self,
            SigAlg::Sphincs128s | SigAlg::Sphincs192s | SigAlg::Sphincs256s
        )
    }

    /// Sizes (FACTS §10).
    pub const fn sizes(self) -> SigSizes {
        let (public_key, secret_key, signature, keygen_coins, sign_coins) = match self {
            SigAlg::MlDsa44 => (1312, 2560, 2420, 32, 0),
            SigAlg::MlDsa65 => (1952, 4032, 3309, 32, 0),
            SigAlg::MlDsa87 => (2592, 4896, 4627, 32, 0),
            SigAlg::Sphincs128s => (32, 64, 7856, 48, 16),
            SigAlg::Sphincs192s => (48, 96, 16224, 72, 24),
            SigAlg::Sphincs256s => (64, 128, 29792, 96, 32),
        };
        SigSizes {
            public_key,
            secret_key,
            signature,
            keygen_coins,
            sign_coins,
        }
    }

    /// Key generation, deterministic in the bytes drawn (ML-DSA: ξ, 32 bytes; SPHINCS+:
    /// sk_seed‖sk_prf‖pk_seed, 3n bytes).
    pub fn generate(self, rng: &mut dyn Entropy) -> Result<SigKeyPair, PqError> {
        let mut coins = Zeroizing::new(vec![0u8; self.sizes().keygen_coins]);
        rng.fill(&mut coins)?;
        let (vk, sk) = if self.is_sphincs() {
            sphincs::keygen(self, &coins)?
        } else {
            mldsa::keygen(self, &coins)?
        };
        Ok(SigKeyPair {
            verifying: vk,
            signing: SigningKey::trusted(self, sk),
        })
    }

    /// Signs `message` in the attached form `signature ‖ message`. ML-DSA is deterministic
    /// (draws nothing); SPHINCS+ draws n bytes of optrand.
    pub fn sign(
        self,
        key: &SigningKey,
        message: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<Vec<u8>, PqError> {
        if key.alg() != self {
            return Err(PqError::AlgorithmMismatch);
        }
        let sig = if self.is_sphincs() {
            let mut optrand = Zeroizing::new(vec![0u8; self.sizes().sign_coins]);
            rng.fill(&mut optrand)?;
            sphincs::sign(self, key.expose(), message, &optrand)?
        } else {
            mldsa::sign(self, key.expose(), message)?
        };
        let mut out = sig;
        out.extend_from_slice(message);
        Ok(out)
    }

    /// Verifies an attached signature `signature ‖ message` and returns the message.
    pub fn verify<'a>(self, public_key: &[u8], signed: &'a [u8]) -> Result<&'a [u8], PqError> {
        let s = self.sizes();
        check_len("verification key", s.public_key, public_key.len())?;
        if signed.len() < s.signature {
            return Err(PqError::BadSignature);
        }
        let (sig, msg) = signed.split_at(s.signature);
        let ok = if self.is_sphincs() {
            sphincs::verify(self, public_key, msg, sig)?
        } else {
            mldsa::verify(self, public_key, msg, sig)?
        };
        if ok {
            Ok(msg)
        } else {
            Err(PqError::BadSignature)
        }
    }
}

/// Prints the configuration token.
impl fmt::Display for SigAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A signing key in the reference's format (FIPS 204 expanded sk; round-3 SPHINCS+ sk).
pub type SigningKey = SecretKey<SigAlg>;

impl SigningKey {
    /// An all-zero key (what an erased key holds).
    pub(crate) fn zeroed(alg: SigAlg) -> Self {
        SigningKey::trusted(alg, SecretBytes::new(vec![0u8; alg.sizes().secret_key]))
    }
}

impl KeyFamily for SigAlg {
    const KEY_NAME: &'static str = "SigningKey";

    /// The length.
    fn check_secret_key(self, bytes: &[u8]) -> Result<(), PqError> {
        check_len("signing key", self.sizes().secret_key, bytes.len())
    }
}

/// A signature key pair.
#[derive(Clone, Debug)]
pub struct SigKeyPair {
    /// The verification key.
    pub verifying: Vec<u8>,
    /// The signing key.
    pub signing: SigningKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pq::OsEntropy;

    #[test]
    fn ml_dsa_round_trips() {
        let mut rng = OsEntropy;
        for alg in [SigAlg::MlDsa44, SigAlg::MlDsa65, SigAlg::MlDsa87] {
            let kp = alg.generate(&mut rng).unwrap();
            let sm = alg.sign(&kp.signing, b"hello", &mut rng).unwrap();
            assert_eq!(alg.verify(&kp.verifying, &sm).unwrap(), b"hello");
            let mut bad = sm.clone();
            bad[3] ^= 1;
            assert_eq!(alg.verify(&kp.verifying, &bad), Err(PqError::BadSignature));
            assert_eq!(
                alg.verify(&kp.verifying, &sm[..10]),
                Err(PqError::BadSignature)
            );
        }
    }

    #[test]
    fn tokens_round_trip() {
        for alg in SigAlg::ALL {
            assert_eq!(SigAlg::from_token(alg.token()), Some(alg), "{}", alg.name());
        }
        assert_eq!(SigAlg::from_token("sphincs-s3s"), Some(SigAlg::Sphincs192s));
    }
}
