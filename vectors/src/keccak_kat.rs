//! Keccak-family known answers: files with a `vectors` array whose entries carry `alg`,
//! hex `msg`, hex `out` and, depending on the algorithm, `key` (hex), `N`/`S` (ASCII) and
//! `out_len`.

use crate::{Tally, hex_field};
use dktp::keccak;
use serde_json::Value;

/// Whether the file is in this format.
pub fn recognizes(v: &Value) -> bool {
    v.get("vectors").and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|c| c.get("alg").is_some() && c.get("out").is_some())
    })
}

/// Checks every case.
pub fn run(v: &Value, t: &mut Tally) {
    let Some(cases) = v.get("vectors").and_then(Value::as_array) else {
        return;
    };
    for (i, case) in cases.iter().enumerate() {
        let alg = case.get("alg").and_then(Value::as_str).unwrap_or("");
        let name = || format!("keccak case {i} ({alg}, msg_len {:?})", case.get("msg_len"));
        match compute(alg, case) {
            Some(Ok(got)) => {
                let want = hex_field(case, "out");
                t.check(name, want.as_deref() == Some(got.as_slice()));
            }
            Some(Err(())) => t.check(name, false),
            None => t.skip(),
        }
    }
}

fn text(case: &Value, key: &str) -> Vec<u8> {
    case.get(key)
        .and_then(Value::as_str)
        .map(|s| s.as_bytes().to_vec())
        .unwrap_or_default()
}

/// `None`: algorithm not understood; `Some(Err)`: understood but the case is malformed.
fn compute(alg: &str, case: &Value) -> Option<Result<Vec<u8>, ()>> {
    let msg = match hex_field(case, "msg") {
        Some(m) => m,
        None => return Some(Err(())),
    };
    let want_len = hex_field(case, "out").map(|o| o.len()).unwrap_or(0);
    let out_len = case
        .get("out_len")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .unwrap_or(want_len);
    let mut out = vec![0u8; out_len];
    let n = text(case, "N");
    let s = text(case, "S");
    let key = hex_field(case, "key").unwrap_or_default();
    match alg {
        "SHA3-256" => return Some(Ok(keccak::sha3_256(&msg).to_vec())),
        "SHA3-512" => return Some(Ok(keccak::sha3_512(&msg).to_vec())),
        "SHA3-512-incremental-2-updates" => {
            // Any split must give the same digest: check two, report the first.
            let mut results = Vec::new();
            for split in [msg.len() / 2, msg.len().min(1)] {
                let (a, b) = msg.split_at(split);
                let mut h = keccak::Sha3_512::new();
                h.update(a);
                h.update(b);
                results.push(h.finalize());
            }
            if results.windows(2).any(|w| w[0] != w[1]) {
                return Some(Err(()));
            }
            return results.first().map(|r| Ok(r.to_vec()));
        }
        "SHAKE-128" => keccak::shake128(&msg, &mut out),
        "SHAKE-256" => keccak::shake256(&msg, &mut out),
        "QSC-SHAKE-512" => keccak::shake512(&msg, &mut out),
        "cSHAKE-256" => keccak::cshake256(&msg, &n, &s, &mut out),
        "QSC-cSHAKE-512" => keccak::cshake512(&msg, &n, &s, &mut out),
        "KMAC-256" => keccak::kmac256(&key, &msg, &s, &mut out),
        "QSC-KMAC-512" => keccak::kmac512(&key, &msg, &s, &mut out),
        _ => return None,
    }
    Some(Ok(out))
}
