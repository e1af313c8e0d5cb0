//! SPHINCS+ (NIST round 3, version 3) with SHAKE-256 "robust" tweakable hashes, small
//! ("s") parameter sets 128s / 192s / 256s, in portable Rust.
//!
//! Why it is written here: the reference uses the round-3 *robust* construction, which is
//! neither FIPS 205 SLH-DSA nor the round-3.1 "simple" variant that current crates ship;
//! the one crate that interoperates (`pqcrypto-sphincsplus` 0.6, C) cannot take key-generation
//! seeds or optrand, and cannot build for wasm. This module takes both as arguments, so the
//! reference's keys and (randomized) signatures are reproduced from recorded coins.
//!
//! Structure follows the round-3 specification: tweakable hashes with a 32-byte address
//! (§2.7), WOTS+ (§3), XMSS trees and the hypertree (§4), FORS (§5), and the top-level
//! key generation, signing and verification (§6). Everything is computed on public data or
//! through SHAKE-256; there are no secret-dependent branches or indices except the ones the
//! scheme makes public in the signature (leaf and FORS indices).

use super::error::check_len;
use super::{PqError, SecretBytes, SigAlg};
use sha3::Shake256;
use sha3::digest::{ExtendableOutput, Update, XofReader};
use zeroize::Zeroize;

/// Winternitz parameter w = 16 (log w = 4) for every set.
const W: usize = 16;
/// WOTS+ checksum length for w = 16 and n ∈ {16, 24, 32}.
const LEN2: usize = 3;

/// One parameter set.
#[derive(Clone, Copy, Debug)]
struct Params {
    /// Security parameter (hash output bytes).
    n: usize,
    /// Total hypertree height.
    h: usize,
    /// Hypertree layers.
    d: usize,
    /// FORS tree height (log t).
    a: usize,
    /// FORS trees.
    k: usize,
}

impl Params {
    const fn tree_height(&self) -> usize {
        self.h / self.d
    }
    const fn len1(&self) -> usize {
        2 * self.n
    }
    const fn wots_len(&self) -> usize {
        self.len1() + LEN2
    }
    const fn sig_len(&self) -> usize {
        self.n + self.fors_len() + self.d * self.xmss_len()
    }
    /// Bytes of the FORS signature: k secret values with their authentication paths.
    const fn fors_len(&self) -> usize {
        self.k * (self.a + 1) * self.n
    }
    /// Bytes of one layer's XMSS signature: a WOTS+ signature and an authentication path.
    const fn xmss_len(&self) -> usize {
        (self.wots_len() + self.tree_height()) * self.n
    }
    /// Bytes of H_msg output: FORS indices, tree index, leaf index.
    const fn md_len(&self) -> usize {
        (self.k * self.a).div_ceil(8)
    }
    const fn tree_bytes(&self) -> usize {
        (self.h - self.tree_height()).div_ceil(8)
    }
    const fn leaf_bytes(&self) -> usize {
        self.tree_height().div_ceil(8)
    }
}

const S128: Params = Params {
    n: 16,
    h: 63,
    d: 7,
    a: 12,
    k: 14,
};
const S192: Params = Params {
    n: 24,
    h: 63,
    d: 7,
    a: 14,
    k: 17,
};
const S256: Params = Params {
    n: 32,
    h: 64,
    d: 8,
    a: 14,
    k: 22,
};

fn params(alg: SigAlg) -> Result<Params, PqError> {
    match alg {
        SigAlg::Sphincs128s => Ok(S128),
        SigAlg::Sphincs192s => Ok(S192),
        SigAlg::Sphincs256s => Ok(S256),
        _ => Err(PqError::AlgorithmMismatch),
    }
}

// ---------------------------------------------------------------------------------------
// Addresses (§2.7.3): eight 32-bit big-endian words.

const ADDR_WOTS: u32 = 0;
const ADDR_WOTSPK: u32 = 1;
const ADDR_HASHTREE: u32 = 2;
const ADDR_FORSTREE: u32 = 3;
const ADDR_FORSPK: u32 = 4;

#[derive(Clone, Copy, Default)]
struct Adrs([u8; 32]);

impl Adrs {
    fn word(&mut self, i: usize, v: u32) {
        self.0[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
    }
    fn layer(&mut self, l: u32) {
        self.word(0, l);
    }
    fn tree(&mut self, t: u64) {
        self.0[4..8].fill(0);
        self.0[8..16].copy_from_slice(&t.to_be_bytes());
    }
    fn typ(&mut self, t: u32) {
        self.word(4, t);
        // Changing the type clears the type-specific words.
        self.0[20..32].fill(0);
    }
    fn keypair(&mut self, k: u32) {
        self.word(5, k);
    }
    fn chain(&mut self, c: u32) {
        self.word(6, c);
    }
    fn hash(&mut self, h: u32) {
        self.word(7, h);
    }
    fn tree_height(&mut self, h: u32) {
        self.word(6, h);
    }
    fn tree_index(&mut self, i: u32) {
        self.word(7, i);
    }
    /// A fresh address of `typ` carrying this one's layer and tree.
    fn subtree(&self, typ: u32) -> Adrs {
        let mut a = Adrs::default();
        a.0[..16].copy_from_slice(&self.0[..16]);
        a.typ(typ);
        a
    }
    /// A fresh address of `typ` carrying this one's layer and tree, for key pair `keypair`.
    fn keypair_at(&self, typ: u32, keypair: u32) -> Adrs {
        let mut a = self.subtree(typ);
        a.keypair(keypair);
        a
    }
    /// A fresh address of `typ` carrying this one's layer, tree and key pair.
    fn keypair_of(&self, typ: u32) -> Adrs {
        let mut a = self.subtree(typ);
        a.0[20..24].copy_from_slice(&self.0[20..24]);
        a
    }
}

// ---------------------------------------------------------------------------------------
// Tweakable hashes, SHAKE-256 robust (§7.2.1).

/// A SHAKE-256 sponge on Keccak-f[1600] for the many short hashes of the hot path (the
/// general-purpose hasher's per-call set-up dominates at these input sizes).
#[derive(Clone)]
struct Sponge {
    s: [u64; 25],
    pos: usize,
    f: keccak::Fn1600,
}

const RATE: usize = 136;

impl Sponge {
    fn new(f: keccak::Fn1600) -> Self {
        Sponge {
            s: [0; 25],
            pos: 0,
            f,
        }
    }
    fn absorb(&mut self, data: &[u8]) {
        for &b in data {
            self.s[self.pos / 8] ^= u64::from(b) << (8 * (self.pos % 8));
            self.pos += 1;
            if self.pos == RATE {
                (self.f)(&mut self.s);
                self.pos = 0;
            }
        }
    }
    /// Pads (SHAKE domain 0x1F) and permutes; the sponge is then ready to squeeze.
    fn finish(&mut self) {
        self.s[self.pos / 8] ^= 0x1F << (8 * (self.pos % 8));
        self.s[(RATE - 1) / 8] ^= 0x80 << (8 * ((RATE - 1) % 8));
        (self.f)(&mut self.s);
        self.pos = 0;
    }
    fn squeeze(&mut self, out: &mut [u8]) {
        for o in out.iter_mut() {
            if self.pos == RATE {
                (self.f)(&mut self.s);
                self.pos = 0;
            }
            *o = (self.s[self.pos / 8] >> (8 * (self.pos % 8))) as u8;
            self.pos += 1;
        }
    }
}

impl Drop for Sponge {
    fn drop(&mut self) {
        self.s.zeroize();
    }
}

fn keccak_f1600() -> keccak::Fn1600 {
    let mut f: Option<keccak::Fn1600> = None;
    keccak::Keccak::new().with_f1600(|g| f = Some(g));
    // `with_f1600` always calls its closure.
    f.unwrap_or_else(|| unreachable!())
}

struct Ctx<'a> {
    p: Params,
    sk_seed: &'a [u8],
    /// The sponge after absorbing PK.seed (shorter than the rate, so not yet permuted).
    seeded: Sponge,
}

impl<'a> Ctx<'a> {
    fn new(p: Params, pk_seed: &'a [u8], sk_seed: &'a [u8]) -> Self {
        let mut seeded = Sponge::new(keccak_f1600());
        seeded.absorb(pk_seed);
        Ctx { p, sk_seed, seeded }
    }

    /// T_l(PK.seed, ADRS, M) = SHAKE256(PK.seed ‖ ADRS ‖ (M ⊕ SHAKE256(PK.seed ‖ ADRS, |M|)), n).
    fn thash(&self, out: &mut [u8], input: &[u8], adrs: &Adrs) {
        let mut prefix = self.seeded.clone();
        prefix.absorb(&adrs.0);
        let mut mask = prefix.clone();
        mask.finish();
        let mut h = prefix;
        let mut buf = [0u8; RATE];
        for chunk in input.chunks(RATE) {
            let b = &mut buf[..chunk.len()];
            mask.squeeze(b);
            for (x, m) in b.iter_mut().zip(chunk) {
                *x ^= m;
            }
            h.absorb(b);
        }
        h.finish();
        h.squeeze(&mut out[..self.p.n]);
    }

    /// PRF(SK.seed, ADRS) = SHAKE256(SK.seed ‖ ADRS, n) (round 3, version 3).
    fn prf(&self, out: &mut [u8], adrs: &Adrs) {
        let mut h = Sponge::new(self.seeded.f);
        h.absorb(self.sk_seed);
        h.absorb(&adrs.0);
        h.finish();
        h.squeeze(&mut out[..self.p.n]);
    }

    // --- WOTS+ (§3) ------------------------------------------------------------------

    /// chain(X, start, steps) with hash addresses start.. (Algorithm 2).
    fn chain(&self, x: &mut [u8], start: usize, steps: usize, adrs: &mut Adrs) {
        let mut tmp = [0u8; 32];
        for i in start..(start + steps).min(W) {
            adrs.hash(i as u32);
            tmp[..self.p.n].copy_from_slice(&x[..self.p.n]);
            self.thash(x, &tmp[..self.p.n], adrs);
        }
    }

    /// The i-th WOTS+ secret value at a WOTS address (hash address 0, chain i).
    fn wots_sk(&self, out: &mut [u8], adrs: &mut Adrs, i: usize) {
        adrs.chain(i as u32);
        adrs.hash(0);
        self.prf(out, adrs);
    }

    /// XMSS leaf: the compressed WOTS+ public key of key pair `idx` (wots_gen_leaf).
    fn wots_leaf(&self, out: &mut [u8], tree_adrs: &Adrs, idx: u32) {
        let n = self.p.n;
        let mut wots = tree_adrs.keypair_at(ADDR_WOTS, idx);
        let pk_adrs = tree_adrs.keypair_at(ADDR_WOTSPK, idx);
        let mut pk = vec![0u8; self.p.wots_len() * n];
        for (i, c) in pk.chunks_exact_mut(n).enumerate() {
            self.wots_sk(c, &mut wots, i);
            self.chain(c, 0, W - 1, &mut wots);
        }
        self.thash(out, &pk, &pk_adrs);
    }

    /// Base-w digits of a message plus its checksum (§3.1).
    fn chain_lengths(&self, msg: &[u8]) -> Vec<usize> {
        let len1 = self.p.len1();
        let mut lengths = Vec::with_capacity(len1 + LEN2);
        for b in &msg[..self.p.n] {
            lengths.push(usize::from(b >> 4));
            lengths.push(usize::from(b & 15));
        }
        let csum: usize = lengths.iter().map(|&l| W - 1 - l).sum();
        // Shift so the checksum's LEN2 digits are left-aligned in two bytes.
        let csum = csum << 4;
        let bytes = [(csum >> 8) as u8, csum as u8];
        lengths.push(usize::from(bytes[0] >> 4));
        lengths.push(usize::from(bytes[0] & 15));
        lengths.push(usize::from(bytes[1] >> 4));
        lengths
    }

    fn wots_sign(&self, sig: &mut [u8], msg: &[u8], adrs: &mut Adrs) {
        let n = self.p.n;
        for (i, (c, &l)) in sig
            .chunks_exact_mut(n)
            .zip(self.chain_lengths(msg).iter())
            .enumerate()
        {
            self.wots_sk(c, adrs, i);
            self.chain(c, 0, l, adrs);
        }
    }

    /// XMSS leaf from a WOTS+ signature of `msg` by key pair `idx`: the compressed public
    /// key the signature yields (wots_pk_from_sig, then T_len), as [`Self::wots_leaf`].
    fn wots_leaf_from_sig(&self, sig: &[u8], msg: &[u8], tree_adrs: &Adrs, idx: u32) -> Vec<u8> {
        let n = self.p.n;
        let mut wots = tree_adrs.keypair_at(ADDR_WOTS, idx);
        let mut pk = sig[..self.p.wots_len() * n].to_vec();
        for (i, (c, &l)) in pk
            .chunks_exact_mut(n)
            .zip(self.chain_lengths(msg).iter())
            .enumerate()
        {
            wots.chain(i as u32);
            self.chain(c, l, W - 1 - l, &mut wots);
        }
        let mut leaf = vec![0u8; n];
        self.thash(&mut leaf, &pk, &tree_adrs.keypair_at(ADDR_WOTSPK, idx));
        leaf
    }

    // --- Merkle trees (§4.1.3, §5.1) ----------------------------------------------------

    /// Root of a tree of height `height` whose leaves come from `leaf`, and the
    /// authentication path of `leaf_idx`. Node addresses: `adrs` with tree height and
    /// tree index = index at that level + (idx_offset >> level).
    fn treehash(
        &self,
        root: &mut [u8],
        auth: &mut [u8],
        (leaf_idx, idx_offset): (u32, u32),
        height: usize,
        adrs: &mut Adrs,
        leaf: &dyn Fn(&mut [u8], u32),
    ) {
        let n = self.p.n;
        let count = 1usize << height;
        let mut level = vec![0u8; count * n];
        for (i, c) in level.chunks_exact_mut(n).enumerate() {
            leaf(c, idx_offset + i as u32);
        }
        for l in 0..height {
            let sib = ((leaf_idx >> l) ^ 1) as usize;
            auth[l * n..(l + 1) * n].copy_from_slice(&level[sib * n..(sib + 1) * n]);
            let parents = count >> (l + 1);
            let mut next = vec![0u8; parents * n];
            adrs.tree_height((l + 1) as u32);
            for (j, c) in next.chunks_exact_mut(n).enumerate() {
                adrs.tree_index(j as u32 + (idx_offset >> (l + 1)));
                self.thash(c, &level[2 * j * n..(2 * j + 2) * n], adrs);
            }
            level = next;
        }
        root[..n].copy_from_slice(&level[..n]);
    }

    /// Root from a leaf and its authentication path.
    fn compute_root(
        &self,
        leaf: &[u8],
        leaf_idx: u32,
        idx_offset: u32,
        auth: &[u8],
        height: usize,
        adrs: &mut Adrs,
    ) -> Vec<u8> {
        let n = self.p.n;
        let mut node = leaf[..n].to_vec();
        let mut buf = vec![0u8; 2 * n];
        for l in 0..height {
            let sibling = &auth[l * n..(l + 1) * n];
            if (leaf_idx >> l) & 1 == 1 {
                buf[..n].copy_from_slice(sibling);
                buf[n..].copy_from_slice(&node);
            } else {
                buf[..n].copy_from_slice(&node);
                buf[n..].copy_from_slice(sibling);
            }
            adrs.tree_height((l + 1) as u32);
            adrs.tree_index((leaf_idx >> (l + 1)) + (idx_offset >> (l + 1)));
            self.thash(&mut node, &buf, adrs);
        }
        node
    }

    /// XMSS tree root and auth path at `tree_adrs` (a hash-tree address with layer and tree).
    fn xmss_treehash(&self, root: &mut [u8], auth: &mut [u8], leaf_idx: u32, tree_adrs: &Adrs) {
        let mut adrs = *tree_adrs;
        let base = *tree_adrs;
        self.treehash(
            root,
            auth,
            (leaf_idx, 0),
            self.p.tree_height(),
            &mut adrs,
            &|out, idx| self.wots_leaf(out, &base, idx),
        );
    }

    // --- FORS (§5) ----------------------------------------------------------------------

    /// FORS indices: k a-bit values, read least-significant bit first.
    fn fors_indices(&self, md: &[u8]) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.p.k);
        let mut offset = 0usize;
        for _ in 0..self.p.k {
            let mut idx = 0u32;
            for j in 0..self.p.a {
                idx ^= u32::from((md[offset >> 3] >> (offset & 7)) & 1) << j;
                offset += 1;
            }
            out.push(idx);
        }
        out
    }

    /// FORS leaf value: F of the secret at tree index `idx` (height 0).
    fn fors_leaf(&self, out: &mut [u8], keypair_adrs: &Adrs, idx: u32) {
        let mut a = keypair_adrs.keypair_of(ADDR_FORSTREE);
        a.tree_index(idx);
        let mut sk = [0u8; 32];
        self.prf(&mut sk, &a);
        self.thash(out, &sk[..self.p.n], &a);
        sk.zeroize();
    }

    /// The FORS public key of `md` (§5): T_k of the k tree roots. For tree i,
    /// `tree_root(i, (idx, offset), adrs, root)` writes the root of the tree whose leaf
    /// `idx` is signed, `adrs` being set to that leaf (height 0, index idx + offset).
    fn fors_pk(
        &self,
        md: &[u8],
        fors_adrs: &Adrs,
        mut tree_root: impl FnMut(usize, (u32, u32), &mut Adrs, &mut [u8]),
    ) -> Vec<u8> {
        let n = self.p.n;
        let t = 1u32 << self.p.a;
        let mut roots = vec![0u8; self.p.k * n];
        let mut tree_adrs = fors_adrs.keypair_of(ADDR_FORSTREE);
        for (i, (&idx, root)) in self
            .fors_indices(md)
            .iter()
            .zip(roots.chunks_exact_mut(n))
            .enumerate()
        {
            let offset = i as u32 * t;
            tree_adrs.tree_height(0);
            tree_adrs.tree_index(idx + offset);
            tree_root(i, (idx, offset), &mut tree_adrs, root);
        }
        let mut pk = vec![0u8; n];
        self.thash(&mut pk, &roots, &fors_adrs.keypair_of(ADDR_FORSPK));
        pk
    }

    /// Signs md; writes the FORS signature and returns the FORS public key.
    fn fors_sign(&self, sig: &mut [u8], md: &[u8], fors_adrs: &Adrs) -> Vec<u8> {
        let (n, a) = (self.p.n, self.p.a);
        let base = *fors_adrs;
        self.fors_pk(md, fors_adrs, |i, leaf, tree_adrs, root| {
            let part = &mut sig[i * (a + 1) * n..(i + 1) * (a + 1) * n];
            let (sk, auth) = part.split_at_mut(n);
            self.prf(sk, tree_adrs);
            self.treehash(root, auth, leaf, a, tree_adrs, &|out, j| {
                self.fors_leaf(out, &base, j)
            });
        })
    }

    fn fors_pk_from_sig(&self, sig: &[u8], md: &[u8], fors_adrs: &Adrs) -> Vec<u8> {
        let (n, a) = (self.p.n, self.p.a);
        self.fors_pk(md, fors_adrs, |i, (idx, offset), tree_adrs, root| {
            let (sk, auth) = sig[i * (a + 1) * n..(i + 1) * (a + 1) * n].split_at(n);
            let mut leaf = vec![0u8; n];
            self.thash(&mut leaf, sk, tree_adrs);
            root.copy_from_slice(&self.compute_root(&leaf, idx, offset, auth, a, tree_adrs));
        })
    }
}

/// H_msg(R, PK.seed, PK.root, M) (§6.4): the FORS digest, the address of the FORS key pair
/// that signs it, and the hypertree path above that key pair.
fn hash_message(
    p: &Params,
    r: &[u8],
    pk: &[u8],
    msg: &[u8],
) -> (Vec<u8>, Adrs, impl Iterator<Item = (Adrs, u32)> + use<>) {
    let mut h = Shake256::default();
    h.update(r);
    h.update(pk);
    h.update(msg);
    let mut out = vec![0u8; p.md_len() + p.tree_bytes() + p.leaf_bytes()];
    h.finalize_xof().read(&mut out);
    let md = out[..p.md_len()].to_vec();
    let be = |b: &[u8]| b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    let tree_bits = p.h - p.tree_height();
    let mut tree = be(&out[p.md_len()..p.md_len() + p.tree_bytes()]);
    if tree_bits < 64 {
        tree &= (1u64 << tree_bits) - 1;
    }
    let leaf = (be(&out[p.md_len() + p.tree_bytes()..]) & ((1u64 << p.tree_height()) - 1)) as u32;
    let mut fors_adrs = Adrs::default();
    fors_adrs.tree(tree);
    fors_adrs.typ(ADDR_FORSTREE);
    fors_adrs.keypair(leaf);
    (md, fors_adrs, hypertree_path(p, tree, leaf))
}

/// The XMSS trees a signature passes through, bottom layer first (§4.2): each one's
/// hash-tree address and the leaf signed in it.
fn hypertree_path(
    p: &Params,
    mut tree: u64,
    mut leaf: u32,
) -> impl Iterator<Item = (Adrs, u32)> + use<> {
    let height = p.tree_height();
    (0..p.d).map(move |layer| {
        let mut tree_adrs = Adrs::default();
        tree_adrs.layer(layer as u32);
        tree_adrs.tree(tree);
        tree_adrs.typ(ADDR_HASHTREE);
        let signed = leaf;
        leaf = (tree & ((1u64 << height) - 1)) as u32;
        tree >>= height;
        (tree_adrs, signed)
    })
}

/// Key generation from sk_seed ‖ sk_prf ‖ pk_seed (3n bytes); returns (pk, sk) with
/// pk = pk_seed ‖ root and sk = sk_seed ‖ sk_prf ‖ pk_seed ‖ root.
pub(super) fn keygen(alg: SigAlg, coins: &[u8]) -> Result<(Vec<u8>, SecretBytes), PqError> {
    let p = params(alg)?;
    let n = p.n;
    check_len("SPHINCS+ seed", 3 * n, coins.len())?;
    let ctx = Ctx::new(p, &coins[2 * n..], &coins[..n]);
    let mut top = Adrs::default();
    top.layer((p.d - 1) as u32);
    top.typ(ADDR_HASHTREE);
    let mut root = vec![0u8; n];
    let mut auth = vec![0u8; p.tree_height() * n];
    ctx.xmss_treehash(&mut root, &mut auth, 0, &top);
    let mut pk = coins[2 * n..].to_vec();
    pk.extend_from_slice(&root);
    let mut sk = coins.to_vec();
    sk.extend_from_slice(&root);
    Ok((pk, SecretBytes::new(sk)))
}

/// Detached signature with the given optrand (n bytes).
pub(super) fn sign(alg: SigAlg, sk: &[u8], msg: &[u8], optrand: &[u8]) -> Result<Vec<u8>, PqError> {
    let p = params(alg)?;
    let n = p.n;
    check_len("SPHINCS+ secret key", 4 * n, sk.len())?;
    if optrand.len() != n {
        return Err(PqError::Random);
    }
    let (sk_seed, rest) = sk.split_at(n);
    let (sk_prf, pk) = rest.split_at(n);
    let ctx = Ctx::new(p, &pk[..n], sk_seed);
    let mut sig = vec![0u8; p.sig_len()];
    // R = PRF_msg(SK.prf, OptRand, M).
    let mut h = Shake256::default();
    h.update(sk_prf);
    h.update(optrand);
    h.update(msg);
    h.finalize_xof().read(&mut sig[..n]);
    let (md, fors_adrs, path) = hash_message(&p, &sig[..n], pk, msg);
    let (fors_sig, xmss_sigs) = sig[n..].split_at_mut(p.fors_len());
    let mut root = ctx.fors_sign(fors_sig, &md, &fors_adrs);
    for ((tree_adrs, leaf), part) in path.zip(xmss_sigs.chunks_exact_mut(p.xmss_len())) {
        let (wsig, auth) = part.split_at_mut(p.wots_len() * n);
        ctx.wots_sign(wsig, &root, &mut tree_adrs.keypair_at(ADDR_WOTS, leaf));
        let mut next = vec![0u8; n];
        ctx.xmss_treehash(&mut next, auth, leaf, &tree_adrs);
        root = next;
    }
    Ok(sig)
}

/// Verifies a detached signature.
pub(super) fn verify(alg: SigAlg, pk: &[u8], msg: &[u8], sig: &[u8]) -> Result<bool, PqError> {
    let p = params(alg)?;
    let n = p.n;
    check_len("SPHINCS+ public key", 2 * n, pk.len())?;
    if sig.len() != p.sig_len() {
        return Ok(false);
    }
    let ctx = Ctx::new(p, &pk[..n], &[]);
    let (md, fors_adrs, path) = hash_message(&p, &sig[..n], pk, msg);
    let (fors_sig, xmss_sigs) = sig[n..].split_at(p.fors_len());
    let mut root = ctx.fors_pk_from_sig(fors_sig, &md, &fors_adrs);
    for ((mut tree_adrs, leaf), part) in path.zip(xmss_sigs.chunks_exact(p.xmss_len())) {
        let (wsig, auth) = part.split_at(p.wots_len() * n);
        let leaf_node = ctx.wots_leaf_from_sig(wsig, &root, &tree_adrs, leaf);
        root = ctx.compute_root(&leaf_node, leaf, 0, auth, p.tree_height(), &mut tree_adrs);
    }
    Ok(subtle::ConstantTimeEq::ct_eq(&root[..], &pk[n..]).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_sizes_match_round3() {
        assert_eq!(S128.sig_len(), 7856);
        assert_eq!(S192.sig_len(), 16224);
        assert_eq!(S256.sig_len(), 29792);
    }

    #[test]
    fn sign_verify_128s() {
        let coins: Vec<u8> = (0..48u8).collect();
        let (pk, sk) = keygen(SigAlg::Sphincs128s, &coins).unwrap();
        let sig = sign(SigAlg::Sphincs128s, sk.expose(), b"msg", &[9u8; 16]).unwrap();
        assert!(verify(SigAlg::Sphincs128s, &pk, b"msg", &sig).unwrap());
        assert!(!verify(SigAlg::Sphincs128s, &pk, b"msh", &sig).unwrap());
        let mut bad = sig.clone();
        bad[5000] ^= 1;
        assert!(!verify(SigAlg::Sphincs128s, &pk, b"msg", &bad).unwrap());
        assert!(!verify(SigAlg::Sphincs128s, &pk, b"msg", &sig[1..]).unwrap());
    }
}
