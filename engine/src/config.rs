//! DKTP configurations: the `<signature>_<kem>_sha3_rcs` strings of FACTS §3 / §10, their
//! algorithms, and the message and key-file sizes that follow from them.
//!
//! The reference knows exactly fourteen configurations (its `DKTP_CONFIG_*` choices); any
//! other string is [`ConfigError::Unknown`]. On the wire a configuration is the ASCII string
//! NUL-padded to [`CONFIG_SIZE`] bytes. The reference spells the SPHINCS+-192s token
//! `sphincs-3s`; that spelling is what we emit, and `sphincs-s3s` is accepted in text.

use crate::pq::{KemAlg, SigAlg};
use core::fmt;
use core::str::FromStr;

/// Bytes of the configuration field on the wire and in key files.
pub const CONFIG_SIZE: usize = 36;
/// Largest payload the reference reads in one data packet (FACTS §4).
pub const MAX_DATA_PAYLOAD: usize = 0x10000;
/// SHA3-512 digest carried after each handshake signature.
const HASH_SIZE: usize = 64;
/// Key identity bytes.
const KEYID_SIZE: usize = 16;
/// Pre-shared secret bytes.
const PSS_SIZE: usize = 32;
/// Expiration field bytes.
const EXPIRATION_SIZE: usize = 8;
/// RCS-512 tag bytes.
const TAG_SIZE: usize = 64;

/// Why a configuration string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not one of the reference's configurations (wire error 0x18, unknown protocol).
    Unknown(String),
    /// The wire field is not a NUL-padded ASCII string of [`CONFIG_SIZE`] bytes.
    Malformed,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unknown(s) => write!(
                f,
                "unknown DKTP configuration {s:?}: use one of the reference's configurations, e.g. \
                 {}",
                Config::DEFAULT
            ),
            ConfigError::Malformed => write!(
                f,
                "malformed configuration field: expected an ASCII string NUL-padded to {CONFIG_SIZE} bytes"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The DKTP wire error code (0x18, unknown protocol).
    pub const fn wire_code(&self) -> u8 {
        0x18
    }
}

/// One DKTP configuration: a signature scheme and a KEM (hash SHA3, cipher RCS are fixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    sig: SigAlg,
    kem: KemAlg,
}

/// Handshake and ratchet message lengths (the header's msglen; the packet adds 21 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageSizes {
    /// 0x01: keyid ‖ config ‖ Sign(hm1).
    pub connect_request: usize,
    /// 0x02: Sign(hm2) ‖ ek.
    pub connect_response: usize,
    /// 0x05: ct ‖ ek ‖ Sign(hm3).
    pub exchange_request: usize,
    /// 0x06: ct ‖ Sign(hm4).
    pub exchange_response: usize,
    /// 0x07: RCS(sch4) + tag.
    pub establish_request: usize,
    /// 0x08: RCS(sch5) + tag.
    pub establish_response: usize,
    /// 0x0E: RCS(Sign(H(ek)) ‖ ek) + tag.
    pub asymmetric_ratchet_request: usize,
    /// 0x0F: RCS(Sign(H(ct)) ‖ ct) + tag.
    pub asymmetric_ratchet_response: usize,
}

impl Config {
    /// The reference's default, `dilithium-s5_kyber-s5_sha3_rcs`.
    pub const DEFAULT: Config = Config {
        sig: SigAlg::MlDsa87,
        kem: KemAlg::MlKem1024,
    };

    /// Every configuration the reference can be built with (FACTS §10).
    pub const ALL: [Config; 14] = [
        Config {
            sig: SigAlg::MlDsa44,
            kem: KemAlg::MlKem512,
        },
        Config {
            sig: SigAlg::MlDsa65,
            kem: KemAlg::MlKem768,
        },
        Config {
            sig: SigAlg::MlDsa87,
            kem: KemAlg::MlKem1024,
        },
        Config {
            sig: SigAlg::MlDsa87,
            kem: KemAlg::KyberK5,
        },
        Config {
            sig: SigAlg::MlDsa44,
            kem: KemAlg::McEliece348864,
        },
        Config {
            sig: SigAlg::MlDsa65,
            kem: KemAlg::McEliece460896,
        },
        Config {
            sig: SigAlg::MlDsa87,
            kem: KemAlg::McEliece6688128,
        },
        Config {
            sig: SigAlg::MlDsa87,
            kem: KemAlg::McEliece6960119,
        },
        Config {
            sig: SigAlg::MlDsa87,
            kem: KemAlg::McEliece8192128,
        },
        Config {
            sig: SigAlg::Sphincs128s,
            kem: KemAlg::McEliece348864,
        },
        Config {
            sig: SigAlg::Sphincs192s,
            kem: KemAlg::McEliece460896,
        },
        Config {
            sig: SigAlg::Sphincs256s,
            kem: KemAlg::McEliece6688128,
        },
        Config {
            sig: SigAlg::Sphincs256s,
            kem: KemAlg::McEliece6960119,
        },
        Config {
            sig: SigAlg::Sphincs256s,
            kem: KemAlg::McEliece8192128,
        },
    ];

    /// The configuration for a pair of algorithms, if the reference has it.
    pub fn new(sig: SigAlg, kem: KemAlg) -> Result<Config, ConfigError> {
        let c = Config { sig, kem };
        if Config::ALL.contains(&c) {
            Ok(c)
        } else {
            Err(ConfigError::Unknown(format!(
                "{}_{}_sha3_rcs",
                sig.token(),
                kem.token()
            )))
        }
    }

    /// The signature scheme.
    pub const fn sig(&self) -> SigAlg {
        self.sig
    }

    /// The KEM.
    pub const fn kem(&self) -> KemAlg {
        self.kem
    }

    /// The configuration string as the reference spells it.
    pub fn name(&self) -> String {
        format!("{}_{}_sha3_rcs", self.sig.token(), self.kem.token())
    }

    /// The 36-byte NUL-padded wire / key-file form.
    pub fn to_wire(&self) -> [u8; CONFIG_SIZE] {
        let mut out = [0u8; CONFIG_SIZE];
        let name = self.name();
        // Every name is at most 33 bytes (checked by a test), so this never truncates.
        for (o, b) in out.iter_mut().zip(name.bytes()) {
            *o = b;
        }
        out
    }

    /// Parses the wire form: a known string followed only by NUL bytes.
    pub fn from_wire(field: &[u8]) -> Result<Config, ConfigError> {
        if field.len() != CONFIG_SIZE {
            return Err(ConfigError::Malformed);
        }
        let end = field.iter().position(|&b| b == 0).unwrap_or(CONFIG_SIZE);
        let (text, pad) = field.split_at(end);
        if pad.iter().any(|&b| b != 0) {
            return Err(ConfigError::Malformed);
        }
        let s = core::str::from_utf8(text).map_err(|_| ConfigError::Malformed)?;
        Config::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| ConfigError::Unknown(s.to_owned()))
    }

    /// Remote peer key file (`.dpkey`) size: config ‖ expiration ‖ keyid ‖ pss ‖ verkey.
    pub const fn remote_peer_key_size(&self) -> usize {
        CONFIG_SIZE + EXPIRATION_SIZE + KEYID_SIZE + PSS_SIZE + self.sig.sizes().public_key
    }

    /// Local peer key file (`.dskey`) size: config ‖ expiration ‖ keyid ‖ peerid ‖ pss ‖
    /// sigkey ‖ verkey.
    pub const fn local_peer_key_size(&self) -> usize {
        let s = self.sig.sizes();
        CONFIG_SIZE + EXPIRATION_SIZE + 2 * KEYID_SIZE + PSS_SIZE + s.secret_key + s.public_key
    }

    /// Attached signature over a SHA3-512 digest, as carried in handshake messages.
    pub const fn signed_hash_size(&self) -> usize {
        self.sig.sizes().signature + HASH_SIZE
    }

    /// Message lengths of every handshake and ratchet packet.
    pub const fn message_sizes(&self) -> MessageSizes {
        let k = self.kem.sizes();
        let sh = self.signed_hash_size();
        MessageSizes {
            connect_request: KEYID_SIZE + CONFIG_SIZE + sh,
            connect_response: sh + k.public_key,
            exchange_request: k.ciphertext + k.public_key + sh,
            exchange_response: k.ciphertext + sh,
            establish_request: HASH_SIZE + TAG_SIZE,
            establish_response: HASH_SIZE + TAG_SIZE,
            asymmetric_ratchet_request: sh + k.public_key + TAG_SIZE,
            asymmetric_ratchet_response: sh + k.ciphertext + TAG_SIZE,
        }
    }

    /// Whether the asymmetric ratchet can run against the reference: its request must fit in
    /// one data packet (not so with McEliece, FACTS §11.2).
    pub const fn asymmetric_ratchet_possible(&self) -> bool {
        self.message_sizes().asymmetric_ratchet_request <= MAX_DATA_PAYLOAD
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_sha3_rcs", self.sig.token(), self.kem.token())
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    /// Parses a configuration string; also accepts `sphincs-s3s` for the reference's
    /// `sphincs-3s`.
    fn from_str(s: &str) -> Result<Config, ConfigError> {
        let unknown = || ConfigError::Unknown(s.to_owned());
        let rest = s.strip_suffix("_sha3_rcs").ok_or_else(unknown)?;
        let (sig, kem) = rest.split_once('_').ok_or_else(unknown)?;
        let sig = SigAlg::from_token(sig).ok_or_else(unknown)?;
        let kem = KemAlg::from_token(kem).ok_or_else(unknown)?;
        Config::new(sig, kem).map_err(|_| unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_dilithium5_kyber5() {
        assert_eq!(
            Config::default().to_string(),
            "dilithium-s5_kyber-s5_sha3_rcs"
        );
        assert_eq!(Config::DEFAULT.remote_peer_key_size(), 2684);
        assert_eq!(Config::DEFAULT.local_peer_key_size(), 7596);
    }

    #[test]
    fn every_config_round_trips_text_and_wire() {
        for c in Config::ALL {
            let name = c.to_string();
            assert!(name.len() < CONFIG_SIZE, "{name}");
            assert_eq!(name.parse::<Config>().unwrap(), c);
            let wire = c.to_wire();
            assert_eq!(&wire[..name.len()], name.as_bytes());
            assert!(wire[name.len()..].iter().all(|&b| b == 0));
            assert_eq!(Config::from_wire(&wire).unwrap(), c);
        }
    }

    #[test]
    fn reference_spelling_and_alias() {
        let c: Config = "sphincs-s3s_mceliece-s3_sha3_rcs".parse().unwrap();
        assert_eq!(c.to_string(), "sphincs-3s_mceliece-s3_sha3_rcs");
    }

    #[test]
    fn unknown_and_malformed_are_errors() {
        for s in [
            "",
            "dilithium-s5_kyber-s5",
            "dilithium-s1_kyber-s5_sha3_rcs",
            "rsa_kyber-s5_sha3_rcs",
        ] {
            assert!(
                matches!(s.parse::<Config>(), Err(ConfigError::Unknown(_))),
                "{s}"
            );
        }
        let mut w = Config::DEFAULT.to_wire();
        w[35] = b'x';
        assert_eq!(Config::from_wire(&w), Err(ConfigError::Malformed));
        assert_eq!(Config::from_wire(&w[..35]), Err(ConfigError::Malformed));
        let mut w = [0u8; CONFIG_SIZE];
        w[..4].copy_from_slice(b"abcd");
        assert!(matches!(
            Config::from_wire(&w),
            Err(ConfigError::Unknown(_))
        ));
    }

    /// Sizes against pqc_sets.json `dktp_configurations` (the reference's own numbers).
    #[test]
    fn sizes_match_reference_vectors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/data/pqc_sets.json");
        let text = std::fs::read_to_string(path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let confs = v["dktp_configurations"].as_array().unwrap();
        assert_eq!(confs.len(), Config::ALL.len());
        for e in confs {
            let c: Config = e["config_string"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                c.local_peer_key_size() as u64,
                e["local_peer_key_file_size (.dskey)"].as_u64().unwrap()
            );
            assert_eq!(
                c.remote_peer_key_size() as u64,
                e["remote_peer_key_file_size (.dpkey)"].as_u64().unwrap()
            );
            let m = &e["message_len (header msglen field; packet = 21 + this)"];
            let s = c.message_sizes();
            for (k, ours) in [
                ("connect_request", s.connect_request),
                ("connect_response", s.connect_response),
                ("exchange_request", s.exchange_request),
                ("exchange_response", s.exchange_response),
                ("establish_request", s.establish_request),
                ("establish_response", s.establish_response),
                ("asymmetric_ratchet_request", s.asymmetric_ratchet_request),
                ("asymmetric_ratchet_response", s.asymmetric_ratchet_response),
            ] {
                assert_eq!(ours as u64, m[k].as_u64().unwrap(), "{c} {k}");
            }
            assert_eq!(
                c.asymmetric_ratchet_possible(),
                e["asymmetric_ratchet_possible"].as_bool().unwrap()
            );
        }
    }
}
