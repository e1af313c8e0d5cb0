//! Post-quantum known answers: the per-set file (a `sets` array of `{token, sizes, cases}`)
//! and the default-set file (`cases` with `kem_*` / `sig_*` fields), plus the
//! configuration table (`dktp_configurations`).
//!
//! Every case runs through the engine's run-time dispatch ([`dktp::pq::KemAlg`],
//! [`dktp::pq::SigAlg`]) from the recorded coins: key generation, encapsulation,
//! decapsulation (also of the tampered ciphertext, expecting the FIPS 203 value where the
//! file gives one), signing (deterministic sets and SPHINCS+ with its recorded optrand
//! must reproduce the signature bytes), verification and every tampered variant. ML-KEM
//! sets also run through the portable [`dktp::pq::kyber`] code that wasm builds use.
//! Algorithms are identified by the token or by the recorded sizes, never by file names or
//! case order. Values given as `{sha3_256, length}` are compared by digest.

use crate::Tally;
use dktp::config::Config;
use dktp::pq::{Coins, KemAlg, KemSecretKey, PqError, SigAlg, SigningKey, kyber};
use serde_json::Value;
use sha3::{Digest, Sha3_256};

/// Whether the file is in one of this module's formats.
pub fn recognizes(v: &Value) -> bool {
    is_sets_file(v) || is_default_file(v)
}

fn is_sets_file(v: &Value) -> bool {
    v.get("sets").and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|s| s.get("token").is_some() && s.get("cases").is_some())
    })
}

fn is_default_file(v: &Value) -> bool {
    v.get("cases").and_then(Value::as_array).is_some_and(|a| {
        a.iter()
            .any(|c| c.get("kem_keygen_coins").is_some() || c.get("sig_keygen_seed").is_some())
    })
}

/// Checks every case.
pub fn run(v: &Value, t: &mut Tally) {
    if let Some(confs) = v.get("dktp_configurations").and_then(Value::as_array) {
        for c in confs {
            run_config(c, t);
        }
    }
    if let Some(sets) = v.get("sets").and_then(Value::as_array) {
        for set in sets {
            run_set(set, t);
        }
    }
    if is_default_file(v)
        && let Some(cases) = v.get("cases").and_then(Value::as_array)
    {
        for (i, c) in cases.iter().enumerate() {
            run_default_case(i, c, t);
        }
    }
}

/// A recorded value: full hex, or `{sha3_256, length}` for the large ones.
enum Expected {
    Bytes(Vec<u8>),
    Digest { sha3_256: Vec<u8>, length: usize },
}

impl Expected {
    fn from(v: Option<&Value>) -> Option<Expected> {
        let v = v?;
        if let Some(s) = v.as_str() {
            return hex::decode(s).ok().map(Expected::Bytes);
        }
        let d = hex::decode(v.get("sha3_256")?.as_str()?).ok()?;
        let length = usize::try_from(v.get("length")?.as_u64()?).ok()?;
        Some(Expected::Digest {
            sha3_256: d,
            length,
        })
    }

    fn matches(&self, got: &[u8]) -> bool {
        match self {
            Expected::Bytes(b) => b == got,
            Expected::Digest { sha3_256, length } => {
                got.len() == *length && Sha3_256::digest(got).as_slice() == sha3_256.as_slice()
            }
        }
    }

    fn full(&self) -> Option<&[u8]> {
        match self {
            Expected::Bytes(b) => Some(b),
            Expected::Digest { .. } => None,
        }
    }
}

fn hex_of(v: &Value, k: &str) -> Option<Vec<u8>> {
    crate::hex_field(v, k)
}

/// The handshake and ratchet messages, as the configuration table names them.
const MESSAGES: [&str; 8] = [
    "connect_request",
    "connect_response",
    "exchange_request",
    "exchange_response",
    "establish_request",
    "establish_response",
    "asymmetric_ratchet_request",
    "asymmetric_ratchet_response",
];

fn run_config(c: &Value, t: &mut Tally) {
    let name = c
        .get("config_string")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let Ok(cfg) = name.parse::<Config>() else {
        t.check(|| format!("config {name}: not parsed"), false);
        return;
    };
    t.check(
        || format!("config {name}: wire form"),
        Config::from_wire(&cfg.to_wire()) == Ok(cfg),
    );
    let num = |k: &str| {
        c.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    t.check(
        || format!("config {name}: .dskey size"),
        num("local_peer_key_file_size (.dskey)") == Some(cfg.local_peer_key_size()),
    );
    t.check(
        || format!("config {name}: .dpkey size"),
        num("remote_peer_key_file_size (.dpkey)") == Some(cfg.remote_peer_key_size()),
    );
    if let Some(m) = c.get("message_len (header msglen field; packet = 21 + this)") {
        let s = cfg.message_sizes();
        let ours = [
            s.connect_request,
            s.connect_response,
            s.exchange_request,
            s.exchange_response,
            s.establish_request,
            s.establish_response,
            s.asymmetric_ratchet_request,
            s.asymmetric_ratchet_response,
        ];
        for (k, ours) in MESSAGES.into_iter().zip(ours) {
            let theirs = m
                .get(k)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok());
            t.check(
                || format!("config {name}: {k} length"),
                theirs == Some(ours),
            );
        }
    }
    if let Some(p) = c
        .get("asymmetric_ratchet_possible")
        .and_then(Value::as_bool)
    {
        t.check(
            || format!("config {name}: ratchet possible"),
            p == cfg.asymmetric_ratchet_possible(),
        );
    }
}

fn run_set(set: &Value, t: &mut Tally) {
    let token = set.get("token").and_then(Value::as_str).unwrap_or("?");
    let sizes = set.get("sizes");
    let size = |k: &str| {
        sizes
            .and_then(|s| s.get(k))
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    };
    let cases = set
        .get("cases")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    // The recorded public key, secret key and third size (`third`) are the set's.
    let sizes =
        |third: &str, ours: [usize; 3]| [size("pk"), size("sk"), size(third)] == ours.map(Some);
    if let Some(alg) = KemAlg::from_token(token) {
        let s = alg.sizes();
        let ok = sizes("ct", [s.public_key, s.secret_key, s.ciphertext]);
        t.check(|| format!("{token}: sizes"), ok);
        cases.iter().for_each(|c| run_kem_case(alg, c, t));
    } else if let Some(alg) = SigAlg::from_token(token) {
        let s = alg.sizes();
        let ok = sizes("sig", [s.public_key, s.secret_key, s.signature]);
        t.check(|| format!("{token}: sizes"), ok);
        cases.iter().for_each(|c| run_sig_case(alg, c, t));
    } else {
        t.check(|| format!("set {token}: unknown token"), false);
    }
}

fn case_name(c: &Value) -> String {
    c.get("case")
        .map(Value::to_string)
        .unwrap_or_else(|| "?".into())
}

/// Applies a tamper description such as `ct[0] ^= 0x01`.
fn apply_xor(change: &str, target: &str, bytes: &mut [u8], sig_len: usize) -> Option<()> {
    let start = change.find(&format!("{target}["))? + target.len() + 1;
    let rest = &change[start..];
    let close = rest.find(']')?;
    let idx = eval_index(&rest[..close], bytes.len(), sig_len)?;
    let op = rest[close + 1..]
        .trim_start()
        .strip_prefix("^=")?
        .trim_start();
    let hexpart: String = op
        .strip_prefix("0x")?
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    let mask = u8::from_str_radix(&hexpart, 16).ok()?;
    *bytes.get_mut(idx)? ^= mask;
    Some(())
}

/// Index expressions in tamper descriptions: a number, `sig/2`, `sig-1`, `len-1`.
fn eval_index(expr: &str, len: usize, sig_len: usize) -> Option<usize> {
    let expr = expr.trim();
    if let Ok(n) = expr.parse() {
        return Some(n);
    }
    let (base, rest) = if let Some(r) = expr.strip_prefix("sig") {
        (sig_len, r)
    } else if let Some(r) = expr.strip_prefix("len") {
        (len, r)
    } else {
        return None;
    };
    if rest.is_empty() {
        return Some(base);
    }
    let (op, num) = rest.split_at(1);
    let n: usize = num.parse().ok()?;
    match op {
        "/" => base.checked_div(n),
        "-" => base.checked_sub(n),
        "+" => base.checked_add(n),
        _ => None,
    }
}

fn run_kem_case(alg: KemAlg, c: &Value, t: &mut Tally) {
    let name = format!("{} case {}", alg.token(), case_name(c));
    let (Some(kc), Some(ec)) = (hex_of(c, "keygen_coins"), hex_of(c, "encaps_coins")) else {
        t.check(|| format!("{name}: coins missing"), false);
        return;
    };
    let (Some(pk_exp), Some(sk_exp)) = (Expected::from(c.get("pk")), Expected::from(c.get("sk")))
    else {
        t.check(|| format!("{name}: keys missing"), false);
        return;
    };
    let kp = match alg.generate(&mut Coins::new(&kc)) {
        Ok(kp) => Some(kp),
        Err(e) => {
            t.check(|| format!("{name}: keygen: {e}"), false);
            None
        }
    };
    if let Some(kp) = &kp {
        t.check(|| format!("{name}: keygen pk"), pk_exp.matches(&kp.public));
        t.check(
            || format!("{name}: keygen sk"),
            sk_exp.matches(kp.secret.expose()),
        );
    }
    // Keys that could not be regenerated: the public key the file carries.
    if let Some(pk) = kp.as_ref().map(|kp| &kp.public[..]).or(pk_exp.full()) {
        let mut coins = Coins::new(&ec);
        match alg.encapsulate(pk, &mut coins) {
            Ok((ct, ss)) => {
                t.check_hex(|| format!("{name}: encaps ct"), c, "ct", &ct);
                t.check_hex(|| format!("{name}: encaps ss"), c, "ss", ss.expose());
                if kp.is_some() {
                    t.check(
                        || format!("{name}: encaps consumed all coins"),
                        coins.remaining() == 0,
                    );
                }
            }
            Err(e) => t.check(|| format!("{name}: encaps: {e}"), false),
        }
    } else {
        t.check(
            || format!("{name}: encaps: no public key (keygen from coins unavailable)"),
            false,
        );
    }
    // Decapsulate with the recorded secret key where the file carries it in full, else
    // with the regenerated one (compared by digest above).
    let sk = match (sk_exp.full(), &kp) {
        (Some(b), _) => KemSecretKey::from_bytes(alg, b),
        (None, Some(kp)) => Ok(kp.secret.clone()),
        (None, None) => {
            t.check(
                || format!("{name}: decaps: no secret key (keygen from coins unavailable)"),
                false,
            );
            return;
        }
    };
    let sk = match sk {
        Ok(sk) => sk,
        Err(e) => {
            t.check(|| format!("{name}: load sk: {e}"), false);
            return;
        }
    };
    let Some(ct) = hex_of(c, "ct") else { return };
    if c.get("decaps_returned").and_then(Value::as_bool) == Some(true) {
        let got = alg.decapsulate(&sk, &ct).ok();
        t.check(
            || format!("{name}: decaps"),
            got.is_some()
                && hex_of(c, "decaps_ss").as_deref() == got.as_ref().map(|s| &s.expose()[..]),
        );
    }
    if let Some(tc) = c.get("tampered_ct") {
        let change = tc.get("change").and_then(Value::as_str).unwrap_or("");
        let mut bad = ct.clone();
        if apply_xor(change, "ct", &mut bad, 0).is_none() {
            t.check(
                || format!("{name}: tampered ct: change {change:?} not understood"),
                false,
            );
            return;
        }
        // FIPS 203 implicit rejection where the file distinguishes it from the reference's.
        let expect = hex_of(tc, "fips203_decaps_ss").or_else(|| hex_of(tc, "decaps_ss"));
        let got = alg.decapsulate(&sk, &bad).ok();
        t.check(
            || format!("{name}: tampered ct implicit rejection"),
            got.is_some() && expect.as_deref() == got.as_ref().map(|s| &s.expose()[..]),
        );
    }
    if let Some(p) = alg.kyber_params() {
        run_kem_case_portable(&name, &p, c, &kc, &ec, t);
    }
}

/// The same case through the portable ML-KEM code that wasm builds run.
fn run_kem_case_portable(
    name: &str,
    p: &kyber::Params,
    c: &Value,
    kc: &[u8],
    ec: &[u8],
    t: &mut Tally,
) {
    let Ok((ek, dk)) = kyber::keygen(p, kc) else {
        t.check(|| format!("{name} [portable]: keygen"), false);
        return;
    };
    let portable = |what: &str| format!("{name} [portable]: {what}");
    t.check_hex(|| portable("keygen pk"), c, "pk", &ek);
    t.check_hex(|| portable("keygen sk"), c, "sk", &dk);
    let Ok((ct, ss)) = kyber::encapsulate(p, &ek, ec) else {
        t.check(|| format!("{name} [portable]: encaps"), false);
        return;
    };
    t.check_hex(|| portable("encaps ct"), c, "ct", &ct);
    t.check_hex(|| portable("encaps ss"), c, "ss", &ss);
    let got = kyber::decapsulate(p, &dk, &ct).ok();
    t.check(
        || format!("{name} [portable]: decaps"),
        hex_of(c, "decaps_ss").as_deref() == got.as_ref().map(|s| &s[..]),
    );
    if let Some(tc) = c.get("tampered_ct") {
        let change = tc.get("change").and_then(Value::as_str).unwrap_or("");
        let mut bad = ct.clone();
        let ok = apply_xor(change, "ct", &mut bad, 0).is_some();
        let expect = hex_of(tc, "fips203_decaps_ss").or_else(|| hex_of(tc, "decaps_ss"));
        let got = kyber::decapsulate(p, &dk, &bad).ok();
        t.check(
            || format!("{name} [portable]: tampered ct implicit rejection"),
            ok && expect.as_deref() == got.as_ref().map(|s| &s[..]),
        );
    }
}

fn run_sig_case(alg: SigAlg, c: &Value, t: &mut Tally) {
    let name = format!("{} case {}", alg.token(), case_name(c));
    let (Some(kc), Some(pk), Some(sk)) =
        (hex_of(c, "keygen_coins"), hex_of(c, "pk"), hex_of(c, "sk"))
    else {
        t.check(|| format!("{name}: keygen fields missing"), false);
        return;
    };
    match alg.generate(&mut Coins::new(&kc)) {
        Ok(kp) => {
            t.check(|| format!("{name}: keygen pk"), kp.verifying == pk);
            t.check(
                || format!("{name}: keygen sk"),
                kp.signing.expose() == &sk[..],
            );
        }
        Err(e) => t.check(|| format!("{name}: keygen: {e}"), false),
    }
    let key = match SigningKey::from_bytes(alg, &sk) {
        Ok(k) => k,
        Err(e) => {
            t.check(|| format!("{name}: load sk: {e}"), false);
            return;
        }
    };
    let messages = c
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for m in messages {
        let mname = format!(
            "{name} msg_len {}",
            m.get("msg_len").map(Value::to_string).unwrap_or_default()
        );
        let (Some(msg), Some(sm)) = (hex_of(m, "msg"), hex_of(m, "signed_message")) else {
            t.check(|| format!("{mname}: fields missing"), false);
            continue;
        };
        let coins = hex_of(m, "sign_coins").unwrap_or_default();
        match alg.sign(&key, &msg, &mut Coins::new(&coins)) {
            Ok(ours) => t.check(
                || format!("{mname}: sign reproduces signed message"),
                ours == sm,
            ),
            Err(e) => t.check(|| format!("{mname}: sign: {e}"), false),
        }
        let verify_ok = m.get("verify_ok").and_then(Value::as_bool).unwrap_or(true);
        let got = alg.verify(&pk, &sm);
        let understood = !matches!(got, Err(PqError::Unsupported { .. }));
        t.check(
            || format!("{mname}: verify"),
            understood
                && match got {
                    Ok(back) => verify_ok && back == &msg[..],
                    Err(_) => !verify_ok,
                },
        );
        let tampered = m
            .get("tampered")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (i, tv) in tampered.iter().enumerate() {
            let change = tv.get("change").and_then(Value::as_str).unwrap_or("");
            let Some((bad_pk, bad_sm)) = tamper_signature(change, &pk, &sm, alg.sizes().signature)
            else {
                t.check(
                    || format!("{mname}: tampered #{i}: change {change:?} not understood"),
                    false,
                );
                continue;
            };
            let len_ok = tv
                .get("signed_message_len")
                .and_then(Value::as_u64)
                .is_none_or(|n| usize::try_from(n).ok() == Some(bad_sm.len()));
            let expect_ok = tv
                .get("verify_ok")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let got = alg.verify(&bad_pk, &bad_sm);
            // Only a verdict counts: a build that cannot run the algorithm fails the case.
            let understood = !matches!(got, Err(PqError::Unsupported { .. }));
            t.check(
                || format!("{mname}: tampered #{i} ({change})"),
                understood && len_ok && got.is_ok() == expect_ok,
            );
        }
    }
}

/// Applies a signature tamper description: an XOR into `signed_message[...]` or `pk[...]`,
/// or a truncation `signed_message[0:len-1]`.
fn tamper_signature(
    change: &str,
    pk: &[u8],
    sm: &[u8],
    sig_len: usize,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut pk = pk.to_vec();
    let mut sm = sm.to_vec();
    if let Some(rest) = change.strip_prefix("truncated:") {
        let inner = rest.trim().strip_prefix("signed_message[")?;
        let (range, _) = inner.split_once(']')?;
        let (a, b) = range.split_once(':')?;
        let a = eval_index(a, sm.len(), sig_len)?;
        let b = eval_index(b, sm.len(), sig_len)?;
        sm = sm.get(a..b)?.to_vec();
        return Some((pk, sm));
    }
    let mut done = false;
    if change.contains("pk[") {
        apply_xor(change, "pk", &mut pk, sig_len)?;
        done = true;
    }
    if change.contains("signed_message[") {
        apply_xor(change, "signed_message", &mut sm, sig_len)?;
        done = true;
    }
    done.then_some((pk, sm))
}

fn kem_by_sizes(pk: usize, sk: usize, ct: usize) -> Option<KemAlg> {
    KemAlg::ALL.into_iter().find(|a| {
        let s = a.sizes();
        (s.public_key, s.secret_key, s.ciphertext) == (pk, sk, ct)
    })
}

fn sig_by_sizes(vk: usize, sk: usize, sig: usize) -> Option<SigAlg> {
    SigAlg::ALL.into_iter().find(|a| {
        let s = a.sizes();
        (s.public_key, s.secret_key, s.signature) == (vk, sk, sig)
    })
}

/// Key generation from recorded coins gave `got`: it must be the recorded public key
/// (`public.0` names it) and secret key.
fn check_keygen(
    t: &mut Tally,
    name: &str,
    got: Result<(&[u8], &[u8]), &PqError>,
    public: (&str, &[u8]),
    secret: &[u8],
) {
    match got {
        Ok((p, s)) => {
            t.check(|| format!("{name} keygen {}", public.0), p == public.1);
            t.check(|| format!("{name} keygen sk"), s == secret);
        }
        Err(e) => t.check(|| format!("{name} keygen: {e}"), false),
    }
}

fn run_default_case(i: usize, c: &Value, t: &mut Tally) {
    let name = format!("default case {i}");
    if let (Some(kc), Some(pk), Some(sk), Some(ec), Some(ct), Some(ss)) = (
        hex_of(c, "kem_keygen_coins"),
        hex_of(c, "kem_pk"),
        hex_of(c, "kem_sk"),
        hex_of(c, "kem_encaps_coins"),
        hex_of(c, "kem_ct"),
        hex_of(c, "kem_ss"),
    ) {
        match kem_by_sizes(pk.len(), sk.len(), ct.len()) {
            Some(alg) => {
                let kp = alg.generate(&mut Coins::new(&kc));
                let got = kp.as_ref().map(|kp| (&kp.public[..], kp.secret.expose()));
                check_keygen(t, &format!("{name}: {alg}"), got, ("pk", &pk), &sk);
                match alg.encapsulate(&pk, &mut Coins::new(&ec)) {
                    Ok((c2, s2)) => {
                        t.check(|| format!("{name}: {alg} encaps ct"), c2 == ct);
                        t.check(
                            || format!("{name}: {alg} encaps ss"),
                            s2.expose()[..] == ss[..],
                        );
                    }
                    Err(e) => t.check(|| format!("{name}: {alg} encaps: {e}"), false),
                }
                let expect_ok = c
                    .get("kem_decaps_ok")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let got = KemSecretKey::from_bytes(alg, &sk).and_then(|k| alg.decapsulate(&k, &ct));
                t.check(
                    || format!("{name}: {alg} decaps"),
                    match got {
                        Ok(s) => (s.expose()[..] == ss[..]) == expect_ok,
                        Err(_) => false,
                    },
                );
            }
            None => t.check(|| format!("{name}: no KEM with these sizes"), false),
        }
    }
    if let (Some(seed), Some(vk), Some(sk), Some(msg), Some(sm)) = (
        hex_of(c, "sig_keygen_seed"),
        hex_of(c, "sig_vk"),
        hex_of(c, "sig_sk"),
        hex_of(c, "msg"),
        hex_of(c, "signed_message"),
    ) {
        let sig_len = sm.len().saturating_sub(msg.len());
        match sig_by_sizes(vk.len(), sk.len(), sig_len) {
            Some(alg) => {
                let kp = alg.generate(&mut Coins::new(&seed));
                let got = kp
                    .as_ref()
                    .map(|kp| (&kp.verifying[..], kp.signing.expose()));
                check_keygen(t, &format!("{name}: {alg}"), got, ("vk", &vk), &sk);
                let signed = SigningKey::from_bytes(alg, &sk)
                    .and_then(|k| alg.sign(&k, &msg, &mut Coins::new(&[])));
                t.check(
                    || format!("{name}: {alg} sign reproduces"),
                    signed.as_ref().ok() == Some(&sm),
                );
                let expect_ok = c.get("verify_ok").and_then(Value::as_bool).unwrap_or(true);
                let got = alg.verify(&vk, &sm);
                t.check(
                    || format!("{name}: {alg} verify"),
                    match got {
                        Ok(m) => expect_ok && m == &msg[..],
                        Err(_) => !expect_ok,
                    },
                );
            }
            None => t.check(
                || format!("{name}: no signature scheme with these sizes"),
                false,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;

    fn run_file(name: &str) -> Tally {
        test_data::tally(&test_data::load(name), recognizes, run)
    }

    #[test]
    fn default_set_file_passes() {
        let t = run_file("dktp_pqc.json");
        assert!(t.failures.is_empty(), "{:#?}", t.failures);
        assert_eq!(t.skipped, 0);
        assert!(t.passed > 0);
    }

    #[test]
    fn per_set_file_passes() {
        let t = run_file("pqc_sets.json");
        eprintln!(
            "pqc_sets.json: {} passed, {} failed, {} skipped",
            t.passed, t.failed, t.skipped
        );
        assert!(t.failures.is_empty(), "{:#?}", t.failures);
        assert_eq!(t.skipped, 0);
    }

    #[test]
    fn tamper_descriptions_are_understood() {
        let pk = [0u8; 4];
        let sm = [0u8; 10];
        let (_, s) =
            tamper_signature("signed_message[sig/2] ^= 0x80 (middle)", &pk, &sm, 6).unwrap();
        assert_eq!(s[3], 0x80);
        let (_, s) = tamper_signature("truncated: signed_message[0:len-1]", &pk, &sm, 6).unwrap();
        assert_eq!(s.len(), 9);
        let (p, _) =
            tamper_signature("unchanged signed message, pk[len-1] ^= 0x01", &pk, &sm, 6).unwrap();
        assert_eq!(p[3], 1);
        assert!(tamper_signature("something else", &pk, &sm, 6).is_none());
    }
}
