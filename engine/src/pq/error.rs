//! Why a post-quantum operation refused: [`PqError`].

use core::fmt;

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

/// `Ok` when `actual` is the `expected` length of `what`, else [`PqError::Length`].
pub(super) fn check_len(what: &'static str, expected: usize, actual: usize) -> Result<(), PqError> {
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
