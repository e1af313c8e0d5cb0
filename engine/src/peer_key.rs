//! Peer keys: the reference's `.dskey` (local) and `.dpkey` (remote) objects (FACTS §5).
//!
//! Each party generates its own pair with [`generate`] (expiry now + 365 days, 32 random
//! bytes of pre-shared secret, then the signature key pair), keeps the [`LocalPeerKey`] and
//! hands the [`RemotePeerKey`] to its peer. [`link`] binds a local key to the peer's remote
//! key (`local.peerid = remote.keyid`); [`check_link`] refuses a mismatch (wire 0x1A). A
//! linked pair is one [`PeerKeys`], what the handshake takes.
//!
//! Layouts (integers little-endian):
//! - remote: `config[36] ‖ expiration u64 ‖ keyid[16] ‖ pss[32] ‖ verkey`
//! - local: `config[36] ‖ expiration u64 ‖ keyid[16] ‖ peerid[16] ‖ pss[32] ‖ sigkey ‖ verkey`
//!
//! Time and randomness are arguments. Secrets (pss, sigkey) zeroize on drop and never print.

use crate::config::{CONFIG_SIZE, Config, ConfigError};
use crate::error::{Error, PeerIncompatible};
use crate::key_schedule::{Pss, PssUpdate};
use crate::pq::{Entropy, PqError, SigningKey};
use core::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Key identity bytes.
pub const KEYID_SIZE: usize = 16;
/// Pre-shared secret bytes.
pub const PSS_SIZE: usize = 32;
/// Lifetime the reference gives a new key: 365 days, in seconds.
pub const KEY_LIFETIME: u64 = 365 * 24 * 60 * 60;

/// Why a peer key was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerKeyError {
    /// The configuration field is malformed or unknown.
    Config(ConfigError),
    /// The serialized key's length does not match its configuration.
    Length {
        /// Length the configuration implies.
        expected: usize,
        /// Length given.
        actual: usize,
    },
    /// The local key is not linked to this remote key (peerid ≠ keyid, or another
    /// configuration): wire error 0x1A.
    Mismatch,
    /// The key has expired: wire error 0x0E.
    Expired,
    /// Generating the signature key pair failed.
    Pq(PqError),
}

impl PeerKeyError {
    /// The DKTP wire error code for this refusal.
    pub const fn wire_code(&self) -> u8 {
        match self {
            PeerKeyError::Config(_) => 0x18,
            PeerKeyError::Length { .. } => 0x0C,
            PeerKeyError::Mismatch => 0x1A,
            PeerKeyError::Expired => 0x0E,
            PeerKeyError::Pq(_) => 0x1C,
        }
    }
}

impl fmt::Display for PeerKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerKeyError::Config(e) => write!(f, "peer key: {e}"),
            PeerKeyError::Length { expected, actual } => write!(
                f,
                "peer key file is {actual} bytes but its configuration needs {expected}: the file is \
                 truncated or not a DKTP key"
            ),
            PeerKeyError::Mismatch => f.write_str(
                "peer key mismatch: the local key's peer id is not the remote key's key id (or the \
                 configurations differ); link the keys of the intended peer",
            ),
            PeerKeyError::Expired => {
                f.write_str("peer key expired: generate and exchange new keys")
            }
            PeerKeyError::Pq(e) => write!(f, "peer key generation: {e}"),
        }
    }
}

impl std::error::Error for PeerKeyError {}

crate::error::from_variants!(PeerKeyError {
    ConfigError => Config,
    PqError => Pq,
});

/// The key a party keeps: its signing key, identities and pre-shared secret. It holds the
/// remote key it hands out ([`LocalPeerKey::remote`]) and adds the peer's id and the
/// signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalPeerKey {
    public: RemotePeerKey,
    peerid: [u8; KEYID_SIZE],
    sigkey: SigningKey,
}

/// The key a party hands to its peer: verification key, identity and pre-shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct RemotePeerKey {
    config: Config,
    expiration: u64,
    keyid: [u8; KEYID_SIZE],
    pss: Zeroizing<[u8; PSS_SIZE]>,
    verkey: Vec<u8>,
}

/// Generates a key pair as the reference's `dktp_generate_keypair` does: expiration =
/// `now` + 365 days, pss = 32 bytes from `rng`, then the signature key pair from `rng`.
/// The local key's peer id is zero until [`link`].
pub fn generate(
    config: Config,
    keyid: [u8; KEYID_SIZE],
    now: u64,
    rng: &mut dyn Entropy,
) -> Result<(LocalPeerKey, RemotePeerKey), PeerKeyError> {
    let expiration = now.saturating_add(KEY_LIFETIME);
    let mut pss = Zeroizing::new([0u8; PSS_SIZE]);
    rng.fill(&mut pss[..])?;
    let kp = config.sig().generate(rng)?;
    let local = LocalPeerKey {
        public: RemotePeerKey {
            config,
            expiration,
            keyid,
            pss,
            verkey: kp.verifying,
        },
        peerid: [0u8; KEYID_SIZE],
        sigkey: kp.signing,
    };
    let remote = local.remote();
    Ok((local, remote))
}

/// Binds `local` to the peer whose remote key is `remote`: `local.peerid = remote.keyid`.
pub fn link(local: &mut LocalPeerKey, remote: &RemotePeerKey) {
    local.peerid = remote.keyid;
}

/// Refuses a local/remote pair that is not linked (peer id ≠ key id) or whose
/// configurations differ (wire 0x1A).
pub fn check_link(local: &LocalPeerKey, remote: &RemotePeerKey) -> Result<(), PeerKeyError> {
    if local.peerid == remote.keyid && local.config() == remote.config {
        Ok(())
    } else {
        Err(PeerKeyError::Mismatch)
    }
}

/// Reads the fields both layouts start with (`config ‖ expiration ‖ keyid`), then checks
/// the image's whole length against what its configuration gives (`size`). Returns them
/// and a reader at the next field.
fn parse_header(
    bytes: &[u8],
    size: fn(&Config) -> usize,
) -> Result<(Config, u64, [u8; KEYID_SIZE], Reader<'_>), PeerKeyError> {
    let cfg = bytes.get(..CONFIG_SIZE).ok_or(PeerKeyError::Length {
        expected: CONFIG_SIZE + 8 + KEYID_SIZE,
        actual: bytes.len(),
    })?;
    let config = Config::from_wire(cfg)?;
    let mut r = Reader {
        bytes,
        pos: CONFIG_SIZE,
    };
    let expiration = u64::from_le_bytes(r.array()?);
    let keyid = r.array()?;
    let expected = size(&config);
    if bytes.len() != expected {
        return Err(PeerKeyError::Length {
            expected,
            actual: bytes.len(),
        });
    }
    Ok((config, expiration, keyid, r))
}

/// A cursor over a buffer whose total length was checked beforehand.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PeerKeyError> {
        let end = self.pos.saturating_add(n);
        let s = self.bytes.get(self.pos..end).ok_or(PeerKeyError::Length {
            expected: end,
            actual: self.bytes.len(),
        })?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PeerKeyError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
}

impl LocalPeerKey {
    /// Parses a `.dskey` image, checking its length against its configuration.
    pub fn from_bytes(bytes: &[u8]) -> Result<LocalPeerKey, PeerKeyError> {
        let (config, expiration, keyid, mut r) = parse_header(bytes, Config::local_peer_key_size)?;
        let s = config.sig().sizes();
        let peerid = r.array()?;
        let pss = Zeroizing::new(r.array()?);
        let sigkey = SigningKey::from_bytes(config.sig(), r.take(s.secret_key)?)?;
        let verkey = r.take(s.public_key)?.to_vec();
        Ok(LocalPeerKey {
            public: RemotePeerKey {
                config,
                expiration,
                keyid,
                pss,
                verkey,
            },
            peerid,
            sigkey,
        })
    }

    /// The `.dskey` image (contains secrets; zeroized when dropped).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let k = &self.public;
        let mut out = Zeroizing::new(Vec::with_capacity(k.config.local_peer_key_size()));
        out.extend_from_slice(&k.config.to_wire());
        out.extend_from_slice(&k.expiration.to_le_bytes());
        out.extend_from_slice(&k.keyid);
        out.extend_from_slice(&self.peerid);
        out.extend_from_slice(&k.pss[..]);
        out.extend_from_slice(self.sigkey.expose());
        out.extend_from_slice(&k.verkey);
        out
    }

    /// The remote key to hand to the peer (same config, expiry, key id, pss, verkey).
    pub fn remote(&self) -> RemotePeerKey {
        self.public.clone()
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.public.config()
    }
    /// Expiration, Unix seconds.
    pub fn expiration(&self) -> u64 {
        self.public.expiration()
    }
    /// This party's key id.
    pub fn keyid(&self) -> &[u8; KEYID_SIZE] {
        self.public.keyid()
    }
    /// The linked peer's key id.
    pub fn peerid(&self) -> &[u8; KEYID_SIZE] {
        &self.peerid
    }
    /// The pre-shared secret (secret).
    pub fn pss(&self) -> &[u8; PSS_SIZE] {
        self.public.pss()
    }
    /// Stores the pre-shared secret a completed handshake advanced (FACTS §5).
    pub fn set_pss(&mut self, pss: &[u8; PSS_SIZE]) {
        self.public.set_pss(pss);
    }
    /// The signing key (secret).
    pub fn signing_key(&self) -> &SigningKey {
        &self.sigkey
    }
    /// The verification key.
    pub fn verification_key(&self) -> &[u8] {
        self.public.verification_key()
    }
    /// Whether the key has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        self.public.is_expired(now)
    }
    /// [`PeerKeyError::Expired`] (wire 0x0E) when expired at `now`.
    pub fn check_expiry(&self, now: u64) -> Result<(), PeerKeyError> {
        self.public.check_expiry(now)
    }
    /// Erases the secrets and identities (the reference's `dktp_local_peer_key_erase`).
    pub fn erase(&mut self) {
        self.sigkey = SigningKey::zeroed(self.public.config.sig());
        self.peerid.zeroize();
        self.public.erase();
    }
}

impl RemotePeerKey {
    /// Parses a `.dpkey` image, checking its length against its configuration.
    pub fn from_bytes(bytes: &[u8]) -> Result<RemotePeerKey, PeerKeyError> {
        let (config, expiration, keyid, mut r) = parse_header(bytes, Config::remote_peer_key_size)?;
        let pss = Zeroizing::new(r.array()?);
        let verkey = r.take(config.sig().sizes().public_key)?.to_vec();
        Ok(RemotePeerKey {
            config,
            expiration,
            keyid,
            pss,
            verkey,
        })
    }

    /// The `.dpkey` image (contains the pre-shared secret; zeroized when dropped).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.config.remote_peer_key_size()));
        out.extend_from_slice(&self.config.to_wire());
        out.extend_from_slice(&self.expiration.to_le_bytes());
        out.extend_from_slice(&self.keyid);
        out.extend_from_slice(&self.pss[..]);
        out.extend_from_slice(&self.verkey);
        out
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.config
    }
    /// Expiration, Unix seconds.
    pub fn expiration(&self) -> u64 {
        self.expiration
    }
    /// The peer's key id.
    pub fn keyid(&self) -> &[u8; KEYID_SIZE] {
        &self.keyid
    }
    /// The peer's pre-shared secret (secret).
    pub fn pss(&self) -> &[u8; PSS_SIZE] {
        &self.pss
    }
    /// Stores the pre-shared secret a completed handshake advanced.
    pub fn set_pss(&mut self, pss: &[u8; PSS_SIZE]) {
        self.pss.copy_from_slice(pss);
    }
    /// The peer's verification key.
    pub fn verification_key(&self) -> &[u8] {
        &self.verkey
    }
    /// Whether the key has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: u64) -> bool {
        now > self.expiration
    }
    /// [`PeerKeyError::Expired`] (wire 0x0E) when expired at `now`.
    pub fn check_expiry(&self, now: u64) -> Result<(), PeerKeyError> {
        if self.is_expired(now) {
            Err(PeerKeyError::Expired)
        } else {
            Ok(())
        }
    }
    /// Erases the secret and identities.
    pub fn erase(&mut self) {
        self.pss.zeroize();
        self.verkey.zeroize();
        self.keyid.zeroize();
        self.expiration = 0;
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
        check_link(&self.local, &self.remote).map_err(|_| PeerIncompatible::PeerKeyMismatch.into())
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

impl fmt::Debug for LocalPeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.public;
        f.debug_struct("LocalPeerKey")
            .field("config", &k.config.to_string())
            .field("expiration", &k.expiration)
            .field("keyid", &Hex(&k.keyid))
            .field("peerid", &Hex(&self.peerid))
            .field("pss", &"<redacted>")
            .field("sigkey", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RemotePeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotePeerKey")
            .field("config", &self.config.to_string())
            .field("expiration", &self.expiration)
            .field("keyid", &Hex(&self.keyid))
            .field("pss", &"<redacted>")
            .finish_non_exhaustive()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha3::Shake256;
    use sha3::digest::{ExtendableOutput, Update, XofReader};

    /// The vectors' RNG: the SHAKE-256(seed) stream, consumed in order.
    struct ShakeStream(<Shake256 as ExtendableOutput>::Reader);

    impl ShakeStream {
        fn new(seed: &[u8]) -> Self {
            let mut h = Shake256::default();
            h.update(seed);
            ShakeStream(h.finalize_xof())
        }
    }

    impl Entropy for ShakeStream {
        fn fill(&mut self, dest: &mut [u8]) -> Result<(), PqError> {
            self.0.read(dest);
            Ok(())
        }
    }

    fn vectors() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../vectors/data/dktp_packets.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn hex_field(v: &serde_json::Value, k: &str) -> Vec<u8> {
        hex::decode(v[k].as_str().unwrap()).unwrap()
    }

    #[test]
    fn reference_key_bytes_round_trip() {
        let v = vectors();
        let pk = &v["peer_keys"];
        let local_bytes = hex_field(pk, "local_peer_key_serialized");
        let remote_bytes = hex_field(pk, "remote_peer_key_serialized");
        let local = LocalPeerKey::from_bytes(&local_bytes).unwrap();
        let remote = RemotePeerKey::from_bytes(&remote_bytes).unwrap();
        assert_eq!(&local.to_bytes()[..], &local_bytes[..]);
        assert_eq!(&remote.to_bytes()[..], &remote_bytes[..]);
        assert_eq!(local.keyid().to_vec(), hex_field(pk, "keyid"));
        assert_eq!(local.peerid().to_vec(), hex_field(pk, "peerid"));
        assert_eq!(local.pss().to_vec(), hex_field(pk, "pss"));
        assert_eq!(local.signing_key().expose(), &hex_field(pk, "sigkey")[..]);
        assert_eq!(remote.verification_key(), &hex_field(pk, "verkey")[..]);
        assert_eq!(local.expiration(), pk["expiration"].as_u64().unwrap());
        assert_eq!(local.remote(), remote);
    }

    /// Regenerates the reference's key pair from its recorded clock and RNG stream.
    #[test]
    fn generation_reproduces_reference_layout() {
        let v = vectors();
        let pk = &v["peer_keys"];
        // The generation note names the clock and the RNG seed of the recorded keys.
        let note = pk["generation"].as_str().unwrap();
        let clock: u64 = note
            .split("clock ")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let seed = note
            .split("SHAKE-256('")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        let keyid: [u8; 16] = hex_field(pk, "keyid").try_into().unwrap();
        let mut rng = ShakeStream::new(seed.as_bytes());
        let (mut local, remote) = generate(Config::DEFAULT, keyid, clock, &mut rng).unwrap();
        assert_eq!(
            &remote.to_bytes()[..],
            &hex_field(pk, "remote_peer_key_serialized")[..]
        );
        // The recorded local key was linked to the peer id b0..bf.
        let peer = RemotePeerKey {
            keyid: hex_field(pk, "peerid").try_into().unwrap(),
            ..remote.clone()
        };
        assert_eq!(check_link(&local, &peer), Err(PeerKeyError::Mismatch));
        link(&mut local, &peer);
        assert!(check_link(&local, &peer).is_ok());
        assert_eq!(
            &local.to_bytes()[..],
            &hex_field(pk, "local_peer_key_serialized")[..]
        );
    }

    #[test]
    fn lengths_and_configs_are_checked() {
        let v = vectors();
        let local_bytes = hex_field(&v["peer_keys"], "local_peer_key_serialized");
        let remote_bytes = hex_field(&v["peer_keys"], "remote_peer_key_serialized");
        for n in [0, 10, 36, 60, local_bytes.len() - 1] {
            assert!(LocalPeerKey::from_bytes(&local_bytes[..n]).is_err());
        }
        let mut longer = local_bytes.clone();
        longer.push(0);
        assert!(matches!(
            LocalPeerKey::from_bytes(&longer),
            Err(PeerKeyError::Length { .. })
        ));
        assert!(RemotePeerKey::from_bytes(&local_bytes).is_err());
        assert!(LocalPeerKey::from_bytes(&remote_bytes).is_err());
        let mut bad = remote_bytes.clone();
        bad[0] = b'x';
        assert!(matches!(
            RemotePeerKey::from_bytes(&bad),
            Err(PeerKeyError::Config(_))
        ));
    }

    #[test]
    fn every_config_generates_the_reference_layout() {
        for config in Config::ALL {
            if config.sig().is_sphincs() && cfg!(debug_assertions) {
                continue; // SPHINCS+ key generation is slow unoptimized; release runs it.
            }
            let (local, remote) = match generate(config, [1; 16], 1000, &mut crate::pq::OsEntropy) {
                Ok(k) => k,
                Err(PeerKeyError::Pq(PqError::Unsupported { .. })) => continue,
                Err(e) => panic!("{config}: {e}"),
            };
            let lb = local.to_bytes();
            let rb = remote.to_bytes();
            assert_eq!(lb.len(), config.local_peer_key_size());
            assert_eq!(rb.len(), config.remote_peer_key_size());
            assert_eq!(&lb[..36], &config.to_wire());
            assert_eq!(&lb[36..44], &(1000 + KEY_LIFETIME).to_le_bytes());
            assert_eq!(LocalPeerKey::from_bytes(&lb).unwrap(), local);
            assert_eq!(RemotePeerKey::from_bytes(&rb).unwrap(), remote);
            assert!(!local.is_expired(1000 + KEY_LIFETIME));
            assert!(local.is_expired(1001 + KEY_LIFETIME));
            assert_eq!(remote.check_expiry(u64::MAX), Err(PeerKeyError::Expired));
        }
    }

    #[test]
    fn erase_and_debug_hide_secrets() {
        let (mut local, _) =
            generate(Config::DEFAULT, [7; 16], 0, &mut crate::pq::OsEntropy).unwrap();
        local.set_pss(&[0xee; 32]);
        let s = format!("{local:?}");
        assert!(!s.contains("eeee") && s.contains("<redacted>"), "{s}");
        local.erase();
        assert_eq!(local.pss(), &[0u8; 32]);
        assert!(local.signing_key().expose().iter().all(|&b| b == 0));
    }
}
