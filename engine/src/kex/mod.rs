//! The DKTP handshake (FACTS §6) as sans-IO state machines.
//!
//! ```text
//!  client                                                      server
//!  client::start ── 0x01 connect request (seq 0) ─────────▶ server::AwaitConnectRequest
//!  client::AwaitConnectResponse ◀── 0x02 connect response (seq 0) ──┘
//!        └── 0x05 exchange request (seq 1) ─────────────▶ server::AwaitExchangeRequest
//!  client::AwaitExchangeResponse ◀── 0x06 exchange response (seq 1) ─┘  (server derives keys)
//!        └── [pending] 0x07 establish request (seq 2) ▶── server::AwaitEstablishRequest
//!  client::AwaitEstablishResponse ◀── [pending] 0x08 establish response (seq 2)
//!        └── Session                                       Session ──┘
//! ```
//!
//! Each awaited message has its own type, consumed by `handle(self, packet, now, rng)`:
//! the input is one whole received packet, the current time (Unix seconds, UTC) and a
//! random source; the output is the next state and the packet to send ([`Flight`]), or a
//! [`Commit`] when the pre-shared secrets advanced: the caller must persist
//! [`Commit::record`] *before* sending [`Commit::packet`], because that packet lets the peer
//! complete the handshake and advance its copies. The last step yields a
//! [`Session`](crate::session::Session) by value.
//!
//! **Hand-over.** This layer sits below the session and never names it: the last step of
//! each side checks everything and hands over an `Established` (role, keys, settings,
//! channels, record of the secrets). Its public `handle`, which turns that into the
//! [`Session`](crate::session::Session) (snow's `into_transport_mode`), is implemented in
//! the session layer, `session/handover.rs`.
//!
//! On any error the handshake is over. [`error_reply`] gives the plaintext error packet the
//! reference would send for it (none for a peer's own error packet or a local failure).
//!
//! Checks follow the reference's order (FACTS §6): header (time 0x13, exact length 0x16,
//! sequence 0x14, state/flag 0x0D), then the signature (0x02), then the signed hash (0x19,
//! 0x0A at the exchange response). We are stricter where the reference never sends the
//! offending packet: the flag is compared
//! ([`FlagCheck::Strict`](crate::packet::FlagCheck::Strict)) and the server refuses a
//! key id it holds no key for (0x0F).
//!
//! [`client`] and [`server`] share their common steps through `kex/common.rs` (receive,
//! check and sign the hashes, seal and open the establish packets) and never import each
//! other. What the handshake takes lives below it and is re-exported here under its old
//! paths: [`Settings`] ([`crate::settings`]), [`PeerKeys`] ([`crate::peer_key`]),
//! [`PssUpdate`] ([`crate::key_schedule`]), [`Peer`], [`PeerLookup`] and [`SinglePeer`]
//! ([`crate::peers`]).

pub mod client;
mod common;
mod gate;
pub mod server;
#[cfg(test)]
pub(crate) mod tests;

pub use crate::key_schedule::PssUpdate;
pub use crate::peer_key::PeerKeys;
pub use crate::peers::{Peer, PeerLookup, SinglePeer};
pub use crate::settings::{
    EphemeralKeys, HANDSHAKE_TIMEOUT_FAST, HANDSHAKE_TIMEOUT_SLOW, IDLE_TIMEOUT, Settings,
};
pub use gate::ReplayGate;

use crate::error::{Error, Malformed};
use crate::generation::Generations;
use crate::packet::{self, PLAIN_ERROR_LEN};
use crate::rcs::Rcs512Channel;

/// Which end of the handshake a session was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sent the connect request.
    Client,
    /// Answered it.
    Server,
}

/// A step's output: the next state and the packet to send.
#[derive(Debug)]
pub struct Flight<S> {
    /// The state that awaits the peer's answer.
    pub next: S,
    /// The packet to send (header included).
    pub packet: Vec<u8>,
}

/// A step that advanced the pre-shared secrets: persist [`record`](Self::record) (the
/// advanced secrets as the pending generation, [`crate::generation`]), then send
/// [`packet`](Self::packet).
#[derive(Debug)]
pub struct Commit<S> {
    /// The next state (or the established session).
    pub next: S,
    /// The advanced pre-shared secrets.
    pub pss: PssUpdate,
    /// The peer record to store before the packet leaves: the advanced secrets pending.
    pub record: Generations,
    /// The packet to send once they are stored.
    pub packet: Vec<u8>,
}

impl<S> Commit<S> {
    /// The same commit with its next state converted.
    pub(crate) fn map<T>(self, f: impl FnOnce(S) -> T) -> Commit<T> {
        Commit {
            next: f(self.next),
            pss: self.pss,
            record: self.record,
            packet: self.packet,
        }
    }
}

/// What a completed handshake hands over to the session layer, which makes the
/// [`Session`](crate::session::Session) of it: both sides end at sequence 3 (FACTS §6).
pub(crate) struct Established {
    pub role: Role,
    /// The keys, holding the secrets of the record's newest generation.
    pub keys: PeerKeys,
    pub settings: Settings,
    pub tx: Rcs512Channel,
    pub rx: Rcs512Channel,
    /// The record of the secrets the handshake left: the client's advanced generation
    /// confirmed (the server's response proved it); on the server, pending, until the
    /// client's first packet of the session proves it.
    pub record: Generations,
}

/// The plaintext error packet the reference sends when its handshake fails with `error`
/// (FACTS §4), or `None` where it sends nothing: the peer's own error packet, a packet too
/// short to hold a header (the reference drops the connection), and local misuse.
pub fn error_reply(error: &Error, now: u64) -> Option<[u8; PLAIN_ERROR_LEN]> {
    match error {
        Error::PeerReported { .. }
        | Error::Misuse(_)
        | Error::Malformed(Malformed::Truncated { .. }) => None,
        e => Some(packet::encode_plain_error(e.wire_code(), now)),
    }
}
