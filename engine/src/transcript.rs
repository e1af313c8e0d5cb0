//! The handshake transcript (FACTS §6): the per-message hashes `hm1..hm4` that each
//! signature covers, and the running session hash `sch1..sch5` that the establish packets
//! prove.
//!
//! ```text
//! hm1 = H(sph1 ‖ keyid ‖ cfg)      sch1 = H(hm1)
//! hm2 = H(sph2 ‖ ek_S)             sch2 = H(sch1 ‖ hm2)
//! hm3 = H(sph3 ‖ ct_C ‖ ek_C)      sch3 = H(sch2 ‖ hm3)
//! hm4 = H(sph4 ‖ ct_S)             sch4 = H(sch3 ‖ hm4)
//!                                  sch5 = H(sch4 ‖ establish-request payload)
//! ```
//!
//! H is SHA3-512; `sph` is the 21-byte header of the packet that carries the message.
//! Every value here can be computed from the public packets, so none is secret.
//!
//! A signed hash travels as an attached signature `Sign(hash) = sig ‖ hash` (`sign`,
//! `verify`); the receiver recomputes the hash and compares (`check_hash`). The
//! asymmetric ratchet signs `H(ek)` and `H(ct)` the same way ([`crate::ratchet`]).

use crate::error::{CryptoFailure, Error, PqStep};
use crate::keccak::Sha3_512;
use crate::pq::{Entropy, SigAlg, SigningKey};

/// SHA3-512 digest length.
pub const HASH_LEN: usize = 64;

/// A SHA3-512 digest.
pub type Hash = [u8; HASH_LEN];

/// `H(header ‖ parts[0] ‖ parts[1] ‖ ...)`: the hash a handshake signature covers.
pub fn message_hash(header: &[u8], parts: &[&[u8]]) -> Hash {
    let mut h = Sha3_512::new();
    h.update(header);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// The running session hash `sch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript(Hash);

impl Transcript {
    /// `sch1 = H(hm1)`.
    pub fn start(hm1: &Hash) -> Transcript {
        let mut h = Sha3_512::new();
        h.update(hm1);
        Transcript(h.finalize())
    }

    /// `sch ← H(sch ‖ data)`.
    pub fn absorb(&mut self, data: &[u8]) {
        let mut h = Sha3_512::new();
        h.update(&self.0);
        h.update(data);
        self.0 = h.finalize();
    }

    /// The current value.
    pub fn hash(&self) -> &Hash {
        &self.0
    }
}

/// Attached signature over a hash: `sig ‖ hash`.
pub(crate) fn sign(
    alg: SigAlg,
    key: &SigningKey,
    hash: &Hash,
    rng: &mut dyn Entropy,
) -> Result<Vec<u8>, Error> {
    alg.sign(key, hash, rng)
        .map_err(|e| Error::pq(PqStep::Local, e))
}

/// Verifies an attached signature and returns the signed hash; any failure is 0x02.
pub(crate) fn verify<'a>(alg: SigAlg, key: &[u8], signed: &'a [u8]) -> Result<&'a [u8], Error> {
    alg.verify(key, signed)
        .map_err(|e| Error::pq(PqStep::Verify, e))
}

/// Compares a recomputed hash with the signed one in constant time; `failure` says which
/// check it was (the reference reports some with their own code).
pub(crate) fn check_hash(
    computed: &Hash,
    signed: &[u8],
    failure: CryptoFailure,
) -> Result<(), Error> {
    use subtle::ConstantTimeEq;
    if signed.len() == HASH_LEN && bool::from(computed.ct_eq(signed)) {
        Ok(())
    } else {
        Err(failure.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keccak::sha3_512;

    #[test]
    fn chain_is_hash_of_concatenation() {
        let hm1 = sha3_512(b"one");
        let mut t = Transcript::start(&hm1);
        assert_eq!(t.hash(), &sha3_512(&hm1));
        let before = *t.hash();
        t.absorb(b"two");
        assert_eq!(t.hash(), &sha3_512(&[&before[..], b"two"].concat()));
        assert_eq!(message_hash(b"ab", &[b"c", b"", b"de"]), sha3_512(b"abcde"));
    }
}
