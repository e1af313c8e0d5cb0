//! Eight Keccak-f\[1600\] permutations side by side in AVX-512F: one `__m512i` per lane word
//! (vector element `i` belongs to state `i`), 25 state registers of the 32. `vprolq` rotates,
//! `vpternlogq` computes theta's five-way XOR in two instructions and chi in one.
//!
//! The tests run it wherever the CPU has AVX-512F (the development machine does); the round
//! text is the shared one, and the ternary-logic immediates are the constants the scalar test
//! instance (which emulates `vpternlogq` bit by bit) also uses.
#![allow(unsafe_code)]

use core::arch::x86_64::{
    _mm512_loadu_si512, _mm512_rol_epi64, _mm512_set1_epi64, _mm512_storeu_si512,
    _mm512_ternarylogic_epi64, _mm512_xor_si512,
};

use super::{TERNLOG_CHI, TERNLOG_XOR3};
use crate::keccak::LANES;

witness!(Avx512, crate::backend::cpu_has_avx512f, "AVX-512F");

/// Permutes eight states: gathered word-major (element `i` of vector `j` is lane word `j` of
/// state `i`), permuted by the word-major kernel, scattered back.
pub(super) fn permute_x8(cpu: Avx512, states: &mut [&mut [u64; LANES]; 8]) {
    let mut words = [[0u64; 8]; LANES];
    for (j, w) in words.iter_mut().enumerate() {
        for (x, state) in w.iter_mut().zip(states.iter()) {
            *x = state[j];
        }
    }
    permute_x8_words(cpu, &mut words);
    for (j, w) in words.iter().enumerate() {
        for (x, state) in w.iter().zip(states.iter_mut()) {
            state[j] = *x;
        }
    }
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

/// The x8 kernel on word-major storage: the AVX2 x4 one's body on 512-bit vectors.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn keccak_x8_words(s: &mut [[u64; 8]; LANES]) {
    // Each `s[j]` is exactly one vector (offset 0).
    super::avx2::word_major_kernel!(
        s,
        0,
        _mm512_set1_epi64(0),
        _mm512_loadu_si512,
        _mm512_storeu_si512,
        xor = xor,
        xor5 = xor5,
        rol = rol,
        chi = chi,
        iota = iota
    );
}
