//! Generations of the pre-shared secrets, and the record a peer keeps of them, so that a
//! lost message or a killed process never leaves the two sides of a pair on different
//! secrets (FACTS §5: a stale secret on either side makes every later handshake fail).
//!
//! Every successful handshake, and every asymmetric ratchet, advances a pair's pre-shared
//! secrets. Each side learns the new secrets before it sends the packet that lets its peer
//! advance, and cannot know whether that packet arrived. So a peer record holds the
//! **confirmed** generation and at most one **pending** one ([`Generations`]), and the
//! engine tells the caller, with the whole new record, every time it changes
//! ([`Event::Secrets`](crate::session::Event::Secrets)):
//!
//! | moment | record after it | change |
//! |---|---|---|
//! | client, exchange response checked, before the establish request (msg 5) | (confirmed, **new**) | [`SecretsChange::Pending`] |
//! | client, establish response checked (msg 6) | (**new**, –) | [`SecretsChange::Confirmed`] |
//! | client, its establish request refused by the peer (0x07 / 0x08) | (confirmed, –) | [`SecretsChange::Discarded`] |
//! | server, establish request checked with candidate *c*, before the response (msg 6) | (*c*, or the other candidate if it checked too, **new**) | [`SecretsChange::Pending`] |
//! | server, first authenticated packet of the session from the client | (**new**, –) | [`SecretsChange::Confirmed`] |
//! | ratchet responder, before its response | (current, **new**) | [`SecretsChange::Pending`] |
//! | ratchet responder, first packet on the re-keyed receive channel | (**new**, –) | [`SecretsChange::Confirmed`] |
//! | ratchet requester, response checked | (current, **new**) | [`SecretsChange::Pending`] |
//!
//! The caller stores the record it is given, durably, before it acts on the next output
//! (the next output is the packet that commits to it). Nothing changes on the wire: a
//! side whose peer may be on either generation tries both.
//!
//! - The **server** derives the channel keys for each candidate (pending, then confirmed)
//!   when it sends the exchange response, which does not depend on the secrets, and picks
//!   the candidate whose establish request authenticates; each candidate has its own
//!   channels, since a failed RCS check kills a channel.
//! - The **client** tries its pending generation first, then its confirmed one. A refusal
//!   of its establish request is the only failure that tells it which one its peer holds:
//!   the engine then discards the pending generation and the next connection uses the
//!   confirmed one. A connection lost without a word proves nothing and changes nothing.
//! - Two candidates that differ only in the **client's** secret (left by the client's own
//!   ratchet, whose response may not have arrived) give the same establish request: the
//!   request proves only the client's view of the server's secret. The server then answers
//!   with the confirmed candidate and keeps the other in the record; a dktp client checks the
//!   establish response against both of its candidates (its *sibling*) and keeps whichever
//!   the server used. A single-slot client that held the other one fails that response and
//!   succeeds on its next connection, which the server's record still allows.
//!
//! A ratchet requester has no proof in the session that its peer received a packet under
//! the new key (DKTP has no acknowledgement), so its new generation stays pending until the
//! next handshake settles it.
//!
//! # What it costs
//!
//! A generation stays usable until the next confirmed one replaces it: the server keeps the
//! previous secrets until the client proves, with a packet of the new session, that it
//! holds the new ones. Someone who copies a peer record in that interval can derive the
//! channel keys of one more session with the old secrets than a single-slot store would
//! allow (the KEM secrets still protect it). A server also derives the keys of two
//! candidates (two cSHAKE-512 calls and one more RCS key schedule: microseconds, next to
//! the handshake's milliseconds), and checks the establish request once or twice.
//!
//! # What it guarantees
//!
//! Checked by the drop-matrix test (`engine/tests/transport/drop_matrix.rs`): after any
//! single lost message or crash at any point of the handshake or of a ratchet, against a
//! peer that keeps generations or one that stores like the reference (only after its own
//! side succeeded, a single slot), in both roles, the pair connects again within two
//! attempts and both sides end on equal secrets. Two slots cannot cover every sequence of
//! faults: a peer that stores a single slot before its packet is delivered can always be
//! left ahead by a second loss, and no record of two generations covers every state its
//! peer may be in after repeated losses. Only a fresh key pair recovers such a pair.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::peer_key::{PSS_SIZE, PeerKeys};

/// A stored generation's length: number, local and remote secrets.
const GENERATION_LEN: usize = 8 + 2 * PSS_SIZE;
/// The version byte of [`Generations::to_bytes`].
const RECORD_VERSION: u8 = 1;

/// One generation of a pair's pre-shared secrets, as one side holds them: its own (`local`)
/// and its peer's (`remote`), with the number of advances since the keys were made.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Generation {
    number: u64,
    local: [u8; PSS_SIZE],
    remote: [u8; PSS_SIZE],
}

impl fmt::Debug for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generation")
            .field("number", &self.number)
            .field("secrets", &"<redacted>")
            .finish()
    }
}

impl Generation {
    /// A generation from its number and secrets.
    pub fn new(number: u64, local: [u8; PSS_SIZE], remote: [u8; PSS_SIZE]) -> Generation {
        Generation {
            number,
            local,
            remote,
        }
    }

    /// Generation 0: the secrets in freshly made (or just loaded) peer keys.
    pub fn of_keys(keys: &PeerKeys) -> Generation {
        Generation::new(0, *keys.local.pss(), *keys.remote.pss())
    }

    /// Advances since the keys were made (informational: both sides count alike while they
    /// are in step).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// This side's own pre-shared secret (the local peer key's).
    pub fn local(&self) -> &[u8; PSS_SIZE] {
        &self.local
    }

    /// The peer's pre-shared secret (the remote peer key's).
    pub fn remote(&self) -> &[u8; PSS_SIZE] {
        &self.remote
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.number.to_le_bytes());
        out.extend_from_slice(&self.local);
        out.extend_from_slice(&self.remote);
    }

    fn take(bytes: &[u8]) -> Option<(Generation, &[u8])> {
        let (g, rest) = bytes.split_at_checked(GENERATION_LEN)?;
        let (number, pss) = g.split_at(8);
        let (local, remote) = pss.split_at(PSS_SIZE);
        let mut n = [0u8; 8];
        n.copy_from_slice(number);
        let mut g = Generation::new(u64::from_le_bytes(n), [0; PSS_SIZE], [0; PSS_SIZE]);
        g.local.copy_from_slice(local);
        g.remote.copy_from_slice(remote);
        Some((g, rest))
    }

    /// Writes these secrets into `keys`.
    pub fn apply_to(&self, keys: &mut PeerKeys) {
        keys.local.set_pss(&self.local);
        keys.remote.set_pss(&self.remote);
    }

    /// The secrets `keys` hold now, numbered `number`.
    pub(crate) fn from_keys(number: u64, keys: &PeerKeys) -> Generation {
        Generation::new(number, *keys.local.pss(), *keys.remote.pss())
    }
}

/// A peer record's secrets: the confirmed generation and at most one pending one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generations {
    /// The generation this side has proof its peer holds, or the one it held before the
    /// pending one.
    pub confirmed: Generation,
    /// Secrets this side committed to without proof yet that its peer holds them.
    pub pending: Option<Generation>,
}

impl Generations {
    /// A record with one confirmed generation.
    pub fn new(confirmed: Generation) -> Generations {
        Generations {
            confirmed,
            pending: None,
        }
    }

    /// Generation 0 of `keys`, confirmed: the record of a pair that has never connected.
    pub fn of_keys(keys: &PeerKeys) -> Generations {
        Generations::new(Generation::of_keys(keys))
    }

    /// The candidates in the order a client tries them (and a server checks them): the
    /// pending generation first, then the confirmed one.
    pub fn candidates(&self) -> impl Iterator<Item = &Generation> {
        self.pending.iter().chain(core::iter::once(&self.confirmed))
    }

    /// The newest generation: the pending one, or the confirmed one.
    pub fn latest(&self) -> &Generation {
        self.pending.as_ref().unwrap_or(&self.confirmed)
    }

    /// The record's bytes, for a store: `version(1) = 1 || confirmed || has_pending(1) ||
    /// [pending]`, each generation `number (u64 LE) || local secret || remote secret`.
    /// The node's stores and the browser client keep records in this form.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(2 + 2 * GENERATION_LEN));
        out.push(RECORD_VERSION);
        self.confirmed.put(&mut out);
        match &self.pending {
            Some(p) => {
                out.push(1);
                p.put(&mut out);
            }
            None => out.push(0),
        }
        out
    }

    /// Reads [`to_bytes`](Self::to_bytes)' form; `None` for anything else (another
    /// version, a truncated record, trailing bytes).
    pub fn from_bytes(bytes: &[u8]) -> Option<Generations> {
        let (&version, rest) = bytes.split_first()?;
        if version != RECORD_VERSION {
            return None;
        }
        let (confirmed, rest) = Generation::take(rest)?;
        let pending = match rest.split_first()? {
            (0, []) => None,
            (1, rest) => match Generation::take(rest)? {
                (p, []) => Some(p),
                _ => return None,
            },
            _ => return None,
        };
        Some(Generations { confirmed, pending })
    }

    pub(crate) fn with_pending(confirmed: Generation, pending: Generation) -> Generations {
        Generations {
            confirmed,
            pending: Some(pending),
        }
    }
}

/// What changed in a [`Generations`] record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SecretsChange {
    /// New secrets this side is about to commit to: store the record before the next
    /// packet is sent.
    Pending,
    /// The pending secrets are now known to be held by the peer (or, on a server, the
    /// candidate the client proved it holds became the confirmed one).
    Confirmed,
    /// The peer refused the pending secrets: the confirmed ones stay.
    Discarded,
}

/// A new record to store (see the module table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretsUpdate {
    /// What happened.
    pub change: SecretsChange,
    /// The whole record as it stands now: store it in place of the old one.
    pub record: Generations,
}
