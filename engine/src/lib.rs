//! # dktp — the DKTP engine
//!
//! A sans-IO implementation of DKTP 1.0a (the Dual-Key Tunnelling Protocol), byte-compatible
//! with the public C reference. No sockets, no clock, no OS randomness: time, randomness and
//! output buffers are arguments.
//!
//! ## Crate map (data flows top to bottom)
//!
//! | module | what it is |
//! |---|---|
//! | [`backend`] | CPU feature detection, the `DKTP_BACKEND` override, the [`Backend`] enum |
//! | [`keccak`] | Keccak-f\[1600\], SHA3, SHAKE, cSHAKE, KMAC (incl. the rate-72 "512" family and the reference's KMAC finalize quirk), multi-lane permutations |
//! | [`rijndael`] | Rijndael-256 (256-bit block) block function and CTR keystream, one implementation per backend |
//! | [`rcs`] | RCS-256 / RCS-512: Rijndael-256 CTR + KMAC tag, a stateful authenticated channel |
//! | [`pq`] | post-quantum KEMs ([`pq::KemAlg`]: ML-KEM, Kyber k = 5, Classic McEliece) and signatures ([`pq::SigAlg`]: ML-DSA, SPHINCS+), every set selectable at run time, randomness as an argument |
//! | `flag` | the packet flag, the header's type byte (public as [`packet::Flag`]) |
//! | [`error`] | the DKTP wire error codes and the engine's [`Error`], grouped by who is to blame; the one mapping of a post-quantum failure to an error |
//! | [`packet`] | the 21-byte header, stream framing, error packets, the reference's header checks; packets this side sends (`header`, `assemble`) and the one `seal_packet` that every encrypted packet goes through |
//! | [`config`] | the configuration strings (`dilithium-s5_kyber-s5_sha3_rcs`, ...), their algorithms and message / key-file sizes |
//! | [`key_schedule`] | handshake channel keys and pss updates (cSHAKE512, [`key_schedule::PssUpdate`]), asymmetric-ratchet re-key |
//! | [`transcript`] | the handshake's signed message hashes `hm1..hm4` and session hash `sch1..sch5`; signing and checking a signed hash |
//! | [`peer_key`] | local (`.dskey`) and remote (`.dpkey`) peer keys: generation, linking, serialization; a linked pair, [`peer_key::PeerKeys`] |
//! | [`generation`] | generations of the pre-shared secrets: the confirmed one and at most one pending, so a lost message never desyncs a pair |
//! | [`peers`] | the peers a server knows ([`peers::Peer`]: keys and record) and how it finds one by key id ([`peers::PeerLookup`]) |
//! | [`pool`] | background pre-generation of ephemeral KEM key pairs (feature `pool`) |
//! | [`settings`] | per-deployment [`settings::Settings`]: ratchet domain, flag check, ephemeral keys and the key pool, deadlines |
//! | [`kex`] | the handshake: one state type per awaited message, client and server (sharing `kex/common.rs`), the replay gate; it hands over an established session |
//! | [`session`] | an established session: its data phase ([`session::DataSession`], which the batch engine seals and opens directly), the ratchet and close, the outputs queue; the hand-over from the handshake (`session/handover.rs`) |
//! | [`ratchet`] | the asymmetric ratchet's messages and re-key, the crossing-request rule |
//! | [`listener`] | a concentrator's acceptor: many peers by key id, one replay gate, cheap checks before any signing |
//! | [`connection`] | `Connection` (a byte stream: handshake then session, timers, events), the callback adapter mapping the integration guide's functions; `Listener::accept` |
//! | [`batch`] | data packets of many sessions sealed/opened at once: KMACs in x4/x8 Keccak lanes, rayon across cores, on each session's [`session::DataSession`] |
//!
//! ## Layers
//!
//! A module imports only from its own layer's lower modules and from layers below it; no
//! two modules import each other.
//!
//! 1. primitives: `backend`, `keccak`, `rijndael`, `rcs`, `pq`;
//! 2. protocol objects: `flag` → `error` → `packet`; `config`, `key_schedule`, `transcript`,
//!    `peer_key` → `generation` → `peers`; `pool` → `settings`;
//! 3. the handshake, `kex` (`common` shared by `client` and `server`, which never import
//!    each other). It never names the session: its last steps hand over a
//!    `kex::Established` (role, keys, settings, channels, record of the secrets);
//! 4. the session, `session` and `ratchet`. `session/handover.rs` makes the
//!    [`session::Session`] of what the handshake hands over and implements the handshake's
//!    last public `handle` (its result is a `Session`): the session takes from `kex` only
//!    its states, `Established`, `Commit` and `Role`, none of its helpers;
//! 5. `listener`, then `connection` (which implements `Listener::accept`: a listener sits
//!    below the connections it makes);
//! 6. `batch`, over the session's data phase.
//!
//! Items moved down keep their old public paths: `kex::{Settings, EphemeralKeys, PeerKeys,
//! PssUpdate, Peer, PeerLookup, SinglePeer, ...}`, `session::Role`, `packet::Flag`,
//! `error::ErrorCode` all still resolve. (Test modules may reach across layers: the
//! session's zero-key tests reconnect through a `Listener`.)
//!
//! Secrets zeroize on drop and never print; secret-dependent work is constant time.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod batch;
pub mod config;
pub mod connection;
pub mod error;
mod flag;
pub mod generation;
pub mod keccak;
pub mod kex;
pub mod key_schedule;
pub mod listener;
pub mod packet;
pub mod peer_key;
pub mod peers;
pub mod pool;
pub mod pq;
pub mod ratchet;
pub mod rcs;
pub mod rijndael;
pub mod session;
pub mod settings;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transcript;

pub use backend::{Backend, BackendError};
pub use error::{Error, ErrorCode};
