//! Errors: the DKTP wire error codes ([`ErrorCode`], FACTS §4) and the engine's own
//! [`Error`], grouped by who is to blame. Every engine error maps to the wire code the
//! reference would put in its error packet ([`Error::wire_code`]).
//!
//! A post-quantum primitive's failure becomes an [`Error`] in one place, `Error::pq`, by
//! the step that failed (`PqStep`: this side's own work, or the peer's key, ciphertext or
//! signature). A failed seal has one error too, given where every packet is sealed
//! (`packet::seal_packet`).

use core::fmt;

use crate::flag::Flag;
use crate::pq::PqError;

/// Declares [`ErrorCode`] from one table: each code's name, wire byte and description,
/// written once.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $byte:literal, $text:literal;)*) => {
        /// The 29 DKTP error codes, 0x00–0x1C, as carried in the last byte of an error
        /// packet (FACTS §4). The names follow the reference's meanings.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum ErrorCode {
            $($(#[$doc])* $name = $byte,)*
        }

        impl ErrorCode {
            /// Every code, in wire order.
            pub const ALL: [ErrorCode; [$($byte),*].len()] = [$(Self::$name),*];

            /// A short lowercase description (ours, not the reference's).
            pub const fn description(self) -> &'static str {
                match self {
                    $(Self::$name => $text,)*
                }
            }
        }
    };
}

error_codes! {
    /// 0x00: no error.
    None = 0x00, "no error";
    /// 0x01: a listener failed to accept a connection.
    Accept = 0x01, "accept failure";
    /// 0x02: the symmetric cipher's tag, or a signature, did not verify.
    Authentication = 0x02, "authentication failure";
    /// 0x03: the channel is down (not established, or already failed).
    ChannelDown = 0x03, "channel down";
    /// 0x04: the connection failed.
    Connection = 0x04, "connection failure";
    /// 0x05: connecting to the remote host failed.
    Connect = 0x05, "connect failure";
    /// 0x06: KEM decapsulation failed.
    Decapsulation = 0x06, "decapsulation failure";
    /// 0x07: decryption failed.
    Decryption = 0x07, "decryption failure";
    /// 0x08: the establish step of the key exchange failed.
    Establish = 0x08, "establish failure";
    /// 0x09: the exchange step of the key exchange failed.
    Exchange = 0x09, "exchange failure";
    /// 0x0A: a transcript hash did not match (exchange response).
    HashInvalid = 0x0A, "hash invalid";
    /// 0x0B: the server has too many hosts connected.
    HostsExceeded = 0x0B, "hosts exceeded";
    /// 0x0C: an argument was invalid.
    InvalidInput = 0x0C, "invalid input";
    /// 0x0D: the packet (flag) was not expected in this state.
    InvalidRequest = 0x0D, "invalid request";
    /// 0x0E: a peer key has expired.
    KeyExpired = 0x0E, "key expired";
    /// 0x0F: the key identity is not recognized.
    KeyUnrecognized = 0x0F, "key unrecognized";
    /// 0x10: the keychain failed.
    Keychain = 0x10, "keychain failure";
    /// 0x11: the listener failed.
    Listener = 0x11, "listener failure";
    /// 0x12: a memory allocation failed.
    Memory = 0x12, "memory failure";
    /// 0x13: the packet's time stamp is outside the validity window.
    MessageTimeInvalid = 0x13, "message time invalid";
    /// 0x14: the packet arrived out of sequence.
    PacketUnsequenced = 0x14, "packet unsequenced";
    /// 0x15: the random generator failed.
    Random = 0x15, "random generator failure";
    /// 0x16: receiving failed (including a packet whose length is wrong).
    Receive = 0x16, "receive failure";
    /// 0x17: transmitting failed.
    Transmit = 0x17, "transmit failure";
    /// 0x18: the protocol (configuration string) is unknown.
    UnknownProtocol = 0x18, "unknown protocol";
    /// 0x19: verification (of a transcript hash) failed.
    Verify = 0x19, "verify failure";
    /// 0x1A: the peer keys do not belong together.
    PeerKeyMismatch = 0x1A, "peer key mismatch";
    /// 0x1B: the peer asked to disconnect (a normal close).
    DisconnectRequest = 0x1B, "disconnect request";
    /// 0x1C: a general failure.
    General = 0x1C, "general failure";
}

impl ErrorCode {
    /// The code for a wire byte; `None` for bytes above 0x1C.
    pub const fn from_u8(byte: u8) -> Option<ErrorCode> {
        let i = byte as usize;
        if i < Self::ALL.len() {
            Some(Self::ALL[i])
        } else {
            None
        }
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The reference's own wording for this code, where the vectors record it
    /// (`dktp_error_text` in `dktp_packets.json`); `None` for codes the vectors do not show.
    pub const fn reference_text(self) -> Option<&'static str> {
        match self {
            Self::None => Some("No error was detected"),
            Self::Authentication => Some("The symmetric cipher had an authentication failure"),
            Self::ChannelDown => Some("The communications channel has failed"),
            Self::InvalidRequest => Some("The packet flag was unexpected"),
            Self::KeyUnrecognized => Some("The key identity is unrecognized"),
            Self::MessageTimeInvalid => Some("The packet has valid time expired"),
            Self::PacketUnsequenced => Some("The packet was received out of sequence"),
            Self::Receive => Some("The receiver failed at the network layer"),
            _ => None,
        }
    }
}

impl TryFrom<u8> for ErrorCode {
    type Error = u8;

    /// Fails with the byte itself when it is above 0x1C.
    fn try_from(byte: u8) -> Result<Self, u8> {
        Self::from_u8(byte).ok_or(byte)
    }
}

impl From<ErrorCode> for u8 {
    fn from(code: ErrorCode) -> u8 {
        code.as_u8()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02x})", self.description(), self.as_u8())
    }
}

/// Everything the engine can fail with, grouped by who is to blame.
///
/// Any error during a session is fatal for that session (FACTS §2, §7): the RCS state has
/// already moved, so the only recovery is a new handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that cannot be a DKTP packet at all.
    Malformed(Malformed),
    /// A well-formed packet that breaks the protocol where it arrived.
    PeerMisbehaved(PeerMisbehaved),
    /// The peer runs a configuration or keys this side cannot work with.
    PeerIncompatible(PeerIncompatible),
    /// The caller used the engine wrongly.
    Misuse(Misuse),
    /// A cryptographic check failed or a primitive could not run.
    Crypto(CryptoFailure),
    /// The peer sent an error packet carrying this code byte (possibly above 0x1C).
    PeerReported {
        /// The code byte as received.
        code: u8,
    },
    /// This side refuses more handshakes for now (its replay memory is full of live
    /// entries, or its admission check said no: [`Listener::set_admission`]); the peer may
    /// retry later.
    ///
    /// [`Listener::set_admission`]: crate::listener::Listener::set_admission
    Overloaded,
    /// A deadline passed: the handshake did not complete in time, or the session saw no
    /// traffic for its idle timeout.
    TimedOut {
        /// Whether it was the handshake's deadline (else the idle timeout).
        handshake: bool,
    },
}

impl Error {
    /// The DKTP code this error is reported with on the wire.
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            Self::Malformed(e) => e.wire_code(),
            Self::PeerMisbehaved(e) => e.wire_code(),
            Self::PeerIncompatible(e) => e.wire_code(),
            Self::Misuse(e) => e.wire_code(),
            Self::Crypto(e) => e.wire_code(),
            Self::PeerReported { code } => ErrorCode::from_u8(*code).unwrap_or(ErrorCode::General),
            Self::Overloaded => ErrorCode::HostsExceeded,
            Self::TimedOut { handshake: true } => ErrorCode::Connection,
            Self::TimedOut { handshake: false } => ErrorCode::DisconnectRequest,
        }
    }

    /// Whether this is the peer's orderly close (an error packet carrying 0x1B).
    pub fn is_disconnect_request(&self) -> bool {
        matches!(self, Self::PeerReported { code } if *code == ErrorCode::DisconnectRequest.as_u8())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed packet: {e}"),
            Self::PeerMisbehaved(e) => write!(f, "peer broke the protocol: {e}"),
            Self::PeerIncompatible(e) => write!(f, "peer is incompatible: {e}"),
            Self::Misuse(e) => write!(f, "engine misused: {e}"),
            Self::Crypto(e) => write!(f, "cryptographic failure: {e}"),
            Self::PeerReported { code } => match ErrorCode::from_u8(*code) {
                Some(ErrorCode::DisconnectRequest) => {
                    f.write_str("the peer closed the session; reconnect to continue")
                }
                Some(c) => write!(
                    f,
                    "the peer ended the session reporting {c}; check its logs, then reconnect"
                ),
                None => write!(
                    f,
                    "the peer ended the session with unknown error code 0x{code:02x}; \
                     check its version and logs, then reconnect"
                ),
            },
            Self::Overloaded => f.write_str(
                "too many handshakes for now (the server's handshake rate or the replay \
                 window's capacity); retry later",
            ),
            Self::TimedOut { handshake: true } => f.write_str(
                "the handshake did not complete before its deadline (the peer stalled or is too \
                 slow for the configured timeout); connect again",
            ),
            Self::TimedOut { handshake: false } => {
                f.write_str("the session was idle for its idle timeout and was closed")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Bytes that cannot be a DKTP packet at all.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// Fewer bytes than the structure needs.
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// A flag byte that is not one of DKTP's packet types.
    UnknownFlag(u8),
    /// The header declares a message longer than the receiver accepts here.
    TooLong {
        /// The declared message length.
        msglen: u32,
        /// The largest length accepted at this point.
        max: u32,
    },
    /// The packet's length disagrees with its header.
    LengthMismatch {
        /// Message length in the header.
        declared: u32,
        /// Message bytes actually present.
        actual: usize,
    },
    /// An error packet whose length fits none of the forms the reference sends.
    ErrorPacketShape {
        /// Message length in the header.
        msglen: u32,
        /// Bytes received for the packet, header included.
        received: usize,
    },
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, got } => write!(
                f,
                "{got} bytes where {needed} are needed; the sender must write each packet whole"
            ),
            Self::UnknownFlag(b) => write!(
                f,
                "unknown packet flag 0x{b:02x}; the peer does not speak DKTP 1.0a"
            ),
            Self::TooLong { msglen, max } => write!(
                f,
                "declared message length {msglen} exceeds the {max} accepted here; \
                 the connection was dropped without reading it"
            ),
            Self::LengthMismatch { declared, actual } => write!(
                f,
                "header declares {declared} message bytes but {actual} are present; \
                 the stream is out of step and must be closed"
            ),
            Self::ErrorPacketShape { msglen, received } => write!(
                f,
                "error packet with message length {msglen} and {received} bytes fits no known \
                 form; treat the peer as gone"
            ),
        }
    }
}

impl Malformed {
    /// The DKTP code for this error.
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            Self::UnknownFlag(_) => ErrorCode::InvalidRequest,
            Self::Truncated { .. }
            | Self::TooLong { .. }
            | Self::LengthMismatch { .. }
            | Self::ErrorPacketShape { .. } => ErrorCode::Receive,
        }
    }
}

/// A well-formed packet that breaks the protocol where it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMisbehaved {
    /// The sequence number is not the next one (replay, loss or reordering).
    Unsequenced {
        /// The sequence number the receiver expected.
        expected: u64,
        /// The sequence number in the header.
        received: u64,
    },
    /// The time stamp is more than 60 s away from the local clock.
    StaleTime {
        /// The packet's time stamp.
        packet_time: u64,
        /// The local clock.
        local_time: u64,
    },
    /// A handshake packet whose message length is not the exact one expected.
    UnexpectedLength {
        /// Length the configuration prescribes.
        expected: u32,
        /// Length in the header.
        received: u32,
    },
    /// A data packet too short to carry any ciphertext beside its tag.
    TooShort {
        /// Length in the header.
        msglen: u32,
    },
    /// A packet type that is not the one awaited.
    UnexpectedFlag {
        /// The packet type awaited.
        expected: Flag,
        /// The flag byte received.
        received: u8,
    },
    /// A packet arrived while the receiver was not in a state that awaits one.
    UnexpectedPacket {
        /// The flag byte received.
        received: u8,
    },
    /// A plaintext error packet arrived after keys were established, where the reference
    /// only sends encrypted ones; it cannot be authenticated.
    UnauthenticatedError {
        /// The code byte it carried.
        code: u8,
    },
    /// A connect request identical to one already accepted within the time window.
    Replayed,
}

impl fmt::Display for PeerMisbehaved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsequenced { expected, received } => write!(
                f,
                "packet sequence {received} where {expected} was expected (replayed, lost or \
                 reordered); the session must be re-established"
            ),
            Self::StaleTime {
                packet_time,
                local_time,
            } => write!(
                f,
                "packet time {packet_time} is more than 60 s from local time {local_time}; \
                 check both clocks (UTC) and reconnect"
            ),
            Self::UnexpectedLength { expected, received } => write!(
                f,
                "handshake message of {received} bytes where this configuration has {expected}; \
                 check that both sides use the same configuration"
            ),
            Self::TooShort { msglen } => write!(
                f,
                "data packet of {msglen} bytes carries nothing beside its tag; \
                 the peer is faulty"
            ),
            Self::UnexpectedFlag { expected, received } => write!(
                f,
                "packet flag 0x{received:02x} where {expected:?} was awaited; \
                 the peers are out of step"
            ),
            Self::UnexpectedPacket { received } => write!(
                f,
                "packet with flag 0x{received:02x} arrived when none was awaited; \
                 the peers are out of step"
            ),
            Self::UnauthenticatedError { code } => write!(
                f,
                "unauthenticated error packet (code 0x{code:02x}) after establishment; \
                 ignore its content and treat the session as broken"
            ),
            Self::Replayed => f.write_str(
                "connect request replayed within the 60 s window; a client must sign a fresh one",
            ),
        }
    }
}

impl PeerMisbehaved {
    /// The DKTP code for this error.
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            Self::Unsequenced { .. } | Self::Replayed => ErrorCode::PacketUnsequenced,
            Self::StaleTime { .. } => ErrorCode::MessageTimeInvalid,
            Self::UnexpectedLength { .. } | Self::TooShort { .. } => ErrorCode::Receive,
            Self::UnexpectedFlag { .. }
            | Self::UnexpectedPacket { .. }
            | Self::UnauthenticatedError { .. } => ErrorCode::InvalidRequest,
        }
    }
}

/// The peer runs a configuration or keys this side cannot work with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerIncompatible {
    /// The peer's configuration string differs from ours.
    UnknownProtocol,
    /// A peer key has passed its expiration time.
    KeyExpired,
    /// The key identity is not one this side knows.
    KeyUnrecognized,
    /// The local and remote peer keys are not linked (`peerid != keyid`).
    PeerKeyMismatch,
}

impl fmt::Display for PeerIncompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownProtocol => {
                "the peer's configuration string differs; both sides need the same parameter set"
            }
            Self::KeyExpired => "a peer key has expired; generate and exchange new peer keys",
            Self::KeyUnrecognized => {
                "the key identity is not recognized; check which peer key the peer holds"
            }
            Self::PeerKeyMismatch => {
                "the local key's peer id does not match the remote key's id; \
                 load the remote key this local key was paired with"
            }
        })
    }
}

impl PeerIncompatible {
    /// The DKTP code for this error.
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            Self::UnknownProtocol => ErrorCode::UnknownProtocol,
            Self::KeyExpired => ErrorCode::KeyExpired,
            Self::KeyUnrecognized => ErrorCode::KeyUnrecognized,
            Self::PeerKeyMismatch => ErrorCode::PeerKeyMismatch,
        }
    }
}

/// The caller used the engine wrongly.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misuse {
    /// The session is not established (or has already failed).
    NotEstablished,
    /// An empty message was given to seal; DKTP refuses them.
    EmptyMessage,
    /// A message longer than a data packet can carry.
    MessageTooLong {
        /// The message length given.
        len: usize,
        /// The most a packet accepts.
        max: usize,
    },
    /// An output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
    /// The 64-bit sequence number would wrap.
    SequenceExhausted,
    /// This side's asymmetric ratchet is still waiting for its response: no second ratchet
    /// and no data may be sent until it completes (FACTS §8).
    RatchetOutstanding,
    /// The configuration cannot ratchet: its request exceeds a data packet (McEliece,
    /// FACTS §11.2).
    RatchetUnavailable,
    /// The call does not fit the connection's state (e.g. a server connection awaiting its
    /// connect request is fed through the wrong entry point).
    WrongState,
    /// A setting was refused (e.g. an empty ratchet domain string).
    InvalidSetting,
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotEstablished => {
                f.write_str("the channel is not established; finish the handshake first")
            }
            Self::EmptyMessage => {
                f.write_str("empty messages cannot be sent; send at least one byte")
            }
            Self::MessageTooLong { len, max } => {
                write!(f, "message of {len} bytes exceeds {max}; split it")
            }
            Self::BufferTooSmall { needed, got } => {
                write!(f, "output buffer of {got} bytes where {needed} are needed")
            }
            Self::SequenceExhausted => {
                f.write_str("the 64-bit packet sequence is exhausted; open a new session")
            }
            Self::RatchetOutstanding => f.write_str(
                "an asymmetric ratchet is outstanding; wait for its response before sending",
            ),
            Self::RatchetUnavailable => f.write_str(
                "this configuration cannot ratchet (its request exceeds 64 KiB); reconnect \
                 to get fresh keys instead",
            ),
            Self::WrongState => {
                f.write_str("this call does not fit the connection's current state")
            }
            Self::InvalidSetting => f.write_str("a setting was refused; see the setter's docs"),
        }
    }
}

impl Misuse {
    /// The DKTP code for this error.
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            Self::NotEstablished => ErrorCode::ChannelDown,
            Self::EmptyMessage | Self::MessageTooLong { .. } | Self::BufferTooSmall { .. } => {
                ErrorCode::InvalidInput
            }
            Self::SequenceExhausted => ErrorCode::PacketUnsequenced,
            Self::RatchetOutstanding | Self::RatchetUnavailable | Self::WrongState => {
                ErrorCode::InvalidRequest
            }
            Self::InvalidSetting => ErrorCode::InvalidInput,
        }
    }
}

/// A cryptographic check failed or a primitive could not run. Tag failures carry no
/// detail on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoFailure {
    /// The RCS tag did not verify; the channel state has moved and is dead.
    Authentication,
    /// A signature did not verify against the peer's verification key.
    Signature,
    /// A recomputed transcript or message hash differs from the signed one.
    HashMismatch,
    /// The exchange response's hash differs from the signed one (the reference reports
    /// this step with its own code).
    ExchangeHashMismatch,
    /// KEM decapsulation failed.
    Decapsulation,
    /// The random source failed.
    Random,
    /// An establish packet did not authenticate under the derived channel key: the peers
    /// hold different pre-shared secrets or KEM secrets (FACTS §5).
    Decryption,
    /// An establish packet authenticated but does not carry the transcript hash.
    TranscriptMismatch,
    /// The peer's ephemeral KEM key was refused by encapsulation.
    Encapsulation,
    /// The peer sent an all-zero Classic McEliece public key (connect response, exchange
    /// request or ratchet request): what the reference's key generation sometimes returns
    /// when it fails (FACTS §11.5). Refused before encapsulating; the pre-shared secrets
    /// have not moved, so connecting again is the remedy.
    ///
    /// Wire code 0x06 (decapsulation), not the 0x09 of [`Self::Encapsulation`]: the fault
    /// is the peer's broken KEM key pair, and 0x06 is what the reference itself answers
    /// for this defect's symptom (it fails to decapsulate the ciphertext sent to that
    /// key), so a reference peer reports and logs the same code either way.
    ZeroPublicKey,
    /// This build cannot run the configuration's algorithm.
    Unsupported,
    /// A local primitive failed (signing, key generation or cipher keying).
    Primitive,
}

impl fmt::Display for CryptoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Authentication => {
                "packet authentication failed; the session is dead, reconnect"
            }
            Self::Signature => {
                "the peer's signature did not verify; check that the right remote peer key is loaded"
            }
            Self::HashMismatch | Self::ExchangeHashMismatch => {
                "a signed hash does not match the message; the packet was altered or the peer is faulty"
            }
            Self::Decapsulation => "KEM decapsulation failed; the ciphertext is invalid",
            Self::Random => "the random source failed; retry once it is available",
            Self::Decryption => {
                "the establish packet did not authenticate; the peers' pre-shared secrets \
                 differ (a stale peer key): re-provision the pair"
            }
            Self::TranscriptMismatch => {
                "the establish packet does not carry the transcript hash; the handshake was altered"
            }
            Self::Encapsulation => "the peer's ephemeral KEM key is malformed; the peer is faulty",
            Self::ZeroPublicKey => {
                "the peer sent an all-zero McEliece public key, a known defect of the \
                 reference's key generation; connect again"
            }
            Self::Unsupported => {
                "this build cannot run the configuration's algorithms; use another configuration"
            }
            Self::Primitive => "a local cryptographic primitive failed; retry, report if it repeats",
        })
    }
}

impl CryptoFailure {
    /// The DKTP code for this error (FACTS §6, §9 item 9).
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            Self::Authentication | Self::Signature => ErrorCode::Authentication,
            Self::HashMismatch => ErrorCode::Verify,
            Self::ExchangeHashMismatch => ErrorCode::HashInvalid,
            Self::Decapsulation => ErrorCode::Decapsulation,
            Self::Random => ErrorCode::Random,
            Self::Decryption => ErrorCode::Decryption,
            Self::TranscriptMismatch => ErrorCode::Establish,
            Self::Encapsulation => ErrorCode::Exchange,
            Self::ZeroPublicKey => ErrorCode::Decapsulation,
            Self::Unsupported => ErrorCode::UnknownProtocol,
            Self::Primitive => ErrorCode::General,
        }
    }
}

/// Which use of a post-quantum primitive failed. The same [`PqError`] is this side's fault
/// or the peer's depending on the step, so every failure is mapped here, by
/// [`Error::pq`], and nowhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PqStep {
    /// This side's own key generation or signing (its primitives and coins).
    Local,
    /// Encapsulation to the peer's ephemeral key: the key is at fault unless coins or the
    /// build are. An all-zero McEliece key (FACTS §11.5) has its own error and code (0x06).
    Encapsulate,
    /// Decapsulation of the peer's ciphertext.
    Decapsulate,
    /// Verification of the peer's signature: any failure is 0x02.
    Verify,
}

impl Error {
    /// The engine's error for a post-quantum primitive's failure at `step`.
    pub(crate) fn pq(step: PqStep, e: PqError) -> Error {
        let failure = match (step, e) {
            (PqStep::Verify, _) => CryptoFailure::Signature,
            (_, PqError::Unsupported { .. }) => CryptoFailure::Unsupported,
            (PqStep::Decapsulate, _) => CryptoFailure::Decapsulation,
            (PqStep::Encapsulate, PqError::Length { .. } | PqError::InvalidPublicKey) => {
                CryptoFailure::Encapsulation
            }
            (PqStep::Encapsulate, PqError::ZeroPublicKey) => CryptoFailure::ZeroPublicKey,
            (_, PqError::Random) => CryptoFailure::Random,
            _ => CryptoFailure::Primitive,
        };
        failure.into()
    }
}

/// `impl From<Source> for Target` for each `Source => Variant`, wrapping the source in
/// that variant of `Target`.
macro_rules! from_variants {
    ($target:ident { $($source:ident => $variant:ident),* $(,)? }) => {$(
        impl From<$source> for $target {
            fn from(e: $source) -> $target {
                $target::$variant(e)
            }
        }
    )*};
}
pub(crate) use from_variants;

from_variants!(Error {
    Malformed => Malformed,
    PeerMisbehaved => PeerMisbehaved,
    PeerIncompatible => PeerIncompatible,
    Misuse => Misuse,
    CryptoFailure => Crypto,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_stop_at_0x1c() {
        for b in 0u8..=255 {
            match ErrorCode::from_u8(b) {
                Some(c) => {
                    assert!(b <= 0x1c);
                    assert_eq!(c.as_u8(), b);
                }
                None => assert!(b > 0x1c),
            }
        }
        assert_eq!(
            ErrorCode::from_u8(0x13),
            Some(ErrorCode::MessageTimeInvalid)
        );
        assert_eq!(ErrorCode::from_u8(0x1b), Some(ErrorCode::DisconnectRequest));
        assert_eq!(ErrorCode::try_from(0x1d), Err(0x1d));
    }

    #[test]
    fn wire_codes_follow_the_reference() {
        let e: Error = PeerMisbehaved::Unsequenced {
            expected: 4,
            received: 5,
        }
        .into();
        assert_eq!(e.wire_code(), ErrorCode::PacketUnsequenced);
        assert_eq!(
            Error::from(CryptoFailure::Signature).wire_code(),
            ErrorCode::Authentication
        );
        assert_eq!(
            Error::from(CryptoFailure::HashMismatch).wire_code(),
            ErrorCode::Verify
        );
        assert_eq!(
            Error::from(Misuse::NotEstablished).wire_code(),
            ErrorCode::ChannelDown
        );
        assert_eq!(
            Error::PeerReported { code: 0x0f }.wire_code(),
            ErrorCode::KeyUnrecognized
        );
        assert_eq!(
            Error::PeerReported { code: 0xee }.wire_code(),
            ErrorCode::General
        );
        assert!(Error::PeerReported { code: 0x1b }.is_disconnect_request());
    }

    #[test]
    fn pq_failures_map_by_step() {
        let steps = [
            PqStep::Local,
            PqStep::Encapsulate,
            PqStep::Decapsulate,
            PqStep::Verify,
        ];
        let errors = [
            PqError::Random,
            PqError::Unsupported {
                alg: "x",
                reason: "y",
            },
            PqError::Length {
                what: "ek",
                expected: 1,
                actual: 2,
            },
            PqError::InvalidPublicKey,
            PqError::ZeroPublicKey,
            PqError::SigningFailed,
            PqError::BadSignature,
        ];
        // The wire code per error (rows, in the order above) and step (columns): this
        // side's coins and build, the peer's key, the peer's ciphertext, its signature.
        let codes: [[u8; 4]; 7] = [
            [0x15, 0x15, 0x06, 0x02],
            [0x18, 0x18, 0x18, 0x02],
            [0x1c, 0x09, 0x06, 0x02],
            [0x1c, 0x09, 0x06, 0x02],
            [0x1c, 0x06, 0x06, 0x02],
            [0x1c, 0x1c, 0x06, 0x02],
            [0x1c, 0x1c, 0x06, 0x02],
        ];
        for (e, row) in errors.iter().zip(codes) {
            for (&step, code) in steps.iter().zip(row) {
                let got = Error::pq(step, e.clone());
                assert_eq!(got.wire_code().as_u8(), code, "{step:?} {e:?}");
            }
        }
        // The all-zero McEliece key is its own failure, under the decapsulation code.
        assert_eq!(
            Error::pq(PqStep::Encapsulate, PqError::ZeroPublicKey),
            Error::Crypto(CryptoFailure::ZeroPublicKey)
        );
    }

    #[test]
    fn display_is_not_empty() {
        let e = Error::from(Malformed::Truncated { needed: 21, got: 3 });
        assert!(e.to_string().contains("21"));
        assert_eq!(ErrorCode::Receive.to_string(), "receive failure (0x16)");
    }
}
