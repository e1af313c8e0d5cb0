//! The client side of the handshake (FACTS §6): [`start`] sends the connect request, then
//! one type per awaited server message.

use crate::error::{CryptoFailure, Error, PeerIncompatible};
use crate::generation::{Generation, Generations};
use crate::kex::{
    self, Commit, Fields, Flight, PeerKeys, Settings, assemble, channel, check_hash, header,
    receive, sign, verify,
};
use crate::key_schedule;
use crate::packet::{Flag, HEADER_LEN, TAG_LEN};
use crate::pq::{Entropy, KemSecretKey, SharedSecret};
use crate::rcs::Rcs512Channel;
use crate::session::{Role, Session};
use crate::transcript::{Hash, Transcript, message_hash};

/// Opens a handshake: checks the key pair (linked, 0x1A; the server's key not expired,
/// 0x0E) and returns the connect request (0x01, sequence 0):
/// `keyid ‖ cfg ‖ Sign(H(sph ‖ keyid ‖ cfg))`, where keyid names the server key the client
/// holds.
pub fn start(
    keys: PeerKeys,
    settings: Settings,
    now: u64,
    rng: &mut dyn Entropy,
) -> Result<Flight<AwaitConnectResponse>, Error> {
    let secrets = Generations::of_keys(&keys);
    start_with(keys, secrets, settings, now, rng)
}

/// [`start`] for a peer record with generations ([`crate::generation`]): the attempt uses
/// the record's first candidate, the pending generation if there is one.
pub fn start_with(
    mut keys: PeerKeys,
    secrets: Generations,
    settings: Settings,
    now: u64,
    rng: &mut dyn Entropy,
) -> Result<Flight<AwaitConnectResponse>, Error> {
    let base = secrets.latest().clone();
    base.apply_to(&mut keys);
    keys.check_link()?;
    if keys.remote.is_expired(now) {
        return Err(PeerIncompatible::KeyExpired.into());
    }
    let config = keys.config();
    let sizes = config.message_sizes();
    let keyid = *keys.remote.keyid();
    let cfg = config.to_wire();
    let header = header(Flag::ConnectRequest, 0, now, sizes.connect_request);
    let hm1 = message_hash(&header, &[&keyid, &cfg]);
    let signed = sign(config.sig(), keys.local.signing_key(), &hm1, rng)?;
    let packet = assemble(&header, sizes.connect_request, &[&keyid, &cfg, &signed]);
    Ok(Flight {
        next: AwaitConnectResponse {
            keys,
            attempt: Attempt { secrets, base },
            settings,
            transcript: Transcript::start(&hm1),
        },
        packet,
    })
}

/// Awaits the connect response (0x02, sequence 0).
#[derive(Debug, Clone)]
pub struct AwaitConnectResponse {
    keys: PeerKeys,
    attempt: Attempt,
    settings: Settings,
    transcript: Transcript,
}

impl AwaitConnectResponse {
    /// The keys in use.
    pub fn keys(&self) -> &PeerKeys {
        &self.keys
    }

    /// The session hash so far (`sch1`).
    pub fn transcript(&self) -> &Hash {
        self.transcript.hash()
    }

    /// The exact message length of the awaited packet, for framing.
    pub fn expected_msglen(&self) -> usize {
        self.keys.config().message_sizes().connect_response
    }

    /// Verifies the server's signature over `H(sph ‖ ek_S)`, encapsulates to `ek_S`,
    /// generates the client's ephemeral key pair and returns the exchange request
    /// (0x05, sequence 1): `ct_C ‖ ek_C ‖ Sign(H(sph ‖ ct_C ‖ ek_C))`.
    pub fn handle(
        mut self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Flight<AwaitExchangeResponse>, Error> {
        let config = self.keys.config();
        let sizes = config.message_sizes();
        let (rx, _) = receive(
            packet,
            Flag::ConnectResponse,
            sizes.connect_response,
            0,
            now,
            self.settings.flag_check(),
        )?;
        let mut m = rx.message;
        let signed = m.take(config.signed_hash_size())?;
        let ek_s = m.rest();
        let hm2 = verify(config.sig(), self.keys.remote.verification_key(), signed)?;
        check_hash(
            &message_hash(&rx.header, &[ek_s]),
            hm2,
            CryptoFailure::HashMismatch,
        )?;
        self.transcript.absorb(hm2);

        // The reference's order of random draws: encapsulation, then key generation.
        let (ct_c, secl) = config
            .kem()
            .encapsulate(ek_s, rng)
            .map_err(kex::encapsulation_error)?;
        let kp = self.settings.generate_kem(config.kem(), rng)?;
        let header = header(Flag::ExchangeRequest, 1, now, sizes.exchange_request);
        let hm3 = message_hash(&header, &[&ct_c, &kp.public]);
        let signed = sign(config.sig(), self.keys.local.signing_key(), &hm3, rng)?;
        let packet = assemble(
            &header,
            sizes.exchange_request,
            &[&ct_c, &kp.public, &signed],
        );
        self.transcript.absorb(&hm3);
        Ok(Flight {
            next: AwaitExchangeResponse {
                keys: self.keys,
                attempt: self.attempt,
                settings: self.settings,
                transcript: self.transcript,
                secl,
                dk: kp.secret,
            },
            packet,
        })
    }
}

/// Awaits the exchange response (0x06, sequence 1).
#[derive(Debug, Clone)]
pub struct AwaitExchangeResponse {
    keys: PeerKeys,
    attempt: Attempt,
    settings: Settings,
    transcript: Transcript,
    /// The secret the client encapsulated to the server's key.
    secl: SharedSecret,
    /// The client's ephemeral decapsulation key.
    dk: KemSecretKey,
}

impl AwaitExchangeResponse {
    /// The keys in use.
    pub fn keys(&self) -> &PeerKeys {
        &self.keys
    }

    /// The session hash so far (`sch3`).
    pub fn transcript(&self) -> &Hash {
        self.transcript.hash()
    }

    /// The exact message length of the awaited packet, for framing.
    pub fn expected_msglen(&self) -> usize {
        self.keys.config().message_sizes().exchange_response
    }

    /// Verifies the server's signature over `H(sph ‖ ct_S)` (a wrong hash is 0x0A here),
    /// decapsulates, derives the channel keys and advanced pre-shared secrets (FACTS §6,
    /// the client derives at message 5) and returns the establish request (0x07,
    /// sequence 2): `RCS_tx(sch4)`, AD = its header. Persist [`Commit::pss`] before
    /// sending it.
    pub fn handle(
        mut self,
        packet: &[u8],
        now: u64,
        _rng: &mut dyn Entropy,
    ) -> Result<Commit<AwaitEstablishResponse>, Error> {
        let config = self.keys.config();
        let sizes = config.message_sizes();
        let (rx, _) = receive(
            packet,
            Flag::ExchangeResponse,
            sizes.exchange_response,
            1,
            now,
            self.settings.flag_check(),
        )?;
        let mut m: Fields<'_> = rx.message;
        let ct_s = m.take(config.kem().sizes().ciphertext)?;
        let signed = m.rest();
        let hm4 = verify(config.sig(), self.keys.remote.verification_key(), signed)?;
        check_hash(
            &message_hash(&rx.header, &[ct_s]),
            hm4,
            CryptoFailure::ExchangeHashMismatch,
        )?;
        let secr = config
            .kem()
            .decapsulate(&self.dk, ct_s)
            .map_err(kex::decapsulation_error)?;
        self.transcript.absorb(hm4);

        let derived = key_schedule::client_keys(
            self.secl.expose(),
            secr.expose(),
            self.keys.local.pss(),
            self.keys.remote.pss(),
        );
        let mut tx = channel(&derived.tx)?;
        let rx_channel = channel(&derived.rx)?;
        // A sibling: the record's other candidate with the same peer secret (this side's
        // own ratchet re-keyed only our secret). It gives the same establish request, so the
        // peer may answer for either; the establish response tells which.
        let base = &self.attempt.base;
        let mut sibling = None;
        for other in self.attempt.secrets.candidates() {
            if other.number() != base.number() && other.remote() == base.remote() {
                let d = key_schedule::client_keys(
                    self.secl.expose(),
                    secr.expose(),
                    other.local(),
                    other.remote(),
                );
                sibling = Some(Box::new((
                    Generation::new(
                        other.number().saturating_add(1),
                        *d.pssl.as_bytes(),
                        *d.pssr.as_bytes(),
                    ),
                    channel(&d.rx)?,
                )));
            }
        }
        self.keys.local.set_pss(derived.pssl.as_bytes());
        self.keys.remote.set_pss(derived.pssr.as_bytes());

        let packet = seal_establish(
            &mut tx,
            Flag::EstablishRequest,
            sizes.establish_request,
            self.transcript.hash(),
            now,
        )?;
        // sch5 = H(sch4 ‖ the establish-request payload as sent).
        self.transcript
            .absorb(packet.get(HEADER_LEN..).unwrap_or_default());
        let pss = self.keys.pss_update();
        let next = Generation::from_keys(self.attempt.base.number().saturating_add(1), &self.keys);
        let record =
            Generations::with_pending(self.attempt.secrets.confirmed.clone(), next.clone());
        Ok(Commit {
            next: AwaitEstablishResponse {
                keys: self.keys,
                record: record.clone(),
                next,
                sibling,
                settings: self.settings,
                transcript: self.transcript,
                tx,
                rx: rx_channel,
            },
            pss,
            record,
            packet,
        })
    }
}

/// Awaits the establish response (0x08, sequence 2).
#[derive(Debug)]
pub struct AwaitEstablishResponse {
    keys: PeerKeys,
    /// The record as stored before the establish request was sent.
    record: Generations,
    /// The advanced secrets (pending in `record`).
    next: Generation,
    /// What the sibling candidate would have given, if the record has one.
    sibling: Option<Box<(Generation, Rcs512Channel)>>,
    settings: Settings,
    transcript: Transcript,
    tx: Rcs512Channel,
    rx: Rcs512Channel,
}

impl AwaitEstablishResponse {
    /// The session hash the server must prove (`sch5`).
    pub fn transcript(&self) -> &Hash {
        self.transcript.hash()
    }

    /// The exact message length of the awaited packet, for framing.
    pub fn expected_msglen(&self) -> usize {
        self.keys.config().message_sizes().establish_response
    }

    /// The pre-shared secrets as they stand (already advanced).
    pub fn keys(&self) -> &PeerKeys {
        &self.keys
    }

    /// Opens the establish response and checks it carries `sch5` (0x07 if it does not
    /// authenticate, 0x08 if it carries another hash); the session is established.
    pub fn handle(
        mut self,
        packet: &[u8],
        now: u64,
        _rng: &mut dyn Entropy,
    ) -> Result<Session, Error> {
        let sizes = self.keys.config().message_sizes();
        let (rx, _) = receive(
            packet,
            Flag::EstablishResponse,
            sizes.establish_response,
            2,
            now,
            self.settings.flag_check(),
        )?;
        let payload = rx.message.rest();
        let mut opened = open_establish(&mut self.rx, &rx.header, payload, self.transcript.hash());
        let (mut next, mut rx_channel) = (self.next, self.rx);
        if matches!(opened, Err(Error::Crypto(CryptoFailure::Decryption)))
            && let Some(boxed) = self.sibling
        {
            let (sibling, mut sibling_rx) = *boxed;
            // The peer answered for the sibling generation: that one it holds.
            opened = open_establish(&mut sibling_rx, &rx.header, payload, self.transcript.hash());
            if opened.is_ok() {
                sibling.apply_to(&mut self.keys);
                (next, rx_channel) = (sibling, sibling_rx);
            }
        }
        opened?;
        let mut session = Session::new(Role::Client, self.keys, self.settings, self.tx, rx_channel);
        let number = next.number();
        session.set_generations(Generations::new(next), number, false);
        Ok(session)
    }

    /// The record to store when the peer refused the establish request (its error packet
    /// 0x07 or 0x08 instead of the response): the pending generation discarded.
    pub fn refused_record(&self) -> Generations {
        Generations::new(self.record.confirmed.clone())
    }

    /// The record as stored before the establish request was sent.
    pub fn record(&self) -> &Generations {
        &self.record
    }
}

/// The record a client attempt started from and the generation it tried.
#[derive(Debug, Clone)]
struct Attempt {
    secrets: Generations,
    base: Generation,
}

/// Opens an establish packet's payload and compares it with the expected session hash.
pub(crate) fn open_establish(
    rx: &mut Rcs512Channel,
    header: &[u8],
    payload: &[u8],
    expected: &Hash,
) -> Result<(), Error> {
    let (ct, tag) = payload
        .split_at_checked(expected.len())
        .ok_or(Error::Crypto(CryptoFailure::Decryption))?;
    let mut pt = ct.to_vec();
    rx.open_in_place(header, &mut pt, tag)
        .map_err(|_| Error::Crypto(CryptoFailure::Decryption))?;
    check_hash(expected, &pt, CryptoFailure::TranscriptMismatch)
}

/// Seals an establish packet carrying `hash` (2 × 64 bytes: ciphertext and tag) at
/// sequence 2, AD = its header.
pub(crate) fn seal_establish(
    tx: &mut Rcs512Channel,
    flag: Flag,
    len: usize,
    hash: &Hash,
    now: u64,
) -> Result<Vec<u8>, Error> {
    let header = header(flag, 2, now, len);
    let mut packet = assemble(&header, len, &[hash]);
    packet.resize(HEADER_LEN + len, 0);
    let body = packet.get_mut(HEADER_LEN..).unwrap_or_default();
    let (ct, tag) = body.split_at_mut(hash.len());
    if tag.len() != TAG_LEN {
        return Err(Error::Crypto(CryptoFailure::Primitive));
    }
    tx.seal_in_place(&header, ct, tag)
        .map_err(|_| Error::Crypto(CryptoFailure::Primitive))?;
    Ok(packet)
}
