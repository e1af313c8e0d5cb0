//! ML-KEM / Kyber k = 5 dispatch: `libcrux-ml-kem` for the three standard sets on native
//! targets (its AVX2 code is chosen at run time), this crate's [`super::kyber`] for k = 5 and
//! for every set on wasm32.

use super::kyber::{self, KyberError, Params};
use super::{KemAlg, PqError, SecretBytes, SharedSecret};

impl From<KyberError> for PqError {
    fn from(e: KyberError) -> Self {
        match e {
            KyberError::Length => PqError::Length {
                what: "ML-KEM input",
                expected: 0,
                actual: 0,
            },
            KyberError::EncapsulationKey => PqError::InvalidPublicKey,
            KyberError::DecapsulationKey => PqError::InvalidSecretKey,
        }
    }
}

/// Key generation from d‖z.
pub(super) fn keygen(
    alg: KemAlg,
    p: &Params,
    coins: &[u8; 64],
) -> Result<(Vec<u8>, SecretBytes), PqError> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(r) = native::keygen(alg, coins) {
        return Ok(r);
    }
    let _ = alg;
    let (ek, dk) = kyber::keygen(p, coins)?;
    Ok((ek, SecretBytes::new(dk)))
}

/// Encapsulation from m, after the FIPS 203 §7.2 modulus check of the (peer's) key.
pub(super) fn encapsulate(
    alg: KemAlg,
    p: &Params,
    pk: &[u8],
    m: &[u8; 32],
) -> Result<(Vec<u8>, SharedSecret), PqError> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(r) = native::encapsulate(alg, pk, m) {
        return r;
    }
    let _ = alg;
    let (ct, ss) = kyber::encapsulate(p, pk, m)?;
    Ok((ct, SharedSecret::new(ss)))
}

/// Decapsulation (lengths already checked; dk validated when it was loaded).
pub(super) fn decapsulate(
    alg: KemAlg,
    p: &Params,
    sk: &[u8],
    ct: &[u8],
) -> Result<SharedSecret, PqError> {
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(r) = native::decapsulate(alg, sk, ct) {
        return r;
    }
    let _ = alg;
    Ok(SharedSecret::new(kyber::decapsulate(p, sk, ct)?))
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::super::error::check_len;
    use super::super::{KemAlg, PqError, SecretBytes, SharedSecret};
    use libcrux_ml_kem::{mlkem512, mlkem768, mlkem1024};

    macro_rules! per_set {
        ($alg:expr, $m:ident, $sk:ident => $body:expr) => {
            match $alg {
                KemAlg::MlKem512 => {
                    use mlkem512 as $m;
                    #[allow(dead_code)]
                    type $sk = mlkem512::MlKem512PrivateKey;
                    Some($body)
                }
                KemAlg::MlKem768 => {
                    use mlkem768 as $m;
                    #[allow(dead_code)]
                    type $sk = mlkem768::MlKem768PrivateKey;
                    Some($body)
                }
                KemAlg::MlKem1024 => {
                    use mlkem1024 as $m;
                    #[allow(dead_code)]
                    type $sk = mlkem1024::MlKem1024PrivateKey;
                    Some($body)
                }
                _ => None,
            }
        };
    }

    pub(super) fn keygen(alg: KemAlg, coins: &[u8; 64]) -> Option<(Vec<u8>, SecretBytes)> {
        per_set!(alg, m, Sk => {
            let (mut sk, pk) = m::generate_key_pair(*coins).into_parts();
            let out = (pk.as_slice().to_vec(), SecretBytes::from_slice(sk.as_slice()));
            zeroize::Zeroize::zeroize(&mut sk[0..]);
            out
        })
    }

    pub(super) fn encapsulate(
        alg: KemAlg,
        pk: &[u8],
        coins: &[u8; 32],
    ) -> Option<Result<(Vec<u8>, SharedSecret), PqError>> {
        per_set!(alg, m, Sk => (|| {
            let key = pk.try_into().map_err(|_| PqError::InvalidPublicKey)?;
            if !m::validate_public_key(&key) {
                return Err(PqError::InvalidPublicKey);
            }
            let (ct, ss) = m::encapsulate(&key, *coins);
            Ok((ct.as_slice().to_vec(), SharedSecret::new(ss)))
        })())
    }

    pub(super) fn decapsulate(
        alg: KemAlg,
        sk: &[u8],
        ct: &[u8],
    ) -> Option<Result<SharedSecret, PqError>> {
        let s = alg.sizes();
        per_set!(alg, m, Sk => (|| {
            check_len("KEM secret key", s.secret_key, sk.len())?;
            let mut key: Sk = sk.try_into().map_err(|_| PqError::InvalidSecretKey)?;
            let c = ct.try_into().map_err(|_| PqError::Length {
                what: "KEM ciphertext",
                expected: s.ciphertext,
                actual: ct.len(),
            })?;
            let ss = SharedSecret::new(m::decapsulate(&key, &c));
            zeroize::Zeroize::zeroize(&mut key[0..]);
            Ok(ss)
        })())
    }
}
