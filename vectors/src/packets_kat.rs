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
//! Encrypted packets and the authentication outcome of `decrypt_failures` are replayed
//! with [`dktp::rcs`] on the reference's send and receive paths (FACTS §7), rebuilt here
//! from [`dktp::packet`] until the session layer provides them.
//!
//! `peer_keys` belongs to the peer-key format and is left to that module.

use crate::{Tally, hex_field};
use dktp::ErrorCode;
use dktp::error::CryptoFailure;
use dktp::packet::{
    self, ERROR_SEQUENCE, ErrorPacket, Flag, FlagCheck, Frame, HEADER_LEN, HandshakeExpect, Header,
    MAX_MESSAGE, TAG_LEN,
};
use dktp::rcs::{NONCE_LEN, Rcs512Channel};
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

/// The first encrypted packet, the receiver's `rxseq` before it and the channel key.
struct FirstPacket {
    packet: Vec<u8>,
    rxseq: u64,
    key: Vec<u8>,
    nonce: [u8; NONCE_LEN],
}

/// The reference's data-phase send (FACTS §7): txseq += 1, header
/// `(0x04, len + 64, txseq, now)`, RCS-512 seal with the header as AD.
fn seal_data(tx: &mut Rcs512Channel, txseq: &mut u64, pt: &[u8], now: u64) -> Option<Vec<u8>> {
    *txseq = txseq.checked_add(1)?;
    let msglen = u32::try_from(pt.len().checked_add(TAG_LEN)?).ok()?;
    let header = Header::new(Flag::EncryptedMessage, msglen, *txseq, now).encode();
    let mut out = header.to_vec();
    tx.seal(&header, pt, &mut out).ok()?;
    Some(out)
}

/// The reference's data-phase receive (FACTS §7): the header checks, then RCS-512 open
/// with the header as AD; `rxseq` advances only on success.
fn open_data(
    rx: &mut Rcs512Channel,
    rxseq: &mut u64,
    packet: &[u8],
    established: bool,
    now: u64,
) -> Result<Vec<u8>, dktp::Error> {
    let header = Header::decode(packet)?;
    packet::check_data_header(&header, *rxseq, established, now)?;
    let (ad, sealed) = packet.split_at(HEADER_LEN);
    let mut out = Vec::new();
    rx.open(ad, sealed, &mut out)
        .map_err(|_| dktp::Error::from(CryptoFailure::Authentication))?;
    *rxseq = header.sequence;
    Ok(out)
}

fn encrypted_packets(e: Option<&Value>, t: &mut Tally) -> Option<FirstPacket> {
    let e = e?;
    let key = hex_field(e, "key");
    let nonce: Option<[u8; NONCE_LEN]> = hex_field(e, "nonce").and_then(|n| n.try_into().ok());
    let channel = |k: &[u8], n| Rcs512Channel::new(k, n, &[]).ok();
    let (Some(key), Some(nonce)) = (key, nonce) else {
        t.check(|| "packets encrypted_packets: unreadable key".into(), false);
        return None;
    };
    let (Some(mut tx), Some(mut rx)) = (channel(&key, &nonce), channel(&key, &nonce)) else {
        t.check(|| "packets encrypted_packets: RCS-512 keying".into(), false);
        return None;
    };
    let mut first: Option<FirstPacket> = None;
    let (mut txseq, mut rxseq) = (None, None);
    for (i, row) in rows(e, "packets").iter().enumerate() {
        let (Some(pt), Some(pk), Some(time), Some(txseq_after)) = (
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
        // Both counters stood at the same value after the key exchange.
        let seq = txseq.get_or_insert(txseq_after.saturating_sub(1));
        let rseq = rxseq.get_or_insert(txseq_after.saturating_sub(1));
        if first.is_none() {
            first = Some(FirstPacket {
                packet: pk.clone(),
                rxseq: *rseq,
                key: key.clone(),
                nonce,
            });
        }

        // What needs no cipher: header, framing, length.
        let want = u32::try_from(pt.len() + TAG_LEN)
            .ok()
            .map(|m| Header::new(Flag::EncryptedMessage, m, txseq_after, time));
        let framed = packet::frame(&pk, MAX_MESSAGE);
        let ok = want.is_some_and(|w| {
            framed
                == Ok(Frame::Complete {
                    header: w,
                    len: pk.len(),
                })
                && packet::split_packet(&pk)
                    .is_ok_and(|(h, m)| h == w && m.len() == w.msglen as usize)
        });
        t.check(
            || format!("packets encrypted_packets[{i}]: header and framing"),
            ok,
        );

        // Sealed on one long-lived tx state, opened on one rx state.
        let sealed = seal_data(&mut tx, seq, &pt, time);
        let encrypt_ok = u64_field(row, "encrypt_error") == Some(0);
        t.check(
            || format!("packets encrypted_packets[{i}]: seal"),
            encrypt_ok && sealed.as_deref() == Some(pk.as_slice()) && *seq == txseq_after,
        );
        let opened = open_data(&mut rx, rseq, &pk, true, time);
        let want_rxseq = u64_field(row, "rx_rxseq_after");
        let matches = row.get("decrypt_matches").and_then(Value::as_bool);
        t.check(
            || {
                format!(
                    "packets encrypted_packets[{i}]: open gave {:?}",
                    opened.as_ref().err()
                )
            },
            u64_field(row, "decrypt_error") == Some(code_of(&opened))
                && matches == Some(opened.as_deref().ok() == Some(pt.as_slice()))
                && want_rxseq == Some(*rseq),
        );
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
    let (Ok(mut h), Some(body)) = (
        Header::decode(&first.packet),
        first.packet.get(HEADER_LEN..),
    ) else {
        t.check(
            || format!("packets decrypt_failures[{i}]: no first packet"),
            false,
        );
        return;
    };
    h.sequence = seq;
    if let Some(m) = spec.msglen {
        h.msglen = m;
    }
    let mut packet = [h.encode().as_slice(), body].concat();
    if spec.tag_corrupted
        && let Some(last) = packet.last_mut()
    {
        *last ^= 0x01;
    }
    let (Some(now), Ok(mut rx)) = (
        h.utctime.checked_add_signed(spec.clock_shift),
        Rcs512Channel::new(&first.key, &first.nonce, &[]),
    ) else {
        t.check(|| format!("packets decrypt_failures[{i}]: setup"), false);
        return;
    };
    let mut rxseq = first.rxseq;
    let r = open_data(&mut rx, &mut rxseq, &packet, !spec.not_established, now);
    t.check(
        || format!("packets decrypt_failures[{i}] {case:?}: got {r:?}, want code {want}"),
        code_of(&r) == want && rxseq == rxseq_after,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data;

    #[test]
    fn dktp_packets_json_passes() {
        let t = test_data::tally(&test_data::load("dktp_packets.json"), recognizes, run);
        assert!(t.failures.is_empty(), "{:#?}", t.failures);
        assert_eq!(t.failed, 0);
        eprintln!("passed {} skipped {}", t.passed, t.skipped);
        assert_eq!(t.skipped, 0);
        assert!(t.passed >= 60, "only {} passed", t.passed);
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
