//! Post-quantum primitives DKTP can be configured with, chosen at run time.
//!
//! Two enums carry every parameter set of FACTS §10 in one binary:
//! [`KemAlg`] (ML-KEM-512/768/1024, the reference's Kyber k = 5, Classic McEliece round 3)
//! and [`SigAlg`] (ML-DSA-44/65/87, SPHINCS+-SHAKE256-s-robust round 3); each dispatches
//! an operation to its backend by a `match` on the set. Randomness is an argument
//! ([`Entropy`]): [`Coins`] replays recorded bytes (transcripts, known answers),
//! [`OsEntropy`] draws from the operating system. Each operation consumes exactly the bytes
//! the reference's RNG serves it (FACTS §10 "Random bytes consumed"), so a recorded coin
//! string reproduces the reference's keys, ciphertexts and signatures.
//!
//! | module | what |
//! |---|---|
//! | `error` | [`PqError`]: why an operation refused |
//! | `entropy` | [`Entropy`], [`OsEntropy`], [`Coins`] |
//! | `secret` | [`SecretBytes`], [`SharedSecret`], [`SecretKey`]: zeroize on drop, print `<redacted>` |
//! | `kem` | [`KemAlg`], [`KemSecretKey`], [`KemKeyPair`]: the KEM dispatch |
//! | `sign` | [`SigAlg`], [`SigningKey`], [`SigKeyPair`]: the signature dispatch |
//! | [`speed`] | operations by set name, for `dktp speed` |
//!
//! | family | native backend | wasm32 backend |
//! |---|---|---|
//! | ML-KEM | `libcrux-ml-kem` (AVX2 detected at run time) | [`kyber`] (this crate) |
//! | Kyber k = 5 | [`kyber`] | [`kyber`] |
//! | ML-DSA | `libcrux-ml-dsa` (AVX2 detected at run time) | `ml-dsa` (RustCrypto) |
//! | SPHINCS+ | [`sphincs`] (this crate) | [`sphincs`] |
//! | McEliece | see [`mceliece`] | see [`mceliece`] |
//!
//! No function panics on its input: wrong lengths and malformed keys are [`PqError`]s.

mod entropy;
mod error;
mod kem;
mod secret;
mod sign;

pub mod kyber;
pub mod mceliece;
mod mldsa;
mod mlkem;
pub mod speed;
pub mod sphincs;

pub use entropy::{Coins, Entropy, OsEntropy};
pub use error::PqError;
pub use kem::{KemAlg, KemKeyPair, KemSecretKey, KemSizes};
pub use secret::{KeyFamily, SHARED_SECRET_LEN, SecretBytes, SecretKey, SharedSecret};
pub use sign::{SigAlg, SigKeyPair, SigSizes, SigningKey};
