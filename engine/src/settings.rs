//! Per-deployment settings shared by the handshake and the session ([`Settings`]): the
//! ratchet's domain string, the flag check, how ephemeral KEM keys are made (with the
//! background key pool, [`crate::pool`]) and the deadlines.

use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Misuse, PqStep};
use crate::key_schedule::RATCHET_DOMAIN;
use crate::packet::FlagCheck;
use crate::pool::KeyPool;
use crate::pq::{Entropy, KemAlg, KemKeyPair, SigAlg};

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
        .map_err(|e| Error::pq(PqStep::Local, e))
    }
}
