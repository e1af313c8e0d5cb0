//! Classic McEliece, round-3 format (ciphertext = syndrome ‖ H(2, e); key H(1, e, C)), the
//! five sets DKTP offers.
//!
//! | operation | native | wasm32 |
//! |---|---|---|
//! | keys from coins | `pq-mceliece` (pure Rust, all sets) | same |
//! | one-use keys | `pqcrypto-classicmceliece` 0.1 (C/AVX2), all sets | as keys from coins |
//! | encapsulation | this module (all sets, from coins) | this module |
//! | decapsulation | `pqcrypto-classicmceliece` 0.1, all sets | `pq-mceliece` "pc" sets (all but 348864) |
//!
//! Why the split: `pq-mceliece` reproduces the reference's key generation from its 32
//! coins (its round-4 key generation is round 3's), for every set at once, but is slow
//! (seconds). (`classic-mceliece-rust` 2.0 also does, but builds one parameter set per cargo
//! feature, and cargo admits one version per semver line.) The C crate is
//! fast (decapsulation well under a millisecond) and decapsulates reference ciphertexts with
//! the reference's secret keys (reordered, below), but takes no coins. Encapsulation is short enough to write here (FixedWeight + syndrome + two SHAKE
//! calls, round-3 specification §2.4), which makes it reproducible from recorded coins for
//! every set and portable to wasm.
//!
//! One-use keys from the C crate are written in the reference's layout with δ = 0³² (δ only
//! serves to regenerate a key, which an ephemeral key never needs).
//!
//! The C crate is the round-2 code: same ciphertexts, same implicit rejection H(0, s, C),
//! but its secret key is ordered s ‖ g ‖ control bits where round 3 has
//! δ ‖ c ‖ g ‖ control bits ‖ s; keys are reordered at the boundary.

use super::{Entropy, KemAlg, PqError, SecretBytes, SharedSecret};
use sha3::Shake256;
use sha3::digest::{ExtendableOutput, Update, XofReader};
use zeroize::Zeroizing;

/// Round-3 parameters: field degree m, code length n, error weight t.
#[derive(Clone, Copy, Debug)]
struct Params {
    m: usize,
    n: usize,
    t: usize,
}

impl Params {
    const fn mt(&self) -> usize {
        self.m * self.t
    }
    const fn synd_bytes(&self) -> usize {
        self.mt().div_ceil(8)
    }
    const fn row_bytes(&self) -> usize {
        (self.n - self.mt()).div_ceil(8)
    }
    /// Secret-key offset of s (after δ, c, g and the control bits).
    #[cfg(test)]
    const fn s_offset(&self, sk_len: usize) -> usize {
        sk_len - self.n / 8
    }
}

fn params(alg: KemAlg) -> Result<Params, PqError> {
    let (m, n, t) = match alg {
        KemAlg::McEliece348864 => (12, 3488, 64),
        KemAlg::McEliece460896 => (13, 4608, 96),
        KemAlg::McEliece6688128 => (13, 6688, 128),
        KemAlg::McEliece6960119 => (13, 6960, 119),
        KemAlg::McEliece8192128 => (13, 8192, 128),
        _ => return Err(PqError::AlgorithmMismatch),
    };
    Ok(Params { m, n, t })
}

/// The 8 bytes of pivot information of a non-"f" round-3 secret key: c = 2³² − 1.
#[cfg(not(target_arch = "wasm32"))]
const PIVOTS: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
/// Stack for key generation threads (the crates keep the key matrix on the stack).
#[cfg(not(target_arch = "wasm32"))]
pub const KEYGEN_STACK: usize = 64 << 20;

fn shake32(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Shake256::default();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 32];
    h.finalize_xof().read(&mut out);
    out
}

// ---------------------------------------------------------------------------------------
// Encapsulation (round-3 specification, Encap and FixedWeight).

/// FixedWeight: draws 2·t little-endian 16-bit values per attempt (t when n = 2^m, where
/// every value is in range), keeps the first t below n, retries on too few or a repeat.
fn fixed_weight(p: &Params, rng: &mut dyn Entropy) -> Result<Zeroizing<Vec<u8>>, PqError> {
    let draws = if p.n == 1 << p.m { p.t } else { 2 * p.t };
    let mask = (1u16 << p.m) - 1;
    let mut buf = Zeroizing::new(vec![0u8; 2 * draws]);
    let mut ind = Zeroizing::new(vec![0u16; p.t]);
    loop {
        rng.fill(&mut buf)?;
        let mut count = 0;
        for c in buf.chunks_exact(2) {
            if count == p.t {
                break;
            }
            let v = u16::from_le_bytes([c[0], c[1]]) & mask;
            if usize::from(v) < p.n {
                ind[count] = v;
                count += 1;
            }
        }
        if count < p.t {
            continue;
        }
        let mut repeat = 0u16;
        for i in 1..p.t {
            for j in 0..i {
                // Constant-time equality accumulation.
                let d = ind[i] ^ ind[j];
                repeat |= ((u32::from(d).wrapping_sub(1)) >> 31) as u16;
            }
        }
        if repeat == 0 {
            break;
        }
    }
    let mut e = Zeroizing::new(vec![0u8; p.n / 8]);
    for &i in ind.iter() {
        let byte = usize::from(i >> 3);
        let bit = 1u8 << (i & 7);
        // Touch every byte so the position does not steer memory access.
        for (k, b) in e.iter_mut().enumerate() {
            let hit = ((k ^ byte) as u32).wrapping_sub(1) >> 31; // 1 when k == byte
            *b |= bit & 0u8.wrapping_sub(hit as u8);
        }
    }
    Ok(e)
}

/// C0 = H·e with H = (I_mt | T); pk holds the rows of T, each padded to whole bytes.
fn syndrome(p: &Params, pk: &[u8], e: &[u8]) -> Vec<u8> {
    let mt = p.mt();
    let rb = p.row_bytes();
    // e_T: bits mt.. of e, realigned to start at bit 0.
    let mut et = Zeroizing::new(vec![0u8; rb]);
    let (q, r) = (mt / 8, mt % 8);
    for (k, o) in et.iter_mut().enumerate() {
        let lo = e.get(q + k).copied().unwrap_or(0) >> r;
        let hi = if r == 0 {
            0
        } else {
            e.get(q + k + 1).copied().unwrap_or(0) << (8 - r)
        };
        *o = lo | hi;
    }
    let mut s = vec![0u8; p.synd_bytes()];
    for (i, row) in pk.chunks_exact(rb).enumerate().take(mt) {
        let mut acc = 0u8;
        for (a, b) in row.iter().zip(et.iter()) {
            acc ^= a & b;
        }
        acc ^= (e[i / 8] >> (i % 8)) & 1;
        acc ^= acc >> 4;
        acc ^= acc >> 2;
        acc ^= acc >> 1;
        s[i / 8] |= (acc & 1) << (i % 8);
    }
    s
}

/// Encapsulation from coins drawn from `rng`; returns (C0 ‖ C1, K).
pub(super) fn encapsulate(
    alg: KemAlg,
    pk: &[u8],
    rng: &mut dyn Entropy,
) -> Result<(Vec<u8>, SharedSecret), PqError> {
    let p = params(alg)?;
    let e = fixed_weight(&p, rng)?;
    let mut ct = syndrome(&p, pk, &e);
    let c1 = shake32(&[&[2], &e]);
    ct.extend_from_slice(&c1);
    let k = shake32(&[&[1], &e, &ct]);
    Ok((ct, SharedSecret::new(k)))
}

/// The reference's implicit-rejection value H(0, s, C).
#[cfg(test)]
fn rejection_value(p: &Params, sk: &[u8], ct: &[u8]) -> [u8; 32] {
    shake32(&[&[0], &sk[p.s_offset(sk.len())..], ct])
}

// ---------------------------------------------------------------------------------------
// Keys from coins: pq-mceliece on every target.

fn pq_alg(alg: KemAlg) -> Result<pq_mceliece::Algorithm, PqError> {
    use pq_mceliece::Algorithm as A;
    Ok(match alg {
        KemAlg::McEliece348864 => A::McEliece348864,
        KemAlg::McEliece460896 => A::McEliece460896,
        KemAlg::McEliece6688128 => A::McEliece6688128,
        KemAlg::McEliece6960119 => A::McEliece6960119,
        KemAlg::McEliece8192128 => A::McEliece8192128,
        _ => return Err(PqError::AlgorithmMismatch),
    })
}

/// Runs a key generation of `alg` on a thread with a [`KEYGEN_STACK`]-byte stack; a panic
/// there is [`PqError::Random`].
#[cfg(not(target_arch = "wasm32"))]
fn on_keygen_stack(
    alg: KemAlg,
    keygen: impl FnOnce() -> Result<(Vec<u8>, SecretBytes), PqError> + Send + 'static,
) -> Result<(Vec<u8>, SecretBytes), PqError> {
    std::thread::Builder::new()
        .stack_size(KEYGEN_STACK)
        .spawn(keygen)
        .map_err(|_| PqError::Unsupported {
            alg: alg.name(),
            reason: "cannot start a key-generation thread",
        })?
        .join()
        .unwrap_or(Err(PqError::Random))
}

/// Round-3 SeededKeyGen from the 32-byte seed (retries expand inside, drawing nothing).
fn keygen_from_seed(alg: KemAlg, seed: &[u8]) -> Result<(Vec<u8>, SecretBytes), PqError> {
    let (ek, dk) = pq_alg(alg)?
        .generate_keypair_from_seed(seed)
        .map_err(|_| PqError::Random)?;
    Ok((ek.value().to_vec(), SecretBytes::from_slice(dk.value())))
}

/// Key generation from 32 coins (reference-exact), on a thread with a large stack natively.
pub(super) fn keygen(
    alg: KemAlg,
    rng: &mut dyn Entropy,
) -> Result<(Vec<u8>, SecretBytes), PqError> {
    params(alg)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    rng.fill(&mut seed[..])?;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let seed = seed.clone();
        on_keygen_stack(alg, move || keygen_from_seed(alg, &seed[..]))
    }
    #[cfg(target_arch = "wasm32")]
    {
        keygen_from_seed(alg, &seed[..])
    }
}

// ---------------------------------------------------------------------------------------
// Native fast path: pqcrypto-classicmceliece 0.1 (C, AVX2).

#[cfg(not(target_arch = "wasm32"))]
mod fast {
    use super::super::{KemAlg, PqError, SecretBytes};
    use super::{PIVOTS, on_keygen_stack};
    use pqcrypto_classicmceliece::{
        mceliece348864, mceliece460896, mceliece6688128, mceliece6960119, mceliece8192128,
    };
    use pqcrypto_traits::kem::{
        Ciphertext as _, PublicKey as _, SecretKey as _, SharedSecret as _,
    };

    macro_rules! per_set {
        ($alg:expr, $m:ident => $body:expr) => {
            match $alg {
                KemAlg::McEliece348864 => {
                    use mceliece348864 as $m;
                    $body
                }
                KemAlg::McEliece460896 => {
                    use mceliece460896 as $m;
                    $body
                }
                KemAlg::McEliece6688128 => {
                    use mceliece6688128 as $m;
                    $body
                }
                KemAlg::McEliece6960119 => {
                    use mceliece6960119 as $m;
                    $body
                }
                KemAlg::McEliece8192128 => {
                    use mceliece8192128 as $m;
                    $body
                }
                _ => Err(PqError::AlgorithmMismatch),
            }
        };
    }

    fn keygen_inner(alg: KemAlg) -> Result<(Vec<u8>, SecretBytes), PqError> {
        let n8 = super::params(alg)?.n / 8;
        per_set!(alg, m => {
            let (pk, sk) = m::keypair();
            // Round-2 layout s ‖ g ‖ control bits -> round-3 δ ‖ c ‖ g ‖ control bits ‖ s.
            let b = sk.as_bytes();
            let mut full = vec![0u8; 32];
            full.extend_from_slice(&PIVOTS);
            full.extend_from_slice(&b[n8..]);
            full.extend_from_slice(&b[..n8]);
            Ok((pk.as_bytes().to_vec(), SecretBytes::new(full)))
        })
    }

    /// A one-use key pair from the OS random source, on a large-stack thread.
    pub(super) fn keygen(alg: KemAlg) -> Result<(Vec<u8>, SecretBytes), PqError> {
        on_keygen_stack(alg, move || keygen_inner(alg))
    }

    /// Decapsulation with a reference-layout secret key.
    pub(super) fn decapsulate(alg: KemAlg, sk: &[u8], ct: &[u8]) -> Result<[u8; 32], PqError> {
        let n8 = super::params(alg)?.n / 8;
        if sk.len() < 40 + n8 {
            return Err(PqError::InvalidSecretKey);
        }
        // Round-3 δ ‖ c ‖ g ‖ control bits ‖ s -> the crate's round-2 s ‖ g ‖ control bits.
        let (head, s) = sk.split_at(sk.len() - n8);
        let mut inner = zeroize::Zeroizing::new(Vec::with_capacity(sk.len() - 40));
        inner.extend_from_slice(s);
        inner.extend_from_slice(&head[40..]);
        per_set!(alg, m => {
            let key = m::SecretKey::from_bytes(&inner).map_err(|_| PqError::InvalidSecretKey)?;
            let c = m::Ciphertext::from_bytes(ct).map_err(|_| PqError::Length {
                what: "KEM ciphertext",
                expected: m::ciphertext_bytes(),
                actual: ct.len(),
            })?;
            let ss = m::decapsulate(&c, &key);
            let mut out = [0u8; 32];
            out.copy_from_slice(ss.as_bytes());
            Ok(out)
        })
    }
}

/// A one-use key pair from the fastest backend, or `None` where the only backend is the
/// coins one (wasm32).
pub(super) fn keygen_fast(alg: KemAlg) -> Option<Result<(Vec<u8>, SecretBytes), PqError>> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        Some(fast::keygen(alg))
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = alg;
        None
    }
}

/// Decapsulation (lengths already checked).
pub(super) fn decapsulate(alg: KemAlg, sk: &[u8], ct: &[u8]) -> Result<SharedSecret, PqError> {
    let p = params(alg)?;
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = p;
        Ok(SharedSecret::new(fast::decapsulate(alg, sk, ct)?))
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = p;
        decapsulate_portable(alg, sk, ct)
    }
}

/// Decapsulation in pure Rust, for wasm32: pq-mceliece's "pc" sets (round-3 ciphertexts),
/// and classic-mceliece-rust 2.0 for mceliece348864.
#[allow(dead_code)]
fn decapsulate_portable(alg: KemAlg, sk: &[u8], ct: &[u8]) -> Result<SharedSecret, PqError> {
    use pq_mceliece::Algorithm as A;
    #[cfg(any(target_arch = "wasm32", feature = "pure"))]
    if alg == KemAlg::McEliece348864 {
        use mceliece_r3_s1::{CRYPTO_CIPHERTEXTBYTES as CT, CRYPTO_SECRETKEYBYTES as SK};
        let c: [u8; CT] = ct.try_into().map_err(|_| PqError::Length {
            what: "KEM ciphertext",
            expected: CT,
            actual: ct.len(),
        })?;
        let b: Box<[u8; SK]> = sk
            .to_vec()
            .into_boxed_slice()
            .try_into()
            .map_err(|_| PqError::InvalidSecretKey)?;
        let key = mceliece_r3_s1::SecretKey::from(b);
        let ss = mceliece_r3_s1::decapsulate_boxed(&mceliece_r3_s1::Ciphertext::from(c), &key);
        let mut out = [0u8; 32];
        out.copy_from_slice(ss.as_array());
        return Ok(SharedSecret::new(out));
    }
    let a = match alg {
        KemAlg::McEliece460896 => A::McEliece460896pc,
        KemAlg::McEliece6688128 => A::McEliece6688128pc,
        KemAlg::McEliece6960119 => A::McEliece6960119pc,
        KemAlg::McEliece8192128 => A::McEliece8192128pc,
        _ => {
            return Err(PqError::Unsupported {
                alg: alg.name(),
                reason: "no portable round-3 decapsulation for this set on this target",
            });
        }
    };
    let dk = a
        .decapsulation_key_from_bytes(sk)
        .map_err(|_| PqError::InvalidSecretKey)?;
    let c = a.ciphertext_from_bytes(ct).map_err(|_| PqError::Length {
        what: "KEM ciphertext",
        expected: alg.sizes().ciphertext,
        actual: ct.len(),
    })?;
    let ss = a
        .decapsulate(&dk, &c)
        .map_err(|_| PqError::InvalidSecretKey)?;
    let mut key = [0u8; 32];
    key.copy_from_slice(ss.value());
    Ok(SharedSecret::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pq::OsEntropy;

    /// The wasm32 decapsulation path agrees with the native one, valid and tampered.
    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn portable_decapsulation_matches_native() {
        let mut sets = vec![
            KemAlg::McEliece460896,
            KemAlg::McEliece6688128,
            KemAlg::McEliece6960119,
            KemAlg::McEliece8192128,
        ];
        if cfg!(feature = "pure") {
            sets.push(KemAlg::McEliece348864);
        }
        for alg in sets {
            let kp = alg.generate_ephemeral(&mut OsEntropy).unwrap();
            let (ct, ss) = alg.encapsulate(&kp.public, &mut OsEntropy).unwrap();
            assert_eq!(
                decapsulate_portable(alg, kp.secret.expose(), &ct).unwrap(),
                ss,
                "{alg}"
            );
            let mut bad = ct.clone();
            bad[1] ^= 4;
            assert_eq!(
                decapsulate_portable(alg, kp.secret.expose(), &bad).unwrap(),
                alg.decapsulate(&kp.secret, &bad).unwrap(),
                "{alg}"
            );
        }
        #[cfg(not(feature = "pure"))]
        assert!(matches!(
            decapsulate_portable(KemAlg::McEliece348864, &[0u8; 6492], &[0u8; 128]),
            Err(PqError::Unsupported { .. })
        ));
    }

    /// Our encapsulation against the C crate's decapsulation, every set.
    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn encapsulation_round_trips_with_fast_keys() {
        for alg in [
            KemAlg::McEliece348864,
            KemAlg::McEliece460896,
            KemAlg::McEliece6688128,
            KemAlg::McEliece6960119,
            KemAlg::McEliece8192128,
        ] {
            let kp = alg.generate_ephemeral(&mut OsEntropy).unwrap();
            assert_eq!(kp.public.len(), alg.sizes().public_key);
            assert_eq!(kp.secret.expose().len(), alg.sizes().secret_key);
            let (ct, ss) = alg.encapsulate(&kp.public, &mut OsEntropy).unwrap();
            assert_eq!(ct.len(), alg.sizes().ciphertext);
            assert_eq!(alg.decapsulate(&kp.secret, &ct).unwrap(), ss, "{alg}");
            let mut bad = ct.clone();
            bad[0] ^= 1;
            let p = params(alg).unwrap();
            let r = alg.decapsulate(&kp.secret, &bad).unwrap();
            assert_eq!(
                r.expose(),
                &rejection_value(&p, kp.secret.expose(), &bad),
                "{alg}"
            );
        }
    }
}
