//! The packet flag (FACTS §4): the first header byte, which names the packet's type.
//!
//! It sits below [`crate::error`] and [`crate::packet`]: an error names the flag it awaited
//! ([`PeerMisbehaved::UnexpectedFlag`](crate::error::PeerMisbehaved::UnexpectedFlag)), and a
//! packet carries one. Its public path is [`crate::packet::Flag`], where it is read from the
//! wire ([`Header::kind`](crate::packet::Header::kind)).

/// Packet types the reference sends (FACTS §4). Flags 0x10/0x11 (keep-alive, symmetric
/// ratchet) are never sent and are treated as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Flag {
    /// 0x01: client → server, opens the handshake.
    ConnectRequest = 0x01,
    /// 0x02: server → client, carries the server's ephemeral KEM key.
    ConnectResponse = 0x02,
    /// 0x03: terminate (defined; the reference never sends it, FACTS §9 item 10).
    Terminate = 0x03,
    /// 0x04: an application message on an established channel.
    EncryptedMessage = 0x04,
    /// 0x05: client → server KEM exchange.
    ExchangeRequest = 0x05,
    /// 0x06: server → client KEM exchange.
    ExchangeResponse = 0x06,
    /// 0x07: client → server, proves the channel keys.
    EstablishRequest = 0x07,
    /// 0x08: server → client, proves the channel keys.
    EstablishResponse = 0x08,
    /// 0x0E: asks the peer to re-key one direction.
    AsymmetricRatchetRequest = 0x0e,
    /// 0x0F: answers a ratchet request.
    AsymmetricRatchetResponse = 0x0f,
    /// 0x12: an error packet (handshake error or close).
    ErrorCondition = 0x12,
}

impl Flag {
    /// The flag for a wire byte; `None` for bytes DKTP does not send.
    pub const fn from_u8(byte: u8) -> Option<Flag> {
        Some(match byte {
            0x01 => Self::ConnectRequest,
            0x02 => Self::ConnectResponse,
            0x03 => Self::Terminate,
            0x04 => Self::EncryptedMessage,
            0x05 => Self::ExchangeRequest,
            0x06 => Self::ExchangeResponse,
            0x07 => Self::EstablishRequest,
            0x08 => Self::EstablishResponse,
            0x0e => Self::AsymmetricRatchetRequest,
            0x0f => Self::AsymmetricRatchetResponse,
            0x12 => Self::ErrorCondition,
            _ => return None,
        })
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

impl From<Flag> for u8 {
    fn from(flag: Flag) -> u8 {
        flag.as_u8()
    }
}
