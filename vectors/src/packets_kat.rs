//! Packet-layer known answers: the format with sections `headers`, `kex_error_packet`,
//! `time_valid`, `header_validate`, `encrypted_packets` and `decrypt_failures`
//! (`dktp_packets.json`).
//!
//! The reference recorded `header_validate` and `decrypt_failures` as a case description
//! plus the outcome, without the mutated inputs. The inputs are rebuilt here from the
//! descriptions (see [`HandshakeCase`] and [`DataCase`]); a description this module does
//! not understand is counted as skipped, never guessed. Expected codes, texts and
//! sequence numbers always come from the file.
//!
//! `peer_keys` belongs to the peer-key format and is left to that module.

use crate::{Tally, hex_field};
use dktp::ErrorCode;
use dktp::packet::{
    self, ERROR_SEQUENCE, ErrorPacket, Flag, FlagCheck, Frame, HEADER_LEN, HandshakeExpect, Header,
    MAX_MESSAGE, TAG_LEN,
};
use serde_json::Value;

/// Whether the file is in this format: any of the packet sections in its known shape.
pub fn recognizes(v: &Value) -> bool {
    let rows_with = |section: &str, key: &str| {
        v.get(section)
            .and_then(Value::as_array)
            .is_some_and(|rows| rows.iter().any(|r| r.get(key).is_some()))
    };
    rows_with("headers", "header")
        || rows_with("time_valid", "local_minus_packet")
        || rows_with("header_validate", "dktp_error")
        || rows_with("decrypt_failures", "packet_sequence")
        || v.get("kex_error_packet")
            .is_some_and(|k| k.get("bytes").is_some())
}

/// Checks every case.
pub fn run(v: &Value, t: &mut Tally) {
    for (i, row) in rows(v, "headers").iter().enumerate() {
        headers(i, row, t);
    }
    if let Some(k) = v.get("kex_error_packet") {
        kex_error_packet(k, t);
    }
    for (i, row) in rows(v, "time_valid").iter().enumerate() {
        time_valid(i, row, t);
    }
    for (i, row) in rows(v, "header_validate").iter().enumerate() {
        header_validate(i, row, t);
    }
    let first_packet = encrypted_packets(v.get("encrypted_packets"), t);
    for (i, row) in rows(v, "decrypt_failures").iter().enumerate() {
        decrypt_failure(i, row, first_packet.as_ref(), t);
    }
}

fn rows<'a>(v: &'a Value, section: &str) -> &'a [Value] {
    v.get(section)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn u64_field(v: &Value, key: &str) -> Option<u64> {
    v.get(key)?.as_u64()
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str()
}

fn code_of<T>(r: &Result<T, dktp::Error>) -> u64 {
    match r {
        Ok(_) => 0,
        Err(e) => u64::from(e.wire_code().as_u8()),
    }
}

/// The reference's text for the row's code must be ours.
fn error_text(what: &str, row: &Value, t: &mut Tally) {
    let (Some(code), Some(text)) = (
        u64_field(row, "dktp_error"),
        str_field(row, "dktp_error_text"),
    ) else {
        return;
    };
    let ours = u8::try_from(code)
        .ok()
        .and_then(ErrorCode::from_u8)
        .and_then(ErrorCode::reference_text);
    t.check(
        || format!("packets {what}: text for code {code} is {ours:?}, file says {text:?}"),
        ours == Some(text),
    );
}

fn headers(i: usize, row: &Value, t: &mut Tally) {
    let fields = (
        u64_field(row, "flag").and_then(|f| u8::try_from(f).ok()),
        u64_field(row, "msglen").and_then(|m| u32::try_from(m).ok()),
        u64_field(row, "sequence"),
        u64_field(row, "utctime"),
        hex_field(row, "header"),
    );
    let (Some(flag), Some(msglen), Some(sequence), Some(utctime), Some(bytes)) = fields else {
        t.check(|| format!("packets headers[{i}]: unreadable case"), false);
        return;
    };
    let h = Header {
        flag,
        msglen,
        sequence,
        utctime,
    };
    t.check(
        || format!("packets headers[{i}]: encode"),
        h.encode().as_slice() == bytes.as_slice(),
    );
    t.check(
        || format!("packets headers[{i}]: decode"),
        Header::decode(&bytes) == Ok(h),
    );
    if let Some(rt) = row.get("roundtrip_ok").and_then(Value::as_bool) {
        t.check(
            || format!("packets headers[{i}]: round trip"),
            (Header::decode(&h.encode()) == Ok(h)) == rt,
        );
    }
}

fn kex_error_packet(k: &Value, t: &mut Tally) {
    let Some(bytes) = hex_field(k, "bytes") else {
        t.check(|| "packets kex_error_packet: unreadable".into(), false);
        return;
    };
    // The code the reference was asked to send is named in `built_by` ("...=0x19)").
    let asked = str_field(k, "built_by").and_then(|s| {
        let hex = s.split("=0x").nth(1)?;
        let digits: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
        u8::from_str_radix(&digits, 16).ok()
    });
    let time = Header::decode(&bytes).map(|h| h.utctime);
    let ok = match (asked.and_then(ErrorCode::from_u8), time) {
        (Some(code), Ok(time)) => {
            packet::encode_plain_error(code, time).as_slice() == bytes.as_slice()
                && matches!(
                    packet::parse_error_packet(&bytes, false),
                    Ok(ErrorPacket::Plain { code: c, header })
                        if c == code.as_u8() && header.sequence == ERROR_SEQUENCE
                )
        }
        _ => false,
    };
    t.check(|| "packets kex_error_packet: build and parse".into(), ok);
}

fn time_valid(i: usize, row: &Value, t: &mut Tally) {
    let (Some(d), Some(valid)) = (
        row.get("local_minus_packet").and_then(Value::as_i64),
        row.get("valid").and_then(Value::as_bool),
    ) else {
        t.check(
            || format!("packets time_valid[{i}]: unreadable case"),
            false,
        );
        return;
    };
    // The same difference at the bottom, the middle and the top of the u64 range.
    let mut ok = true;
    for packet_time in [d.unsigned_abs(), 1_767_225_600, u64::MAX - d.unsigned_abs()] {
        let Some(local) = packet_time.checked_add_signed(d) else {
            ok = false;
            continue;
        };
        let h = Header {
            utctime: packet_time,
            ..Header::new(Flag::EncryptedMessage, 0, 0, 0)
        };
        ok &= packet::time_is_valid(local, packet_time) == valid && h.is_fresh(local) == valid;
    }
    t.check(|| format!("packets time_valid[{i}]: difference {d}"), ok);
}

/// A `header_validate` case: one fault applied to a valid connect request arriving at a
/// server whose `rxseq` is 0.
#[derive(Debug, Default)]
struct HandshakeCase {
    wrong_msglen: bool,
    wrong_sequence: bool,
    wrong_flag: bool,
    wrong_state: bool,
    age: Option<u64>,
    error_byte: Option<u8>,
}

impl HandshakeCase {
    fn parse(case: &str) -> Option<HandshakeCase> {
        let c = case.to_ascii_lowercase();
        let mut k = HandshakeCase::default();
        if c.starts_with("valid ") {
        } else if c == "wrong msglen" {
            k.wrong_msglen = true;
        } else if c == "wrong sequence" {
            k.wrong_sequence = true;
        } else if c == "wrong flag" {
            k.wrong_flag = true;
        } else if c.contains("kex state") {
            k.wrong_state = true;
        } else if c.starts_with("stale") {
            k.age = Some(first_number(&c)?);
        } else if c.starts_with("error-condition") {
            let hex = c.split("0x").nth(1)?.get(..2)?;
            k.error_byte = Some(u8::from_str_radix(hex, 16).ok()?);
        } else {
            return None;
        }
        Some(k)
    }
}

fn first_number(s: &str) -> Option<u64> {
    let digits: String = s
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

const NOW: u64 = 1_767_225_600;

fn header_validate(i: usize, row: &Value, t: &mut Tally) {
    let case = str_field(row, "case").unwrap_or_default();
    error_text(&format!("header_validate[{i}] {case:?}"), row, t);
    let (Some(spec), Some(want), Some(rxseq_after)) = (
        HandshakeCase::parse(case),
        u64_field(row, "dktp_error"),
        u64_field(row, "rxseq_after"),
    ) else {
        t.skip();
        return;
    };
    const MSGLEN: u32 = 4743;
    let expect = HandshakeExpect {
        flag: Flag::ConnectRequest,
        msglen: MSGLEN,
        rxseq: 0,
        state_matches: !spec.wrong_state,
        flag_check: FlagCheck::Reference,
    };
    let mut h = Header::new(Flag::ConnectRequest, MSGLEN, 0, NOW);
    let mut message = vec![0u8; 1];
    if spec.wrong_msglen {
        h.msglen += 1;
    }
    if spec.wrong_sequence {
        h.sequence += 1;
    }
    if spec.wrong_flag {
        h.flag = Flag::ExchangeRequest.as_u8();
    }
    if let Some(age) = spec.age {
        h.utctime = NOW.saturating_sub(age);
    }
    if let Some(b) = spec.error_byte {
        let p = packet::encode_plain_error(ErrorCode::General, NOW);
        h = Header::decode(&p).unwrap_or(h);
        message = vec![b];
    }
    let r = packet::check_handshake_header(&h, &message, &expect, NOW);
    let got_rxseq = *r.as_ref().unwrap_or(&expect.rxseq);
    t.check(
        || format!("packets header_validate[{i}] {case:?}: got {r:?}, want code {want}"),
        code_of(&r) == want && got_rxseq == rxseq_after,
    );
}

/// The first encrypted packet's header and the receiver's `rxseq` before it.
struct FirstPacket {
    header: Header,
    rxseq: u64,
}

fn encrypted_packets(e: Option<&Value>, t: &mut Tally) -> Option<FirstPacket> {
    let mut first = None;
    for (i, row) in e.map_or(&[][..], |e| rows(e, "packets")).iter().enumerate() {
        let (Some(pt), Some(pk), Some(time), Some(txseq)) = (
            hex_field(row, "plaintext"),
            hex_field(row, "packet"),
            u64_field(row, "utctime"),
            u64_field(row, "tx_txseq_after"),
        ) else {
            t.check(
                || format!("packets encrypted_packets[{i}]: unreadable case"),
                false,
            );
            continue;
        };
        // Everything about the packet that needs no cipher: header, framing, length.
        let want = u32::try_from(pt.len() + TAG_LEN)
            .ok()
            .map(|m| Header::new(Flag::EncryptedMessage, m, txseq, time));
        let framed = packet::frame(&pk, MAX_MESSAGE);
        let ok = want.is_some_and(|w| {
            framed
                == Ok(Frame::Complete {
                    header: w,
                    len: pk.len(),
                })
                && packet::split_packet(&pk)
                    .is_ok_and(|(h, m)| h == w && m.len() == w.msglen as usize)
                && pk.get(..HEADER_LEN) == Some(w.encode().as_slice())
        });
        t.check(
            || format!("packets encrypted_packets[{i}]: header and framing"),
            ok,
        );
        // TODO(rcs): once `crate::rcs` exists, seal `plaintext` on one RCS-512 tx state
        // (`key`, `nonce`, AD = header) and compare with `packet`; open on one rx state and
        // check `decrypt_error`, `decrypt_matches` and `rx_rxseq_after`.
        t.skip();
        if first.is_none() {
            // Both counters stood at the same value after the key exchange.
            first = Header::decode(&pk)
                .ok()
                .zip(txseq.checked_sub(1))
                .map(|(header, rxseq)| FirstPacket { header, rxseq });
        }
    }
    first
}

/// A `decrypt_failures` case: the first encrypted packet with the row's sequence number,
/// optionally a shifted receiver clock, a different header msglen, a receiver that is not
/// established, or a corrupted tag.
#[derive(Debug, Default)]
struct DataCase {
    clock_shift: i64,
    msglen: Option<u32>,
    not_established: bool,
    tag_corrupted: bool,
}

impl DataCase {
    fn parse(case: &str) -> Option<DataCase> {
        let c = case.to_ascii_lowercase();
        let mut k = DataCase::default();
        if c.starts_with("ok") || c.starts_with("sequence = ") {
        } else if let Some(rest) = c.strip_prefix("receiver clock ") {
            let sign = match rest.chars().next()? {
                '+' => 1,
                '-' => -1,
                _ => return None,
            };
            k.clock_shift = sign * i64::try_from(first_number(rest)?).ok()?;
        } else if let Some(rest) = c.strip_prefix("header msglen = ") {
            k.msglen = Some(u32::try_from(first_number(rest)?).ok()?);
        } else if c.starts_with("exflag != session_established") {
            k.not_established = true;
        } else if c.starts_with("tag ") {
            k.tag_corrupted = true;
        } else {
            return None;
        }
        Some(k)
    }
}

fn decrypt_failure(i: usize, row: &Value, first: Option<&FirstPacket>, t: &mut Tally) {
    let case = str_field(row, "case").unwrap_or_default();
    error_text(&format!("decrypt_failures[{i}] {case:?}"), row, t);
    let (Some(spec), Some(first), Some(seq), Some(want), Some(rxseq_after)) = (
        DataCase::parse(case),
        first,
        u64_field(row, "packet_sequence"),
        u64_field(row, "dktp_error"),
        u64_field(row, "rxseq_after"),
    ) else {
        t.skip();
        return;
    };
    let mut h = first.header;
    h.sequence = seq;
    if let Some(m) = spec.msglen {
        h.msglen = m;
    }
    let Some(now) = h.utctime.checked_add_signed(spec.clock_shift) else {
        t.check(
            || format!("packets decrypt_failures[{i}]: clock out of range"),
            false,
        );
        return;
    };
    let r = packet::check_data_header(&h, first.rxseq, !spec.not_established, now);
    // Codes the pre-authentication checks decide (FACTS §7).
    let pre_auth = [0x14, 0x03, 0x13, 0x16];
    if pre_auth.contains(&want) {
        t.check(
            || format!("packets decrypt_failures[{i}] {case:?}: got {r:?}, want code {want}"),
            code_of(&r) == want && rxseq_after == first.rxseq,
        );
    } else if r.is_err() || spec.tag_corrupted != (want == 2) {
        // The outcome needs RCS, but the header checks must at least let it through.
        t.check(
            || format!("packets decrypt_failures[{i}] {case:?}: got {r:?} before authentication"),
            false,
        );
    } else {
        // TODO(rcs): once `crate::rcs` exists, open the first `encrypted_packets` packet
        // (with this header, and the tag bit flipped for `tag_corrupted`) on a fresh
        // RCS-512 rx state and compare `dktp_error` and `rxseq_after`. Until then these
        // rows are only checked to pass the header checks and counted as skipped.
        t.skip();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dktp_packets_json_passes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/dktp_packets.json");
        let text = std::fs::read_to_string(path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(recognizes(&v));
        let mut t = Tally::default();
        run(&v, &mut t);
        assert!(t.failures.is_empty(), "{:#?}", t.failures);
        assert_eq!(t.failed, 0);
        eprintln!("passed {} skipped {}", t.passed, t.skipped);
        assert!(t.passed >= 30, "only {} passed", t.passed);
    }

    #[test]
    fn other_formats_are_not_recognized() {
        let v: Value = serde_json::json!({"kex": {"packets": [{"header": {"flag": 1}}]}});
        assert!(!recognizes(&v));
    }

    #[test]
    fn a_wrong_expectation_fails() {
        let v: Value = serde_json::json!({"time_valid": [{"local_minus_packet": 61, "valid": true}],
            "header_validate": [{"case": "wrong sequence", "dktp_error": 22, "rxseq_after": 0}]});
        let mut t = Tally::default();
        run(&v, &mut t);
        assert_eq!(t.failed, 2);
    }
}
