//! x86 / x86-64 SIMD backends. Each key type here can only be constructed after its CPU
//! features were detected, which is what makes the `unsafe` calls into the
//! `#[target_feature]` kernels sound.

pub(crate) mod aesni;
pub(crate) mod vaes256;
pub(crate) mod vaes512;
