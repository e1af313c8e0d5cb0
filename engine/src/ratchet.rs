//! The asymmetric ratchet (FACTS §8): a fresh KEM exchange inside an established session
//! that re-keys one direction, requester → responder.
//!
//! ```text
//! requester                                              responder
//! (ek, dk) ← KEM.keygen
//! 0x0E  RCS_tx( Sign(H(ek)) ‖ ek ), AD = header  ──────▶ verify, check H(ek)
//!                                                       (ct, ssec) ← KEM.encaps(ek)
//!       verify, check H(ct)  ◀────── 0x0F  RCS_tx( Sign(H(ct)) ‖ ct ), AD = header
//!       ssec ← KEM.decaps(dk, ct)                        then re-key rx with pssr
//!       re-key tx with pssl
//! ```
//!
//! Re-key: `prnd = cSHAKE512(ssec, domain, pss)[0..96]`, key `prnd[0..64]`, nonce
//! `prnd[64..96]`, `pss ← cSHAKE512(prnd[0..32], "", pss)`
//! ([`key_schedule::ratchet_with_domain`]); the domain is the deployment's identity string
//! ([`Settings::with_ratchet_domain`](crate::settings::Settings::with_ratchet_domain)).
//!
//! The hashes cover the bare key or ciphertext, without the header (FACTS §9 item 6). The
//! requester sends nothing between its request and the response: the responder re-keys its
//! receive channel as soon as it has answered.
//!
//! **Crossing requests** (both peers sent a request before seeing the other's): the
//! reference breaks in that case. Between two dktp peers the *server answers at once* and
//! the *client defers* the server's request until its own completes, then answers it with
//! its freshly re-keyed transmit channel. Both ratchets complete, the client's first. The
//! same rule keeps a dktp client working against a reference server, which always answers
//! at once.

use crate::error::{CryptoFailure, Error};
use crate::keccak::sha3_512;
use crate::key_schedule::{self, PSS_LEN, Pss, channel};
use crate::pq::{Entropy, SigAlg, SigningKey};
use crate::rcs::Rcs512Channel;
use crate::transcript::{HASH_LEN, check_hash, sign, verify};

/// `Sign(H(object)) ‖ object`, the plaintext of a ratchet request (object = ek) or
/// response (object = ct).
pub(crate) fn signed_object(
    alg: SigAlg,
    key: &SigningKey,
    object: &[u8],
    rng: &mut dyn Entropy,
) -> Result<Vec<u8>, Error> {
    let mut out = sign(alg, key, &sha3_512(object), rng)?;
    out.extend_from_slice(object);
    Ok(out)
}

/// Checks `Sign(H(object)) ‖ object` against the peer's verification key: signature first
/// (0x02), then the hash (0x19). Returns the object.
pub(crate) fn open_signed_object<'a>(
    alg: SigAlg,
    peer_key: &[u8],
    plaintext: &'a [u8],
) -> Result<&'a [u8], Error> {
    let signed_len = alg.sizes().signature + HASH_LEN;
    let (signed, object) = plaintext
        .split_at_checked(signed_len)
        .ok_or(Error::Crypto(CryptoFailure::Signature))?;
    let hash = verify(alg, peer_key, signed)?;
    check_hash(&sha3_512(object), hash, CryptoFailure::HashMismatch)?;
    Ok(object)
}

/// The re-key of one direction: a new channel and the advanced pss of that direction.
pub(crate) fn rekey(
    ssec: &[u8],
    domain: &[u8],
    pss: &[u8; PSS_LEN],
) -> Result<(Rcs512Channel, Pss), Error> {
    let keys = key_schedule::ratchet_with_domain(ssec, domain, pss);
    Ok((channel(&keys.channel)?, keys.pss))
}
