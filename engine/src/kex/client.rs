//! The client side of the handshake (FACTS §6): [`start`] sends the connect request, then
//! one type per awaited server message. The last step's `handle`, which returns the
//! [`Session`](crate::session::Session), is in the session layer (`session/handover.rs`).

use crate::error::{CryptoFailure, Error, PeerIncompatible, PqStep};
use crate::generation::{Generation, Generations};
use crate::kex::common::{Core, awaits, hashed_header, open_establish, seal_establish};
use crate::kex::{Commit, Established, Flight, Role};
use crate::key_schedule::{self, channel};
use crate::packet::{Flag, HEADER_LEN, assemble};
use crate::peer_key::PeerKeys;
use crate::pq::{Entropy, KemSecretKey, SharedSecret};
use crate::rcs::Rcs512Channel;
use crate::settings::Settings;
use crate::transcript::{Hash, Transcript, sign};

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
    let len = config.message_sizes().connect_request;
    let keyid = *keys.remote.keyid();
    let cfg = config.to_wire();
    let (header, hm1) = hashed_header(config, Flag::ConnectRequest, now, &[&keyid, &cfg]);
    let signed = sign(config.sig(), keys.local.signing_key(), &hm1, rng)?;
    let packet = assemble(&header, len, &[&keyid, &cfg, &signed]);
    Ok(Flight {
        next: AwaitConnectResponse {
            core: Core {
                keys,
                settings,
                transcript: Transcript::start(&hm1),
            },
            attempt: Attempt { secrets, base },
        },
        packet,
    })
}

/// Awaits the connect response (0x02, sequence 0).
#[derive(Debug, Clone)]
pub struct AwaitConnectResponse {
    core: Core,
    attempt: Attempt,
}

awaits!(
    AwaitConnectResponse,
    ConnectResponse,
    keys: "The keys in use.",
    transcript: "The session hash so far (`sch1`).",
);

impl AwaitConnectResponse {
    /// Verifies the server's signature over `H(sph ‖ ek_S)`, encapsulates to `ek_S`,
    /// generates the client's ephemeral key pair and returns the exchange request
    /// (0x05, sequence 1): `ct_C ‖ ek_C ‖ Sign(H(sph ‖ ct_C ‖ ek_C))`.
    pub fn handle(
        mut self,
        packet: &[u8],
        now: u64,
        rng: &mut dyn Entropy,
    ) -> Result<Flight<AwaitExchangeResponse>, Error> {
        let core = &mut self.core;
        let config = core.keys.config();
        let rx = core.receive(packet, Flag::ConnectResponse, now)?;
        let mut m = rx.message;
        let signed = m.take(config.signed_hash_size())?;
        let ek_s = m.rest();
        core.check_signed(&rx.header, &[ek_s], signed, CryptoFailure::HashMismatch)?;

        // The reference's order of random draws: encapsulation, then key generation.
        let (ct_c, secl) = config
            .kem()
            .encapsulate(ek_s, rng)
            .map_err(|e| Error::pq(PqStep::Encapsulate, e))?;
        let kp = core.settings.generate_kem(config.kem(), rng)?;
        let (header, signed) = core.sign(Flag::ExchangeRequest, now, &[&ct_c, &kp.public], rng)?;
        let len = core.expected_len(Flag::ExchangeRequest);
        let packet = assemble(&header, len, &[&ct_c, &kp.public, &signed]);
        Ok(Flight {
            next: AwaitExchangeResponse {
                core: self.core,
                attempt: self.attempt,
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
    core: Core,
    attempt: Attempt,
    /// The secret the client encapsulated to the server's key.
    secl: SharedSecret,
    /// The client's ephemeral decapsulation key.
    dk: KemSecretKey,
}

awaits!(
    AwaitExchangeResponse,
    ExchangeResponse,
    keys: "The keys in use.",
    transcript: "The session hash so far (`sch3`).",
);

impl AwaitExchangeResponse {
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
        let core = &mut self.core;
        let config = core.keys.config();
        let rx = core.receive(packet, Flag::ExchangeResponse, now)?;
        let mut m = rx.message;
        let ct_s = m.take(config.kem().sizes().ciphertext)?;
        let signed = m.rest();
        core.check_signed(
            &rx.header,
            &[ct_s],
            signed,
            CryptoFailure::ExchangeHashMismatch,
        )?;
        let secr = config
            .kem()
            .decapsulate(&self.dk, ct_s)
            .map_err(|e| Error::pq(PqStep::Decapsulate, e))?;

        let derived = key_schedule::client_keys(
            self.secl.expose(),
            secr.expose(),
            core.keys.local.pss(),
            core.keys.remote.pss(),
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
        core.keys.local.set_pss(derived.pssl.as_bytes());
        core.keys.remote.set_pss(derived.pssr.as_bytes());

        let packet = seal_establish(
            &mut tx,
            config,
            Flag::EstablishRequest,
            core.transcript.hash(),
            now,
        )?;
        // sch5 = H(sch4 ‖ the establish-request payload as sent).
        core.transcript
            .absorb(packet.get(HEADER_LEN..).unwrap_or_default());
        let pss = core.keys.pss_update();
        let next = Generation::from_keys(base.number().saturating_add(1), &core.keys);
        let record =
            Generations::with_pending(self.attempt.secrets.confirmed.clone(), next.clone());
        Ok(Commit {
            next: AwaitEstablishResponse {
                core: self.core,
                record: record.clone(),
                next,
                sibling,
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
    core: Core,
    /// The record as stored before the establish request was sent.
    record: Generations,
    /// The advanced secrets (pending in `record`).
    next: Generation,
    /// What the sibling candidate would have given, if the record has one.
    sibling: Option<Box<(Generation, Rcs512Channel)>>,
    tx: Rcs512Channel,
    rx: Rcs512Channel,
}

awaits!(
    AwaitEstablishResponse,
    EstablishResponse,
    keys: "The pre-shared secrets as they stand (already advanced).",
    transcript: "The session hash the server must prove (`sch5`).",
);

impl AwaitEstablishResponse {
    /// Opens the establish response and checks it carries `sch5` (0x07 if it does not
    /// authenticate, 0x08 if it carries another hash): the handshake is complete. Its
    /// public `handle` makes the session of what this hands over.
    pub(crate) fn establish(self, packet: &[u8], now: u64) -> Result<Established, Error> {
        let Self {
            mut core,
            next,
            sibling,
            tx,
            rx: mut rx_channel,
            ..
        } = self;
        let rx = core.receive(packet, Flag::EstablishResponse, now)?;
        let payload = rx.message.rest();
        let expected = core.transcript.hash();
        let mut opened = open_establish(&mut rx_channel, &rx.header, payload, expected);
        let mut next = next;
        if matches!(opened, Err(Error::Crypto(CryptoFailure::Decryption)))
            && let Some(boxed) = sibling
        {
            let (sibling, mut sibling_rx) = *boxed;
            // The peer answered for the sibling generation: that one it holds.
            opened = open_establish(&mut sibling_rx, &rx.header, payload, expected);
            if opened.is_ok() {
                sibling.apply_to(&mut core.keys);
                (next, rx_channel) = (sibling, sibling_rx);
            }
        }
        opened?;
        Ok(Established {
            role: Role::Client,
            keys: core.keys,
            settings: core.settings,
            tx,
            rx: rx_channel,
            record: Generations::new(next),
        })
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
