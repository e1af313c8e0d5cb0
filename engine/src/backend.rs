//! Backend selection: which implementation of the SIMD-accelerated kernels runs.
//!
//! CPU features are detected once (cpufeatures); the choice is made once, at keying time,
//! into the [`Backend`] enum. The environment variable `DKTP_BACKEND` (or the API:
//! [`Backend::from_name`] + explicit keying) forces one, so tests and benches exercise every
//! backend on one machine. Forcing a backend the CPU lacks is an error, never a silent
//! fallback.

use core::fmt;

/// The environment variable that forces a backend everywhere.
pub const BACKEND_ENV: &str = "DKTP_BACKEND";

/// An implementation family for the Rijndael-256 and multi-lane Keccak kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Backend {
    /// Constant-time portable Rust (bitsliced Rijndael, scalar Keccak lanes).
    Portable,
    /// x86 AES-NI (128-bit, 8 blocks interleaved), AVX2 Keccak lanes.
    Aesni,
    /// x86 VAES on 256-bit registers (one Rijndael-256 block per register), AVX2 Keccak lanes.
    Vaes256,
    /// x86 VAES on 512-bit registers with AVX-512BW shuffles, AVX-512 Keccak lanes.
    Vaes512,
    /// x86 VAES on 512-bit registers with AVX-512 VBMI `vpermb`, AVX-512 Keccak lanes.
    Vaes512Vbmi,
    /// ARMv8 cryptography extensions.
    Armv8,
}

/// Why a backend could not be selected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendError {
    /// The name is not one of [`Backend::ALL`]'s names.
    UnknownName(String),
    /// The backend exists but this CPU (or this build target) cannot run it.
    Unavailable(Backend),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownName(n) => write!(
                f,
                "unknown backend {n:?}; expected one of: portable, aesni, vaes256, vaes512, vaes512vbmi, armv8"
            ),
            Self::Unavailable(b) => write!(
                f,
                "backend {} is not available on this CPU; run `dktp speed` to list the available ones",
                b.name()
            ),
        }
    }
}

impl std::error::Error for BackendError {}

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
mod cpu {
    //! CPU feature probes; `get()` is cached by cpufeatures.
    cpufeatures::new!(aesni, "aes", "sse2", "ssse3", "sse4.1");
    cpufeatures::new!(avx2, "avx2");
    // cpufeatures 0.3 ties "vaes" to AVX-512 (zmm) OS state, which hides VAES-256 on CPUs
    // without AVX-512 (AMD Zen 3); std's detector checks VAES on its own, so the 256-bit
    // backend asks std for that one bit.
    cpufeatures::new!(vaes256, "aes", "avx2");
    cpufeatures::new!(avx512, "avx512f");
    cpufeatures::new!(vaes512, "aes", "avx2", "vaes", "avx512f", "avx512bw");
    cpufeatures::new!(
        vaes512vbmi,
        "aes",
        "avx2",
        "vaes",
        "avx512f",
        "avx512bw",
        "avx512vbmi"
    );

    pub fn has_aesni() -> bool {
        aesni::get()
    }
    pub fn has_avx2() -> bool {
        avx2::get()
    }
    pub fn has_vaes256() -> bool {
        vaes256::get() && std::is_x86_feature_detected!("vaes")
    }
    pub fn has_avx512() -> bool {
        avx512::get()
    }
    pub fn has_vaes512() -> bool {
        vaes512::get()
    }
    pub fn has_vaes512vbmi() -> bool {
        vaes512vbmi::get()
    }
}

#[cfg(target_arch = "aarch64")]
mod cpu {
    //! CPU feature probes; `get()` is cached by cpufeatures.
    cpufeatures::new!(armv8, "aes");

    pub fn has_armv8() -> bool {
        armv8::get()
    }
}

/// CPU facts beyond the backend list, for reports (`dktp speed`, bench READMEs).
pub fn cpu_has_avx2() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        cpu::has_avx2()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        false
    }
}

/// Whether the CPU has AVX-512F (the x8 Keccak lanes).
pub fn cpu_has_avx512f() -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        cpu::has_avx512()
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
    {
        false
    }
}

impl Backend {
    /// Every backend, slowest first.
    pub const ALL: [Backend; 6] = [
        Backend::Portable,
        Backend::Armv8,
        Backend::Aesni,
        Backend::Vaes256,
        Backend::Vaes512,
        Backend::Vaes512Vbmi,
    ];

    /// The name used by `DKTP_BACKEND`, reports and JSON keys.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::Aesni => "aesni",
            Backend::Vaes256 => "vaes256",
            Backend::Vaes512 => "vaes512",
            Backend::Vaes512Vbmi => "vaes512vbmi",
            Backend::Armv8 => "armv8",
        }
    }

    /// Parses a backend name (case-insensitive).
    pub fn from_name(name: &str) -> Result<Backend, BackendError> {
        let lower = name.trim().to_ascii_lowercase();
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == lower)
            .ok_or(BackendError::UnknownName(name.to_string()))
    }

    /// Whether this CPU and build target can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Backend::Aesni => cpu::has_aesni(),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Backend::Vaes256 => cpu::has_vaes256(),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Backend::Vaes512 => cpu::has_vaes512(),
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            Backend::Vaes512Vbmi => cpu::has_vaes512vbmi(),
            #[cfg(target_arch = "aarch64")]
            Backend::Armv8 => cpu::has_armv8(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Checks availability, turning "no" into a typed error.
    pub fn require(self) -> Result<Backend, BackendError> {
        if self.is_available() {
            Ok(self)
        } else {
            Err(BackendError::Unavailable(self))
        }
    }

    /// Every backend this CPU can run, slowest first.
    pub fn available() -> Vec<Backend> {
        Backend::ALL
            .into_iter()
            .filter(|b| b.is_available())
            .collect()
    }

    /// The fastest backend this CPU can run.
    pub fn best() -> Backend {
        Backend::ALL
            .into_iter()
            .rev()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Portable)
    }

    /// The backend in force: `DKTP_BACKEND` when set (an unknown or unavailable one is an
    /// error), otherwise [`Backend::best`]. Read once per process.
    pub fn selected() -> Result<Backend, BackendError> {
        static SELECTED: std::sync::OnceLock<Result<Backend, BackendError>> =
            std::sync::OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var(BACKEND_ENV) {
                Ok(name) if !name.trim().is_empty() => Backend::from_name(&name)?.require(),
                _ => Ok(Backend::best()),
            })
            .clone()
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(Backend::from_name(b.name()), Ok(b));
        }
        assert!(matches!(
            Backend::from_name("sse9"),
            Err(BackendError::UnknownName(_))
        ));
    }

    #[test]
    fn portable_always_available_and_best_is_available() {
        assert!(Backend::Portable.is_available());
        assert!(Backend::best().is_available());
        assert!(Backend::available().contains(&Backend::best()));
    }
}
