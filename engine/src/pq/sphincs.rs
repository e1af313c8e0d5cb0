//! SPHINCS+ round 3, SHAKE-256 robust, small sets (placeholder).
use super::{PqError, SecretBytes, SigAlg};

pub(super) fn keygen(alg: SigAlg, _coins: &[u8]) -> Result<(Vec<u8>, SecretBytes), PqError> {
    Err(PqError::Unsupported { alg: alg.name(), reason: "not yet implemented" })
}
pub(super) fn sign(alg: SigAlg, _sk: &[u8], _msg: &[u8], _optrand: &[u8]) -> Result<Vec<u8>, PqError> {
    Err(PqError::Unsupported { alg: alg.name(), reason: "not yet implemented" })
}
pub(super) fn verify(alg: SigAlg, _pk: &[u8], _msg: &[u8], _sig: &[u8]) -> Result<bool, PqError> {
    Err(PqError::Unsupported { alg: alg.name(), reason: "not yet implemented" })
}
