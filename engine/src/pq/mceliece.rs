//! Classic McEliece round 3 (placeholder).
use super::{Entropy, KemAlg, PqError, SecretBytes, SharedSecret};

pub(super) fn keygen(alg: KemAlg, _rng: &mut dyn Entropy) -> Result<(Vec<u8>, SecretBytes), PqError> {
    Err(PqError::Unsupported { alg: alg.name(), reason: "not yet implemented" })
}
pub(super) fn keygen_fast(_alg: KemAlg) -> Option<Result<(Vec<u8>, SecretBytes), PqError>> {
    None
}
pub(super) fn encapsulate(alg: KemAlg, _pk: &[u8], _rng: &mut dyn Entropy) -> Result<(Vec<u8>, SharedSecret), PqError> {
    Err(PqError::Unsupported { alg: alg.name(), reason: "not yet implemented" })
}
pub(super) fn decapsulate(alg: KemAlg, _sk: &[u8], _ct: &[u8]) -> Result<SharedSecret, PqError> {
    Err(PqError::Unsupported { alg: alg.name(), reason: "not yet implemented" })
}
