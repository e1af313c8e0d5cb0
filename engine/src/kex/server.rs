//! The server side of the handshake (FACTS §6): one type per awaited client message.
//!
//! The server learns which keys to use from the connect request's key id through a
//! caller-supplied [`PeerLookup`], so one process can serve many peers (a concentrator).
//! A [`ReplayGate`] shared by all handshakes refuses a replayed connect request before any
//! key generation or signing.

use crate::config::{CONFIG_SIZE, Config};
use crate::error::{CryptoFailure, Error, Malformed, PeerIncompatible, PeerMisbehaved};
use crate::kex::client::{open_establish, seal_establish};
use crate::kex::{
    self, Commit, Flight, PeerKeys, PeerLookup, ReplayGate, Settings, assemble, channel,
    check_hash, header, receive, sign, verify,
};
use crate::key_schedule;
use crate::packet::{Flag, HEADER_LEN, Header};
use crate::peer_key::KEYID_SIZE;
use crate::pq::{Entropy, KemSecretKey};
use crate::rcs::Rcs512Channel;
use crate::session::{Role, Session};
use crate::transcript::{HASH_LEN, Hash, Transcript, message_hash};

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
        let head = Header::decode(packet)?;
        if head.flag == Flag::ErrorCondition.as_u8() || !head.is_fresh(now) {
            // The peer's error packet or a stale time (0x13), as the header check reports
            // them, before anything is looked up.
            receive(
                packet,
                Flag::ConnectRequest,
                self.max_msglen(),
                0,
                now,
                self.settings.flag_check(),
            )?;
        }
        let message = packet.get(HEADER_LEN..).unwrap_or_default();
        let Some(keyid) = message.first_chunk::<KEYID_SIZE>() else {
            return Err(
                if usize::try_from(head.msglen).ok() == Some(message.len()) {
                    PeerMisbehaved::UnexpectedLength {
                        expected: kex::msglen(self.max_msglen()),
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
        let keys = keys
            .lookup(keyid)
            .ok_or(Error::PeerIncompatible(PeerIncompatible::KeyUnrecognized))?;
        let config = keys.config();
        let sizes = config.message_sizes();
        let (rx, _) = receive(
            packet,
            Flag::ConnectRequest,
            sizes.connect_request,
            0,
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

        keys.check_link()?;
        if keys.local.is_expired(now) {
            return Err(PeerIncompatible::KeyExpired.into());
        }
        if cfg != config.to_wire() {
            return Err(PeerIncompatible::UnknownProtocol.into());
        }
        let hm1 = verify(config.sig(), keys.remote.verification_key(), signed)?;
        let computed = message_hash(&rx.header, &[keyid, cfg]);
        check_hash(&computed, hm1, CryptoFailure::HashMismatch)?;
        gate.record(&computed, head.utctime, now)?;
        let mut transcript = Transcript::start(&computed);

        // The reference's order of random draws: key generation, then (SPHINCS+) signing.
        let kp = self.settings.generate_kem(config.kem(), rng)?;
        let header = header(Flag::ConnectResponse, 0, now, sizes.connect_response);
        let hm2 = message_hash(&header, &[&kp.public]);
        let signed = sign(config.sig(), keys.local.signing_key(), &hm2, rng)?;
        let packet = assemble(&header, sizes.connect_response, &[&signed, &kp.public]);
        transcript.absorb(&hm2);
        Ok(Flight {
            next: AwaitExchangeRequest {
                keys,
                settings: self.settings,
                transcript,
                dk: kp.secret,
            },
            packet,
        })
    }
}

/// Awaits the exchange request (0x05, sequence 1).
#[derive(Debug, Clone)]
pub struct AwaitExchangeRequest {
    keys: PeerKeys,
    settings: Settings,
    transcript: Transcript,
    /// The server's ephemeral decapsulation key.
    dk: KemSecretKey,
}

impl AwaitExchangeRequest {
    /// The session hash so far (`sch2`).
    pub fn transcript(&self) -> &Hash {
        self.transcript.hash()
    }

    /// The exact message length of the awaited packet, for framing.
    pub fn expected_msglen(&self) -> usize {
        self.keys.config().message_sizes().exchange_request
    }

    /// The keys the connect request selected.
    pub fn keys(&self) -> &PeerKeys {
        &self.keys
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
        let config = self.keys.config();
        let sizes = config.message_sizes();
        let kem = config.kem().sizes();
        let (rx, _) = receive(
            packet,
            Flag::ExchangeRequest,
            sizes.exchange_request,
            1,
            now,
            self.settings.flag_check(),
        )?;
        let mut m = rx.message;
        let ct_c = m.take(kem.ciphertext)?;
        let ek_c = m.take(kem.public_key)?;
        let signed = m.rest();
        let hm3 = verify(config.sig(), self.keys.remote.verification_key(), signed)?;
        check_hash(
            &message_hash(&rx.header, &[ct_c, ek_c]),
            hm3,
            CryptoFailure::HashMismatch,
        )?;
        let secr = config
            .kem()
            .decapsulate(&self.dk, ct_c)
            .map_err(kex::decapsulation_error)?;
        self.transcript.absorb(hm3);

        let (ct_s, secl) = config
            .kem()
            .encapsulate(ek_c, rng)
            .map_err(kex::encapsulation_error)?;
        let header = header(Flag::ExchangeResponse, 1, now, sizes.exchange_response);
        let hm4 = message_hash(&header, &[&ct_s]);
        let signed = sign(config.sig(), self.keys.local.signing_key(), &hm4, rng)?;
        let packet = assemble(&header, sizes.exchange_response, &[&ct_s, &signed]);
        self.transcript.absorb(&hm4);

        let derived = key_schedule::server_keys(
            secl.expose(),
            secr.expose(),
            self.keys.local.pss(),
            self.keys.remote.pss(),
        );
        let tx = channel(&derived.tx)?;
        let rx_channel = channel(&derived.rx)?;
        self.keys.local.set_pss(derived.pssl.as_bytes());
        self.keys.remote.set_pss(derived.pssr.as_bytes());
        Ok(Flight {
            next: AwaitEstablishRequest {
                keys: self.keys,
                settings: self.settings,
                transcript: self.transcript,
                tx,
                rx: rx_channel,
            },
            packet,
        })
    }
}

/// Awaits the establish request (0x07, sequence 2).
#[derive(Debug)]
pub struct AwaitEstablishRequest {
    keys: PeerKeys,
    settings: Settings,
    transcript: Transcript,
    tx: Rcs512Channel,
    rx: Rcs512Channel,
}

impl AwaitEstablishRequest {
    /// The session hash the client must prove (`sch4`).
    pub fn transcript(&self) -> &Hash {
        self.transcript.hash()
    }

    /// The exact message length of the awaited packet, for framing.
    pub fn expected_msglen(&self) -> usize {
        self.keys.config().message_sizes().establish_request
    }

    /// The keys the connect request selected (pre-shared secrets already advanced).
    pub fn keys(&self) -> &PeerKeys {
        &self.keys
    }

    /// Opens the establish request and checks it carries `sch4` (0x07 if it does not
    /// authenticate, 0x08 if it carries another hash), then returns the established session
    /// and the establish response (0x08, sequence 2): `RCS_tx(sch5)`. Persist
    /// [`Commit::pss`] before sending it.
    pub fn handle(
        mut self,
        packet: &[u8],
        now: u64,
        _rng: &mut dyn Entropy,
    ) -> Result<Commit<Session>, Error> {
        let sizes = self.keys.config().message_sizes();
        let (rx, _) = receive(
            packet,
            Flag::EstablishRequest,
            sizes.establish_request,
            2,
            now,
            self.settings.flag_check(),
        )?;
        let payload = rx.message.rest();
        open_establish(&mut self.rx, &rx.header, payload, self.transcript.hash())?;
        self.transcript.absorb(payload);
        let packet = seal_establish(
            &mut self.tx,
            Flag::EstablishResponse,
            sizes.establish_response,
            self.transcript.hash(),
            now,
        )?;
        let pss = self.keys.pss_update();
        Ok(Commit {
            next: Session::new(Role::Server, self.keys, self.settings, self.tx, self.rx),
            pss,
            packet,
        })
    }
}
