//! An established DKTP session (FACTS §7, §8): two long-lived RCS-512 channels, the
//! sequence counters, the asymmetric ratchet and the close.
//!
//! The handshake hands a [`Session`] over by value with `txseq = rxseq = 3`; the first data
//! packet carries sequence 4. Sealing data returns the packet directly (or writes it into a
//! caller's buffer); receiving is [`Session::open_in_place`], which decrypts a data packet in
//! place and hands control packets (ratchet, close) to the session, whose results wait in
//! [`Session::poll_output`] in the order they must be acted on: an
//! [`Event::PssUpdated`] always comes before the packet that lets the peer advance its own
//! copy, so a caller that stores the secrets as it polls never falls behind its peer.
//!
//! Any receive failure ends the session (the RCS state has already moved): every later call
//! fails with [`Misuse::NotEstablished`] (0x03). [`Session::close_with`] builds the encrypted
//! error packet to tell the peer why.
//!
//! For a batch engine that runs the RCS work of many sessions elsewhere:
//! [`Session::prepare_seal`] + [`Session::tx_channel_mut`] on the way out,
//! [`Session::check_data_header`] + [`Session::rx_channel_mut`] + [`Session::commit_open`] /
//! [`Session::abort`] on the way in.

use core::fmt;
use core::ops::Range;
use std::collections::VecDeque;

use crate::config::Config;
use crate::error::{CryptoFailure, Error, ErrorCode, Malformed, Misuse, PeerMisbehaved};
use crate::kex::{self, PeerKeys, PssUpdate, Settings};
use crate::packet::{self, Flag, HEADER_LEN, Header, MAX_MESSAGE, SEALED_ERROR_MSGLEN, TAG_LEN};
use crate::pq::{Entropy, KemSecretKey};
use crate::ratchet;
use crate::rcs::Rcs512Channel;

/// Which end of the handshake this session was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sent the connect request.
    Client,
    /// Answered it.
    Server,
}

/// One direction of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// This side's transmit channel.
    Transmit,
    /// This side's receive channel.
    Receive,
}

/// Something the application must know about, in order.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The handshake completed; data may flow.
    Established,
    /// The pre-shared secrets advanced: store them into the peer keys now (FACTS §5).
    PssUpdated(PssUpdate),
    /// An application message arrived.
    Message(Vec<u8>),
    /// An asymmetric ratchet re-keyed one direction.
    Rekeyed(Direction),
    /// The peer closed the session; `code` is 0x1B for an orderly close, otherwise the
    /// reason it gave.
    Closed {
        /// The error code byte it sent.
        code: u8,
    },
}

/// The session's (and a connection's) outputs, in the order to act on them.
#[derive(Debug)]
pub enum Output {
    /// A packet to write to the peer, whole, in one write.
    Transmit(Vec<u8>),
    /// An event for the application.
    Event(Event),
}

/// What [`Session::open_in_place`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// An application message; the plaintext is this range of the packet buffer.
    Message(Range<usize>),
    /// A control packet (ratchet or close); its results are in [`Session::poll_output`].
    Control,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Open,
    /// Closed by either side.
    Closed,
    /// A failure ended it.
    Failed,
}

/// An established session.
pub struct Session {
    role: Role,
    keys: PeerKeys,
    settings: Settings,
    tx: Rcs512Channel,
    rx: Rcs512Channel,
    txseq: u64,
    rxseq: u64,
    status: Status,
    /// Our outstanding ratchet request's decapsulation key.
    ratchet: Option<KemSecretKey>,
    /// (Client only) the peer's ratchet key that crossed our own request; answered when
    /// ours completes.
    deferred: Option<Vec<u8>>,
    outbox: VecDeque<Output>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("config", &self.keys.config().to_string())
            .field("txseq", &self.txseq)
            .field("rxseq", &self.rxseq)
            .field("status", &self.status)
            .field("ratchet_outstanding", &self.ratchet.is_some())
            .finish_non_exhaustive()
    }
}

/// Sequence numbers both sides hold when the handshake ends (FACTS §6).
const HANDSHAKE_SEQ: u64 = 3;

impl Session {
    pub(crate) fn new(
        role: Role,
        keys: PeerKeys,
        settings: Settings,
        tx: Rcs512Channel,
        rx: Rcs512Channel,
    ) -> Session {
        Session {
            role,
            keys,
            settings,
            tx,
            rx,
            txseq: HANDSHAKE_SEQ,
            rxseq: HANDSHAKE_SEQ,
            status: Status::Open,
            ratchet: None,
            deferred: None,
            outbox: VecDeque::new(),
        }
    }

    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.keys.config()
    }

    /// The peer keys with the pre-shared secrets as they stand now (what to persist).
    pub fn keys(&self) -> &PeerKeys {
        &self.keys
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Sequence number of the last packet sent.
    pub fn txseq(&self) -> u64 {
        self.txseq
    }

    /// Sequence number of the last packet received.
    pub fn rxseq(&self) -> u64 {
        self.rxseq
    }

    /// Whether packets may still be sent and received.
    pub fn is_open(&self) -> bool {
        self.status == Status::Open
    }

    /// Whether our ratchet request awaits its response.
    pub fn ratchet_outstanding(&self) -> bool {
        self.ratchet.is_some()
    }

    /// Ends the session after a failure (for callers driving the channels themselves).
    pub fn abort(&mut self) {
        if self.status == Status::Open {
            self.status = Status::Failed;
        }
        self.ratchet = None;
        self.deferred = None;
    }

    /// The next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outbox.pop_front()
    }

    fn ensure_open(&self) -> Result<(), Error> {
        if self.status == Status::Open {
            Ok(())
        } else {
            Err(Misuse::NotEstablished.into())
        }
    }

    fn next_txseq(&self) -> Result<u64, Error> {
        self.txseq
            .checked_add(1)
            .ok_or(Error::Misuse(Misuse::SequenceExhausted))
    }

    // -----------------------------------------------------------------------------------
    // Sending

    /// Largest message one data packet carries.
    pub const MAX_PLAINTEXT: usize = MAX_MESSAGE as usize - TAG_LEN;

    /// Reserves the next data packet for a `len`-byte message and returns its header
    /// (FACTS §7: `txseq += 1`, `(0x04, len + 64, txseq, now)`). The caller then seals the
    /// message on [`tx_channel_mut`](Self::tx_channel_mut) with the encoded header as AD,
    /// before reserving anything else; if sealing fails it must [`abort`](Self::abort).
    pub fn prepare_seal(&mut self, len: usize, now: u64) -> Result<Header, Error> {
        self.ensure_open()?;
        if len == 0 {
            return Err(Misuse::EmptyMessage.into());
        }
        if len > Self::MAX_PLAINTEXT {
            return Err(Misuse::MessageTooLong {
                len,
                max: Self::MAX_PLAINTEXT,
            }
            .into());
        }
        if self.ratchet.is_some() {
            return Err(Misuse::RatchetOutstanding.into());
        }
        let seq = self.next_txseq()?;
        self.txseq = seq;
        Ok(Header::new(
            Flag::EncryptedMessage,
            kex::msglen(len + TAG_LEN),
            seq,
            now,
        ))
    }

    /// The transmit channel, for sealing a packet reserved with
    /// [`prepare_seal`](Self::prepare_seal).
    pub fn tx_channel_mut(&mut self) -> &mut Rcs512Channel {
        &mut self.tx
    }

    /// Seals `message` into a data packet appended to `out`.
    pub fn seal(&mut self, message: &[u8], now: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        let header = self.prepare_seal(message.len(), now)?.encode();
        let start = out.len();
        out.extend_from_slice(&header);
        out.extend_from_slice(message);
        out.resize(start + HEADER_LEN + message.len() + TAG_LEN, 0);
        let body = out.get_mut(start + HEADER_LEN..).unwrap_or_default();
        let (ct, tag) = body.split_at_mut(message.len());
        if self.tx.seal_in_place(&header, ct, tag).is_err() {
            out.truncate(start);
            self.abort();
            return Err(Misuse::NotEstablished.into());
        }
        Ok(())
    }

    /// Seals `message` into `out` (at least `21 + len + 64` bytes); returns the packet
    /// length.
    pub fn seal_into(&mut self, message: &[u8], now: u64, out: &mut [u8]) -> Result<usize, Error> {
        let len = HEADER_LEN + message.len() + TAG_LEN;
        let Some(dest) = out.get_mut(..len) else {
            return Err(Misuse::BufferTooSmall {
                needed: len,
                got: out.len(),
            }
            .into());
        };
        let header = self.prepare_seal(message.len(), now)?.encode();
        let (head, body) = dest.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header);
        let (ct, tag) = body.split_at_mut(message.len());
        ct.copy_from_slice(message);
        if self.tx.seal_in_place(&header, ct, tag).is_err() {
            self.abort();
            return Err(Misuse::NotEstablished.into());
        }
        Ok(len)
    }

    /// Seals a control packet `flag ‖ parts` (ratchet, close) on the transmit channel.
    fn seal_control(&mut self, flag: Flag, parts: &[&[u8]], now: u64) -> Result<Vec<u8>, Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + TAG_LEN;
        if len > MAX_MESSAGE as usize {
            return Err(Misuse::MessageTooLong {
                len,
                max: MAX_MESSAGE as usize,
            }
            .into());
        }
        let seq = self.next_txseq()?;
        let header = kex::header(flag, seq, now, len);
        let mut packet = kex::assemble(&header, len, parts);
        packet.resize(HEADER_LEN + len, 0);
        let body = packet.get_mut(HEADER_LEN..).unwrap_or_default();
        let (ct, tag) = body.split_at_mut(len - TAG_LEN);
        if self.tx.seal_in_place(&header, ct, tag).is_err() {
            self.abort();
            return Err(Misuse::NotEstablished.into());
        }
        self.txseq = seq;
        Ok(packet)
    }

    /// The orderly close (FACTS §4): the encrypted code 0x1B, 86 bytes. The session is
    /// closed afterwards.
    pub fn close(&mut self, now: u64) -> Result<Vec<u8>, Error> {
        self.close_with(ErrorCode::DisconnectRequest, now)
    }

    /// Closes with another reason, e.g. the wire code of the error that ended the session.
    pub fn close_with(&mut self, code: ErrorCode, now: u64) -> Result<Vec<u8>, Error> {
        if self.status == Status::Closed {
            return Err(Misuse::NotEstablished.into());
        }
        // After a receive failure the tx channel still works; tell the peer why.
        let packet = self.seal_control(Flag::ErrorCondition, &[&[code.as_u8()]], now)?;
        if self.status == Status::Open {
            self.status = Status::Closed;
        }
        self.ratchet = None;
        self.deferred = None;
        Ok(packet)
    }

    /// Starts an asymmetric ratchet that re-keys our transmit direction (FACTS §8): returns
    /// the request packet. Refused while our previous request is outstanding
    /// ([`Misuse::RatchetOutstanding`]) and in McEliece configurations, whose request does
    /// not fit a packet ([`Misuse::RatchetUnavailable`]).
    pub fn start_ratchet(&mut self, now: u64, rng: &mut dyn Entropy) -> Result<Vec<u8>, Error> {
        self.ensure_open()?;
        let config = self.config();
        if !config.asymmetric_ratchet_possible() {
            return Err(Misuse::RatchetUnavailable.into());
        }
        if self.ratchet.is_some() {
            return Err(Misuse::RatchetOutstanding.into());
        }
        let kp = self.settings.generate_kem(config.kem(), rng)?;
        let plaintext =
            ratchet::signed_object(config.sig(), self.keys.local.signing_key(), &kp.public, rng)?;
        let packet = self.seal_control(Flag::AsymmetricRatchetRequest, &[&plaintext], now)?;
        self.ratchet = Some(kp.secret);
        Ok(packet)
    }

    // -----------------------------------------------------------------------------------
    // Receiving

    /// The data-phase header checks in the reference's order (FACTS §7): sequence
    /// (0x14), established (0x03), time (0x13), msglen > 64 (0x16), plus the packet size
    /// limit. For a batch engine: after this, open on
    /// [`rx_channel_mut`](Self::rx_channel_mut) with the header bytes as AD, then
    /// [`commit_open`](Self::commit_open) on success or [`abort`](Self::abort) on failure.
    /// Only data packets (flag 0x04) take this path; others go to
    /// [`open_in_place`](Self::open_in_place).
    pub fn check_data_header(&self, header: &Header, now: u64) -> Result<(), Error> {
        self.ensure_open()?;
        if header.msglen > MAX_MESSAGE {
            return Err(Malformed::TooLong {
                msglen: header.msglen,
                max: MAX_MESSAGE,
            }
            .into());
        }
        packet::check_data_header(header, self.rxseq, true, now)
    }

    /// The receive channel (see [`check_data_header`](Self::check_data_header)).
    pub fn rx_channel_mut(&mut self) -> &mut Rcs512Channel {
        &mut self.rx
    }

    /// Counts a packet opened successfully through
    /// [`check_data_header`](Self::check_data_header).
    pub fn commit_open(&mut self) {
        self.rxseq = self.rxseq.saturating_add(1);
    }

    /// Opens one whole received packet in place. A data packet's plaintext is returned as a
    /// range of `packet`; a control packet's results go to
    /// [`poll_output`](Self::poll_output). Any error ends the session.
    pub fn open_in_place(
        &mut self,
        packet: &mut [u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Opened, Error> {
        self.ensure_open()?;
        let r = self.open_inner(packet, now, rng);
        if r.is_err() {
            self.abort();
        }
        r
    }

    /// Opens one whole received packet; an application message becomes
    /// [`Event::Message`] in [`poll_output`](Self::poll_output).
    pub fn handle_packet(
        &mut self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        let mut buf = packet.to_vec();
        if let Opened::Message(range) = self.open_in_place(&mut buf, now, rng)? {
            let message = buf.get(range).unwrap_or_default().to_vec();
            self.outbox
                .push_back(Output::Event(Event::Message(message)));
        }
        Ok(())
    }

    fn open_inner(
        &mut self,
        packet: &mut [u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Opened, Error> {
        let header = Header::decode(packet)?;
        let declared = header.msglen;
        let body_len = packet.len().saturating_sub(HEADER_LEN);
        if usize::try_from(declared).ok() != Some(body_len) {
            return Err(Malformed::LengthMismatch {
                declared,
                actual: body_len,
            }
            .into());
        }
        self.check_data_header(&header, now)?;
        let sizes = self.config().message_sizes();
        let flag = header.kind()?;
        let exact = match flag {
            Flag::EncryptedMessage => None,
            Flag::AsymmetricRatchetRequest => {
                if self.deferred.is_some() {
                    return Err(PeerMisbehaved::UnexpectedPacket {
                        received: header.flag,
                    }
                    .into());
                }
                Some(sizes.asymmetric_ratchet_request)
            }
            Flag::AsymmetricRatchetResponse => {
                if self.ratchet.is_none() {
                    return Err(PeerMisbehaved::UnexpectedPacket {
                        received: header.flag,
                    }
                    .into());
                }
                Some(sizes.asymmetric_ratchet_response)
            }
            Flag::ErrorCondition => Some(SEALED_ERROR_MSGLEN as usize),
            _ => {
                return Err(PeerMisbehaved::UnexpectedPacket {
                    received: header.flag,
                }
                .into());
            }
        };
        if let Some(expected) = exact
            && body_len != expected
        {
            return Err(PeerMisbehaved::UnexpectedLength {
                expected: kex::msglen(expected),
                received: declared,
            }
            .into());
        }
        let (head, body) = packet.split_at_mut(HEADER_LEN);
        let (ct, tag) = body.split_at_mut(body_len - TAG_LEN);
        self.rx
            .open_in_place(head, ct, tag)
            .map_err(|_| Error::Crypto(CryptoFailure::Authentication))?;
        self.commit_open();
        let plaintext: &[u8] = ct;
        match flag {
            Flag::EncryptedMessage => {
                return Ok(Opened::Message(HEADER_LEN..HEADER_LEN + plaintext.len()));
            }
            Flag::AsymmetricRatchetRequest => self.on_ratchet_request(plaintext, now, rng)?,
            Flag::AsymmetricRatchetResponse => self.on_ratchet_response(plaintext, now, rng)?,
            _ => {
                let code = plaintext.first().copied().unwrap_or_default();
                self.status = Status::Closed;
                self.ratchet = None;
                self.deferred = None;
                self.outbox.push_back(Output::Event(Event::Closed { code }));
            }
        }
        Ok(Opened::Control)
    }

    fn on_ratchet_request(
        &mut self,
        plaintext: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        let sig = self.config().sig();
        let ek = ratchet::open_signed_object(sig, self.keys.remote.verification_key(), plaintext)?;
        if self.role == Role::Client && self.ratchet.is_some() {
            // Crossing requests: the client answers after its own completes (ratchet.rs).
            self.deferred = Some(ek.to_vec());
            return Ok(());
        }
        self.respond(ek, now, rng)
    }

    /// Answers a ratchet request, then re-keys the receive channel.
    fn respond(&mut self, ek: &[u8], now: u64, rng: &mut dyn Entropy) -> Result<(), Error> {
        let config = self.config();
        let (ct, ssec) = config
            .kem()
            .encapsulate(ek, rng)
            .map_err(kex::encapsulation_error)?;
        let plaintext =
            ratchet::signed_object(config.sig(), self.keys.local.signing_key(), &ct, rng)?;
        let packet = self.seal_control(Flag::AsymmetricRatchetResponse, &[&plaintext], now)?;
        let (rx, pss) = ratchet::rekey(
            ssec.expose(),
            self.settings.ratchet_domain(),
            self.keys.remote.pss(),
        )?;
        self.rx = rx;
        self.keys.remote.set_pss(pss.as_bytes());
        self.outbox
            .push_back(Output::Event(Event::PssUpdated(self.keys.pss_update())));
        self.outbox.push_back(Output::Transmit(packet));
        self.outbox
            .push_back(Output::Event(Event::Rekeyed(Direction::Receive)));
        Ok(())
    }

    fn on_ratchet_response(
        &mut self,
        plaintext: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        let config = self.config();
        let ct = ratchet::open_signed_object(
            config.sig(),
            self.keys.remote.verification_key(),
            plaintext,
        )?;
        let dk =
            self.ratchet
                .take()
                .ok_or(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedPacket {
                    received: Flag::AsymmetricRatchetResponse.as_u8(),
                }))?;
        let ssec = config
            .kem()
            .decapsulate(&dk, ct)
            .map_err(kex::decapsulation_error)?;
        let (tx, pss) = ratchet::rekey(
            ssec.expose(),
            self.settings.ratchet_domain(),
            self.keys.local.pss(),
        )?;
        self.tx = tx;
        self.keys.local.set_pss(pss.as_bytes());
        self.outbox
            .push_back(Output::Event(Event::PssUpdated(self.keys.pss_update())));
        self.outbox
            .push_back(Output::Event(Event::Rekeyed(Direction::Transmit)));
        if let Some(ek) = self.deferred.take() {
            self.respond(&ek, now, rng)?;
        }
        Ok(())
    }
}
