//! Packet codec properties: decoding never panics, headers round-trip, the time window is
//! symmetric and overflow-free, framing never promises more than the caller allows.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use dktp::packet::{
    self, FlagCheck, Frame, HEADER_LEN, HandshakeExpect, Header, TIME_WINDOW, time_is_valid,
};
use dktp::{Error, ErrorCode};
use proptest::prelude::*;

fn any_header() -> impl Strategy<Value = Header> {
    (any::<u8>(), any::<u32>(), any::<u64>(), any::<u64>()).prop_map(
        |(flag, msglen, sequence, utctime)| Header {
            flag,
            msglen,
            sequence,
            utctime,
        },
    )
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let r = Header::decode(&bytes);
        prop_assert_eq!(r.is_ok(), bytes.len() >= HEADER_LEN);
        if let Ok(h) = r {
            prop_assert_eq!(&h.encode()[..], &bytes[..HEADER_LEN]);
            let _ = h.kind();
        }
    }

    #[test]
    fn encode_decode_round_trip(h in any_header(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut b = h.encode().to_vec();
        prop_assert_eq!(Header::decode(&b), Ok(h));
        b.extend_from_slice(&tail);
        prop_assert_eq!(Header::decode(&b), Ok(h));
    }

    #[test]
    fn time_check_symmetric_and_exact(a in any::<u64>(), b in any::<u64>()) {
        prop_assert_eq!(time_is_valid(a, b), time_is_valid(b, a));
        let d = u128::from(a.max(b)) - u128::from(a.min(b));
        prop_assert_eq!(time_is_valid(a, b), d <= u128::from(TIME_WINDOW));
    }

    #[test]
    fn time_check_near_edges(base in any::<u64>(), d in 0u64..200) {
        if let Some(other) = base.checked_add(d) {
            prop_assert_eq!(time_is_valid(base, other), d <= TIME_WINDOW);
            prop_assert_eq!(time_is_valid(other, base), d <= TIME_WINDOW);
        }
    }

    #[test]
    fn framing_respects_the_cap(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        max in prop_oneof![0u32..256, Just(u32::MAX)],
    ) {
        match packet::frame(&bytes, max) {
            Ok(Frame::Complete { header, len }) => {
                prop_assert!(header.msglen <= max);
                prop_assert!(len <= bytes.len());
                prop_assert_eq!(len, HEADER_LEN + header.msglen as usize);
                prop_assert!(packet::split_packet(&bytes[..len]).is_ok());
            }
            Ok(Frame::Incomplete { missing }) => {
                prop_assert!(missing > 0);
                if bytes.len() >= HEADER_LEN {
                    let h = Header::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert!(h.msglen <= max);
                    prop_assert_eq!(bytes.len() + missing, HEADER_LEN + h.msglen as usize);
                } else {
                    prop_assert_eq!(bytes.len() + missing, HEADER_LEN);
                }
            }
            Err(e) => {
                prop_assert!(bytes.len() >= HEADER_LEN);
                prop_assert_eq!(e.wire_code(), ErrorCode::Receive);
            }
        }
    }

    #[test]
    fn checks_never_panic(
        h in any_header(),
        message in proptest::collection::vec(any::<u8>(), 0..4),
        expect_len in any::<u32>(),
        rxseq in prop_oneof![any::<u64>(), Just(u64::MAX), Just(u64::MAX - 1)],
        established in any::<bool>(),
        state in any::<bool>(),
        now in any::<u64>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let expect = HandshakeExpect {
            flag: packet::Flag::ExchangeRequest,
            msglen: expect_len,
            rxseq,
            state_matches: state,
            flag_check: FlagCheck::Strict,
        };
        if let Ok(next) = packet::check_handshake_header(&h, &message, &expect, now) {
            prop_assert_eq!(next, rxseq + 1);
            prop_assert_eq!(h.sequence, rxseq);
        }
        if packet::check_data_header(&h, rxseq, established, now).is_ok() {
            prop_assert_eq!(Some(h.sequence), rxseq.checked_add(1));
            prop_assert!(established && h.is_fresh(now) && h.msglen > 64);
        }
        let _ = packet::parse_error_packet(&bytes, established);
        let _ = packet::split_packet(&bytes);
    }

    #[test]
    fn plain_error_packets_parse_back(code in 0u8..=0x1c, time in any::<u64>()) {
        let c = ErrorCode::from_u8(code).ok_or_else(|| TestCaseError::fail("code"))?;
        let p = packet::encode_plain_error(c, time);
        match packet::parse_error_packet(&p, false) {
            Ok(packet::ErrorPacket::Plain { header, code: got }) => {
                prop_assert_eq!(got, code);
                prop_assert_eq!(header.utctime, time);
            }
            other => prop_assert!(false, "{:?}", other),
        }
        let reported = Error::PeerReported { code };
        prop_assert_eq!(reported.wire_code(), c);
    }
}
