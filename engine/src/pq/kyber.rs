//! ML-KEM (FIPS 203) written once over the module rank `k`, in portable constant-time Rust.
//!
//! Why it exists: the reference's "Kyber S6" is the FIPS 203 algorithms with k = 5
//! (η1 = η2 = 2, du = 11, dv = 5), which no crate offers. The same code also runs the three
//! standard sets; it is the ML-KEM path of wasm builds and a cross-check of the native crate.
//!
//! Every step cites FIPS 203 (August 2024). Secret-dependent work uses no branches and no
//! table look-ups indexed by secrets: reductions are multiply-and-shift, the implicit
//! rejection select is a mask.

use sha3::digest::{ExtendableOutput, Update, XofReader};
use sha3::{Digest, Sha3_256, Sha3_512, Shake128, Shake256};
use zeroize::Zeroize;

/// The modulus q (FIPS 203 §2.4).
const Q: u32 = 3329;
/// Polynomial degree.
const N: usize = 256;

/// One parameter set of the generic algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Module rank k.
    pub k: usize,
    /// η1 (secret and key-generation noise).
    pub eta1: usize,
    /// η2 (encryption noise).
    pub eta2: usize,
    /// du, the compression of u.
    pub du: usize,
    /// dv, the compression of v.
    pub dv: usize,
}

/// ML-KEM-512 (FIPS 203 Table 2).
pub const ML_KEM_512: Params = Params {
    k: 2,
    eta1: 3,
    eta2: 2,
    du: 10,
    dv: 4,
};
/// ML-KEM-768.
pub const ML_KEM_768: Params = Params {
    k: 3,
    eta1: 2,
    eta2: 2,
    du: 10,
    dv: 4,
};
/// ML-KEM-1024.
pub const ML_KEM_1024: Params = Params {
    k: 4,
    eta1: 2,
    eta2: 2,
    du: 11,
    dv: 5,
};
/// The reference's non-standard "Kyber S6": k = 5.
pub const KYBER_K5: Params = Params {
    k: 5,
    eta1: 2,
    eta2: 2,
    du: 11,
    dv: 5,
};

/// Largest rank supported (fixed-size stack arrays).
const K_MAX: usize = 5;

impl Params {
    /// Encapsulation key bytes: 384·k + 32.
    pub const fn ek_len(&self) -> usize {
        384 * self.k + 32
    }
    /// Decapsulation key bytes: 768·k + 96.
    pub const fn dk_len(&self) -> usize {
        768 * self.k + 96
    }
    /// Ciphertext bytes: 32·(du·k + dv).
    pub const fn ct_len(&self) -> usize {
        32 * (self.du * self.k + self.dv)
    }
}

type Poly = [u32; N];

/// Why an operation refused its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KyberError {
    /// A key, ciphertext or coin string had the wrong length.
    Length,
    /// The encapsulation key failed the FIPS 203 §7.2 modulus check.
    EncapsulationKey,
    /// The decapsulation key failed the FIPS 203 §7.3 hash check.
    DecapsulationKey,
}

// ---------------------------------------------------------------------------------------
// Arithmetic mod q. Inputs are below 2^32 / q² bounds as used; `%` by the constant q compiles
// to a multiply-high and shift, so it is constant time.

#[inline(always)]
fn mulq(a: u32, b: u32) -> u32 {
    (a * b) % Q
}

#[inline(always)]
fn addq(a: u32, b: u32) -> u32 {
    let s = a + b;
    // s < 2q: subtract q when s >= q, without a branch.
    let t = s.wrapping_sub(Q);
    let mask = 0u32.wrapping_sub(t >> 31); // all ones when s < q
    (t & !mask) | (s & mask)
}

#[inline(always)]
fn subq(a: u32, b: u32) -> u32 {
    addq(a, Q - b)
}

/// 7-bit bit reversal.
const fn brv7(x: u32) -> u32 {
    let mut r = 0;
    let mut i = 0;
    while i < 7 {
        r |= ((x >> i) & 1) << (6 - i);
        i += 1;
    }
    r
}

const fn pow17(e: u32) -> u32 {
    let mut r: u32 = 1;
    let mut i = 0;
    while i < e {
        r = (r * 17) % Q;
        i += 1;
    }
    r
}

/// ζ^BitRev7(i) for the NTT (FIPS 203 Appendix A).
const ZETAS: [u32; 128] = {
    let mut z = [0u32; 128];
    let mut i = 0;
    while i < 128 {
        z[i] = pow17(brv7(i as u32));
        i += 1;
    }
    z
};

/// ζ^(2·BitRev7(i)+1) for the base-case products.
const GAMMAS: [u32; 128] = {
    let mut z = [0u32; 128];
    let mut i = 0;
    while i < 128 {
        z[i] = pow17(2 * brv7(i as u32) + 1);
        i += 1;
    }
    z
};

/// Algorithm 9, NTT.
fn ntt(f: &mut Poly) {
    let mut i = 1;
    let mut len = 128;
    while len >= 2 {
        let mut start = 0;
        while start < N {
            let zeta = ZETAS[i];
            i += 1;
            for j in start..start + len {
                let t = mulq(zeta, f[j + len]);
                f[j + len] = subq(f[j], t);
                f[j] = addq(f[j], t);
            }
            start += 2 * len;
        }
        len /= 2;
    }
}

/// Algorithm 10, NTT⁻¹.
fn ntt_inv(f: &mut Poly) {
    let mut i = 127;
    let mut len = 2;
    while len <= 128 {
        let mut start = 0;
        while start < N {
            let zeta = ZETAS[i];
            i -= 1;
            for j in start..start + len {
                let t = f[j];
                f[j] = addq(t, f[j + len]);
                f[j + len] = mulq(zeta, subq(f[j + len], t));
            }
            start += 2 * len;
        }
        len *= 2;
    }
    for c in f.iter_mut() {
        *c = mulq(*c, 3303);
    }
}

/// Algorithms 11 and 12: acc += f ∘ g in the NTT domain.
fn mul_acc(acc: &mut Poly, f: &Poly, g: &Poly) {
    for i in 0..128 {
        let (a0, a1, b0, b1) = (f[2 * i], f[2 * i + 1], g[2 * i], g[2 * i + 1]);
        let c0 = (a0 * b0 + mulq(mulq(a1, b1), GAMMAS[i])) % Q;
        let c1 = (a0 * b1 + a1 * b0) % Q;
        acc[2 * i] = addq(acc[2 * i], c0);
        acc[2 * i + 1] = addq(acc[2 * i + 1], c1);
    }
}

fn add_assign(f: &mut Poly, g: &Poly) {
    for (a, b) in f.iter_mut().zip(g.iter()) {
        *a = addq(*a, *b);
    }
}

// ---------------------------------------------------------------------------------------
// Encoding (Algorithms 5 and 6) and compression (§4.2.1).

/// ByteEncode_d: 32·d bytes.
fn byte_encode(f: &Poly, d: usize, out: &mut [u8]) {
    let mut acc: u64 = 0;
    let mut bits = 0;
    let mut o = 0;
    for &c in f.iter() {
        acc |= u64::from(c) << bits;
        bits += d;
        while bits >= 8 {
            out[o] = acc as u8;
            o += 1;
            acc >>= 8;
            bits -= 8;
        }
    }
}

/// ByteDecode_d (for d = 12 the result is reduced mod q, as FIPS 203 specifies).
fn byte_decode(bytes: &[u8], d: usize) -> Poly {
    let mut f = [0u32; N];
    let mut acc: u64 = 0;
    let mut bits = 0;
    let mut i = 0;
    let mask = (1u64 << d) - 1;
    for &b in bytes {
        acc |= u64::from(b) << bits;
        bits += 8;
        while bits >= d && i < N {
            f[i] = (acc & mask) as u32;
            i += 1;
            acc >>= d;
            bits -= d;
        }
    }
    if d == 12 {
        for c in f.iter_mut() {
            *c %= Q;
        }
    }
    f
}

/// Compress_d(x) = ⌈(2^d/q)·x⌋ mod 2^d.
#[inline(always)]
fn compress(x: u32, d: usize) -> u32 {
    let num = (u64::from(x) << d) + u64::from(Q / 2);
    ((num / u64::from(Q)) as u32) & ((1 << d) - 1)
}

/// Decompress_d(y) = ⌈(q/2^d)·y⌋.
#[inline(always)]
fn decompress(y: u32, d: usize) -> u32 {
    (y * Q + (1 << (d - 1))) >> d
}

// ---------------------------------------------------------------------------------------
// Sampling (Algorithms 7 and 8) and the hash functions (§4.1).

/// Algorithm 7, SampleNTT(ρ‖j‖i): rejection sampling on public data.
fn sample_ntt(rho: &[u8], j: u8, i: u8) -> Poly {
    let mut xof = Shake128::default();
    xof.update(rho);
    xof.update(&[j, i]);
    let mut reader = xof.finalize_xof();
    let mut a = [0u32; N];
    let mut n = 0;
    let mut buf = [0u8; 168];
    while n < N {
        reader.read(&mut buf);
        for c in buf.chunks_exact(3) {
            let d1 = u32::from(c[0]) | ((u32::from(c[1]) & 0x0f) << 8);
            let d2 = (u32::from(c[1]) >> 4) | (u32::from(c[2]) << 4);
            if d1 < Q && n < N {
                a[n] = d1;
                n += 1;
            }
            if d2 < Q && n < N {
                a[n] = d2;
                n += 1;
            }
        }
    }
    a
}

/// Algorithm 8 on PRF_η(s, b) = SHAKE256(s‖b, 64·η).
fn sample_cbd(s: &[u8; 32], b: u8, eta: usize) -> Poly {
    let mut buf = [0u8; 64 * 3];
    let len = 64 * eta;
    let mut xof = Shake256::default();
    xof.update(s);
    xof.update(&[b]);
    xof.finalize_xof().read(&mut buf[..len]);
    let mut f = [0u32; N];
    let bit = |k: usize| u32::from((buf[k / 8] >> (k % 8)) & 1);
    for (i, c) in f.iter_mut().enumerate() {
        let mut x = 0;
        let mut y = 0;
        for j in 0..eta {
            x += bit(2 * i * eta + j);
            y += bit(2 * i * eta + eta + j);
        }
        *c = subq(x, y);
    }
    buf.zeroize();
    f
}

fn g_hash(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha3_512::new();
    for p in parts {
        Digest::update(&mut h, p);
    }
    h.finalize().into()
}

fn h_hash(x: &[u8]) -> [u8; 32] {
    Sha3_256::digest(x).into()
}

fn j_hash(z: &[u8], c: &[u8]) -> [u8; 32] {
    let mut xof = Shake256::default();
    xof.update(z);
    xof.update(c);
    let mut out = [0u8; 32];
    xof.finalize_xof().read(&mut out);
    out
}

// ---------------------------------------------------------------------------------------
// K-PKE (Algorithms 13–15).

/// Â[i][j] = SampleNTT(ρ‖j‖i).
fn matrix(p: &Params, rho: &[u8]) -> [[Poly; K_MAX]; K_MAX] {
    let mut a = [[[0u32; N]; K_MAX]; K_MAX];
    for (i, row) in a.iter_mut().enumerate().take(p.k) {
        for (j, e) in row.iter_mut().enumerate().take(p.k) {
            *e = sample_ntt(rho, j as u8, i as u8);
        }
    }
    a
}

/// Algorithm 13, K-PKE.KeyGen(d): writes ek (384k+32) and dk_pke (384k).
fn pke_keygen(p: &Params, d: &[u8; 32], ek: &mut [u8], dk: &mut [u8]) {
    let mut rs = g_hash(&[d, &[p.k as u8]]);
    let (rho, sigma) = rs.split_at(32);
    let mut sigma_a = [0u8; 32];
    sigma_a.copy_from_slice(sigma);
    let a = matrix(p, rho);
    let mut s = [[0u32; N]; K_MAX];
    let mut e = [[0u32; N]; K_MAX];
    let mut nonce = 0u8;
    for si in s.iter_mut().take(p.k) {
        *si = sample_cbd(&sigma_a, nonce, p.eta1);
        ntt(si);
        nonce += 1;
    }
    for ei in e.iter_mut().take(p.k) {
        *ei = sample_cbd(&sigma_a, nonce, p.eta1);
        ntt(ei);
        nonce += 1;
    }
    for i in 0..p.k {
        let mut t = e[i];
        for j in 0..p.k {
            mul_acc(&mut t, &a[i][j], &s[j]);
        }
        byte_encode(&t, 12, &mut ek[384 * i..384 * (i + 1)]);
        byte_encode(&s[i], 12, &mut dk[384 * i..384 * (i + 1)]);
    }
    ek[384 * p.k..384 * p.k + 32].copy_from_slice(rho);
    s.zeroize();
    e.zeroize();
    sigma_a.zeroize();
    rs.zeroize();
}

/// Algorithm 14, K-PKE.Encrypt(ek, m, r).
fn pke_encrypt(p: &Params, ek: &[u8], m: &[u8; 32], r: &[u8; 32], c: &mut [u8]) {
    let rho = &ek[384 * p.k..384 * p.k + 32];
    let a = matrix(p, rho);
    let mut t = [[0u32; N]; K_MAX];
    for (i, ti) in t.iter_mut().enumerate().take(p.k) {
        *ti = byte_decode(&ek[384 * i..384 * (i + 1)], 12);
    }
    let mut y = [[0u32; N]; K_MAX];
    let mut nonce = 0u8;
    for yi in y.iter_mut().take(p.k) {
        *yi = sample_cbd(r, nonce, p.eta1);
        ntt(yi);
        nonce += 1;
    }
    let mut e1 = [[0u32; N]; K_MAX];
    for e in e1.iter_mut().take(p.k) {
        *e = sample_cbd(r, nonce, p.eta2);
        nonce += 1;
    }
    let mut e2 = sample_cbd(r, nonce, p.eta2);
    let c1_len = 32 * p.du;
    for i in 0..p.k {
        let mut u = [0u32; N];
        for j in 0..p.k {
            mul_acc(&mut u, &a[j][i], &y[j]);
        }
        ntt_inv(&mut u);
        add_assign(&mut u, &e1[i]);
        for x in u.iter_mut() {
            *x = compress(*x, p.du);
        }
        byte_encode(&u, p.du, &mut c[c1_len * i..c1_len * (i + 1)]);
    }
    let mut v = [0u32; N];
    for j in 0..p.k {
        mul_acc(&mut v, &t[j], &y[j]);
    }
    ntt_inv(&mut v);
    add_assign(&mut v, &e2);
    let mut mu = byte_decode(m, 1);
    for x in mu.iter_mut() {
        *x = decompress(*x, 1);
    }
    add_assign(&mut v, &mu);
    for x in v.iter_mut() {
        *x = compress(*x, p.dv);
    }
    let off = c1_len * p.k;
    byte_encode(&v, p.dv, &mut c[off..off + 32 * p.dv]);
    y.zeroize();
    e1.zeroize();
    e2.zeroize();
    mu.zeroize();
    v.zeroize();
}

/// Algorithm 15, K-PKE.Decrypt(dk, c).
fn pke_decrypt(p: &Params, dk: &[u8], c: &[u8]) -> [u8; 32] {
    let c1_len = 32 * p.du;
    let mut w = [0u32; N];
    for i in 0..p.k {
        let mut u = byte_decode(&c[c1_len * i..c1_len * (i + 1)], p.du);
        for x in u.iter_mut() {
            *x = decompress(*x, p.du);
        }
        ntt(&mut u);
        let mut s = byte_decode(&dk[384 * i..384 * (i + 1)], 12);
        mul_acc(&mut w, &s, &u);
        s.zeroize();
    }
    ntt_inv(&mut w);
    let off = c1_len * p.k;
    let mut v = byte_decode(&c[off..off + 32 * p.dv], p.dv);
    for x in v.iter_mut() {
        *x = decompress(*x, p.dv);
    }
    for (vi, wi) in v.iter_mut().zip(w.iter()) {
        *vi = compress(subq(*vi, *wi), 1);
    }
    let mut m = [0u8; 32];
    byte_encode(&v, 1, &mut m);
    v.zeroize();
    w.zeroize();
    m
}

// ---------------------------------------------------------------------------------------
// ML-KEM (Algorithms 16–18) with the input checks of §7.

/// ML-KEM.KeyGen_internal(d, z) from the 64 coins d‖z; returns (ek, dk).
pub fn keygen(p: &Params, coins: &[u8]) -> Result<(Vec<u8>, Vec<u8>), KyberError> {
    if coins.len() != 64 {
        return Err(KyberError::Length);
    }
    let mut d = [0u8; 32];
    d.copy_from_slice(&coins[..32]);
    let mut ek = vec![0u8; p.ek_len()];
    let mut dk = vec![0u8; p.dk_len()];
    let pke_len = 384 * p.k;
    pke_keygen(p, &d, &mut ek, &mut dk[..pke_len]);
    dk[pke_len..pke_len + ek.len()].copy_from_slice(&ek);
    let h = h_hash(&ek);
    let off = pke_len + ek.len();
    dk[off..off + 32].copy_from_slice(&h);
    dk[off + 32..off + 64].copy_from_slice(&coins[32..64]);
    d.zeroize();
    Ok((ek, dk))
}

/// §7.3 hash check: the H(ek) embedded in dk matches its ek.
pub fn dk_hash_valid(p: &Params, dk: &[u8]) -> bool {
    if dk.len() != p.dk_len() {
        return false;
    }
    let pke_len = 384 * p.k;
    let ek = &dk[pke_len..pke_len + p.ek_len()];
    let h = &dk[pke_len + p.ek_len()..pke_len + p.ek_len() + 32];
    h_hash(ek) == h
}

/// §7.2 modulus check: every coefficient of ek decodes below q.
pub fn ek_valid(p: &Params, ek: &[u8]) -> bool {
    ek[..384 * p.k].chunks_exact(3).all(|c| {
        let d1 = u32::from(c[0]) | ((u32::from(c[1]) & 0x0f) << 8);
        let d2 = (u32::from(c[1]) >> 4) | (u32::from(c[2]) << 4);
        d1 < Q && d2 < Q
    })
}

/// ML-KEM.Encaps_internal(ek, m) from the 32 coins m; returns (c, K).
pub fn encapsulate(p: &Params, ek: &[u8], coins: &[u8]) -> Result<(Vec<u8>, [u8; 32]), KyberError> {
    if ek.len() != p.ek_len() || coins.len() != 32 {
        return Err(KyberError::Length);
    }
    if !ek_valid(p, ek) {
        return Err(KyberError::EncapsulationKey);
    }
    let mut m = [0u8; 32];
    m.copy_from_slice(coins);
    let mut kr = g_hash(&[&m, &h_hash(ek)]);
    let mut key = [0u8; 32];
    key.copy_from_slice(&kr[..32]);
    let mut r = [0u8; 32];
    r.copy_from_slice(&kr[32..]);
    let mut c = vec![0u8; p.ct_len()];
    pke_encrypt(p, ek, &m, &r, &mut c);
    m.zeroize();
    r.zeroize();
    kr.zeroize();
    Ok((c, key))
}

/// ML-KEM.Decaps_internal(dk, c): the shared key, or J(z‖c) for an invalid ciphertext
/// (implicit rejection as FIPS 203 specifies; the reference's variant differs, FACTS §11.1).
pub fn decapsulate(p: &Params, dk: &[u8], c: &[u8]) -> Result<[u8; 32], KyberError> {
    if dk.len() != p.dk_len() || c.len() != p.ct_len() {
        return Err(KyberError::Length);
    }
    let pke_len = 384 * p.k;
    let ek = &dk[pke_len..pke_len + p.ek_len()];
    let h = &dk[pke_len + p.ek_len()..pke_len + p.ek_len() + 32];
    let z = &dk[pke_len + p.ek_len() + 32..];
    if h_hash(ek) != h {
        return Err(KyberError::DecapsulationKey);
    }
    let mut m = pke_decrypt(p, &dk[..pke_len], c);
    let mut kr = g_hash(&[&m, h]);
    let mut r = [0u8; 32];
    r.copy_from_slice(&kr[32..]);
    let reject = j_hash(z, c);
    let mut c2 = vec![0u8; p.ct_len()];
    pke_encrypt(p, ek, &m, &r, &mut c2);
    // Constant-time compare and select.
    let diff = c
        .iter()
        .zip(c2.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    let equal = subtle::ConstantTimeEq::ct_eq(&diff, &0u8);
    let mut key = [0u8; 32];
    for i in 0..32 {
        key[i] = subtle::ConditionallySelectable::conditional_select(&reject[i], &kr[i], equal);
    }
    m.zeroize();
    r.zeroize();
    kr.zeroize();
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_fips203() {
        assert_eq!(
            (
                ML_KEM_512.ek_len(),
                ML_KEM_512.dk_len(),
                ML_KEM_512.ct_len()
            ),
            (800, 1632, 768)
        );
        assert_eq!(
            (
                ML_KEM_768.ek_len(),
                ML_KEM_768.dk_len(),
                ML_KEM_768.ct_len()
            ),
            (1184, 2400, 1088)
        );
        assert_eq!(
            (
                ML_KEM_1024.ek_len(),
                ML_KEM_1024.dk_len(),
                ML_KEM_1024.ct_len()
            ),
            (1568, 3168, 1568)
        );
        assert_eq!(
            (KYBER_K5.ek_len(), KYBER_K5.dk_len(), KYBER_K5.ct_len()),
            (1952, 3936, 1920)
        );
    }

    #[test]
    fn round_trip_and_rejection() {
        for p in [ML_KEM_512, ML_KEM_768, ML_KEM_1024, KYBER_K5] {
            let coins: Vec<u8> = (0..64u8).collect();
            let (ek, dk) = keygen(&p, &coins).unwrap();
            let (c, k) = encapsulate(&p, &ek, &[7u8; 32]).unwrap();
            assert_eq!(decapsulate(&p, &dk, &c).unwrap(), k);
            let mut bad = c.clone();
            bad[0] ^= 1;
            let kr = decapsulate(&p, &dk, &bad).unwrap();
            assert_ne!(kr, k);
            assert_eq!(kr, j_hash(&dk[dk.len() - 32..], &bad));
        }
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let p = KYBER_K5;
        assert_eq!(keygen(&p, &[0u8; 63]), Err(KyberError::Length));
        assert!(encapsulate(&p, &[0u8; 10], &[0u8; 32]).is_err());
        assert!(decapsulate(&p, &[0u8; 10], &[0u8; 32]).is_err());
        let mut ek = vec![0xffu8; p.ek_len()];
        ek[0] = 0xff;
        assert_eq!(
            encapsulate(&p, &ek, &[0u8; 32]).err(),
            Some(KyberError::EncapsulationKey)
        );
    }
}
