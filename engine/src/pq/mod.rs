//! Post-quantum primitives DKTP can be configured with, chosen at run time.
//!
//! Two enums carry every parameter set of FACTS §10 in one binary:
//! [`KemAlg`] (ML-KEM-512/768/1024, the reference's Kyber k = 5, Classic McEliece round 3)
//! and [`SigAlg`] (ML-DSA-44/65/87, SPHINCS+-SHAKE256-s-robust round 3). Both implement the
//! object-safe traits [`Kem`] and [`Signer`]. Randomness is an argument ([`Entropy`]):
//! [`Coins`] replays recorded bytes (transcripts, known answers), [`OsEntropy`] draws from
//! the operating system. Each operation consumes exactly the bytes the reference's RNG
//! serves it (FACTS §10 "Random bytes consumed"), so a recorded coin string reproduces the
//! reference's keys, ciphertexts and signatures.
//!
//! | family | native backend | wasm32 backend |
//! |---|---|---|
//! | ML-KEM | `libcrux-ml-kem` (AVX2 detected at run time) | [`kyber`] (this crate) |
//! | Kyber k = 5 | [`kyber`] | [`kyber`] |
//! | ML-DSA | `libcrux-ml-dsa` (AVX2 detected at run time) | `ml-dsa` (RustCrypto) |
//! | SPHINCS+ | [`sphincs`] (this crate) | [`sphincs`] |
//! | McEliece | see [`mceliece`] | see [`mceliece`] |
//!
//! Secret keys and shared secrets zeroize on drop and print as `<redacted>`. No function
//! panics on its input: wrong lengths and malformed keys are [`PqError`]s.

use core::fmt;
use zeroize::{Zeroize, Zeroizing};

pub mod kyber;
pub mod mceliece;
mod mldsa;
mod mlkem;
pub mod speed;
pub mod sphincs;

/// Shared-secret length of every DKTP KEM.
pub const SHARED_SECRET_LEN: usize = 32;

// ---------------------------------------------------------------------------------------
// Errors

/// Why a post-quantum operation refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PqError {
    /// An input had the wrong length for its parameter set.
    Length {
        /// Which input.
        what: &'static str,
        /// The length the parameter set needs.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A public key failed its validity check (FIPS 203 §7.2 modulus check).
    InvalidPublicKey,
    /// A Classic McEliece public key is all zero: never a genuine key, but what the
    /// reference's key generation sometimes returns when it fails (FACTS §11.5).
    ZeroPublicKey,
    /// A secret key failed its validity check (FIPS 203 §7.3 hash check).
    InvalidSecretKey,
    /// A key was used with a different algorithm than it belongs to.
    AlgorithmMismatch,
    /// A signature did not verify.
    BadSignature,
    /// Signing failed (ML-DSA's rejection loop bound; should never happen).
    SigningFailed,
    /// The randomness source failed or recorded coins ran out.
    Random,
    /// This build cannot run the algorithm (e.g. a backend unavailable on this target).
    Unsupported {
        /// The parameter set.
        alg: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl fmt::Display for PqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PqError::Length {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{what} is {actual} bytes but this parameter set needs {expected}: check that \
                 both peers use the same configuration"
            ),
            PqError::InvalidPublicKey => f.write_str(
                "the public key is malformed (coefficient out of range): refuse the peer",
            ),
            PqError::ZeroPublicKey => f.write_str(
                "the McEliece public key is all zero (a known defect of the reference's key \
                 generation): refuse it and connect again",
            ),
            PqError::InvalidSecretKey => f.write_str(
                "the secret key is corrupt (embedded hash mismatch): regenerate or restore the key",
            ),
            PqError::AlgorithmMismatch => f.write_str(
                "the key belongs to another parameter set: load the key of this configuration",
            ),
            PqError::BadSignature => {
                f.write_str("signature verification failed: the peer is not who it claims")
            }
            PqError::SigningFailed => f.write_str("signing failed: retry; report if it repeats"),
            PqError::Random => {
                f.write_str("the randomness source failed or recorded coins ran out")
            }
            PqError::Unsupported { alg, reason } => {
                write!(f, "{alg} is not available in this build: {reason}")
            }
        }
    }
}

impl std::error::Error for PqError {}

/// Whether every byte is zero (not constant time: for public data). Blocks of 256 bytes
/// so the OR vectorizes and a nonzero block ends the scan.
fn is_all_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(256)
        .all(|block| block.iter().fold(0u8, |acc, b| acc | b) == 0)
}

fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), PqError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PqError::Length {
            what,
            expected,
            actual,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Randomness

/// A source of random bytes, passed to every randomized operation (the engine is sans-IO).
pub trait Entropy {
    /// Fills `dest` entirely or fails.
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError>;
}

/// The operating system's random source (`getrandom`; `crypto.getRandomValues` on wasm).
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        getrandom::fill(dest).map_err(|_| PqError::Random)
    }
}

/// Replays recorded random bytes in order; running out is [`PqError::Random`].
#[derive(Clone)]
pub struct Coins<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Coins<'a> {
    /// Serves `bytes` front to back.
    pub fn new(bytes: &'a [u8]) -> Self {
        Coins { bytes, pos: 0 }
    }
    /// Bytes not yet served.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

impl fmt::Debug for Coins<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coins")
            .field("remaining", &self.remaining())
            .finish_non_exhaustive()
    }
}

impl Entropy for Coins<'_> {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        let end = self.pos.checked_add(dest.len()).ok_or(PqError::Random)?;
        let src = self.bytes.get(self.pos..end).ok_or(PqError::Random)?;
        dest.copy_from_slice(src);
        self.pos = end;
        Ok(())
    }
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
        (**self).fill(dest)
    }
}

// ---------------------------------------------------------------------------------------
// Secret containers

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

// ---------------------------------------------------------------------------------------
// KEM

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

    /// The lattice parameters of an ML-KEM / Kyber set.
    pub(crate) const fn kyber_params(self) -> Option<kyber::Params> {
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
        if let Some(p) = self.kyber_params() {
            let mut coins = Zeroizing::new([0u8; 64]);
            rng.fill(&mut coins[..])?;
            let (pk, sk) = mlkem::keygen(self, &p, &coins)?;
            return Ok(KemKeyPair {
                public: pk,
                secret: KemSecretKey::trusted(self, sk),
            });
        }
        let (pk, sk) = mceliece::keygen(self, rng)?;
        Ok(KemKeyPair {
            public: pk,
            secret: KemSecretKey::trusted(self, sk),
        })
    }

    /// Key generation for a one-use (ephemeral) key pair: the fastest available backend,
    /// which for McEliece on native targets draws from the OS directly (its keys are valid
    /// reference keys but not reproducible from coins). Other sets behave as [`Self::generate`].
    pub fn generate_ephemeral(self, rng: &mut dyn Entropy) -> Result<KemKeyPair, PqError> {
        if self.is_mceliece()
            && let Some(r) = mceliece::keygen_fast(self)
        {
            let (pk, sk) = r?;
            return Ok(KemKeyPair {
                public: pk,
                secret: KemSecretKey::trusted(self, sk),
            });
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
        if secret_key.alg != self {
            return Err(PqError::AlgorithmMismatch);
        }
        check_len("KEM ciphertext", self.sizes().ciphertext, ciphertext.len())?;
        if let Some(p) = self.kyber_params() {
            return mlkem::decapsulate(self, &p, secret_key.bytes.expose(), ciphertext);
        }
        mceliece::decapsulate(self, secret_key.bytes.expose(), ciphertext)
    }
}

impl fmt::Display for KemAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A KEM secret key in the reference's format (FIPS 203 dk; round-3 McEliece sk).
#[derive(Clone, PartialEq, Eq)]
pub struct KemSecretKey {
    alg: KemAlg,
    bytes: SecretBytes,
}

impl KemSecretKey {
    fn trusted(alg: KemAlg, bytes: SecretBytes) -> Self {
        KemSecretKey { alg, bytes }
    }

    /// Loads a secret key, checking its length (and for ML-KEM the embedded H(ek), FIPS 203
    /// §7.3).
    pub fn from_bytes(alg: KemAlg, bytes: &[u8]) -> Result<Self, PqError> {
        check_len("KEM secret key", alg.sizes().secret_key, bytes.len())?;
        if let Some(p) = alg.kyber_params()
            && !kyber::dk_hash_valid(&p, bytes)
        {
            return Err(PqError::InvalidSecretKey);
        }
        Ok(KemSecretKey {
            alg,
            bytes: SecretBytes::from_slice(bytes),
        })
    }

    /// The parameter set.
    pub fn alg(&self) -> KemAlg {
        self.alg
    }

    /// The serialized key (secret: handle with care).
    pub fn expose(&self) -> &[u8] {
        self.bytes.expose()
    }
}

impl fmt::Debug for KemSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KemSecretKey({}, <redacted>)", self.alg)
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

/// What a KEM offers the handshake; implemented by [`KemAlg`].
pub trait Kem {
    /// Sizes of this parameter set.
    fn kem_sizes(&self) -> KemSizes;
    /// Key generation from `rng`.
    fn kem_generate(&self, rng: &mut dyn Entropy) -> Result<KemKeyPair, PqError>;
    /// Encapsulation to a public key.
    fn kem_encapsulate(
        &self,
        pk: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(Vec<u8>, SharedSecret), PqError>;
    /// Decapsulation.
    fn kem_decapsulate(&self, sk: &KemSecretKey, ct: &[u8]) -> Result<SharedSecret, PqError>;
}

impl Kem for KemAlg {
    fn kem_sizes(&self) -> KemSizes {
        self.sizes()
    }
    fn kem_generate(&self, rng: &mut dyn Entropy) -> Result<KemKeyPair, PqError> {
        self.generate(rng)
    }
    fn kem_encapsulate(
        &self,
        pk: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<(Vec<u8>, SharedSecret), PqError> {
        self.encapsulate(pk, rng)
    }
    fn kem_decapsulate(&self, sk: &KemSecretKey, ct: &[u8]) -> Result<SharedSecret, PqError> {
        self.decapsulate(sk, ct)
    }
}

// ---------------------------------------------------------------------------------------
// Signatures

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
            signing: SigningKey {
                alg: self,
                bytes: sk,
            },
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
        if key.alg != self {
            return Err(PqError::AlgorithmMismatch);
        }
        let sig = if self.is_sphincs() {
            let mut optrand = Zeroizing::new(vec![0u8; self.sizes().sign_coins]);
            rng.fill(&mut optrand)?;
            sphincs::sign(self, key.bytes.expose(), message, &optrand)?
        } else {
            mldsa::sign(self, key.bytes.expose(), message)?
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

impl fmt::Display for SigAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.token())
    }
}

/// A signing key in the reference's format (FIPS 204 expanded sk; round-3 SPHINCS+ sk).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    alg: SigAlg,
    bytes: SecretBytes,
}

impl SigningKey {
    /// Loads a signing key, checking its length.
    pub fn from_bytes(alg: SigAlg, bytes: &[u8]) -> Result<Self, PqError> {
        check_len("signing key", alg.sizes().secret_key, bytes.len())?;
        Ok(SigningKey {
            alg,
            bytes: SecretBytes::from_slice(bytes),
        })
    }
    /// An all-zero key (what an erased key holds).
    pub(crate) fn zeroed(alg: SigAlg) -> Self {
        SigningKey {
            alg,
            bytes: SecretBytes::new(vec![0u8; alg.sizes().secret_key]),
        }
    }
    /// The parameter set.
    pub fn alg(&self) -> SigAlg {
        self.alg
    }
    /// The serialized key (secret: handle with care).
    pub fn expose(&self) -> &[u8] {
        self.bytes.expose()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.alg)
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

/// What a signature scheme offers the handshake; implemented by [`SigAlg`].
pub trait Signer {
    /// Sizes of this parameter set.
    fn sig_sizes(&self) -> SigSizes;
    /// Key generation from `rng`.
    fn sig_generate(&self, rng: &mut dyn Entropy) -> Result<SigKeyPair, PqError>;
    /// Attached signing: `signature ‖ message`.
    fn sig_sign(
        &self,
        key: &SigningKey,
        message: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<Vec<u8>, PqError>;
    /// Attached verification: returns the message.
    fn sig_verify<'a>(&self, public_key: &[u8], signed: &'a [u8]) -> Result<&'a [u8], PqError>;
}

impl Signer for SigAlg {
    fn sig_sizes(&self) -> SigSizes {
        self.sizes()
    }
    fn sig_generate(&self, rng: &mut dyn Entropy) -> Result<SigKeyPair, PqError> {
        self.generate(rng)
    }
    fn sig_sign(
        &self,
        key: &SigningKey,
        message: &[u8],
        rng: &mut dyn Entropy,
    ) -> Result<Vec<u8>, PqError> {
        self.sign(key, message, rng)
    }
    fn sig_verify<'a>(&self, public_key: &[u8], signed: &'a [u8]) -> Result<&'a [u8], PqError> {
        self.verify(public_key, signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for a in KemAlg::ALL {
            assert_eq!(KemAlg::from_token(a.token()), Some(a));
        }
        for a in SigAlg::ALL {
            assert_eq!(SigAlg::from_token(a.token()), Some(a));
        }
        assert_eq!(SigAlg::from_token("sphincs-s3s"), Some(SigAlg::Sphincs192s));
        assert_eq!(KemAlg::from_token("kyber-s2"), None);
    }

    #[test]
    fn coins_run_out() {
        let mut c = Coins::new(&[1, 2, 3]);
        let mut b = [0u8; 2];
        assert!(c.fill(&mut b).is_ok());
        assert_eq!(c.fill(&mut b), Err(PqError::Random));
    }

    #[test]
    fn debug_never_prints_secrets() {
        let sk = KemSecretKey::trusted(KemAlg::MlKem512, SecretBytes::new(vec![0xab; 4]));
        let s = format!("{sk:?} {:?}", SharedSecret::new([0xcd; 32]));
        assert!(
            !s.contains("ab") && !s.contains("171") && !s.contains("cd"),
            "{s}"
        );
    }

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
    fn default_kem_and_signature_round_trip() {
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
}
