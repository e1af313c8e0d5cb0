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
//! | [`error`] | the DKTP wire error codes and the engine's [`Error`], grouped by who is to blame |
//! | [`packet`] | the 21-byte header, stream framing, error packets, the reference's header checks |
//! | [`pq`] | post-quantum KEMs ([`pq::KemAlg`]: ML-KEM, Kyber k = 5, Classic McEliece) and signatures ([`pq::SigAlg`]: ML-DSA, SPHINCS+), every set selectable at run time, randomness as an argument |
//! | [`config`] | the configuration strings (`dilithium-s5_kyber-s5_sha3_rcs`, ...), their algorithms and message / key-file sizes |
//! | [`peer_key`] | local (`.dskey`) and remote (`.dpkey`) peer keys: generation, linking, serialization |
//! | [`pool`] | background pre-generation of ephemeral KEM key pairs (feature `pool`) |
//! | [`key_schedule`] | handshake channel keys and pss updates (cSHAKE512), asymmetric-ratchet re-key |
//! | [`transcript`] | the handshake's signed message hashes `hm1..hm4` and session hash `sch1..sch5` |
//! | [`generation`] | generations of the pre-shared secrets: the confirmed one and at most one pending, so a lost message never desyncs a pair |
//! | [`kex`] | the handshake: one state type per awaited message, client and server, the replay gate |
//! | [`session`] | an established session: its data phase ([`session::DataSession`], which the batch engine seals and opens directly), the close, the outputs queue |
//! | [`ratchet`] | the asymmetric ratchet's messages and re-key, the crossing-request rule |
//! | [`connection`] | `Connection` (a byte stream: handshake then session, timers, events), the callback adapter mapping the integration guide's functions |
//! | [`listener`] | a concentrator's acceptor: many peers by key id, one replay gate, cheap checks before any signing |
//! | [`batch`] | data packets of many sessions sealed/opened at once: KMACs in x4/x8 Keccak lanes, rayon across cores, on each session's [`session::DataSession`] |
//!
//! Secrets zeroize on drop and never print; secret-dependent work is constant time.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod batch;
pub mod config;
pub mod connection;
pub mod error;
pub mod generation;
pub mod keccak;
pub mod kex;
pub mod key_schedule;
pub mod listener;
pub mod packet;
pub mod peer_key;
pub mod pool;
pub mod pq;
pub mod ratchet;
pub mod rcs;
pub mod rijndael;
pub mod session;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transcript;

pub use backend::{Backend, BackendError};
pub use error::{Error, ErrorCode};
