//! Several independent Keccak-f\[1600\] permutations at once, and batched KMAC absorption.
//!
//! | [`LaneBackend`] | x4 | x8 |
//! |---|---|---|
//! | `Portable` | 4 scalar [`f1600`] | 8 scalar [`f1600`] |
//! | `Avx2` | one `__m256i` per lane word | two x4 |
//! | `Avx512` | the AVX2 x4 | one `__m512i` per lane word (`vprolq`, `vpternlogq`) |
//!
//! Every backend computes exactly what the scalar permutation computes (property tests in
//! `proptests/tests/keccak_lanes.rs`). A lane backend the CPU lacks is never run and never
//! silently replaced: [`LaneBackend::require`] turns it into
//! [`BackendError::LanesUnavailable`], and the functions here refuse (panic on) one that
//! was not checked. [`LaneBackend::for_backend`] maps a [`Backend`] to its lanes explicitly.

/// `witness!(Name, probe, "what")`: a zero-sized proof that the CPU has a feature; only
/// `Name::detect`, which asks `probe`, makes one, so a kernel that takes it may rely on it.
#[cfg(target_arch = "x86_64")]
macro_rules! witness {
    ($name:ident, $probe:path, $what:literal) => {
        #[doc = concat!("Proof that the CPU runs ", $what, " (only [`", stringify!($name), "::detect`] makes one).")]
        #[derive(Clone, Copy, Debug)]
        pub(super) struct $name(());

        impl $name {
            #[doc = concat!("The witness, when the CPU has ", $what, ".")]
            pub(super) fn detect() -> Option<Self> {
                $probe().then_some(Self(()))
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod avx2;
// AVX-512 intrinsics and the `avx512f` target feature are stable since Rust 1.89, the
// workspace's MSRV.
#[cfg(target_arch = "x86_64")]
mod avx512;

use core::fmt;

use super::{LANES, f1600, kmac::Kmac};
use crate::backend::{self, Backend, BackendError};

/// `vpternlogq` immediate for `a ^ b ^ c` (bit `4a + 2b + c` of the immediate is the result).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const TERNLOG_XOR3: i32 = 0x96;
/// `vpternlogq` immediate for chi, `a ^ (!b & c)`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const TERNLOG_CHI: i32 = 0xD2;

/// Which implementation runs the multi-lane permutations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LaneBackend {
    /// Scalar permutations one after the other.
    Portable,
    /// AVX2: four states per `__m256i`.
    Avx2,
    /// AVX-512F: eight states per `__m512i`.
    Avx512,
}

impl LaneBackend {
    /// Every lane backend, slowest first.
    pub const ALL: [LaneBackend; 3] = [
        LaneBackend::Portable,
        LaneBackend::Avx2,
        LaneBackend::Avx512,
    ];

    /// The lane backend that goes with the process-wide backend choice
    /// ([`Backend::selected`], which honours `DKTP_BACKEND` and `--cfg dktp_backend`):
    /// `DKTP_BACKEND=portable` makes the lanes portable too. If the selection is an error
    /// (unknown or unavailable name), the portable lanes; the error itself reaches whoever
    /// keys a cipher with [`Backend::selected`].
    pub fn best() -> Self {
        match Backend::selected() {
            Ok(b) => Self::for_backend(b),
            Err(_) => LaneBackend::Portable,
        }
    }

    /// The fastest lane backend this CPU runs, ignoring `DKTP_BACKEND`.
    pub fn fastest() -> Self {
        backend::fastest(&Self::ALL, Self::is_available).unwrap_or(LaneBackend::Portable)
    }

    /// Every lane backend this CPU runs, slowest first.
    pub fn available() -> Vec<LaneBackend> {
        backend::available(&Self::ALL, Self::is_available)
    }

    /// Checks availability, turning "no" into a typed error
    /// ([`BackendError::LanesUnavailable`]).
    pub fn require(self) -> Result<LaneBackend, BackendError> {
        let runs = self.is_available();
        backend::require(self, runs, BackendError::LanesUnavailable)
    }

    /// The lanes that go with a [`Backend`]: portable for `Portable` and `Armv8`, AVX2 for
    /// `Vaes256`, AVX-512 for `Vaes512` and `Vaes512Vbmi` (each of those backends' CPU checks
    /// includes these lanes' features), and for `Aesni` AVX2 when the CPU has it, else
    /// portable (AES-NI CPUs without AVX2 exist). For a backend the CPU lacks, the lanes may
    /// be missing too: they are then refused like any unchecked lane backend.
    pub fn for_backend(b: Backend) -> Self {
        match b {
            Backend::Portable | Backend::Armv8 => LaneBackend::Portable,
            Backend::Aesni if !LaneBackend::Avx2.is_available() => LaneBackend::Portable,
            Backend::Aesni | Backend::Vaes256 => LaneBackend::Avx2,
            Backend::Vaes512 | Backend::Vaes512Vbmi => LaneBackend::Avx512,
        }
    }

    /// Whether this CPU and build target can run the backend.
    pub fn is_available(self) -> bool {
        Kernels::detect(self).is_some()
    }

    /// The name used in reports: `portable`, `avx2`, `avx512`.
    pub const fn name(self) -> &'static str {
        match self {
            LaneBackend::Portable => "portable",
            LaneBackend::Avx2 => "avx2",
            LaneBackend::Avx512 => "avx512",
        }
    }
}

/// The kernels a lane backend runs, with the witnesses that the CPU has them.
#[derive(Clone, Copy)]
enum Kernels {
    /// Scalar permutations one after the other.
    Scalar,
    /// The AVX2 x4 kernel (x8 as two of them).
    #[cfg(target_arch = "x86_64")]
    Avx2(avx2::Avx2),
    /// The AVX-512 x8 kernel, and the AVX2 x4 one.
    #[cfg(target_arch = "x86_64")]
    Avx512(avx2::Avx2, avx512::Avx512),
}

impl Kernels {
    /// `b`'s kernels, when the CPU runs them all.
    fn detect(b: LaneBackend) -> Option<Self> {
        match b {
            LaneBackend::Portable => Some(Kernels::Scalar),
            #[cfg(target_arch = "x86_64")]
            LaneBackend::Avx2 => Some(Kernels::Avx2(avx2::Avx2::detect()?)),
            #[cfg(target_arch = "x86_64")]
            LaneBackend::Avx512 => Some(Kernels::Avx512(
                avx2::Avx2::detect()?,
                avx512::Avx512::detect()?,
            )),
            #[cfg(not(target_arch = "x86_64"))]
            LaneBackend::Avx2 | LaneBackend::Avx512 => None,
        }
    }

    /// `b`'s kernels; refuses (panics on) a lane backend this CPU lacks, which the caller
    /// should have checked with [`LaneBackend::require`] or taken from
    /// [`LaneBackend::available`].
    #[track_caller]
    fn of(b: LaneBackend) -> Self {
        match Kernels::detect(b) {
            Some(k) => k,
            None => refuse(b),
        }
    }

    /// The x4 kernel's witness, if these kernels have one.
    #[cfg(target_arch = "x86_64")]
    fn x4(self) -> Option<avx2::Avx2> {
        match self {
            Kernels::Scalar => None,
            Kernels::Avx2(cpu) | Kernels::Avx512(cpu, _) => Some(cpu),
        }
    }
}

#[cold]
#[track_caller]
fn refuse(b: LaneBackend) -> ! {
    panic!("{}", BackendError::LanesUnavailable(b))
}

impl fmt::Display for LaneBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Four independent Keccak-f\[1600\] permutations.
///
/// # Panics
/// If the CPU lacks `b` (check with [`LaneBackend::require`]).
#[track_caller]
pub fn permute_x4(b: LaneBackend, states: &mut [[u64; LANES]; 4]) {
    let [s0, s1, s2, s3] = states;
    x4(Kernels::of(b), &mut [s0, s1, s2, s3]);
}

/// Eight independent Keccak-f\[1600\] permutations.
///
/// # Panics
/// If the CPU lacks `b` (check with [`LaneBackend::require`]).
#[track_caller]
pub fn permute_x8(b: LaneBackend, states: &mut [[u64; LANES]; 8]) {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = states;
    x8(Kernels::of(b), &mut [s0, s1, s2, s3, s4, s5, s6, s7]);
}

fn x4(k: Kernels, states: &mut [&mut [u64; LANES]; 4]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = k.x4() {
        avx2::permute_x4(cpu, states);
        return;
    }
    let _ = k;
    for s in states.iter_mut() {
        f1600(s);
    }
}

fn x8(k: Kernels, states: &mut [&mut [u64; LANES]; 8]) {
    #[cfg(target_arch = "x86_64")]
    if let Kernels::Avx512(_, cpu) = k {
        avx512::permute_x8(cpu, states);
        return;
    }
    let [s0, s1, s2, s3, s4, s5, s6, s7] = states;
    x4(k, &mut [s0, s1, s2, s3]);
    x4(k, &mut [s4, s5, s6, s7]);
}

/// Four independent permutations of states stored word-major: `words[j][i]` is lane word `j`
/// (lane `x + 5y`) of state `i`, the layout of one 256-bit vector per word. The AVX2 kernel
/// loads and stores it without gathering, so a caller that runs many blocks through the same
/// four sponges (the batch engine, [`crate::batch`]) keeps them in this form between
/// permutations and XORs its input words straight into it.
///
/// # Panics
/// If the CPU lacks `b` (check with [`LaneBackend::require`]).
#[track_caller]
pub fn permute_x4_words(b: LaneBackend, words: &mut [[u64; 4]; LANES]) {
    let k = Kernels::of(b);
    #[cfg(target_arch = "x86_64")]
    if let Some(cpu) = k.x4() {
        avx2::permute_x4_words(cpu, words, 0);
        return;
    }
    let _ = k;
    words_scalar(words);
}

/// Eight independent permutations of states stored word-major (`words[j][i]`, as
/// [`permute_x4_words`]): one AVX-512 kernel, or the AVX2 kernel on each half.
///
/// # Panics
/// If the CPU lacks `b` (check with [`LaneBackend::require`]).
#[track_caller]
pub fn permute_x8_words(b: LaneBackend, words: &mut [[u64; 8]; LANES]) {
    let k = Kernels::of(b);
    #[cfg(target_arch = "x86_64")]
    match k {
        Kernels::Avx512(_, cpu) => return avx512::permute_x8_words(cpu, words),
        Kernels::Avx2(cpu) => {
            avx2::permute_x4_words(cpu, words, 0);
            avx2::permute_x4_words(cpu, words, 4);
            return;
        }
        Kernels::Scalar => {}
    }
    let _ = k;
    words_scalar(words);
}

/// Word-major states permuted one by one with [`f1600`].
fn words_scalar<const N: usize>(words: &mut [[u64; N]; LANES]) {
    for i in 0..N {
        let mut s = [0u64; LANES];
        for (x, w) in s.iter_mut().zip(words.iter()) {
            *x = w.get(i).copied().unwrap_or_default();
        }
        f1600(&mut s);
        for (x, w) in s.iter().zip(words.iter_mut()) {
            if let Some(y) = w.get_mut(i) {
                *y = *x;
            }
        }
    }
}

/// Permutes every state in `ready`: eights (AVX-512), then fours, then one by one.
fn permute_all(k: Kernels, mut ready: &mut [&mut [u64; LANES]]) {
    #[cfg(target_arch = "x86_64")]
    if matches!(k, Kernels::Avx512(..)) {
        let mut eights = ready.chunks_exact_mut(8);
        for chunk in &mut eights {
            if let Ok(group) = <&mut [_; 8]>::try_from(chunk) {
                x8(k, group);
            }
        }
        ready = eights.into_remainder();
    }
    if !matches!(k, Kernels::Scalar) {
        let mut fours = ready.chunks_exact_mut(4);
        for chunk in &mut fours {
            if let Ok(group) = <&mut [_; 4]>::try_from(chunk) {
                x4(k, group);
            }
        }
        ready = fours.into_remainder();
    }
    for s in ready.iter_mut() {
        f1600(s);
    }
}

/// Absorbs `inputs[i]` into `macs[i]`, exactly as if each called `update(inputs[i])` in turn,
/// running the permutations of different KMACs together in x8/x4 lanes whenever at least four
/// of them have a full block pending, and scalar for the rest. Pairs beyond the shorter of the
/// two slices are ignored.
///
/// # Panics
/// If the CPU lacks `b` (check with [`LaneBackend::require`]).
#[track_caller]
pub fn kmac_update_many<const RATE: usize>(
    b: LaneBackend,
    macs: &mut [&mut Kmac<RATE>],
    inputs: &[&[u8]],
) {
    let k = Kernels::of(b);
    // Sponges that will permute at least once; below four, lanes cannot help.
    let busy = macs
        .iter()
        .zip(inputs)
        .filter(|(m, i)| m.sponge.pos + i.len() >= RATE)
        .count();
    if matches!(k, Kernels::Scalar) || busy < 4 {
        for (m, i) in macs.iter_mut().zip(inputs) {
            m.update(i);
        }
        return;
    }

    let mut rest: Vec<&[u8]> = inputs.iter().take(macs.len()).copied().collect();
    loop {
        // A sponge that is not ready in one round never is again (its input is unchanged),
        // so the count only falls; once below four the plain updates finish the job.
        let mut ready: Vec<&mut [u64; LANES]> = Vec::with_capacity(rest.len());
        for (m, input) in macs.iter_mut().zip(rest.iter_mut()) {
            if m.sponge.stage_block(input) {
                ready.push(&mut m.sponge.state);
            }
        }
        let more = ready.len() >= 4;
        permute_all(k, &mut ready);
        if !more {
            break;
        }
    }
    for (m, input) in macs.iter_mut().zip(rest) {
        m.update(input);
    }
}

#[cfg(test)]
mod tests;
