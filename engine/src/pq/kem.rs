//! Key encapsulation: [`KemAlg`] names every KEM parameter set DKTP can be configured with
//! and dispatches each operation to its backend ([`mlkem`] for ML-KEM and
//! Kyber k = 5, [`mceliece`] for Classic McEliece).

use super::error::check_len;
use super::secret::{KeyFamily, SecretKey};
use super::{Entropy, PqError, SecretBytes, SharedSecret, kyber, mceliece, mlkem};
use core::fmt;
use zeroize::Zeroizing;

/// A KEM parameter set (the `kyber-*` and `mceliece-*` configuration tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KemAlg {
    /// `kyber-s1`: ML-KEM-512.
    MlKem512,
    /// `kyber-s3`: ML-KEM-768.
    MlKem768,
    /// `kyber-s5`: ML-KEM-1024 (the default).
    MlKem1024,
    /// `kyber-s6`: the reference's ML-KEM with k = 5 (non-standard).
    KyberK5,
    /// `mceliece-s1`: Classic McEliece mceliece348864, round 3.
    McEliece348864,
    /// `mceliece-s3`: mceliece460896.
    McEliece460896,
    /// `mceliece-s5`: mceliece6688128.
    McEliece6688128,
    /// `mceliece-s6`: mceliece6960119.
    McEliece6960119,
    /// `mceliece-s7`: mceliece8192128.
    McEliece8192128,
}

/// Sizes of one KEM parameter set, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KemSizes {
    /// Public (encapsulation) key.
    pub public_key: usize,
    /// Secret (decapsulation) key.
    pub secret_key: usize,
    /// Ciphertext.
    pub ciphertext: usize,
    /// Random bytes key generation consumes.
    pub keygen_coins: usize,
}

impl KemAlg {
    /// Every KEM parameter set.
    pub const ALL: [KemAlg; 9] = [
        KemAlg::MlKem512,
        KemAlg::MlKem768,
        KemAlg::MlKem1024,
        KemAlg::KyberK5,
        KemAlg::McEliece348864,
        KemAlg::McEliece460896,
        KemAlg::McEliece6688128,
        KemAlg::McEliece6960119,
        KemAlg::McEliece8192128,
    ];

    /// The configuration-string token (`kyber-s5`, `mceliece-s1`, ...).
    pub const fn token(self) -> &'static str {
        match self {
            KemAlg::MlKem512 => "kyber-s1",
            KemAlg::MlKem768 => "kyber-s3",
            KemAlg::MlKem1024 => "kyber-s5",
            KemAlg::KyberK5 => "kyber-s6",
            KemAlg::McEliece348864 => "mceliece-s1",
            KemAlg::McEliece460896 => "mceliece-s3",
            KemAlg::McEliece6688128 => "mceliece-s5",
            KemAlg::McEliece6960119 => "mceliece-s6",
            KemAlg::McEliece8192128 => "mceliece-s7",
        }
    }

    /// The standard name of the algorithm.
    pub const fn name(self) -> &'static str {
        match self {
            KemAlg::MlKem512 => "ML-KEM-512",
            KemAlg::MlKem768 => "ML-KEM-768",
            KemAlg::MlKem1024 => "ML-KEM-1024",
            KemAlg::KyberK5 => "Kyber-k5 (QSC S6)",
            KemAlg::McEliece348864 => "mceliece348864",
            KemAlg::McEliece460896 => "mceliece460896",
            KemAlg::McEliece6688128 => "mceliece6688128",
            KemAlg::McEliece6960119 => "mceliece6960119",
            KemAlg::McEliece8192128 => "mceliece8192128",
        }
    }

    /// Parses a configuration token.
    pub fn from_token(token: &str) -> Option<KemAlg> {
        KemAlg::ALL.into_iter().find(|a| a.token() == token)
    }

    /// Whether this is a Classic McEliece set.
    pub const fn is_mceliece(self) -> bool {
        matches!(
            self,
            KemAlg::McEliece348864
                | KemAlg::McEliece460896
                | KemAlg::McEliece6688128
                | KemAlg::McEliece6960119
                | KemAlg::McEliece8192128
        )
    }

    /// The lattice parameters of an ML-KEM / Kyber set, for running the portable
    /// [`kyber`] code directly (known-answer tests); `None` for McEliece.
    pub const fn kyber_params(self) -> Option<kyber::Params> {
        match self {
            KemAlg::MlKem512 => Some(kyber::ML_KEM_512),
            KemAlg::MlKem768 => Some(kyber::ML_KEM_768),
            KemAlg::MlKem1024 => Some(kyber::ML_KEM_1024),
            KemAlg::KyberK5 => Some(kyber::KYBER_K5),
            _ => None,
        }
    }

    /// Sizes (FACTS §10).
    pub const fn sizes(self) -> KemSizes {
        let (public_key, secret_key, ciphertext, keygen_coins) = match self {
            KemAlg::MlKem512 => (800, 1632, 768, 64),
            KemAlg::MlKem768 => (1184, 2400, 1088, 64),
            KemAlg::MlKem1024 => (1568, 3168, 1568, 64),
            KemAlg::KyberK5 => (1952, 3936, 1920, 64),
            KemAlg::McEliece348864 => (261_120, 6492, 128, 32),
            KemAlg::McEliece460896 => (524_160, 13_608, 188, 32),
            KemAlg::McEliece6688128 => (1_044_992, 13_932, 240, 32),
            KemAlg::McEliece6960119 => (1_047_319, 13_948, 226, 32),
            KemAlg::McEliece8192128 => (1_357_824, 14_120, 240, 32),
        };
        KemSizes {
            public_key,
            secret_key,
            ciphertext,
            keygen_coins,
        }
    }

    /// Key generation, deterministic in the bytes drawn from `rng` (64 for ML-KEM: d‖z;
    /// 32 for McEliece), so recorded coins reproduce the reference's keys.
    pub fn generate(self, rng: &mut dyn Entropy) -> Result<KemKeyPair, PqError> {
        let keys = if let Some(p) = self.kyber_params() {
            let mut coins = Zeroizing::new([0u8; 64]);
            rng.fill(&mut coins[..])?;
            mlkem::keygen(self, &p, &coins)?
        } else {
            mceliece::keygen(self, rng)?
        };
        Ok(KemKeyPair::trusted(self, keys))
    }

    /// Key generation for a one-use (ephemeral) key pair: the fastest available backend,
    /// which for McEliece on native targets draws from the OS directly (its keys are valid
    /// reference keys but not reproducible from coins). Other sets behave as [`Self::generate`].
    pub fn generate_ephemeral(self, rng: &mut dyn Entropy) -> Result<KemKeyPair, PqError> {
        if self.is_mceliece()
            && let Some(keys) = mceliece::keygen_fast(self)
        {
            return Ok(KemKeyPair::trusted(self, keys?));
        }
        self.generate(rng)
    }

    /// Encapsulates to `public_key`, drawing the coins from `rng` (32 bytes for ML-KEM: m).
    /// Returns (ciphertext, shared secret).
    ///
    /// An all-zero McEliece public key is refused with [`PqError::ZeroPublicKey`] before
    /// any coins are drawn (FACTS §11.5).
    pub fn encapsulate(
        self,
        public_key: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(Vec<u8>, SharedSecret), PqError> {
        let s = self.sizes();
        check_len("KEM public key", s.public_key, public_key.len())?;
        // FACTS §11.5: the reference's McEliece key generation sometimes fails silently and
        // hands out an all-zero public key (with a secret key that matches nothing), so a
        // ciphertext to it can never be decapsulated. A genuine key is never all zero: T = 0
        // would make H = (I | 0), a code with codewords of weight 1, not a Goppa code of
        // distance > 2t. Every received McEliece key (connect response, exchange request,
        // ratchet request) reaches this point, so this is the one check, made before any
        // coins are drawn. The key is public, so the scan need not be constant time.
        // Cost: a genuine key stops the scan in its first 256-byte block (tens of
        // nanoseconds); the worst case, an all-zero key (then refused), is one pass over at
        // most 1.36 MB, the OR of each block vectorizing: ~35 µs for mceliece8192128, where
        // encapsulation's syndrome ANDs and XORs every byte of the same matrix after
        // FixedWeight (~150 µs; both measured in the test profile).
        if self.is_mceliece() && is_all_zero(public_key) {
            return Err(PqError::ZeroPublicKey);
        }
        if let Some(p) = self.kyber_params() {
            let mut m = Zeroizing::new([0u8; 32]);
            rng.fill(&mut m[..])?;
            return mlkem::encapsulate(self, &p, public_key, &m);
        }
        mceliece::encapsulate(self, public_key, rng)
    }

    /// Decapsulates `ciphertext`. An invalid ciphertext yields the implicit-rejection value
    /// (FIPS 203 J(z‖c) for ML-KEM; the round-3 value for McEliece), never an error.
    pub fn decapsulate(
        self,
        secret_key: &KemSecretKey,
        ciphertext: &[u8],
    ) -> Result<SharedSecret, PqError> {
        if secret_key.alg() != self {
            return Err(PqError::AlgorithmMismatch);
        }
        check_len("KEM ciphertext", self.sizes().ciphertext, ciphertext.len())?;
        if let Some(p) = self.kyber_params() {
            return mlkem::decapsulate(self, &p, secret_key.expose(), ciphertext);
        }
        mceliece::decapsulate(self, secret_key.expose(), ciphertext)
    }
}

/// Prints the configuration token.
impl fmt::Display for KemAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A KEM secret key in the reference's format (FIPS 203 dk; round-3 McEliece sk).
pub type KemSecretKey = SecretKey<KemAlg>;

impl KeyFamily for KemAlg {
    const KEY_NAME: &'static str = "KemSecretKey";

    /// The length, and for ML-KEM the embedded H(ek) (FIPS 203 §7.3).
    fn check_secret_key(self, bytes: &[u8]) -> Result<(), PqError> {
        check_len("KEM secret key", self.sizes().secret_key, bytes.len())?;
        match self.kyber_params() {
            Some(p) if !kyber::dk_hash_valid(&p, bytes) => Err(PqError::InvalidSecretKey),
            _ => Ok(()),
        }
    }
}

/// A KEM key pair.
#[derive(Clone, Debug)]
pub struct KemKeyPair {
    /// The public (encapsulation) key.
    pub public: Vec<u8>,
    /// The secret (decapsulation) key.
    pub secret: KemSecretKey,
}

impl KemKeyPair {
    /// A key pair fresh from a backend's key generation.
    fn trusted(alg: KemAlg, (public, secret): (Vec<u8>, SecretBytes)) -> Self {
        KemKeyPair {
            public,
            secret: KemSecretKey::trusted(alg, secret),
        }
    }
}

/// Whether every byte is zero (not constant time: for public data). Blocks of 256 bytes
/// so the OR vectorizes and a nonzero block ends the scan.
fn is_all_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(256)
        .all(|block| block.iter().fold(0u8, |acc, b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pq::{Coins, OsEntropy};

    /// FACTS §11.5: an all-zero McEliece key is refused before any coin is drawn; a key
    /// with a single nonzero byte (the last) goes on to encapsulation (which then asks for
    /// coins); ML-KEM keys are not concerned.
    #[test]
    fn all_zero_mceliece_public_keys_are_refused() {
        for alg in KemAlg::ALL {
            let mut pk = vec![0u8; alg.sizes().public_key];
            let r = alg.encapsulate(&pk, &mut Coins::new(&[]));
            if alg.is_mceliece() {
                assert_eq!(r.map(drop), Err(PqError::ZeroPublicKey), "{alg}");
                if let Some(last) = pk.last_mut() {
                    *last = 1;
                }
                assert_eq!(
                    alg.encapsulate(&pk, &mut Coins::new(&[])).map(drop),
                    Err(PqError::Random),
                    "{alg}"
                );
            } else {
                assert_ne!(r.map(drop), Err(PqError::ZeroPublicKey), "{alg}");
            }
        }
        assert!(PqError::ZeroPublicKey.to_string().contains("all zero"));
    }

    #[test]
    fn lattice_kems_round_trip() {
        let mut rng = OsEntropy;
        for alg in [
            KemAlg::MlKem512,
            KemAlg::MlKem768,
            KemAlg::MlKem1024,
            KemAlg::KyberK5,
        ] {
            let kp = alg.generate(&mut rng).unwrap();
            let (ct, ss) = alg.encapsulate(&kp.public, &mut rng).unwrap();
            assert_eq!(alg.decapsulate(&kp.secret, &ct).unwrap(), ss);
            assert!(alg.decapsulate(&kp.secret, &ct[1..]).is_err());
            assert!(alg.encapsulate(&kp.public[1..], &mut rng).is_err());
        }
    }

    #[test]
    fn tokens_round_trip() {
        for alg in KemAlg::ALL {
            assert_eq!(KemAlg::from_token(alg.token()), Some(alg), "{}", alg.name());
        }
        assert_eq!(KemAlg::from_token("kyber-s2"), None);
    }
}
