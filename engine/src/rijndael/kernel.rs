//! The contract between a backend's kernel and the CTR driver, and the driver itself.
//!
//! A backend file holds only its kernel: the key layout (a [`RoundKeys`] of its own
//! register form), the round function, register loads and stores, and counters to
//! registers. Everything CTR is here, once for every kernel (the shape of RustCrypto's
//! block-cipher backends): the bulk loop in wide steps, the remaining blocks and the partial
//! final block through a zeroized stack buffer, the counter advance by exactly
//! `ceil(len / 32)`, and the wiping of the counter copies.
//!
//! Speed: [`Kernel::xor_keystream`] is the kernel's `#[target_feature]` entry, called once
//! per wide step (6 to 16 blocks) with the whole step (counters, every round, the XOR into
//! the data) inlined inside it; the driver around it only slices.

use super::{BLOCK_LEN, Counter};
use zeroize::Zeroize;

/// The most blocks one wide step of any kernel encrypts (vaes512: 4 register pairs of 4
/// blocks each); the size of the tail buffer.
const MAX_WIDE: usize = 16;

/// One Rijndael-256 implementation: its keyed form and its step.
///
/// A kernel value exists only where the CPU runs it: `new` checks the CPU features, and the
/// fields of every SIMD kernel are private to its file, so `xor_keystream` may rely on them.
pub(crate) trait Kernel: Clone {
    /// Blocks one register group holds (the unit of every step).
    const BLOCKS_PER_REG: usize;
    /// Register groups in one wide step: the bulk loop's stride is
    /// `REGS * BLOCKS_PER_REG` blocks.
    const REGS: usize;

    /// The kernel keyed with `rounds + 1` round keys (`rounds >= 2`), or `None` when this CPU
    /// lacks its features.
    fn new(round_keys: &[[u8; BLOCK_LEN]]) -> Option<Self>;

    /// Encrypts the `R * BLOCKS_PER_REG` counter blocks `ctr, ctr + 1, …` and XORs that
    /// keystream into `blocks` (that many blocks); advances `ctr` by as many. `R` is 1, 2, 4
    /// or [`REGS`](Kernel::REGS).
    fn xor_keystream<const R: usize>(&self, ctr: &mut Counter, blocks: &mut [[u8; BLOCK_LEN]]);
}

/// Round keys in a kernel's layout: key 0, keys 1..R-1, key R. Zeroized on drop.
#[derive(Clone)]
pub(crate) struct RoundKeys<T: Zeroize> {
    pub(crate) first: T,
    pub(crate) mid: Vec<T>,
    pub(crate) last: T,
}

impl<T: Zeroize> RoundKeys<T> {
    /// Each round key `rk[i]` in the kernel's form `form(i, &rk[i])`; `None` for fewer than
    /// two keys.
    pub(crate) fn new(
        rk: &[[u8; BLOCK_LEN]],
        mut form: impl FnMut(usize, &[u8; BLOCK_LEN]) -> T,
    ) -> Option<Self> {
        let (last, rest) = rk.split_last()?;
        let (first, mid) = rest.split_first()?;
        Some(RoundKeys {
            first: form(0, first),
            mid: mid
                .iter()
                .enumerate()
                .map(|(i, k)| form(i + 1, k))
                .collect(),
            last: form(rk.len() - 1, last),
        })
    }
}

impl<T: Zeroize> RoundKeys<T> {
    /// The rounds every kernel shares, over every register group of `st`: `whiten` with key
    /// 0, `round` with keys 1 to R - 1, `last` with key R. `load` turns a stored key into
    /// registers once per round.
    #[inline(always)]
    pub(crate) fn encrypt<S, K, const N: usize>(
        &self,
        st: &mut [S; N],
        load: impl Fn(&T) -> K,
        whiten: impl Fn(&mut S, &K),
        round: impl Fn(&mut S, &K),
        last: impl Fn(&mut S, &K),
    ) {
        let k = load(&self.first);
        for s in st.iter_mut() {
            whiten(s, &k);
        }
        for rk in &self.mid {
            let k = load(rk);
            for s in st.iter_mut() {
                round(s, &k);
            }
        }
        let k = load(&self.last);
        for s in st.iter_mut() {
            last(s, &k);
        }
    }
}

impl<T: Zeroize> Drop for RoundKeys<T> {
    fn drop(&mut self) {
        self.first.zeroize();
        self.mid.zeroize();
        self.last.zeroize();
    }
}

/// Bytes aligned for any vector load (a SIMD kernel's round keys).
#[derive(Clone, Copy, Zeroize)]
#[repr(C, align(64))]
#[cfg_attr(
    not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) struct Aligned<const N: usize>(pub(crate) [u8; N]);

/// Encrypts one block: the block is a counter value, so this is one register group's step
/// with the block as its first counter.
pub(crate) fn encrypt_block<K: Kernel>(k: &K, block: &mut [u8; BLOCK_LEN]) {
    let mut ctr = Counter::from_bytes(block);
    let mut buf = [[0u8; BLOCK_LEN]; MAX_WIDE];
    if let Some(regs) = buf.get_mut(..K::BLOCKS_PER_REG) {
        k.xor_keystream::<1>(&mut ctr, regs);
        if let Some(b) = regs.first() {
            *block = *b;
        }
        regs.as_flattened_mut().zeroize();
    }
    ctr.zeroize();
}

/// CTR: `data ^= E(ctr) || E(ctr + 1) || …`; `ctr` advances by `ceil(data.len() / 32)`.
///
/// `W` is `K::REGS`, passed by the backend list because stable Rust cannot use an associated
/// constant of a type parameter as a const argument.
pub(crate) fn ctr_xor<K: Kernel, const W: usize>(k: &K, ctr: &mut Counter, data: &mut [u8]) {
    const { assert!(W == K::REGS && W * K::BLOCKS_PER_REG <= MAX_WIDE) };
    let wide = W * K::BLOCKS_PER_REG;
    let bulk = data.len() - data.len() % (wide * BLOCK_LEN);
    let (head, tail) = data.split_at_mut(bulk);
    let (blocks, _) = head.as_chunks_mut::<BLOCK_LEN>();
    for step in blocks.chunks_exact_mut(wide) {
        k.xor_keystream::<W>(ctr, step);
    }
    // The rest, fewer than `wide` blocks: the narrowest step that covers it.
    match tail.len().div_ceil(BLOCK_LEN * K::BLOCKS_PER_REG) {
        0 => {}
        1 => xor_tail::<K, 1>(k, ctr, tail),
        2 if W > 2 => xor_tail::<K, 2>(k, ctr, tail),
        3 | 4 if W > 4 => xor_tail::<K, 4>(k, ctr, tail),
        _ => xor_tail::<K, W>(k, ctr, tail),
    }
}

/// The last `tail.len() <= 32 * R * BLOCKS_PER_REG` bytes through a stack buffer (the
/// keystream of counters past the data never leaves it unwiped); the counter advances by the
/// blocks actually used.
fn xor_tail<K: Kernel, const R: usize>(k: &K, ctr: &mut Counter, tail: &mut [u8]) {
    let mut buf = [[0u8; BLOCK_LEN]; MAX_WIDE];
    if let Some(blocks) = buf.get_mut(..R * K::BLOCKS_PER_REG) {
        for (b, d) in blocks.as_flattened_mut().iter_mut().zip(tail.iter()) {
            *b = *d;
        }
        let mut c = *ctr;
        k.xor_keystream::<R>(&mut c, blocks);
        c.zeroize();
        for (d, b) in tail.iter_mut().zip(blocks.as_flattened()) {
            *d = *b;
        }
        blocks.as_flattened_mut().zeroize();
    }
    ctr.advance(tail.len().div_ceil(BLOCK_LEN));
}
