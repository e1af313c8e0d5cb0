//! x86 / x86-64 SIMD kernels (`unsafe` is allowed in this module and its files, each block
//! with its `// SAFETY:` line). Every kernel keeps the round keys as given (32 aligned bytes
//! each) and loads them in its register layout (two halves, or halves broadcast to every
//! lane); [`kernel!`] declares each kernel type and its `Kernel` impl once.
#![allow(unsafe_code)]

#[cfg(target_arch = "x86")]
use core::arch::x86 as arch;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64 as arch;

use arch::*;

use crate::rijndael::kernel::Aligned;

/// `kernel!(Name, P blocks per register, N registers, step)`: the kernel type `Name` (the
/// round keys as given) for `Backend::Name`, and its `Kernel` impl: `N` register groups of
/// `P` blocks in a wide step, a constructor that checks the CPU, and the safe entry to the
/// kernel's `#[target_feature]` step `step::<R>(&Name, &mut Counter, &mut [[u8; 32]])`, whose
/// features `Backend::Name`'s CPU check must include.
///
/// The type's field is private to the kernel's file and only `new` makes a value, after the
/// check: that is what makes the step sound to call.
macro_rules! kernel {
    ($(#[$doc:meta])* $name:ident, $per:literal blocks per register, $regs:literal registers, $step:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub(crate) struct $name(crate::rijndael::kernel::RoundKeys<crate::rijndael::kernel::Aligned<32>>);

        impl crate::rijndael::kernel::Kernel for $name {
            const BLOCKS_PER_REG: usize = $per;
            const REGS: usize = $regs;

            fn new(rk: &[[u8; 32]]) -> Option<Self> {
                let keys = crate::rijndael::kernel::RoundKeys::new(rk, |_, k| crate::rijndael::kernel::Aligned(*k))?;
                crate::Backend::$name.is_available().then_some($name(keys))
            }

            fn xor_keystream<const R: usize>(
                &self,
                ctr: &mut crate::rijndael::Counter,
                blocks: &mut [[u8; 32]],
            ) {
                // SAFETY: a value of this type exists only once `new` found the CPU features of
                // `Backend::$name`, which include every feature the step enables.
                unsafe { $step::<R>(self, ctr, blocks) }
            }
        }
    };
}

/// `split_rounds!(keys, st, load_key, blend, shuf; xor, blendv, shuffle, aesenc, aesenclast)`:
/// every round of the split layout shared by `aesni` (128-bit registers, one block per
/// register pair) and `vaes256` (256-bit, the same halves of two blocks per pair), given the
/// width's intrinsics. Before each AES round both halves are pre-permuted with one byte blend
/// of the two halves and one `pshufb` (see `layout.rs`), so that the instruction's own
/// 128-bit ShiftRows completes Rijndael-256's; the round keys are used as loaded.
///
/// The two blends are complementary, so the second is `a ^ b ^ first`: PBLENDVB competes with
/// AESENC for the same two execution pipes on current cores, while PXOR runs on any vector
/// pipe (measured on Zen 3: ~10% faster than two blends with AES-NI, ~15% with VAES-256).
macro_rules! split_rounds {
    ($keys:expr, $st:expr, $load_key:expr, $blend:expr, $shuf:expr;
     $xor:ident, $blendv:ident, $shuffle:ident, $enc:ident, $enclast:ident) => {{
        let (blend, shuf) = ($blend, $shuf);
        let permute = |b: &mut [_; 2]| {
            let lo = $blendv(b[0], b[1], blend);
            let hi = $xor($xor(b[0], b[1]), lo);
            *b = [$shuffle(lo, shuf), $shuffle(hi, shuf)];
        };
        $keys.encrypt(
            $st,
            $load_key,
            |b, rk| *b = [$xor(b[0], rk[0]), $xor(b[1], rk[1])],
            |b, rk| {
                permute(b);
                *b = [$enc(b[0], rk[0]), $enc(b[1], rk[1])];
            },
            |b, rk| {
                permute(b);
                *b = [$enclast(b[0], rk[0]), $enclast(b[1], rk[1])];
            },
        )
    }};
}

pub(crate) mod aesni;
pub(crate) mod vaes256;
pub(crate) mod vaes512;

/// A round key's two halves (columns 0–3, 4–7).
#[inline]
#[target_feature(enable = "sse2")]
fn key_halves(k: &Aligned<32>) -> [__m128i; 2] {
    let p = k.0.as_ptr().cast::<__m128i>();
    // SAFETY: `k` is 32 readable bytes aligned to 64, so `p` and `p + 1` each cover 16 of
    // them at 16-byte alignment, as `load` requires.
    unsafe { [_mm_load_si128(p), _mm_load_si128(p.add(1))] }
}
