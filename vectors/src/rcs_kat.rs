//! RCS known answers: files with `single` cases (one packet each), `multi` streams (several
//! packets on one long-lived state, with a second decrypt state that sees the packets marked
//! `dec2_input_tampered` with a flipped tag bit) and `nonce_carry` cases. Every case runs on
//! the given backend.

use crate::{Tally, hex_field};
use dktp::Backend;
use dktp::rcs::{Rcs256, Rcs512, RcsChannel, Variant};
use serde_json::Value;

/// Whether the file is in this format.
pub fn recognizes(v: &Value) -> bool {
    ["single", "multi", "nonce_carry"].iter().any(|k| {
        v.get(*k)
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|c| c.get("cipher").is_some()))
    })
}

/// Checks every case on `Backend::selected()`.
pub fn run(v: &Value, t: &mut Tally) {
    match Backend::selected() {
        Ok(b) => run_on(b, v, t),
        Err(e) => {
            t.check(|| format!("rcs: cannot select backend: {e}"), false);
        }
    }
}

/// Checks every case on one backend.
pub fn run_on(backend: Backend, v: &Value, t: &mut Tally) {
    let arr = |k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for (i, case) in arr("single").iter().enumerate() {
        dispatch(
            case,
            t,
            |c, t| single(backend, c, t, i, "single"),
            || format!("rcs single {i}"),
        );
    }
    for (i, case) in arr("nonce_carry").iter().enumerate() {
        dispatch(
            case,
            t,
            |c, t| single(backend, c, t, i, "nonce_carry"),
            || format!("rcs nonce_carry {i}"),
        );
    }
    for (i, case) in arr("multi").iter().enumerate() {
        dispatch(
            case,
            t,
            |c, t| multi(backend, c, t, i),
            || format!("rcs multi {i}"),
        );
    }
}

fn dispatch(
    case: &Value,
    t: &mut Tally,
    f: impl FnOnce(&Value, &mut Tally) -> Option<()>,
    name: impl FnOnce() -> String,
) {
    match case.get("cipher").and_then(Value::as_str) {
        Some("RCS-256") | Some("RCS-512") => {
            if f(case, t).is_none() {
                t.check(|| format!("{}: malformed case", name()), false);
            }
        }
        _ => t.skip(),
    }
}

fn single(backend: Backend, c: &Value, t: &mut Tally, i: usize, kind: &str) -> Option<()> {
    if c.get("cipher")?.as_str()? == "RCS-256" {
        single_v::<Rcs256>(backend, c, t, i, kind)
    } else {
        single_v::<Rcs512>(backend, c, t, i, kind)
    }
}

fn nonce32(c: &Value, key: &str) -> Option<[u8; 32]> {
    hex_field(c, key)?.try_into().ok()
}

/// A case's `key`, `nonce` and `info`: fresh channels keyed with them on `backend`.
fn keying<V: Variant>(backend: Backend, c: &Value) -> Option<impl Fn() -> Option<RcsChannel<V>>> {
    let key = hex_field(c, "key")?;
    let nonce = nonce32(c, "nonce")?;
    let info = hex_field(c, "info").unwrap_or_default();
    Some(move || RcsChannel::<V>::with_backend(backend, &key, &nonce, &info).ok())
}

fn single_v<V: Variant>(
    backend: Backend,
    c: &Value,
    t: &mut Tally,
    i: usize,
    kind: &str,
) -> Option<()> {
    let channel = keying::<V>(backend, c)?;
    let ad = hex_field(c, "ad").unwrap_or_default();
    let pt = hex_field(c, "pt")?;
    let want_ct = hex_field(c, "ct")?;
    let name = |what: &str| {
        format!(
            "rcs {kind} {i} ({}, {} bytes, {backend}): {what}",
            V::LABEL,
            pt.len()
        )
    };

    seal(t, &name, &mut channel()?, c, (&ad, &pt), &want_ct)?;

    if let Some(ok) = c.get("decrypt_ok").and_then(Value::as_bool) {
        let mut dec = channel()?;
        let mut out = Vec::new();
        let r = dec.open(&ad, &want_ct, &mut out);
        t.check(|| name("decrypt"), r.is_ok() == ok && (!ok || out == pt));
    }
    if let Some(ret) = c
        .get("tampered_tag_decrypt_returns")
        .and_then(Value::as_bool)
    {
        let mut dec = channel()?;
        let mut bad = want_ct.clone();
        if let Some(last) = bad.last_mut() {
            *last ^= 1;
        }
        let mut out = Vec::new();
        let r = dec.open(&ad, &bad, &mut out);
        t.check(|| name("tampered tag"), r.is_ok() == ret && out.is_empty());
        if let Some(after) = nonce32(c, "nonce_after_failed_decrypt") {
            t.check(|| name("nonce after failed decrypt"), dec.nonce() == after);
        }
    }
    Some(())
}

/// Seals `pt` on `enc`: it must give `want`, and leave the nonce at `c`'s `nonce_after`
/// where the case gives it.
fn seal<V: Variant>(
    t: &mut Tally,
    name: &dyn Fn(&str) -> String,
    enc: &mut RcsChannel<V>,
    c: &Value,
    (ad, pt): (&[u8], &[u8]),
    want: &[u8],
) -> Option<()> {
    let mut ct = Vec::new();
    enc.seal(ad, pt, &mut ct).ok()?;
    t.check(|| name("ciphertext||tag"), ct == want);
    if let Some(after) = nonce32(c, "nonce_after") {
        t.check(|| name("nonce after"), enc.nonce() == after);
    }
    Some(())
}

fn multi(backend: Backend, c: &Value, t: &mut Tally, i: usize) -> Option<()> {
    if c.get("cipher")?.as_str()? == "RCS-256" {
        multi_v::<Rcs256>(backend, c, t, i)
    } else {
        multi_v::<Rcs512>(backend, c, t, i)
    }
}

fn multi_v<V: Variant>(backend: Backend, c: &Value, t: &mut Tally, i: usize) -> Option<()> {
    let channel = keying::<V>(backend, c)?;
    let packets = c.get("packets")?.as_array()?;
    let (mut enc, mut dec, mut dec2) = (channel()?, channel()?, channel()?);
    for (k, p) in packets.iter().enumerate() {
        let name =
            |what: &str| format!("rcs multi {i} packet {k} ({}, {backend}): {what}", V::LABEL);
        let ad = hex_field(p, "ad").unwrap_or_default();
        let pt = hex_field(p, "pt")?;
        let want = hex_field(p, "ct")?;
        seal(t, &name, &mut enc, p, (&ad, &pt), &want)?;
        if let Some(n) = p.get("state_counter_after").and_then(Value::as_u64) {
            t.check(|| name("counter after"), enc.counter() == n);
        }
        if let Some(ok) = p.get("decrypt_ok").and_then(Value::as_bool) {
            let mut out = Vec::new();
            let r = dec.open(&ad, &want, &mut out);
            t.check(|| name("decrypt"), r.is_ok() == ok && (!ok || out == pt));
        }
        if let Some(ok) = p.get("dec2_result").and_then(Value::as_bool) {
            // The second decrypt state sees the packets the file marks `dec2_input_tampered`
            // with the last tag byte XOR 1; such a packet must fail to open, and the stream
            // goes on as `dec2_result` says.
            let tampered = p.get("dec2_input_tampered").and_then(Value::as_bool) == Some(true);
            let mut input = want.clone();
            if tampered {
                *input.last_mut()? ^= 1;
            }
            let mut out = Vec::new();
            let r = dec2.open(&ad, &input, &mut out);
            t.check(|| name("tampered stream"), r.is_ok() == ok);
            if tampered {
                t.check(|| name("tampered packet refused"), r.is_err());
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;
    use serde_json::json;

    fn tally(v: &Value) -> Tally {
        test_data::tally(v, recognizes, run)
    }

    #[test]
    fn rcs_json_passes() {
        let t = tally(&test_data::load("rcs.json"));
        assert!(t.failures.is_empty(), "{:#?}", t.failures);
        assert_eq!(t.skipped, 0);
        assert!(t.passed > 100, "only {} passed", t.passed);
    }

    /// A three-packet RCS-512 stream sealed here, packet `tampered` (if any) marked. The
    /// second decrypt state opens the packets before it, refuses it and, its MAC state
    /// advanced, every packet after it.
    fn stream(tampered: Option<usize>) -> Value {
        let (key, nonce) = ([7u8; 64], [9u8; 32]);
        let backend = Backend::selected().unwrap();
        let mut enc = RcsChannel::<Rcs512>::with_backend(backend, &key, &nonce, &[]).unwrap();
        let packets: Vec<Value> = (0..3)
            .map(|k| {
                let (ad, pt) = ([4u8; 21], vec![k as u8; 10 + k]);
                let mut ct = Vec::new();
                enc.seal(&ad, &pt, &mut ct).unwrap();
                let mut p = json!({
                    "index": k + 1,
                    "ad": hex::encode(ad),
                    "pt": hex::encode(&pt),
                    "ct": hex::encode(&ct),
                    "decrypt_ok": true,
                    "dec2_result": tampered.is_none_or(|t| k < t),
                });
                if tampered == Some(k) {
                    p["dec2_input_tampered"] = json!(true);
                }
                p
            })
            .collect();
        json!({"multi": [{
            "cipher": "RCS-512",
            "key": hex::encode(key),
            "nonce": hex::encode(nonce),
            "packets": packets,
        }]})
    }

    fn packet(v: &mut Value, k: usize) -> &mut serde_json::Map<String, Value> {
        v["multi"][0]["packets"][k].as_object_mut().unwrap()
    }

    #[test]
    fn the_marked_packet_is_tampered_at_any_index() {
        for k in [0, 1, 2] {
            let t = tally(&stream(Some(k)));
            assert!(t.failures.is_empty(), "tampered {k}: {:#?}", t.failures);
            // Ciphertext, decrypt and second decrypt per packet, and the refusal.
            assert_eq!(t.passed, 3 * 3 + 1, "tampered {k}");
        }
        let t = tally(&stream(None));
        assert!(t.failures.is_empty(), "{:#?}", t.failures);
        assert_eq!(t.passed, 3 * 3);
    }

    #[test]
    fn a_mark_the_results_do_not_follow_fails() {
        // The mark moved from packet 1 to packet 0, the results left as they were.
        let mut v = stream(Some(1));
        packet(&mut v, 1).remove("dec2_input_tampered");
        packet(&mut v, 0).insert("dec2_input_tampered".into(), json!(true));
        assert!(tally(&v).failed > 0);
        // Results that say packet 1 (index 2) fails, without the mark.
        let mut v = stream(Some(1));
        packet(&mut v, 1).remove("dec2_input_tampered");
        assert!(tally(&v).failed > 0);
        // A marked packet that the results say opens: its second decrypt fails the check.
        let mut v = stream(None);
        packet(&mut v, 2).insert("dec2_input_tampered".into(), json!(true));
        let t = tally(&v);
        assert_eq!(t.failed, 1);
        assert!(t.failures[0].contains("packet 2") && t.failures[0].ends_with("tampered stream"));
    }
}
