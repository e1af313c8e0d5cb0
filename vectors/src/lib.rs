//! Known-answer checks for dktp, driven only by the JSON format of the vector files
//! (never by file names, case order or particular inputs).
//!
//! Each format module exposes `recognizes(&Value) -> bool` and `run(&Value, &mut Tally)`.
//! [`check_value`] offers a parsed file to every module that recognizes it.

use serde_json::Value;

pub mod kdf_kat;
pub mod keccak_kat;
pub mod packets_kat;
pub mod pqc_kat;
pub mod rcs_kat;
pub mod transcript_kat;

/// Pass/fail/skip counts for one or more files, with the names of failing cases.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Cases that matched.
    pub passed: usize,
    /// Cases that did not match (or could not be evaluated although understood).
    pub failed: usize,
    /// Cases this build does not understand or cannot evaluate.
    pub skipped: usize,
    /// One line per failed case.
    pub failures: Vec<String>,
}

impl Tally {
    /// Records one case: `ok` passes, otherwise the name is kept as a failure.
    pub fn check(&mut self, name: impl FnOnce() -> String, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(name());
        }
    }

    /// Records one case: hex field `key` of `v` must hold `ours`.
    pub fn check_hex(&mut self, name: impl FnOnce() -> String, v: &Value, key: &str, ours: &[u8]) {
        self.check(name, hex_field(v, key).as_deref() == Some(ours));
    }

    /// Records one case that was not evaluated.
    pub fn skip(&mut self) {
        self.skipped += 1;
    }

    /// Adds another tally into this one.
    pub fn add(&mut self, other: Tally) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.failures.extend(other.failures);
    }
}

/// Each format: whether a file is in it, and the checks of such a file.
type Format = (fn(&Value) -> bool, fn(&Value, &mut Tally));

const FORMATS: [Format; 6] = [
    (keccak_kat::recognizes, keccak_kat::run),
    (rcs_kat::recognizes, rcs_kat::run),
    (kdf_kat::recognizes, kdf_kat::run),
    (packets_kat::recognizes, packets_kat::run),
    (transcript_kat::recognizes, transcript_kat::run),
    (pqc_kat::recognizes, pqc_kat::run),
];

/// Runs every module that recognizes the file; returns false if none did.
pub fn check_value(v: &Value, tally: &mut Tally) -> bool {
    let mut recognized = false;
    for (recognizes, run) in FORMATS {
        if recognizes(v) {
            recognized = true;
            run(v, tally);
        }
    }
    recognized
}

/// Decodes a hex string field, `None` when absent or malformed.
pub fn hex_field(v: &Value, key: &str) -> Option<Vec<u8>> {
    v.get(key)?.as_str().and_then(|s| hex::decode(s).ok())
}

/// Test support: the vector files of `data/` and one format's run over a file.
#[cfg(test)]
pub(crate) mod test_data {
    use super::{Tally, Value};

    /// `data/<rel>`, parsed.
    pub fn load(rel: &str) -> Value {
        let path = format!("{}/data/{rel}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The tally of one format's checks over `v`, which it must recognize.
    pub fn tally(v: &Value, recognizes: fn(&Value) -> bool, run: fn(&Value, &mut Tally)) -> Tally {
        assert!(recognizes(v), "format not recognized");
        let mut t = Tally::default();
        run(v, &mut t);
        t
    }
}
