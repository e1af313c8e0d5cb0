//! Eight Keccak-f\[1600\] permutations side by side in AVX-512F: one `__m512i` per lane word
//! (vector element `i` belongs to state `i`), 25 state registers of the 32. `vprolq` rotates,
//! `vpternlogq` computes theta's five-way XOR in two instructions and chi in one.
//!
//! This machine family is only compile-checked where the CPU lacks AVX-512; the round text is
//! the shared one, and the ternary-logic immediates are the constants the scalar test instance
//! (which emulates `vpternlogq` bit by bit) also uses.
#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m512i, _mm512_loadu_si512, _mm512_rol_epi64, _mm512_set1_epi64, _mm512_storeu_si512,
    _mm512_ternarylogic_epi64, _mm512_xor_si512,
};

use super::{TERNLOG_CHI, TERNLOG_XOR3};
use crate::keccak::LANES;

/// Proof that the CPU runs AVX-512F (only [`Avx512::detect`] makes one).
#[derive(Clone, Copy, Debug)]
pub(super) struct Avx512(());

impl Avx512 {
    /// The witness, when the CPU has AVX-512F.
    pub(super) fn detect() -> Option<Self> {
        crate::backend::cpu_has_avx512f().then_some(Self(()))
    }
}

/// Permutes eight states.
pub(super) fn permute_x8(_cpu: Avx512, states: &mut [&mut [u64; LANES]; 8]) {
    // SAFETY: an `Avx512` value exists only when runtime detection found AVX-512F, the only
    // target feature `keccak_x8` enables.
    unsafe { keccak_x8(states) }
}

/// Permutes the eight states held word-major in `words` (see [`super::permute_x8_words`]).
pub(super) fn permute_x8_words(_cpu: Avx512, words: &mut [[u64; 8]; LANES]) {
    // SAFETY: an `Avx512` value exists only when runtime detection found AVX-512F, the only
    // target feature `keccak_x8_words` enables.
    unsafe { keccak_x8_words(words) }
}

macro_rules! xor {
    ($a:expr, $b:expr) => {
        _mm512_xor_si512($a, $b)
    };
}

macro_rules! xor5 {
    ($a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => {
        _mm512_ternarylogic_epi64::<TERNLOG_XOR3>(
            _mm512_ternarylogic_epi64::<TERNLOG_XOR3>($a, $b, $c),
            $d,
            $e,
        )
    };
}

macro_rules! rol {
    ($x:expr, 0) => {
        $x
    };
    ($x:expr, $n:literal) => {
        _mm512_rol_epi64::<$n>($x)
    };
}

macro_rules! chi {
    ($a:expr, $b:expr, $c:expr) => {
        _mm512_ternarylogic_epi64::<TERNLOG_CHI>($a, $b, $c)
    };
}

macro_rules! iota {
    ($a:expr, $rc:expr) => {
        _mm512_xor_si512($a, _mm512_set1_epi64($rc as i64))
    };
}

/// The x8 kernel.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn keccak_x8(s: &mut [&mut [u64; LANES]; 8]) {
    // Load and store through the same lane-major scratch, so element i is state i both ways.
    let mut a: [__m512i; LANES] = [_mm512_set1_epi64(0); LANES];
    for (j, v) in a.iter_mut().enumerate() {
        let mut words = [0u64; 8];
        for (w, state) in words.iter_mut().zip(s.iter()) {
            *w = state[j];
        }
        // SAFETY: `words` is 64 readable bytes and `loadu` has no alignment requirement.
        *v = unsafe { _mm512_loadu_si512(words.as_ptr().cast()) };
    }
    keccak_f1600_rounds!(a, xor = xor, xor5 = xor5, rol = rol, chi = chi, iota = iota);
    for (j, v) in a.iter().enumerate() {
        let mut words = [0u64; 8];
        // SAFETY: `words` is 64 writable bytes and `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), *v) };
        for (state, w) in s.iter_mut().zip(words) {
            state[j] = w;
        }
    }
}

/// The x8 kernel on word-major storage: one 64-byte load and store per lane word.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn keccak_x8_words(s: &mut [[u64; 8]; LANES]) {
    let mut a: [__m512i; LANES] = [_mm512_set1_epi64(0); LANES];
    for (v, w) in a.iter_mut().zip(s.iter()) {
        // SAFETY: `w` is 64 readable bytes and `loadu` has no alignment requirement.
        *v = unsafe { _mm512_loadu_si512(w.as_ptr().cast()) };
    }
    keccak_f1600_rounds!(a, xor = xor, xor5 = xor5, rol = rol, chi = chi, iota = iota);
    for (v, w) in a.iter().zip(s.iter_mut()) {
        // SAFETY: `w` is 64 writable bytes and `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_si512(w.as_mut_ptr().cast(), *v) };
    }
}
