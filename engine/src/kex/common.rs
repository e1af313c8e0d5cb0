//! What both sides of the handshake do alike: receive a packet (the reference's header
//! checks, FACTS §6), check the peer's signed hash and sign their own ([`Core`]), and seal
//! and open the establish packets. [`client`](super::client) and [`server`](super::server)
//! use these and never each other.

use crate::config::Config;
use crate::error::{CryptoFailure, Error, Malformed};
use crate::packet::{
    self, Flag, FlagCheck, HEADER_LEN, HandshakeExpect, Header, assemble, header, msglen,
    seal_packet,
};
use crate::peer_key::PeerKeys;
use crate::pq::Entropy;
use crate::rcs::Rcs512Channel;
use crate::settings::Settings;
use crate::transcript::{Hash, Transcript, check_hash, message_hash, sign, verify};

/// The sequence number and exact message length of handshake packet `flag` in `config`
/// (FACTS §6): connect 0, exchange 1, establish 2.
pub(crate) fn slot(config: Config, flag: Flag) -> (u64, usize) {
    let sizes = config.message_sizes();
    match flag {
        Flag::ConnectRequest => (0, sizes.connect_request),
        Flag::ConnectResponse => (0, sizes.connect_response),
        Flag::ExchangeRequest => (1, sizes.exchange_request),
        Flag::ExchangeResponse => (1, sizes.exchange_response),
        Flag::EstablishRequest => (2, sizes.establish_request),
        Flag::EstablishResponse => (2, sizes.establish_response),
        // Not a handshake message: the handshake never awaits or sends one.
        _ => (0, 0),
    }
}

/// A received handshake packet that passed the header checks.
pub(crate) struct Received<'a> {
    /// The 21 header bytes as received (they enter the hashes and the AD).
    pub(crate) header: [u8; HEADER_LEN],
    /// The message after the header.
    pub(crate) message: Fields<'a>,
}

/// The reference's handshake header check (FACTS §6) for a packet that must be `flag` at
/// sequence `seq` with exactly `len` message bytes, then the packet's true length. The
/// peer's error packet is [`Error::PeerReported`].
pub(crate) fn receive(
    packet: &[u8],
    flag: Flag,
    (seq, len): (u64, usize),
    now: u64,
    flag_check: FlagCheck,
) -> Result<Received<'_>, Error> {
    let header = Header::decode(packet)?;
    let message = packet.get(HEADER_LEN..).unwrap_or_default();
    if header.flag == Flag::ErrorCondition.as_u8() {
        let e = packet::parse_error_packet(packet, false)?;
        if let packet::ErrorPacket::Plain { code, .. } = e {
            return Err(Error::PeerReported { code });
        }
    }
    let expect = HandshakeExpect {
        flag,
        msglen: msglen(len),
        rxseq: seq,
        state_matches: true,
        flag_check,
    };
    packet::check_handshake_header(&header, message, &expect, now)?;
    if message.len() != len {
        return Err(Malformed::LengthMismatch {
            declared: header.msglen,
            actual: message.len(),
        }
        .into());
    }
    Ok(Received {
        header: header.encode(),
        message: Fields(message),
    })
}

/// A cursor over a message whose length was checked against the configuration.
pub(crate) struct Fields<'a>(pub(crate) &'a [u8]);

impl<'a> Fields<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(Malformed::Truncated {
            needed: n,
            got: self.0.len(),
        })?;
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// What every handshake state holds once the transcript has started: the pair's keys, the
/// settings and the session hash so far.
#[derive(Debug, Clone)]
pub(crate) struct Core {
    pub(crate) keys: PeerKeys,
    pub(crate) settings: Settings,
    pub(crate) transcript: Transcript,
}

/// The accessors of a state that awaits packet `$flag`, alike in every state: its keys,
/// the session hash so far, and the exact length of the awaited message, for framing.
macro_rules! awaits {
    ($state:ident, $flag:ident, keys: $keys:literal, transcript: $transcript:literal $(,)?) => {
        impl $state {
            #[doc = $keys]
            pub fn keys(&self) -> &PeerKeys {
                &self.core.keys
            }

            #[doc = $transcript]
            pub fn transcript(&self) -> &Hash {
                self.core.transcript.hash()
            }

            /// The exact message length of the awaited packet, for framing.
            pub fn expected_msglen(&self) -> usize {
                self.core.expected_len(Flag::$flag)
            }
        }
    };
}
pub(crate) use awaits;

impl Core {
    /// The exact message length of handshake packet `flag` in this pair's configuration.
    pub(crate) fn expected_len(&self, flag: Flag) -> usize {
        slot(self.keys.config(), flag).1
    }

    /// Receives the awaited packet `flag` ([`receive`]).
    pub(crate) fn receive<'a>(
        &self,
        packet: &'a [u8],
        flag: Flag,
        now: u64,
    ) -> Result<Received<'a>, Error> {
        let slot = slot(self.keys.config(), flag);
        receive(packet, flag, slot, now, self.settings.flag_check())
    }

    /// Checks the peer's attached signature (0x02) over `H(header ‖ parts)` (else
    /// `failure`) and adds the signed hash to the transcript.
    pub(crate) fn check_signed(
        &mut self,
        header: &[u8; HEADER_LEN],
        parts: &[&[u8]],
        signed: &[u8],
        failure: CryptoFailure,
    ) -> Result<(), Error> {
        let sig = self.keys.config().sig();
        let hash = verify(sig, self.keys.remote.verification_key(), signed)?;
        check_hash(&message_hash(header, parts), hash, failure)?;
        self.transcript.absorb(hash);
        Ok(())
    }

    /// This side's packet `flag`: its header and the attached signature over
    /// `H(header ‖ parts)`, whose hash joins the transcript. The caller assembles the
    /// message in the packet's order.
    pub(crate) fn sign(
        &mut self,
        flag: Flag,
        now: u64,
        parts: &[&[u8]],
        rng: &mut dyn Entropy,
    ) -> Result<([u8; HEADER_LEN], Vec<u8>), Error> {
        let (header, hash) = hashed_header(self.keys.config(), flag, now, parts);
        let signed = sign(
            self.keys.config().sig(),
            self.keys.local.signing_key(),
            &hash,
            rng,
        )?;
        self.transcript.absorb(&hash);
        Ok((header, signed))
    }
}

/// The header of handshake packet `flag` and `H(header ‖ parts)`, the hash its signature
/// covers.
pub(crate) fn hashed_header(
    config: Config,
    flag: Flag,
    now: u64,
    parts: &[&[u8]],
) -> ([u8; HEADER_LEN], Hash) {
    let (seq, len) = slot(config, flag);
    let header = header(flag, seq, now, len);
    let hash = message_hash(&header, parts);
    (header, hash)
}

/// Opens an establish packet's payload and compares it with the expected session hash:
/// 0x07 if it does not authenticate, 0x08 if it carries another hash.
pub(crate) fn open_establish(
    rx: &mut Rcs512Channel,
    header: &[u8],
    payload: &[u8],
    expected: &Hash,
) -> Result<(), Error> {
    let (ct, tag) = payload
        .split_at_checked(expected.len())
        .ok_or(Error::Crypto(CryptoFailure::Decryption))?;
    let mut pt = ct.to_vec();
    rx.open_in_place(header, &mut pt, tag)
        .map_err(|_| Error::Crypto(CryptoFailure::Decryption))?;
    check_hash(expected, &pt, CryptoFailure::TranscriptMismatch)
}

/// The establish packet `flag` carrying `hash` (sequence 2; ciphertext and tag), sealed on
/// `tx` with its header as AD.
pub(crate) fn seal_establish(
    tx: &mut Rcs512Channel,
    config: Config,
    flag: Flag,
    hash: &Hash,
    now: u64,
) -> Result<Vec<u8>, Error> {
    let (seq, len) = slot(config, flag);
    let mut packet = assemble(&header(flag, seq, now, len), len, &[hash]);
    seal_packet(tx, &mut packet)?;
    Ok(packet)
}
