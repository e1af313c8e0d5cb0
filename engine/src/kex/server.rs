//! The server side of the handshake (FACTS §6): one type per awaited client message.
//!
//! The server learns which keys to use from the connect request's key id through a
//! caller-supplied [`PeerLookup`], so one process can serve many peers (a concentrator).
//! A [`ReplayGate`] shared by all handshakes refuses a replayed connect request before any
//! key generation or signing. The last step's `handle`, which returns the established
//! [`Session`](crate::session::Session), is in the session layer (`session/handover.rs`).

use crate::config::{CONFIG_SIZE, Config};
use crate::error::{CryptoFailure, Error, Malformed, PeerIncompatible, PeerMisbehaved, PqStep};
use crate::generation::{Generation, Generations};
use crate::kex::common::{Core, awaits, open_establish, receive, seal_establish, slot};
use crate::kex::{Commit, Established, Flight, ReplayGate, Role};
use crate::key_schedule::{self, channel};
use crate::packet::{Flag, HEADER_LEN, Header, assemble, msglen};
use crate::peer_key::{KEYID_SIZE, PeerKeys};
use crate::peers::{Peer, PeerLookup};
use crate::pq::{Entropy, KemSecretKey};
use crate::rcs::Rcs512Channel;
use crate::settings::Settings;
use crate::transcript::{HASH_LEN, Hash, Transcript, check_hash, message_hash, verify};

/// Awaits the connect request (0x01, sequence 0).
#[derive(Debug, Clone)]
pub struct AwaitConnectRequest {
    settings: Settings,
}

impl AwaitConnectRequest {
    /// A server handshake with these settings.
    pub fn new(settings: Settings) -> AwaitConnectRequest {
        AwaitConnectRequest { settings }
    }

    /// The longest connect request of any configuration (the server learns the
    /// configuration from the key id), for framing.
    pub fn max_msglen(&self) -> usize {
        Config::ALL
            .iter()
            .map(|c| c.message_sizes().connect_request)
            .max()
            .unwrap_or(0)
    }

    /// Checks the connect request and answers with the connect response (0x02,
    /// sequence 0): `Sign(H(sph ‖ ek_S)) ‖ ek_S`.
    ///
    /// Order: error packet; time (0x13); the key id must name a key pair `keys` has
    /// (0x0F); then the reference's length (0x16), sequence (0x14) and flag (0x0D) checks;
    /// a replay `gate` has seen (0x14); the pair's link (0x1A); the server key's expiry
    /// (0x0E); the configuration string (0x18); the signature (0x02); the hash (0x19). Only
    /// then is the request recorded in the gate (0x0B when full) and a key generated.
    pub fn handle(
        self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
        keys: &mut dyn PeerLookup,
        gate: &mut ReplayGate,
    ) -> Result<Flight<AwaitExchangeRequest>, Error> {
        let screened = self.screen(packet, now, keys, gate)?;
        let hm1 = screened.verify()?;
        gate.record(&hm1, screened.utctime, now)?;
        screened.answer(&hm1, now, rng)
    }

    /// The cheap checks of a connect request, up to the replay gate's, in the order of
    /// [`handle`](Self::handle): nothing is verified, generated or signed. A listener runs
    /// this with its peer table and gate locked, then [`Screened::verify`] and
    /// [`Screened::answer`] without them.
    pub fn screen<'p>(
        self,
        packet: &'p [u8],
        now: u64,
        keys: &mut dyn PeerLookup,
        gate: &mut ReplayGate,
    ) -> Result<Screened<'p>, Error> {
        let head = Header::decode(packet)?;
        if head.flag == Flag::ErrorCondition.as_u8() || !head.is_fresh(now) {
            // The peer's error packet or a stale time (0x13), as the header check reports
            // them, before anything is looked up.
            let longest = (0, self.max_msglen());
            receive(
                packet,
                Flag::ConnectRequest,
                longest,
                now,
                self.settings.flag_check(),
            )?;
        }
        let message = packet.get(HEADER_LEN..).unwrap_or_default();
        let Some(keyid) = message.first_chunk::<KEYID_SIZE>() else {
            return Err(
                if usize::try_from(head.msglen).ok() == Some(message.len()) {
                    PeerMisbehaved::UnexpectedLength {
                        expected: msglen(self.max_msglen()),
                        received: head.msglen,
                    }
                    .into()
                } else {
                    Malformed::LengthMismatch {
                        declared: head.msglen,
                        actual: message.len(),
                    }
                    .into()
                },
            );
        };
        let peer = keys
            .lookup_peer(keyid)
            .ok_or(Error::PeerIncompatible(PeerIncompatible::KeyUnrecognized))?;
        let config = peer.keys.config();
        let rx = receive(
            packet,
            Flag::ConnectRequest,
            slot(config, Flag::ConnectRequest),
            now,
            self.settings.flag_check(),
        )?;
        let mut m = rx.message;
        let keyid = m.take(KEYID_SIZE)?;
        let cfg = m.take(CONFIG_SIZE)?;
        let signed = m.rest();
        let claimed = signed
            .last_chunk::<HASH_LEN>()
            .ok_or(Error::Crypto(CryptoFailure::Signature))?;
        gate.check(claimed, now)?;

        peer.keys.check_link()?;
        if peer.keys.local.is_expired(now) {
            return Err(PeerIncompatible::KeyExpired.into());
        }
        if cfg != config.to_wire() {
            return Err(PeerIncompatible::UnknownProtocol.into());
        }
        Ok(Screened {
            settings: self.settings,
            peer,
            header: rx.header,
            utctime: head.utctime,
            keyid,
            cfg,
            signed,
        })
    }
}

/// A connect request that passed the cheap checks ([`AwaitConnectRequest::screen`]).
pub struct Screened<'p> {
    settings: Settings,
    peer: Peer,
    header: [u8; HEADER_LEN],
    utctime: u64,
    keyid: &'p [u8],
    cfg: &'p [u8],
    signed: &'p [u8],
}

impl core::fmt::Debug for Screened<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Screened")
            .field("config", &self.peer.keys.config().to_string())
            .field("utctime", &self.utctime)
            .finish_non_exhaustive()
    }
}

impl Screened<'_> {
    /// The peer the request named.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// The time stamp of the request (for the replay gate).
    pub fn utctime(&self) -> u64 {
        self.utctime
    }

    /// Verifies the client's signature (0x02) and the signed hash (0x19); returns `hm1`,
    /// which the replay gate then records.
    pub fn verify(&self) -> Result<Hash, Error> {
        let config = self.peer.keys.config();
        let hm1 = verify(
            config.sig(),
            self.peer.keys.remote.verification_key(),
            self.signed,
        )?;
        let computed = message_hash(&self.header, &[self.keyid, self.cfg]);
        check_hash(&computed, hm1, CryptoFailure::HashMismatch)?;
        Ok(computed)
    }

    /// Generates the ephemeral key pair and signs the connect response (0x02, sequence 0):
    /// `Sign(H(sph ‖ ek_S)) ‖ ek_S`. Call after [`verify`](Self::verify) and the gate's
    /// record.
    pub fn answer(
        self,
        hm1: &Hash,
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Flight<AwaitExchangeRequest>, Error> {
        let Peer { keys, secrets } = self.peer;
        let mut core = Core {
            keys,
            settings: self.settings,
            transcript: Transcript::start(hm1),
        };
        let kem = core.keys.config().kem();
        // The reference's order of random draws: key generation, then (SPHINCS+) signing.
        let kp = core.settings.generate_kem(kem, rng)?;
        let (header, signed) = core.sign(Flag::ConnectResponse, now, &[&kp.public], rng)?;
        let len = core.expected_len(Flag::ConnectResponse);
        let packet = assemble(&header, len, &[&signed, &kp.public]);
        Ok(Flight {
            next: AwaitExchangeRequest {
                core,
                secrets,
                dk: kp.secret,
            },
            packet,
        })
    }
}

/// Awaits the exchange request (0x05, sequence 1).
#[derive(Debug, Clone)]
pub struct AwaitExchangeRequest {
    core: Core,
    secrets: Generations,
    /// The server's ephemeral decapsulation key.
    dk: KemSecretKey,
}

awaits!(
    AwaitExchangeRequest,
    ExchangeRequest,
    keys: "The keys the connect request selected.",
    transcript: "The session hash so far (`sch2`).",
);

impl AwaitExchangeRequest {
    /// The record of the peer's secrets this handshake started from.
    pub fn secrets(&self) -> &Generations {
        &self.secrets
    }

    /// Verifies the client's signature over `H(sph ‖ ct_C ‖ ek_C)`, decapsulates,
    /// encapsulates to `ek_C`, derives the channel keys (FACTS §6, the server derives at
    /// message 4) and returns the exchange response (0x06, sequence 1):
    /// `ct_S ‖ Sign(H(sph ‖ ct_S))`.
    pub fn handle(
        mut self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Flight<AwaitEstablishRequest>, Error> {
        let core = &mut self.core;
        let kem = core.keys.config().kem();
        let rx = core.receive(packet, Flag::ExchangeRequest, now)?;
        let mut m = rx.message;
        let ct_c = m.take(kem.sizes().ciphertext)?;
        let ek_c = m.take(kem.sizes().public_key)?;
        let signed = m.rest();
        core.check_signed(
            &rx.header,
            &[ct_c, ek_c],
            signed,
            CryptoFailure::HashMismatch,
        )?;
        let secr = kem
            .decapsulate(&self.dk, ct_c)
            .map_err(|e| Error::pq(PqStep::Decapsulate, e))?;

        let (ct_s, secl) = kem
            .encapsulate(ek_c, rng)
            .map_err(|e| Error::pq(PqStep::Encapsulate, e))?;
        let (header, signed) = core.sign(Flag::ExchangeResponse, now, &[&ct_s], rng)?;
        let len = core.expected_len(Flag::ExchangeResponse);
        let packet = assemble(&header, len, &[&ct_s, &signed]);

        // One set of channels per candidate generation (crate::generation): the exchange
        // response does not depend on the secrets, so the choice waits for the establish
        // request.
        let mut candidates = Vec::with_capacity(2);
        for base in self.secrets.candidates() {
            let derived = key_schedule::server_keys(
                secl.expose(),
                secr.expose(),
                base.local(),
                base.remote(),
            );
            candidates.push(Candidate {
                base: base.clone(),
                next: Generation::new(
                    base.number().saturating_add(1),
                    *derived.pssl.as_bytes(),
                    *derived.pssr.as_bytes(),
                ),
                tx: channel(&derived.tx)?,
                rx: channel(&derived.rx)?,
            });
        }
        Ok(Flight {
            next: AwaitEstablishRequest {
                core: self.core,
                candidates,
            },
            packet,
        })
    }
}

/// The channels and advanced secrets the handshake gives for one candidate generation.
struct Candidate {
    base: Generation,
    next: Generation,
    tx: Rcs512Channel,
    rx: Rcs512Channel,
}

/// Awaits the establish request (0x07, sequence 2).
pub struct AwaitEstablishRequest {
    core: Core,
    candidates: Vec<Candidate>,
}

impl core::fmt::Debug for AwaitEstablishRequest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AwaitEstablishRequest")
            .field("config", &self.core.keys.config().to_string())
            .field("candidates", &self.candidates.len())
            .finish_non_exhaustive()
    }
}

awaits!(
    AwaitEstablishRequest,
    EstablishRequest,
    keys: "The keys the connect request selected (their secrets are those of the record's \
           confirmed generation until the establish request picks a candidate).",
    transcript: "The session hash the client must prove (`sch4`).",
);

impl AwaitEstablishRequest {
    /// Opens the establish request with each candidate generation's receive channel (the
    /// pending one first) and checks it carries `sch4` (0x07 if no candidate authenticates
    /// it, 0x08 if it carries another hash), then hands over the established session with
    /// the establish response (0x08, sequence 2): `RCS_tx(sch5)`. [`Commit::record`]: the
    /// chosen candidate confirmed, its advanced secrets pending. Its public `handle` makes
    /// the session of what this hands over.
    pub(crate) fn establish(
        mut self,
        packet: &[u8],
        now: u64,
    ) -> Result<Commit<Established>, Error> {
        let core = &self.core;
        let rx = core.receive(packet, Flag::EstablishRequest, now)?;
        let payload = rx.message.rest();
        // Every candidate is checked: two may authenticate when they differ only in the
        // client's secret (the client's own ratchet, whose response may have been lost),
        // which the establish request does not cover. Then the confirmed one answers (a
        // dktp client also checks the response against its sibling candidate) and the
        // other stays in the record, for a client that holds it and finds the response
        // wrong.
        let mut matched = Vec::with_capacity(2);
        let mut failure = Error::Crypto(CryptoFailure::Decryption);
        for (i, c) in self.candidates.iter_mut().enumerate() {
            match open_establish(&mut c.rx, &rx.header, payload, core.transcript.hash()) {
                Ok(()) => matched.push(i),
                Err(Error::Crypto(CryptoFailure::Decryption)) => {}
                // Keys that authenticate but another hash: the client's fault.
                Err(e) => failure = e,
            }
        }
        let Some(&chosen) = matched.last() else {
            return Err(failure);
        };
        let other = matched
            .first()
            .filter(|&&i| i != chosen)
            .and_then(|&i| self.candidates.get(i))
            .map(|c| c.base.clone());
        let mut c = self
            .candidates
            .into_iter()
            .nth(chosen)
            .ok_or(Error::Crypto(CryptoFailure::Decryption))?;
        let Core {
            mut keys,
            settings,
            mut transcript,
        } = self.core;
        transcript.absorb(payload);
        let packet = seal_establish(
            &mut c.tx,
            keys.config(),
            Flag::EstablishResponse,
            transcript.hash(),
            now,
        )?;
        c.next.apply_to(&mut keys);
        let pss = keys.pss_update();
        let record = Generations::with_pending(other.unwrap_or(c.base), c.next.clone());
        Ok(Commit {
            next: Established {
                role: Role::Server,
                keys,
                settings,
                tx: c.tx,
                rx: c.rx,
                record: record.clone(),
            },
            pss,
            record,
            packet,
        })
    }
}
