//! Operations callable by set name, for speed measurements (`dktp speed` prints
//! `pq_ops_per_s[set][op]`). The engine has no clock: a caller times [`PqBench::run`].
//!
//! ```no_run
//! use dktp::pq::speed::{PqBench, PqOp};
//! use dktp::pq::OsEntropy;
//! let mut b = PqBench::new("kyber-s5", &mut OsEntropy).unwrap();
//! let start = std::time::Instant::now();
//! for _ in 0..100 {
//!     b.run(PqOp::Decaps, &mut OsEntropy).unwrap();
//! }
//! println!("{:.0} decaps/s", 100.0 / start.elapsed().as_secs_f64());
//! ```

use super::{Entropy, KemAlg, KemKeyPair, PqError, SigAlg, SigKeyPair};
use core::fmt;

/// One timed operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PqOp {
    /// KEM or signature key generation.
    Keygen,
    /// KEM encapsulation.
    Encaps,
    /// KEM decapsulation.
    Decaps,
    /// Attached signing of a 64-byte digest.
    Sign,
    /// Attached verification.
    Verify,
}

impl PqOp {
    /// The name used in reports.
    pub const fn name(self) -> &'static str {
        match self {
            PqOp::Keygen => "keygen",
            PqOp::Encaps => "encaps",
            PqOp::Decaps => "decaps",
            PqOp::Sign => "sign",
            PqOp::Verify => "verify",
        }
    }
}

impl fmt::Display for PqOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every configuration token with its operations.
pub fn all_sets() -> Vec<(&'static str, &'static [PqOp])> {
    let mut v: Vec<(&'static str, &'static [PqOp])> =
        KemAlg::ALL.iter().map(|a| (a.token(), KEM_OPS)).collect();
    v.extend(SigAlg::ALL.iter().map(|a| (a.token(), SIG_OPS)));
    v
}

const KEM_OPS: &[PqOp] = &[PqOp::Keygen, PqOp::Encaps, PqOp::Decaps];
const SIG_OPS: &[PqOp] = &[PqOp::Keygen, PqOp::Sign, PqOp::Verify];

enum State {
    Kem {
        alg: KemAlg,
        kp: KemKeyPair,
        ct: Vec<u8>,
    },
    Sig {
        alg: SigAlg,
        kp: SigKeyPair,
        signed: Vec<u8>,
    },
}

/// Prepared keys, ciphertext and signature for one parameter set.
pub struct PqBench {
    state: State,
}

impl fmt::Debug for PqBench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Kem { alg, .. } => write!(f, "PqBench({alg})"),
            State::Sig { alg, .. } => write!(f, "PqBench({alg})"),
        }
    }
}

impl PqBench {
    /// Prepares a set by its configuration token (`kyber-s5`, `dilithium-s5`, ...).
    /// McEliece key pairs come from the ephemeral (fast) path where one exists.
    pub fn new(token: &str, rng: &mut dyn Entropy) -> Result<PqBench, PqError> {
        if let Some(alg) = KemAlg::from_token(token) {
            let kp = alg.generate_ephemeral(rng)?;
            let (ct, _) = alg.encapsulate(&kp.public, rng)?;
            return Ok(PqBench {
                state: State::Kem { alg, kp, ct },
            });
        }
        if let Some(alg) = SigAlg::from_token(token) {
            let kp = alg.generate(rng)?;
            let signed = alg.sign(&kp.signing, &[0x5a; 64], rng)?;
            return Ok(PqBench {
                state: State::Sig { alg, kp, signed },
            });
        }
        Err(PqError::Unsupported {
            alg: "unknown token",
            reason: "not a DKTP parameter-set token",
        })
    }

    /// The operations this set has.
    pub fn ops(&self) -> &'static [PqOp] {
        match self.state {
            State::Kem { .. } => KEM_OPS,
            State::Sig { .. } => SIG_OPS,
        }
    }

    /// Runs one operation.
    pub fn run(&mut self, op: PqOp, rng: &mut dyn Entropy) -> Result<(), PqError> {
        match (&self.state, op) {
            (State::Kem { alg, .. }, PqOp::Keygen) => alg.generate_ephemeral(rng).map(drop),
            (State::Kem { alg, kp, .. }, PqOp::Encaps) => {
                alg.encapsulate(&kp.public, rng).map(drop)
            }
            (State::Kem { alg, kp, ct }, PqOp::Decaps) => alg.decapsulate(&kp.secret, ct).map(drop),
            (State::Sig { alg, .. }, PqOp::Keygen) => alg.generate(rng).map(drop),
            (State::Sig { alg, kp, .. }, PqOp::Sign) => {
                alg.sign(&kp.signing, &[0x5a; 64], rng).map(drop)
            }
            (State::Sig { alg, kp, signed }, PqOp::Verify) => {
                alg.verify(&kp.verifying, signed).map(drop)
            }
            _ => Err(PqError::Unsupported {
                alg: "operation",
                reason: "not an operation of this set",
            }),
        }
    }
}
