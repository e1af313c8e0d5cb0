//! The scalar permutation compiled for BMI1/BMI2 (`andn` for chi, `rorx` for the rotations):
//! the shared unrolled round text on `u64` lanes.
#![allow(unsafe_code)]

use super::LANES;

cpufeatures::new!(bmi, "bmi1", "bmi2");

/// The BMI permutation, when the CPU has BMI1 and BMI2.
pub(super) fn select() -> Option<keccak::Fn1600> {
    bmi::get().then_some(f1600_bmi as keccak::Fn1600)
}

/// Only reachable through [`select`], which hands it out after detecting BMI1 and BMI2.
fn f1600_bmi(state: &mut [u64; LANES]) {
    // SAFETY: this function is private and only returned by `select` once runtime detection
    // found BMI1 and BMI2, the target features `rounds_bmi` enables.
    unsafe { rounds_bmi(state) }
}

macro_rules! xor {
    ($a:expr, $b:expr) => {
        $a ^ $b
    };
}
macro_rules! xor5 {
    ($a:expr, $b:expr, $c:expr, $d:expr, $e:expr) => {
        $a ^ $b ^ $c ^ $d ^ $e
    };
}
macro_rules! rol {
    ($x:expr, $n:literal) => {
        u64::rotate_left($x, $n)
    };
}
macro_rules! chi {
    ($a:expr, $b:expr, $c:expr) => {
        $a ^ (!$b & $c)
    };
}
macro_rules! iota {
    ($a:expr, $rc:expr) => {
        $a ^ $rc
    };
}

/// # Safety
/// The CPU must support BMI1 and BMI2.
#[target_feature(enable = "bmi1,bmi2")]
// The shared text writes `a = iota!(a, rc)` so vector backends can use it too.
#[allow(clippy::assign_op_pattern)]
unsafe fn rounds_bmi(state: &mut [u64; LANES]) {
    let mut a = *state;
    keccak_f1600_rounds!(a, xor = xor, xor5 = xor5, rol = rol, chi = chi, iota = iota);
    *state = a;
}
