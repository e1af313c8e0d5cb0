//! Runs the committed vector files, RCS under every backend this machine has, and shows the
//! checks can fail: a one-byte change to any expected output must be caught.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use dktp::Backend;
use dktp_vectors::{Tally, check_value, rcs_kat};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_slice(&bytes).expect("valid JSON")
}

fn run(v: &Value) -> Tally {
    let mut t = Tally::default();
    assert!(check_value(v, &mut t), "format not recognized");
    t
}

#[test]
fn keccak_vectors_pass() {
    let t = run(&load("keccak.json"));
    assert_eq!(t.failed, 0, "{:?}", t.failures);
    assert_eq!(t.skipped, 0);
    assert!(t.passed >= 252, "only {} passed", t.passed);
}

#[test]
fn rcs_vectors_pass_on_every_backend() {
    let v = load("rcs.json");
    let backends = Backend::available();
    assert!(backends.contains(&Backend::Portable));
    for b in backends {
        let mut t = Tally::default();
        rcs_kat::run_on(b, &v, &mut t);
        assert_eq!(t.failed, 0, "backend {b}: {:?}", t.failures);
        assert_eq!(t.skipped, 0, "backend {b}");
        assert!(t.passed > 400, "backend {b}: only {} passed", t.passed);
    }
}

/// Flips one hex digit of the `field` string of the `nth` object that has it.
fn mutate(v: &mut Value, field: &str, nth: usize) -> bool {
    fn walk(v: &mut Value, field: &str, nth: &mut usize) -> bool {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(s)) = map.get_mut(field) {
                    // Only hex data counts (descriptions such as `input_rules` share names).
                    if !s.is_empty() && s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit())
                    {
                        if *nth == 0 {
                            let mut bytes = s.clone().into_bytes();
                            let mid = bytes.len() / 2;
                            bytes[mid] = if bytes[mid] == b'0' { b'1' } else { b'0' };
                            *s = String::from_utf8(bytes).expect("ascii");
                            return true;
                        }
                        *nth -= 1;
                    }
                }
                map.values_mut().any(|x| walk(x, field, nth))
            }
            Value::Array(a) => a.iter_mut().any(|x| walk(x, field, nth)),
            _ => false,
        }
    }
    let mut n = nth;
    walk(v, field, &mut n)
}

#[test]
fn a_changed_byte_fails() {
    for (file, fields) in [
        ("keccak.json", &["out", "msg", "key"][..]),
        ("rcs.json", &["ct", "pt", "key", "nonce", "ad"][..]),
    ] {
        let base = load(file);
        let clean = run(&base);
        assert_eq!(clean.failed, 0);
        for field in fields {
            for nth in [0usize, 7, 31] {
                let mut v = base.clone();
                if !mutate(&mut v, field, nth) {
                    continue;
                }
                let t = run(&v);
                assert!(
                    t.failed > 0,
                    "{file}: changing {field} #{nth} went unnoticed"
                );
            }
        }
    }
}
