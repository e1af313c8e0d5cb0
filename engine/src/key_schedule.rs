//! The DKTP key schedule: channel keys and pre-shared-secret updates at the end of the
//! handshake (FACTS §6, [`PssUpdate`] what a party stores of them), and the
//! asymmetric-ratchet re-key (FACTS §8).
//!
//! All derivations are cSHAKE512 (the QSC rate-72 cSHAKE, [`crate::keccak::cshake512`])
//! called as `cSHAKE512(X, N, S)`: X the secret, N the label, S the pre-shared secret
//! (FACTS §9 item 1: the published text swaps these roles; the reference does not).
//!
//! Inputs are borrowed bytes; every derived value is a secret type that zeroizes on drop
//! and prints as `<redacted>`.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{CryptoFailure, Error};
use crate::keccak::cshake512;
use crate::rcs::Rcs512Channel;

/// Function name N of the first channel derivation (the client's tx, the server's rx).
pub const TX_LABEL: &[u8] = b"DKTP:TXKEY:V1";
/// Function name N of the second channel derivation (the client's rx, the server's tx).
pub const RX_LABEL: &[u8] = b"DKTP:RXKEY:V1";
/// The reference's ratchet domain string, passed as N (FACTS §8).
pub const RATCHET_DOMAIN: &[u8] = b"QRCS:PDEF:DKTP1A";

/// RCS-512 key length.
pub const KEY_LEN: usize = 64;
/// RCS nonce length.
pub const NONCE_LEN: usize = 32;
/// Pre-shared secret length.
pub const PSS_LEN: usize = 32;

/// Bytes of derivation output used: key then nonce. (The reference squeezes 144 and uses
/// 96, FACTS §9 item 8; an XOF's first 96 bytes do not depend on how many follow.)
const PRND_LEN: usize = KEY_LEN + NONCE_LEN;

/// Bytes of the channel derivation that feed the pss update.
const PSS_SEED_LEN: usize = 32;

/// Key and nonce for one direction of an RCS-512 channel.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ChannelKey {
    key: [u8; KEY_LEN],
    nonce: [u8; NONCE_LEN],
}

impl ChannelKey {
    /// The 64-byte RCS-512 key.
    pub fn key(&self) -> &[u8; KEY_LEN] {
        &self.key
    }

    /// The 32-byte initial nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    fn split(prnd: &[u8; PRND_LEN]) -> ChannelKey {
        let mut k = ChannelKey {
            key: [0; KEY_LEN],
            nonce: [0; NONCE_LEN],
        };
        let (key, nonce) = prnd.split_at(KEY_LEN);
        k.key.copy_from_slice(key);
        k.nonce.copy_from_slice(nonce);
        k
    }
}

impl fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChannelKey(<redacted>)")
    }
}

/// The RCS-512 channel of a derived key (DKTP keys every channel with an empty info).
pub(crate) fn channel(key: &ChannelKey) -> Result<Rcs512Channel, Error> {
    Rcs512Channel::new(key.key(), key.nonce(), &[]).map_err(|_| CryptoFailure::Primitive.into())
}

/// A 32-byte pre-shared secret, as stored in a peer key (FACTS §5).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Pss([u8; PSS_LEN]);

impl Pss {
    /// Wraps the bytes.
    pub const fn new(bytes: [u8; PSS_LEN]) -> Pss {
        Pss(bytes)
    }

    /// The bytes, to be stored back into the peer key.
    pub fn as_bytes(&self) -> &[u8; PSS_LEN] {
        &self.0
    }
}

impl From<[u8; PSS_LEN]> for Pss {
    fn from(bytes: [u8; PSS_LEN]) -> Pss {
        Pss(bytes)
    }
}

impl fmt::Debug for Pss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pss(<redacted>)")
    }
}

/// The pre-shared secrets after a handshake or ratchet advanced them: store `local` into the
/// local peer key and `remote` into the remote peer key (FACTS §5) before sending the packet
/// that accompanies them.
#[derive(Debug)]
pub struct PssUpdate {
    /// This party's own pre-shared secret.
    pub local: Pss,
    /// The peer's pre-shared secret.
    pub remote: Pss,
}

/// What the handshake derives for one side.
#[derive(Debug)]
pub struct HandshakeKeys {
    /// This side's transmit channel.
    pub tx: ChannelKey,
    /// This side's receive channel.
    pub rx: ChannelKey,
    /// The updated own pss (to store in the local peer key).
    pub pssl: Pss,
    /// The updated peer's pss (to store in the remote peer key).
    pub pssr: Pss,
}

/// One channel derivation: `cSHAKE512(secret, label, pss)[0..96]`.
fn derive(secret: &[u8], label: &[u8], pss: &[u8]) -> Zeroizing<[u8; PRND_LEN]> {
    let mut prnd = Zeroizing::new([0u8; PRND_LEN]);
    cshake512(secret, label, pss, prnd.as_mut_slice());
    prnd
}

/// The handshake pss update: `cSHAKE512(pss, "", prnd[0..32])[0..32]` (FACTS §9 item 7).
fn update_pss(pss: &[u8; PSS_LEN], prnd: &[u8; PRND_LEN]) -> Pss {
    let mut out = Pss([0; PSS_LEN]);
    cshake512(pss, b"", seed(prnd), &mut out.0);
    out
}

fn seed(prnd: &[u8; PRND_LEN]) -> &[u8] {
    prnd.split_at(PSS_SEED_LEN).0
}

/// The client's keys, derived when it handles the exchange response (message 5 of
/// FACTS §6).
///
/// `secl` is the secret the client encapsulated (to the server's ephemeral key), `secr`
/// the one it decapsulated; `pssl` is the client's own pss, `pssr` the server's.
pub fn client_keys(
    secl: &[u8],
    secr: &[u8],
    pssl: &[u8; PSS_LEN],
    pssr: &[u8; PSS_LEN],
) -> HandshakeKeys {
    let t = derive(secl, TX_LABEL, pssr);
    let pssl = update_pss(pssl, &t);
    let r = derive(secr, RX_LABEL, pssl.as_bytes());
    let pssr = update_pss(pssr, &r);
    HandshakeKeys {
        tx: ChannelKey::split(&t),
        rx: ChannelKey::split(&r),
        pssl,
        pssr,
    }
}

/// The server's keys, derived when it builds the exchange response (message 4 of
/// FACTS §6): the mirror of [`client_keys`], so that each side's tx is the other's rx.
///
/// `secl` is the secret the server encapsulated (to the client's ephemeral key), `secr`
/// the one it decapsulated; `pssl` is the server's own pss, `pssr` the client's.
pub fn server_keys(
    secl: &[u8],
    secr: &[u8],
    pssl: &[u8; PSS_LEN],
    pssr: &[u8; PSS_LEN],
) -> HandshakeKeys {
    // The same two derivations in the same order: the client's inputs are the server's
    // swapped, and so are the outputs.
    let client = client_keys(secr, secl, pssr, pssl);
    HandshakeKeys {
        tx: client.rx,
        rx: client.tx,
        pssl: client.pssr,
        pssr: client.pssl,
    }
}

/// What one asymmetric ratchet derives: the new key for the re-keyed direction and the
/// updated pss of that direction.
#[derive(Debug)]
pub struct RatchetKeys {
    /// The new channel key (the requester's tx, the responder's rx).
    pub channel: ChannelKey,
    /// The updated pss: the requester's pssl, the responder's pssr.
    pub pss: Pss,
}

/// The asymmetric-ratchet re-key with the reference's domain string (FACTS §8).
///
/// `ssec` is the ratchet KEM secret; `pss` is the requester's pssl (which equals the
/// responder's pssr).
pub fn ratchet(ssec: &[u8], pss: &[u8; PSS_LEN]) -> RatchetKeys {
    ratchet_with_domain(ssec, RATCHET_DOMAIN, pss)
}

/// The asymmetric-ratchet re-key with an explicit domain string:
/// `prnd = cSHAKE512(ssec, domain, pss)[0..96]`, new key `prnd[0..64]`, nonce
/// `prnd[64..96]`, `pss ← cSHAKE512(prnd[0..32], "", pss)` (X and S swapped compared with
/// the handshake update).
pub fn ratchet_with_domain(ssec: &[u8], domain: &[u8], pss: &[u8; PSS_LEN]) -> RatchetKeys {
    let prnd = derive(ssec, domain, pss);
    let mut next = Pss([0; PSS_LEN]);
    cshake512(seed(&prnd), b"", pss, &mut next.0);
    RatchetKeys {
        channel: ChannelKey::split(&prnd),
        pss: next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<const N: usize>(start: u8) -> [u8; N] {
        core::array::from_fn(|i| start.wrapping_add(i as u8))
    }

    #[test]
    fn client_and_server_views_agree() {
        let (sc, ss) = (bytes::<32>(1), bytes::<32>(100));
        let (pc, ps) = (bytes::<32>(50), bytes::<32>(200));
        let c = client_keys(&sc, &ss, &pc, &ps);
        let s = server_keys(&ss, &sc, &ps, &pc);
        assert_eq!(c.tx.key(), s.rx.key());
        assert_eq!(c.tx.nonce(), s.rx.nonce());
        assert_eq!(c.rx.key(), s.tx.key());
        assert_eq!(c.rx.nonce(), s.tx.nonce());
        assert_eq!(c.pssl.as_bytes(), s.pssr.as_bytes());
        assert_eq!(c.pssr.as_bytes(), s.pssl.as_bytes());
        assert_ne!(c.tx.key(), c.rx.key());
        assert_ne!(c.pssl.as_bytes(), &pc);
    }

    #[test]
    fn ratchet_domain_matters_and_debug_is_redacted() {
        let a = ratchet(&bytes::<32>(3), &bytes::<32>(9));
        let b = ratchet_with_domain(&bytes::<32>(3), b"other", &bytes::<32>(9));
        assert_ne!(a.channel.key(), b.channel.key());
        assert_eq!(format!("{:?}", a.channel), "ChannelKey(<redacted>)");
        assert_eq!(format!("{:?}", a.pss), "Pss(<redacted>)");
    }
}
