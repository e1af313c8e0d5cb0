//! Key-schedule known answers: the format with a `kex` object (shared `inputs` and one
//! object per view, `client` and `server`, whose inputs name entries of `inputs`) and an
//! `asymmetric_ratchet` list (`dktp_kdf.json`).

use crate::{Tally, hex_field};
use dktp::key_schedule::{
    self, ChannelKey, HandshakeKeys, KEY_LEN, NONCE_LEN, PSS_LEN, RatchetKeys,
};
use serde_json::Value;

/// Whether the file is in this format.
pub fn recognizes(v: &Value) -> bool {
    let kex = v.get("kex").is_some_and(|k| {
        k.get("inputs").is_some_and(Value::is_object)
            && ["client", "server"]
                .iter()
                .any(|side| k.get(side).is_some_and(|s| s.get("secl").is_some()))
    });
    let ratchet = v
        .get("asymmetric_ratchet")
        .and_then(Value::as_array)
        .is_some_and(|rows| rows.iter().any(|r| r.get("prnd_96").is_some()));
    kex || ratchet
}

/// Checks every case.
pub fn run(v: &Value, t: &mut Tally) {
    if let Some(kex) = v.get("kex") {
        let client = view(kex, "client", t);
        let server = view(kex, "server", t);
        if let (Some(c), Some(s)) = (client, server) {
            cross_checks(kex, &c, &s, t);
        }
    }
    let rows = v.get("asymmetric_ratchet").and_then(Value::as_array);
    for (i, row) in rows.map_or(&[][..], Vec::as_slice).iter().enumerate() {
        ratchet(i, row, t);
    }
}

/// A view's input field names an entry of `inputs` by its first word
/// (`"secret_client_encaps (client encapsulated to server ek)"`).
fn input(kex: &Value, side: &Value, key: &str) -> Option<Vec<u8>> {
    let name = side.get(key)?.as_str()?.split_whitespace().next()?;
    hex_field(kex.get("inputs")?, name)
}

fn pss(bytes: Option<Vec<u8>>) -> Option<[u8; PSS_LEN]> {
    bytes?.try_into().ok()
}

fn key_nonce(k: &ChannelKey) -> Vec<u8> {
    [k.key().as_slice(), k.nonce().as_slice()].concat()
}

fn view(kex: &Value, name: &str, t: &mut Tally) -> Option<HandshakeKeys> {
    let side = kex.get(name)?;
    let inputs = (
        input(kex, side, "secl"),
        input(kex, side, "secr"),
        pss(input(kex, side, "pssl_in")),
        pss(input(kex, side, "pssr_in")),
    );
    let (Some(secl), Some(secr), Some(pssl), Some(pssr)) = inputs else {
        t.check(|| format!("kdf kex.{name}: unreadable inputs"), false);
        return None;
    };
    let keys = match name {
        "client" => key_schedule::client_keys(&secl, &secr, &pssl, &pssr),
        _ => key_schedule::server_keys(&secl, &secr, &pssl, &pssr),
    };
    let expected: [(&str, Vec<u8>); 6] = [
        ("tx_key", keys.tx.key().to_vec()),
        ("tx_nonce", keys.tx.nonce().to_vec()),
        ("rx_key", keys.rx.key().to_vec()),
        ("rx_nonce", keys.rx.nonce().to_vec()),
        ("pssl_out", keys.pssl.as_bytes().to_vec()),
        ("pssr_out", keys.pssr.as_bytes().to_vec()),
    ];
    for (field, ours) in expected {
        t.check_hex(|| format!("kdf kex.{name}.{field}"), side, field, &ours);
    }
    // The reference squeezes more than it uses; its first 96 bytes are key || nonce.
    for (field, k) in [("tx_prnd_144", &keys.tx), ("rx_prnd_144", &keys.rx)] {
        if let Some(prnd) = hex_field(side, field) {
            t.check(
                || format!("kdf kex.{name}.{field} prefix"),
                prnd.get(..KEY_LEN + NONCE_LEN) == Some(key_nonce(k).as_slice()),
            );
        }
    }
    Some(keys)
}

fn cross_checks(kex: &Value, c: &HandshakeKeys, s: &HandshakeKeys, t: &mut Tally) {
    let pairs = [
        (
            "check_client_tx_eq_server_rx",
            key_nonce(&c.tx) == key_nonce(&s.rx),
        ),
        (
            "check_client_rx_eq_server_tx",
            key_nonce(&c.rx) == key_nonce(&s.tx),
        ),
        (
            "check_client_pssl_eq_server_pssr",
            c.pssl.as_bytes() == s.pssr.as_bytes(),
        ),
        (
            "check_client_pssr_eq_server_pssl",
            c.pssr.as_bytes() == s.pssl.as_bytes(),
        ),
    ];
    for (field, ours) in pairs {
        if let Some(want) = kex.get(field).and_then(Value::as_bool) {
            t.check(|| format!("kdf kex.{field}"), ours == want);
        }
    }
}

fn ratchet(i: usize, row: &Value, t: &mut Tally) {
    let inputs = (
        hex_field(row, "ssec"),
        pss(hex_field(row, "pss_in")),
        row.get("N").and_then(Value::as_str),
    );
    let (Some(ssec), Some(pss_in), Some(domain)) = inputs else {
        t.check(
            || format!("kdf asymmetric_ratchet[{i}]: unreadable case"),
            false,
        );
        return;
    };
    let ours: RatchetKeys = key_schedule::ratchet_with_domain(&ssec, domain.as_bytes(), &pss_in);
    let fields: [(&str, Vec<u8>); 4] = [
        ("prnd_96", key_nonce(&ours.channel)),
        ("key", ours.channel.key().to_vec()),
        ("nonce", ours.channel.nonce().to_vec()),
        ("pss_out", ours.pss.as_bytes().to_vec()),
    ];
    for (field, got) in fields {
        t.check_hex(
            || format!("kdf asymmetric_ratchet[{i}].{field}"),
            row,
            field,
            &got,
        );
    }
    // The default domain is the reference's.
    if domain.as_bytes() == key_schedule::RATCHET_DOMAIN {
        let d = key_schedule::ratchet(&ssec, &pss_in);
        t.check(
            || format!("kdf asymmetric_ratchet[{i}]: default domain"),
            key_nonce(&d.channel) == key_nonce(&ours.channel)
                && d.pss.as_bytes() == ours.pss.as_bytes(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;

    #[test]
    fn dktp_kdf_json_passes() {
        let t = test_data::tally(&test_data::load("dktp_kdf.json"), recognizes, run);
        eprintln!("passed {} skipped {}", t.passed, t.skipped);
        assert!(t.failures.is_empty(), "{:#?}", t.failures);
        assert_eq!(t.skipped, 0);
        assert!(t.passed >= 30, "only {} passed", t.passed);
    }

    #[test]
    fn a_wrong_expectation_fails() {
        let v: Value = serde_json::json!({"asymmetric_ratchet": [{
            "ssec": "00", "pss_in": "00".repeat(32), "N": "QRCS:PDEF:DKTP1A",
            "prnd_96": "00", "key": "00", "nonce": "00", "pss_out": "00"}]});
        assert!(recognizes(&v));
        let mut t = Tally::default();
        run(&v, &mut t);
        assert_eq!(t.failed, 4);
    }

    #[test]
    fn packet_files_are_not_recognized() {
        let v: Value = serde_json::json!({"kex": {"packets": []}, "headers": []});
        assert!(!recognizes(&v));
    }
}
