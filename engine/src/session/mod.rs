//! An established DKTP session (FACTS §7, §8): the data phase ([`DataSession`]: two
//! long-lived RCS-512 channels, the sequence counters, the status), the asymmetric ratchet,
//! the close, and the record of the pre-shared secrets' generations
//! ([`crate::generation`]).
//!
//! The handshake hands a [`Session`] over by value with `txseq = rxseq = 3`; the first data
//! packet carries sequence 4. Sealing data returns the packet directly (or writes it into a
//! caller's buffer); receiving is [`Session::open_in_place`], which decrypts a data packet in
//! place and hands control packets (ratchet, close) to the session, whose results wait in
//! [`Session::poll_output`] in the order they must be acted on: an [`Event::Secrets`]
//! always comes before the packet that lets the peer advance its own copy, so a caller that
//! stores the record as it polls never falls behind its peer.
//!
//! Any receive failure ends the session (the RCS state has already moved): every later call
//! fails with [`Misuse::NotEstablished`] (0x03). [`Session::close_with`] builds the encrypted
//! error packet to tell the peer why.
//!
//! The batch engine seals and opens the session's own [`DataSession`]
//! ([`Session::data_mut`]); control packets it hands back go to
//! [`Session::open_in_place`], and [`Session::poll_output`] still reports what the batch
//! changed (a server's generation confirmed by the client's first packet).

pub mod data;
mod handover;

use core::fmt;
use core::ops::Range;
use std::collections::VecDeque;

use crate::config::Config;
use crate::error::{CryptoFailure, Error, ErrorCode, Malformed, Misuse, PeerMisbehaved, PqStep};
use crate::generation::{Generation, Generations, SecretsChange, SecretsUpdate};
use crate::packet::{Flag, HEADER_LEN, Header, MAX_MESSAGE, TAG_LEN, msglen};
use crate::peer_key::PeerKeys;
use crate::pq::{Entropy, KemSecretKey};
use crate::ratchet;
use crate::rcs::Rcs512Channel;
use crate::settings::Settings;

pub use crate::kex::Role;
pub use data::{DataSession, Received, Status};

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
    /// The record of the pre-shared secrets changed: store
    /// [`record`](SecretsUpdate::record) in place of the peer's old one, durably, before
    /// acting on the next output ([`crate::generation`]).
    Secrets(SecretsUpdate),
    /// An application message arrived.
    Message(Message),
    /// An asymmetric ratchet completed: `Transmit` on the requester (its transmit channel
    /// re-keyed), `Receive` on the responder.
    RatchetCompleted(Direction),
    /// The connection ended: the peer's orderly close or error packet (`by_peer`), or this
    /// side's close, failure or timeout. `code` is the DKTP code (0x1B for an orderly close).
    Closed {
        /// The error code byte sent or received.
        code: u8,
        /// Whether the peer sent it.
        by_peer: bool,
    },
}

/// A received application message: the plaintext, decrypted in place inside the packet's
/// own buffer (no copy). Derefs to the bytes.
pub struct Message {
    buf: Vec<u8>,
    range: Range<usize>,
}

impl Message {
    pub(crate) fn new(buf: Vec<u8>, range: Range<usize>) -> Message {
        Message { buf, range }
    }

    /// The plaintext.
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(self.range.clone()).unwrap_or_default()
    }

    /// The plaintext as an owned vector (moves it to the front of the buffer; no new
    /// allocation).
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.truncate(self.range.end);
        self.buf.drain(..self.range.start.min(self.buf.len()));
        core::mem::take(&mut self.buf)
    }
}

impl PartialEq<[u8]> for Message {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<&[u8]> for Message {
    fn eq(&self, other: &&[u8]) -> bool {
        self.as_slice() == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Message {
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl PartialEq<Vec<u8>> for Message {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl core::ops::Deref for Message {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("len", &self.range.len())
            .finish()
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.buf.zeroize();
    }
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

/// An established session.
pub struct Session {
    role: Role,
    keys: PeerKeys,
    settings: Settings,
    data: DataSession,
    /// The record of the secrets' generations as last handed out.
    secrets: Generations,
    /// The generation number of the secrets in `keys`.
    current: u64,
    /// Confirm the pending generation once `rxseq` passes this: the peer's first packet
    /// after the commit proves it holds the new secrets.
    confirm_after: Option<u64>,
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
            .field("txseq", &self.data.txseq)
            .field("rxseq", &self.data.rxseq)
            .field("status", &self.data.status)
            .field("generation", &self.current)
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
        let secrets = Generations::of_keys(&keys);
        Session {
            role,
            keys,
            settings,
            data: DataSession::new(tx, rx, HANDSHAKE_SEQ, HANDSHAKE_SEQ),
            secrets,
            current: 0,
            confirm_after: None,
            ratchet: None,
            deferred: None,
            outbox: VecDeque::new(),
        }
    }

    /// Sets the record the handshake left (`current` is the number of the secrets in the
    /// keys); with `confirm_on_receive`, the peer's first packet confirms the pending one.
    fn set_generations(&mut self, secrets: Generations, current: u64, confirm_on_receive: bool) {
        self.secrets = secrets;
        self.current = current;
        self.confirm_after = confirm_on_receive.then_some(self.data.rxseq);
    }

    /// The record of the secrets' generations as last handed out in an
    /// [`Event::Secrets`].
    pub fn generations(&self) -> &Generations {
        &self.secrets
    }

    /// The data phase, for the batch engine. Its sequence numbers and channels are the
    /// session's; after a batch, [`poll_output`](Self::poll_output) reports what changed.
    pub fn data_mut(&mut self) -> &mut DataSession {
        &mut self.data
    }

    /// The data phase.
    pub fn data(&self) -> &DataSession {
        &self.data
    }

    /// Hands out a new record.
    fn update_secrets(&mut self, change: SecretsChange, record: Generations) {
        self.secrets = record.clone();
        self.outbox
            .push_back(Output::Event(Event::Secrets(SecretsUpdate {
                change,
                record,
            })));
    }

    /// Confirms the pending generation once a packet arrived after the commit.
    fn check_confirm(&mut self) {
        if let Some(after) = self.confirm_after
            && self.data.rxseq > after
        {
            self.confirm_after = None;
            if let Some(pending) = self.secrets.pending.clone() {
                self.update_secrets(SecretsChange::Confirmed, Generations::new(pending));
            }
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
        self.data.txseq
    }

    /// Sequence number of the last packet received.
    pub fn rxseq(&self) -> u64 {
        self.data.rxseq
    }

    /// Whether packets may still be sent and received.
    pub fn is_open(&self) -> bool {
        self.data.status == Status::Open
    }

    /// Where the session stands.
    pub fn status(&self) -> Status {
        self.data.status
    }

    /// Whether our ratchet request awaits its response.
    pub fn ratchet_outstanding(&self) -> bool {
        self.ratchet.is_some()
    }

    /// Ends the session after a failure (for callers driving the channels themselves).
    pub fn abort(&mut self) {
        use data::BatchSession;
        self.data.abort();
        self.set_ratchet(None);
        self.deferred = None;
    }

    /// The next output, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.check_confirm();
        self.outbox.pop_front()
    }

    fn ensure_open(&self) -> Result<(), Error> {
        if self.is_open() {
            Ok(())
        } else {
            Err(Misuse::NotEstablished.into())
        }
    }

    /// Our outstanding ratchet; while there is one, no data may be sent (FACTS §8), and the
    /// data phase refuses it too, so a batch cannot break the rule.
    fn set_ratchet(&mut self, dk: Option<KemSecretKey>) {
        self.data.hold_tx = dk.is_some();
        self.ratchet = dk;
    }

    // -----------------------------------------------------------------------------------
    // Sending

    /// Largest message one data packet carries.
    pub const MAX_PLAINTEXT: usize = MAX_MESSAGE as usize - TAG_LEN;

    /// Reserves the next data packet for a `len`-byte message and returns its header
    /// ([`DataSession`]'s rule, FACTS §7); refused while our ratchet is outstanding.
    pub fn prepare_seal(&mut self, len: usize, now: u64) -> Result<Header, Error> {
        use data::BatchSession;
        self.data.prepare_seal(len, now)
    }

    /// The transmit channel, for sealing a packet reserved with
    /// [`prepare_seal`](Self::prepare_seal).
    pub fn tx_channel_mut(&mut self) -> &mut Rcs512Channel {
        &mut self.data.tx
    }

    /// Seals `message` into a data packet appended to `out`.
    pub fn seal(&mut self, message: &[u8], now: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        self.data.seal(message, now, out)
    }

    /// Seals `message` into `out` (at least `21 + len + 64` bytes); returns the packet
    /// length.
    pub fn seal_into(&mut self, message: &[u8], now: u64, out: &mut [u8]) -> Result<usize, Error> {
        self.data.seal_into(message, now, out)
    }

    /// Seals a control packet `flag ‖ parts` (ratchet, close) on the transmit channel.
    fn seal_control(&mut self, flag: Flag, parts: &[&[u8]], now: u64) -> Result<Vec<u8>, Error> {
        self.data.seal_control(flag, parts, now)
    }

    /// The orderly close (FACTS §4): the encrypted code 0x1B, 86 bytes. The session is
    /// closed afterwards.
    pub fn close(&mut self, now: u64) -> Result<Vec<u8>, Error> {
        self.close_with(ErrorCode::DisconnectRequest, now)
    }

    /// Closes with another reason, e.g. the wire code of the error that ended the session.
    pub fn close_with(&mut self, code: ErrorCode, now: u64) -> Result<Vec<u8>, Error> {
        if self.data.status == Status::Closed {
            return Err(Misuse::NotEstablished.into());
        }
        // After a receive failure the tx channel still works; tell the peer why.
        let packet = self.seal_control(Flag::ErrorCondition, &[&[code.as_u8()]], now)?;
        if self.data.status == Status::Open {
            self.data.status = Status::Closed;
        }
        self.set_ratchet(None);
        self.deferred = None;
        Ok(packet)
    }

    /// The encrypted error packet to send after `error` ended the session: the failure's
    /// code sealed on the transmit channel (86 bytes), or `None` where nothing is sent (the
    /// peer's own close or error, local misuse, a dead transmit channel).
    pub fn reply_for(&mut self, error: &Error, now: u64) -> Option<Vec<u8>> {
        if matches!(error, Error::PeerReported { .. } | Error::Misuse(_)) {
            return None;
        }
        self.abort();
        self.close_with(error.wire_code(), now).ok()
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
        self.set_ratchet(Some(kp.secret));
        Ok(packet)
    }

    // -----------------------------------------------------------------------------------
    // Receiving

    /// The data-phase header checks in the reference's order (FACTS §7): sequence
    /// (0x14), established (0x03), time (0x13), msglen > 64 (0x16), plus the packet size
    /// limit.
    pub fn check_data_header(&self, header: &Header, now: u64) -> Result<(), Error> {
        use data::BatchSession;
        self.data.check_data_header(header, now)
    }

    /// The receive channel, for callers that open packets themselves (then
    /// [`commit_open`](Self::commit_open), or [`abort`](Self::abort) on failure).
    pub fn rx_channel_mut(&mut self) -> &mut Rcs512Channel {
        &mut self.data.rx
    }

    /// Counts a packet opened successfully on [`rx_channel_mut`](Self::rx_channel_mut).
    pub fn commit_open(&mut self) {
        use data::BatchSession;
        self.data.commit_open();
    }

    /// Opens one whole received packet in place. A data packet's plaintext is returned as a
    /// range of `packet`; a control packet's results go to
    /// [`poll_output`](Self::poll_output) (the peer's close as [`Event::Closed`]). Any
    /// error ends the session.
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
        self.check_confirm();
        r
    }

    /// Opens one whole received packet (copied once into a buffer of its own); an
    /// application message becomes [`Event::Message`] in [`poll_output`](Self::poll_output).
    pub fn handle_packet(
        &mut self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        self.handle_owned(packet.to_vec(), now, rng)
    }

    /// Opens one whole received packet in its own buffer; an application message becomes
    /// [`Event::Message`] in [`poll_output`](Self::poll_output), decrypted in that buffer
    /// and handed out without a copy.
    pub fn handle_owned(
        &mut self,
        mut packet: Vec<u8>,
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<(), Error> {
        if let Opened::Message(range) = self.open_in_place(&mut packet, now, rng)? {
            self.outbox
                .push_back(Output::Event(Event::Message(Message::new(packet, range))));
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
        let flag = header.kind()?;
        if matches!(flag, Flag::EncryptedMessage | Flag::ErrorCondition) {
            // The data phase's own rules for data and the sealed close.
            return match self.data.open(packet, now) {
                Ok(Received::Data(m)) => Ok(Opened::Message(HEADER_LEN..HEADER_LEN + m.len())),
                Ok(Received::Control(_)) => Err(PeerMisbehaved::UnexpectedPacket {
                    received: header.flag,
                }
                .into()),
                Err(Error::PeerReported { code }) if self.data.status == Status::Closed => {
                    self.set_ratchet(None);
                    self.deferred = None;
                    self.outbox.push_back(Output::Event(Event::Closed {
                        code,
                        by_peer: true,
                    }));
                    Ok(Opened::Control)
                }
                Err(e) => Err(e),
            };
        }
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
        let expected = match flag {
            Flag::AsymmetricRatchetRequest if self.deferred.is_none() => {
                sizes.asymmetric_ratchet_request
            }
            Flag::AsymmetricRatchetResponse if self.ratchet.is_some() => {
                sizes.asymmetric_ratchet_response
            }
            _ => {
                return Err(PeerMisbehaved::UnexpectedPacket {
                    received: header.flag,
                }
                .into());
            }
        };
        if body_len != expected {
            return Err(PeerMisbehaved::UnexpectedLength {
                expected: msglen(expected),
                received: declared,
            }
            .into());
        }
        let (head, body) = packet.split_at_mut(HEADER_LEN);
        let (ct, tag) = body.split_at_mut(body_len - TAG_LEN);
        self.data
            .rx
            .open_in_place(head, ct, tag)
            .map_err(|_| Error::Crypto(CryptoFailure::Authentication))?;
        self.data.rxseq = self.data.rxseq.saturating_add(1);
        // A packet from the peer may confirm a pending generation before the ratchet moves
        // on to the next one.
        self.check_confirm();
        let plaintext: &[u8] = ct;
        match flag {
            Flag::AsymmetricRatchetRequest => self.on_ratchet_request(plaintext, now, rng)?,
            _ => self.on_ratchet_response(plaintext, now, rng)?,
        }
        Ok(Opened::Control)
    }

    /// The ratchet moved the secrets in `keys` on from `base`: the record becomes (the
    /// generation the session was on, the new one pending).
    fn ratchet_advanced(&mut self, base: Generation) {
        self.current = self.current.saturating_add(1);
        let next = Generation::from_keys(self.current, &self.keys);
        self.update_secrets(
            SecretsChange::Pending,
            Generations::with_pending(base, next),
        );
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
            .map_err(|e| Error::pq(PqStep::Encapsulate, e))?;
        let plaintext =
            ratchet::signed_object(config.sig(), self.keys.local.signing_key(), &ct, rng)?;
        let packet = self.seal_control(Flag::AsymmetricRatchetResponse, &[&plaintext], now)?;
        self.rekey(Direction::Receive, ssec.expose())?;
        // Pending until the requester's first packet on the new key proves it re-keyed.
        self.confirm_after = Some(self.data.rxseq);
        self.outbox.push_back(Output::Transmit(packet));
        self.outbox
            .push_back(Output::Event(Event::RatchetCompleted(Direction::Receive)));
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
            .map_err(|e| Error::pq(PqStep::Decapsulate, e))?;
        // No packet in the session proves that the responder received one under the new
        // key (DKTP has no acknowledgement): pending until the next handshake settles it.
        self.rekey(Direction::Transmit, ssec.expose())?;
        self.set_ratchet(None);
        self.outbox
            .push_back(Output::Event(Event::RatchetCompleted(Direction::Transmit)));
        if let Some(ek) = self.deferred.take() {
            self.respond(&ek, now, rng)?;
        }
        Ok(())
    }

    /// Re-keys one direction with a ratchet's KEM secret (FACTS §8): its channel and its
    /// pre-shared secret (ours for transmit, the peer's for receive). The record gets the
    /// new generation pending.
    fn rekey(&mut self, direction: Direction, ssec: &[u8]) -> Result<(), Error> {
        let pss = match direction {
            Direction::Transmit => self.keys.local.pss(),
            Direction::Receive => self.keys.remote.pss(),
        };
        let (channel, pss) = ratchet::rekey(ssec, self.settings.ratchet_domain(), pss)?;
        let base = Generation::from_keys(self.current, &self.keys);
        match direction {
            Direction::Transmit => {
                self.data.tx = channel;
                self.keys.local.set_pss(pss.as_bytes());
            }
            Direction::Receive => {
                self.data.rx = channel;
                self.keys.remote.set_pss(pss.as_bytes());
            }
        }
        self.ratchet_advanced(base);
        Ok(())
    }
}

/// Issue 17 (FACTS §11.5), the third point: a ratchet request whose key is an all-zero
/// McEliece public key. It cannot arrive over the wire in a McEliece configuration: the
/// request exceeds 0x10000 bytes (FACTS §11.2), so its header is refused before anything
/// is decrypted, and `start_ratchet` refuses to build one. These tests hand the decrypted
/// request (`Sign(H(ek)) ‖ ek`, ek = 0, correctly signed) to the responder at the step
/// after decryption, `on_ratchet_request`, then do what `Connection` does with a session
/// error. The two handshake points are `engine/tests/mceliece_zero_key.rs`.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod zero_key_tests {
    use super::*;
    use crate::connection::Connection;
    use crate::listener::Listener;
    use crate::packet::SEALED_ERROR_LEN;
    use crate::pq::OsEntropy;

    use crate::testing::NOW;

    fn pair(config: Config) -> (PeerKeys, PeerKeys) {
        crate::testing::pair(config, NOW)
    }

    /// A client and a server session whose channels face each other (no handshake).
    fn sessions(ck: &PeerKeys, sk: &PeerKeys) -> (Session, Session) {
        let up = crate::key_schedule::ratchet(&[1; 32], &[2; 32]).channel;
        let down = crate::key_schedule::ratchet(&[3; 32], &[4; 32]).channel;
        let ch = |k| crate::key_schedule::channel(k).unwrap();
        (
            Session::new(
                Role::Client,
                ck.clone(),
                Settings::default(),
                ch(&up),
                ch(&down),
            ),
            Session::new(
                Role::Server,
                sk.clone(),
                Settings::default(),
                ch(&down),
                ch(&up),
            ),
        )
    }

    fn drain(s: &mut Session) -> Vec<Output> {
        core::iter::from_fn(|| s.poll_output()).collect()
    }

    /// `responder` refuses the all-zero key `requester` signed; the error packet closes the
    /// requester; neither moves its secrets.
    fn refuse(requester: &mut Session, responder: &mut Session) {
        let config = requester.config();
        let zero = vec![0u8; config.kem().sizes().public_key];
        let plaintext = ratchet::signed_object(
            config.sig(),
            requester.keys.local.signing_key(),
            &zero,
            &mut OsEntropy,
        )
        .unwrap();
        let (req_keys, resp_keys) = (requester.keys().clone(), responder.keys().clone());
        let resp_record = responder.generations().clone();

        let e = responder
            .on_ratchet_request(&plaintext, NOW, &mut OsEntropy)
            .unwrap_err();
        assert_eq!(e, Error::Crypto(CryptoFailure::ZeroPublicKey), "{e}");
        assert_eq!(e.wire_code(), ErrorCode::Decapsulation);
        assert!(
            e.to_string().contains("all-zero McEliece public key"),
            "{e}"
        );
        // Nothing sent, no secrets handed out, the receive channel and pss not re-keyed.
        assert!(drain(responder).is_empty());
        assert_eq!(responder.keys(), &resp_keys);
        assert_eq!(responder.generations(), &resp_record);

        // What Connection::after_session does with a session error: the encrypted error
        // packet with the failure's code, then the session ends.
        let reply = responder.reply_for(&e, NOW).unwrap();
        responder.abort();
        assert!(!responder.is_open());
        assert_eq!(reply.len(), SEALED_ERROR_LEN);
        assert_eq!(reply[0], Flag::ErrorCondition.as_u8());
        assert_eq!(Header::decode(&reply).unwrap().msglen, 65);
        assert_eq!(responder.keys(), &resp_keys);

        requester
            .handle_packet(&reply, NOW, &mut OsEntropy)
            .unwrap();
        let outs = drain(requester);
        assert_eq!(outs.len(), 1, "{outs:?}");
        assert!(matches!(
            outs[0],
            Output::Event(Event::Closed {
                code: 0x06,
                by_peer: true
            })
        ));
        assert!(!requester.is_open());
        assert_eq!(requester.keys(), &req_keys);
    }

    /// A fresh connection with the keys the sessions still hold establishes.
    fn reconnect(ck: &PeerKeys, sk: &PeerKeys) {
        let listener = Listener::new(Settings::default());
        listener.add(sk.clone());
        let mut client =
            Connection::connect(ck.clone(), Settings::default(), NOW, &mut OsEntropy).unwrap();
        let mut server = listener.accept(NOW);
        for _ in 0..8 {
            let mut moved = false;
            while let Some(out) = client.poll_output() {
                if let Output::Transmit(p) = out {
                    server.handle_bytes(&p, NOW, &mut OsEntropy).unwrap();
                    moved = true;
                }
            }
            while let Some(out) = server.poll_output() {
                if let Output::Transmit(p) = out {
                    client.handle_bytes(&p, NOW, &mut OsEntropy).unwrap();
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        assert!(client.is_established() && server.is_established());
    }

    fn zero_ratchet_key_refused(config: Config) {
        assert!(config.kem().is_mceliece());
        let (ck, sk) = pair(config);
        // The server responds to the client's request, then the client to the server's.
        let (mut client, mut server) = sessions(&ck, &sk);
        refuse(&mut client, &mut server);
        let (mut client, mut server) = sessions(&ck, &sk);
        refuse(&mut server, &mut client);
        assert_eq!(client.keys(), &ck);
        assert_eq!(server.keys(), &sk);
        reconnect(client.keys(), server.keys());
    }

    fn big_stack(f: impl FnOnce() + Send + 'static) {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap();
    }

    /// Every McEliece set, with ML-DSA (seconds).
    #[test]
    fn zero_ratchet_key_refused_ml_dsa_mceliece() {
        big_stack(|| {
            for config in Config::ALL {
                if config.kem().is_mceliece() && !config.sig().is_sphincs() {
                    zero_ratchet_key_refused(config);
                }
            }
        });
    }

    /// The SPHINCS+ McEliece configurations: about 6 signatures of 8 to 13 s each.
    #[test]
    #[ignore = "slow: SPHINCS+ signing (~5 min); run with --include-ignored"]
    fn zero_ratchet_key_refused_sphincs_mceliece() {
        big_stack(|| {
            for config in Config::ALL {
                if config.kem().is_mceliece() && config.sig().is_sphincs() {
                    zero_ratchet_key_refused(config);
                }
            }
        });
    }
}
