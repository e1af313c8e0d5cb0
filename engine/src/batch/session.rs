//! [`DataSession`]: the data-phase state of one established session (FACTS §7) and its
//! sequential (scalar) seal and open, which the batch engine reproduces exactly.

use core::fmt;

use crate::config::MAX_DATA_PAYLOAD;
use crate::error::{CryptoFailure, Error, Misuse};
use crate::key_schedule::ChannelKey;
use crate::packet::{
    self, Flag, HEADER_LEN, Header, SEALED_ERROR_LEN, SEALED_ERROR_MSGLEN, TAG_LEN,
};
use crate::rcs::{Rcs512Channel, RcsError};
use crate::{Backend, BackendError};

/// Length of the AD trailer `le32(len(ad))` the RCS MAC absorbs after the 21-byte header.
pub(super) const AD_LEN_BYTES: [u8; 4] = (HEADER_LEN as u32).to_le_bytes();

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
    /// ratchet request or response. Nothing was checked or changed: pass it to the
    /// session's control handling before anything else of this session is opened or sealed,
    /// since a ratchet re-keys a channel.
    Control(&'p [u8]),
}

/// What a received packet is, once its header passed the data-phase checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum OpenKind {
    /// 0x04: a data message.
    Data,
    /// 0x12 with a sealed one-byte code: the peer's orderly close or error report.
    Close,
}

/// A checked received packet, ready for RCS authentication.
#[derive(Clone, Copy, Debug)]
pub(super) struct OpenPlan {
    pub(super) kind: OpenKind,
    /// The sequence number it carries (`rxseq + 1`); becomes `rxseq` on success.
    pub(super) seq: u64,
    /// Ciphertext length (message length minus the tag).
    pub(super) body_len: usize,
}

/// The data-phase state of one established DKTP session: the transmit and receive RCS-512
/// channels and their sequence numbers (FACTS §7).
///
/// This is what the handshake hands over to the data phase. [`seal`](Self::seal) and
/// [`open`](Self::open) are the sequential path, one packet at a time;
/// [`Batch`](super::Batch) runs the same steps for many sessions at once and leaves every
/// session exactly as these calls would.
///
/// Any failure to open a received packet ends the session ([`Status::Failed`]); sealing
/// errors are the caller's (empty or oversized message) and change nothing.
pub struct DataSession {
    pub(super) tx: Rcs512Channel,
    pub(super) rx: Rcs512Channel,
    pub(super) txseq: u64,
    pub(super) rxseq: u64,
    pub(super) status: Status,
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

    /// Whether packets still flow.
    pub fn is_open(&self) -> bool {
        self.status == Status::Open
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
    /// [`MAX_DATA_PAYLOAD`], or the sequence is exhausted. Nothing changes.
    pub fn seal(&mut self, payload: &[u8], now: u64, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        out.resize(start + sealed_len(payload.len()), 0);
        let r = match out.get_mut(start..) {
            Some(slot) => {
                let body = slot
                    .get_mut(HEADER_LEN..HEADER_LEN + payload.len())
                    .unwrap_or_default();
                body.copy_from_slice(payload);
                self.seal_slot(payload.len(), now, slot)
            }
            None => Err(Misuse::BufferTooSmall { needed: 0, got: 0 }.into()),
        };
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// Opens one received packet (header included, exactly as framed by
    /// [`packet::frame`]) in place.
    ///
    /// Checks in the reference's order (FACTS §7): sequence == rxseq + 1, established,
    /// time within 60 s, msglen > 64, then the RCS tag (constant time) before anything is
    /// decrypted; `rxseq` advances only on success. A sealed error packet (0x12) is opened
    /// the same way and reported as [`Error::PeerReported`] with its code.
    ///
    /// # Errors
    /// Any failure ends the session ([`Status::Failed`], or [`Status::Closed`] for the
    /// peer's close); nothing of the packet is released.
    pub fn open<'p>(&mut self, packet: &'p mut [u8], now: u64) -> Result<Received<'p>, Error> {
        let Some(plan) = self.check_open(packet, now)? else {
            return Ok(Received::Control(packet));
        };
        let (header, rest) = packet.split_at_mut(HEADER_LEN.min(packet.len()));
        let (body, tag) = rest.split_at_mut(plan.body_len.min(rest.len()));
        if let Err(e) = self.rx.open_in_place(header, body, tag) {
            self.status = Status::Failed;
            return Err(match e {
                RcsError::ChannelDead => Misuse::NotEstablished.into(),
                _ => CryptoFailure::Authentication.into(),
            });
        }
        self.opened(plan, body).map(Received::Data)
    }

    /// Seals the `len`-byte payload that already sits at `slot[HEADER_LEN..]`; `slot` is
    /// exactly [`sealed_len`]`(len)` bytes. Writes the header and the tag around it.
    pub(super) fn seal_slot(&mut self, len: usize, now: u64, slot: &mut [u8]) -> Result<(), Error> {
        let seq = self.check_seal(len)?;
        if slot.len() != sealed_len(len) {
            return Err(Misuse::BufferTooSmall {
                needed: sealed_len(len),
                got: slot.len(),
            }
            .into());
        }
        let (header, rest) = slot.split_at_mut(HEADER_LEN);
        header.copy_from_slice(&data_header(len, seq, now));
        let (body, tag) = rest.split_at_mut(len);
        self.tx
            .seal_in_place(header, body, tag)
            .map_err(|_| Error::Misuse(Misuse::NotEstablished))?;
        self.txseq = seq;
        Ok(())
    }

    /// The checks before sealing `len` bytes; returns the packet's sequence number.
    pub(super) fn check_seal(&self, len: usize) -> Result<u64, Error> {
        if !self.is_open() || self.tx.is_dead() {
            return Err(Misuse::NotEstablished.into());
        }
        check_payload(len)?;
        self.txseq
            .checked_add(1)
            .ok_or(Error::Misuse(Misuse::SequenceExhausted))
    }

    /// The checks before authenticating a received packet, in the reference's order.
    /// `Ok(None)`: a control packet, left alone. Any error ends the session.
    pub(super) fn check_open(&mut self, packet: &[u8], now: u64) -> Result<Option<OpenPlan>, Error> {
        if !self.is_open() || self.rx.is_dead() {
            return Err(Misuse::NotEstablished.into());
        }
        let r = self.plan_open(packet, now);
        if r.is_err() {
            self.status = Status::Failed;
        }
        r
    }

    fn plan_open(&self, packet: &[u8], now: u64) -> Result<Option<OpenPlan>, Error> {
        let header = Header::decode(packet)?;
        let kind = match Flag::from_u8(header.flag) {
            Some(Flag::EncryptedMessage) => OpenKind::Data,
            Some(Flag::ErrorCondition) => OpenKind::Close,
            _ => return Ok(None),
        };
        let (header, message) = packet::split_packet(packet)?;
        packet::check_data_header(&header, self.rxseq, true, now)?;
        if kind == OpenKind::Close {
            // After establishment only the sealed form (msglen 65, 86 bytes) is accepted.
            if header.msglen != SEALED_ERROR_MSGLEN || packet.len() != SEALED_ERROR_LEN {
                packet::parse_error_packet(packet, true)?;
            }
        }
        Ok(Some(OpenPlan {
            kind,
            seq: header.sequence,
            body_len: message.len().saturating_sub(TAG_LEN),
        }))
    }

    /// After a packet authenticated and its body was decrypted: advance `rxseq`; a close
    /// ends the session with the peer's code.
    pub(super) fn opened<'b>(&mut self, plan: OpenPlan, body: &'b [u8]) -> Result<&'b [u8], Error> {
        self.rxseq = plan.seq;
        match plan.kind {
            OpenKind::Data => Ok(body),
            OpenKind::Close => {
                self.status = Status::Closed;
                Err(Error::PeerReported {
                    code: body.first().copied().unwrap_or_default(),
                })
            }
        }
    }
}

/// Bytes of the packet that carries a `len`-byte message: header, ciphertext, tag.
pub const fn sealed_len(len: usize) -> usize {
    HEADER_LEN + len + TAG_LEN
}

/// A message DKTP can seal: 1 to [`MAX_DATA_PAYLOAD`] bytes.
pub(super) fn check_payload(len: usize) -> Result<(), Error> {
    if len == 0 {
        return Err(Misuse::EmptyMessage.into());
    }
    if len > MAX_DATA_PAYLOAD {
        return Err(Misuse::MessageTooLong {
            len,
            max: MAX_DATA_PAYLOAD,
        }
        .into());
    }
    Ok(())
}

/// The header of a data packet carrying `len` message bytes.
pub(super) fn data_header(len: usize, seq: u64, now: u64) -> [u8; HEADER_LEN] {
    // `len <= MAX_DATA_PAYLOAD` (checked), so the message length fits in u32.
    let msglen = u32::try_from(len + TAG_LEN).unwrap_or(u32::MAX);
    Header::new(Flag::EncryptedMessage, msglen, seq, now).encode()
}
