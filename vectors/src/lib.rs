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

/// Runs every module that recognizes the file; returns false if none did.
pub fn check_value(v: &Value, tally: &mut Tally) -> bool {
    let mut recognized = false;
    if keccak_kat::recognizes(v) {
        recognized = true;
        keccak_kat::run(v, tally);
    }
    if rcs_kat::recognizes(v) {
        recognized = true;
        rcs_kat::run(v, tally);
    }
    if kdf_kat::recognizes(v) {
        recognized = true;
        kdf_kat::run(v, tally);
    }
    if packets_kat::recognizes(v) {
        recognized = true;
        packets_kat::run(v, tally);
    }
    if transcript_kat::recognizes(v) {
        recognized = true;
        transcript_kat::run(v, tally);
    }
    if pqc_kat::recognizes(v) {
        recognized = true;
        pqc_kat::run(v, tally);
    }
    recognized
}

/// Decodes a hex string field, `None` when absent or malformed.
pub fn hex_field(v: &Value, key: &str) -> Option<Vec<u8>> {
    v.get(key)?.as_str().and_then(|s| hex::decode(s).ok())
}
