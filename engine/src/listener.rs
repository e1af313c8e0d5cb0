//! A concentrator's acceptor ([`Listener`]), sans-IO: the table of peers (found by the key
//! id in the connect request, O(1)), one replay gate shared by every connection it
//! accepts, and the settings (with the ephemeral key pool) they all use.
//!
//! ```text
//!  socket accepted ──▶ Listener::accept(now) ──▶ Connection (server, awaiting its request)
//!                                                  │ handle_bytes: the first whole packet
//!                                                  ▼
//!      Listener: key id known (0x0F)? header, configuration (0x18), expiry (0x0E),
//!                replay gate (0x14)  ── all under the table's lock, no signing work ──
//!                then the client's signature (0x02), the gate records it,
//!                and only then a KEM key pair and the server's signature
//! ```
//!
//! A connect request for an unknown key id, a wrong configuration, an expired key or a
//! replayed request is refused with the reference's error packet before any signature is
//! verified or made, so a flood of them costs a hash-map look-up each. [`Listener::stats`]
//! counts what was refused and what was signed.
//!
//! The listener is a cheap handle (`Clone`, `Send + Sync`): a server with a task per
//! connection hands each task its own clone. A server connection updates the listener's
//! record of its peer's secrets whenever it emits
//! [`Event::Secrets`](crate::session::Event::Secrets), so the next connection of that peer
//! starts from the newest record; the caller persists the same record before it sends the
//! next packet, and loads every peer back with [`Listener::insert`] after a restart.
//!
//! One peer may have several connections at once (a client that reconnects before the
//! server noticed its old connection die). The newest handshake's record is the one that
//! matters; a server should close a peer's older connections when a new one is
//! established, so that a late ratchet on a stale session cannot replace a newer record.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Error;
use crate::generation::Generations;
use crate::kex::server::{AwaitConnectRequest, AwaitExchangeRequest};
use crate::kex::{Flight, ReplayGate};
use crate::peer_key::{KEYID_SIZE, PeerKeys};
use crate::peers::{Peer, PeerLookup};
use crate::pq::Entropy;
use crate::settings::Settings;

/// A key id (the server's local key's, which the client names in its connect request).
pub type KeyId = [u8; KEYID_SIZE];

/// The peers a server knows, by the key id of its local key for each.
#[derive(Clone, Debug, Default)]
pub struct PeerTable {
    peers: HashMap<KeyId, Peer>,
}

impl PeerTable {
    /// Adds or replaces a peer (its keys and the record of its secrets), keyed by
    /// `peer.keys.local.keyid()`.
    pub fn insert(&mut self, peer: Peer) {
        self.peers.insert(*peer.keys.local.keyid(), peer);
    }

    /// Removes a peer; returns whether it was there.
    pub fn remove(&mut self, keyid: &KeyId) -> bool {
        self.peers.remove(keyid).is_some()
    }

    /// A peer by key id.
    pub fn get(&self, keyid: &KeyId) -> Option<&Peer> {
        self.peers.get(keyid)
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

impl PeerLookup for PeerTable {
    fn lookup(&mut self, keyid: &KeyId) -> Option<PeerKeys> {
        self.peers.get(keyid).map(|p| p.keys.clone())
    }

    fn lookup_peer(&mut self, keyid: &KeyId) -> Option<Peer> {
        self.peers.get(keyid).cloned()
    }
}

/// What a [`Listener`] has done since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connect requests refused before the client's signature was verified (unknown key
    /// id, wrong configuration, expired key, replay, bad header).
    pub refused_early: u64,
    /// Connect requests refused at or after the client's signature (bad signature or hash,
    /// replay gate full, key generation or signing failed).
    pub refused_late: u64,
    /// Connect responses signed.
    pub signed: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused_early: AtomicU64,
    refused_late: AtomicU64,
    signed: AtomicU64,
}

struct Shared {
    table: PeerTable,
    gate: ReplayGate,
}

/// The admission check of [`Listener::set_admission`].
type Admission = Box<dyn Fn(&KeyId) -> bool + Send + Sync>;

struct Inner {
    settings: Settings,
    shared: Mutex<Shared>,
    counters: Counters,
    admission: std::sync::OnceLock<Admission>,
}

/// A concentrator's acceptor (see the module docs).
#[derive(Clone)]
pub struct Listener {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for Listener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Listener")
            .field("peers", &self.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// A listener with no peers and a replay gate of the default capacity. Every accepted
    /// connection uses `settings` (with its key pool, if it has one).
    pub fn new(settings: Settings) -> Listener {
        Listener::with_gate(settings, ReplayGate::default())
    }

    /// A listener with its own replay gate (e.g. another capacity).
    pub fn with_gate(settings: Settings, gate: ReplayGate) -> Listener {
        Listener {
            inner: Arc::new(Inner {
                settings,
                shared: Mutex::new(Shared {
                    table: PeerTable::default(),
                    gate,
                }),
                counters: Counters::default(),
                admission: std::sync::OnceLock::new(),
            }),
        }
    }

    fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic elsewhere while the lock was held cannot leave the table half-written
        // (every update is one insert), so a poisoned lock is still usable.
        self.inner
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The settings every accepted connection uses.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Adds or replaces a peer with the record of its secrets (as loaded from a store).
    pub fn insert(&self, keys: PeerKeys, secrets: Generations) {
        self.shared().table.insert(Peer { keys, secrets });
    }

    /// Adds or replaces a peer whose keys' secrets are its only generation (a new pair).
    pub fn add(&self, keys: PeerKeys) {
        self.shared().table.insert(Peer::from(keys));
    }

    /// Removes a peer: its next connect request is refused (0x0F). Returns whether it was
    /// known.
    pub fn remove(&self, keyid: &KeyId) -> bool {
        self.shared().table.remove(keyid)
    }

    /// A peer's keys and record, as the next connection would find them.
    pub fn peer(&self, keyid: &KeyId) -> Option<Peer> {
        self.shared().table.get(keyid).cloned()
    }

    /// Replaces a known peer's record (the engine does this itself for the connections
    /// this listener accepted). Returns whether the peer is known.
    pub fn set_secrets(&self, keyid: &KeyId, secrets: Generations) -> bool {
        let mut shared = self.shared();
        match shared.table.peers.get_mut(keyid) {
            Some(peer) => {
                peer.secrets = secrets;
                true
            }
            None => false,
        }
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.shared().table.len()
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the check that admits a connect request to the expensive work: it runs after
    /// the cheap checks passed (key id known, header, configuration, expiry, replay gate)
    /// and before the client's signature is verified; `false` refuses the request with
    /// [`Error::Overloaded`] (0x0B, hosts exceeded), which the client may retry. A
    /// concentrator's handshake rate limit belongs here: it is then spent on known peers
    /// only, and a flood of unknown or replayed requests cannot use it up. Set once;
    /// returns `false` if a check was already set.
    pub fn set_admission(&self, admit: impl Fn(&KeyId) -> bool + Send + Sync + 'static) -> bool {
        self.inner.admission.set(Box::new(admit)).is_ok()
    }

    /// Counters since the listener was made.
    pub fn stats(&self) -> ListenerStats {
        let c = &self.inner.counters;
        ListenerStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused_early: c.refused_early.load(Ordering::Relaxed),
            refused_late: c.refused_late.load(Ordering::Relaxed),
            signed: c.signed.load(Ordering::Relaxed),
        }
    }

    /// Counts a connection accepted ([`accept`](Self::accept), which the connection layer
    /// implements: a listener makes connections, and sits below them).
    pub(crate) fn count_accepted(&self) {
        self.inner.counters.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// The first packet of a server connection: the cheap checks under the lock, the
    /// client's signature outside it, the gate's record under it again, then the key pair
    /// and the signature outside it.
    pub(crate) fn first_packet(
        &self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Flight<AwaitExchangeRequest>, Error> {
        let c = &self.inner.counters;
        let state = AwaitConnectRequest::new(self.inner.settings.clone());
        let screened = {
            let mut shared = self.shared();
            let Shared { table, gate } = &mut *shared;
            state.screen(packet, now, table, gate)
        };
        let screened = screened
            .and_then(|screened| match self.inner.admission.get() {
                Some(admit) if !admit(screened.peer().keys.local.keyid()) => Err(Error::Overloaded),
                _ => Ok(screened),
            })
            .inspect_err(|_| {
                c.refused_early.fetch_add(1, Ordering::Relaxed);
            })?;
        let answered = screened.verify().and_then(|hm1| {
            self.shared().gate.record(&hm1, screened.utctime(), now)?;
            Ok(hm1)
        });
        let hm1 = answered.inspect_err(|_| {
            c.refused_late.fetch_add(1, Ordering::Relaxed);
        })?;
        c.signed.fetch_add(1, Ordering::Relaxed);
        screened.answer(&hm1, now, rng)
    }
}
