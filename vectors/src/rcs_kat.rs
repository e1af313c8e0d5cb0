//! RCS known answers: files with `single` cases (one packet each), `multi` streams (several
//! packets on one long-lived state, with a second decrypt state that sees a tampered
//! packet) and `nonce_carry` cases. Every case runs on the given backend.

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

fn single_v<V: Variant>(
    backend: Backend,
    c: &Value,
    t: &mut Tally,
    i: usize,
    kind: &str,
) -> Option<()> {
    let key = hex_field(c, "key")?;
    let nonce = nonce32(c, "nonce")?;
    let info = hex_field(c, "info").unwrap_or_default();
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

    let mut enc = RcsChannel::<V>::with_backend(backend, &key, &nonce, &info).ok()?;
    let mut ct = Vec::new();
    enc.seal(&ad, &pt, &mut ct).ok()?;
    t.check(|| name("ciphertext||tag"), ct == want_ct);
    if let Some(after) = nonce32(c, "nonce_after") {
        t.check(|| name("nonce after encrypt"), enc.nonce() == after);
    }

    if let Some(ok) = c.get("decrypt_ok").and_then(Value::as_bool) {
        let mut dec = RcsChannel::<V>::with_backend(backend, &key, &nonce, &info).ok()?;
        let mut out = Vec::new();
        let r = dec.open(&ad, &want_ct, &mut out);
        t.check(|| name("decrypt"), r.is_ok() == ok && (!ok || out == pt));
    }
    if let Some(ret) = c
        .get("tampered_tag_decrypt_returns")
        .and_then(Value::as_bool)
    {
        let mut dec = RcsChannel::<V>::with_backend(backend, &key, &nonce, &info).ok()?;
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

fn multi(backend: Backend, c: &Value, t: &mut Tally, i: usize) -> Option<()> {
    if c.get("cipher")?.as_str()? == "RCS-256" {
        multi_v::<Rcs256>(backend, c, t, i)
    } else {
        multi_v::<Rcs512>(backend, c, t, i)
    }
}

fn multi_v<V: Variant>(backend: Backend, c: &Value, t: &mut Tally, i: usize) -> Option<()> {
    let key = hex_field(c, "key")?;
    let nonce = nonce32(c, "nonce")?;
    let info = hex_field(c, "info").unwrap_or_default();
    let packets = c.get("packets")?.as_array()?;
    let mut enc = RcsChannel::<V>::with_backend(backend, &key, &nonce, &info).ok()?;
    let mut dec = RcsChannel::<V>::with_backend(backend, &key, &nonce, &info).ok()?;
    let mut dec2 = RcsChannel::<V>::with_backend(backend, &key, &nonce, &info).ok()?;
    for (k, p) in packets.iter().enumerate() {
        let name =
            |what: &str| format!("rcs multi {i} packet {k} ({}, {backend}): {what}", V::LABEL);
        let ad = hex_field(p, "ad").unwrap_or_default();
        let pt = hex_field(p, "pt")?;
        let want = hex_field(p, "ct")?;
        let mut ct = Vec::new();
        enc.seal(&ad, &pt, &mut ct).ok()?;
        t.check(|| name("ciphertext||tag"), ct == want);
        if let Some(after) = nonce32(p, "nonce_after") {
            t.check(|| name("nonce after"), enc.nonce() == after);
        }
        if let Some(n) = p.get("state_counter_after").and_then(Value::as_u64) {
            t.check(|| name("counter after"), enc.counter() == n);
        }
        if let Some(ok) = p.get("decrypt_ok").and_then(Value::as_bool) {
            let mut out = Vec::new();
            let r = dec.open(&ad, &want, &mut out);
            t.check(|| name("decrypt"), r.is_ok() == ok && (!ok || out == pt));
        }
        if let Some(ok) = p.get("dec2_result").and_then(Value::as_bool) {
            // The second decrypt state sees the packet with `index` 2 with a flipped tag bit.
            let mut input = want.clone();
            if p.get("index").and_then(Value::as_u64) == Some(2)
                && let Some(last) = input.last_mut()
            {
                *last ^= 1;
            }
            let mut out = Vec::new();
            let r = dec2.open(&ad, &input, &mut out);
            t.check(|| name("tampered stream"), r.is_ok() == ok);
        }
    }
    Some(())
}
