//! The data phase of an established session ([`DataSession`]): the two RCS-512 channels,
//! the sequence numbers and the status, with the sequential seal and open (FACTS §7). A
//! [`Session`](super::Session) holds one; the batch engine ([`crate::batch`]) seals and opens
//! it directly through [`BatchSession`].

use core::fmt;

use crate::error::{CryptoFailure, Error, Malformed, Misuse};
use crate::key_schedule::ChannelKey;
use crate::packet::{
    self, Flag, HEADER_LEN, Header, MAX_MESSAGE, SEALED_ERROR_LEN, SEALED_ERROR_MSGLEN, TAG_LEN,
};
use crate::rcs::{self, MacFrame, Rcs512Channel, RcsError};
use crate::{Backend, BackendError};

/// Largest message one data packet carries: the framing limit on the message
/// ([`MAX_MESSAGE`]) less the tag.
pub const MAX_PAYLOAD: usize = MAX_MESSAGE as usize - TAG_LEN;

/// What the batch engine needs from a session: the data-phase checks and the two RCS-512
/// channels, so it can run the RCS work itself (FACTS §7).
///
/// The engine calls these exactly as the sequential path does: to seal,
/// [`prepare_seal`](Self::prepare_seal), then the packet is sealed on
/// [`tx_channel_mut`](Self::tx_channel_mut) with the header as AD; to open a data packet
/// (flag 0x04), [`check_data_header`](Self::check_data_header), then it is authenticated on
/// [`rx_channel_mut`](Self::rx_channel_mut) and decrypted, then
/// [`commit_open`](Self::commit_open), or [`abort`](Self::abort) after any failure.
/// [`DataSession`] implements it.
pub trait BatchSession: Send {
    /// Whether packets may still be sent and received.
    fn is_open(&self) -> bool;
    /// Checks that a `len`-byte message may be sent now and reserves its packet
    /// (`txseq += 1`); returns the header `(0x04, len + 64, txseq, now)`. Changes nothing on
    /// error.
    fn prepare_seal(&mut self, len: usize, now: u64) -> Result<Header, Error>;
    /// The data-phase header checks in the reference's order (sequence, established, time,
    /// msglen > 64), before authentication.
    fn check_data_header(&self, header: &Header, now: u64) -> Result<(), Error>;
    /// The transmit channel.
    fn tx_channel_mut(&mut self) -> &mut Rcs512Channel;
    /// The receive channel.
    fn rx_channel_mut(&mut self) -> &mut Rcs512Channel;
    /// Counts a data packet that authenticated (`rxseq += 1`).
    fn commit_open(&mut self);
    /// Ends the session after a receive failure.
    fn abort(&mut self);
}

/// Where a data session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Packets flow both ways.
    Open,
    /// A received packet failed a check (sequence, time, length, authentication…): the
    /// receive state has moved or cannot be trusted, so the session is over (FACTS §7).
    Failed,
    /// The peer closed the session with an authenticated error packet (flag 0x12).
    Closed,
}

/// What [`DataSession::open`] found in a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'p> {
    /// A data message, decrypted in place: `packet[HEADER_LEN..HEADER_LEN + len]`.
    Data(&'p [u8]),
    /// A packet that is neither data (0x04) nor an error/close (0x12), e.g. an asymmetric
    /// ratchet request or response, which this type does not handle. Nothing was checked or
    /// changed.
    Control(&'p [u8]),
}

/// The data-phase state of one established DKTP session: the transmit and receive RCS-512
/// channels and their sequence numbers (FACTS §7).
///
/// [`seal`](Self::seal) and [`open`](Self::open) are the sequential path, one packet at a
/// time; [`Batch`](crate::batch::Batch) runs the same steps for many sessions at once and leaves
/// every session exactly as these calls would.
///
/// Any failure to open a received packet ends the session ([`Status::Failed`]); sealing
/// errors are the caller's (empty or oversized message) and change nothing.
pub struct DataSession {
    pub(super) tx: Rcs512Channel,
    pub(super) rx: Rcs512Channel,
    pub(super) txseq: u64,
    pub(super) rxseq: u64,
    pub(super) status: Status,
    /// Data may not be sent: the session's asymmetric ratchet awaits its response.
    pub(super) hold_tx: bool,
}

impl fmt::Debug for DataSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataSession")
            .field("txseq", &self.txseq)
            .field("rxseq", &self.rxseq)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl DataSession {
    /// A session from its two keyed channels and the sequence numbers the handshake ended
    /// on (both 3 after a DKTP handshake, FACTS §6).
    pub fn new(tx: Rcs512Channel, rx: Rcs512Channel, txseq: u64, rxseq: u64) -> DataSession {
        DataSession {
            tx,
            rx,
            txseq,
            rxseq,
            status: Status::Open,
            hold_tx: false,
        }
    }

    /// Keys both channels from the handshake's channel keys on `backend`.
    pub fn from_keys(
        backend: Backend,
        tx: &ChannelKey,
        rx: &ChannelKey,
        txseq: u64,
        rxseq: u64,
    ) -> Result<DataSession, BackendError> {
        let key = |k: &ChannelKey| {
            Rcs512Channel::with_backend(backend, k.key(), k.nonce(), &[]).map_err(|e| match e {
                RcsError::Backend(b) => b,
                // 64-byte keys always fit RCS-512; report anything else as unavailable.
                _ => BackendError::Unavailable(backend),
            })
        };
        Ok(DataSession::new(key(tx)?, key(rx)?, txseq, rxseq))
    }

    /// The sequence number of the last packet sent.
    pub fn txseq(&self) -> u64 {
        self.txseq
    }

    /// The sequence number of the last packet received.
    pub fn rxseq(&self) -> u64 {
        self.rxseq
    }

    /// Where the session stands.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The transmit channel (nonce and counter, for inspection).
    pub fn tx(&self) -> &Rcs512Channel {
        &self.tx
    }

    /// The receive channel (nonce and counter, for inspection).
    pub fn rx(&self) -> &Rcs512Channel {
        &self.rx
    }

    /// Seals one message (FACTS §7): `txseq += 1`, header `(0x04, len + 64, txseq, now)`,
    /// RCS-512 with the header as AD; appends `header || ciphertext || tag` to `out`.
    ///
    /// # Errors
    /// [`Misuse`]: the session is not open, the message is empty or longer than
    /// [`MAX_PAYLOAD`], or the sequence is exhausted. Nothing changes.
    pub fn seal(&mut self, payload: &[u8], now: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        seal(self, payload, now, out)
    }

    /// Seals `payload` into `out` (at least `21 + len + 64` bytes); returns the packet
    /// length. Errors as [`seal`](Self::seal).
    pub fn seal_into(&mut self, payload: &[u8], now: u64, out: &mut [u8]) -> Result<usize, Error> {
        let len = sealed_len(payload.len());
        let Some(dest) = out.get_mut(..len) else {
            return Err(Misuse::BufferTooSmall {
                needed: len,
                got: out.len(),
            }
            .into());
        };
        reserve(self, payload, now, dest)?;
        seal_prepared(self, payload.len(), dest)?;
        Ok(len)
    }

    /// Seals a control packet `flag ‖ parts` (ratchet, close) on the transmit channel,
    /// whatever the status (after a receive failure the transmit channel still works, and
    /// the peer is told why). A failure to seal ends the session.
    pub(crate) fn seal_control(
        &mut self,
        flag: Flag,
        parts: &[&[u8]],
        now: u64,
    ) -> Result<Vec<u8>, Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum::<usize>() + TAG_LEN;
        if len > MAX_MESSAGE as usize {
            return Err(Misuse::MessageTooLong {
                len,
                max: MAX_MESSAGE as usize,
            }
            .into());
        }
        let seq = self
            .txseq
            .checked_add(1)
            .ok_or(Error::Misuse(Misuse::SequenceExhausted))?;
        let mut packet = packet::assemble(&packet::header(flag, seq, now, len), len, parts);
        packet::seal_packet(&mut self.tx, &mut packet).inspect_err(|_| self.abort())?;
        self.txseq = seq;
        Ok(packet)
    }

    /// Opens one received packet (header included, exactly as framed by
    /// [`packet::frame`]) in place.
    ///
    /// A data packet (0x04) is checked in the reference's order (FACTS §7): sequence ==
    /// rxseq + 1, established, time within 60 s, msglen > 64, then the RCS tag (constant
    /// time) before anything is decrypted; `rxseq` advances only on success. A sealed error
    /// packet (0x12) is opened the same way and reported as [`Error::PeerReported`] with its
    /// code. Any other flag is returned as [`Received::Control`], untouched.
    ///
    /// # Errors
    /// Any failure ends the session ([`Status::Failed`], or [`Status::Closed`] for the
    /// peer's close); nothing of the packet is released.
    pub fn open<'p>(&mut self, packet: &'p mut [u8], now: u64) -> Result<Received<'p>, Error> {
        let close = match check_open(self, packet, now)? {
            Some(_) => false,
            None if packet.first() == Some(&Flag::ErrorCondition.as_u8()) => true,
            None => return Ok(Received::Control(packet)),
        };
        if !close {
            return open_checked(self, packet).map(Received::Data);
        }
        let r = check_received(self, packet, now).and_then(|_| {
            // After establishment only the sealed close (msglen 65, 86 bytes) is accepted.
            if packet.len() == SEALED_ERROR_LEN {
                Ok(())
            } else {
                packet::parse_error_packet(packet, true).and(Err(Error::Malformed(
                    Malformed::ErrorPacketShape {
                        msglen: SEALED_ERROR_MSGLEN,
                        received: packet.len(),
                    },
                )))
            }
        });
        if let Err(e) = r {
            self.abort();
            return Err(e);
        }
        let code = open_checked(self, packet)?
            .first()
            .copied()
            .unwrap_or_default();
        self.status = Status::Closed;
        Err(Error::PeerReported { code })
    }
}

impl BatchSession for DataSession {
    fn is_open(&self) -> bool {
        self.status == Status::Open
    }

    fn prepare_seal(&mut self, len: usize, now: u64) -> Result<Header, Error> {
        if !self.is_open() {
            return Err(Misuse::NotEstablished.into());
        }
        if len == 0 {
            return Err(Misuse::EmptyMessage.into());
        }
        if len > MAX_PAYLOAD {
            return Err(Misuse::MessageTooLong {
                len,
                max: MAX_PAYLOAD,
            }
            .into());
        }
        if self.hold_tx {
            return Err(Misuse::RatchetOutstanding.into());
        }
        let seq = self
            .txseq
            .checked_add(1)
            .ok_or(Error::Misuse(Misuse::SequenceExhausted))?;
        self.txseq = seq;
        // `len <= MAX_PAYLOAD`, so the message length fits in u32.
        let msglen = u32::try_from(len + TAG_LEN).unwrap_or(MAX_MESSAGE);
        Ok(Header::new(Flag::EncryptedMessage, msglen, seq, now))
    }

    fn check_data_header(&self, header: &Header, now: u64) -> Result<(), Error> {
        if !self.is_open() {
            return Err(Misuse::NotEstablished.into());
        }
        if header.msglen > MAX_MESSAGE {
            return Err(Malformed::TooLong {
                msglen: header.msglen,
                max: MAX_MESSAGE,
            }
            .into());
        }
        packet::check_data_header(header, self.rxseq, true, now)
    }

    fn tx_channel_mut(&mut self) -> &mut Rcs512Channel {
        &mut self.tx
    }

    fn rx_channel_mut(&mut self) -> &mut Rcs512Channel {
        &mut self.rx
    }

    fn commit_open(&mut self) {
        self.rxseq = self.rxseq.saturating_add(1);
    }

    fn abort(&mut self) {
        if self.status == Status::Open {
            self.status = Status::Failed;
        }
    }
}

/// Bytes of the packet that carries a `len`-byte message: header, ciphertext, tag.
pub const fn sealed_len(len: usize) -> usize {
    HEADER_LEN + len + TAG_LEN
}

/// What the receive or transmit MAC absorbs around a data packet's ciphertext (its AD is the
/// header), for the batch engine's split seal and open.
pub(crate) type PacketFrame = MacFrame<{ rcs::mac_head_len(HEADER_LEN) }>;

/// The sequential seal of any [`BatchSession`], appending to `out`.
pub(crate) fn seal<S: BatchSession + ?Sized>(
    session: &mut S,
    payload: &[u8],
    now: u64,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let header = session.prepare_seal(payload.len(), now)?.encode();
    let start = out.len();
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    out.resize(start + sealed_len(payload.len()), 0);
    let r = match out.get_mut(start..) {
        Some(slot) => seal_prepared(session, payload.len(), slot),
        None => Err(Misuse::NotEstablished.into()),
    };
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// Reserves a packet for `payload` ([`BatchSession::prepare_seal`]) and lays it out in
/// `slot`: header, then the message where the ciphertext goes (when `slot` has the packet's
/// size; otherwise the seal fails after this, ending the session). Returns the header.
pub(crate) fn reserve<S: BatchSession + ?Sized>(
    session: &mut S,
    payload: &[u8],
    now: u64,
    slot: &mut [u8],
) -> Result<[u8; HEADER_LEN], Error> {
    let header = session.prepare_seal(payload.len(), now)?.encode();
    if slot.len() == sealed_len(payload.len()) {
        let (head, body) = slot.split_at_mut(HEADER_LEN);
        head.copy_from_slice(&header);
        body.get_mut(..payload.len())
            .unwrap_or_default()
            .copy_from_slice(payload);
    }
    Ok(header)
}

/// Seals, on the transmit channel, the `len`-byte message at `slot[HEADER_LEN..]` of a
/// packet reserved by `prepare_seal`, its header already in place. A slot of the wrong size
/// or a failed seal (neither can happen to a packet the session reserved) ends the session.
pub(crate) fn seal_prepared<S: BatchSession + ?Sized>(
    session: &mut S,
    len: usize,
    slot: &mut [u8],
) -> Result<(), Error> {
    let r = if slot.len() == sealed_len(len) {
        packet::seal_packet(session.tx_channel_mut(), slot)
    } else {
        Err(Misuse::NotEstablished.into())
    };
    r.inspect_err(|_| session.abort())
}

/// Runs `step` on the transmit channel with the ciphertext and tag of the `len`-byte
/// message's packet in `slot` (the whole seal, or a half of the batch's split one). A slot of
/// the wrong size or a failed step (neither can happen to a packet the session reserved)
/// ends the session, as a receive failure does.
pub(crate) fn tx_step<S: BatchSession + ?Sized, T>(
    session: &mut S,
    len: usize,
    slot: &mut [u8],
    step: impl FnOnce(&mut Rcs512Channel, &mut [u8], &mut [u8]) -> Result<T, RcsError>,
) -> Result<T, Error> {
    let done = match slot.get_mut(HEADER_LEN..) {
        Some(body) if body.len() == len + TAG_LEN => {
            let (ct, tag) = body.split_at_mut(len);
            step(session.tx_channel_mut(), ct, tag).ok()
        }
        _ => None,
    };
    done.ok_or_else(|| {
        session.abort();
        Misuse::NotEstablished.into()
    })
}

/// The checks of a received packet before authentication, for any [`BatchSession`]:
/// established, the header, then for a data packet (flag 0x04) its length and the data-phase
/// checks. `Ok(None)`: not a data packet, left alone. An error has already ended the session.
pub(crate) fn check_open<S: BatchSession + ?Sized>(
    session: &mut S,
    packet: &[u8],
    now: u64,
) -> Result<Option<Header>, Error> {
    if !session.is_open() {
        return Err(Misuse::NotEstablished.into());
    }
    match Header::decode(packet) {
        Ok(h) if h.flag != Flag::EncryptedMessage.as_u8() => return Ok(None),
        Ok(_) => {}
        Err(e) => {
            session.abort();
            return Err(e);
        }
    }
    let r = check_received(session, packet, now);
    if r.is_err() {
        session.abort();
    }
    r.map(Some)
}

/// The header decoded, its length agreeing with the packet's, and the data-phase checks.
fn check_received<S: BatchSession + ?Sized>(
    session: &S,
    packet: &[u8],
    now: u64,
) -> Result<Header, Error> {
    let (header, _) = packet::split_packet(packet)?;
    session.check_data_header(&header, now)?;
    Ok(header)
}

/// Authenticates and decrypts a packet that passed [`check_open`], on the receive channel;
/// returns the plaintext. A failure ends the session.
pub(crate) fn open_checked<'p, S: BatchSession + ?Sized>(
    session: &mut S,
    packet: &'p mut [u8],
) -> Result<&'p [u8], Error> {
    rx_step(session, packet, |rx, head, body, tag| {
        rx.open_in_place(head, body, tag)
    })?;
    Ok(received(session, packet))
}

/// Runs `step` on the receive channel with the header, ciphertext and tag of a packet that
/// passed [`check_open`] (the whole open, or a half of the batch's split one). A failure ends
/// the session and says no more than that authentication failed.
pub(crate) fn rx_step<S: BatchSession + ?Sized, T>(
    session: &mut S,
    packet: &mut [u8],
    step: impl FnOnce(&mut Rcs512Channel, &[u8], &mut [u8], &[u8]) -> Result<T, RcsError>,
) -> Result<T, Error> {
    let (head, body, tag) = received_parts(packet);
    step(session.rx_channel_mut(), head, body, tag).map_err(|_| {
        session.abort();
        CryptoFailure::Authentication.into()
    })
}

/// After a received packet authenticated and was decrypted: counts it and returns its
/// plaintext.
pub(crate) fn received<'p, S: BatchSession + ?Sized>(
    session: &mut S,
    packet: &'p mut [u8],
) -> &'p [u8] {
    session.commit_open();
    received_parts(packet).1
}

/// A received packet split into header, ciphertext and tag (short packets split short).
fn received_parts(packet: &mut [u8]) -> (&mut [u8], &mut [u8], &mut [u8]) {
    let body_len = packet.len().saturating_sub(HEADER_LEN + TAG_LEN);
    let (head, rest) = packet.split_at_mut(HEADER_LEN.min(packet.len()));
    let (body, tag) = rest.split_at_mut(body_len.min(rest.len()));
    (head, body, tag)
}
