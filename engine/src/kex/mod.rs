//! The DKTP handshake (FACTS §6) as sans-IO state machines.
//!
//! ```text
//!  client                                                      server
//!  client::start ── 0x01 connect request (seq 0) ─────────▶ server::AwaitConnectRequest
//!  client::AwaitConnectResponse ◀── 0x02 connect response (seq 0) ──┘
//!        └── 0x05 exchange request (seq 1) ─────────────▶ server::AwaitExchangeRequest
//!  client::AwaitExchangeResponse ◀── 0x06 exchange response (seq 1) ─┘  (server derives keys)
//!        └── [pending] 0x07 establish request (seq 2) ▶── server::AwaitEstablishRequest
//!  client::AwaitEstablishResponse ◀── [pending] 0x08 establish response (seq 2)
//!        └── Session                                       Session ──┘
//! ```
//!
//! Each awaited message has its own type, consumed by `handle(self, packet, now, rng)`:
//! the input is one whole received packet, the current time (Unix seconds, UTC) and a
//! random source; the output is the next state and the packet to send ([`Flight`]), or a
//! [`Commit`] when the pre-shared secrets advanced: the caller must persist
//! [`Commit::record`] *before* sending [`Commit::packet`], because that packet lets the peer
//! complete the handshake and advance its copies. The last step yields a
//! [`Session`](crate::session::Session) by value.
//!
//! On any error the handshake is over. [`error_reply`] gives the plaintext error packet the
//! reference would send for it (none for a peer's own error packet or a local failure).
//!
//! Checks follow the reference's order (FACTS §6): header (time 0x13, exact length 0x16,
//! sequence 0x14, state/flag 0x0D), then the signature (0x02), then the signed hash (0x19,
//! 0x0A at the exchange response). We are stricter where the reference never sends the
//! offending packet: the flag is compared ([`FlagCheck::Strict`]) and the server refuses a
//! key id it holds no key for (0x0F).

pub mod client;
mod gate;
pub mod server;
#[cfg(test)]
pub(crate) mod tests;

pub use gate::ReplayGate;

use std::sync::Arc;

use crate::config::Config;
use crate::error::{CryptoFailure, Error, Malformed, Misuse};
use crate::generation::Generations;
use crate::key_schedule::{ChannelKey, Pss, RATCHET_DOMAIN};
use crate::packet::{self, Flag, FlagCheck, HEADER_LEN, HandshakeExpect, Header, PLAIN_ERROR_LEN};
use crate::peer_key::{KEYID_SIZE, LocalPeerKey, RemotePeerKey};
use crate::pool::KeyPool;
use crate::pq::{Entropy, KemAlg, KemKeyPair, PqError, SigAlg, SigningKey};
use crate::rcs::Rcs512Channel;
use crate::transcript::{HASH_LEN, Hash};

/// How ephemeral KEM key pairs are generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EphemeralKeys {
    /// The fastest backend (for McEliece on native targets it draws from the operating
    /// system instead of the supplied random source).
    #[default]
    Fastest,
    /// Only from the supplied random source, so recorded coins reproduce every key
    /// (transcript replay, deterministic tests).
    FromRng,
}

/// Per-deployment settings shared by the handshake and the session.
#[derive(Clone, Debug)]
pub struct Settings {
    ratchet_domain: Vec<u8>,
    flag_check: FlagCheck,
    ephemeral: EphemeralKeys,
    pool: Option<Arc<KeyPool>>,
    handshake_timeout: Option<u64>,
    idle_timeout: Option<u64>,
}

/// The handshake deadline for configurations of ML-KEM with ML-DSA, in seconds.
pub const HANDSHAKE_TIMEOUT_FAST: u64 = 30;
/// The handshake deadline for configurations with SPHINCS+ (seconds per signature at the
/// 256-bit level) or Classic McEliece (key generation up to a second, messages up to
/// 1.4 MB), in seconds.
pub const HANDSHAKE_TIMEOUT_SLOW: u64 = 120;
/// The default idle timeout, in seconds: 12 hours, as stunnel's `TIMEOUTidle`. DKTP has no
/// keep-alive, so a quiet but healthy link (a SCADA poll every few minutes) must not trip it.
pub const IDLE_TIMEOUT: u64 = 43_200;

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            ratchet_domain: RATCHET_DOMAIN.to_vec(),
            flag_check: FlagCheck::Strict,
            ephemeral: EphemeralKeys::Fastest,
            pool: None,
            handshake_timeout: None,
            idle_timeout: Some(IDLE_TIMEOUT),
        }
    }
}

impl PartialEq for Settings {
    fn eq(&self, other: &Settings) -> bool {
        self.ratchet_domain == other.ratchet_domain
            && self.flag_check == other.flag_check
            && self.ephemeral == other.ephemeral
            && self.handshake_timeout == other.handshake_timeout
            && self.idle_timeout == other.idle_timeout
            && match (&self.pool, &other.pool) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for Settings {}

impl Settings {
    /// Sets the domain identity, the cSHAKE function name N of the asymmetric-ratchet
    /// re-key (FACTS §8; integration guide §3): `"QRCS:PDEF:DKTP1A"` by default, e.g.
    /// `"QRCS:PAYMENT:DKTP1A"` or `"QRCS:SCADA:DKTP1A"` per deployment. Both peers must use
    /// the same one. The handshake labels are fixed and unaffected. An empty string is
    /// refused ([`Misuse::InvalidSetting`]).
    pub fn with_ratchet_domain(mut self, domain: &[u8]) -> Result<Settings, Error> {
        if domain.is_empty() {
            return Err(Misuse::InvalidSetting.into());
        }
        self.ratchet_domain = domain.to_vec();
        Ok(self)
    }

    /// Whether handshake packets' flags are compared (default: yes; the reference does not,
    /// FACTS §9 item 5, but always sends the right one).
    pub fn with_flag_check(mut self, flag_check: FlagCheck) -> Settings {
        self.flag_check = flag_check;
        self
    }

    /// How ephemeral KEM keys are generated.
    pub fn with_ephemeral_keys(mut self, ephemeral: EphemeralKeys) -> Settings {
        self.ephemeral = ephemeral;
        self
    }

    /// Takes ephemeral key pairs of the pool's KEM from `pool` (pre-generated in the
    /// background; a server shares one among its handshakes). Other KEMs, and
    /// [`EphemeralKeys::FromRng`], generate as before.
    pub fn with_key_pool(mut self, pool: Arc<KeyPool>) -> Settings {
        self.pool = Some(pool);
        self
    }

    /// Sets the handshake deadline in seconds from the connection's start (default: by
    /// configuration, [`HANDSHAKE_TIMEOUT_FAST`] or [`HANDSHAKE_TIMEOUT_SLOW`]). A
    /// handshake still incomplete then sends the error packet and closes.
    pub fn with_handshake_timeout(mut self, seconds: u64) -> Settings {
        self.handshake_timeout = Some(seconds);
        self
    }

    /// Sets the idle timeout in seconds (`None`: never), counted from the last packet
    /// either way (default [`IDLE_TIMEOUT`]). An idle session is closed with the orderly
    /// close.
    pub fn with_idle_timeout(mut self, seconds: Option<u64>) -> Settings {
        self.idle_timeout = seconds;
        self
    }

    /// The handshake deadline for `config`, in seconds.
    pub fn handshake_timeout(&self, config: Config) -> u64 {
        self.handshake_timeout.unwrap_or_else(|| {
            if matches!(
                config.sig(),
                SigAlg::MlDsa44 | SigAlg::MlDsa65 | SigAlg::MlDsa87
            ) && !config.kem().is_mceliece()
            {
                HANDSHAKE_TIMEOUT_FAST
            } else {
                HANDSHAKE_TIMEOUT_SLOW
            }
        })
    }

    /// The idle timeout, in seconds.
    pub fn idle_timeout(&self) -> Option<u64> {
        self.idle_timeout
    }

    /// The key pool, if one is set.
    pub fn key_pool(&self) -> Option<&Arc<KeyPool>> {
        self.pool.as_ref()
    }

    /// The ratchet domain string.
    pub fn ratchet_domain(&self) -> &[u8] {
        &self.ratchet_domain
    }

    /// The flag check in force.
    pub fn flag_check(&self) -> FlagCheck {
        self.flag_check
    }

    /// The ephemeral key generation in force.
    pub fn ephemeral_keys(&self) -> EphemeralKeys {
        self.ephemeral
    }

    pub(crate) fn generate_kem(
        &self,
        kem: KemAlg,
        rng: &mut dyn Entropy,
    ) -> Result<KemKeyPair, Error> {
        match (self.ephemeral, &self.pool) {
            (EphemeralKeys::FromRng, _) => kem.generate(rng),
            (EphemeralKeys::Fastest, Some(pool)) if pool.alg() == kem => pool.take(rng),
            (EphemeralKeys::Fastest, _) => kem.generate_ephemeral(rng),
        }
        .map_err(local_pq_error)
    }
}

/// A linked pair of peer keys: this party's local key and its peer's remote key
/// (`local.peerid == remote.keyid`, FACTS §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerKeys {
    /// This party's key (signing key, own pre-shared secret).
    pub local: LocalPeerKey,
    /// The peer's key (verification key, the peer's pre-shared secret).
    pub remote: RemotePeerKey,
}

impl PeerKeys {
    /// The configuration of the pair.
    pub fn config(&self) -> Config {
        self.local.config()
    }

    /// Refuses a pair that is not linked or mixes configurations (0x1A).
    pub fn check_link(&self) -> Result<(), Error> {
        crate::peer_key::check_link(&self.local, &self.remote)
            .map_err(|_| crate::error::PeerIncompatible::PeerKeyMismatch.into())
    }

    /// Stores advanced pre-shared secrets (what a [`PssUpdate`] carries).
    pub fn apply(&mut self, update: &PssUpdate) {
        self.local.set_pss(update.local.as_bytes());
        self.remote.set_pss(update.remote.as_bytes());
    }

    pub(crate) fn pss_update(&self) -> PssUpdate {
        PssUpdate {
            local: Pss::new(*self.local.pss()),
            remote: Pss::new(*self.remote.pss()),
        }
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

/// A step's output: the next state and the packet to send.
#[derive(Debug)]
pub struct Flight<S> {
    /// The state that awaits the peer's answer.
    pub next: S,
    /// The packet to send (header included).
    pub packet: Vec<u8>,
}

/// A step that advanced the pre-shared secrets: persist [`record`](Self::record) (the
/// advanced secrets as the pending generation, [`crate::generation`]), then send
/// [`packet`](Self::packet).
#[derive(Debug)]
pub struct Commit<S> {
    /// The next state (or the established session).
    pub next: S,
    /// The advanced pre-shared secrets.
    pub pss: PssUpdate,
    /// The peer record to store before the packet leaves: the advanced secrets pending.
    pub record: Generations,
    /// The packet to send once they are stored.
    pub packet: Vec<u8>,
}

/// A peer as a server finds it: its linked keys and the record of its secrets
/// ([`crate::generation`]). The keys' own pre-shared secrets are ignored in favour of the
/// record's candidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The server's local key for this peer and the peer's remote key.
    pub keys: PeerKeys,
    /// The confirmed generation of the secrets and at most one pending one.
    pub secrets: Generations,
}

impl From<PeerKeys> for Peer {
    /// A peer whose keys' secrets are its only, confirmed, generation.
    fn from(keys: PeerKeys) -> Peer {
        let secrets = Generations::of_keys(&keys);
        Peer { keys, secrets }
    }
}

/// Finds the keys for a connect request: the server's local key named by the key id the
/// client sent (the client addresses the server key it holds, so this is the server's key
/// id) and the remote key of the client linked to it (`local.peerid == remote.keyid`).
///
/// A concentrator holds one such pair per client; `None` refuses the connection with
/// 0x0F (key unrecognized). Implemented for closures.
pub trait PeerLookup {
    /// The pair for `keyid`, if this server has one.
    fn lookup(&mut self, keyid: &[u8; KEYID_SIZE]) -> Option<PeerKeys>;

    /// The pair and the record of its secrets; by default the pair's own secrets as its
    /// only generation. A server that keeps generations overrides this.
    fn lookup_peer(&mut self, keyid: &[u8; KEYID_SIZE]) -> Option<Peer> {
        self.lookup(keyid).map(Peer::from)
    }
}

impl<F> PeerLookup for F
where
    F: FnMut(&[u8; KEYID_SIZE]) -> Option<PeerKeys>,
{
    fn lookup(&mut self, keyid: &[u8; KEYID_SIZE]) -> Option<PeerKeys> {
        self(keyid)
    }
}

/// A server with exactly one peer: answers only its own key id.
#[derive(Clone, Debug)]
pub struct SinglePeer(pub PeerKeys);

impl PeerLookup for SinglePeer {
    fn lookup(&mut self, keyid: &[u8; KEYID_SIZE]) -> Option<PeerKeys> {
        (self.0.local.keyid() == keyid).then(|| self.0.clone())
    }
}

/// The plaintext error packet the reference sends when its handshake fails with `error`
/// (FACTS §4), or `None` where it sends nothing: the peer's own error packet, a packet too
/// short to hold a header (the reference drops the connection), and local misuse.
pub fn error_reply(error: &Error, now: u64) -> Option<[u8; PLAIN_ERROR_LEN]> {
    match error {
        Error::PeerReported { .. }
        | Error::Misuse(_)
        | Error::Malformed(Malformed::Truncated { .. }) => None,
        e => Some(packet::encode_plain_error(e.wire_code(), now)),
    }
}

// ---------------------------------------------------------------------------------------
// Shared steps

/// A header's msglen for a configured size (sizes are at most 1.4 MB).
pub(crate) fn msglen(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A received handshake packet that passed the header checks.
pub(crate) struct Received<'a> {
    /// The 21 header bytes as received (they enter the hashes and the AD).
    pub(crate) header: [u8; HEADER_LEN],
    /// The message after the header.
    pub(crate) message: Fields<'a>,
}

/// The reference's handshake header check (FACTS §6), then the packet's true length.
/// Returns the packet and the receiver's next rxseq.
pub(crate) fn receive<'a>(
    packet: &'a [u8],
    flag: Flag,
    expected_len: usize,
    rxseq: u64,
    now: u64,
    flag_check: FlagCheck,
) -> Result<(Received<'a>, u64), Error> {
    let header = Header::decode(packet)?;
    let message = packet.get(HEADER_LEN..).unwrap_or_default();
    if header.flag == Flag::ErrorCondition.as_u8() {
        let e = packet::parse_error_packet(packet, false)?;
        if let packet::ErrorPacket::Plain { code, .. } = e {
            return Err(Error::PeerReported { code });
        }
    }
    let expect = HandshakeExpect {
        flag,
        msglen: msglen(expected_len),
        rxseq,
        state_matches: true,
        flag_check,
    };
    let next = packet::check_handshake_header(&header, message, &expect, now)?;
    if message.len() != expected_len {
        return Err(Malformed::LengthMismatch {
            declared: header.msglen,
            actual: message.len(),
        }
        .into());
    }
    Ok((
        Received {
            header: header.encode(),
            message: Fields(message),
        },
        next,
    ))
}

/// A cursor over a message whose length was checked against the configuration.
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl<'a> Fields<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(Malformed::Truncated {
            needed: n,
            got: self.0.len(),
        })?;
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// The 21 header bytes of a packet this side sends.
pub(crate) fn header(flag: Flag, seq: u64, now: u64, len: usize) -> [u8; HEADER_LEN] {
    Header::new(flag, msglen(len), seq, now).encode()
}

/// `header ‖ parts...`, with room for `len` message bytes.
pub(crate) fn assemble(header: &[u8; HEADER_LEN], len: usize, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(header);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Attached signature over a transcript hash: `sig ‖ hash`.
pub(crate) fn sign(
    alg: SigAlg,
    key: &SigningKey,
    hash: &Hash,
    rng: &mut dyn Entropy,
) -> Result<Vec<u8>, Error> {
    alg.sign(key, hash, rng).map_err(local_pq_error)
}

/// Verifies an attached signature and returns the signed message; any failure is 0x02.
pub(crate) fn verify<'a>(alg: SigAlg, key: &[u8], signed: &'a [u8]) -> Result<&'a [u8], Error> {
    alg.verify(key, signed)
        .map_err(|_| CryptoFailure::Signature.into())
}

/// Compares a recomputed hash with the signed one in constant time.
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

/// A failure of a local primitive (key generation, signing, encapsulation coins).
pub(crate) fn local_pq_error(e: PqError) -> Error {
    match e {
        PqError::Random => CryptoFailure::Random.into(),
        PqError::Unsupported { .. } => CryptoFailure::Unsupported.into(),
        _ => CryptoFailure::Primitive.into(),
    }
}

/// A failure to encapsulate to the peer's key: the key is at fault unless coins or the
/// build are. An all-zero McEliece key (FACTS §11.5) has its own error and code (0x06).
pub(crate) fn encapsulation_error(e: PqError) -> Error {
    match e {
        PqError::Length { .. } | PqError::InvalidPublicKey => CryptoFailure::Encapsulation.into(),
        PqError::ZeroPublicKey => CryptoFailure::ZeroPublicKey.into(),
        e => local_pq_error(e),
    }
}

/// A failure to decapsulate the peer's ciphertext.
pub(crate) fn decapsulation_error(e: PqError) -> Error {
    match e {
        PqError::Unsupported { .. } => CryptoFailure::Unsupported.into(),
        _ => CryptoFailure::Decapsulation.into(),
    }
}

/// An RCS-512 channel for a derived key (info is empty in DKTP).
pub(crate) fn channel(key: &ChannelKey) -> Result<Rcs512Channel, Error> {
    Rcs512Channel::new(key.key(), key.nonce(), &[]).map_err(|_| CryptoFailure::Primitive.into())
}
