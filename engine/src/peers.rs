//! The peers a server knows: each [`Peer`] is its linked keys and the record of its
//! secrets' generations ([`crate::generation`]), found by the key id a connect request
//! names ([`PeerLookup`]; [`SinglePeer`] for a server with one peer,
//! [`PeerTable`](crate::listener::PeerTable) for a concentrator).

use crate::generation::Generations;
use crate::peer_key::{KEYID_SIZE, PeerKeys};

/// A peer as a server finds it: its linked keys and the record of its secrets
/// ([`crate::generation`]). The keys' own pre-shared secrets are ignored in favour of the
/// record's candidates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The server's local key for this peer and the peer's remote key.
    pub keys: PeerKeys,
    /// The confirmed generation of the secrets and at most one pending one.
    pub secrets: Generations,
}

impl From<PeerKeys> for Peer {
    /// A peer whose keys' secrets are its only, confirmed, generation.
    fn from(keys: PeerKeys) -> Peer {
        let secrets = Generations::of_keys(&keys);
        Peer { keys, secrets }
    }
}

/// Finds the keys for a connect request: the server's local key named by the key id the
/// client sent (the client addresses the server key it holds, so this is the server's key
/// id) and the remote key of the client linked to it (`local.peerid == remote.keyid`).
///
/// A concentrator holds one such pair per client; `None` refuses the connection with
/// 0x0F (key unrecognized). Implemented for closures.
pub trait PeerLookup {
    /// The pair for `keyid`, if this server has one.
    fn lookup(&mut self, keyid: &[u8; KEYID_SIZE]) -> Option<PeerKeys>;

    /// The pair and the record of its secrets; by default the pair's own secrets as its
    /// only generation. A server that keeps generations overrides this.
    fn lookup_peer(&mut self, keyid: &[u8; KEYID_SIZE]) -> Option<Peer> {
        self.lookup(keyid).map(Peer::from)
    }
}

impl<F> PeerLookup for F
where
    F: FnMut(&[u8; KEYID_SIZE]) -> Option<PeerKeys>,
{
    fn lookup(&mut self, keyid: &[u8; KEYID_SIZE]) -> Option<PeerKeys> {
        self(keyid)
    }
}

/// A server with exactly one peer: answers only its own key id.
#[derive(Clone, Debug)]
pub struct SinglePeer(pub PeerKeys);

impl PeerLookup for SinglePeer {
    fn lookup(&mut self, keyid: &[u8; KEYID_SIZE]) -> Option<PeerKeys> {
        (self.0.local.keyid() == keyid).then(|| self.0.clone())
    }
}
