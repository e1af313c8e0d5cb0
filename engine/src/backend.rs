//! Backend selection: which implementation of the SIMD-accelerated kernels runs.
//!
//! CPU features are detected once (cpufeatures); the choice is made once, at keying time,
//! into the [`Backend`] enum (and, for the multi-lane Keccak kernels, a
//! [`LaneBackend`]). Three ways force one, so tests, benches and CI exercise every backend
//! on one machine:
//!
//! * the API: [`Backend::from_name`] / [`LaneBackend::require`] and explicit keying;
//! * the environment variable `DKTP_BACKEND=<name>` at run time;
//! * `--cfg dktp_backend="<name>"` at build time, e.g.
//!   `RUSTFLAGS='--cfg dktp_backend="portable"' cargo test`, which makes that backend
//!   [`Backend::selected`]'s answer when `DKTP_BACKEND` is not set (the variable, when set,
//!   still wins).
//!
//! Forcing a backend the CPU lacks is an error in every case, never a silent fallback:
//! keying with it fails with [`BackendError::Unavailable`], [`Backend::selected`] returns
//! that error, and running a [`LaneBackend`] the CPU lacks is refused.

use crate::keccak::lanes::LaneBackend;
use core::fmt;

/// The environment variable that forces a backend everywhere.
pub const BACKEND_ENV: &str = "DKTP_BACKEND";

/// An implementation family for the Rijndael-256 and multi-lane Keccak kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Backend {
    /// Constant-time portable Rust (bitsliced Rijndael, scalar Keccak lanes).
    Portable,
    /// x86 AES-NI (128-bit, 6 blocks interleaved), AVX2 Keccak lanes when the CPU has AVX2.
    Aesni,
    /// x86 VAES on 256-bit registers (split layout: a register pair holds the same halves of
    /// two blocks, 8 blocks interleaved), AVX2 Keccak lanes.
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
    /// The lane backend exists but this CPU (or this build target) cannot run it.
    LanesUnavailable(LaneBackend),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unavailable = |kind: &str, name: &str| {
            format!(
                "{kind} {name} is not available on this CPU; run `dktp speed` to list the available ones"
            )
        };
        f.write_str(&match self {
            Self::UnknownName(n) => format!(
                "unknown backend {n:?}; expected one of: portable, aesni, vaes256, vaes512, vaes512vbmi, armv8"
            ),
            Self::Unavailable(b) => unavailable("backend", b.name()),
            Self::LanesUnavailable(b) => unavailable("lane backend", b.name()),
        })
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
        require(self, self.is_available(), BackendError::Unavailable)
    }

    /// Every backend this CPU can run, slowest first.
    pub fn available() -> Vec<Backend> {
        available(&Backend::ALL, Backend::is_available)
    }

    /// The fastest backend this CPU can run.
    pub fn best() -> Backend {
        fastest(&Backend::ALL, Backend::is_available).unwrap_or(Backend::Portable)
    }

    /// The backend in force: `DKTP_BACKEND` when set, else the build's
    /// `--cfg dktp_backend="<name>"` when given (an unknown or unavailable name is an error
    /// either way), otherwise [`Backend::best`]. Read once per process.
    pub fn selected() -> Result<Backend, BackendError> {
        static SELECTED: std::sync::OnceLock<Result<Backend, BackendError>> =
            std::sync::OnceLock::new();
        SELECTED
            .get_or_init(|| choose(std::env::var(BACKEND_ENV).ok().as_deref(), BUILD_BACKEND))
            .clone()
    }
}

/// `build_cfg!(names)`: `CFG_NAMES`, the names `--cfg dktp_backend="<name>"` may give (`cfg!`
/// takes literals only), and `BUILD_BACKEND`, the one this build was given, if any.
macro_rules! build_cfg {
    ($($name:literal),+) => {
        #[cfg(test)]
        const CFG_NAMES: &[&str] = &[$($name),+];
        const BUILD_BACKEND: Option<&str> = {
            let mut name = None;
            $(if cfg!(dktp_backend = $name) { name = Some($name); })+
            name
        };
    };
}

build_cfg!(
    "portable",
    "aesni",
    "vaes256",
    "vaes512",
    "vaes512vbmi",
    "armv8"
);

/// [`Backend::selected`]'s rule, given `DKTP_BACKEND` and the build's `--cfg` name: a set
/// (non-blank) variable wins, then the build's name; either must name a backend this CPU
/// runs.
fn choose(env: Option<&str>, build: Option<&str>) -> Result<Backend, BackendError> {
    match env.filter(|n| !n.trim().is_empty()).or(build) {
        Some(name) => Backend::from_name(name)?.require(),
        None => Ok(Backend::best()),
    }
}

// What `Backend` and `LaneBackend` share: a list, slowest first, of which the CPU runs some.

/// The members of `all` (slowest first) that the CPU `runs`, in order.
pub(crate) fn available<T: Copy>(all: &[T], runs: impl Fn(T) -> bool) -> Vec<T> {
    all.iter().copied().filter(|b| runs(*b)).collect()
}

/// The fastest member of `all` (slowest first) that the CPU `runs`.
pub(crate) fn fastest<T: Copy>(all: &[T], runs: impl Fn(T) -> bool) -> Option<T> {
    all.iter().rev().copied().find(|b| runs(*b))
}

/// `b` when the CPU `runs` it, else `unavailable(b)`: a forced choice is never replaced.
pub(crate) fn require<T: Copy>(
    b: T,
    runs: bool,
    unavailable: impl FnOnce(T) -> BackendError,
) -> Result<T, BackendError> {
    if runs { Ok(b) } else { Err(unavailable(b)) }
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
    fn names_round_trip_and_unknown_names_are_refused() {
        let names = Backend::ALL.map(Backend::name);
        assert_eq!(names.map(Backend::from_name), Backend::ALL.map(Ok));
        let upper = names.map(|n| Backend::from_name(&n.to_uppercase()));
        assert_eq!(upper, Backend::ALL.map(Ok));
        let e = Backend::from_name("sse9");
        assert_eq!(e, Err(BackendError::UnknownName("sse9".into())));
        assert!(e.is_err_and(|e| e.to_string().contains("sse9")));
    }

    #[test]
    fn portable_always_available_and_best_is_available() {
        assert!(Backend::Portable.is_available());
        assert!(Backend::best().is_available());
        assert!(Backend::available().contains(&Backend::best()));
    }

    /// `DKTP_BACKEND` wins over `--cfg dktp_backend`, which wins over the fastest backend;
    /// a blank variable counts as unset; bad names are errors, never a fallback.
    #[test]
    fn selection_rule() {
        let best = Ok(Backend::best());
        assert_eq!(choose(None, None), best);
        assert_eq!(choose(Some(" "), None), best);
        assert_eq!(choose(None, Some("portable")), Ok(Backend::Portable));
        assert_eq!(choose(Some(""), Some("portable")), Ok(Backend::Portable));
        assert_eq!(
            choose(Some("Portable "), Some("bogus")),
            Ok(Backend::Portable)
        );
        assert_eq!(
            choose(Some("bogus"), Some("portable")),
            Err(BackendError::UnknownName("bogus".into()))
        );
        assert_eq!(
            choose(None, Some("sse9")),
            Err(BackendError::UnknownName("sse9".into()))
        );
        for b in Backend::ALL {
            let want = b.require();
            assert_eq!(choose(None, Some(b.name())), want);
            assert_eq!(choose(Some(b.name()), None), want);
        }
    }

    /// `--cfg dktp_backend` can force every backend: the names it recognises are the
    /// backends' names and `Cargo.toml` declares each; the build's own value, if any, is what
    /// `selected` answers when `DKTP_BACKEND` is unset.
    #[test]
    fn build_cfg_names_every_backend() {
        let mut names = CFG_NAMES.to_vec();
        names.sort_unstable();
        let mut want = Backend::ALL.map(Backend::name);
        want.sort_unstable();
        assert_eq!(names, want);
        let manifest = include_str!("../../Cargo.toml");
        let declared = manifest
            .lines()
            .find(|l| l.contains("cfg(dktp_backend"))
            .expect("check-cfg declares dktp_backend");
        for name in names {
            assert!(
                declared.contains(&format!("\"{name}\"")),
                "{name} not declared"
            );
        }
        if let Some(name) = BUILD_BACKEND
            && std::env::var(BACKEND_ENV).is_err()
        {
            assert_eq!(
                Backend::selected(),
                Backend::from_name(name).and_then(Backend::require)
            );
        }
    }
}
