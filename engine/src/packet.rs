//! DKTP packets: the 21-byte header, stream framing, error packets and the reference's
//! header checks (FACTS §4, §6, §7), and the packets this side sends: their header and
//! assembly, and the one seal every encrypted packet goes through (`seal_packet`: header,
//! body and tag, sealed in place).
//!
//! The reading side is pure: the local clock is an argument (`now`, Unix seconds UTC) and
//! nothing allocates. Every function accepts any byte string without panicking.
//!
//! ```text
//! header = flag u8 || msglen u32 LE || sequence u64 LE || utctime u64 LE   (21 bytes)
//! packet = header || message[msglen]
//! ```

use crate::error::{Error, ErrorCode, Malformed, Misuse, PeerMisbehaved};
pub use crate::flag::Flag;
use crate::rcs::Rcs512Channel;

/// Length of the serialized header.
pub const HEADER_LEN: usize = 21;

/// Largest message (the part after the header) of a data-phase packet (FACTS §4).
///
/// Handshake packets are not bound by it: in McEliece configurations the connect response
/// and exchange request are 263 KB to 1.39 MB (FACTS §11.2); frame those with the exact
/// size the configuration prescribes.
pub const MAX_MESSAGE: u32 = 0x10000;

/// A packet is valid while `|local − utctime| <= TIME_WINDOW` seconds (FACTS §4).
pub const TIME_WINDOW: u64 = 60;

/// RCS-512 tag length; a data packet's message must be longer than this (FACTS §7).
pub const TAG_LEN: usize = 64;

/// The sequence field of a handshake error packet: bytes `00 00 00 00 00 00 00 ff`.
pub const ERROR_SEQUENCE: u64 = 0xff00_0000_0000_0000;

/// Length of a plaintext (handshake) error packet: header and one code byte.
pub const PLAIN_ERROR_LEN: usize = HEADER_LEN + 1;

/// Message length of an encrypted close: one code byte and the tag.
pub const SEALED_ERROR_MSGLEN: u32 = 1 + TAG_LEN as u32;

/// Length of an encrypted close packet (86 bytes).
pub const SEALED_ERROR_LEN: usize = HEADER_LEN + 1 + TAG_LEN;

impl TryFrom<u8> for Flag {
    type Error = Error;

    fn try_from(byte: u8) -> Result<Flag, Error> {
        Flag::from_u8(byte).ok_or(Error::Malformed(Malformed::UnknownFlag(byte)))
    }
}

/// A packet header.
///
/// `flag` is kept as the raw byte so that any header round-trips; [`Header::kind`] gives
/// the typed [`Flag`] or an error for bytes DKTP does not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The packet type byte.
    pub flag: u8,
    /// Length of the message that follows the header.
    pub msglen: u32,
    /// Packet sequence number.
    pub sequence: u64,
    /// Sender's clock, Unix seconds UTC.
    pub utctime: u64,
}

impl Header {
    /// A header with a typed flag.
    pub const fn new(flag: Flag, msglen: u32, sequence: u64, utctime: u64) -> Header {
        Header {
            flag: flag.as_u8(),
            msglen,
            sequence,
            utctime,
        }
    }

    /// The 21 wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.flag;
        out[1..5].copy_from_slice(&self.msglen.to_le_bytes());
        out[5..13].copy_from_slice(&self.sequence.to_le_bytes());
        out[13..21].copy_from_slice(&self.utctime.to_le_bytes());
        out
    }

    /// Reads a header from the first 21 bytes of `bytes` (a header alone or a whole
    /// packet). Any flag byte is accepted; fewer than 21 bytes is
    /// [`Malformed::Truncated`].
    pub fn decode(bytes: &[u8]) -> Result<Header, Error> {
        let truncated = || {
            Error::Malformed(Malformed::Truncated {
                needed: HEADER_LEN,
                got: bytes.len(),
            })
        };
        let (&flag, rest) = bytes.split_first().ok_or_else(truncated)?;
        let (msglen, rest) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
        let (sequence, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        let (utctime, _) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
        Ok(Header {
            flag,
            msglen: u32::from_le_bytes(*msglen),
            sequence: u64::from_le_bytes(*sequence),
            utctime: u64::from_le_bytes(*utctime),
        })
    }

    /// The typed flag, or [`Malformed::UnknownFlag`].
    pub fn kind(&self) -> Result<Flag, Error> {
        Flag::try_from(self.flag)
    }

    /// Whether the header's time is within [`TIME_WINDOW`] of `now`.
    pub const fn is_fresh(&self, now: u64) -> bool {
        time_is_valid(now, self.utctime)
    }

    /// Packet length (header and message); `None` if it does not fit in `usize`.
    pub fn packet_len(&self) -> Option<usize> {
        usize::try_from(self.msglen).ok()?.checked_add(HEADER_LEN)
    }
}

// ---------------------------------------------------------------------------------------
// Packets this side sends

/// A header's msglen for a message of `n` bytes (handshake messages are at most 1.4 MB,
/// data messages at most [`MAX_MESSAGE`]).
pub(crate) fn msglen(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The 21 header bytes of a packet this side sends, carrying a `len`-byte message.
pub(crate) fn header(flag: Flag, seq: u64, now: u64, len: usize) -> [u8; HEADER_LEN] {
    Header::new(flag, msglen(len), seq, now).encode()
}

/// `header ‖ parts...`, zero-filled to the `len`-byte message the header declares: the
/// whole packet of a plaintext message, or of one to seal, whose tag then fills the rest
/// ([`seal_packet`]).
pub(crate) fn assemble(header: &[u8; HEADER_LEN], len: usize, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.extend_from_slice(header);
    for p in parts {
        out.extend_from_slice(p);
    }
    out.resize(HEADER_LEN + len, 0);
    out
}

/// Seals a packet in place on `tx` (FACTS §7): `packet` is `header ‖ plaintext ‖ tag room`
/// ([`TAG_LEN`] bytes); the plaintext is encrypted with the header as AD and the tag
/// written into the room. Every encrypted packet is made here: the establish request and
/// response, ratchet requests and responses, the sealed close and data packets.
///
/// A failed seal (a dead transmit channel, a packet without room for its header and tag)
/// is [`Misuse::NotEstablished`] (0x03, channel down), wherever it happens; the caller's
/// session ends.
#[inline]
pub(crate) fn seal_packet(tx: &mut Rcs512Channel, packet: &mut [u8]) -> Result<(), Error> {
    let sealed = match packet.len().checked_sub(HEADER_LEN + TAG_LEN) {
        Some(body_len) => {
            // In bounds: the packet holds the header, `body_len` bytes and the tag.
            let (head, rest) = packet.split_at_mut(HEADER_LEN);
            let (body, tag) = rest.split_at_mut(body_len);
            tx.seal_in_place(head, body, tag).is_ok()
        }
        None => false,
    };
    if sealed {
        Ok(())
    } else {
        Err(Misuse::NotEstablished.into())
    }
}

/// Whether `|local − packet| <= 60`, for any two `u64` times (FACTS §4).
pub const fn time_is_valid(local: u64, packet: u64) -> bool {
    local.abs_diff(packet) <= TIME_WINDOW
}

fn check_time(header: &Header, now: u64) -> Result<(), Error> {
    if header.is_fresh(now) {
        Ok(())
    } else {
        Err(PeerMisbehaved::StaleTime {
            packet_time: header.utctime,
            local_time: now,
        }
        .into())
    }
}

/// What a stream buffer holds, as far as packet boundaries go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole packet yet: at least `missing` more bytes are needed. While the header
    /// is incomplete this only counts up to the end of the header.
    Incomplete {
        /// Bytes still to read.
        missing: usize,
    },
    /// The buffer starts with a whole packet of `len` bytes (header included).
    Complete {
        /// The packet's header.
        header: Header,
        /// Header plus message length.
        len: usize,
    },
}

/// Finds the first packet in a stream buffer, refusing any message longer than
/// `max_msglen` before a single byte of it is read, so an attacker-chosen length never
/// makes the caller allocate.
///
/// Pass [`MAX_MESSAGE`] in the data phase and the exact expected size during the handshake
/// (which may exceed [`MAX_MESSAGE`] in McEliece configurations).
pub fn frame(buf: &[u8], max_msglen: u32) -> Result<Frame, Error> {
    if buf.len() < HEADER_LEN {
        return Ok(Frame::Incomplete {
            missing: HEADER_LEN - buf.len(),
        });
    }
    let header = Header::decode(buf)?;
    let too_long = Error::Malformed(Malformed::TooLong {
        msglen: header.msglen,
        max: max_msglen,
    });
    if header.msglen > max_msglen {
        return Err(too_long);
    }
    let len = header.packet_len().ok_or(too_long)?;
    Ok(match len.checked_sub(buf.len()) {
        Some(missing) if missing > 0 => Frame::Incomplete { missing },
        _ => Frame::Complete { header, len },
    })
}

/// Splits one whole packet into its header and message; the length must agree with the
/// header exactly.
pub fn split_packet(packet: &[u8]) -> Result<(Header, &[u8]), Error> {
    let header = Header::decode(packet)?;
    let message = packet.get(HEADER_LEN..).unwrap_or_default();
    if usize::try_from(header.msglen).ok() != Some(message.len()) {
        return Err(Malformed::LengthMismatch {
            declared: header.msglen,
            actual: message.len(),
        }
        .into());
    }
    Ok((header, message))
}

/// The plaintext error packet sent before keys exist (FACTS §4):
/// `12 | 01000000 | 00000000000000ff | utctime | code`.
pub fn encode_plain_error(code: ErrorCode, utctime: u64) -> [u8; PLAIN_ERROR_LEN] {
    let header = Header::new(Flag::ErrorCondition, 1, ERROR_SEQUENCE, utctime);
    let mut out = [0u8; PLAIN_ERROR_LEN];
    out[..HEADER_LEN].copy_from_slice(&header.encode());
    out[HEADER_LEN] = code.as_u8();
    out
}

/// A received error packet (flag 0x12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPacket<'a> {
    /// A plaintext code: the 22-byte handshake form, or the reference's close before
    /// establishment, whose header still says 65.
    Plain {
        /// The packet's header.
        header: Header,
        /// The code byte as received (may be above 0x1C).
        code: u8,
    },
    /// The encrypted close after establishment. The session opens `sealed` (the one-byte
    /// code and the 64-byte tag) on its rx channel with the 21 header bytes as AD.
    Sealed {
        /// The packet's header.
        header: Header,
        /// Ciphertext and tag, 65 bytes.
        sealed: &'a [u8],
    },
}

impl ErrorPacket<'_> {
    /// The packet's header.
    pub fn header(&self) -> &Header {
        match self {
            Self::Plain { header, .. } | Self::Sealed { header, .. } => header,
        }
    }
}

/// Checks the shape of a received error packet and extracts its code or ciphertext.
///
/// `packet` is everything received for it, header included. The reference's forms:
/// - before establishment: msglen 1 and 22 bytes, or a header that says 65 followed by
///   the plaintext code (22 to 86 bytes received; the reference shuts the socket right
///   after, so a reader that stops at EOF is fine);
/// - after establishment: msglen 65 and exactly 86 bytes, sealed.
///
/// A plaintext error after establishment is refused as
/// [`PeerMisbehaved::UnauthenticatedError`]: the reference never sends one, and anyone on
/// the path could.
pub fn parse_error_packet(packet: &[u8], established: bool) -> Result<ErrorPacket<'_>, Error> {
    let header = Header::decode(packet)?;
    if header.flag != Flag::ErrorCondition.as_u8() {
        return Err(PeerMisbehaved::UnexpectedFlag {
            expected: Flag::ErrorCondition,
            received: header.flag,
        }
        .into());
    }
    let shape = Error::Malformed(Malformed::ErrorPacketShape {
        msglen: header.msglen,
        received: packet.len(),
    });
    let message = packet.get(HEADER_LEN..).unwrap_or_default();
    match (established, header.msglen) {
        (true, SEALED_ERROR_MSGLEN) if packet.len() == SEALED_ERROR_LEN => {
            Ok(ErrorPacket::Sealed {
                header,
                sealed: message,
            })
        }
        (true, 1) if packet.len() == PLAIN_ERROR_LEN => {
            let code = message.first().copied().unwrap_or_default();
            Err(PeerMisbehaved::UnauthenticatedError { code }.into())
        }
        (false, 1) if packet.len() == PLAIN_ERROR_LEN => Ok(ErrorPacket::Plain {
            header,
            code: message.first().copied().ok_or(shape)?,
        }),
        (false, SEALED_ERROR_MSGLEN) if packet.len() <= SEALED_ERROR_LEN => {
            Ok(ErrorPacket::Plain {
                header,
                code: message.first().copied().ok_or(shape)?,
            })
        }
        _ => Err(shape),
    }
}

/// Whether the handshake check compares the packet's flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlagCheck {
    /// Compare it (reported as [`ErrorCode::InvalidRequest`]). Every packet the reference
    /// sends carries the right flag, so this stays compatible.
    #[default]
    Strict,
    /// Do as the reference: never compare it (FACTS §9 item 5).
    Reference,
}

/// What the receiver awaits next during the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeExpect {
    /// The packet type awaited.
    pub flag: Flag,
    /// The exact message length for this configuration.
    pub msglen: u32,
    /// The receiver's `rxseq`; the packet must carry exactly this number.
    pub rxseq: u64,
    /// Whether the receiver is in the state that awaits this packet (the reference's
    /// `exflag` comparison). A per-state machine passes `true`.
    pub state_matches: bool,
    /// Whether the flag is compared.
    pub flag_check: FlagCheck,
}

/// The reference's handshake header check (FACTS §6), in its order:
///
/// 0. an error packet (flag 0x12) is reported as [`Error::PeerReported`] with the first
///    message byte. (The vectors show this wins over the length and sequence checks,
///    which an error packet always fails; we also let it win over the time check.)
/// 1. time within 60 s, else 0x13;
/// 2. msglen exactly as expected, else 0x16;
/// 3. sequence == rxseq, else 0x14;
/// 4. state, else 0x0D;
/// 5. with [`FlagCheck::Strict`], the flag, else 0x0D.
///
/// On success returns the receiver's next `rxseq` (the reference increments it here).
pub fn check_handshake_header(
    header: &Header,
    message: &[u8],
    expect: &HandshakeExpect,
    now: u64,
) -> Result<u64, Error> {
    if header.flag == Flag::ErrorCondition.as_u8() {
        return match message.first() {
            Some(&code) => Err(Error::PeerReported { code }),
            None => Err(Malformed::ErrorPacketShape {
                msglen: header.msglen,
                received: HEADER_LEN,
            }
            .into()),
        };
    }
    check_time(header, now)?;
    if header.msglen != expect.msglen {
        return Err(PeerMisbehaved::UnexpectedLength {
            expected: expect.msglen,
            received: header.msglen,
        }
        .into());
    }
    if header.sequence != expect.rxseq {
        return Err(PeerMisbehaved::Unsequenced {
            expected: expect.rxseq,
            received: header.sequence,
        }
        .into());
    }
    if !expect.state_matches {
        return Err(PeerMisbehaved::UnexpectedPacket {
            received: header.flag,
        }
        .into());
    }
    if expect.flag_check == FlagCheck::Strict && header.flag != expect.flag.as_u8() {
        return Err(PeerMisbehaved::UnexpectedFlag {
            expected: expect.flag,
            received: header.flag,
        }
        .into());
    }
    expect
        .rxseq
        .checked_add(1)
        .ok_or(Error::Misuse(Misuse::SequenceExhausted))
}

/// The data-phase checks that precede authentication (FACTS §7), in the reference's order:
/// sequence == rxseq + 1 (0x14), established (0x03), time (0x13), msglen > 64 (0x16).
///
/// The caller then authenticates the packet and advances `rxseq` only if that succeeds.
pub fn check_data_header(
    header: &Header,
    rxseq: u64,
    established: bool,
    now: u64,
) -> Result<(), Error> {
    let expected = rxseq.checked_add(1);
    if expected != Some(header.sequence) {
        return Err(match expected {
            Some(expected) => PeerMisbehaved::Unsequenced {
                expected,
                received: header.sequence,
            }
            .into(),
            None => Misuse::SequenceExhausted.into(),
        });
    }
    if !established {
        return Err(Misuse::NotEstablished.into());
    }
    check_time(header, now)?;
    if u64::from(header.msglen) <= TAG_LEN as u64 {
        return Err(PeerMisbehaved::TooShort {
            msglen: header.msglen,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_767_225_600;

    #[test]
    fn header_round_trip_and_layout() {
        let h = Header::new(Flag::EncryptedMessage, 108, 4, NOW + 1);
        let b = h.encode();
        assert_eq!(b[0], 0x04);
        assert_eq!(&b[1..5], &108u32.to_le_bytes());
        assert_eq!(&b[5..13], &4u64.to_le_bytes());
        assert_eq!(&b[13..21], &(NOW + 1).to_le_bytes());
        assert_eq!(Header::decode(&b), Ok(h));
        assert_eq!(h.kind(), Ok(Flag::EncryptedMessage));
    }

    #[test]
    fn decode_short_input_is_an_error() {
        for n in 0..HEADER_LEN {
            let e = Header::decode(&[0u8; HEADER_LEN][..n]);
            assert_eq!(
                e,
                Err(Error::Malformed(Malformed::Truncated {
                    needed: HEADER_LEN,
                    got: n
                }))
            );
        }
    }

    #[test]
    fn unknown_flags_are_typed_errors_but_decode() {
        let h = Header {
            flag: 0x10,
            msglen: 0,
            sequence: 0,
            utctime: 0,
        };
        assert_eq!(Header::decode(&h.encode()), Ok(h));
        assert_eq!(
            h.kind(),
            Err(Error::Malformed(Malformed::UnknownFlag(0x10)))
        );
        let known = (0u8..=255).filter(|&b| Flag::from_u8(b).is_some()).count();
        assert_eq!(known, 11);
    }

    #[test]
    fn time_window_is_inclusive_and_saturating() {
        assert!(time_is_valid(NOW, NOW + 60));
        assert!(time_is_valid(NOW + 60, NOW));
        assert!(!time_is_valid(NOW, NOW + 61));
        assert!(!time_is_valid(NOW + 61, NOW));
        assert!(time_is_valid(u64::MAX, u64::MAX - 60));
        assert!(!time_is_valid(0, u64::MAX));
        assert!(!time_is_valid(u64::MAX, 0));
    }

    #[test]
    fn framing_waits_refuses_and_completes() {
        let h = Header::new(Flag::EncryptedMessage, 100, 4, NOW).encode();
        assert_eq!(
            frame(&h[..5], MAX_MESSAGE),
            Ok(Frame::Incomplete { missing: 16 })
        );
        assert_eq!(
            frame(&h, MAX_MESSAGE),
            Ok(Frame::Incomplete { missing: 100 })
        );
        let mut p = h.to_vec();
        p.resize(HEADER_LEN + 100 + 7, 0xaa);
        let header = Header::decode(&h).ok();
        assert_eq!(
            frame(&p, MAX_MESSAGE).ok(),
            header.map(|header| Frame::Complete { header, len: 121 })
        );
        assert_eq!(
            frame(&p, 99),
            Err(Error::Malformed(Malformed::TooLong {
                msglen: 100,
                max: 99
            }))
        );
        let huge = Header::new(Flag::ConnectResponse, u32::MAX, 0, NOW).encode();
        assert!(frame(&huge, MAX_MESSAGE).is_err());
        assert_eq!(
            frame(&huge, u32::MAX),
            Ok(Frame::Incomplete {
                missing: u32::MAX as usize
            })
        );
    }

    #[test]
    fn split_packet_needs_exact_length() {
        let mut p = Header::new(Flag::EncryptedMessage, 3, 4, NOW)
            .encode()
            .to_vec();
        p.extend_from_slice(&[1, 2]);
        assert!(split_packet(&p).is_err());
        p.push(3);
        assert_eq!(split_packet(&p).map(|(_, m)| m.to_vec()), Ok(vec![1, 2, 3]));
        p.push(4);
        assert!(split_packet(&p).is_err());
    }

    #[test]
    fn plain_error_packet_layout_and_parse() {
        let p = encode_plain_error(ErrorCode::Verify, NOW);
        assert_eq!(p.len(), 22);
        assert_eq!(&p[..13], &[0x12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(p[21], 0x19);
        match parse_error_packet(&p, false) {
            Ok(ErrorPacket::Plain { header, code }) => {
                assert_eq!(code, 0x19);
                assert_eq!(header.sequence, ERROR_SEQUENCE);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_error_packet(&p, true),
            Err(Error::PeerMisbehaved(
                PeerMisbehaved::UnauthenticatedError { code: 0x19 }
            ))
        ));
    }

    #[test]
    fn close_packet_forms() {
        let mut p = Header::new(Flag::ErrorCondition, 65, 8, NOW)
            .encode()
            .to_vec();
        p.push(0x1b);
        // Before establishment the reference's plaintext close says 65.
        assert!(matches!(
            parse_error_packet(&p, false),
            Ok(ErrorPacket::Plain { code: 0x1b, .. })
        ));
        p.resize(SEALED_ERROR_LEN, 0);
        assert!(matches!(
            parse_error_packet(&p, false),
            Ok(ErrorPacket::Plain { code: 0x1b, .. })
        ));
        match parse_error_packet(&p, true) {
            Ok(ErrorPacket::Sealed { sealed, header }) => {
                assert_eq!(sealed.len(), 65);
                assert_eq!(header.sequence, 8);
            }
            other => panic!("unexpected {other:?}"),
        }
        p.push(0);
        assert!(parse_error_packet(&p, true).is_err());
        assert!(parse_error_packet(&p, false).is_err());
        // Not an error packet at all.
        let d = Header::new(Flag::EncryptedMessage, 1, 4, NOW).encode();
        assert!(parse_error_packet(&d, false).is_err());
        // Header only.
        let e = Header::new(Flag::ErrorCondition, 1, 4, NOW).encode();
        assert!(parse_error_packet(&e, false).is_err());
    }

    #[test]
    fn seal_packet_seals_the_body_in_place_with_the_header_as_ad() {
        let channel = || Rcs512Channel::new(&[7; 64], &[9; 32], &[]).unwrap();
        let (mut tx, mut rx) = (channel(), channel());
        let len = 3 + TAG_LEN;
        let h = header(Flag::EncryptedMessage, 4, NOW, len);
        let mut p = assemble(&h, len, &[b"abc"]);
        assert_eq!(p.len(), HEADER_LEN + len);
        seal_packet(&mut tx, &mut p).unwrap();
        assert_eq!(p[..HEADER_LEN], h);
        assert_ne!(&p[HEADER_LEN..HEADER_LEN + 3], b"abc");
        let (head, rest) = p.split_at_mut(HEADER_LEN);
        let (body, tag) = rest.split_at_mut(3);
        rx.open_in_place(head, body, tag).unwrap();
        assert_eq!(body, b"abc");
        // No room for the header and the tag: the one failed-seal error (0x03).
        let mut short = [0u8; HEADER_LEN + TAG_LEN - 1];
        assert_eq!(
            seal_packet(&mut tx, &mut short),
            Err(Error::Misuse(Misuse::NotEstablished))
        );
    }

    fn expect() -> HandshakeExpect {
        HandshakeExpect {
            flag: Flag::ConnectRequest,
            msglen: 4723,
            rxseq: 0,
            state_matches: true,
            flag_check: FlagCheck::Strict,
        }
    }

    fn code(r: Result<u64, Error>) -> u8 {
        match r {
            Ok(_) => 0,
            Err(e) => e.wire_code().as_u8(),
        }
    }

    #[test]
    fn handshake_check_order() {
        let good = Header::new(Flag::ConnectRequest, 4723, 0, NOW);
        assert_eq!(check_handshake_header(&good, &[], &expect(), NOW), Ok(1));
        // Everything wrong at once: time wins.
        let bad = Header {
            flag: 0x02,
            msglen: 1,
            sequence: 9,
            utctime: NOW - 61,
        };
        let mut e = expect();
        e.state_matches = false;
        assert_eq!(code(check_handshake_header(&bad, &[], &e, NOW)), 0x13);
        let bad = Header {
            utctime: NOW,
            ..bad
        };
        assert_eq!(code(check_handshake_header(&bad, &[], &e, NOW)), 0x16);
        let bad = Header {
            msglen: 4723,
            ..bad
        };
        assert_eq!(code(check_handshake_header(&bad, &[], &e, NOW)), 0x14);
        let bad = Header { sequence: 0, ..bad };
        assert_eq!(code(check_handshake_header(&bad, &[], &e, NOW)), 0x0d);
        e.state_matches = true;
        assert_eq!(code(check_handshake_header(&bad, &[], &e, NOW)), 0x0d);
        e.flag_check = FlagCheck::Reference;
        assert_eq!(check_handshake_header(&bad, &[], &e, NOW), Ok(1));
    }

    #[test]
    fn handshake_check_reports_error_packets() {
        let p = encode_plain_error(ErrorCode::KeyUnrecognized, NOW);
        let (h, m) = split_packet(&p).unwrap_or((Header::new(Flag::ConnectRequest, 0, 0, 0), &[]));
        assert_eq!(
            check_handshake_header(&h, m, &expect(), NOW),
            Err(Error::PeerReported { code: 0x0f })
        );
        assert!(check_handshake_header(&h, &[], &expect(), NOW).is_err());
    }

    #[test]
    fn data_check_order() {
        let c = |h: &Header, rxseq, est, now| match check_data_header(h, rxseq, est, now) {
            Ok(()) => 0u8,
            Err(e) => e.wire_code().as_u8(),
        };
        let good = Header::new(Flag::EncryptedMessage, 65, 4, NOW);
        assert_eq!(c(&good, 3, true, NOW), 0);
        let all_bad = Header {
            sequence: 5,
            msglen: 64,
            utctime: NOW + 61,
            ..good
        };
        assert_eq!(c(&all_bad, 3, false, NOW), 0x14);
        let h = Header {
            sequence: 4,
            ..all_bad
        };
        assert_eq!(c(&h, 3, false, NOW), 0x03);
        assert_eq!(c(&h, 3, true, NOW), 0x13);
        let h = Header { utctime: NOW, ..h };
        assert_eq!(c(&h, 3, true, NOW), 0x16);
        assert_eq!(c(&Header { msglen: 0, ..h }, 3, true, NOW), 0x16);
        // rxseq at the top cannot be followed.
        let top = Header {
            sequence: 0,
            ..good
        };
        assert_eq!(c(&top, u64::MAX, true, NOW), 0x14);
    }
}
