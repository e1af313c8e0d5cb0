//! ML-DSA (FIPS 204), pure mode, empty context, deterministic signing (rnd = 0³²), as the
//! reference uses it. Native: `libcrux-ml-dsa` (AVX2 chosen at run time). wasm32 (and
//! native builds with the `pure` feature): RustCrypto `ml-dsa`.

use super::{PqError, SecretBytes, SigAlg};

/// Key generation from ξ; returns (vk, expanded sk).
pub(super) fn keygen(alg: SigAlg, xi: &[u8]) -> Result<(Vec<u8>, SecretBytes), PqError> {
    let xi: [u8; 32] = xi.try_into().map_err(|_| PqError::Length {
        what: "ML-DSA seed",
        expected: 32,
        actual: xi.len(),
    })?;
    backend::keygen(alg, xi)
}

/// Deterministic signature (detached) over `msg`.
pub(super) fn sign(alg: SigAlg, sk: &[u8], msg: &[u8]) -> Result<Vec<u8>, PqError> {
    backend::sign(alg, sk, msg)
}

/// Verification of a detached signature.
pub(super) fn verify(alg: SigAlg, vk: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool, PqError> {
    backend::verify(alg, vk, msg, sig)
}

#[cfg(not(any(target_arch = "wasm32", feature = "pure")))]
mod backend {
    use super::super::{PqError, SecretBytes, SigAlg};
    use libcrux_ml_dsa::{MLDSASignature, MLDSASigningKey, MLDSAVerificationKey};
    use libcrux_ml_dsa::{ml_dsa_44, ml_dsa_65, ml_dsa_87};
    use zeroize::Zeroize;

    macro_rules! per_set {
        ($alg:expr, $m:ident => $body:expr) => {
            match $alg {
                SigAlg::MlDsa44 => {
                    use ml_dsa_44 as $m;
                    $body
                }
                SigAlg::MlDsa65 => {
                    use ml_dsa_65 as $m;
                    $body
                }
                SigAlg::MlDsa87 => {
                    use ml_dsa_87 as $m;
                    $body
                }
                _ => Err(PqError::AlgorithmMismatch),
            }
        };
    }

    fn array<const N: usize>(what: &'static str, b: &[u8]) -> Result<[u8; N], PqError> {
        b.try_into().map_err(|_| PqError::Length {
            what,
            expected: N,
            actual: b.len(),
        })
    }

    pub(super) fn keygen(alg: SigAlg, xi: [u8; 32]) -> Result<(Vec<u8>, SecretBytes), PqError> {
        per_set!(alg, m => {
            let mut kp = m::generate_key_pair(xi);
            let out = (
                kp.verification_key.as_slice().to_vec(),
                SecretBytes::from_slice(kp.signing_key.as_slice()),
            );
            kp.signing_key.as_mut_slice().zeroize();
            Ok(out)
        })
    }

    pub(super) fn sign(alg: SigAlg, sk: &[u8], msg: &[u8]) -> Result<Vec<u8>, PqError> {
        per_set!(alg, m => {
            let mut key = MLDSASigningKey::new(array("ML-DSA signing key", sk)?);
            let r = m::sign(&key, msg, b"", [0u8; 32]);
            key.as_mut_slice().zeroize();
            r.map(|s| s.as_slice().to_vec()).map_err(|_| PqError::SigningFailed)
        })
    }

    pub(super) fn verify(alg: SigAlg, vk: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool, PqError> {
        per_set!(alg, m => {
            let key = MLDSAVerificationKey::new(array("ML-DSA verification key", vk)?);
            let s = MLDSASignature::new(array("ML-DSA signature", sig)?);
            Ok(m::verify(&key, msg, b"", &s).is_ok())
        })
    }
}

#[cfg(any(target_arch = "wasm32", feature = "pure"))]
mod backend {
    use super::super::{PqError, SecretBytes, SigAlg};
    use ml_dsa::{
        EncodedSignature, EncodedVerifyingKey, ExpandedSigningKey, ExpandedSigningKeyBytes,
    };
    use ml_dsa::{MlDsa44, MlDsa65, MlDsa87, MlDsaParams, Signature, SigningKey, VerifyingKey};

    fn keygen_p<P: MlDsaParams>(xi: [u8; 32]) -> (Vec<u8>, SecretBytes) {
        let kp = SigningKey::<P>::from_seed(&xi.into());
        let vk = kp.expanded_key().verifying_key().encode();
        #[allow(deprecated)]
        let sk = kp.expanded_key().to_expanded();
        (vk.to_vec(), SecretBytes::from_slice(&sk))
    }

    fn sign_p<P: MlDsaParams>(sk: &[u8], msg: &[u8]) -> Result<Vec<u8>, PqError> {
        let enc =
            ExpandedSigningKeyBytes::<P>::try_from(sk).map_err(|_| PqError::InvalidSecretKey)?;
        // The crate's expanded-key decoding trusts its input; check s1 and s2 first.
        if !super::expanded_sk_in_range(sk) {
            return Err(PqError::InvalidSecretKey);
        }
        #[allow(deprecated)]
        let key = ExpandedSigningKey::<P>::from_expanded(&enc);
        let sig = key
            .sign_deterministic(msg, b"")
            .map_err(|_| PqError::SigningFailed)?;
        Ok(sig.encode().to_vec())
    }

    fn verify_p<P: MlDsaParams>(vk: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool, PqError> {
        let enc = EncodedVerifyingKey::<P>::try_from(vk).map_err(|_| PqError::InvalidPublicKey)?;
        let key = VerifyingKey::<P>::decode(&enc);
        let Ok(esig) = EncodedSignature::<P>::try_from(sig) else {
            return Ok(false);
        };
        let Some(s) = Signature::<P>::decode(&esig) else {
            return Ok(false);
        };
        Ok(key.verify_with_context(msg, b"", &s))
    }

    pub(super) fn keygen(alg: SigAlg, xi: [u8; 32]) -> Result<(Vec<u8>, SecretBytes), PqError> {
        match alg {
            SigAlg::MlDsa44 => Ok(keygen_p::<MlDsa44>(xi)),
            SigAlg::MlDsa65 => Ok(keygen_p::<MlDsa65>(xi)),
            SigAlg::MlDsa87 => Ok(keygen_p::<MlDsa87>(xi)),
            _ => Err(PqError::AlgorithmMismatch),
        }
    }

    pub(super) fn sign(alg: SigAlg, sk: &[u8], msg: &[u8]) -> Result<Vec<u8>, PqError> {
        match alg {
            SigAlg::MlDsa44 => sign_p::<MlDsa44>(sk, msg),
            SigAlg::MlDsa65 => sign_p::<MlDsa65>(sk, msg),
            SigAlg::MlDsa87 => sign_p::<MlDsa87>(sk, msg),
            _ => Err(PqError::AlgorithmMismatch),
        }
    }

    pub(super) fn verify(alg: SigAlg, vk: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool, PqError> {
        match alg {
            SigAlg::MlDsa44 => verify_p::<MlDsa44>(vk, msg, sig),
            SigAlg::MlDsa65 => verify_p::<MlDsa65>(vk, msg, sig),
            SigAlg::MlDsa87 => verify_p::<MlDsa87>(vk, msg, sig),
            _ => Err(PqError::AlgorithmMismatch),
        }
    }
}

/// FIPS 204 skDecode precondition: every packed s1/s2 coefficient η − s is at most 2η
/// (sk = ρ ‖ K ‖ tr ‖ s1 ‖ s2 ‖ t0; 3-bit fields for η = 2, 4-bit for η = 4).
#[cfg_attr(not(any(target_arch = "wasm32", feature = "pure")), allow(dead_code))]
fn expanded_sk_in_range(sk: &[u8]) -> bool {
    let (k, l, eta) = match sk.len() {
        2560 => (4, 4, 2),
        4032 => (6, 5, 4),
        4896 => (8, 7, 2),
        _ => return false,
    };
    let bits = if eta == 2 { 3 } else { 4 };
    let packed = &sk[128..128 + (k + l) * 32 * bits];
    let mut acc: u32 = 0;
    let mut nbits = 0;
    let mut ok = true;
    for &b in packed {
        acc |= u32::from(b) << nbits;
        nbits += 8;
        while nbits >= bits {
            ok &= (acc & ((1 << bits) - 1)) <= 2 * eta;
            acc >>= bits;
            nbits -= bits;
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanded_key_range_check() {
        for alg in [SigAlg::MlDsa44, SigAlg::MlDsa65, SigAlg::MlDsa87] {
            let (_, sk) = keygen(alg, &[3u8; 32]).unwrap();
            assert!(expanded_sk_in_range(sk.expose()));
            let mut bad = sk.expose().to_vec();
            bad[128] = 0xff;
            assert!(!expanded_sk_in_range(&bad));
        }
    }
}
